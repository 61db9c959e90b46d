"""What masksmith says about a data set before it is used: the values of index masks and the hints on them
(`dataset inspect`), and the summary `train` prints before it starts (library functions, so the CLI, the
Python API and the web app say the same)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from masksmith.data.schema import Dataset, Sample

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
            hints.append(f"value {v} is named {names[v]!r}, which sounds like void: pass -o ignore_value={v} to "
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
                             f"{' and '.join(why)}: if it marks unlabelled pixels, pass -o ignore_value={v} so it "
                             "is left out instead of learned.")
    for v in void:
        hints.append(f"value {v} ({100 * values.get(v, 0) / total:.2f} % of pixels) is read as void (ignore_value)"
                     " and left out of training and scores.")
    if not dataset.info.get("names_given"):
        hints.append("the classes have no names: name them in a classes.txt beside the masks (line i names value "
                     "i; line 0 may name a class too, such as sky) or with -o class_names=road,car,...")
    if 0 in values and names.get(0) not in (None, "void") and not dataset.info.get("names_given"):
        hints.append("value 0 is read as background; if it is a class of its own (sky, membrane), name it on line "
                     "0 of classes.txt or with -o 'class_names={\"0\": \"sky\", \"1\": \"road\"}'.")
    return rows, hints


def training_summary(dataset: Dataset, train: list[Sample], val: list[Sample], how: str,
                     options: dict[str, Any] | None = None, pixels: bool = True) -> list[str]:
    """What `train` prints before it starts: the data, the folders and options used, the images in train and
    val, the classes with their pixel shares (and void) in the training images, and any problem or skip."""
    from masksmith.data.stats import dataset_stats

    lines = [f"data: {dataset.root} ({dataset.format})"]
    used = options if options is not None else dataset.info.get("options") or {}
    lines.append("reading options: " + (", ".join(f"{k}={v!r}" for k, v in used.items()) if used else "none"))
    for images, masks in dataset.info.get("folders") or []:
        lines.append(f"folders: images {images}/ with masks {masks}/")
    lines.append(f"images: {len(train)} to train on, {len(val)} to validate on; {how}")
    stats = dataset_stats(replace(dataset, samples=list(train)), pixels=pixels, objects=False)
    if pixels and stats.counted_pixels:
        total = stats.counted_pixels + stats.ignored_pixels
        shares = [f"{c.name} {100 * c.pixels / total:.1f} %" for c in [stats.background, *stats.classes]]
        lines.append(f"classes ({len(stats.classes)}), share of the training pixels: " + ", ".join(shares) +
                     f"; void {100 * stats.ignored_pixels / total:.1f} %")
    else:
        lines.append(f"classes ({len(stats.classes)}): " + ", ".join(c.name for c in stats.classes))
    for hint in stats.hints:
        lines.append(f"hint: {hint}")
    for note in dataset.notes:
        lines.append(f"note: {note}")
    if dataset.problems:
        lines.append(f"{len(dataset.problems)} problem(s) while reading (the items were left out):")
        lines += [f"  - {p}" for p in dataset.problems[:10]]
        if len(dataset.problems) > 10:
            lines.append(f"  ... and {len(dataset.problems) - 10} more (see `masksmith dataset inspect`)")
    return lines
