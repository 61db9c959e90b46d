"""Try new wheels: paste a sprite (a PNG with alpha, e.g. a rim) onto each detected region.

`paste_all` is the plain paste: for each region (each instance of an instance model, or each connected region
of a semantic class) the sprite is fitted to the region's ellipse (`fit="ellipse"`, the default: the ellipse
with the region's own second moments, the sprite's width along the major axis and its height along the minor
one, turned with it, which follows a wheel seen at an angle) or stretched to its bounding box (`fit="box"`),
and composited through its alpha and the region's mask together, so nothing outside the mask changes.

`new_wheels` puts a rim on each wheel so that it sits on the car: the rim fills the inside of the tyre only
(its ellipse scaled to the rim's share of the wheel, measured from where the dark tyre ends, or given), the
photo's light falls on it (the low-frequency luminance of the old wheel, relative to its mean, multiplied into
the sprite in linear light), and a wheel that is mostly hidden (its region is far from the ellipse of a whole
wheel: cut by the photo's edge, behind a bumper, seen edge-on) is left as it is, with a note saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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


def _fitted_sprite(sprite: np.ndarray, mask: np.ndarray, fit: str, scale: float = 1.0,
                   ellipse: tuple[float, float, float, float, float] | None = None) -> tuple[np.ndarray, int, int]:
    """(RGBA float picture, x0, y0): the sprite drawn over the region's box, fitted to the region's box or
    ellipse (or the `ellipse` given) shrunk by `scale` about its centre."""
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    w, h = x1 - x0, y1 - y0
    picture = Image.fromarray(_premultiplied(sprite), "RGBA")
    if fit == "box" and scale == 1.0 and ellipse is None:
        out = picture.resize((w, h), Image.Resampling.LANCZOS)
    else:
        if fit == "box" and ellipse is None:
            cx, cy, major, minor, angle = (x0 + x1) / 2, (y0 + y1) / 2, w * scale, h * scale, 0.0
        elif fit == "box":  # the ellipse's box, upright
            cx, cy, major, minor, angle = ellipse
            c, s = np.cos(angle), np.sin(angle)
            major, minor, angle = (2 * scale * np.hypot(major / 2 * c, minor / 2 * s),
                                   2 * scale * np.hypot(major / 2 * s, minor / 2 * c), 0.0)
        else:
            cx, cy, major, minor, angle = ellipse if ellipse is not None else ellipse_of(mask)
            major, minor = major * scale, minor * scale
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


def paste(image: np.ndarray, mask: np.ndarray, sprite: np.ndarray, fit: str = "ellipse") -> np.ndarray:
    """`paste_all` for one region."""
    return paste_all(image, [mask], sprite, fit)


def _check(image: np.ndarray, masks: Sequence[np.ndarray], sprite: np.ndarray, fit: str
           ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise MasksmithError(f"expected an RGB image (H, W, 3) of uint8, got {image.dtype} {image.shape}.")
    check_fit(fit)
    sprite = check_sprite(sprite)
    checked = []
    for mask in masks:
        mask = np.asarray(mask, bool)
        if mask.shape != image.shape[:2]:
            raise MasksmithError(f"a mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                                 f"{image.shape[1]}x{image.shape[0]}.", fix="pass masks of the image's size.")
        checked.append(mask)
    return image, checked, sprite


def _composite(out: np.ndarray, layer: np.ndarray, x0: int, y0: int, mask: np.ndarray) -> None:
    """Premultiplied RGBA `layer` "over" `out` at (x0, y0), inside `mask` only (in place)."""
    h, w = layer.shape[:2]
    inside = mask[y0:y0 + h, x0:x0 + w]
    alpha = layer[..., 3:4] / 255.0 * inside[..., None]
    crop = out[y0:y0 + h, x0:x0 + w].astype(np.float32)
    blended = layer[..., :3] * inside[..., None] + crop * (1.0 - alpha)
    result = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    region = out[y0:y0 + h, x0:x0 + w]
    region[inside] = result[inside]


def paste_all(image: np.ndarray, masks: Sequence[np.ndarray], sprite: np.ndarray, fit: str = "ellipse"
              ) -> np.ndarray:
    """The photo with one copy of `sprite` (h, w, 4 RGBA) fitted to each mask and composited inside it only;
    pixels outside every mask are byte-identical."""
    image, masks, sprite = _check(image, masks, sprite, fit)
    out = image.copy()
    for mask in masks:
        if mask.any():
            layer, x0, y0 = _fitted_sprite(sprite, mask, fit)
            _composite(out, layer, x0, y0, mask)
    return out


@dataclass
class WheelFit:
    """Where a rim went: the ellipse it was fitted to (centre, full axes, angle in radians: the photo's rim,
    or the wheel's), the rim's share of the wheel's size, and how well the region matched that ellipse."""
    cx: float
    cy: float
    major: float
    minor: float
    angle: float
    rim_scale: float
    match: float  # IoU of the rim's (or the wheel's) region with its ellipse: 1 = whole, unhidden


@dataclass
class Wheels:
    """`new_wheels`' result: the photo with its new wheels, where each went, and a note per wheel left alone."""
    image: np.ndarray
    placed: list[WheelFit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


RIM_SCALE = 0.68  # the rim's diameter over the tyre's, when the photo does not show it (17" rims: 0.64-0.71)
# a rim found in the photo scores at least this: how well it matches its ellipse (spokes and perspective: less than
# 1) times how much of that ellipse lies inside the wheel's region (a whole rim has the tyre all round it); a rim
# a quarter hidden scores ~0.85, half hidden ~0.76
RIM_MATCH = 0.8


def _window(shape: tuple[int, int], ellipse) -> tuple[slice, slice]:
    """The rows and columns of the ellipse's bounding box, within the image."""
    cx, cy, major, minor, angle = ellipse
    c, s = np.cos(angle), np.sin(angle)
    hx = np.hypot(major / 2 * c, minor / 2 * s) + 1
    hy = np.hypot(major / 2 * s, minor / 2 * c) + 1
    return (slice(max(0, int(cy - hy)), min(shape[0], int(np.ceil(cy + hy)))),
            slice(max(0, int(cx - hx)), min(shape[1], int(np.ceil(cx + hx)))))


def _axes_coordinates(window: tuple[slice, slice], ellipse) -> tuple[np.ndarray, np.ndarray]:
    """(u, v): each pixel of the window along the ellipse's major and minor axes, from its centre."""
    cx, cy, _, _, angle = ellipse
    yy, xx = np.mgrid[window[0], window[1]]
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    c, s = np.cos(angle), np.sin(angle)
    return dx * c + dy * s, -dx * s + dy * c


def ellipse_match(mask: np.ndarray, ellipse: tuple[float, float, float, float, float]) -> float:
    """Intersection over union of a region and an ellipse (cx, cy, major, minor, angle): 1 for a whole wheel,
    about 0.88 when a quarter of it is hidden behind a straight edge, 0.82 when half is."""
    _, _, major, minor, _ = ellipse
    window = _window(mask.shape, ellipse)
    u, v = _axes_coordinates(window, ellipse)
    inside = (u / max(major / 2, 1e-6)) ** 2 + (v / max(minor / 2, 1e-6)) ** 2 <= 1.0
    both = int((inside & mask[window]).sum())
    union = max(np.pi / 4 * major * minor, float(inside.sum())) + int(mask.sum()) - both  # beyond the photo too
    return float(both / union) if union else 0.0


def find_rim(image: np.ndarray, mask: np.ndarray, min_match: float = 0.8
             ) -> tuple[tuple[float, float, float, float, float], float] | None:
    """(ellipse, score) of the rim inside a wheel's region: the light part (Otsu's threshold on lightness, when
    the wheel holds a dark tyre and a light rim at least 20 levels apart), its spokes' gaps closed and filled,
    the largest piece, and the ellipse of its moments, which follows the wheel's perspective even when the
    wheel arch hides the top of the tyre. None when there is no such rim (a dark rim, a blurred wheel), or
    when what was found is not a whole rim (its score, the IoU with its ellipse times the share of the ellipse
    inside the wheel's region, is under `min_match`; or it is not 15..85 % of the wheel)."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    from masksmith.apps.colorspace import to_lab

    ys, xs = np.nonzero(mask)
    window = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    inside = mask[window]
    lightness = np.zeros(inside.shape, np.float32)
    lightness[inside] = to_lab(image[window][inside])[:, 0]
    values = lightness[inside]
    if len(values) < 64 or np.ptp(values) < 20:
        return None
    level = threshold_otsu(values)
    if values[values > level].mean() - values[values <= level].mean() < 20:
        return None
    light = inside & (lightness > level)
    radius = max(1, int(round(0.04 * max(inside.shape))))
    pad = radius + 1
    light = ndimage.binary_closing(np.pad(light, pad), structure=_disc(radius))[pad:-pad, pad:-pad] & inside
    light = ndimage.binary_fill_holes(light)
    pieces, n = ndimage.label(light)
    if n == 0:
        return None
    rim = pieces == (1 + int(np.argmax(np.bincount(pieces.ravel())[1:])))
    share = rim.sum() / inside.sum()
    if not 0.15 <= share <= 0.85:
        return None
    full = np.zeros(mask.shape, bool)
    full[window] = rim
    ellipse = ellipse_of(full)
    match = ellipse_match(full, ellipse)
    # a whole rim lies inside its wheel, the tyre all round; one cut by a bumper or the photo's edge pokes out
    window, pixels = _ellipse_pixels(mask.shape, ellipse)
    inside = float(mask[window][pixels].sum()) / max(np.pi / 4 * ellipse[2] * ellipse[3], 1.0)
    score = match * min(inside, 1.0)
    return (ellipse, score) if score >= min_match else None


def _ellipse_pixels(shape: tuple[int, int], ellipse) -> tuple[tuple[slice, slice], np.ndarray]:
    """(window, (h, w) bool): the ellipse's pixels within its window of the image."""
    window = _window(shape, ellipse)
    u, v = _axes_coordinates(window, ellipse)
    return window, (u / max(ellipse[2] / 2, 1e-6)) ** 2 + (v / max(ellipse[3] / 2, 1e-6)) ** 2 <= 1.0


def _disc(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return xx * xx + yy * yy <= radius * radius + radius


def _shaded(layer: np.ndarray, image: np.ndarray, x0: int, y0: int, region: np.ndarray, strength: float
            ) -> np.ndarray:
    """The fitted sprite (premultiplied RGBA float) with the photo's low-frequency light multiplied in: the
    luminance of the old wheel under it, blurred, over its mean under the sprite (so a wheel in the arch's
    shadow at the top and lit at the bottom stays so), in linear light, clipped to 0.35..1.6."""
    from scipy import ndimage

    from masksmith.apps.colorspace import ENCODE, LINEAR, LINEAR_STEPS

    h, w = layer.shape[:2]
    photo = LINEAR[image[y0:y0 + h, x0:x0 + w]] @ np.array([0.212671, 0.715160, 0.072169], np.float32)
    cover = (layer[..., 3] > 0) & region[y0:y0 + h, x0:x0 + w]
    if cover.sum() < 16:
        return layer
    sigma = max(1.0, 0.12 * min(h, w))
    weight = ndimage.gaussian_filter(cover.astype(np.float32), sigma)
    light = ndimage.gaussian_filter(np.where(cover, photo, 0.0).astype(np.float32), sigma) / np.maximum(weight, 1e-6)
    ratio = np.clip(light / max(float(photo[cover].mean()), 1e-4), 0.35, 1.6) ** strength
    alpha = layer[..., 3:4] / 255.0
    colour = np.where(alpha > 0, layer[..., :3] / np.maximum(alpha, 1e-6), 0.0)
    linear = LINEAR[np.clip(np.rint(colour), 0, 255).astype(np.uint8)] * ratio[..., None]
    encoded = ENCODE[(np.clip(linear, 0.0, 1.0) * LINEAR_STEPS + 0.5).astype(np.int32)].astype(np.float32)
    out = layer.copy()
    out[..., :3] = encoded * alpha
    return out


def new_wheels(image: np.ndarray, masks: Sequence[np.ndarray], sprite: np.ndarray | None = None, *,
               fit: str = "ellipse", rim_scale: float | None = None, shade: float = 1.0, min_match: float = 0.85,
               min_pixels: int = 64) -> Wheels:
    """New rims on the wheels (`masks`: one per wheel, e.g. `regions(wheel_mask)`), sitting on the car.

    `sprite`: RGBA rim (default `demo_rim()`); `fit`: "ellipse" (perspective) or "box"; `rim_scale`: None finds
    the photo's rim and puts the new one exactly over it (`find_rim`), or, where it finds none, over RIM_SCALE
    of the wheel's ellipse; a number puts it over that share of the wheel's ellipse. `shade`: how much of the
    photo's light falls on the rim (0 none, 1 all). Wheels whose rim cannot be found (or matches its ellipse less
    than RIM_MATCH) and whose region matches its ellipse less than `min_match` (see `ellipse_match`) are mostly
    hidden and left alone, each with a note
    in the result, as are regions under `min_pixels`. Pixels outside the placed rims are byte-identical."""
    image, masks, sprite = _check(image, masks, demo_rim() if sprite is None else sprite, fit)
    if rim_scale is not None and not 0.1 <= rim_scale <= 1.0:
        raise MasksmithError(f"rim scale {rim_scale} is outside 0.1..1.", fix="give the rim's share of the wheel's "
                             "diameter, e.g. 0.68, or none to find the rim in the photo.")
    if not 0.0 <= shade <= 1.0:
        raise MasksmithError(f"shade {shade} is outside 0..1.", fix="0 pastes the rim as drawn, 1 lights it as the "
                             "photo's wheel.")
    out = image.copy()
    result = Wheels(out)
    for number, mask in enumerate(masks, start=1):
        size = int(mask.sum())
        if size == 0:
            continue
        wheel = ellipse_of(mask)
        where = f"wheel {number} (at x={wheel[0]:.0f}, y={wheel[1]:.0f})"
        if size < min_pixels:
            result.notes.append(f"{where}: skipped, only {size} pixels (fewer than {min_pixels}).")
            continue
        rim = find_rim(image, mask, RIM_MATCH * min_match / 0.85) if rim_scale is None else None
        if rim is not None:
            ellipse, match, scale = rim[0], rim[1], 1.0
            share = float(np.sqrt(ellipse[2] * ellipse[3] / max(wheel[2] * wheel[3], 1e-6)))
        else:
            ellipse, match = wheel, ellipse_match(mask, wheel)
            scale = share = RIM_SCALE if rim_scale is None else float(rim_scale)
            if match < min_match:
                result.notes.append(f"{where}: skipped, mostly hidden: no whole rim in it, and its region matches a "
                                    f"whole wheel's ellipse at {100 * match:.0f} % (below {100 * min_match:.0f} %: "
                                    "cut by the photo's edge or something in front of it).")
                continue
        layer, x0, y0 = _fitted_sprite(sprite, mask, fit, scale, ellipse)
        if shade > 0:
            layer = _shaded(layer, image, x0, y0, mask, shade)
        _composite(out, layer, x0, y0, mask)
        result.placed.append(WheelFit(*ellipse[:5], share, match))
    return result


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


def write_pasted(image: np.ndarray, masks: Sequence[np.ndarray], sprite: np.ndarray, folder, stem: str, name: str,
                 *, plain: bool = False, **options) -> tuple[Path, list[str]]:
    """New wheels (`new_wheels`, with `options`) or, with `plain`, the sprite pasted over each whole region
    (`paste_all`), into `folder` (an OutputFolder): <stem>_pasted.png and <stem>_before_after.png. Returns the
    pasted photo's file and the notes on wheels left alone."""
    from masksmith.apps.recolor import before_after

    if plain:
        result, notes, placed = paste_all(image, masks, sprite, options.get("fit", "ellipse")), [], len(masks)
    else:
        wheels = new_wheels(image, masks, sprite, **options)
        result, notes, placed = wheels.image, wheels.notes, len(wheels.placed)
    file = folder.save_image(f"{stem}_pasted.png", result)
    sheet = before_after(image, result, title=f"{name}: {placed} of {len(masks)} region(s)")
    folder.save_image(f"{stem}_before_after.png", sheet.pixels, **sheet.save_options())
    return file, notes
