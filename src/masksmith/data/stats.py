"""What `dataset inspect` reports: counts, class balance by instances and by pixels, images without labels,
splits, what was skipped on purpose, and hints on mask values that look like void or have no name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from masksmith.data.rasterize import semantic_mask
from masksmith.data.schema import BACKGROUND, IGNORE_INDEX, Dataset, Note, Problem


@dataclass
class ClassStats:
    name: str
    instances: int = 0
    images: int = 0
    pixels: int = 0
    pixel_share: float = 0.0


@dataclass
class DatasetStats:
    format: str
    images: int
    classes: list[ClassStats]
    background: ClassStats
    ignored_pixels: int
    unannotated: list[str]
    sizes: dict[tuple[int, int], int]
    problems: list[Problem] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)
    pixel_images: int = 0  # images whose pixels were counted (their size is known)
    missing_images: int = 0
    hints: list[str] = field(default_factory=list)  # mask values that look like void, unnamed classes
    mask_values: list[tuple[int, str, float]] = field(default_factory=list)  # (value, meaning, pixel share)
    folders: list[tuple[str, str]] = field(default_factory=list)  # (images, masks) folders paired

    @property
    def instances(self) -> int:
        return sum(c.instances for c in self.classes)

    @property
    def counted_pixels(self) -> int:
        return self.background.pixels + sum(c.pixels for c in self.classes)

    @property
    def skipped_notes(self) -> list[Note]:
        return [n for n in self.notes if n.skipped]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format, "images": self.images, "classes": len(self.classes),
            "instances": self.instances,
            "per_class": [vars(c) for c in [self.background, *self.classes]],
            "ignored_pixels": self.ignored_pixels, "images_without_annotations": self.unannotated,
            "image_sizes": {f"{w}x{h}": n for (w, h), n in sorted(self.sizes.items())},
            "splits": self.splits, "images_with_pixels_counted": self.pixel_images,
            "missing_images": self.missing_images,
            "mask_values": [{"value": v, "meaning": m, "pixel_share": s} for v, m, s in self.mask_values],
            "hints": self.hints, "folders": [{"images": i, "masks": m} for i, m in self.folders],
            "notes": [str(n) for n in self.notes],
            "problems": [str(p) for p in self.problems],
        }


def dataset_stats(dataset: Dataset, pixels: bool = True, objects: bool = True) -> DatasetStats:
    """Count instances per class and, with `pixels`, the share of labelled pixels per class. Class-only
    regions (mask folders) count their connected components as objects, unless `objects` is False (then one
    per region: the training summary needs no object count, and labelling them costs time).

    Pixel shares are over all non-ignored pixels of the images whose size is known, background included, as
    a semantic model sees them after rasterising (overlaps counted once, for the region on top). Only the
    annotations are rasterised: an image whose file is missing still counts when the file gives its size.
    """
    from masksmith.data.split import declared_splits

    index = dataset.class_to_index()
    per_class = [ClassStats(c.name) for c in dataset.classes]
    counts = np.zeros(len(per_class) + 1, dtype=np.int64)
    ignored = 0
    unannotated: list[str] = []
    sizes: dict[tuple[int, int], int] = {}
    counted = 0
    for sample in dataset.samples:
        known = sample.width > 0 and sample.height > 0
        if known:
            sizes[(sample.width, sample.height)] = sizes.get((sample.width, sample.height), 0) + 1
        if not sample.regions and not sample.skipped:
            unannotated.append(sample.name)
        seen: set[int] = set()
        for region in sample.regions:
            i = index.get(region.label)
            if i is None:
                continue
            per_class[i - 1].instances += 1 if region.is_instance or not known or not objects else \
                _components(region, sample)
            seen.add(i)
        for i in seen:
            per_class[i - 1].images += 1
        if pixels and known:
            mask = semantic_mask(sample, index)
            hist = np.bincount(mask.ravel(), minlength=256)
            counts += hist[: len(counts)]
            ignored += int(hist[IGNORE_INDEX])  # counts stops below 255: MAX_CLASSES keeps it so
            counted += 1
    total = int(counts.sum())
    share = (lambda n: float(n) / total) if total else (lambda n: 0.0)
    background = ClassStats(BACKGROUND, pixels=int(counts[0]), pixel_share=share(counts[0]))
    for i, c in enumerate(per_class, start=1):
        c.pixels = int(counts[i])
        c.pixel_share = share(counts[i])
    from masksmith.data.report import mask_value_report

    values, hints = mask_value_report(dataset)
    return DatasetStats(dataset.format, len(dataset.samples), per_class, background, ignored, unannotated,
                        sizes, list(dataset.problems), list(dataset.notes), declared_splits(dataset), counted,
                        sum(1 for s in dataset.samples if s.image_missing), hints, values,
                        [tuple(f) for f in dataset.info.get("folders") or []])


def _components(region, sample) -> int:
    """Objects in a class-only region (mask folders) counted as connected components."""
    from masksmith.data.rasterize import connected_components, region_mask

    return len(connected_components(region_mask(region, sample.height, sample.width)))
