"""Recolour a part of a photo (a car's paint) while keeping its shading, reflections and highlights.

`recolor` is the entry point the fronts call: with a colour it resprays the paint (masksmith.apps.respray:
only the paint inside the mask, grown over the rest of the car when a car mask is given, the paint's mid-tones
reaching the colour asked for, highlights and shadows kept); with `hue_shift` it turns the paint's hue in
CIELAB by that many degrees, keeping each pixel's lightness and chroma. Every pixel that is not paint is
byte-identical to the photo.

The colour conversions the apps share are in masksmith.apps.colorspace.
"""

from __future__ import annotations

import numpy as np

from masksmith.apps.colorspace import check_inputs, parse_color, to_lab, to_rgb
from masksmith.core.errors import MasksmithError


def recolor_targets(colors: list[str] | None, hue_shift: float | None) -> list[tuple[str, tuple[int, int, int] | None]]:
    """What to recolour to, each with the label its files are named by: one (label, RGB) per colour, or
    ("hue+40", None) for a hue turn. Every colour is checked before any photo is read."""
    from masksmith.core.paths import safe_filename

    if not colors and hue_shift is None:
        raise MasksmithError("no colour given.", fix="give `color` '#c0392b' (or a CSS name) or `hue_shift` 40.")
    if colors and hue_shift is not None:
        raise MasksmithError("`color` and `hue_shift` cannot be used together.", fix="give one of them.")
    if not colors:
        return [(f"hue{hue_shift:+g}", None)]
    return [(safe_filename(c.strip().lstrip("#").lower(), "color"), parse_color(c)) for c in colors]


def recolor(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] | str | None = None,
            hue_shift: float | None = None, feather: int = 2, *, lightness: float | None = None,
            car_mask: np.ndarray | None = None, keep: np.ndarray | None = None, grow: bool = True,
            paint_only: bool = True) -> np.ndarray:
    """The photo with the paint under `mask` resprayed to `color` (RGB or any `parse_color` text), or its hue
    turned by `hue_shift` degrees (lightness and chroma kept). `car_mask` (every predicted part of the car) lets
    the paint grow over panels the mask misses (`grow`); `keep`: pixels never changed (the other predicted
    parts); `paint_only=False` changes every pixel of the mask, glass and lights too. `lightness`: None (the
    paint's mid-tones reach the colour) or 0..1 (how far they move towards its luminance; 0 keeps the photo's).
    `feather`: pixels of soft edge. See masksmith.apps.respray. Pixels that are not paint are byte-identical."""
    from masksmith.apps.respray import find_paint, respray

    image, mask = check_inputs(image, mask)
    if (color is None) == (hue_shift is None):
        raise MasksmithError("give either a colour or a hue shift.",
                             fix="give `color` (a name or #rrggbb) or `hue_shift` (degrees).")
    if color is not None:
        return respray(image, mask, color, car_mask=car_mask, keep=keep, grow=grow, lightness=lightness,
                       feather=feather, paint_only=paint_only)
    paint = find_paint(image, mask, car_mask, keep, grow, paint_only, int(feather))
    return turn_hue(image, paint.weight, float(hue_shift))  # type: ignore[arg-type]


def turn_hue(image: np.ndarray, weight: np.ndarray, degrees: float) -> np.ndarray:
    """The photo with the hue of the pixels under `weight` ((H, W) in [0, 1]) turned by `degrees` in CIELAB
    (lightness and chroma kept), blended by the weight; pixels of weight 0 are byte-identical."""
    out = np.asarray(image).copy()
    inside = weight > 0
    if not inside.any():
        return out
    pixels = image[inside]
    lab = to_lab(pixels)
    t = np.deg2rad(degrees)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]], np.float32)
    new = to_rgb(np.column_stack([lab[:, 0], lab[:, 1:] @ rot.T])).astype(np.float32)
    w = weight[inside][:, None]
    out[inside] = np.clip(np.rint(w * new + (1.0 - w) * pixels), 0, 255).astype(np.uint8)
    return out


def before_after(before: np.ndarray, after: np.ndarray, title: str = "", cell: int = 512):
    """A titled before | after picture (masksmith.draw.sheet), both halves fitted to `cell` pixels."""
    from PIL import Image

    from masksmith.draw.overlay import fitted_size
    from masksmith.draw.sheet import sheet

    h, w = fitted_size(before.shape, cell)
    panels = [np.asarray(Image.fromarray(p).resize((w, h), Image.Resampling.LANCZOS)) if p.shape[:2] != (h, w)
              else p for p in (before, after)]
    return sheet([panels], ["before", "after"], title=title, cell=cell)


def write_recolors(image: np.ndarray, masks, targets: list[tuple[str, tuple[int, int, int] | None]], folder,
                   stem: str, name: str, hue_shift: float | None = None, feather: int = 2,
                   lightness: float | None = None, grow: bool = True, paint_only: bool = True) -> list:
    """One photo resprayed to each of `targets` (from `recolor_targets`) into `folder` (an OutputFolder):
    <stem>_<label>.png at the photo's size and <stem>_<label>_before_after.png. `masks`: the chosen parts, the
    car and the parts to keep (`masksmith.apps.respray.ResprayMasks`; without a car mask nothing grows). The
    paint is found once and reused for every colour. Returns the recoloured files."""
    from masksmith.apps.respray import find_paint, respray

    paint = find_paint(image, masks.part, masks.car if grow else None, masks.keep, grow, paint_only, int(feather))
    files = []
    for label, rgb in targets:
        if rgb is None:
            result = turn_hue(image, paint.weight, float(hue_shift or 0.0))
        else:
            result = respray(image, masks.part, rgb, paint=paint, lightness=lightness)
        files.append(folder.save_image(f"{stem}_{label}.png", result))
        picture = before_after(image, result, title=f"{name}: {label}")
        folder.save_image(f"{stem}_{label}_before_after.png", picture.pixels, **picture.save_options())
    return files
