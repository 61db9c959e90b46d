"""The recolour that `masksmith recolor` ran before issue 28 (main at 8194197), kept as the reference the
benchmarks measure the respray against (benchmarks/bench_respray.py) and the formulas the naive whole-photo
version of benchmarks/bench_apps.py repeats. Not part of the package: the respray replaced it."""

from __future__ import annotations

import numpy as np

from masksmith.apps.colorspace import check_inputs, feather_weights, parse_color, to_lab, to_rgb
from masksmith.core.errors import MasksmithError


def _lightness_map(values: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Monotone piecewise-linear maps of [0, 100] onto itself sending `source` to `target` (per value)."""
    source = np.clip(source, 1e-3, 100 - 1e-3)
    target = np.clip(target, 0.0, 100.0)
    return np.where(values <= source, values * (target / source),
                    target + (values - source) * ((100.0 - target) / (100.0 - source)))


def _part_means(mask: np.ndarray, inside: np.ndarray, weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per pixel of `inside`, the weighted mean of `values` ((N, C)) over its 8-connected part of `mask`:
    two cars of different colours in one mask each move to the target from their own colour."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    part = labels[inside]
    total = np.bincount(part, weights=weights, minlength=n + 1)
    means = np.stack([np.bincount(part, weights=weights * values[:, c], minlength=n + 1) for c in
                      range(values.shape[1])], 1) / np.maximum(total, 1e-12)[:, None]
    return means[part]


def legacy_recolor(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] | str | None = None,
            hue_shift: float | None = None, feather: int = 3, *, lightness: float = 0.5) -> np.ndarray:
    """The photo with the pixels under `mask` recoloured to `color` (RGB or any `parse_color` text), or their
    hue turned by `hue_shift` degrees (chroma and lightness kept). `feather`: pixels of soft edge inside the
    mask. `lightness`: how far (0..1) the region's mean lightness moves towards the target colour's (0 keeps
    the photo's lightness exactly). Pixels outside the mask are returned byte-identical."""
    image, mask = check_inputs(image, mask)
    if (color is None) == (hue_shift is None):
        raise MasksmithError("give either a colour or a hue shift.", fix="pass --color NAME or --hue-shift DEG.")
    if not 0.0 <= lightness <= 1.0:
        raise MasksmithError(f"lightness {lightness} is outside 0..1.")
    out = image.copy()
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return out
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    weights = feather_weights(mask[y0:y1, x0:x1], int(feather))
    inside = weights > 0
    pixels = image[y0:y1, x0:x1][inside]
    lab = to_lab(pixels)
    L, ab = lab[:, 0], lab[:, 1:]
    if hue_shift is not None:
        t = np.deg2rad(float(hue_shift))
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        new_ab = ab @ rot.T
        new_L = L
    else:
        rgb = parse_color(color) if isinstance(color, str) else tuple(int(c) for c in color)  # type: ignore[union-attr]
        if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
            raise MasksmithError(f"colour {color!r} is not three values 0..255.")
        target = to_lab(np.asarray(rgb, np.uint8))
        means = _part_means(inside, inside, weights[inside].astype(np.float64), lab.astype(np.float64))
        mean_L, mean_ab = means[:, 0], means[:, 1:]
        new_L = _lightness_map(L, mean_L, mean_L + lightness * (float(target[0]) - mean_L))
        # the target's chroma, less of it in near-white highlights and near-black shadows
        fade = np.clip((100.0 - new_L) / 20.0, 0.0, 1.0) * np.clip(new_L / 10.0, 0.0, 1.0)
        new_ab = (ab - mean_ab) + target[1:][None, :] * fade[:, None]
    new = to_rgb(np.column_stack([new_L, new_ab])).astype(np.float32)
    w = weights[inside][:, None]
    blended = np.clip(np.rint(w * new + (1.0 - w) * pixels), 0, 255).astype(np.uint8)
    crop = out[y0:y1, x0:x1]
    crop[inside] = blended
    return out

