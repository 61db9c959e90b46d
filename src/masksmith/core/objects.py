"""Objects found in a photo: a class, a score and a mask at the photo's size (and a box for detections).

One small type every floor shares: instance models predict them, evaluation scores them, pictures draw them,
and the apps cut them out or paste onto them. Pure functions on arrays; nothing here reads or writes files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from masksmith.core.labels import ClassMap

BoxXYXY = tuple[float, float, float, float]


@dataclass
class DetectedObject:
    """One object: its class `label`, a `score` (1 for ground truth and semantic regions) and its `mask`,
    (H, W) bool at the photo's size."""

    label: str
    score: float
    mask: np.ndarray


@dataclass
class Instance(DetectedObject):
    """A detected object with its `box` (x0, y0, x1, y1) in the photo's pixels."""

    box: BoxXYXY = (0.0, 0.0, 0.0, 0.0)

    @property
    def box_xywh(self) -> list[float]:
        x0, y0, x1, y1 = self.box
        return [x0, y0, x1 - x0, y1 - y0]


def mask_box(mask: np.ndarray, pad: int = 0) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), end-exclusive, of the mask's pixels grown by `pad` and clipped to the image."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    h, w = mask.shape
    return (max(0, int(xs.min()) - pad), max(0, int(ys.min()) - pad),
            min(w, int(xs.max()) + 1 + pad), min(h, int(ys.max()) + 1 + pad))


def truth_instances(masks: np.ndarray, values: Sequence[int], classes: ClassMap) -> list[Instance]:
    """Ground-truth objects ((N, H, W) masks and their class values) as Instances of score 1, for drawing."""
    out = []
    for m, value in zip(masks, values, strict=True):
        box = mask_box(m)
        if box is not None:
            out.append(Instance(classes.name(int(value)), 1.0, m.astype(bool), tuple(map(float, box))))
    return out


def union_mask(objects: Sequence[DetectedObject], classes: ClassMap, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 class-value mask of objects: each pixel takes the class of its highest-scoring object."""
    out = np.zeros(shape, np.uint8)
    index = classes.index()
    for obj in sorted(objects, key=lambda o: o.score):  # painted lowest first: the best ends on top
        out[obj.mask.astype(bool)] = index[obj.label]
    return out
