"""Scoring an instance model: COCO box and mask AP with pycocotools' COCOeval (training validation and
`evaluate` share `CocoAccumulator`, so their figures agree), plus the semantic scores of the union masks (each
pixel takes the class of its highest-scoring object), each image's own mask AP, the confusion matrix of the
union masks and the worst / best galleries.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from masksmith.core.objects import truth_instances, union_mask
from masksmith.data.rasterize import encode_masks, instance_masks, semantic_mask
from masksmith.data.schema import Dataset, Sample
from masksmith.evaluate.metrics import ConfusionMatrix, top_confusions
from masksmith.evaluate.result import ClassRow, Column, Evaluation, Figure, ImageScore


def _metric(value: float) -> float | None:
    """COCOeval says -1 where a figure is undefined (no ground truth); JSON says null."""
    return None if value is None or value < 0 or np.isnan(value) else float(value)


class CocoAccumulator:
    """Collects ground truth and predictions image by image, then runs COCOeval for boxes and masks.

    Category ids are the class values 1..K. Crowd ground truth is passed as iscrowd=1, so COCOeval ignores
    predictions that fall on it instead of counting them as false positives.
    """

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        self.images: list[dict[str, Any]] = []
        self.truth: list[dict[str, Any]] = []
        self.segm: list[dict[str, Any]] = []
        self.bbox: list[dict[str, Any]] = []

    def add(self, height: int, width: int, gt_labels: Sequence[int], gt_rles: Sequence[dict[str, Any]],
            pred_labels: Sequence[int], pred_scores: Sequence[float], pred_rles: Sequence[dict[str, Any]],
            pred_boxes: Sequence[Sequence[float]], gt_crowd: Sequence[bool] | None = None) -> int:
        """One image; boxes are (x0, y0, x1, y1). Returns its image id."""
        from pycocotools import mask as mask_utils

        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "height": int(height), "width": int(width)})
        crowd = list(gt_crowd) if gt_crowd is not None else [False] * len(gt_labels)
        for label, rle, is_crowd in zip(gt_labels, gt_rles, crowd, strict=True):
            x, y, w, h = mask_utils.toBbox(rle).tolist()
            self.truth.append({"id": len(self.truth) + 1, "image_id": image_id, "category_id": int(label),
                               "segmentation": rle, "area": float(mask_utils.area(rle)),
                               "bbox": [x, y, w, h], "iscrowd": int(bool(is_crowd))})
        for label, score, rle, box in zip(pred_labels, pred_scores, pred_rles, pred_boxes, strict=True):
            x0, y0, x1, y1 = (float(v) for v in box)
            common = {"image_id": image_id, "category_id": int(label), "score": float(score), "iscrowd": 0}
            self.segm.append({**common, "id": len(self.segm) + 1, "segmentation": rle,
                              "area": float(mask_utils.area(rle)), "bbox": mask_utils.toBbox(rle).tolist()})
            self.bbox.append({**common, "id": len(self.bbox) + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                              "area": (x1 - x0) * (y1 - y0)})
        return image_id

    def _coco(self, annotations: list[dict[str, Any]]):
        from pycocotools.coco import COCO

        coco = COCO()
        coco.dataset = {"images": self.images, "annotations": annotations,
                        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(self.class_names)]}
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco

    def evaluate(self, iou_type: str) -> dict[str, Any]:
        """{"ap", "ap50", "ap75", "per_class": {name: ap}} for "segm" or "bbox" (None where undefined)."""
        from pycocotools.cocoeval import COCOeval

        names = self.class_names
        if not self.images:
            return {"ap": None, "ap50": None, "ap75": None, "per_class": dict.fromkeys(names)}
        gt = self._coco(self.truth)
        dt = self._coco(self.segm if iou_type == "segm" else self.bbox)
        ev = COCOeval(gt, dt, iou_type)
        with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its progress and table
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        precision = ev.eval["precision"]  # (iou thresholds, recall points, classes, areas, max dets)
        per_class = {}
        for k, name in enumerate(names):
            p = precision[:, :, k, 0, -1]
            per_class[name] = float(p[p > -1].mean()) if (p > -1).any() else None
        return {"ap": _metric(ev.stats[0]), "ap50": _metric(ev.stats[1]), "ap75": _metric(ev.stats[2]),
                "per_class": per_class}

    def summary(self) -> dict[str, Any]:
        return {"mask": self.evaluate("segm"), "box": self.evaluate("bbox")}


def image_mask_ap(height: int, width: int, names: Sequence[str], gt_labels: list[int], gt_rles: list,
                  crowd: list[bool], labels: list[int], scores: list[float], rles: list, boxes: list) -> float | None:
    """One image's COCO mask AP (None when it has no ground-truth object: AP is undefined there)."""
    if not [c for c in crowd if not c]:
        return None
    one = CocoAccumulator(names)
    one.add(height, width, gt_labels, gt_rles, labels, scores, rles, boxes, gt_crowd=crowd)
    return one.evaluate("segm")["ap"]


def instance_evaluation(summary: dict[str, Any], union: ConfusionMatrix, classes, data: str, samples_used: str,
                        images: list[ImageScore], thresholds: dict[str, float]) -> Evaluation:
    """The Evaluation of an instance model from COCOeval's summary and the union masks' confusion matrix."""
    names = list(classes.names)
    scores = union.scores()
    union_scores = scores.as_dict(classes)
    ious = {r["class"]: r["iou"] for r in union_scores["per_class"]}
    mask, box = summary["mask"], summary["box"]
    figures = [Figure("mask AP", mask["ap"], "percent"), Figure("mask AP50", mask["ap50"], "percent"),
               Figure("mask AP75", mask["ap75"], "percent"), Figure("box AP", box["ap"], "percent"),
               Figure("box AP50", box["ap50"], "percent"), Figure("box AP75", box["ap75"], "percent"),
               Figure("mIoU (union masks)", union_scores["miou"])]
    rows = [ClassRow(n, [mask["per_class"][n], box["per_class"][n], ious.get(n)]) for n in names]
    details = {"mask": {k: mask[k] for k in ("ap", "ap50", "ap75")}, "box": {k: box[k] for k in ("ap", "ap50", "ap75")},
               "per_class": [{"class": n, "mask_ap": mask["per_class"][n], "box_ap": box["per_class"][n]}
                             for n in names],
               "semantic": union_scores, **thresholds}
    return Evaluation(task="instance", data=data, images=len(images), samples_used=samples_used, figures=figures,
                      columns=[Column("mask AP", "percent"), Column("box AP", "percent"), Column("IoU (union masks)")],
                      per_class=rows, image_score="mask AP", image_scores=images, details=details,
                      scores={"union": scores})


def evaluate_instances(predictor: Any, dataset: Dataset, label: str, samples: list[Sample], samples_used: str,
                       out: Path | None = None, worst: int = 8, score_threshold: float = 0.05,
                       union_score_threshold: float = 0.5, notes: Sequence[str] = ()) -> Evaluation:
    """COCO box and mask AP, AP50, AP75 and per-class AP of `predictor` (an InstancePredictor) on `samples`, at
    each image's own size, plus IoU/Dice of the union masks (objects scoring at least `union_score_threshold`),
    and each image's own mask AP and largest confusions. Predictions down to `score_threshold` (COCO's
    customary 0.05) enter AP. With `out`, writes metrics.json, confusion.png (union masks) and worst.png /
    best.png (`worst` images each, by image mask AP) there."""
    from masksmith.core.background import prefetch
    from masksmith.draw import instance_row
    from masksmith.evaluate.gallery import GALLERY_CELL, GalleryKeeper

    started = time.monotonic()
    classes = predictor.artifact.class_map
    names, index = list(classes.names), classes.index()
    colors = classes.colors_by_name()
    own_threshold = predictor.score_threshold
    coco = CocoAccumulator(names)
    confusion = ConfusionMatrix(classes.num_values)
    images: list[ImageScore] = []
    keeper = GalleryKeeper(worst if out is not None else 0)

    def load(sample: Sample) -> tuple[np.ndarray, tuple, np.ndarray]:
        return sample.load_image(), instance_masks(sample, index), semantic_mask(sample, index)

    def gallery_row(image, masks, labels, semantic, found):
        truth = truth_instances(masks, labels.tolist(), classes)
        shown = [i for i in found if i.score >= union_score_threshold]
        return instance_row(image, truth, shown, semantic, union_mask(shown, classes, image.shape[:2]), colors,
                            GALLERY_CELL)

    try:
        predictor.score_threshold = min(score_threshold, union_score_threshold)
        for sample, loaded in prefetch(samples, load):
            if isinstance(loaded, BaseException):
                raise loaded
            image, (masks, labels, crowd), semantic = loaded  # classes the model does not know are left out
            found = predictor.predict(image)
            scored = [i for i in found if i.score >= score_threshold]
            h, w = image.shape[:2]
            truth = (labels.tolist(), encode_masks(masks), crowd.tolist())
            guess = ([index[i.label] for i in scored], [i.score for i in scored],
                     encode_masks(np.stack([i.mask for i in scored])) if scored else [], [i.box for i in scored])
            coco.add(h, w, truth[0], truth[1], *guess, gt_crowd=truth[2])
            union = union_mask([i for i in found if i.score >= union_score_threshold], classes, image.shape[:2])
            one = ConfusionMatrix(classes.num_values)
            one.update_numpy(union, semantic)
            confusion.merge(one)
            score = ImageScore(sample.name, image_mask_ap(h, w, names, *truth, *guess),
                               top_confusions(one.matrix.numpy(), classes.labels()))
            images.append(score)
            keeper.offer(sample.name, score.score, lambda a=(image, masks, labels, semantic, found): gallery_row(*a))
        evaluation = instance_evaluation(coco.summary(), confusion, classes, label, samples_used, images,
                                         {"score_threshold": score_threshold,
                                          "union_score_threshold": union_score_threshold})
        if out is not None:
            from masksmith.core.outputs import OutputFolder
            from masksmith.evaluate.gallery import write_pictures

            folder = OutputFolder(out, inputs=[dataset.root])

            def row(sample: Sample):
                def again():
                    image = sample.load_image()
                    masks, labels, _ = instance_masks(sample, index)
                    return gallery_row(image, masks, labels, semantic_mask(sample, index), predictor.predict(image))

                return keeper.row(sample.name, again)

            write_pictures(evaluation, folder, samples, classes, confusion.matrix.numpy(), row, worst,
                           "confusion matrix of the union masks")
    finally:
        predictor.score_threshold = own_threshold
    evaluation.seconds = time.monotonic() - started
    evaluation.notes = list(notes)
    if out is not None:
        evaluation.write(folder)
    return evaluation
