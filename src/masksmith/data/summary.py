"""The summary `train` prints before it starts: the data, folders and options, the images in train and val,
the classes with their pixel shares, hints and problems (a library function, so the CLI, the Python API and
the web app say the same)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from masksmith.data.schema import Dataset, Sample


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
    for problem in stats.problems[len(dataset.problems):]:  # found in the training images: named classes
        lines.append(f"problem: {problem}")  # without a pixel, values shaped like void
    for note in dataset.notes:
        lines.append(f"note: {note}")
    if dataset.problems:
        lines.append(f"{len(dataset.problems)} problem(s) while reading (the items were left out):")
        lines += [f"  - {p}" for p in dataset.problems[:10]]
        if len(dataset.problems) > 10:
            lines.append(f"  ... and {len(dataset.problems) - 10} more (see `masksmith dataset inspect`)")
    return lines
