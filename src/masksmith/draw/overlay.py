"""Masks drawn over photos: small pure functions on arrays (as in Roboflow supervision), easy to reuse.

Every overlay is drawn the same way, whoever draws it (predict, previews, the evaluation galleries, the data
set preview): the class colour blended over the photo, and along each region's edge a dark line with a solid
line of the colour inside it, so a region reads on dark photos (the bright colour) and on light ones (the dark
line). Outlines lie inside the region: background pixels always keep the photo.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from masksmith.core.labels import IGNORE_INDEX, VOID_COLOR

Color = tuple[int, int, int]
DARK: Color = (20, 20, 20)  # outlines
WRONG: Color = (255, 40, 40)  # wrong pixels in the difference view


def palette_array(colors: Sequence[Color]) -> np.ndarray:
    """(256, 3) uint8 lookup table: index i -> colors[i], unknown indices grey, ignore (255) cream."""
    lut = np.full((256, 3), 128, dtype=np.uint8)
    lut[: len(colors)] = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    lut[IGNORE_INDEX] = VOID_COLOR
    return lut


def colorize(mask: np.ndarray, colors: Sequence[Color]) -> np.ndarray:
    """Class-index mask (H, W) to an RGB picture (H, W, 3) in the class colours."""
    return palette_array(colors)[mask]


def outline_width(shape: tuple[int, ...]) -> int:
    """Outline thickness for a picture of this size: 1 pixel up to 400 pixels across, then thicker."""
    return max(1, round(max(shape[:2]) / 400))


def _band(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels within `width` (4-neighbour) steps of a pixel with another value; the picture's own border is
    not a border."""
    padded = np.pad(mask, 1, mode="edge")
    near = np.zeros(mask.shape, bool)
    for shifted in (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]):
        near |= shifted != mask
    if width > 1 and near.any():
        near = dilate(near, width - 1)
    return near


def dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """`mask` grown by `steps` 4-neighbour steps (scipy.ndimage.binary_dilation with its default cross and
    `iterations=steps`, in numpy: predict's writers then never import scipy, a second of start-up)."""
    out = mask
    for _ in range(steps):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def region_outline(mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(dark line, colour line) of every labelled region: the outermost `width` pixels of each region, and
    the `width` pixels inside them. Background (0) and void (255) pixels are never part of an outline."""
    labelled = (mask != 0) & (mask != IGNORE_INDEX)
    outer = _band(mask, width) & labelled
    inner = _band(mask, 2 * width) & labelled & ~outer
    return outer, inner


def overlay(image: np.ndarray, mask: np.ndarray, colors: Sequence[Color], opacity: float = 0.5,
            draw_background: bool = False, outline: bool = True) -> np.ndarray:
    """Blend class colours over an RGB image, with outlines (see the module docstring). opacity 1.0 paints
    opaque; background stays the photo unless `draw_background`. Returns a new (H, W, 3) uint8 array."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]} but mask is {mask.shape[1]}x{mask.shape[0]}")
    opacity = float(np.clip(opacity, 0.0, 1.0))
    painted = colorize(mask, colors)
    where = np.ones(mask.shape, bool) if draw_background else (mask != 0) & (mask != IGNORE_INDEX)
    out = image[..., :3].astype(np.float32).copy()
    out[where] = (1 - opacity) * out[where] + opacity * painted[where].astype(np.float32)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if outline:
        dark, line = region_outline(mask, outline_width(mask.shape))
        out[line] = painted[line]
        out[dark] = DARK
    return out


def grey(image: np.ndarray, strength: float = 0.55) -> np.ndarray:
    """The photo in grey and lightened towards mid-grey, so marks drawn on it stand out."""
    lum = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    lum = strength * lum + (1 - strength) * 150.0
    return np.repeat(np.clip(lum + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def difference(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """The photo in grey with every wrongly labelled pixel in red (outlined dark); void pixels do not count."""
    if truth.shape != prediction.shape or image.shape[:2] != truth.shape:
        raise ValueError(f"image {image.shape[:2]}, truth {truth.shape} and prediction {prediction.shape} differ")
    out = grey(image)
    wrong = wrong_pixels(truth, prediction)
    out[wrong] = WRONG
    dark, _ = region_outline(wrong.astype(np.uint8), outline_width(wrong.shape))
    out[dark] = DARK
    return out


def wrong_pixels(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """(H, W) bool: labelled differently from the truth (void truth pixels are never wrong)."""
    return (truth != prediction) & (truth != IGNORE_INDEX)


def resize_pair(image: np.ndarray, masks: Sequence[np.ndarray], size: tuple[int, int]
                ) -> tuple[np.ndarray, list[np.ndarray]]:
    """An image (smoothly) and its masks (nearest neighbour) resized to (h, w) for display."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image, list(masks)
    im = np.asarray(Image.fromarray(image[..., :3]).resize((w, h), Image.BILINEAR, reducing_gap=2.0))
    return im, [np.asarray(Image.fromarray(m).resize((w, h), Image.NEAREST)) for m in masks]


def fitted_size(shape: tuple[int, ...], cell: int) -> tuple[int, int]:
    """(h, w) of a picture of this shape scaled so its longer side is `cell` (aspect kept)."""
    h, w = shape[:2]
    scale = cell / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))
