"""Masks to polygons, for writing masks into formats that hold polygons (pre-annotations, conversions).

`mask_polygons(mask)` traces each 8-connected part of a bool mask with skimage's marching squares at the 0.5
level, shifted by half a pixel into our coordinates ((0, 0) is the top-left corner of the top-left pixel, as
in COCO). On a binary mask that contour runs along the pixel edges and cuts each corner diagonally through the
corner pixel's edge midpoints, so the polygon rasterised again (pycocotools, as every reader here does)
gives the mask back pixel for pixel before simplification. It is then simplified (Douglas-Peucker,
`tolerance` pixels) and parts smaller than `min_area` pixels are dropped.

Holes: none of COCO polygons, VIA, LabelMe or CVAT polygons has holes, so each hole is joined to its part's
outline by a cut of zero width (the "keyhole" polygon): the outline runs to the hole, around it and back the
same way. Filled by the even-odd rule (pycocotools, and what CVAT and LabelMe draw), the hole stays empty; a
person sees one thin line from the outline into the hole.
"""

from __future__ import annotations

import numpy as np


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _simplify(ring: np.ndarray, tolerance: float) -> np.ndarray:
    """A closed ring (first point not repeated) simplified; at least 3 points."""
    if tolerance <= 0 or len(ring) <= 4:
        return ring
    from skimage.measure import approximate_polygon

    closed = np.vstack([ring, ring[:1]])
    simple = approximate_polygon(closed, tolerance)[:-1]
    return simple if len(simple) >= 3 else ring


def _bridge(outer: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """`outer` with `hole` spliced in through a zero-width cut between their nearest vertices."""
    d = ((outer[:, None, :] - hole[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    hole_from_j = np.vstack([hole[j:], hole[:j], hole[j:j + 1]])
    return np.vstack([outer[:i + 1], hole_from_j, outer[i:]])


def part_polygon(part: np.ndarray, tolerance: float = 1.0) -> np.ndarray | None:
    """One 8-connected part (bool mask) as one (N, 2) polygon with its holes bridged in, or None."""
    from skimage.measure import find_contours

    ys, xs = np.nonzero(part)
    if len(xs) == 0:
        return None
    y0, x0 = ys.min() - 1, xs.min() - 1
    crop = np.pad(part[ys.min():ys.max() + 1, xs.min():xs.max() + 1], 1).astype(np.float32)
    rings = []
    for contour in find_contours(crop, 0.5, fully_connected="high"):
        ring = contour[:-1, ::-1] + (x0 + 0.5, y0 + 0.5)  # (row, col) pixel centres -> (x, y) corners
        if len(ring) >= 3:
            rings.append(ring)
    if not rings:
        return None
    rings.sort(key=lambda r: -abs(_signed_area(r)))
    outer = _simplify(rings[0], tolerance)
    for hole in rings[1:]:
        hole = _simplify(hole, tolerance)
        if len(hole) >= 3 and abs(_signed_area(hole)) > 0:
            outer = _bridge(outer, hole)
    return outer


def mask_polygons(mask: np.ndarray, tolerance: float = 1.0, min_area: int = 16) -> list[np.ndarray]:
    """The polygons of a bool mask: one per 8-connected part of at least `min_area` pixels (holes bridged
    in), largest first, each an (N, 2) float array of (x, y) vertices."""
    from masksmith.data.rasterize import connected_components

    polygons = []
    for part in connected_components(np.asarray(mask, bool)):
        if int(part.sum()) < min_area:
            continue
        polygon = part_polygon(part, tolerance)
        if polygon is not None:
            polygons.append(polygon)
    return polygons
