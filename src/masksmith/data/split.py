"""Train/validation/test splits: seeded, reproducible, and written as plain name lists; and the splits a data
set's own layout declares (split folders, ImageSets lists, CVAT subsets), which training and evaluation use."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path

from masksmith.core.errors import DatasetError
from masksmith.core.outputs import OutputFolder, as_output_folder
from masksmith.data.schema import Dataset, Sample


def part_sizes(n: int, parts: dict[str, float | int | None]) -> list[int]:
    """How many of `n` samples each part gets. A value below 1 is a fraction, a whole number from 1 up a count;
    the first part (train) takes what is left (give it as None, or as the fraction that completes 1)."""
    names = list(parts)
    given = {k: v for k, v in parts.items() if v is not None}
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in given.values()):
        raise DatasetError(f"split sizes {parts} must be fractions below 1 or counts of images.",
                           fix="for example `val=0.2` and `test=5` keep 20 % for validation and 5 images for testing.")
    counts = [k for k, v in given.items() if v >= 1]
    for k in counts:
        if float(given[k]) != int(given[k]):
            raise DatasetError(f"split size {k}={given[k]} is neither a fraction below 1 nor a whole count.",
                               fix=f"give `{k}` as 0.2 (a fraction) or 5 (images).")
    if not counts and parts.get(names[0]) is not None:
        total = sum(given.values())
        if abs(total - 1.0) > 1e-6:
            raise DatasetError(f"split fractions {fractions_text(parts)} must be non-negative and add up to 1.",
                               fix="for example `val=0.2` and `test=0.1` leave 0.7 for training.")
    sizes = [0] * len(names)
    for i, k in enumerate(names[1:], start=1):
        v = parts[k]
        if v is None:
            continue
        sizes[i] = int(v) if v >= 1 else int(round(v * n))
        if 0 < v < 1 and sizes[i] == 0 and n >= len(names):
            sizes[i] = 1  # no empty part while samples remain
    sizes[0] = n - sum(sizes[1:])  # the first part (train) takes the rest
    if sizes[0] < 0 or (sizes[0] == 0 and n > 0 and len(names) > 1):
        asked = ", ".join(f"{k} {size}" for k, size in zip(names[1:], sizes[1:], strict=True))
        raise DatasetError(f"{n} samples are too few to split into {asked} and still train on some.",
                           fix="add images, or ask for fewer in each part.")
    return sizes


def fractions_text(parts: dict[str, float | int | None]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in parts.items()) + "}"


def split_dataset(dataset: Dataset, fractions: dict[str, float | int | None], seed: int = 0) -> dict[str, Dataset]:
    """Split samples at random into named parts whose sizes follow `fractions` (see part_sizes: fractions that
    add up to 1, or counts and fractions with the first part taking the rest).

    Every part gets at least one sample when there are enough; the same seed always gives the same split.
    """
    n = len(dataset.samples)
    sizes = part_sizes(n, fractions)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    parts: dict[str, Dataset] = {}
    start = 0
    for k, size in zip(fractions, sizes, strict=True):
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


# ---------------------------------------------------------------- the data set's own splits

def declared_splits(dataset: Dataset) -> dict[str, int]:
    """Images per split the data set's layout declares ({} when it declares none)."""
    counts: dict[str, int] = {}
    for s in dataset.samples:
        if s.split is not None:
            counts[s.split] = counts.get(s.split, 0) + 1
    return counts


@dataclass
class TrainingSplit:
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    how: str  # one line saying where each part came from


def training_split(dataset: Dataset, val_fraction: float, seed: int = 0,
                   val_set: Dataset | None = None) -> TrainingSplit:
    """The samples to train and validate on. A data set with split folders trains on train (and the images
    in no split), validates on val when it has one (else on a seeded `val_fraction` of train), and never
    touches test, which is left for `evaluate`. Without split folders: a seeded `val_fraction` of it, or the
    separate `val_set`."""
    declared = declared_splits(dataset)
    test = [s for s in dataset.samples if s.split == "test"]
    pool = [s for s in dataset.samples if s.split not in ("val", "test")]
    val = [s for s in dataset.samples if s.split == "val"]
    how = []
    if val_set is not None:
        pool, val = pool + val, list(val_set.samples)
        how.append("validating on the separate validation set")
    elif val:
        how.append("validating on the val split")
    elif val_fraction > 0 and len(pool) >= 4:
        parts = split_dataset(replace(dataset, samples=pool), {"train": None, "val": val_fraction}, seed=seed)
        pool, val = parts["train"].samples, parts["val"].samples
        how.append(f"validating on a seeded {val_fraction:g} of the training images")
    else:
        how.append("no validation images")
    if test:
        how.append(f"the test split ({len(test)} images) is left for `masksmith evaluate`")
    if declared:
        how.append("split folders: " + ", ".join(f"{k} {n}" for k, n in sorted(declared.items())))
    if not pool:
        raise DatasetError(f"has no images to train on: its {len(val)} val and {len(test)} test images are held out.",
                           path=dataset.root or "", fix="point at the data set that holds a train split.")
    return TrainingSplit(list(pool), list(val), test, "; ".join(how))


def evaluation_samples(dataset: Dataset) -> tuple[list[Sample], str]:
    """The samples `evaluate` scores: the test split when the layout has one, else all; and what was chosen."""
    test = [s for s in dataset.samples if s.split == "test"]
    if test:
        others = len(dataset.samples) - len(test)
        return test, f"evaluating on the test split ({len(test)} images; {others} train/val images left out)"
    return list(dataset.samples), f"evaluating on all {len(dataset.samples)} images"
