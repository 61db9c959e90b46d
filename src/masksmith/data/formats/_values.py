"""What the values of index masks look like over a whole folder, gathered while the masks are read (bounded
memory: counts per value, never a mask kept).

- `pixels`: how many pixels hold each value, and the first mask each value was found in (for messages);
- the shape of each value in a few masks spread over the folder (`SHAPE_MASKS`): how much of it lies along
  the boundary between two other values, and in how many pieces. Street-scene sets mark "unlabelled" pixels
  with a value that lines every object's outline in thin strips and fills many tiny gaps: a class with that
  shape is most likely void, and `dataset inspect` says so (masksmith.data.stats).

A pixel of value v lies *between* other values when, within BETWEEN_RADIUS pixels, two different values other
than v are found: a strip separating a car from the road. A value qualifies as void-like when it is thin
(most of its pixels touch another value), mostly between others, and in many pieces per mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SHAPE_MASKS = 8  # masks whose value shapes are measured, spread over the folder
BETWEEN_RADIUS = 3
THIN = 0.5  # boundary sides per pixel above which a value is a strip a few pixels wide, not areas
MIN_PIXELS = 20  # values with fewer pixels in a mask are not measured there


@dataclass
class ValueShape:
    pixels: int = 0  # in the measured masks
    boundary: int = 0  # pixel sides shared with another value
    between: int = 0  # pixels with two other values within BETWEEN_RADIUS
    pieces: int = 0  # 8-connected pieces
    masks: int = 0  # measured masks holding the value

    def to_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class ValueTally:
    """Pixel counts per raw mask value over all masks, where each value was first seen, and value shapes."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    first_seen: dict[int, Path] = field(default_factory=dict)
    shapes: dict[int, ValueShape] = field(default_factory=dict)

    def add(self, values: np.ndarray, path: Path, *, ignore: int | None, measure: bool) -> np.ndarray:
        """Count one mask's values (an (H, W) uint8 array); with `measure`, also their shapes. Returns the
        mask's own histogram."""
        hist = np.bincount(values.ravel(), minlength=256)[:256]
        self.counts += hist
        for v in np.flatnonzero(hist).tolist():
            self.first_seen.setdefault(int(v), path)
        if measure and values.size:
            self._measure(values, hist, ignore)
        return hist

    def present(self, ignore: int | None) -> set[int]:
        return {int(v) for v in np.flatnonzero(self.counts) if v != ignore}

    def _measure(self, values: np.ndarray, hist: np.ndarray, ignore: int | None) -> None:
        sides = _boundary_sides(values)
        for v in np.flatnonzero(hist).tolist():
            if v == ignore or hist[v] < MIN_PIXELS:
                continue
            shape = self.shapes.setdefault(int(v), ValueShape())
            shape.pixels += int(hist[v])
            shape.boundary += int(sides[v])
            shape.masks += 1
            if sides[v] >= THIN * hist[v]:  # a strip: worth the closer look
                between, pieces = _between_and_pieces(values, v)
                shape.between += between
                shape.pieces += pieces

    def info(self) -> dict[int, dict[str, Any]]:
        return {v: s.to_dict() for v, s in sorted(self.shapes.items())}


def _boundary_sides(values: np.ndarray) -> np.ndarray:
    """Per value, the number of pixel sides (4-neighbours) it shares with a different value."""
    out = np.zeros(256, np.int64)
    for a, b in ((values[:, 1:], values[:, :-1]), (values[1:, :], values[:-1, :])):
        differ = a != b
        out += np.bincount(a[differ], minlength=256)[:256]
        out += np.bincount(b[differ], minlength=256)[:256]
    return out


def _between_and_pieces(values: np.ndarray, v: int) -> tuple[int, int]:
    """(pixels of v with two other values within BETWEEN_RADIUS, 8-connected pieces of v)."""
    from scipy import ndimage

    mine = values == v
    size = 2 * BETWEEN_RADIUS + 1
    # the highest and lowest other value near each pixel, v's own pixels standing in as 0 (for the highest)
    # and 255 (for the lowest); (0, 255) is only ever seen where no other value is near
    high = ndimage.maximum_filter(np.where(mine, 0, values).astype(np.uint8), size=size)
    low = ndimage.minimum_filter(np.where(mine, 255, values).astype(np.uint8), size=size)
    between = int(np.count_nonzero(mine & (high != low) & ~((high == 0) & (low == 255))))
    _, pieces = ndimage.label(mine, structure=np.ones((3, 3), bool))
    return between, int(pieces)


def shape_masks(total: int, limit: int = SHAPE_MASKS) -> set[int]:
    """Indices of the masks to measure: up to `limit`, spread evenly over `total`."""
    if total <= limit:
        return set(range(total))
    return set(np.linspace(0, total - 1, limit).round().astype(int).tolist())


def looks_like_void(shape: dict[str, int]) -> bool:
    """Thin, mostly between other values, and in many pieces per mask: how unlabelled strips look."""
    pixels, masks = shape.get("pixels", 0), max(1, shape.get("masks", 0))
    return (pixels > 0 and shape.get("boundary", 0) >= THIN * pixels and shape.get("between", 0) >= 0.5 * pixels
            and shape.get("pieces", 0) >= 5 * masks)
