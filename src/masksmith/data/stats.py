"""What `dataset inspect` reports: counts, class balance by instances and by pixels, images without labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from masksmith.data.rasterize import semantic_mask
from masksmith.data.schema import BACKGROUND, IGNORE_INDEX, Dataset, Problem


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

    @property
    def instances(self) -> int:
        return sum(c.instances for c in self.classes)

    def to_dict(self) -> dict:
        return {
            "format": self.format, "images": self.images, "classes": len(self.classes),
            "instances": self.instances,
            "per_class": [vars(c) for c in [self.background, *self.classes]],
            "ignored_pixels": self.ignored_pixels, "images_without_annotations": self.unannotated,
            "image_sizes": {f"{w}x{h}": n for (w, h), n in sorted(self.sizes.items())},
            "problems": [str(p) for p in self.problems],
        }


def dataset_stats(dataset: Dataset, pixels: bool = True) -> DatasetStats:
    """Count instances per class and, with `pixels`, the share of labelled pixels per class.

    Pixel shares are over all non-ignored pixels of all images, background included, as a semantic model
    sees them after rasterising (overlaps counted once, for the region on top).
    """
    index = dataset.class_to_index()
    per_class = [ClassStats(c.name) for c in dataset.classes]
    counts = np.zeros(len(per_class) + 1, dtype=np.int64)
    ignored = 0
    unannotated: list[str] = []
    sizes: dict[tuple[int, int], int] = {}
    for sample in dataset.samples:
        sizes[(sample.width, sample.height)] = sizes.get((sample.width, sample.height), 0) + 1
        if not sample.regions:
            unannotated.append(sample.name)
        seen: set[int] = set()
        for region in sample.regions:
            i = index.get(region.label)
            if i is None:
                continue
            per_class[i - 1].instances += 1 if region.is_instance else _components(region, sample)
            seen.add(i)
        for i in seen:
            per_class[i - 1].images += 1
        if pixels:
            mask = semantic_mask(sample, index)
            hist = np.bincount(mask.ravel(), minlength=256)
            counts += hist[: len(counts)]
            ignored += int(hist[IGNORE_INDEX])  # counts stops below 255: MAX_CLASSES keeps it so
    total = max(int(counts.sum()), 1)
    background = ClassStats(BACKGROUND, pixels=int(counts[0]), pixel_share=float(counts[0]) / total)
    for i, c in enumerate(per_class, start=1):
        c.pixels = int(counts[i])
        c.pixel_share = float(counts[i]) / total
    return DatasetStats(dataset.format, len(dataset.samples), per_class, background, ignored, unannotated,
                        sizes, list(dataset.problems))


def _components(region, sample) -> int:
    """Objects in a class-only region (mask folders) counted as connected components."""
    from masksmith.data.rasterize import connected_components, region_mask

    return len(connected_components(region_mask(region, sample.height, sample.width)))
