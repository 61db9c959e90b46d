"""Scoring a semantic model on an annotated data set: per-class IoU and Dice, mIoU, pixel accuracy, a
confusion matrix picture and galleries of the worst- and best-predicted images (each with its name, its mIoU
and the classes it confuses most).

Scores are reported twice: at the network's input size (truth resized by nearest neighbour, as the car-parts
benchmark protocol asks) and at each image's own size (prediction resized up), both from one network pass.
Photos and their truth masks are read in a background thread while the network runs, each image is decoded
once, and the galleries' rows are drawn while scoring (`GalleryKeeper`), not by predicting again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from masksmith.data.rasterize import semantic_mask
from masksmith.data.schema import Dataset, Sample
from masksmith.evaluate.metrics import ConfusionMatrix, SegmentationScores, top_confusions
from masksmith.evaluate.result import ClassRow, Column, Evaluation, Figure, ImageScore


def _resize_nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape == size:
        return mask
    return np.asarray(Image.fromarray(mask).resize((size[1], size[0]), Image.NEAREST))


def semantic_evaluation(full: SegmentationScores, small: SegmentationScores, classes, data: str,
                        samples_used: str, images: list[ImageScore]) -> Evaluation:
    """The Evaluation of a semantic model from its confusion matrices at full and at input size."""
    labels = classes.labels()
    rows = [ClassRow(n, [_f(full.iou[k]), _f(full.dice[k]), _f(small.iou[k]), int(full.support[k])])
            for k, n in enumerate(labels)]
    figures = [Figure("mIoU", _f(full.miou(True))), Figure("mIoU without background", _f(full.miou(False))),
               Figure("mean Dice", _f(full.mean_dice(True))), Figure("pixel accuracy", _f(full.pixel_accuracy)),
               Figure("mIoU at input size", _f(small.miou(True)))]
    return Evaluation(
        task="semantic", data=data, images=len(images), samples_used=samples_used, figures=figures,
        columns=[Column("IoU"), Column("Dice"), Column("IoU (input size)"), Column("pixels", "count")],
        per_class=rows, image_score="mIoU", image_scores=images,
        details={"at_input_size": small.as_dict(classes), "at_full_size": full.as_dict(classes)},
        scores={"full": full, "input": small})


def evaluate_semantic(predictor: Any, dataset: Dataset, label: str, samples: list[Sample], samples_used: str,
                      out: Path | None = None, worst: int = 8, notes: Sequence[str] = ()) -> Evaluation:
    """Score `predictor` (a semantic Predictor) on `samples` of `dataset`. With `out`, writes metrics.json,
    confusion.png, worst.png and best.png (`worst` images in each gallery) there."""
    from masksmith.core.background import prefetch
    from masksmith.draw import semantic_row
    from masksmith.evaluate.gallery import GALLERY_CELL, GalleryKeeper

    started = time.monotonic()
    classes = predictor.artifact.class_map
    index = classes.index()  # classes the model does not know stay background in the truth
    k = classes.num_values
    palette = classes.palette()
    at_input, at_full = ConfusionMatrix(k), ConfusionMatrix(k)
    images: list[ImageScore] = []
    keeper = GalleryKeeper(worst if out is not None else 0)

    def load(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        return sample.load_image(), semantic_mask(sample, index)

    for sample, loaded in prefetch(samples, load):
        if isinstance(loaded, BaseException):
            raise loaded
        image, truth = loaded
        probs, full = predictor.predict_scored(image)
        small = probs.argmax(0).astype(np.uint8)
        at_input.update_numpy(small, _resize_nearest(truth, small.shape))
        one = ConfusionMatrix(k)
        one.update_numpy(full, truth)
        at_full.merge(one)
        score = ImageScore(sample.name, one.scores().miou(True), top_confusions(one.matrix.numpy(), classes.labels()))
        images.append(score)
        keeper.offer(sample.name, score.score, lambda im=image, t=truth, p=full: semantic_row(im, t, p, palette,
                                                                                              GALLERY_CELL))
    images.sort(key=lambda i: i.score if i.score == i.score else float("inf"))
    evaluation = semantic_evaluation(at_full.scores(), at_input.scores(), classes, label, samples_used, images)
    if out is not None:
        from masksmith.core.outputs import OutputFolder
        from masksmith.evaluate.gallery import write_pictures

        folder = OutputFolder(out, inputs=[dataset.root])

        def row(sample: Sample) -> list[np.ndarray]:
            def again() -> list[np.ndarray]:
                image = sample.load_image()
                return semantic_row(image, semantic_mask(sample, index), predictor.predict(image), palette,
                                    GALLERY_CELL)

            return keeper.row(sample.name, again)

        write_pictures(evaluation, folder, samples, classes, evaluation.scores["full"].matrix, row, worst)
    evaluation.seconds = time.monotonic() - started
    evaluation.notes = list(notes)
    if out is not None:
        evaluation.write(folder)
    return evaluation


def _f(x: float) -> float | None:
    return None if x != x else float(x)
