"""A data set's fingerprint: the facts a training plan is made from (masksmith.train.plan), measured once per
data set and cached, shown by `dataset inspect` and printed by `train`.

- Image sizes: median, min and max of width and height, aspect ratios (width / height), and whether sizes vary.
- Per class: share of the labelled pixels, instances per image, typical object size (the square root of a
  connected piece's area) and typical thickness, each as a median and a low (10th) percentile for the thinnest
  or smallest pieces.
- The void share.
- In a binary set (one class), the background measured as a class too: membranes or cracks are often drawn as
  the background between thick regions, and then the background is the thin side the plan must keep.

Thickness of one connected piece of a class: the median over its skeleton (skimage.morphology.skeletonize) of
2 x the Euclidean distance to the nearest pixel outside it, minus 1, so a line drawn n pixels wide measures n.
The median over a piece's own skeleton ignores the short spurs a skeleton grows into corners; a class's
thickness percentiles weigh each piece by its area, so the scraps an occlusion cuts off a part do not make a
chunky class look thin (sizes are per piece: the smallest objects count as much as the large ones).

Bounded cost: the image-size facts come from every sample (no image is decoded), the pixel facts from up to
MAX_IMAGES samples spread evenly over the data set, each measured at no more than MAX_PIXELS pixels (larger
masks are reduced by nearest neighbour and the lengths scaled back to full size).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from masksmith.core.labels import IGNORE_INDEX
from masksmith.data.schema import Dataset, Sample

VERSION = 2  # bump when what is measured changes, so cached fingerprints are measured again
MAX_IMAGES = 48
MAX_PIXELS = 2048 * 2048
MIN_PIECE = 3  # pieces of fewer pixels are noise in the annotation, not objects
LOW = 10  # the low percentile: "the thinnest" / "the smallest"


@dataclass
class ClassPrint:
    name: str
    pixel_share: float = 0.0  # of the labelled (non-void) pixels of the measured images
    images: int = 0  # measured images where the class appears
    instances_per_image: float = 0.0  # annotated objects per image, over all images
    pieces: int = 0  # connected pieces measured
    size_median: float | None = None  # sqrt(area) of a piece, full-size pixels
    size_low: float | None = None
    thickness_median: float | None = None  # full-size pixels
    thickness_low: float | None = None


@dataclass
class Fingerprint:
    images: int
    measured_images: int
    width: dict[str, float]  # median, min, max
    height: dict[str, float]
    aspect: dict[str, float]  # width / height: median, min, max
    sizes_vary: bool
    void_share: float
    classes: list[ClassPrint] = field(default_factory=list)
    key: str = ""
    background: ClassPrint | None = None  # measured in binary sets only

    @property
    def binary(self) -> bool:
        """One class beside the background: both sides of the mask matter."""
        return len(self.classes) == 1

    def background_name(self) -> str | None:
        return self.background.name if self.background is not None else None

    @property
    def median_size(self) -> tuple[float, float]:
        """(height, width) of the typical image."""
        return self.height["median"], self.width["median"]

    def thinnest(self, with_background: bool = False) -> ClassPrint | None:
        """The class with the lowest low-percentile thickness (among classes with measured pieces), the
        background of a binary set included when asked."""
        found = [*self.classes, *([self.background] if with_background and self.background else [])]
        known = [c for c in found if c.thickness_low is not None]
        return min(known, key=lambda c: c.thickness_low) if known else None  # type: ignore[arg-type, return-value]

    def smallest(self) -> ClassPrint | None:
        known = [c for c in self.classes if c.size_low is not None]
        return min(known, key=lambda c: c.size_low) if known else None  # type: ignore[arg-type, return-value]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fingerprint:
        data = dict(data)
        data["classes"] = [ClassPrint(**c) for c in data.get("classes", [])]
        data["background"] = ClassPrint(**data["background"]) if data.get("background") else None
        return cls(**data)

    def lines(self) -> list[str]:
        """What `inspect` and `train` print."""
        w, h, a = self.width, self.height, self.aspect
        out = [f"fingerprint ({self.measured_images} of {self.images} images measured):",
               f"  image size: median {w['median']:.0f}x{h['median']:.0f} (min {w['min']:.0f}x{h['min']:.0f}, "
               f"max {w['max']:.0f}x{h['max']:.0f}); aspect w/h {a['median']:.2f} "
               f"({a['min']:.2f}-{a['max']:.2f}); sizes {'vary' if self.sizes_vary else 'are alike'}",
               f"  void: {100 * self.void_share:.1f} % of pixels"]
        for c in [*self.classes, *([self.background] if self.background else [])]:
            if not c.pieces:
                out.append(f"  {c.name}: not in the measured images")
                continue
            out.append(f"  {c.name}: {100 * c.pixel_share:.2f} % of pixels, {c.instances_per_image:.1f} per image, "
                       f"size {_px(c.size_median)} (smallest {_px(c.size_low)}), thickness "
                       f"{_px(c.thickness_median)} (thinnest {_px(c.thickness_low)})")
        return out


def _px(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} px" if x < 10 else f"{x:.0f} px"


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": float(np.median(values)), "min": float(min(values)), "max": float(max(values))}


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The value below which q % of the total weight lies."""
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][min(len(values) - 1, int(np.searchsorted(cum, q / 100 * cum[-1])))])


def piece_measures(mask: np.ndarray) -> list[tuple[float, float]]:
    """(sqrt(area), thickness) of every connected piece (8-connected) of a boolean mask, in its pixels."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    out = []
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        piece = np.pad(labels[box] == k, 1)
        area = int(piece.sum())
        if area < MIN_PIECE:
            continue
        dist = ndimage.distance_transform_edt(piece)
        skeleton = skeletonize(piece)
        values = dist[skeleton] if skeleton.any() else dist[piece]
        out.append((math.sqrt(area), max(1.0, 2 * float(np.median(values)) - 1)))
    return out


def measured_samples(dataset: Dataset, limit: int = MAX_IMAGES) -> list[Sample]:
    """Up to `limit` samples spread evenly over the data set (the same ones every time)."""
    samples = [s for s in dataset.samples if s.width and s.height]
    if len(samples) <= limit:
        return samples
    idx = np.linspace(0, len(samples) - 1, limit).round().astype(int)
    return [samples[i] for i in sorted(set(idx.tolist()))]


def compute_fingerprint(dataset: Dataset, limit: int = MAX_IMAGES) -> Fingerprint:
    from masksmith.data.rasterize import semantic_mask

    sized = [s for s in dataset.samples if s.width and s.height] or dataset.samples
    widths = [float(s.width) for s in sized] or [0.0]
    heights = [float(s.height) for s in sized] or [0.0]
    aspects = [w / h for w, h in zip(widths, heights, strict=True) if h] or [1.0]
    vary = (max(widths) > 1.1 * min(widths)) or (max(heights) > 1.1 * min(heights))
    class_map = dataset.class_map
    index, names, values = class_map.index(), list(class_map.names), class_map.values
    pixels = np.zeros(class_map.num_values, np.float64)
    void = 0.0
    images = np.zeros(class_map.num_values, int)
    measures: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    binary = len(names) == 1  # then the background is measured too: it may be the thin side (membranes)
    background: list[tuple[float, float]] = []
    chosen = measured_samples(dataset, limit)
    for sample in chosen:
        mask = semantic_mask(sample, index)
        factor = 1.0
        if mask.size > MAX_PIXELS:
            factor = math.sqrt(MAX_PIXELS / mask.size)
            rows = np.linspace(0, mask.shape[0] - 1, max(1, round(mask.shape[0] * factor))).round().astype(int)
            cols = np.linspace(0, mask.shape[1] - 1, max(1, round(mask.shape[1] * factor))).round().astype(int)
            mask = mask[rows][:, cols]
        counts = np.bincount(mask.ravel(), minlength=256)
        void += counts[IGNORE_INDEX] / factor**2
        pixels += counts[: class_map.num_values] / factor**2
        images += counts[: class_map.num_values] > 0
        for value, name in zip(values, names, strict=True):
            if counts[value]:
                measures[name] += [(s / factor, t / factor) for s, t in piece_measures(mask == value)]
        if binary and counts[0]:
            background += [(s / factor, t / factor) for s, t in piece_measures(mask == 0)]
    labelled = pixels.sum()
    per_class_instances = {n: 0 for n in names}
    for s in dataset.samples:
        for r in s.regions:
            if r.label in per_class_instances:
                per_class_instances[r.label] += 1
    classes = []
    for value, name in zip(values, names, strict=True):
        m = measures[name]
        c = ClassPrint(name, pixel_share=float(pixels[value] / labelled) if labelled else 0.0,
                       images=int(images[value]), pieces=len(m))
        c.instances_per_image = per_class_instances[name] / max(1, len(dataset.samples))
        if m and not any(r.is_instance for s in dataset.samples for r in s.regions if r.label == name):
            c.instances_per_image = len(m) / max(1, len(chosen))  # mask folders: pieces stand for objects
        _piece_stats(c, m)
        classes.append(c)
    back = None
    if binary:
        back = ClassPrint(class_map.name(0), pixel_share=float(pixels[0] / labelled) if labelled else 0.0,
                          images=int(images[0]), pieces=len(background))
        back.instances_per_image = len(background) / max(1, len(chosen))
        _piece_stats(back, background)
    total = labelled + void
    return Fingerprint(images=len(dataset.samples), measured_images=len(chosen), width=_stats(widths),
                       height=_stats(heights), aspect=_stats(aspects), sizes_vary=bool(vary),
                       void_share=float(void / total) if total else 0.0, classes=classes, background=back)


def _piece_stats(c: ClassPrint, m: list[tuple[float, float]]) -> None:
    """A class's size and thickness figures from its pieces' (sqrt(area), thickness)."""
    if not m:
        return
    sizes, thick = np.array([x[0] for x in m]), np.array([x[1] for x in m])
    c.size_median, c.size_low = float(np.median(sizes)), float(np.percentile(sizes, LOW))
    # by pixels, not by pieces: the scraps an occlusion cuts off a part must not make the class thin
    c.thickness_median = weighted_percentile(thick, sizes**2, 50)
    c.thickness_low = weighted_percentile(thick, sizes**2, LOW)


# ------------------------------------------------------------------------------------------------ the cache


def _mtime(path: Path | None) -> float:
    try:
        return path.stat().st_mtime if path is not None else 0.0
    except OSError:
        return 0.0


def fingerprint_key(dataset: Dataset) -> str:
    """A digest of what the fingerprint depends on: the classes, every sample's name, size, image file time
    and annotations (labels and shape sizes), and the annotation source's own file time."""
    h = hashlib.sha256(f"v{VERSION}|{dataset.class_names}|{_mtime(dataset.root)}".encode())
    for s in dataset.samples:
        h.update(f"{s.name}|{s.width}x{s.height}|{_mtime(s.image_path)}|{s.ignore_rle is not None}".encode())
        for r in s.regions:
            shape = sum(len(p) for p in r.polygons) if r.rle is None else str(r.rle.get("counts"))[:64]
            h.update(f"{r.label}:{shape}:{np.round(r.bbox(), 1).tolist() if r.polygons or r.rle else ''}".encode())
    return h.hexdigest()[:24]


def fingerprint_cache() -> Path:
    from masksmith.data.archive import cache_dir

    return cache_dir() / "fingerprints"


def dataset_fingerprint(dataset: Dataset, use_cache: bool = True) -> Fingerprint:
    """The data set's fingerprint, from the cache when the data set is unchanged (else measured and cached)."""
    key = fingerprint_key(dataset)
    path = fingerprint_cache() / f"{key}.json"
    if use_cache and path.is_file():
        try:
            return Fingerprint.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            pass  # a damaged cache entry is measured again
    found = compute_fingerprint(dataset)
    found.key = key
    if use_cache:
        from masksmith.core.outputs import atomic_write_text

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(found.to_dict(), indent=1))
        except Exception:  # noqa: BLE001 - a cache that cannot be written only costs the next run a measurement
            pass
    return found
