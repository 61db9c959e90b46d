"""Masks drawn over photos: small pure functions on arrays (as in Roboflow supervision), easy to reuse."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from masksmith.data.schema import IGNORE_INDEX

Color = tuple[int, int, int]


def palette_array(colors: Sequence[Color]) -> np.ndarray:
    """(256, 3) uint8 lookup table: index i -> colors[i], unknown indices grey, ignore (255) cream."""
    lut = np.full((256, 3), 128, dtype=np.uint8)
    lut[: len(colors)] = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    lut[IGNORE_INDEX] = (224, 224, 192)
    return lut


def colorize(mask: np.ndarray, colors: Sequence[Color]) -> np.ndarray:
    """Class-index mask (H, W) to an RGB picture (H, W, 3) in the class colours."""
    return palette_array(colors)[mask]


def overlay(image: np.ndarray, mask: np.ndarray, colors: Sequence[Color], opacity: float = 0.5,
            draw_background: bool = False) -> np.ndarray:
    """Blend class colours over an RGB image. opacity 1.0 paints opaque; background stays the photo unless
    `draw_background`. Returns a new (H, W, 3) uint8 array."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]} but mask is {mask.shape[1]}x{mask.shape[0]}")
    opacity = float(np.clip(opacity, 0.0, 1.0))
    painted = colorize(mask, colors).astype(np.float32)
    where = np.ones(mask.shape, bool) if draw_background else (mask != 0) & (mask != IGNORE_INDEX)
    out = image.astype(np.float32).copy()
    out[where] = (1 - opacity) * out[where] + opacity * painted[where]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def legend(names: Sequence[str], colors: Sequence[Color], width: int) -> np.ndarray:
    """A strip of colour swatches with class names, `width` pixels wide."""
    font = ImageFont.load_default()
    row_h, swatch = 14, 10
    per_row = max(1, width // 120)
    rows = (len(names) + per_row - 1) // per_row
    im = Image.new("RGB", (width, max(rows, 1) * row_h + 4), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    for k, (name, color) in enumerate(zip(names, colors, strict=False)):
        x = (k % per_row) * (width // per_row) + 4
        y = (k // per_row) * row_h + 3
        draw.rectangle([x, y, x + swatch, y + swatch], fill=tuple(color), outline=(0, 0, 0))
        draw.text((x + swatch + 4, y - 1), name, fill=(0, 0, 0), font=font)
    return np.asarray(im)


def grid(pictures: Sequence[np.ndarray], columns: int, cell: int = 256, gap: int = 4) -> np.ndarray:
    """Lay RGB pictures out in a grid of `columns`, each fitted into a cell x cell square (aspect kept)."""
    if not pictures:
        raise ValueError("no pictures to lay out")
    rows = (len(pictures) + columns - 1) // columns
    canvas = np.full((rows * (cell + gap) + gap, columns * (cell + gap) + gap, 3), 255, np.uint8)
    for k, pic in enumerate(pictures):
        h, w = pic.shape[:2]
        scale = cell / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        resized = np.asarray(Image.fromarray(pic).resize((nw, nh), Image.NEAREST))
        y0 = (k // columns) * (cell + gap) + gap + (cell - nh) // 2
        x0 = (k % columns) * (cell + gap) + gap + (cell - nw) // 2
        canvas[y0:y0 + nh, x0:x0 + nw] = resized
    return canvas
