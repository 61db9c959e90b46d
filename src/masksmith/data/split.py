"""Train/validation/test splits: seeded, reproducible, and written as plain name lists."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from masksmith.data.schema import Dataset
from masksmith.errors import DatasetError
from masksmith.outputs import OutputFolder, as_output_folder


def split_dataset(dataset: Dataset, fractions: dict[str, float], seed: int = 0) -> dict[str, Dataset]:
    """Split samples at random into named parts whose sizes follow `fractions` (they must add up to 1).

    Every part gets at least one sample when there are enough; the same seed always gives the same split.
    """
    total = sum(fractions.values())
    if any(f < 0 for f in fractions.values()) or abs(total - 1.0) > 1e-6:
        raise DatasetError(f"split fractions {fractions} must be non-negative and add up to 1.",
                           fix="for example --val 0.2 --test 0.1 leaves 0.7 for training.")
    n = len(dataset.samples)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    names = list(fractions)
    sizes = [int(round(fractions[k] * n)) for k in names]
    for i, k in enumerate(names):  # no empty part while samples remain
        if fractions[k] > 0 and sizes[i] == 0 and n >= len(names):
            sizes[i] = 1
    sizes[0] = n - sum(sizes[1:])  # the first part (train) takes the rounding remainder
    if sizes[0] < 0:
        raise DatasetError(f"{n} samples are too few to split into {names}.", fix="add images or use fewer parts.")
    parts: dict[str, Dataset] = {}
    start = 0
    for k, size in zip(names, sizes, strict=True):
        chosen = sorted(order[start:start + size])
        parts[k] = replace(dataset, samples=[dataset.samples[i] for i in chosen], problems=[])
        start += size
    return parts


def write_split_lists(parts: dict[str, Dataset], out: Path | OutputFolder) -> list[Path]:
    """One text file per part listing its image names (the ImageSets convention), returned in order."""
    roots = [p.root for p in parts.values()]
    folder = as_output_folder(out, inputs=roots)
    return [folder.write_text(f"{name}.txt", "".join(s.name + "\n" for s in part.samples))
            for name, part in parts.items()]
