"""Try new wheels: paste a sprite (a PNG with alpha, e.g. a rim) onto each detected region.

For each region (each instance of an instance model, or each connected region of a semantic class), the sprite
is fitted to the region: stretched to its bounding box (`fit="box"`), or to the ellipse with the region's own
second moments (`fit="ellipse"`: the sprite's width along the major axis, its height along the minor one,
turned with it), which follows a wheel seen at an angle. It is composited through its alpha and the region's
mask together, so nothing outside the predicted mask changes: the photo's outline of the tyre stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from masksmith.core.errors import MasksmithError

FITS = ("box", "ellipse")


def regions(mask: np.ndarray, min_pixels: int = 64) -> list[np.ndarray]:
    """The 8-connected regions of a bool mask with at least `min_pixels` pixels, largest first (one wheel
    each, when a semantic model paints all wheels as one class)."""
    from masksmith.data.rasterize import connected_components

    return [part for part in connected_components(np.asarray(mask, bool)) if int(part.sum()) >= min_pixels]


def check_sprite(sprite: np.ndarray, source: str | None = None) -> np.ndarray:
    """The sprite as (h, w, 4) uint8 RGBA; MasksmithError when it has no alpha channel or no visible pixel."""
    sprite = np.asarray(sprite)
    if sprite.ndim != 3 or sprite.shape[2] != 4 or sprite.dtype != np.uint8:
        shape = "x".join(map(str, sprite.shape))
        raise MasksmithError(f"the sprite is not an RGBA picture with an alpha channel (got {sprite.dtype} {shape}).",
                             path=source, fix="save it as a PNG with transparency around the part to paste.")
    if not (sprite[..., 3] > 0).any():
        raise MasksmithError("the sprite is fully transparent.", path=source, fix="use a sprite with visible pixels.")
    return sprite


def read_sprite(path: str | Path | None) -> np.ndarray:
    """The sprite in a PNG with transparency (RGBA), or the built-in rim when `path` is None."""
    from masksmith.core.images import open_image

    if path is None:
        return demo_rim()
    im = open_image(path)
    if not (im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)):
        raise MasksmithError(f"the sprite has no alpha channel (mode {im.mode}).", path=path,
                             fix="save it as a PNG with transparency around the part to paste.")
    return check_sprite(np.asarray(im.convert("RGBA")), str(path))


def check_fit(fit: str) -> str:
    if fit not in FITS:
        raise MasksmithError(f"unknown fit {fit!r}.", fix=f"use one of: {', '.join(FITS)}.")
    return fit


def ellipse_of(mask: np.ndarray) -> tuple[float, float, float, float, float]:
    """(cx, cy, major, minor, angle) of the ellipse with the region's second moments: centre in pixel
    coordinates (x right, y down, pixel centres at +0.5), full axis lengths, and the major axis's angle in
    radians from the x axis (towards +y)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise MasksmithError("the region is empty.")
    x = xs + 0.5
    y = ys + 0.5
    cx, cy = float(x.mean()), float(y.mean())
    cov = np.cov(np.vstack([x - cx, y - cy])) if len(xs) > 1 else np.zeros((2, 2))
    cov = cov + np.eye(2) / 12.0  # each pixel is a unit square, not a point
    values, vectors = np.linalg.eigh(cov)
    major_vec = vectors[:, 1]
    return (cx, cy, 4.0 * float(np.sqrt(values[1])), 4.0 * float(np.sqrt(values[0])),
            float(np.arctan2(major_vec[1], major_vec[0])))


def _fitted_sprite(sprite: np.ndarray, mask: np.ndarray, fit: str) -> tuple[np.ndarray, int, int]:
    """(RGBA float picture, x0, y0): the sprite drawn over the region's box."""
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    w, h = x1 - x0, y1 - y0
    picture = Image.fromarray(_premultiplied(sprite), "RGBA")
    if fit == "box":
        out = picture.resize((w, h), Image.Resampling.LANCZOS)
    else:
        cx, cy, major, minor, angle = ellipse_of(mask)
        sh, sw = sprite.shape[:2]
        c, s = np.cos(angle), np.sin(angle)
        # output pixel (x, y) of the box -> offset from the centre -> (u, v) along the axes -> sprite pixel
        ax, bx = c * sw / max(major, 1e-6), s * sw / max(major, 1e-6)
        ay, by = -s * sh / max(minor, 1e-6), c * sh / max(minor, 1e-6)
        ox, oy = x0 + 0.5 - cx, y0 + 0.5 - cy
        data = (ax, bx, ax * ox + bx * oy + sw / 2 - 0.5, ay, by, ay * ox + by * oy + sh / 2 - 0.5)
        out = picture.transform((w, h), Image.Transform.AFFINE, data, Image.Resampling.BICUBIC)
    return np.asarray(out, np.float32), x0, y0


def _premultiplied(sprite: np.ndarray) -> np.ndarray:
    """Colour times alpha, so resampling never bleeds the colour of transparent pixels into the edge."""
    rgba = sprite.astype(np.float32)
    rgba[..., :3] *= rgba[..., 3:4] / 255.0
    return np.clip(np.rint(rgba), 0, 255).astype(np.uint8)


def paste(image: np.ndarray, mask: np.ndarray, sprite: np.ndarray, fit: str = "box") -> np.ndarray:
    """`paste_all` for one region."""
    return paste_all(image, [mask], sprite, fit)


def paste_all(image: np.ndarray, masks: Sequence[np.ndarray], sprite: np.ndarray, fit: str = "box") -> np.ndarray:
    """The photo with one copy of `sprite` (h, w, 4 RGBA) fitted to each mask and composited inside it only;
    pixels outside every mask are byte-identical."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise MasksmithError(f"expected an RGB image (H, W, 3) of uint8, got {image.dtype} {image.shape}.")
    check_fit(fit)
    sprite = check_sprite(sprite)
    out = image.copy()
    for mask in masks:
        mask = np.asarray(mask, bool)
        if mask.shape != image.shape[:2]:
            raise MasksmithError(f"a mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                                 f"{image.shape[1]}x{image.shape[0]}.", fix="pass masks of the image's size.")
        if not mask.any():
            continue
        layer, x0, y0 = _fitted_sprite(sprite, mask, fit)
        h, w = layer.shape[:2]
        inside = mask[y0:y0 + h, x0:x0 + w]
        alpha = layer[..., 3:4] / 255.0 * inside[..., None]
        crop = out[y0:y0 + h, x0:x0 + w].astype(np.float32)
        blended = layer[..., :3] * inside[..., None] + crop * (1.0 - alpha)  # premultiplied "over"
        result = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        region = out[y0:y0 + h, x0:x0 + w]
        region[inside] = result[inside]
    return out


def demo_rim(size: int = 256, spokes: int = 5) -> np.ndarray:
    """A silver five-spoke rim with a dark tyre-side lip, drawn by code (RGBA, transparent outside the circle
    and between the spokes' dark gaps): the sprite the demo and the tests paste."""
    scale = 4  # drawn large, then shrunk: smooth edges
    n = size * scale
    im = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    c = n / 2

    def disc(r: float, fill) -> None:
        d.ellipse([c - r, c - r, c + r, c + r], fill=fill)

    disc(0.50 * n, (38, 38, 42, 255))  # lip
    disc(0.46 * n, (196, 200, 206, 255))  # rim barrel
    disc(0.42 * n, (24, 24, 28, 255))  # dark gaps behind the spokes
    for k in range(spokes):
        t = 2 * np.pi * k / spokes - np.pi / 2
        for dt, shade in ((0.0, (214, 218, 224, 255)), (0.035, (170, 174, 182, 255))):
            a, b = t - 0.16 + dt, t + 0.16 - dt
            pts = [(c + 0.1 * n * np.cos(t - 0.6), c + 0.1 * n * np.sin(t - 0.6)),
                   (c + 0.42 * n * np.cos(a), c + 0.42 * n * np.sin(a)),
                   (c + 0.42 * n * np.cos(b), c + 0.42 * n * np.sin(b)),
                   (c + 0.1 * n * np.cos(t + 0.6), c + 0.1 * n * np.sin(t + 0.6))]
            d.polygon(pts, fill=shade)
    disc(0.13 * n, (150, 154, 160, 255))  # hub
    disc(0.09 * n, (205, 208, 214, 255))
    for k in range(spokes):  # wheel nuts
        t = 2 * np.pi * (k + 0.5) / spokes - np.pi / 2
        x, y = c + 0.065 * n * np.cos(t), c + 0.065 * n * np.sin(t)
        d.ellipse([x - 0.012 * n, y - 0.012 * n, x + 0.012 * n, y + 0.012 * n], fill=(90, 92, 98, 255))
    return np.asarray(im.resize((size, size), Image.Resampling.LANCZOS))


def write_pasted(image: np.ndarray, masks: Sequence[np.ndarray], sprite: np.ndarray, fit: str, folder, stem: str,
                 name: str) -> Path:
    """The sprite pasted onto each mask of one photo, into `folder` (an OutputFolder): <stem>_pasted.png and
    <stem>_before_after.png. Returns the pasted photo's file."""
    from masksmith.apps.recolor import before_after

    result = paste_all(image, masks, sprite, fit)
    file = folder.save_image(f"{stem}_pasted.png", result)
    sheet = before_after(image, result, title=f"{name}: {len(masks)} region(s)")
    folder.save_image(f"{stem}_before_after.png", sheet.pixels, **sheet.save_options())
    return file
