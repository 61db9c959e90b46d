"""Masks drawn over photos: small pure functions on arrays (as in Roboflow supervision), easy to reuse.

Every overlay is drawn the same way, whoever draws it (predict, previews, the evaluation galleries, the data
set preview): the class colour blended over the photo, and along each region's edge a dark line with a solid
line of the colour inside it, so a region reads on dark photos (the bright colour) and on light ones (the dark
line). Outlines lie inside the region: background pixels always keep the photo.

Thin structures (retina vessels, cracks, wires: parts of a region narrower than its two outlines) get no outline,
which would paint them black: they are drawn in their solid class colour instead. Masks shrunk for display keep
their thin structures (a foreground class wins over background inside each shrunk pixel), and the difference
view marks a shrunk pixel wrong when any pixel under it was wrong, a lone mark grown to be seen.
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
    return np.array(colorize_image(mask, colors).convert("RGB"))


def colorize_image(mask: np.ndarray, colors: Sequence[Color]) -> Image.Image:
    """`colorize` as a palette image (what a PNG of it stores: one byte a pixel, 9x faster to encode than RGB);
    `.convert("RGB")` gives the same pixels as `colorize` (Pillow's C lookup, 6x numpy's fancy indexing)."""
    im = Image.fromarray(np.ascontiguousarray(mask, np.uint8), mode="P")
    im.putpalette(palette_array(colors).ravel().tobytes())
    return im


def colorize_layer(mask: np.ndarray, colors: Sequence[Color]) -> np.ndarray:
    """Class-index mask (H, W) to an RGBA layer (H, W, 4): the class colours, and nothing (transparent) on
    background and void pixels, so a layer laid over the photo at any opacity leaves the background alone."""
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[..., :3] = colorize(mask, colors)
    rgba[..., 3] = np.where((mask != 0) & (mask != IGNORE_INDEX), 255, 0)
    return rgba


def outline_width(shape: tuple[int, ...]) -> int:
    """Outline thickness for a picture of this size: 1 pixel up to 400 pixels across, then thicker."""
    return max(1, round(max(shape[:2]) / 400))


def _band(mask: np.ndarray, width: int, edges: np.ndarray | None = None) -> np.ndarray:
    """Pixels within `width` - 1 pixels (in a square: the same in rows, columns and diagonals) of a pixel with a
    4-neighbour of another value; the picture's own border is not a border. `edges`: `_band(mask, 1)`, when the
    caller has it already."""
    near = _edges(mask) if edges is None else edges
    if width > 1 and near.any():  # a square, not 4-neighbour steps: log2(width) numpy operations, not 5 * width
        near = _square_filter(near, 2 * width - 1, np.maximum, edge=False)
    return near


def _edges(mask: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another value."""
    near = np.zeros(mask.shape, bool)
    np.not_equal(mask[1:], mask[:-1], out=near[1:])
    near[:-1] |= near[1:]  # the pixel above a change is at the change too
    across = mask[:, 1:] != mask[:, :-1]
    near[:, 1:] |= across
    near[:, :-1] |= across
    return near


def wide_parts(mask: np.ndarray, radius: int) -> np.ndarray:
    """(H, W) bool: labelled pixels in parts of their region at least 2 * `radius` + 1 pixels wide (the region's
    morphological opening by a square of side 2 * `radius` + 1, so rectangles keep their corners): the core of
    pixels whose square of `radius` around them holds only their value, grown back by that square (it cannot
    leave its own region: every pixel it reaches lies in such a square)."""
    labelled = (mask != 0) & (mask != IGNORE_INDEX)
    side = 2 * radius + 1
    # a pixel's square is all one value when the largest and smallest value in it are both its own
    same = (_square_filter(mask, side, np.maximum, edge=True) == mask) & \
        (_square_filter(mask, side, np.minimum, edge=True) == mask)
    core = labelled & same
    if not core.any():
        return core
    return _square_filter(core, side, np.maximum, edge=False) & labelled


def _square_filter(a: np.ndarray, side: int, op, edge: bool) -> np.ndarray:
    """scipy.ndimage's maximum_filter/minimum_filter (`op` np.maximum or np.minimum) over a square of odd
    `side`, padded with the edge values (`edge`) or zeros, as two 1-D passes in numpy (predict's writers then
    never import scipy, a second of start-up). Each pass takes the extreme over windows doubled in length
    (1, 2, 4 ... pixels), so a window of `side` costs about log2(side) operations, not `side`."""
    r = side // 2
    out = a
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="edge") if edge else np.pad(out, pad)
        moved = np.moveaxis(padded, axis, 0)
        n = out.shape[axis]
        span, acc = 1, moved  # acc[i]: the extreme of moved[i : i + span]
        while 2 * span <= side:
            acc = op(acc[:-span], acc[span:])
            span *= 2
        if span < side:  # two overlapping windows of `span` cover one of `side`
            acc = op(acc[: n], acc[side - span: side - span + n])
        out = np.moveaxis(acc[:n], 0, axis)
    return np.ascontiguousarray(out)


def outline_parts(mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dark line, colour line, thin) of every labelled region: the outermost `width` pixels of each region and
    the `width` pixels inside them, where the region is wide enough to hold both lines on each side and some of
    its fill; `thin`: the labelled pixels of narrower parts, which get no outline. Background (0) and void
    (255) pixels are never part of either."""
    labelled = (mask != 0) & (mask != IGNORE_INDEX)
    wide = wide_parts(mask, 2 * width)
    edges = _edges(mask)
    outer = _band(mask, width, edges) & wide
    inner = _band(mask, 2 * width, edges) & wide & ~outer
    return outer, inner, labelled & ~wide


def region_outline(mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(dark line, colour line) of every labelled region wide enough for them (`outline_parts`)."""
    dark, line, _ = outline_parts(mask, width)
    return dark, line


def overlay(image: np.ndarray, mask: np.ndarray, colors: Sequence[Color], opacity: float = 0.5,
            draw_background: bool = False, outline: bool = True) -> np.ndarray:
    """Blend class colours over an RGB image, with outlines (see the module docstring). opacity 1.0 paints
    opaque; background stays the photo unless `draw_background`. Returns a new (H, W, 3) uint8 array."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]} but mask is {mask.shape[1]}x{mask.shape[0]}")
    opacity = float(np.clip(opacity, 0.0, 1.0))
    # in Pillow's C loops: the numpy float blend of a 12-megapixel photo took 1.5 s, this about 0.1 s
    photo = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    painted = colorize_image(mask, colors).convert("RGB")
    labelled = (mask != 0) & (mask != IGNORE_INDEX)
    where = None if draw_background else Image.fromarray(labelled.view(np.uint8) * np.uint8(255))
    blended = Image.blend(photo, painted, opacity)
    out = blended if where is None else Image.composite(blended, photo, where)
    if outline:
        dark, line, thin = outline_parts(mask, outline_width(mask.shape))
        # thin structures in their solid colour, as outlines are
        out.paste(painted, mask=Image.fromarray((line | thin).view(np.uint8) * np.uint8(255)))
        out.paste(DARK, mask=Image.fromarray(dark.view(np.uint8) * np.uint8(255)))
    return np.array(out)


def grey(image: np.ndarray, strength: float = 0.55) -> np.ndarray:
    """The photo in grey and lightened towards mid-grey, so marks drawn on it stand out."""
    lum = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    lum = strength * lum + (1 - strength) * 150.0
    return np.repeat(np.clip(lum + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def difference(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray,
               wrong: np.ndarray | None = None) -> np.ndarray:
    """The photo in grey with every wrongly labelled pixel in red (outlined dark where the marks are wide enough);
    void pixels do not count. `wrong`: the marks to draw instead (`wrong_marks` of the full-size masks, for a
    shrunk picture)."""
    if truth.shape != prediction.shape or image.shape[:2] != truth.shape:
        raise ValueError(f"image {image.shape[:2]}, truth {truth.shape} and prediction {prediction.shape} differ")
    out = grey(image)
    wrong = wrong_pixels(truth, prediction) if wrong is None else wrong
    out[wrong] = WRONG
    dark, _ = region_outline(wrong.astype(np.uint8), outline_width(wrong.shape))
    out[dark] = DARK
    return out


def wrong_marks(truth: np.ndarray, prediction: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) bool: the wrong pixels of full-size masks as marks on a picture of `size`: a shrunk pixel is marked
    when any pixel under it is wrong, and marks narrower than 3 pixels are grown by one so they show."""
    wrong = wrong_pixels(truth, prediction)
    if wrong.shape == tuple(size):
        return wrong
    h, w = size
    shrunk = np.asarray(Image.fromarray(wrong.astype(np.uint8) * 255).resize((w, h), Image.BOX)) > 0
    if not shrunk.any():
        return shrunk
    from scipy import ndimage

    thin = shrunk & ~wide_parts(shrunk.astype(np.uint8), 1)
    return shrunk | ndimage.binary_dilation(thin)


def wrong_pixels(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """(H, W) bool: labelled differently from the truth (void truth pixels are never wrong)."""
    return (truth != prediction) & (truth != IGNORE_INDEX)


def resize_pair(image: np.ndarray, masks: Sequence[np.ndarray], size: tuple[int, int]
                ) -> tuple[np.ndarray, list[np.ndarray]]:
    """An image (smoothly) and its masks resized to (h, w) for display: masks by nearest neighbour, keeping
    their thin structures when they shrink (`shrink_labels`)."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image, list(masks)
    im = np.asarray(Image.fromarray(image[..., :3]).resize((w, h), Image.BILINEAR, reducing_gap=2.0))
    return im, [shrink_labels(m, (h, w)) for m in masks]


def shrink_labels(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A class-index mask resized to (h, w) by nearest neighbour, except that where it shrinks, a shrunk pixel
    that nearest neighbour leaves as background takes a class found under it (the largest value, void aside):
    a 1-pixel vessel stays a line instead of breaking into dashes."""
    h, w = size
    nearest = np.asarray(Image.fromarray(mask).resize((w, h), Image.NEAREST))
    if h >= mask.shape[0] and w >= mask.shape[1]:
        return nearest
    labelled = np.where((mask != 0) & (mask != IGNORE_INDEX), mask, 0).astype(np.uint8)
    # the largest class under each shrunk pixel: a max filter as wide as one shrunk pixel, sampled at its centre
    from scipy import ndimage

    span = (max(1, -(-mask.shape[0] // h)), max(1, -(-mask.shape[1] // w)))
    under = np.asarray(Image.fromarray(ndimage.maximum_filter(labelled, size=span)).resize((w, h), Image.NEAREST))
    return np.where((nearest == 0) & (under != 0), under, nearest)


def fitted_size(shape: tuple[int, ...], cell: int) -> tuple[int, int]:
    """(h, w) of a picture of this shape scaled so its longer side is `cell` (aspect kept)."""
    h, w = shape[:2]
    scale = cell / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))
