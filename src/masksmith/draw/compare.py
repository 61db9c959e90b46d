"""Truth beside prediction, drawn the same way: the photo, the truth and the prediction as overlays with
outlines at the same size, and the difference (wrong pixels in red). Previews, the evaluation galleries and
the report all show these rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from masksmith.core.labels import ClassMap
from masksmith.draw.instances import Drawable, render_instances
from masksmith.draw.overlay import Color, difference, fitted_size, overlay, resize_pair, wrong_marks
from masksmith.draw.sheet import Picture, TextBox, sheet

COLUMNS = ("photo", "truth", "prediction", "wrong pixels (red)")


def semantic_row(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, colors: Sequence[Color],
                 cell: int = 256, opacity: float = 0.5) -> list[np.ndarray]:
    """[photo, truth overlay, prediction overlay, difference], fitted into cell x cell (aspect kept). The
    photo and masks are scaled before drawing, so outlines are as crisp at every photo size; thin structures
    keep their colour, and every wrong pixel of the full-size masks shows (draw/overlay.py)."""
    size = fitted_size(image.shape, cell)
    im, (t, p) = resize_pair(image, [truth, prediction], size)
    return [im, overlay(im, t, colors, opacity), overlay(im, p, colors, opacity),
            difference(im, t, p, wrong_marks(truth, prediction, size))]


@dataclass
class _Scaled:
    label: str
    score: float
    mask: np.ndarray
    box: tuple[float, float, float, float]


def _scaled(objects: Sequence[Drawable], size: tuple[int, int], shape: tuple[int, int]) -> list[_Scaled]:
    fy, fx = size[0] / shape[0], size[1] / shape[1]
    out = []
    for o in objects:
        mask = o.mask if o.mask.shape == size else np.asarray(
            Image.fromarray(o.mask.astype(np.uint8)).resize((size[1], size[0]), Image.NEAREST)).astype(bool)
        x0, y0, x1, y1 = o.box
        out.append(_Scaled(o.label, float(o.score), mask, (x0 * fx, y0 * fy, x1 * fx, y1 * fy)))
    return out


def instance_row(image: np.ndarray, truth: Sequence[Drawable], found: Sequence[Drawable], truth_mask: np.ndarray,
                 found_mask: np.ndarray, colors: Mapping[str, Color], cell: int = 256, opacity: float = 0.5
                 ) -> tuple[list[np.ndarray], list[list[TextBox]]]:
    """[photo, truth objects, found objects, difference of the class masks], with what each panel says
    (each object's class, and score for found ones). `truth_mask` / `found_mask`: (H, W) class indices."""
    size = fitted_size(image.shape, cell)
    im, (t, p) = resize_pair(image, [truth_mask, found_mask], size)
    truth_pic, truth_tags = render_instances(im, _scaled(truth, size, image.shape[:2]), colors, opacity, False)
    found_pic, found_tags = render_instances(im, _scaled(found, size, image.shape[:2]), colors, opacity, True)
    return ([im, truth_pic, found_pic, difference(im, t, p, wrong_marks(truth_mask, found_mask, size))],
            [[], truth_tags, found_tags, []])


def comparison_sheet(rows: Sequence[Sequence[np.ndarray]], *, title: str, captions: Sequence[str],
                     classes: ClassMap, cell: int,
                     panel_texts: Sequence[Sequence[Sequence[TextBox]]] | None = None) -> Picture:
    """Comparison rows under the shared column titles, with the class legend."""
    return sheet(rows, COLUMNS, title=title, captions=captions, classes=classes, cell=cell,
                 panel_texts=panel_texts)
