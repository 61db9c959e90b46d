"""A built-in sample data set, drawn procedurally: side views of cars with body, wheels, windows and lights.

The demo and the tests need nothing from outside: `ensure_sample_dataset()` builds it once into the cache
and `make_sample_dataset(out)` writes it anywhere, in COCO form (or as colour masks).

How the pictures and the annotations are made to agree: every annotated part is a polygon (a Region); the
polygons are rasterised with pycocotools, exactly as `masksmith.data.rasterize` does for training, and each
part is painted through its own mask in paint order (body, windows, wheels, lights; a later part covers an
earlier one, as the rasteriser assumes). Details inside a part (rims, highlights, reflections) are drawn with
PIL ImageDraw on the part's layer and so never leak past its mask. Only the background, the noise and the JPEG
compression are outside the annotations.

Each wheel, window and light is its own instance. The body polygon is the car's whole outline (amodal), so its
instance mask includes the pixels its windows, wheels and lights cover; semantic masks are exact.

Every image is drawn from its own random generator seeded by (seed, index): the data set is byte-for-byte the
same for a given seed, and image i does not depend on how many images are asked for.
"""

from __future__ import annotations

import colorsys
import importlib.util
import io
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from masksmith.core.errors import DatasetError
from masksmith.data.archive import cache_dir
from masksmith.data.rasterize import sample_rles
from masksmith.data.schema import Dataset, Region, Sample, make_classes

VERSION = "cars-v1"  # bump when the drawings change, so cached copies are rebuilt
CLASSES = ["body", "wheel", "window", "light"]
# the colour-coded car-parts convention
CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "body": (0, 0, 255),
    "wheel": (255, 0, 0),
    "window": (0, 255, 0),
    "light": (128, 0, 128),
}
FORMATS = ("coco", "masks")
JPEG_QUALITY = 90

Color = tuple[int, int, int]


# ---------------------------------------------------------------------------------------------------- drawing


@dataclass
class _Part:
    """One annotated region and how to paint it: a base colour plus details drawn inside its mask."""

    region: Region
    color: Color
    details: list[tuple[str, list[float], Color]] = field(default_factory=list)  # (polygon|ellipse, xy, fill)


def _clip(c: np.ndarray | list[float] | tuple[float, ...]) -> Color:
    r, g, b = (int(v) for v in np.clip(np.round(np.asarray(c, dtype=np.float64)), 0, 255))
    return (r, g, b)


def _shade(c: Color, delta: float) -> Color:
    return _clip(np.asarray(c, dtype=np.float64) + delta)


def _jitter(rng: np.random.Generator, c: tuple[float, float, float], amount: float) -> Color:
    return _clip(np.asarray(c) + rng.uniform(-amount, amount, 3))


def _arc(cx: float, cy: float, r: float, a0: float, a1: float, n: int = 4) -> list[tuple[float, float]]:
    """Points on a circle arc from angle a0 to a1 (degrees; y points down, so 90 is straight down)."""
    out = []
    for a in np.linspace(math.radians(a0), math.radians(a1), n):
        out.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return out


def _circle(cx: float, cy: float, r: float, n: int = 20) -> np.ndarray:
    a = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], axis=1)


def _flat(poly: np.ndarray | list[tuple[float, float]]) -> list[float]:
    return [float(v) for v in np.asarray(poly, dtype=np.float64).ravel()]


def _car_color(rng: np.random.Generator, background: Color) -> Color:
    """Any colour a car may have, including dark ones and ones close to the background behind it."""
    u = rng.random()
    if u < 0.2:  # near-black
        return _jitter(rng, (28, 28, 30), 18)
    if u < 0.35:  # white, silver, grey
        v = rng.uniform(140, 235)
        return _jitter(rng, (v, v, v + 4), 8)
    if u < 0.5:  # camouflaged: close to the background behind the car
        return _jitter(rng, background, 14)
    h, s, v = rng.uniform(0, 1), rng.uniform(0.4, 1.0), rng.uniform(0.35, 0.95)
    return _clip(np.asarray(colorsys.hsv_to_rgb(h, s, v)) * 255)


def _car_height(L: float, p: dict[str, float]) -> float:
    """Height of a car of length L from the ground to the top of its roof."""
    return p["r"] * L * (1 - p["sill"]) + (p["h1"] + p["h2"] + p["bulge"]) * L


def _car_params(rng: np.random.Generator) -> dict[str, float]:
    """The car's shape in units of its length (and of its wheel radius for the sill)."""
    van = rng.random() < 0.25
    return {
        "van": float(van),
        "r": rng.uniform(0.08, 0.105),  # wheel radius
        "sill": rng.uniform(0.2, 0.5),  # body bottom below the wheel centre, in wheel radii
        "h1": rng.uniform(0.17, 0.23),  # lower hull height
        "h2": rng.uniform(0.19, 0.26) if van else rng.uniform(0.14, 0.2),  # cabin height
        "bulge": rng.uniform(0.0, 0.025),  # roof curvature
        "rear_wheel": rng.uniform(0.16, 0.23),
        "front_wheel": rng.uniform(0.77, 0.84),
    }


def _make_car(rng: np.random.Generator, x0: float, L: float, y_ground: float, p: dict[str, float],
              background: Color, car: int) -> list[_Part]:
    """The parts of one car facing right with its rear at x0, flipped at random, in paint order."""
    r = p["r"] * L
    yc = y_ground - r  # wheel centres
    yb = yc + p["sill"] * r  # body bottom: the wheels overlap the body's lower edge
    h1, h2 = p["h1"] * L, p["h2"] * L
    yt = yb - h1  # top of the hull (bonnet, boot, belt line)
    ytop = yt - h2  # roof
    bulge = p["bulge"] * L
    xF = x0 + L  # front end
    rb = 0.12 * h1  # bottom corners
    rcf = rng.uniform(0.3, 0.5) * h1  # bonnet's front corner
    rcr = rng.uniform(0.15, 0.4) * h1  # boot's rear corner
    if p["van"]:
        xr = x0 + rcr + rng.uniform(0.0, 0.04) * L  # cabin starts at the very back
        xrr = xr + rng.uniform(0.01, 0.05) * L
        xf = x0 + rng.uniform(0.66, 0.76) * L
    else:
        xr = x0 + rcr + rng.uniform(0.03, 0.18) * L
        xrr = xr + rng.uniform(0.06, 0.16) * L
        xf = x0 + rng.uniform(0.64, 0.74) * L
    xrf = xf - rng.uniform(0.1, 0.2) * L
    if xrf - xrr < 0.15 * L:
        xrf = xrr + 0.15 * L
        xf = max(xf, xrf + 0.05 * L)

    outline: list[tuple[float, float]] = []
    outline += _arc(x0 + rb, yb - rb, rb, 180, 90)
    outline += _arc(xF - rb, yb - rb, rb, 90, 0)
    outline += _arc(xF - rcf, yt + rcf, rcf, 0, -90, 5)
    outline.append((xf, yt))
    for t in np.linspace(0.0, 1.0, 7):  # roof, front to back
        outline.append((xrf + (xrr - xrf) * t, ytop - bulge * math.sin(math.pi * t)))
    outline.append((xr, yt))
    outline += _arc(x0 + rcr, yt + rcr, rcr, -90, -180, 4)
    body = np.asarray(outline)

    # windows: the cabin's side, inset from its pillars, split by a B pillar when there is room
    m_top = max(1.0, 0.14 * h2)
    m_bottom = max(0.8, 0.08 * h2)
    m_side = max(1.0, 0.035 * L)
    y_lo, y_hi = yt - m_bottom, ytop + m_top

    def rear_x(y: float) -> float:
        return xr + (xrr - xr) * (yt - y) / h2 + m_side

    def front_x(y: float) -> float:
        return xf + (xrf - xf) * (yt - y) / h2 - m_side

    windows = []
    pillar = max(1.5, 0.035 * L)
    x_split = rear_x(y_hi) + (front_x(y_hi) - rear_x(y_hi)) * rng.uniform(0.4, 0.6)
    if rng.random() < 0.6 and front_x(y_hi) - rear_x(y_hi) > 2 * pillar + 6:
        a, b = x_split - pillar / 2, x_split + pillar / 2
        windows.append(np.array([(rear_x(y_lo), y_lo), (a, y_lo), (a, y_hi), (rear_x(y_hi), y_hi)]))
        windows.append(np.array([(b, y_lo), (front_x(y_lo), y_lo), (front_x(y_hi), y_hi), (b, y_hi)]))
    else:
        windows.append(np.array([(rear_x(y_lo), y_lo), (front_x(y_lo), y_lo), (front_x(y_hi), y_hi),
                                 (rear_x(y_hi), y_hi)]))

    wheels = [(x0 + p["rear_wheel"] * L, yc), (x0 + p["front_wheel"] * L, yc)]

    lw, lh = max(4.0, 0.075 * L), max(3.5, 0.3 * h1)
    y1 = yt + max(rcf, 0.15 * h1)
    head = np.array([(xF - lw, y1), (xF - 0.3, y1), (xF - 0.3, y1 + lh), (xF - 0.7 * lw, y1 + lh)])
    y1 = yt + max(rcr, 0.15 * h1)
    tail = np.array([(x0 + 0.3, y1), (x0 + 0.8 * lw, y1), (x0 + 0.8 * lw, y1 + lh), (x0 + 0.3, y1 + lh)])

    flip = rng.random() < 0.5
    facing = "left" if flip else "right"

    def place(poly: np.ndarray) -> np.ndarray:
        poly = np.asarray(poly, dtype=np.float64)
        if flip:
            poly = poly.copy()
            poly[:, 0] = 2 * x0 + L - poly[:, 0]
        return np.round(poly, 2)

    def place_box(x_a: float, y_a: float, x_b: float, y_b: float) -> list[float]:
        (xa, ya), (xb, yb_) = place(np.array([(x_a, y_a), (x_b, y_b)]))
        return [min(xa, xb), min(ya, yb_), max(xa, xb), max(ya, yb_)]

    parts: list[_Part] = []
    color = _car_color(rng, background)
    lighter, darker = _shade(color, 32), _shade(color, -32)
    details = [
        ("polygon", _flat(place(np.array([(x0, yt + 0.1 * h1), (xF, yt + 0.1 * h1), (xF, yt + 0.18 * h1),
                                          (x0, yt + 0.18 * h1)]))), lighter),  # reflection on the flank
        ("polygon", _flat(place(np.array([(x0, yb - 0.14 * h1), (xF, yb - 0.14 * h1), (xF, yb),
                                          (x0, yb)]))), darker),  # sill
    ]
    for xd in (x_split - 0.5, xf - 0.2 * (xf - xr)):  # door gaps
        details.append(("polygon", _flat(place(np.array([(xd, yt - 0.3), (xd + 0.9, yt - 0.3),
                                                         (xd + 0.9, yb - 0.14 * h1), (xd, yb - 0.14 * h1)]))),
                        darker))
    parts.append(_Part(Region("body", [place(body)], attributes={"car": car, "color": list(color),
                                                                   "facing": facing}), color, details))

    glass = (_jitter(rng, (60, 75, 100), 25) if rng.random() < 0.6 else _jitter(rng, (140, 160, 185), 25))
    for win in windows:
        w = place(win)
        (xa, ya), (xb, _yb), (_xc, yc2) = win[0], win[1], win[2]
        stripe = np.array([(xa + 0.35 * (xb - xa), ya), (xa + 0.55 * (xb - xa), ya),
                           (xa + 0.35 * (xb - xa), yc2), (xa + 0.15 * (xb - xa), yc2)])
        parts.append(_Part(Region("window", [w], attributes={"car": car, "color": list(glass)}), glass,
                           [("polygon", _flat(place(stripe)), _shade(glass, 45))]))

    v = rng.uniform(24, 46)
    tyre = _jitter(rng, (v, v, v), 3)
    v = rng.uniform(135, 210)
    rim = _jitter(rng, (v, v, v + 4), 5)
    for cx, cy in wheels:
        details = [("ellipse", place_box(cx - 0.58 * r, cy - 0.58 * r, cx + 0.58 * r, cy + 0.58 * r), rim),
                   ("ellipse", place_box(cx - 0.18 * r, cy - 0.18 * r, cx + 0.18 * r, cy + 0.18 * r),
                    _shade(rim, -70))]
        wheel = Region("wheel", [place(_circle(cx, cy, r))],
                       attributes={"car": car, "tyre": list(tyre), "rim": list(rim)})
        parts.append(_Part(wheel, tyre, details))

    head_color = _jitter(rng, (240, 236, 195), 15)
    tail_color = _jitter(rng, (200, 22, 22), 25)
    for kind, poly, c in (("head", head, head_color), ("tail", tail, tail_color)):
        parts.append(_Part(Region("light", [place(poly)], attributes={"car": car, "kind": kind,
                                                                       "color": list(c)}), c))
    return parts


_SKIES = [  # (zenith, horizon): day, dusk, overcast, night, bright day
    ((70, 120, 200), (175, 205, 235)), ((60, 60, 120), (240, 150, 90)), ((150, 155, 162), (205, 205, 210)),
    ((25, 30, 55), (70, 70, 100)), ((110, 170, 230), (220, 235, 245)),
]
_GROUNDS = [(90, 90, 95), (65, 120, 50), (130, 100, 70), (200, 182, 140), (225, 225, 230), (50, 50, 55)]


def _background(rng: np.random.Generator, w: int, h: int) -> tuple[Image.Image, int]:
    """Sky gradient, textured ground, sometimes a road, and distractors (trees, buildings, blobs)."""
    horizon = int(h * rng.uniform(0.3, 0.6))
    top, low = _SKIES[rng.integers(len(_SKIES))]
    top, low = np.asarray(_jitter(rng, top, 20), float), np.asarray(_jitter(rng, low, 20), float)
    ground = np.asarray(_jitter(rng, _GROUNDS[rng.integers(len(_GROUNDS))], 20), float)
    t = (np.arange(h, dtype=np.float64) / max(horizon, 1))[:, None]
    sky = top + (low - top) * np.clip(t, 0, 1)[..., None]
    depth = np.clip((np.arange(h) - horizon) / max(h - horizon, 1), 0, 1)[:, None, None]
    earth = ground * (0.85 + 0.3 * depth)
    rows = (np.arange(h) < horizon)[:, None, None]
    img = np.where(rows, sky, earth) * np.ones((1, w, 1))
    # low-frequency texture
    coarse = rng.uniform(-1, 1, (h // 8 + 2, w // 8 + 2)).astype(np.float32)
    amp = rng.uniform(6, 22)
    texture = np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BILINEAR))
    img = img + amp * texture[..., None]
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)

    if rng.random() < 0.5:  # a road with a dashed line
        y0 = int(rng.uniform(horizon, horizon + 0.3 * (h - horizon)))
        d.rectangle([0, y0, w, h], fill=_jitter(rng, (85, 85, 90), 20))
        yl = y0 + int((h - y0) * rng.uniform(0.5, 0.9))
        line = _jitter(rng, (230, 230, 225) if rng.random() < 0.6 else (225, 190, 40), 15)
        for x in range(int(-rng.uniform(0, 20)), w, 20):
            d.rectangle([x, yl, x + 10, yl + 1], fill=line)

    for _ in range(int(rng.integers(0, 5))):
        kind = rng.random()
        x = rng.uniform(-0.1, 1.0) * w
        if kind < 0.35:  # tree
            s = rng.uniform(0.08, 0.25) * h
            base = horizon + rng.uniform(0, 0.15) * h
            d.rectangle([x - s * 0.1, base - s * 1.2, x + s * 0.1, base], fill=_jitter(rng, (90, 60, 35), 20))
            canopy = (_jitter(rng, (50, 110, 45), 35) if rng.random() < 0.7
                      else _clip(rng.uniform(0, 255, 3)))
            d.ellipse([x - s * 0.6, base - s * 2.2, x + s * 0.6, base - s * 0.9], fill=canopy)
        elif kind < 0.65:  # building with a grid of windows
            bw, bh = rng.uniform(0.15, 0.4) * w, rng.uniform(0.15, 0.5) * h
            base = horizon + rng.uniform(0, 0.05) * h
            d.rectangle([x, base - bh, x + bw, base], fill=_clip(rng.uniform(40, 230, 3)))
            pane = _clip(rng.uniform(20, 200, 3))
            step = max(5.0, bw / rng.uniform(3, 7))
            for gx in np.arange(x + 2, x + bw - 4, step):
                for gy in np.arange(base - bh + 3, base - 5, step):
                    d.rectangle([gx, gy, gx + step * 0.5, gy + step * 0.5], fill=pane)
        elif kind < 0.8:  # pole or sign
            y = horizon + rng.uniform(-0.1, 0.25) * h
            d.rectangle([x, y - 0.35 * h, x + 2, y], fill=_jitter(rng, (110, 110, 115), 30))
            if rng.random() < 0.5:
                top = y - 0.35 * h
                d.ellipse([x - 5, top - 5, x + 7, top + 7], fill=_clip(rng.uniform(0, 255, 3)))
        else:  # a blob of any colour: balloon, sun, bush, rock
            s = rng.uniform(0.03, 0.15) * h
            y = rng.uniform(0, 1) * h
            d.ellipse([x - s, y - s * rng.uniform(0.5, 1), x + s, y + s], fill=_clip(rng.uniform(0, 255, 3)))
    return im, horizon


def _draw_sample(rng: np.random.Generator, w: int, h: int) -> tuple[Image.Image, list[Region]]:
    im, horizon = _background(rng, w, h)
    bg = np.asarray(im)
    margin = 2.0
    two = rng.random() < 0.3
    shapes = [_car_params(rng) for _ in range(2 if two else 1)]
    lo, hi = (0.4, 0.47) if two else (0.5, 0.9)
    lengths = []
    for p in shapes:
        ratio = _car_height(1.0, p)
        L = rng.uniform(lo, hi) * w
        lengths.append(max(40.0, min(L, (h - 2 * margin) * 0.8 / ratio)))
    free = w - 2 * margin - sum(lengths)
    if free < 4:  # no room for two side by side
        shapes, lengths = shapes[:1], lengths[:1]
        free = w - 2 * margin - lengths[0]
    cuts = np.sort(rng.uniform(0, free, len(lengths) + 1))[: len(lengths)]
    gaps = np.diff(np.concatenate([[0.0], cuts]))
    parts: list[_Part] = []
    x = margin
    for k, (p, L, gap) in enumerate(zip(shapes, lengths, gaps, strict=True)):
        x += gap
        height = _car_height(L, p)
        lowest = max(horizon + 0.08 * h, height + margin)
        y_ground = rng.uniform(min(lowest, h - margin), h - margin)
        cx, cy = int(np.clip(x + L / 2, 0, w - 1)), int(np.clip(y_ground - height / 2, 0, h - 1))
        parts += _make_car(rng, x, L, y_ground, p, _clip(bg[cy, cx]), k)
        x += L
    regions = [part.region for part in parts]
    rles = sample_rles(Sample(name="", image_path=None, width=w, height=h, regions=regions))
    for part, rle in zip(parts, rles, strict=True):
        mask = mask_utils.decode(rle)
        layer = Image.new("RGB", (w, h), part.color)
        d = ImageDraw.Draw(layer)
        for kind, xy, fill in part.details:
            if kind == "ellipse":
                d.ellipse(xy, fill=fill)
            else:
                d.polygon(xy, fill=fill)
        im.paste(layer, (0, 0), Image.fromarray(mask * np.uint8(255)))

    # sensor noise, and sometimes the blocks of a heavier JPEG before the final one
    noise = rng.normal(0, rng.uniform(1.5, 5.0), (h, w, 3)).astype(np.float32)
    arr = np.asarray(im, dtype=np.float32) + noise
    im = Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(rng.integers(45, 76)), subsampling=0)
        im = Image.open(buf)
        im.load()
    return im, regions


def sample_dataset(n_images: int = 60, size: tuple[int, int] = (160, 120), seed: int = 0, *,
                   vary_size: bool = True) -> Dataset:
    """The sample data set in memory: JPEG bytes in `Sample.image_data`, car colours in region attributes.

    `size` is the nominal (width, height); with `vary_size` each image is up to 20% larger or smaller.
    """
    if n_images < 1:
        raise DatasetError(f"n_images must be at least 1, not {n_images}.")
    width, height = size
    if width < 64 or height < 48:
        raise DatasetError(f"a sample image of {width}x{height} is too small to draw cars in.",
                           fix="ask for at least 64x48 pixels.")
    samples = []
    for i in range(n_images):
        rng = np.random.default_rng([seed, i])
        w, h = width, height
        if vary_size:
            w = int(round(width * rng.uniform(0.8, 1.2)))
            h = int(round(height * rng.uniform(0.8, 1.2)))
        im, regions = _draw_sample(rng, w, h)
        buf = io.BytesIO()
        # 4:4:4 keeps colours inside small parts (lights, rims) where the annotations put them
        im.save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=0)
        samples.append(Sample(name=f"car_{i:04d}.jpg", image_path=None, width=w, height=h, regions=regions,
                              image_data=buf.getvalue()))
    return Dataset(classes=make_classes(CLASSES, CLASS_COLORS), samples=samples, format="sample")


# ---------------------------------------------------------------------------------------------------- writing


def _masks_writer():
    if importlib.util.find_spec("masksmith.data.formats.masks") is None:
        return None
    from masksmith.data.formats import masks

    return getattr(masks, "write", None)


def supported_formats() -> list[str]:
    return ["coco"] + (["masks"] if _masks_writer() is not None else [])


def make_sample_dataset(out: Path, n_images: int = 60, size: tuple[int, int] | None = None, seed: int = 0,
                        format: str = "coco", *, vary_size: bool = True, kind: str = "cars") -> Path:
    """Draw a sample data set (`kind`: "cars", or "thin" / "large", see `kind_dataset`) and write it to `out`
    as COCO ("coco") or colour masks ("masks").

    Returns `out`, which `load_dataset` reads.
    """
    out = Path(out)
    supported = supported_formats()
    if format not in supported:
        raise DatasetError(f"the sample data set cannot be written as {format!r}.",
                           fix=f"use one of: {', '.join(supported)}.")
    dataset = (sample_dataset(n_images, size or (160, 120), seed, vary_size=vary_size) if kind == "cars"
               else kind_dataset(kind, n_images, seed, size))
    with tempfile.TemporaryDirectory(prefix="masksmith-sample-") as tmp:
        for s in dataset.samples:
            path = Path(tmp) / s.name
            assert s.image_data is not None
            path.write_bytes(s.image_data)
            s.image_path, s.image_data = path, None
        if format == "coco":
            from masksmith.data.formats import coco

            coco.write(dataset, out)
        else:
            writer = _masks_writer()
            assert writer is not None
            writer(dataset, out, kind="color")
    return out


def default_sample_dir() -> Path:
    """Where the demo keeps the sample data set."""
    return cache_dir() / "sample" / VERSION


def ensure_sample_dataset(n_images: int = 60, size: tuple[int, int] = (160, 120), seed: int = 0,
                          format: str = "coco") -> Path:
    """The sample data set in the cache, built on first use (atomically) and reused after.

    The defaults live in `default_sample_dir()`; other settings get a folder of their own beside it.
    """
    target = default_sample_dir()
    if (n_images, tuple(size), seed, format) != (60, (160, 120), 0, "coco"):
        target = target.with_name(f"{VERSION}-n{n_images}-{size[0]}x{size[1]}-s{seed}-{format}")
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        make_sample_dataset(tmp, n_images, size, seed, format)
        try:
            os.replace(tmp, target)
        except OSError:
            if not target.is_dir():  # not a concurrent build that finished first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# ------------------------------------------------------------------- more kinds: thin structures, large photos

KINDS = ("cars", "thin", "large")
THIN_CLASSES = ["wire", "grid", "blob"]
THIN_COLORS: dict[str, Color] = {"wire": (255, 0, 0), "grid": (0, 255, 0), "blob": (0, 0, 255)}
LARGE_CLASSES = ["disc", "square", "triangle"]
LARGE_COLORS: dict[str, Color] = {"disc": (255, 0, 0), "square": (0, 255, 0), "triangle": (0, 0, 255)}


def _texture(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A textured photo-like background: a colour gradient, blotches at two scales and sensor noise."""
    a, b = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
    t = np.linspace(0, 1, w)[None, :, None] * rng.uniform(0.3, 1) + np.linspace(0, 1, h)[:, None, None] * 0.5
    img = a + (b - a) * np.clip(t, 0, 1)
    for cell, amp in ((max(4, w // 12), rng.uniform(10, 30)), (max(2, w // 80), rng.uniform(5, 18))):
        coarse = rng.uniform(-1, 1, (h // cell + 2, w // cell + 2)).astype(np.float32)
        img = img + amp * np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BICUBIC)
                                     )[..., None]
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _finish(rng: np.random.Generator, im: Image.Image) -> bytes:
    arr = np.asarray(im, dtype=np.float32) + rng.normal(0, rng.uniform(2, 5), (im.height, im.width, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=92, subsampling=0)
    return buf.getvalue()


def _shape_region(label: str, layer: Image.Image) -> Region | None:
    mask = np.asarray(layer) > 0
    if not mask.any():
        return None
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return Region(label=label, rle=rle)


def _paint(im: Image.Image, layer: Image.Image, color: Color) -> None:
    im.paste(Image.new("RGB", im.size, color), (0, 0), layer)


def _draw_thin(rng: np.random.Generator, w: int, h: int) -> tuple[Image.Image, list[Region]]:
    """Wires (single lines 1-2 px wide, any angle), grids (2-3 px lines in a lattice patch) and a few chunky
    blobs, in colours close to the background's so the shape, not the colour, tells them apart; painted in
    that order (blob over grid over wire) with masks that match the paint."""
    im = _texture(rng, w, h)
    regions: list[Region] = []
    layers: list[tuple[str, Image.Image, Color]] = []
    for _ in range(int(rng.integers(2, 5))):  # wires
        layer = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(layer)
        pts = [(float(rng.uniform(0, w)), float(rng.uniform(0, h)))]
        for _ in range(int(rng.integers(1, 4))):
            angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.6) * w
            x, y = pts[-1]
            pts.append((x + length * math.cos(angle), y + length * math.sin(angle)))
        d.line(pts, fill=255, width=int(rng.integers(1, 3)))
        layers.append(("wire", layer, _clip(rng.uniform(0, 255, 3))))
    for _ in range(int(rng.integers(1, 3))):  # grids
        layer = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(layer)
        gw, gh = rng.uniform(0.2, 0.45) * w, rng.uniform(0.25, 0.6) * h
        x0, y0 = rng.uniform(0, w - gw), rng.uniform(0, h - gh)
        step, width = rng.uniform(10, 24), int(rng.integers(2, 4))
        for gx in np.arange(x0, x0 + gw + 1, step):
            d.line([(gx, y0), (gx, y0 + gh)], fill=255, width=width)
        for gy in np.arange(y0, y0 + gh + 1, step):
            d.line([(x0, gy), (x0 + gw, gy)], fill=255, width=width)
        layers.append(("grid", layer, _clip(rng.uniform(0, 255, 3))))
    for _ in range(int(rng.integers(1, 3))):  # blobs
        layer = Image.new("L", (w, h), 0)
        s = rng.uniform(0.06, 0.14) * h
        cx, cy = rng.uniform(s, w - s), rng.uniform(s, h - s)
        ImageDraw.Draw(layer).ellipse([cx - s * rng.uniform(0.6, 1.4), cy - s, cx + s, cy + s], fill=255)
        layers.append(("blob", layer, _clip(rng.uniform(0, 255, 3))))
    # distractors: thick strokes and soft spots that are not annotated
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(1, 4))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        d.line([(x, y), (x + rng.uniform(-w, w) * 0.3, y + rng.uniform(-h, h) * 0.3)],
               fill=_clip(rng.uniform(0, 255, 3)), width=int(rng.integers(6, 12)))
    painted = np.zeros((h, w), bool)
    for label, layer, _ in reversed(layers):  # the last painted is on top: cut it from those below
        mask = (np.asarray(layer) > 0) & ~painted
        painted |= mask
        region = _shape_region(label, Image.fromarray(mask.astype(np.uint8) * 255))
        if region is not None:
            regions.append(region)
    for _, layer, color in layers:
        _paint(im, layer, color)
    return im, regions[::-1]


def _draw_large(rng: np.random.Generator, w: int, h: int) -> tuple[Image.Image, list[Region]]:
    """Many small objects (discs, squares, triangles of 18-45 px, any colour) scattered over a large photo."""
    im = _texture(rng, w, h)
    regions: list[Region] = []
    taken = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(12, 30))):
        label = LARGE_CLASSES[int(rng.integers(len(LARGE_CLASSES)))]
        s = rng.uniform(9, 22)
        cx, cy = rng.uniform(s, w - s), rng.uniform(s, h - s)
        layer = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(layer)
        if label == "disc":
            d.ellipse([cx - s, cy - s, cx + s, cy + s], fill=255)
        elif label == "square":
            a = rng.uniform(0, np.pi / 2)
            d.polygon([(cx + s * math.cos(a + k * np.pi / 2), cy + s * math.sin(a + k * np.pi / 2))
                       for k in range(4)], fill=255)
        else:
            a = rng.uniform(0, 2 * np.pi)
            d.polygon([(cx + 1.2 * s * math.cos(a + k * 2 * np.pi / 3), cy + 1.2 * s * math.sin(a + k * 2 * np.pi / 3))
                       for k in range(3)], fill=255)
        mask = np.asarray(layer) > 0
        if (mask & taken).any():
            continue
        taken |= mask
        _paint(im, layer, _clip(rng.uniform(0, 255, 3)))
        region = _shape_region(label, layer)
        if region is not None:
            regions.append(region)
    return im, regions


def kind_dataset(kind: str, n_images: int, seed: int = 0, size: tuple[int, int] | None = None) -> Dataset:
    """A generated data set of another kind, in memory (JPEG bytes in `Sample.image_data`):
    - "thin": wires 1-2 px and grids 2-3 px wide beside chunky blobs, on textured, non-square photos of about
      600x400 (each up to 10 % larger or smaller);
    - "large": photos of about 2000x1500 with many small objects (discs, squares, triangles of 18-45 px)."""
    if kind == "cars":
        return sample_dataset(n_images, size or (160, 120), seed)
    if kind not in KINDS:
        raise DatasetError(f"there is no sample kind {kind!r}.", fix=f"use one of: {', '.join(KINDS)}.")
    width, height = size or ((600, 400) if kind == "thin" else (2000, 1500))
    draw, classes, colors = ((_draw_thin, THIN_CLASSES, THIN_COLORS) if kind == "thin"
                             else (_draw_large, LARGE_CLASSES, LARGE_COLORS))
    samples = []
    for i in range(n_images):
        rng = np.random.default_rng([seed, i, KINDS.index(kind)])
        w, h = (int(round(width * rng.uniform(0.9, 1.1))), int(round(height * rng.uniform(0.9, 1.1))))
        im, regions = draw(rng, w, h)
        samples.append(Sample(name=f"{kind}_{i:04d}.jpg", image_path=None, width=w, height=h, regions=regions,
                              image_data=_finish(rng, im)))
    return Dataset(classes=make_classes(classes, colors), samples=samples, format="sample")
