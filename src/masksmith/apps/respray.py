"""Respray a car: change its paint, and only its paint, to a new colour that looks like that colour.

Three steps, each a function of its own:

1. `find_paint`: which pixels are paint. Inside the chosen parts (doors, hood, bumpers...) the dominant paint
   colour is found by k-means (masksmith.apps.cluster) on a sample of the part's pixels, one paint per car
   (per connected region of the car mask). Features are the shading-invariant chromaticity a/(L+16),
   b/(L+16) (scaling a surface's light scales L+16, a and b alike, so a door in shadow and a lit hood have
   the same chromaticity) and the log of the luminance, weighed so that shading alone rarely splits the paint.
   A pixel is paint when its chromaticity is close to the paint's and it is not much darker than the paint's
   darkest shading: door glass, lights, plates, chrome of another hue, tyres and black trim are left alone
   (soft weights, so mixed edge pixels blend). The paint then grows into connected pixels of the same paint
   inside the car: fenders, roof and pillars, which the model has no class for, are painted too. Where the car
   is, is decided per pixel (`car_extent`): a watershed of the photo's colour gradient between the model's car
   mask (eroded) and what lies beyond the car's geometric region (`car_regions`: its hull and rows, widened a
   little), so the paint stops at the car's real outline even before a wall or road of the paint's colour.
   `keep` (e.g. the other predicted parts: glass, lights, wheels) is never painted; `grow=False` paints only
   inside the chosen parts.
2. `shade_transfer` (in linear light): each paint pixel is the paint colour times its shading (its luminance
   over the paint's median) plus, above a highlight level taken from the paint's own luminance, a specular
   excess. The new pixel is the target colour times the same shading plus the same excess, so the paint's
   mid-tones become the target colour (white -> navy is navy), shadows keep their depth, and reflections of the
   sky and highlights stay bright on any colour. `lightness` (0..1) overrides how far the mid-tone moves to
   the target's luminance (1, the default, all the way; 0 keeps the photo's). Out-of-gamut colours lose
   saturation at constant luminance rather than hue.
3. The edge of the painted region is feathered inwards as `recolor` does, so every pixel that is not paint is
   byte-identical to the photo.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from masksmith.apps.colorspace import ENCODE, LINEAR, LINEAR_STEPS, check_inputs, feather_weights, to_lab
from masksmith.core.errors import MasksmithError
from masksmith.core.labels import ClassMap

# luminance weights of linear sRGB (the Y row of skimage's RGB -> XYZ matrix)
_Y = np.array([0.212671, 0.715160, 0.072169], np.float32)
WORK_SIDE = 384  # the car's outline (hull, widening) is worked out at this size: geometry, not detail
SAMPLE = 6_000  # part pixels per car that the paint colour is clustered from
K = 4  # clusters per car: paint, glass, trim, lights/chrome
MERGE = 13.0  # clusters closer than this (chroma units; 4 a stop of luminance) are one colour
DARK = float(np.log2(0.085))  # paints with a mid-tone darker than this (L* 35) have no darkest shade (black
# paint in shadow is black)


@dataclass
class PaintInfo:
    """One paint (one car's, or one of several in a car): its colour and the luminance statistics the shading
    transfer uses."""
    rgb: tuple[int, int, int]  # the paint's median colour in the photo
    luminance: float  # median linear luminance of its pixels (the mid-tone)
    highlight: float  # luminance over the mid-tone above which brightness counts as a specular highlight
    pixels: int  # paint pixels (weight > 0.5)
    grown: int  # ... of which outside the chosen parts (growth)


@dataclass
class Paint:
    """Where the paint is: `weight` (H, W) float32 in [0, 1] (0 for every pixel that is not paint) and
    `label` (H, W) int32 (0 = no paint, i = the paint described by paints[i])."""
    weight: np.ndarray
    label: np.ndarray
    paints: dict[int, PaintInfo] = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        return self.weight > 0.5


_Y_TABLES = LINEAR[None, :] * _Y[:, None]  # (3, 256) float32: each channel's share of the luminance per level


def _luminance(pixels: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 -> (N,) float32 linear luminance: three table look-ups and two additions (2.5x faster than
    LINEAR[pixels] @ _Y, which goes through a (N, 3) float array and BLAS threads)."""
    out = _Y_TABLES[0][pixels[:, 0]]
    out += _Y_TABLES[1][pixels[:, 1]]
    out += _Y_TABLES[2][pixels[:, 2]]
    return out


def _gather(image: np.ndarray, mask: np.ndarray, crop: tuple[slice, slice] | None = None) -> np.ndarray:
    """image[crop][mask] as (N, 3) uint8, each pixel's three bytes taken as one 3-byte item: 10-20x faster than
    indexing the (H, W, 3) array with a mask (numpy copies it channel by channel)."""
    if image.strides[-2:] != (3, 1):
        image = np.ascontiguousarray(image)
    cells = image.view(np.dtype((np.void, 3)))[..., 0]
    if crop is not None:
        cells = cells[crop]
    return cells[mask].view(np.uint8).reshape(-1, 3)


def _put(image: np.ndarray, mask: np.ndarray, values: np.ndarray) -> None:
    """image[mask] = values ((N, 3) uint8) in place, on a C-contiguous (H, W, 3) uint8 image (3-byte items)."""
    cells = image.view(np.dtype((np.void, 3)))[..., 0]
    cells[mask] = np.ascontiguousarray(values, np.uint8).view(np.dtype((np.void, 3)))[:, 0]


def _dilate8(mask: np.ndarray) -> np.ndarray:
    """One step of 8-connected dilation (ndimage.binary_dilation with a 3 x 3 square, outside the array unset)
    by shifted ORs, rows then columns: 30x faster than scipy's on a 12-megapixel mask, and the same."""
    rows = mask.copy()
    rows[1:] |= mask[:-1]
    rows[:-1] |= mask[1:]
    out = rows.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def _check_mask(mask: np.ndarray | None, shape: tuple[int, int], what: str) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise MasksmithError(f"the {what} is {mask.shape[1] if mask.ndim > 1 else '?'}x{mask.shape[0]} but the image "
                             f"is {shape[1]}x{shape[0]}.", fix=f"pass a {what} of the image's size.")
    return mask.astype(bool)


def _box(mask: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    ys = np.flatnonzero(mask.any(1))
    xs = np.flatnonzero(mask.any(0))
    h, w = mask.shape
    return (max(0, ys[0] - margin), min(h, ys[-1] + 1 + margin), max(0, xs[0] - margin), min(w, xs[-1] + 1 + margin))


def _shrink_any(mask: np.ndarray, f: int) -> np.ndarray:
    """(H, W) bool -> (ceil(H/f), ceil(W/f)) bool: a cell is set when any of its pixels is."""
    h, w = mask.shape
    H, W = -(-h // f), -(-w // f)
    padded = np.zeros((H * f, W * f), bool)
    padded[:h, :w] = mask
    # strided ORs, one axis then the other: 5x faster than .any(axis=(1, 3)) of the reshaped array
    cols = padded[:, 0::f].copy()
    for k in range(1, f):
        cols |= padded[:, k::f]
    out = cols[0::f].copy()
    for k in range(1, f):
        out |= cols[k::f]
    return out


def _grow_cells(cells: np.ndarray, f: int, shape: tuple[int, int]) -> np.ndarray:
    """Cells back to pixels (nearest), cut to `shape`."""
    return np.repeat(np.repeat(cells, f, 0), f, 1)[:shape[0], :shape[1]]


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    """Dilation by a disc (Euclidean distance <= radius), through the distance transform: fast for any radius."""
    from scipy import ndimage

    if not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask) <= radius


def _paste(grid: np.ndarray, local: np.ndarray, y0: int, x0: int, value) -> None:
    """grid[y0 + y, x0 + x] = value where `local` is set and not yet taken (the parts inside the grid)."""
    ys, xs = np.nonzero(local)
    ys, xs = ys + y0, xs + x0
    ok = (ys >= 0) & (ys < grid.shape[0]) & (xs >= 0) & (xs < grid.shape[1])
    ys, xs = ys[ok], xs[ok]
    free = grid[ys, xs] == 0
    grid[ys[free], xs[free]] = value


def _closed(mask: np.ndarray, radius: float) -> np.ndarray:
    return ~_dilate(~mask, radius) if radius <= 0 else ~_dilate(~_dilate(mask, radius), radius)


def car_regions(car: np.ndarray, part: np.ndarray | None = None, join: float = 0.25, close: float = 0.2,
                widen: float = 0.02, span: float = 0.35, reach: float = 0.02,
                cap: float = 0.15, below: float = 0.02) -> tuple[np.ndarray, int]:
    """(labels (H, W) int32, n): where each car is, so growth may go there and nowhere else.

    Pieces of the car mask smaller than 1 % of its largest are left out (a model's stray specks in the
    background); pieces closer than `join` of the mask's size (the square root of its area) are one car (a
    wheel and the doors with the unlabelled fender between them). Its region: its pieces closed with a disc of
    `close` of its size (the pillars, the gaps between parts, but not the background beside a narrower roof),
    with the convex hull of their lower 70 % (fenders and quarter panels out to the wheels and lights) and, in
    each of those rows, everything between its leftmost and rightmost pixel in the rows within `span` of its
    height below, widened by `reach` of its width, no further than `cap` of its size from the hull (the fender
    above a wheel and the bumper's end beyond it, where the model found no part: a side view's doors and wheels
    give no hull over them), its top 30 % widened by `widen` of its size (the roof's edge above the glass), and
    never below the chosen parts' (`part`) lowest pixel in that column or near it (`_bottom`: the road beside
    the wheels and under the sills stays out). Worked out on a grid of at most WORK_SIDE cells a side: geometry,
    not detail."""
    from scipy import ndimage
    from skimage.morphology import convex_hull_image

    f = max(1, int(np.ceil(max(car.shape) / WORK_SIDE)))
    cells = _shrink_any(car, f)
    pieces, count = ndimage.label(cells, structure=np.ones((3, 3), bool))
    if count > 1:
        sizes = np.bincount(pieces.ravel())
        sizes[0] = 0
        cells = (sizes >= 0.01 * sizes.max())[pieces] & cells
    chosen = cells if part is None else _shrink_any(part, f)
    labels, n = ndimage.label(_dilate(cells, max(1.0, join * np.sqrt(cells.sum()))), structure=np.ones((3, 3), bool))
    region = np.zeros(cells.shape, np.int32)
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        mine = cells[sl] & (labels[sl] == i)
        if not mine.any():
            continue
        r = max(1.0, close * np.sqrt(mine.sum()))
        w = max(1.0, widen * max(mine.shape))
        pad = int(np.ceil(r + w)) + 1
        padded = np.pad(mine, pad)
        rows = np.flatnonzero(mine.any(1))
        low = np.zeros_like(padded)
        low[pad + rows[0] + int(0.3 * (rows[-1] - rows[0] + 1)):] = True
        hull = convex_hull_image(padded)
        spans = _row_spans(padded, span, reach) & _dilate(hull, cap * max(mine.shape))
        body = _closed(padded, r) | ((hull | spans) & low)
        grown = body | (_dilate(body, w) & ~low)  # widened upwards only: the roof, not the road
        _paste(region, grown, sl[0].start - pad, sl[1].start - pad, i)
    slack = max(1, int(round(below * cells.shape[0])))
    region[np.arange(cells.shape[0])[:, None] > _bottom(chosen & (cells | chosen))[None, :] + slack] = 0
    return _grow_cells(region, f, car.shape).astype(np.int32), n


def _row_spans(mask: np.ndarray, span: float, reach: float) -> np.ndarray:
    """Per row, everything from the leftmost to the rightmost pixel of `mask` in that row and the rows within
    `span` of its height below, widened by `reach` of its width each side."""
    from scipy import ndimage

    rows = np.flatnonzero(mask.any(1))
    cols = np.flatnonzero(mask.any(0))
    if len(rows) == 0:
        return mask.copy()
    has = mask.any(1)
    left = np.where(has, np.argmax(mask, axis=1), mask.shape[1])
    right = np.where(has, mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1), -1)
    size = 2 * int(round(span * (rows[-1] - rows[0] + 1))) + 1
    # the rows below only (origin shifts the window down): a car is widest low down, and the wall beside its
    # roof or hood is not its fender
    left = ndimage.minimum_filter1d(left, size, mode="nearest", origin=-(size // 2))
    right = ndimage.maximum_filter1d(right, size, mode="nearest", origin=-(size // 2))
    more = reach * (cols[-1] - cols[0] + 1)
    x = np.arange(mask.shape[1])[None, :]
    out = (x >= (left - more)[:, None]) & (x <= (right + more)[:, None])
    out[:rows[0]] = False
    out[rows[-1] + 1:] = False
    return out


def _bottom(cells: np.ndarray, window: float = 0.05, ends: float = 0.2) -> np.ndarray:
    """Per column, the row of the lowest cell within `window` of the cells' width either side (interpolated
    over wider gaps; beyond their ends, the lowest within `ends` of their width of the end, from a tenth of their
    width beyond rising one row every four columns): cars stand on the ground, so no paint lies below their
    lowest part (the road stays out), and a column where only glass was found keeps the doors' bottom. The ends
    look further in because a door's lower corner is cut by the wheel arch, and the quarter panel beyond it
    reaches down to the sill's height."""
    from scipy import ndimage

    cols = np.flatnonzero(cells.any(0))
    if len(cols) == 0:
        return np.full(cells.shape[1], -1)
    lowest = np.full(cells.shape[1], -1)
    lowest[cols] = cells.shape[0] - 1 - np.argmax(cells[::-1, cols], axis=0)
    width = cols[-1] - cols[0] + 1
    reach = max(1, int(round(ends * width)))
    first = lowest[cols[0]:cols[0] + reach].max()
    last = lowest[max(cols[0], cols[-1] + 1 - reach):cols[-1] + 1].max()
    size = 2 * max(1, int(round(window * width))) + 1
    lowest = ndimage.maximum_filter1d(lowest, size, mode="nearest")
    have = np.flatnonzero(lowest >= 0)
    x = np.arange(cells.shape[1])
    bottom = np.interp(x, have, lowest[have])
    bottom[x < cols[0]] = np.maximum(bottom[x < cols[0]], first)
    bottom[x > cols[-1]] = np.maximum(bottom[x > cols[-1]], last)
    start = 0.1 * width
    bottom -= 0.25 * (np.maximum(cols[0] - start - x, 0) + np.maximum(x - cols[-1] - start, 0))
    return np.rint(bottom).astype(int)


SNAP = 0.02  # kept parts' outlines move out to the nearest strong edge within this share of the photo's side
SNAP_SIDE = 1024  # the kept parts' outlines are snapped to the photo's edges at this size (a model's error is
# a few of its own pixels, tens of a 12-megapixel photo's)


def snap_to_edges(image: np.ndarray, seed: np.ndarray, margin: float) -> np.ndarray:
    """`seed` (H, W) bool (the parts kept as they are: glass, lights, wheels) grown, within `margin` of the
    photo's longer side around it, up to the strongest colour edge (a watershed of the colour gradient from the
    seed and from everything beyond the margin): a model's outline of a window or a headlight lies a few of its
    pixels inside or outside the real one, and the ring of chrome or glass between is often close enough to a
    white or silver paint's colour to pass as paint. Where there is no edge (the model was right) the flood
    from both sides meets in the middle of the margin: a few paint pixels stay. Worked out on every f-th pixel,
    at most SNAP_SIDE a side."""
    from scipy import ndimage
    from skimage.filters import sobel
    from skimage.segmentation import watershed

    if margin <= 0 or not seed.any():
        return seed
    f = max(1, int(np.ceil(max(seed.shape) / SNAP_SIDE)))
    radius = margin * max(seed.shape) / f
    y0, y1, x0, x1 = _box(seed, int(np.ceil(radius * f)) + 2 * f)
    y0, x0 = y0 - y0 % f, x0 - x0 % f
    crop = (slice(y0, y1), slice(x0, x1))
    small_seed = seed[y0:y1:f, x0:x1:f]  # every f-th pixel: an edge is an edge at any scale, and this is cheap
    pixels = image[y0:y1:f, x0:x1:f].astype(np.float32)
    gradient = np.max([sobel(pixels[..., c]) for c in range(3)], axis=0)
    # only the margin is flooded: its inner and outer rims are the markers (a watershed pushes every marker
    # pixel onto its queue, so marking the whole crop would cost the crop, not the margin)
    ring = np.ones((3, 3), bool)
    near = _dilate(small_seed, radius)
    band = near & ~small_seed
    inner = small_seed & ndimage.binary_dilation(band, ring)
    outer = ndimage.binary_dilation(near, ring) & ~near
    markers = np.where(inner, 1, np.where(outer, 2, 0)).astype(np.int32)
    grown = (watershed(gradient, markers, mask=band | inner | outer) == 1) & band
    out = seed.copy()
    out[crop] |= _grow_cells(grown, f, seed[crop].shape) if f > 1 else grown
    return out


EXTENT_SIDE = 768  # the car's outline is found on every f-th pixel, at most this a side (then refined per pixel)
EXTENT_FULL = 1024  # ... and on every pixel of a photo (its crop) no larger than this a side
SURE = 0.012  # the model's car mask, eroded by this share of the photo's longer side, is surely the car
DEEP = 0.035  # ... further in than this, whatever its colour
ROOM = 0.04  # the watershed's room around the car's geometric region (car_regions), a share of its size
REACH = 0.15  # ... and further, where the colour is the paint's (a share of the cars' size)
CORE = 0.045  # the gaps between the predicted parts further than this share of the car's size from the
# edge of the model's mask closed with a disc of CLOSE of its size are surely the car
CLOSE = 0.15
SEAM = 0.007  # dark lines thinner than this share of the photo's longer side are seams, not the car's outline


def car_extent(image: np.ndarray, car: np.ndarray, regions: np.ndarray, like: np.ndarray | None = None, *,
               part: np.ndarray | None = None, sure: float = SURE, seam: float = SEAM, room: float = ROOM,
               reach: float = REACH, core: float = CORE, close: float = CLOSE,
               deep: float = DEEP) -> tuple[np.ndarray, np.ndarray]:
    """(extent (H, W) bool, labels (H, W) integers): where the car is, pixel by pixel, so the paint grows over it
    and stops at its outline, and which car (`regions`' label) each of its pixels belongs to.

    `car`: the model's car mask (every predicted part); `regions`: where each car may be (`car_regions`); `part`:
    the chosen parts, which count even outside `regions`; `like`: how much each colour bin looks like the paint
    (`_Ref.grow`). The fenders, roof and quarter panels the model has no class for lie between the model's mask
    and the regions' edges. Surely the car: the model's mask eroded by `sure` of the photo's longer side (nearer
    its edge than `deep`, only in colours more the car's than the background's: a bumper drawn over the road),
    and the paint-coloured gaps between its parts (its closing by `close` of the cars' size) `core` in from
    their edge (a fender between a door and a wheel). Surely not: further than `room` of the cars' size from
    the regions, except, up to `reach`, colours of the paint that are more the car's than the background's (a
    fender past the regions' straight lines). Between them a watershed of the colour gradient floods from both,
    and they meet on the photo's strongest edge: the car's outline against the road, the wall or the sky,
    whatever their colour, not a line of the geometry. The gradient is taken after a grey closing that removes
    dark lines thinner than `seam` of the photo's longer side: the seams between panels, which the floods cross,
    unlike the outline (a step). Worked out on every f-th pixel (at most EXTENT_SIDE a side); `_refine` then
    places the outline per pixel."""
    from scipy import ndimage
    from skimage.filters import sobel
    from skimage.segmentation import watershed

    f = 1 if max(car.shape) <= EXTENT_FULL else max(1, int(np.ceil(max(car.shape) / EXTENT_SIDE)))
    small_car, small_regions = car[::f, ::f], regions[::f, ::f]
    if part is not None:  # the chosen parts outside every region still count (-1)
        small_regions = np.where(part[::f, ::f] & (small_regions == 0), -1, small_regions)
    placed = small_regions != 0
    if not placed.any():
        return np.zeros(car.shape, bool), np.zeros(car.shape, np.int32)
    if small_regions.max() <= 1:
        nearest = np.ones(small_regions.shape, np.int32)
    else:
        _, (iy, ix) = ndimage.distance_transform_edt(small_regions <= 0, return_indices=True)
        nearest = np.maximum(small_regions[iy, ix], 1).astype(np.int32)
    size = np.sqrt(placed.sum())
    # one distance transform for both widenings of the regions, one for both erosions of the car mask
    beyond = ndimage.distance_transform_edt(~placed)
    domain = beyond <= room * size
    far = beyond <= reach * size
    small_image = image[::f, ::f].reshape(-1, 3)
    if small_car.all():
        sure_car, deep_car = small_car.copy(), small_car.copy()
    else:
        within = ndimage.distance_transform_edt(small_car)
        sure_car = within > sure * max(car.shape) / f
        deep_car = within > deep * max(car.shape) / f
    coloured = _car_coloured(small_image, sure_car if sure_car.any() else small_car, far)
    ours = coloured & (like[_colour_index(small_image)].reshape(domain.shape) > 0.5) if like is not None else coloured
    # the model's mask a little in from its edge; nearer its edge than `deep`, only where the colour is more the
    # car's than the background's (a bumper or light drawn a few pixels over the road)
    inside = sure_car & placed & (coloured | deep_car)
    # ... and so is the paint in the gaps between the predicted parts (the model's mask closed), far from their
    # edges: a fender between a door and a wheel, which a race of the floods over faint edges would otherwise
    # hand to the background coming in at the car's end
    inside |= ~_dilate(~(_closed(small_car, close * size) & placed), core * size) & ~small_car & ours
    outside = ~domain
    if like is not None:
        # the paint's colour beyond the region, within `reach`, is not surely background: the car may go on
        # there (a fender or bumper past the last predicted part, cut by the region's straight lines); the
        # watershed decides it, from background markers further out
        outside &= ~(ours & far)
    outside &= ~inside
    unknown = ~outside & ~inside
    pixels = image[::f, ::f].astype(np.float32)
    # a grey closing first: the dark seams between panels are gone, the car's outline (a step from the car to
    # what is behind it) stays, so the floods cross seams and meet on the outline
    k = max(3, int(round(seam * max(pixels.shape[:2]))) | 1)
    pixels = ndimage.grey_closing(pixels, size=(k, k, 1))
    gradient = np.max([sobel(pixels[..., c]) for c in range(3)], axis=0)
    near = ndimage.binary_dilation(unknown, np.ones((3, 3), bool))
    markers = np.where(inside & near, 1, np.where(outside & near, 2, 0)).astype(np.int32)
    if not (markers == 1).any():
        small = placed
    else:
        flooded = watershed(gradient, markers, mask=unknown | (markers > 0))
        small = inside | ((flooded == 1) & unknown)
    extent = small if f == 1 else _refine(image, small, f)
    if nearest.max() <= 1:  # one car: its label is the extent itself (0/1, no copy)
        return extent, extent.view(np.uint8)
    labels = np.where(small, nearest, 0).astype(np.int32)
    return extent, (labels if f == 1 else _grow_cells(labels, f, car.shape)) * extent


def _car_coloured(pixels: np.ndarray, car: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels (`pixels` (H x W, 3) uint8) whose colour (16 levels a channel) is a larger share of
    the car (`car`: the model's mask a little inside its edges, which may lie over the road) than of the ring just
    outside `domain` (what is behind the car, beyond the reach of its region): a light road beside a silver car
    is not, so it stays background; a green fender cut off by the region's line is."""
    from scipy import ndimage

    q = (pixels >> 4).astype(np.int32)
    bins = (q[:, 0] << 8) | (q[:, 1] << 4) | q[:, 2]
    ring = (ndimage.binary_dilation(domain, iterations=2) & ~domain).ravel()
    mine = car.ravel()
    if not ring.any() or not mine.any():
        return np.ones(car.shape, bool)
    in_car = np.bincount(bins[mine], minlength=4096) / mine.sum()
    in_ring = np.bincount(bins[ring], minlength=4096) / ring.sum()
    return (in_car > in_ring)[bins].reshape(car.shape)


def _refine(image: np.ndarray, small: np.ndarray, f: int) -> np.ndarray:
    """The car found on every f-th pixel (`small`) at the photo's size, its outline placed per pixel: each pixel
    of the cells on either side of the outline goes to the side whose colour it is nearer (the mean colour of
    the nearest cell beyond the outline's cells on each side), so the outline follows the photo's edge, not the
    grid; where both sides have the same colour it stays where the cells put it."""
    from scipy import ndimage

    ring = np.ones((3, 3), bool)
    edge = ndimage.binary_dilation(small, ring) & ~ndimage.binary_erosion(small, ring, border_value=1)
    out = _grow_cells(small, f, image.shape[:2])
    if not edge.any():
        return out
    means = ndimage.uniform_filter(image[::f, ::f].astype(np.float32), size=(3, 3, 1), mode="nearest")
    sides = []
    for side in (small & ~edge, ~small & ~edge):
        if not side.any():
            return out
        _, (iy, ix) = ndimage.distance_transform_edt(~side, return_indices=True)
        sides.append(means[iy, ix])
    cy, cx = np.nonzero(edge)
    dy, dx = np.divmod(np.arange(f * f), f)
    ys = (cy[:, None] * f + dy[None, :]).ravel()
    xs = (cx[:, None] * f + dx[None, :]).ravel()
    cell_y, cell_x = np.repeat(cy, f * f), np.repeat(cx, f * f)
    ok = (ys < out.shape[0]) & (xs < out.shape[1])
    ys, xs, cell_y, cell_x = ys[ok], xs[ok], cell_y[ok], cell_x[ok]
    colour = image[ys, xs].astype(np.float32)
    to_car = ((colour - sides[0][cell_y, cell_x]) ** 2).sum(1)
    to_rest = ((colour - sides[1][cell_y, cell_x]) ** 2).sum(1)
    clear = np.abs(np.sqrt(to_car) - np.sqrt(to_rest)) >= 6.0  # same colour both sides: the cells decide
    decided = np.where(clear, to_car < to_rest, small[cell_y, cell_x])
    out[ys, xs] = decided
    return out


def _features(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(chromaticity (N, 2) in chroma units at L = 84, log2 luminance (N,)) from CIELAB. Below L = 24 the
    chromaticity is damped towards grey: there a pixel's few levels of colour are mostly noise."""
    scale = 100.0 / np.maximum(lab[:, 0] + 16.0, 40.0)
    chroma = lab[:, 1:] * scale[:, None]
    fy = (lab[:, 0] + 16.0) / 116.0
    y = np.where(fy > 0.2068966, fy ** 3, (fy - 16 / 116) / 7.787)
    return chroma, np.log2(np.maximum(y, 1e-4))


def _reference(lab: np.ndarray, where: np.ndarray, seed: int) -> tuple[tuple, float]:
    """The paint among a car's part pixels (`lab`, at positions `where` (N, 2)): ((chromaticity (2,), its
    spread, its median log2 luminance, the log2 luminance of its darkest shading), the share of the pixels it
    holds). K-means on chromaticity and log luminance, clusters closer than MERGE joined (a black paint's
    shades and its noisy tints are one paint); the paint is the cluster that covers the parts most
    widely (the most cells of an 8 x 8 grid over them where it holds a third of the pixels), not merely the
    largest: glass sits in the windows and a black car's sky reflections on its hood, the paint everywhere;
    and a colourful cluster (chroma 20 or more) holding a quarter of the pixels comes before grey ones."""
    from masksmith.apps.cluster import assign, fit_centres

    chroma, logy = _features(lab)
    features = np.column_stack([chroma, 4.0 * logy]).astype(np.float32)  # one stop of shading = 4 chroma units
    centres = fit_centres(features, K, seed)
    labels = _merge_close(centres)[assign(features, centres)]
    k = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=k)
    lo, hi = where.min(0), where.max(0) + 1
    grid = np.minimum(((where - lo) * 8) // np.maximum(hi - lo, 1), 7)
    cell = grid[:, 0] * 8 + grid[:, 1]
    table = np.zeros((64, k))
    np.add.at(table, (cell, labels), 1)
    covered = (table >= table.sum(1, keepdims=True) / 3) & (table > 0)
    score = covered.sum(0) * len(labels) + counts  # coverage first, size breaks ties
    # black and grey trim is on every car, coloured trim on few: a colourful cluster holding a quarter of the
    # pixels is the paint (a red car's black grille and cladding cover its bumper widely)
    colourful = np.array([np.hypot(*np.median(chroma[labels == c], axis=0)) >= 20 and counts[c] >= 0.25 * len(labels)
                          for c in range(k)])
    if colourful.any():
        score = np.where(colourful, score, -1)
    best = int(np.argmax(score))
    inside = labels == best
    mine = chroma[inside]
    c0 = np.median(mine, axis=0)
    spread = float(np.sqrt(np.median(((mine - c0) ** 2).sum(1))))
    if np.hypot(*c0) >= 20:  # colourful: the segment to grey runs from its fuller colours; spread across it
        u = c0 / np.hypot(*c0)
        along = mine @ u
        c0 = u * float(np.percentile(along, 90))
        spread = float(np.median(np.abs(mine @ np.array([-u[1], u[0]]))))
    return (c0, spread, float(np.median(logy[inside])), float(np.percentile(logy[inside], 5))), \
        float(inside.mean())


def _merge_close(centres: np.ndarray) -> np.ndarray:
    """(k,) the group of each centre: centres closer than MERGE, or both colourful (chroma 20 or more) with hues
    within 20 degrees (a blue paint's chroma swings with its light), directly or through others, are one."""
    group = np.arange(len(centres))
    chroma = np.hypot(centres[:, 0], centres[:, 1])
    hue = np.degrees(np.arctan2(centres[:, 1], centres[:, 0]))
    for a in range(len(centres)):
        for b in range(a + 1, len(centres)):
            turn = abs((hue[a] - hue[b] + 180.0) % 360.0 - 180.0)
            if np.linalg.norm(centres[a] - centres[b]) < MERGE or min(chroma[a], chroma[b]) >= 20 and turn < 20:
                group[group == group[b]] = group[a]
    return np.unique(group, return_inverse=True)[1]


def _smooth_below(x: np.ndarray, edge: float, width: float) -> np.ndarray:
    """1 for x <= edge, falling linearly to 0 at edge + width."""
    return np.clip((edge + width - x) / width, 0.0, 1.0)


def paint_likeness(chroma: np.ndarray, logy: np.ndarray, c0: np.ndarray, spread: float, mid: float, floor: float,
                   lightness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) weights in [0, 1] for each pixel: how much it looks like the paint (c0, spread, mid: `_reference`;
    floor: the darkest paint), and how far it is along the way from the paint's chromaticity to grey.

    Paint under any light is the paint's chromaticity c0 (shading does not move it), plus neutral light
    reflected off its clear coat, which pulls the chromaticity towards grey along the segment c0 -> 0 and
    makes the pixel brighter. So the distance is measured to that segment; the further along it (the more
    grey), the brighter the pixel must be; and nothing darker than the paint's darkest shading is paint."""
    c0 = np.asarray(c0, np.float32)
    norm2 = float(c0 @ c0)
    base = max(7.0, 3.0 * spread)
    noise = 1.0 + 12.0 / np.maximum(lightness, 4.0)  # dark pixels' chromaticity is noisier: more room
    tol = base * noise
    if mid < DARK and norm2 < 400.0:
        # a black (dark and grey) paint's clear coat shows what it reflects (a warm sky on the hood): brighter
        # than its mid-tone, more colour is still the paint, up to three times the room two stops up
        tol = tol * (1.0 + 2.0 * np.clip((logy - mid - 0.5) / 1.5, 0.0, 1.0))
    # 0 at the paint, 1 at grey
    t = np.clip(1.0 - (chroma @ c0) / norm2, 0.0, 1.0) if norm2 > 1e-6 else np.zeros(len(chroma), np.float32)
    nearest = (1.0 - t)[:, None] * c0[None, :]
    # a near-grey paint (white, silver, black) is its own grey end: no highlight rule, within tolerance anyway
    mid_l = 116.0 * 2.0 ** (mid / 3.0) - 16.0
    t = t * float(np.clip(np.sqrt(norm2) / (base * (1.0 + 12.0 / max(mid_l, 4.0))) - 1.0, 0.0, 1.0))
    # towards grey the hue is less sure (clipped highlights of a red turn pink): more room there
    d = np.sqrt(((chroma - nearest) ** 2).sum(1)) / (tol * (1.0 + 1.5 * t))
    # tinted: no darker than the darkest shading (dark reflections on the paint keep some of its hue); grey:
    # brighter than the mid-tone, the more so the greyer (a white plate on a cyan car is not its highlight)
    brighter = mid - 0.5 + np.log2(0.5 / np.maximum(1.0 - t, 0.0625))
    need = floor + np.clip((t - 0.75) / 0.15, 0.0, 1.0) * np.maximum(brighter - floor, 0.0)
    return _smooth_below(d, 1.0, 0.5) * (1.0 - _smooth_below(logy, need - 0.5, 0.5)), t


def _connected(solid: np.ndarray, seeds: np.ndarray, f: int, min_cells: int = 4) -> np.ndarray:
    """The pixels of `solid` in a connected piece (8-connected on a grid of f x f cells, after closing gaps of
    a few cells such as the dark line between two panels) that holds some of `seeds`."""
    from scipy import ndimage
    cells = _shrink_any(solid, f)
    closed = ~_dilate(~_dilate(cells, 2.5), 2.5) | cells
    comps, _ = ndimage.label(closed, structure=np.ones((3, 3), bool))
    seeded = np.bincount(comps[_shrink_any(seeds & solid, f)], minlength=comps.max() + 1)
    total = int(seeded[1:].sum())
    good = seeded >= max(min_cells, 0.002 * total)
    good[0] = False
    return solid & _grow_cells(good[comps], f, solid.shape)


def _soft_edge(solid: np.ndarray, like: np.ndarray, feather: int) -> np.ndarray:
    """Weights: 1 on the paint, and on the `feather` rings of pixels outside it falling as (1 - k/(feather+1))^2
    for the k-th ring, times how much each pixel looks like the paint (0 where it may not change: the edge of
    a window or a light next to the paint stays as it is)."""

    w = solid.astype(np.float32)
    grown = solid
    for k in range(1, max(0, feather) + 1):
        ring = _dilate8(grown) & ~grown
        w[ring] = like[ring] * (1.0 - k / (feather + 1)) ** 2
        grown = grown | ring
    return w


def _without_specks(solid: np.ndarray, size: float = 0.05) -> np.ndarray:
    """`solid` without its 8-connected pieces smaller than (size x its square-root area)^2 pixels."""
    from scipy import ndimage

    area = int(solid.sum())
    if area == 0:
        return solid
    y0, y1, x0, x1 = _box(solid, 0)  # the pieces lie in its bounding box: labelled there only
    # int64 labels: bincount takes them as they are (int32 ones it first copies to int64)
    pieces, n = ndimage.label(solid[y0:y1, x0:x1], structure=np.ones((3, 3), bool), output=np.int64)
    if n <= 1:
        return solid
    sizes = np.bincount(pieces.ravel())
    big = sizes > max(4, int((size * np.sqrt(area)) ** 2))
    big[0] = False
    out = np.zeros_like(solid)
    out[y0:y1, x0:x1] = big[pieces]
    return out


def _small_holes(solid: np.ndarray, allowed: np.ndarray, size: float = 0.05) -> np.ndarray:
    """The `allowed` pixels of holes in `solid` (4-connected pieces of the rest that do not reach the edge)
    smaller than (size x its square-root area)^2 pixels."""
    from scipy import ndimage

    area = int(solid.sum())
    if area == 0:
        return np.zeros_like(solid)
    biggest = max(4, int((size * np.sqrt(area)) ** 2))
    # labelled within the paint's bounding box only: a piece of the rest there that reaches the box's edge
    # joins what lies outside the box, which reaches the array's edge: not a hole either way
    y0, y1, x0, x1 = _box(solid, 0)
    pieces, _ = ndimage.label(~solid[y0:y1, x0:x1], output=np.int64)
    sizes = np.bincount(pieces.ravel())
    small = sizes <= biggest
    small[0] = False
    small[np.unique(np.concatenate([pieces[0], pieces[-1], pieces[:, 0], pieces[:, -1]]))] = False
    out = np.zeros_like(solid)
    out[y0:y1, x0:x1] = small[pieces] & allowed[y0:y1, x0:x1]
    return out


BITS = 6  # paint likeness is looked up per colour in a table of 6 bits a channel (bins 4 levels wide)


def _colour_index(pixels: np.ndarray) -> np.ndarray:
    """(N,) int32 index of each uint8 RGB pixel's colour bin in the tables (BITS bits a channel)."""
    q = pixels >> (8 - BITS)
    index = q[:, 0].astype(np.int32)
    index <<= BITS
    index |= q[:, 1]
    index <<= BITS
    index |= q[:, 2]
    return index


def _table_colours() -> np.ndarray:
    """(2^(3 BITS), 3) uint8: the centre colour of every bin, in `_colour_index` order."""
    bins = np.arange(1 << (3 * BITS), dtype=np.int32)
    mask = (1 << BITS) - 1
    q = np.column_stack([bins >> (2 * BITS), (bins >> BITS) & mask, bins & mask])
    return ((q << (8 - BITS)) + (1 << (8 - BITS)) // 2).astype(np.uint8)


_TABLE: dict[str, np.ndarray] = {}


def _table_features() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(chromaticity, log2 luminance, lightness) of every bin's colour, computed once."""
    if not _TABLE:
        lab = to_lab(_table_colours())
        chroma, logy = _features(lab)
        _TABLE.update(chroma=chroma, logy=logy, lightness=lab[:, 0])
    return _TABLE["chroma"], _TABLE["logy"], _TABLE["lightness"]


@dataclass
class _Ref:
    """One paint found in the photo and its likeness per colour bin."""
    region: int
    c0: np.ndarray
    mid: float
    like: np.ndarray  # (bins,) float32: how much a colour looks like this paint
    grow: np.ndarray  # (bins,) ... outside the chosen parts (only paint-coloured pixels: no pale wall)


def _black(ref: _Ref) -> bool:
    """A black paint: darker than DARK and grey (a deep red or navy is as dark, but its hue sets it apart)."""
    return ref.mid < DARK and float(np.hypot(*ref.c0)) < 20.0


def _ref(region: int, paint: tuple) -> _Ref:
    c0, spread, mid, dark = paint
    floor = min(dark, mid - 1.0) - 1.5 if mid >= DARK else -20.0
    chroma, logy, lightness = _table_features()
    like, t = paint_likeness(chroma, logy, c0, spread, mid, floor, lightness)
    return _Ref(region, c0, mid, like.astype(np.float32), (like * _smooth_below(t, 0.35, 0.2)).astype(np.float32))


class _Where:
    """Positions of the candidate pixels (in the order of candidates[mask]), worked out once when first asked
    (a 12-megapixel photo has millions)."""

    def __init__(self, candidates: np.ndarray, f: int) -> None:
        self.candidates = candidates
        self.f = f
        self._yx: tuple[np.ndarray, np.ndarray] | None = None

    def at(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._yx is None:
            self._yx = tuple(np.nonzero(self.candidates))  # type: ignore[assignment]
        return self._yx[0][rows], self._yx[1][rows]  # type: ignore[index]

    def points(self, rows: np.ndarray) -> np.ndarray:
        return np.column_stack(self.at(rows))

    def cells(self, rows: np.ndarray, grid: np.ndarray) -> np.ndarray:
        ys, xs = self.at(rows)
        return grid[ys // self.f, xs // self.f]


def _references(pixels: np.ndarray, index: np.ndarray, where: _Where, in_part: np.ndarray, which: np.ndarray,
                n: int, pieces_grid: np.ndarray, rng: np.random.Generator, seed: int) -> list[_Ref]:
    """Each car's paint, from a sample of its part pixels; and, where a connected piece of the chosen parts holds
    at least a quarter of its car's part pixels, is mostly one colour of its own and hardly looks like the car's
    paint, that piece's paint too (two cars of different colours side by side each keep theirs; a bumper that is
    half black plastic does not)."""

    def sample(rows: np.ndarray) -> np.ndarray:
        return rows if len(rows) <= SAMPLE else np.sort(rng.choice(rows, SAMPLE, replace=False))

    refs = []
    for i in range(1, n + 1):
        own = np.flatnonzero(in_part & (which == i))
        if len(own) == 0:
            continue
        pick = sample(own)
        main, _ = _reference(to_lab(pixels[pick]), where.points(pick), seed)
        refs.append(_ref(i, main))
        if pieces_grid.max() <= 1:  # the chosen parts are one piece: it holds all of the car's part pixels
            continue
        pieces = where.cells(own, pieces_grid)
        sizes = np.bincount(pieces)
        for p in np.flatnonzero(sizes >= len(own) / 4):
            mine = own[pieces == p]
            if len(mine) == len(own) or (refs[-1].grow[index[mine]] > 0.5).mean() >= 0.25:
                continue
            pick = sample(mine)
            other, share = _reference(to_lab(pixels[pick]), where.points(pick), seed)
            if share >= 0.3:
                refs.append(_ref(i, other))
    return refs


def find_paint(image: np.ndarray, part_mask: np.ndarray, car_mask: np.ndarray | None = None,
               keep: np.ndarray | None = None, grow: bool = True, paint_only: bool = True, feather: int = 2,
               seed: int = 0, snap: float = SNAP) -> Paint:
    """Where the paint of the chosen parts (`part_mask`) is, grown over the rest of the car (`car_mask`, the
    union of every predicted part; without it nothing outside `part_mask` changes); `keep`: pixels never
    painted. `feather`: pixels of soft edge outside the paint, where edge pixels mix the paint with their
    neighbours (weights fall off outwards and follow how well each pixel's hue matches the paint).
    `paint_only=False`: every pixel of the parts is paint (the old recolour, feathered inwards), none grows.
    `snap`: how far (a share of the photo's longer side) `keep`'s outlines may move out to the photo's nearest
    strong edge (`snap_to_edges`; 0: `keep` as given)."""
    from scipy import ndimage

    image, part = check_inputs(image, part_mask)
    shape = image.shape[:2]
    car = _check_mask(car_mask, shape, "car mask")
    keep = _check_mask(keep, shape, "keep mask")
    weight = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.int32)
    if not 0.0 <= snap <= 0.2:
        raise MasksmithError(f"snap {snap} is outside 0..0.2.", fix="give a share of the photo's longer side from 0 "
                             "(keep the kept parts' outlines as given) to 0.2.")
    if keep is not None:
        if paint_only and snap > 0:
            keep = snap_to_edges(image, keep, float(snap))
        part = part & ~keep
    if not part.any():
        return Paint(weight, labels, {})
    grow = grow and paint_only and car is not None
    car = part if car is None else (car | part)
    y0, y1, x0, x1 = _box(car if grow else part, margin=int(0.05 * max(shape)) if grow else 0)
    crop = (slice(y0, y1), slice(x0, x1))
    part_c = part[crop]
    if not paint_only:
        w = feather_weights(part_c, int(feather))
        weight[crop] = w
        labels[crop] = (w > 0).astype(np.int32)
        values = _gather(image, part_c, crop)
        lum = _luminance(values)
        mid = max(float(np.median(lum)), 1e-4)
        return Paint(weight, labels, {1: _info(values, lum, mid, int(part_c.sum()), 0)})
    regions, n = car_regions(car[crop], part_c)
    f = max(1, int(np.ceil(max(part_c.shape) / 768)))
    pieces, _ = ndimage.label(_shrink_any(part_c, f), structure=np.ones((3, 3), bool))
    # each car's paint, from its chosen parts' pixels
    own = _gather(image, part_c, crop)
    refs = _references(own, _colour_index(own), _Where(part_c, f), np.ones(len(own), bool), regions[part_c], n,
                       pieces, np.random.default_rng(seed), seed)
    if grow:
        # the car pixel by pixel: the paint stops at its outline (a wall or road of the paint's colour stays),
        # inside the chosen parts too (a part the model drew over the road)
        like = np.max([ref.grow for ref in refs], axis=0) if refs else None
        extent, regions = car_extent(image[crop], car[crop], regions, like, part=part_c)
        part_c = part_c & extent
        candidates = part_c | (regions > 0)
    else:
        candidates = part_c.copy()
    if keep is not None:
        candidates &= ~keep[crop]
    pixels = _gather(image, candidates, crop)
    index = _colour_index(pixels)
    in_part = part_c[candidates]
    which = regions[candidates]
    where = _Where(candidates, f)
    soft = np.zeros(len(pixels), np.float32)
    best = np.zeros(len(pixels), np.int32)
    score = np.zeros(len(pixels), np.float32)
    hull_only = None
    if grow and any(_black(ref) for ref in refs):
        # a black paint looks like shadows, tyres, asphalt and dark cars behind: it grows within the hull of what
        # the model found only, not out over the rows beside it (`cap` 0)
        hull_only = in_part | (car_regions(car[crop], part_c, cap=0.0)[0][candidates] > 0)
    for k, ref in enumerate(refs, start=1):
        mine = np.flatnonzero(which == ref.region)
        if hull_only is not None and _black(ref):
            mine = mine[hull_only[mine]]
        bins = index[mine]
        like = np.where(in_part[mine], ref.like[bins], ref.grow[bins])
        soft[mine] = np.maximum(soft[mine], like)
        if len(refs) == 1:  # one paint: nothing to choose between
            continue
        # each pixel belongs to the paint it looks most like, its own colour before a highlight of another's
        mine_score = like + ref.grow[bins]
        better = mine_score > score[mine]
        score[mine[better]] = mine_score[better]
        best[mine[better]] = k
    w = np.zeros(part_c.shape, np.float32)
    w[candidates] = soft
    # connected to the paint inside the chosen parts: glass, the road and the wall stay out
    solid = _connected(w > 0.5, part_c, f)
    # small holes are the paint too (reflections, JPEG blocks, a badge): filled; glass, lights, plates stay,
    # and so does a grille, once the specks of paint-like colour in its mesh are dropped
    solid = _without_specks(solid)
    solid |= _small_holes(solid, candidates)
    like_map = np.zeros(part_c.shape, np.float32)
    like_map[candidates] = soft
    w = _soft_edge(solid, like_map, int(feather))
    weight[crop] = w
    firm = w[candidates] > 0.5
    if len(refs) <= 1:  # one paint: its label is where the weight is
        np.greater(w, 0, out=labels[crop])
        which_paint = firm.astype(np.int32)
    else:
        which_paint = _paint_labels(labels, crop, w, candidates, solid, best, where, f)
    paints = {}
    # the paint's pixels are candidates (w > 0.5 only on `solid` and on feather rings of paint-like candidates):
    # their colours are taken from the candidates' (already gathered)
    for k in range(1, len(refs) + 1):
        sel = firm & (which_paint == k)
        values = _gather(pixels, sel)
        if len(values) == 0:
            continue
        lum = _luminance(values)
        paints[k] = _info(values, lum, max(float(np.median(lum)), 1e-4), len(values), int((sel & ~in_part).sum()))
    return Paint(weight, labels, paints)


def _paint_labels(labels: np.ndarray, crop: tuple[slice, slice], w: np.ndarray, candidates: np.ndarray,
                  solid: np.ndarray, best: np.ndarray, where: _Where, f: int) -> np.ndarray:
    """Several paints: each candidate takes the paint it looks most like (`best`), holes and edge pixels the
    paint of the nearest painted pixel (on the cell grid); written into labels[crop]. Returns the candidates'
    labels."""
    from scipy import ndimage

    paint_of = np.zeros(w.shape, np.int32)
    paint_of[candidates] = best
    cells = np.zeros(_shrink_any(solid, f).shape, np.int32)
    ys, xs = where.at(np.arange(len(best)))
    cells[ys // f, xs // f] = np.where(solid[candidates], best, 0)
    _, nearest = ndimage.distance_transform_edt(cells == 0, return_indices=True)
    filled = cells[nearest[0], nearest[1]]
    paint_of = np.where(paint_of > 0, paint_of, _grow_cells(filled, f, w.shape))
    paint_of[w <= 0] = 0
    labels[crop] = paint_of
    return paint_of[candidates]


def _medians(values: np.ndarray) -> tuple[int, int, int]:
    """int() of np.median(values, axis=0) for (N, 3) uint8, from each channel's histogram (no sort)."""
    n = len(values)
    out = []
    for c in range(values.shape[1]):
        cum = np.cumsum(np.bincount(values[:, c], minlength=256))
        low, high = np.searchsorted(cum, [(n - 1) // 2, n // 2], side="right")  # the middle order statistics
        out.append(int((int(low) + int(high)) / 2))
    return tuple(out)  # type: ignore[return-value]


def _info(values: np.ndarray, lum: np.ndarray, mid: float, pixels: int, grown: int) -> PaintInfo:
    hi = float(np.percentile(lum, 90)) if len(lum) else mid
    rgb = _medians(values) if len(values) else (0, 0, 0)
    return PaintInfo(rgb, mid, float(np.clip(hi / mid, 1.3, 2.0)), pixels, grown)


def _target_linear(color) -> np.ndarray:
    from masksmith.apps.colorspace import parse_color

    rgb = parse_color(color) if isinstance(color, str) else tuple(int(c) for c in color)
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise MasksmithError(f"colour {color!r} is not three values 0..255.")
    return LINEAR[np.asarray(rgb, np.uint8)].astype(np.float32)


def _channel_max(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) -> (N,) largest channel (column by column: 7x faster than .max(1) over three values)."""
    return np.maximum(np.maximum(rgb[:, 0], rgb[:, 1]), rgb[:, 2])


def _into_gamut(rgb: np.ndarray) -> np.ndarray:
    """Linear RGB (N, 3) -> in [0, 1]: colours with a channel above 1 move towards the grey of their own
    luminance until they fit (hue and luminance kept, saturation lost), then everything is clipped."""
    over = np.flatnonzero(_channel_max(rgb) > 1.0)
    if len(over):
        part = rgb[over]
        y = np.minimum(part @ _Y, 1.0)[:, None]
        top = _channel_max(part)[:, None]
        t = np.clip((1.0 - y) / np.maximum(top - y, 1e-6), 0.0, 1.0)
        rgb[over] = y + t * (part - y)
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def shade_transfer(pixels: np.ndarray, info: PaintInfo, target: np.ndarray, lightness: float = 1.0,
                   glint: np.ndarray | None = None, lum: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) uint8 paint pixels of one car -> (N, 3) float32 linear RGB of the same paint in `target`
    (linear RGB): target x shading, plus the photo's own light above the highlight level, unchanged. `glint`
    (N,) in [0, 1]: how much each pixel is a clipped highlight, kept as it is. `lum`: the pixels' linear
    luminance, when the caller has it already."""
    if lum is None:
        lum = _luminance(pixels)
    t_lum = float(target @ _Y)
    if t_lum > 1e-6:
        goal = info.luminance ** (1.0 - lightness) * t_lum ** lightness
        paint = (target * (goal / t_lum)).astype(np.float32)
    else:  # black: the shading has nothing to scale; use a near-black of the photo's shading
        goal = info.luminance ** (1.0 - lightness) * 1e-3 ** lightness
        paint = np.full(3, goal, np.float32)
    shading = lum / np.float32(info.luminance)
    cap = np.float32(info.highlight)
    # on a dark paint most of the brightness variation is reflection, not shading: compressed (a black car
    # resprayed white is not grey where it was blackest)
    mid_l = 116.0 * info.luminance ** (1 / 3) - 16.0
    gamma = 1.0 - lightness * (1.0 - float(np.clip((mid_l - 10.0) / 40.0, 0.35, 1.0)))
    diffuse = np.minimum(shading, cap, out=shading)
    if gamma != 1.0:
        diffuse **= np.float32(gamma)
    excess = np.maximum(lum - info.highlight * info.luminance, 0.0)
    out = np.multiply.outer(diffuse, paint)
    out += excess[:, None]
    out = _into_gamut(out)
    if glint is None:
        return out
    # only the glints' pixels blend with the photo's own light (elsewhere the weight is 0: out as it is)
    lit = np.flatnonzero(glint > 0)
    g = (glint[lit] * np.float32(lightness))[:, None]
    out[lit] = out[lit] * (1.0 - g) + LINEAR[pixels[lit]] * g
    return out


def glints(image: np.ndarray, weight: np.ndarray, paint: Paint, lum: np.ndarray | None = None) -> np.ndarray:
    """(H, W) float32 in [0, 1]: clipped highlights on the paint, which stay as they are: near-white pixels
    (luminance above 0.9) a quarter brighter than their paint's mid-tone, in spots smaller than 1.5 % of the
    paint (how much brighter they really were is lost; a sun glint on red paint is one on navy paint too).
    Large clipped areas are paint in too much light (an over-exposed white car), and are resprayed. `lum`: the
    linear luminance of the pixels where `weight` > 0 (in the order of image[weight > 0]), when known."""
    from scipy import ndimage

    mid = np.full(max(paint.paints, default=0) + 1, 10.0, np.float32)
    for i, info in paint.paints.items():
        mid[i] = info.luminance
    inside = weight > 0
    soft = np.zeros(weight.shape, np.float32)
    if lum is None:
        lum = _luminance(_gather(image, inside))
    soft[inside] = np.clip((lum - np.maximum(0.9, 1.25 * mid[np.clip(paint.label[inside], 0, len(mid) - 1)])) / 0.05,
                           0.0, 1.0)
    lit = soft > 0
    if not lit.any():
        return soft
    # the spots are labelled within their bounding box only (the same spots; glints are few)
    y0, y1, x0, x1 = _box(lit, 0)
    spots, n = ndimage.label(lit[y0:y1, x0:x1], structure=np.ones((3, 3), bool))
    sizes = np.bincount(spots.ravel())
    small = sizes <= max(9, 0.015 * float(np.count_nonzero(weight > 0.5)))
    small[0] = False
    soft[y0:y1, x0:x1] *= small[spots]
    return soft


def _encode(linear: np.ndarray) -> np.ndarray:
    """Linear RGB -> sRGB uint8 (clips `linear` to [0, 1] in place: the caller's array is scratch)."""
    scaled = np.clip(linear, 0.0, 1.0, out=linear)
    scaled *= np.float32(LINEAR_STEPS)
    scaled += np.float32(0.5)
    return ENCODE[scaled.astype(np.int32)]


def respray(image: np.ndarray, part_mask: np.ndarray, color, *, car_mask: np.ndarray | None = None,
            keep: np.ndarray | None = None, grow: bool = True, lightness: float | None = None, feather: int = 2,
            paint_only: bool = True, paint: Paint | None = None, snap: float | None = None) -> np.ndarray:
    """The photo with the paint of the chosen parts (and, with `grow`, the same paint around them inside the
    car) in `color` (RGB or any parse_color text). `car_mask`: every predicted part of the car (growth stays
    inside it, widened a little); `keep`: pixels never changed (the other predicted parts). `lightness`: None
    (automatic: the paint's mid-tones reach the colour) or 0..1 (how far the mid-tone's luminance moves to the
    colour's; 0 keeps the photo's). `paint`: a `find_paint` result to reuse for several colours. `snap`: how far
    `keep`'s outlines may move out to the photo's edges (`find_paint`; None: SNAP)."""
    image, part = check_inputs(image, part_mask)
    if lightness is not None and not 0.0 <= lightness <= 1.0:
        raise MasksmithError(f"lightness {lightness} is outside 0..1.", fix="give a value from 0 to 1, or none "
                             "for automatic.")
    target = _target_linear(color)
    if paint is None:
        paint = find_paint(image, part, car_mask, keep, grow, paint_only, int(feather),
                           snap=SNAP if snap is None else float(snap))
    out = np.ascontiguousarray(image).copy()
    solid = paint.weight > 0
    if not solid.any():
        return out
    y0, y1, x0, x1 = _box(solid, 0)
    crop = (slice(y0, y1), slice(x0, x1))
    weight = paint.weight[crop]
    inside = weight > 0
    pixels = _gather(out, inside, crop)
    lum = _luminance(pixels)  # once, for the glints and the shading
    which = paint.label[crop][inside]
    shine = glints(image[crop], weight, Paint(weight, paint.label[crop], paint.paints), lum=lum)[inside]
    amount = 1.0 if lightness is None else float(lightness)
    new = np.zeros((len(pixels), 3), np.float32)
    for i, info in paint.paints.items():
        sel = which == i
        if sel.all():
            new = shade_transfer(pixels, info, target, amount, shine, lum=lum)
        elif sel.any():
            new[sel] = shade_transfer(pixels[sel], info, target, amount, shine[sel], lum=lum[sel])
    w = weight[inside][:, None]
    blended = _encode(new).astype(np.float32)
    blended *= w
    blended += (1.0 - w) * pixels
    _put(out[crop], inside, np.clip(np.rint(blended, out=blended), 0, 255, out=blended).astype(np.uint8))
    return out


@dataclass
class ResprayMasks:
    """What `respray` needs from a model's prediction: the chosen parts, the car (every predicted part: where
    the paint may grow), and the other predicted parts (`keep`: never changed)."""
    part: np.ndarray
    car: np.ndarray
    keep: np.ndarray


def respray_masks(prediction, classes: ClassMap, parts: Iterable[str],
                  shape: tuple[int, int] | None = None) -> ResprayMasks:
    """The masks for `respray` from a prediction: a semantic class-value mask (0 background, 255 void) or an
    instance model's objects (each with .label and .mask; `shape`, the photo's (H, W), for when there are
    none). `parts`: the chosen class names."""
    wanted = set(parts)
    if isinstance(prediction, np.ndarray):
        part = np.isin(prediction, [classes.value(name) for name in wanted if name in classes])
        car = np.isin(prediction, list(classes.values))
        return ResprayMasks(part, car, car & ~part)
    objects = list(prediction)
    if objects:
        shape = np.asarray(objects[0].mask).shape
    elif shape is None:
        raise MasksmithError("an instance prediction without objects needs the photo's shape.",
                             fix="pass shape=image.shape[:2].")
    part, car = np.zeros(shape, bool), np.zeros(shape, bool)
    for o in objects:
        m = np.asarray(o.mask, bool)
        car |= m
        if o.label in wanted:
            part |= m
    return ResprayMasks(part, car, car & ~part)
