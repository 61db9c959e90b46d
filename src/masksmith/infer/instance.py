"""Instance segmentation at inference: the predictor, COCO AP, and per-image JSON and overlays.

- `InstancePredictor.from_file(path).predict(image)` -> objects (class, score, box, mask at the photo's own
  size). The photo is shrunk to the model's size before the network (Mask R-CNN would do it anyway) and only
  the kept objects' masks are scaled back up, so a 12-megapixel photo never costs a hundred full-size planes.
- `CocoAccumulator`: COCO box and mask AP with pycocotools' COCOeval on in-memory ground truth and
  predictions; training validation and `evaluate_instances` both use it, so their figures agree.
- `evaluate_instances(model, data)`: AP, AP50, AP75 and per-class AP at each image's own size, plus the
  semantic scores (IoU, Dice) of the union masks (each pixel takes the class of its highest-scoring object),
  each image's own mask AP, and with an output folder the confusion matrix and worst / best galleries.
- `predict_instances_to_folder`: <stem>_instances.json (COCO-style RLE) and <stem>_overlay.png per image
  (drawn by `masksmith.draw.draw_instances`: class colours, outlines, "class score" tags).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from masksmith.apps.extract import DetectedObject
from masksmith.data.schema import Dataset
from masksmith.errors import MasksmithError
from masksmith.models.artifact import ModelArtifact, build_network, load_artifact
from masksmith.models.instance import as_float_image

BoxXYXY = tuple[float, float, float, float]


@dataclass
class Instance(DetectedObject):
    """One detected object: `label`, `score`, `mask` ((H, W) bool at the photo's size, from DetectedObject)
    and its `box` (x0, y0, x1, y1) in the photo's pixels."""

    box: BoxXYXY = (0.0, 0.0, 0.0, 0.0)

    @property
    def box_xywh(self) -> list[float]:
        x0, y0, x1, y1 = self.box
        return [x0, y0, x1 - x0, y1 - y0]


# ------------------------------------------------------------------------------------------------ COCO AP
def rle_json(rle: dict[str, Any]) -> dict[str, Any]:
    """An RLE with `counts` as str, ready for JSON."""
    counts = rle["counts"]
    return {"size": [int(s) for s in rle["size"]],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def masks_to_rles(masks: np.ndarray) -> list[dict[str, Any]]:
    """(N, H, W) bool masks -> compressed RLEs in one pycocotools call."""
    from masksmith.data.instance_data import encode_masks

    return encode_masks(np.asarray(masks, dtype=bool))


def _metric(value: float) -> float | None:
    """COCOeval says -1 where a figure is undefined (no ground truth); JSON says null."""
    return None if value is None or value < 0 or np.isnan(value) else float(value)


class CocoAccumulator:
    """Collects ground truth and predictions image by image, then runs COCOeval for boxes and masks.

    Category ids are the class indices 1..K. Crowd ground truth is passed as iscrowd=1, so COCOeval ignores
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


# ---------------------------------------------------------------------------------------------- predictor
class InstancePredictor:
    """Runs a trained instance model on photos of any size."""

    def __init__(self, artifact: ModelArtifact, net: torch.nn.Module | None = None, score_threshold: float = 0.5,
                 mask_threshold: float = 0.5) -> None:
        if artifact.task != "instance":
            raise MasksmithError(f"this is a {artifact.task} model; the instance predictor cannot run it.",
                                 fix="use masksmith.infer.predictor.Predictor for semantic models.")
        self.artifact = artifact
        self.net = (net or build_network(artifact)).eval()
        self.mask_threshold = mask_threshold
        self.score_threshold = score_threshold

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> InstancePredictor:
        return cls(load_artifact(path), **kwargs)

    @property
    def score_threshold(self) -> float:
        return self._score_threshold

    @score_threshold.setter
    def score_threshold(self, value: float) -> None:
        self._score_threshold = float(value)
        # boxes below the threshold are dropped inside the network, before their masks are computed
        self.net.roi_heads.score_thresh = float(value)

    @property
    def classes(self) -> list[str]:
        return list(self.artifact.classes)

    @property
    def colors(self) -> list[tuple[int, int, int]]:
        return [tuple(c) for c in self.artifact.colors]

    @property
    def max_size(self) -> int:
        return int(self.artifact.model.get("max_size", 512))

    @torch.no_grad()
    def predict(self, image: np.ndarray) -> list[Instance]:
        """Objects in an (H, W, 3) uint8 RGB image, highest score first, masks and boxes at its own size."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise MasksmithError(f"expected an RGB image (H, W, 3), got shape {image.shape}.")
        h, w = image.shape[:2]
        pixels = as_float_image(np.ascontiguousarray(image))
        s = min(1.0, self.max_size / max(h, w))
        if s < 1.0:
            size = (max(1, round(h * s)), max(1, round(w * s)))
            pixels = F.interpolate(pixels[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        out = self.net([pixels])[0]
        sh, sw = pixels.shape[-2:]
        fx, fy = w / sw, h / sh
        instances = []
        for box, label, score, prob in zip(out["boxes"], out["labels"], out["scores"], out["masks"], strict=True):
            if float(score) < self.score_threshold:
                continue
            if prob.shape[-2:] != (h, w):  # one at a time: the kept objects' probabilities, scaled up
                prob = F.interpolate(prob[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            x0, y0, x1, y1 = box.tolist()
            instances.append(Instance(label=self.classes[int(label) - 1], score=float(score),
                                      mask=(prob[0] > self.mask_threshold).numpy(),
                                      box=(x0 * fx, y0 * fy, x1 * fx, y1 * fy)))
        instances.sort(key=lambda i: -i.score)
        return instances

    def predict_files(self, paths: Iterable[str | Path]):
        from masksmith.images import read_image

        for path in paths:
            image = read_image(path)
            yield Path(path), image, self.predict(image)


# ------------------------------------------------------------------------------------------------ drawing
def truth_instances(masks: np.ndarray, labels: Sequence[int], class_names: Sequence[str]) -> list[Instance]:
    """Ground-truth objects as Instances (score 1), for drawing."""
    from masksmith.apps.extract import mask_box

    out = []
    for m, label in zip(masks, labels, strict=True):
        box = mask_box(m)
        if box is not None:
            out.append(Instance(class_names[int(label) - 1], 1.0, m.astype(bool), tuple(map(float, box))))
    return out


# ---------------------------------------------------------------------------------------------- evaluate
def union_mask(instances: Sequence[Instance], class_to_index: dict[str, int], shape: tuple[int, int]
               ) -> np.ndarray:
    """(H, W) uint8 class-index mask: each pixel takes the class of its highest-scoring object."""
    out = np.zeros(shape, np.uint8)
    for inst in sorted(instances, key=lambda i: i.score):  # painted lowest first: the best ends on top
        out[inst.mask.astype(bool)] = class_to_index[inst.label]
    return out


def evaluate_instances(model: str | Path | InstancePredictor, data: str | Path | Dataset, out: Path | None = None,
                       score_threshold: float = 0.05, union_score_threshold: float = 0.5,
                       format: str | None = None, strict: bool = True, worst: int = 8, data_label: str | None = None,
                       **data_options: Any) -> dict[str, Any]:
    """COCO box and mask AP, AP50, AP75 and per-class AP of an instance model on an annotated data set, at each
    image's own size, plus IoU/Dice of the union masks (objects scoring at least `union_score_threshold`), and
    each image's own mask AP and largest confusions (of its union mask).

    Predictions down to `score_threshold` (COCO's customary 0.05) enter AP. With `out`, writes
    out/metrics.json, confusion.png (union masks) and worst.png / best.png (`worst` images each, by image mask
    AP; objects drawn from `union_score_threshold`), and the run's report.html when `out` is a run's
    evaluation/<name>/ folder. Returns the metrics.json dict.
    """
    import time

    started = time.monotonic()
    predictor = model if isinstance(model, InstancePredictor) else InstancePredictor.from_file(model)
    own_threshold = predictor.score_threshold
    try:
        predictor.score_threshold = min(score_threshold, union_score_threshold)
        report, context = _evaluate(predictor, data, score_threshold, union_score_threshold, format, strict,
                                    data_options)
        if data_label:
            report["data"] = data_label
        if out is not None:
            _write_evaluation(predictor, report, context, out, worst, union_score_threshold)
    finally:
        predictor.score_threshold = own_threshold
    report["seconds"] = round(time.monotonic() - started, 1)
    if out is not None:
        from masksmith.outputs import OutputFolder

        folder = OutputFolder(out, inputs=[context["dataset"].root])
        folder.write_text("metrics.json", json.dumps({**report, "files": {k: Path(v).name for k, v in
                                                                           report["files"].items()}}, indent=2))
        from masksmith.report import update_report

        page = update_report(out)  # the run's report.html, when `out` is the run's evaluation/<name>/
        if page is not None:
            report["files"]["report"] = str(page)
    return report


def image_mask_ap(height: int, width: int, names: Sequence[str], gt_labels: list[int], gt_rles: list,
                  crowd: list[bool], labels: list[int], scores: list[float], rles: list, boxes: list) -> float | None:
    """One image's COCO mask AP (None when it has no ground-truth object: AP is undefined there)."""
    if not [c for c in crowd if not c]:
        return None
    one = CocoAccumulator(names)
    one.add(height, width, gt_labels, gt_rles, labels, scores, rles, boxes, gt_crowd=crowd)
    return one.evaluate("segm")["ap"]


def _evaluate(predictor: InstancePredictor, data: str | Path | Dataset, score_threshold: float,
              union_score_threshold: float, format: str | None, strict: bool, data_options: dict[str, Any]
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    from masksmith.data.rasterize import instance_masks, semantic_mask
    from masksmith.data.split import evaluation_samples
    from masksmith.infer.evaluate import ImageScore, open_data, ranked
    from masksmith.metrics import ConfusionMatrix, top_confusions

    dataset, label = open_data(data, format, strict, data_options)
    scored_samples, samples_used = evaluation_samples(dataset)
    names = predictor.classes
    index = {n: i + 1 for i, n in enumerate(names)}
    if dataset.class_names and not set(dataset.class_names) & set(names):
        raise MasksmithError(f"none of the data set's classes ({', '.join(dataset.class_names)}) are the "
                             f"model's ({', '.join(names)}).", path=label,
                             fix="evaluate on data annotated with the classes the model was trained on.")
    coco = CocoAccumulator(names)
    confusion = ConfusionMatrix(len(names) + 1)
    images: list[ImageScore] = []
    for sample in scored_samples:
        image = sample.load_image()
        masks, labels, crowd = instance_masks(sample, index)  # classes the model does not know are left out
        found = predictor.predict(image)
        scored = [i for i in found if i.score >= score_threshold]
        h, w = image.shape[:2]
        truth = (labels.tolist(), masks_to_rles(masks), crowd.tolist())
        guess = ([index[i.label] for i in scored], [i.score for i in scored],
                 masks_to_rles(np.stack([i.mask for i in scored])) if scored else [], [i.box for i in scored])
        coco.add(h, w, truth[0], truth[1], *guess, gt_crowd=truth[2])
        union = union_mask([i for i in found if i.score >= union_score_threshold], index, image.shape[:2])
        one = ConfusionMatrix(len(names) + 1)
        one.update_numpy(union, semantic_mask(sample, index))
        confusion.merge(one)
        images.append(ImageScore(sample.name, image_mask_ap(h, w, names, *truth, *guess),
                                 top_confusions(one.matrix.numpy(), ["background", *names])))
    summary = coco.summary()
    worst, best = ranked(images)
    report: dict[str, Any] = {
        "task": "instance",
        "data": label,
        "images": len(scored_samples),
        "samples_used": samples_used,
        "image_score": "mask AP",
        "mask": {k: summary["mask"][k] for k in ("ap", "ap50", "ap75")},
        "box": {k: summary["box"][k] for k in ("ap", "ap50", "ap75")},
        "per_class": [{"class": n, "mask_ap": summary["mask"]["per_class"][n],
                       "box_ap": summary["box"]["per_class"][n]} for n in names],
        "semantic": confusion.scores().as_dict(names),
        "score_threshold": score_threshold,
        "union_score_threshold": union_score_threshold,
        "worst_images": [i.to_dict() for i in worst[:20]],
        "best_images": [i.to_dict() for i in best[:20]],
        "files": {},
    }
    return report, {"dataset": dataset, "matrix": confusion.matrix.numpy(), "images": images, "index": index}


def _write_evaluation(predictor: InstancePredictor, report: dict[str, Any], context: dict[str, Any], out: Path,
                      count: int, union_score_threshold: float) -> None:
    """confusion.png and the worst / best galleries into `out` (metrics.json is written by the caller)."""
    from masksmith.data.rasterize import instance_masks, semantic_mask
    from masksmith.draw import instance_row
    from masksmith.draw.charts import plot_confusion
    from masksmith.infer.evaluate import GALLERY_CELL, gallery, ranked
    from masksmith.outputs import OutputFolder
    from masksmith.runfolder import shown_name

    dataset, index = context["dataset"], context["index"]
    names = predictor.classes
    folder = OutputFolder(out, inputs=[dataset.root])
    report["files"]["confusion_matrix"] = str(plot_confusion(context["matrix"], ["background", *names], folder,
                                                             "confusion.png", "confusion matrix of the union masks"))
    colors = dict(zip(names, predictor.colors[1:], strict=False))

    def row(sample):
        image = sample.load_image()
        masks, labels, _ = instance_masks(sample, index)
        truth = truth_instances(masks, labels.tolist(), names)
        found = [i for i in predictor.predict(image) if i.score >= union_score_threshold]
        return instance_row(image, truth, found, semantic_mask(sample, index),
                            union_mask(found, index, image.shape[:2]), colors, GALLERY_CELL)

    by_name = {s.name: s for s in dataset.samples}
    worst, best = ranked(context["images"])
    data = shown_name(out, report["data"])
    for key, name, chosen, what in (("worst_gallery", "worst.png", worst[:count], "worst"),
                                    ("best_gallery", "best.png", best[:count], "best")):
        if chosen:
            picture = gallery(chosen, by_name, row, f"{what}-predicted images of {data} ("
                              f"{'lowest' if what == 'worst' else 'highest'} mask AP first)", "mask AP", names,
                              predictor.colors[1:])
            report["files"][key] = str(folder.save_image(name, picture.pixels, **picture.save_options()))
    report["files"]["metrics"] = str(folder.path("metrics.json"))


# ------------------------------------------------------------------------------------------------ writing
def instances_json(path: Path, image: np.ndarray, instances: Sequence[Instance]) -> dict[str, Any]:
    """The per-image record: class, score, box [x, y, w, h] and the mask as COCO RLE (counts as str)."""
    rles = masks_to_rles(np.stack([i.mask for i in instances])) if instances else []
    return {"image": str(path), "width": int(image.shape[1]), "height": int(image.shape[0]),
            "instances": [{"class": i.label, "score": round(float(i.score), 4),
                           "box": [round(v, 2) for v in i.box_xywh], "mask": rle_json(r)}
                          for i, r in zip(instances, rles, strict=True)]}


class InstanceWriter:
    """What an instance model writes per photo (for `masksmith.infer.write.predict_batch`), and its summary row:
    objects per class."""

    def __init__(self, predictor: InstancePredictor, opacity: float) -> None:
        self.predictor, self.opacity = predictor, opacity
        self.classes = predictor.classes
        self.colors = dict(zip(predictor.classes, predictor.colors[1:], strict=False))
        self.columns = ["image", "width", "height", "objects", *(f"objects_{n}" for n in self.classes)]

    def names_for(self, stem: str) -> dict[str, str]:
        return {"json": f"{stem}_instances.json", "overlay": f"{stem}_overlay.png"}

    def predict(self, image: np.ndarray) -> list[Instance]:
        return self.predictor.predict(image)

    def write(self, folder, job, image: np.ndarray, instances: list[Instance]) -> dict[str, Any]:
        from masksmith.draw import draw_instances

        names = self.names_for(job.stem)
        record = instances_json(job.path, image, instances)
        files = {"json": folder.write_text(names["json"], json.dumps(record, indent=1)),
                 "overlay": folder.save_image(names["overlay"], draw_instances(image, instances, self.opacity,
                                                                               colors=self.colors))}
        return {**{k: str(v) for k, v in files.items()}, **self.counts(record)}

    def counts(self, record: dict[str, Any]) -> dict[str, Any]:
        found = [obj["class"] for obj in record["instances"]]
        return {"width": record["width"], "height": record["height"], "objects": len(found),
                "instances": str(len(found)), **{f"objects_{c}": found.count(c) for c in self.classes}}

    def existing(self, folder, job) -> dict[str, Any]:
        names = self.names_for(job.stem)
        record = json.loads(folder.path(names["json"]).read_text(encoding="utf-8"))
        return {**{k: str(folder.path(v)) for k, v in names.items()}, **self.counts(record)}


def predict_instances_to_folder(predictor: InstancePredictor, inputs: Iterable[str | Path], out: Path,
                                opacity: float = 0.5, *, overwrite: bool = False, lenient: bool = False,
                                skipped=None) -> list[dict[str, str]]:
    """Predict every input image (files or folders) and write <stem>_instances.json and <stem>_overlay.png; the
    rows of `predict_batch` as a list (stream `predict_batch` for many photos)."""
    from masksmith.infer.write import predict_batch

    return list(predict_batch(predictor, inputs, out, InstanceWriter(predictor, opacity), overwrite=overwrite,
                              lenient=lenient, skipped=skipped))
