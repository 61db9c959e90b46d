"""Segmentation metrics from one confusion matrix, so every figure agrees with every other. Used by training
(validation), `evaluate`, the pictures and the report, so it sits low in the house.

Definitions (per class c, over all pixels of all images, void pixels left out):
- IoU_c  = TP / (TP + FP + FN)
- Dice_c = 2 TP / (2 TP + FP + FN), i.e. 2 * overlap / (predicted + true pixels)
- mIoU and mean Dice average over classes, background included ("with background") or not; classes that occur
  in neither the truth nor the prediction have no score and are left out of the mean.
- pixel accuracy = correctly labelled pixels / all (non-void) pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from masksmith.core.labels import IGNORE_INDEX, ClassMap


class ConfusionMatrix:
    """Accumulates a (C, C) matrix: rows are the truth, columns the prediction."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = torch.zeros((num_classes, num_classes), dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred = pred.reshape(-1).long()
        target = target.reshape(-1).long()
        keep = target != IGNORE_INDEX
        pred, target = pred[keep], target[keep]
        k = self.num_classes
        self.matrix += torch.bincount(target * k + pred, minlength=k * k).reshape(k, k).cpu()

    def update_numpy(self, pred: np.ndarray, target: np.ndarray) -> None:
        """`update` on numpy masks, counted in numpy (no int64 copies of a full-size photo)."""
        pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
        keep = target != IGNORE_INDEX
        if not keep.all():
            pred, target = pred[keep], target[keep]
        k = self.num_classes
        counts = np.bincount(target.astype(np.int32) * k + pred, minlength=k * k)
        self.matrix += torch.from_numpy(counts.reshape(k, k).astype(np.int64))

    def merge(self, other: ConfusionMatrix) -> None:
        self.matrix += other.matrix

    def scores(self) -> SegmentationScores:
        return SegmentationScores.from_matrix(self.matrix.numpy())


@dataclass
class SegmentationScores:
    iou: np.ndarray  # (C,), NaN where the class is absent from truth and prediction
    dice: np.ndarray
    pixel_accuracy: float
    support: np.ndarray  # true pixels per class
    matrix: np.ndarray

    @classmethod
    def from_matrix(cls, m: np.ndarray) -> SegmentationScores:
        m = m.astype(np.float64)
        tp = np.diag(m)
        fp = m.sum(0) - tp
        fn = m.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
            dice = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        total = m.sum()
        return cls(iou, dice, float(tp.sum() / total) if total else float("nan"), m.sum(1), m)

    def miou(self, with_background: bool = True) -> float:
        values = self.iou if with_background else self.iou[1:]
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    def mean_dice(self, with_background: bool = True) -> float:
        values = self.dice if with_background else self.dice[1:]
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    def as_dict(self, classes: ClassMap) -> dict:
        names = classes.labels()  # one row per mask value, the background first
        return {
            "miou": self.miou(True), "miou_without_background": self.miou(False),
            "mean_dice": self.mean_dice(True), "mean_dice_without_background": self.mean_dice(False),
            "pixel_accuracy": self.pixel_accuracy,
            "per_class": [{"class": n, "iou": _f(i), "dice": _f(d), "pixels": int(s)}
                          for n, i, d, s in zip(names, self.iou, self.dice, self.support, strict=True)],
        }


def top_confusions(matrix: np.ndarray, names: list[str], count: int = 2, min_share: float = 0.01) -> list[dict]:
    """The `count` largest mistakes in a (C, C) confusion matrix (rows truth, columns prediction): which true
    class went to which predicted class, with the pixels and their share of that true class's pixels (a missed
    object is "wheel -> background", a false one "background -> wheel"). Shares below `min_share` are left out."""
    m = np.asarray(matrix, dtype=np.float64)
    truth = m.sum(1)
    wrong = m.copy()
    np.fill_diagonal(wrong, 0)
    out = []
    for flat in np.argsort(wrong, axis=None, kind="stable")[::-1]:
        i, j = divmod(int(flat), m.shape[1])
        if wrong[i, j] <= 0 or len(out) == count:
            break
        share = wrong[i, j] / truth[i]
        if share >= min_share:
            out.append({"true": names[i], "predicted": names[j], "pixels": int(wrong[i, j]), "share": float(share)})
    return out


def describe_confusions(confusions: list[dict]) -> str:
    """"window->body 12 %, wheel->background 3 %" for a caption."""
    return ", ".join(f"{c['true']}→{c['predicted']} {100 * c['share']:.0f} %" for c in confusions)


def _f(x: float) -> float | None:
    return None if np.isnan(x) else float(x)
