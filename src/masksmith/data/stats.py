"""What `dataset inspect` reports: counts, class balance by instances and by pixels, images without labels,
splits, what was skipped on purpose, and hints on mask values that look like void or have no name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from masksmith.core.labels import BACKGROUND, IGNORE_INDEX
from masksmith.data.rasterize import semantic_mask
from masksmith.data.schema import Dataset, Note, Problem


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
    unlabelled: int = 0  # photos waiting for a label (data/labelling.py: DATA/unlabelled/)

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
            "missing_images": self.missing_images, "unlabelled": self.unlabelled,
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

    classes = dataset.class_map
    index = classes.index()
    by_name = {name: ClassStats(name) for name in classes.names}
    counts = np.zeros(classes.num_values, dtype=np.int64)
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
        seen: set[str] = set()
        for region in sample.regions:
            stats = by_name.get(region.label)
            if stats is None:
                continue
            stats.instances += 1 if region.is_instance or not known or not objects else \
                _components(region, sample)
            seen.add(region.label)
        for name in seen:
            by_name[name].images += 1
        if pixels and known:
            mask = semantic_mask(sample, index)
            hist = np.bincount(mask.ravel(), minlength=256)
            counts += hist[: len(counts)]
            ignored += int(hist[IGNORE_INDEX])  # counts stops below 255: MAX_CLASSES keeps it so
            counted += 1
    total = int(counts.sum())
    share = (lambda n: float(n) / total) if total else (lambda n: 0.0)
    background = ClassStats(BACKGROUND, pixels=int(counts[0]), pixel_share=share(counts[0]))
    per_class = [by_name[name] for name in classes.names]
    for value, c in zip(classes.values, per_class, strict=True):
        c.pixels = int(counts[value])
        c.pixel_share = share(counts[value])
    values, hints = mask_value_report(dataset)
    found = [*empty_classes(dataset, per_class, pixels and counted > 0), *void_like_values(dataset)]
    return DatasetStats(dataset.format, len(dataset.samples), per_class, background, ignored, unannotated,
                        sizes, [*dataset.problems, *found], list(dataset.notes), declared_splits(dataset), counted,
                        sum(1 for s in dataset.samples if s.image_missing), hints, values,
                        [tuple(f) for f in dataset.info.get("folders") or []], int(dataset.info.get("unlabelled", 0)))


def _components(region, sample) -> int:
    """Objects in a class-only region (mask folders) counted as connected components, without a mask per
    component: one label image (a few bytes a pixel) whatever their number."""
    from masksmith.data.rasterize import count_components, region_mask

    return count_components(region_mask(region, sample.height, sample.width))


def empty_classes(dataset: Dataset, classes: list[ClassStats], by_pixels: bool) -> list[Problem]:
    """A problem (nothing dropped) per named class that no annotation of these images has: a model cannot learn
    it, and a class list that names more classes than the data holds is often read from the wrong value."""
    where = str(dataset.root or "")
    total = len(dataset.samples)
    out = []
    for c in classes:
        if (c.pixels if by_pixels else c.instances) > 0:
            continue
        out.append(Problem(where, f"class {c.name!r}", f"is named, but none of the {total} image(s) has a pixel "
                           "of it: a model cannot learn it, and its scores are empty.",
                           "check that the class list names the right mask values, add annotations of it, or "
                           "leave it out of the class list.", dropped=""))
    return out


def void_like_values(dataset: Dataset) -> list[Problem]:
    """A problem (nothing dropped) per index-mask value that is shaped like unlabelled pixels: thin strips
    between other classes, in many small pieces (masksmith.data.formats._values), yet read as a class."""
    from masksmith.data.formats._values import looks_like_void

    names: dict[int, str] = dataset.info.get("mask_names") or {}
    out = []
    for value, shape in (dataset.info.get("mask_shapes") or {}).items():
        meaning = names.get(value)
        if meaning in (None, "void") or not looks_like_void(shape):
            continue
        share = 100 * shape["between"] / max(1, shape["pixels"])
        learned = "the background" if meaning == BACKGROUND else "a class"
        out.append(Problem(str(dataset.root or ""), f"mask value {value} ({meaning})",
                           f"lies along the boundaries between other classes ({share:.0f} % of its pixels) in "
                           f"{shape['pieces']} small pieces over {shape['masks']} mask(s): that is how unlabelled "
                           f"(void) pixels look, yet it is learned as {learned}.",
                           f"if it marks unlabelled pixels, set `ignore_value={value}` so it is left out of training "
                           "and scores instead of learned.", dropped=""))
    return out


RARE = 1 / 20  # a value used less than this share of the median value's pixels is "far less than the others"
VOID_NAMES = frozenset({"void", "unlabelled", "unlabeled", "ignore", "__ignore__", "_ignore_", "undefined",
                        "unknown", "don't care", "dontcare"})


def mask_value_report(dataset: Dataset) -> tuple[list[tuple[int, str, float]], list[str]]:
    """For index masks: (value, what it is read as, share of all mask pixels) per value found, and hints: a
    value that looks like void (the highest value, or one used far less than the others) and how to mark it;
    unnamed classes and how to name them; value 0 and how to give it a name."""
    values: dict[int, int] = dataset.info.get("mask_values") or {}
    names: dict[int, str] = dataset.info.get("mask_names") or {}
    if not values:
        return [], []
    total = sum(values.values()) or 1
    rows = [(v, names.get(v, "?"), n / total) for v, n in sorted(values.items())]
    hints: list[str] = []
    classes = [(v, n) for v, n in sorted(values.items()) if names.get(v) != "void" and v != 0]
    named = bool(dataset.info.get("names_given"))
    for v, _ in classes:
        if named and names.get(v, "").strip().lower() in VOID_NAMES:
            hints.append(f"value {v} is named {names[v]!r}, which sounds like void: set `ignore_value={v}` to "
                         "leave it out of training and scores instead of learning it as a class.")
    void = [v for v, m in names.items() if m == "void"]
    if classes and not named and not void:  # once a void value is set, the others are the user's classes
        top = classes[-1][0]
        shares = [n / total for _, n in classes]
        for v, n in classes:
            others = sorted(x for (u, _), x in zip(classes, shares, strict=True) if u != v)
            median = others[len(others) // 2] if others else 0.0
            why = [w for w, hit in (("the highest value", v == top and n / total < 0.5 * median),
                                     ("far rarer than the others", n / total < RARE * median)) if hit]
            if why:
                hints.append(f"value {v} ({names.get(v, '?')}, {100 * n / total:.2f} % of pixels) is "
                             f"{' and '.join(why)}: if it marks unlabelled pixels, set `ignore_value={v}` so it "
                             "is left out instead of learned.")
    for v in void:
        hints.append(f"value {v} ({100 * values.get(v, 0) / total:.2f} % of pixels) is read as void (ignore_value)"
                     " and left out of training and scores.")
    if not dataset.info.get("names_given"):
        hints.append("the classes have no names: name them in a classes.txt beside the masks (line i names value "
                     "i; line 0 may name a class too, such as sky) or with `class_names=road,car,...`")
    if 0 in values and names.get(0) not in (None, "void") and not dataset.info.get("names_given"):
        hints.append("value 0 is read as background; if it is a class of its own (sky, membrane), name it on line "
                     "0 of classes.txt or with `class_names={\"0\": \"sky\", \"1\": \"road\"}`.")
    return rows, hints
