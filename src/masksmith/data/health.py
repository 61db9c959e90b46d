"""A data set's health check, in words a newcomer reads before training: how many images are usable (an image
whose file is missing is not), classes with too few examples or photos to learn, classes with no pixels, the
imbalance between classes, which classes the validation photos leave unscored (the split training will make),
and image sizes. Each finding has a level (`bad`: training will not give a usable model as it is; `warn`:
some classes will come out poor; `ok`), a title and a sentence with what to do."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from masksmith.core.errors import DatasetError
from masksmith.data.schema import Dataset
from masksmith.data.split import training_split
from masksmith.data.stats import DatasetStats, dataset_stats

FEW_EXAMPLES = 20  # a class with fewer annotated objects is hard to learn
FEW_PHOTOS = 8  # ... or seen in fewer photos
FEW_IMAGES = 20  # a data set with fewer usable images gives rough models
IMBALANCE = 100  # largest / smallest class pixel share beyond which the smallest is easily drowned
SMALL_SIDE = 128  # photos smaller than this on their short side hold little detail
LISTED = 50  # skipped images named on the page


@dataclass
class Finding:
    level: str  # ok | warn | bad
    title: str
    text: str


@dataclass
class Health:
    usable_images: int
    usable_objects: int
    listed_images: int
    skipped: list[str] = field(default_factory=list)  # image names that cannot be used (first LISTED)
    findings: list[Finding] = field(default_factory=list)

    @property
    def level(self) -> str:
        levels = [f.level for f in self.findings]
        return "bad" if "bad" in levels else "warn" if "warn" in levels else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "level": self.level}


def _names(names: list[str], most: int = 6) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def dataset_health(dataset: Dataset, stats: DatasetStats, val_fraction: float = 0.15, seed: int = 0) -> Health:
    """The health check of `dataset` (read leniently; `stats` from `dataset_stats`). `val_fraction` and
    `seed`: the validation split training will make (TrainConfig's defaults)."""
    usable = [s for s in dataset.samples if not s.image_missing]
    skipped = [s.name for s in dataset.samples if s.image_missing]
    names = set(dataset.class_map.names)
    objects = sum(1 for s in usable for r in s.regions if r.label in names)
    health = Health(len(usable), objects, len(dataset.samples), skipped[:LISTED])
    add = health.findings.append
    if skipped:
        add(Finding("bad" if len(skipped) * 2 >= len(dataset.samples) else "warn", "Images missing",
                    f"{len(skipped)} of the {len(dataset.samples)} images the annotations list are not in the data "
                    f"set, so {len(usable)} can be used. Put the missing photos beside the annotations (same names) "
                    "and add the data set again."))
    if len(usable) < FEW_IMAGES:
        add(Finding("bad" if len(usable) < 4 else "warn", "Few images",
                    f"{len(usable)} usable images: expect rough masks. Models become useful from a few dozen "
                    "annotated photos per class."))
    if skipped:  # the classes as the usable images have them
        stats = dataset_stats(replace(dataset, samples=usable), pixels=True)
    _class_findings(stats, add)
    _validation_findings(dataset, usable, val_fraction, seed, add)
    _size_findings(stats, add)
    if health.level == "ok":
        health.findings.insert(0, Finding("ok", "Ready to train", f"{len(usable)} images, every class with enough "
                                          "examples, and the validation photos score every class."))
    return health


def _class_findings(stats: DatasetStats, add) -> None:
    empty = [c.name for c in stats.classes if c.instances == 0]
    if empty:
        add(Finding("bad", "Classes without examples", f"{_names(empty)}: named but never annotated, so the model "
                    "cannot learn them. Annotate them or leave them out of the class list."))
    rare = [c for c in stats.classes if 0 < c.instances < FEW_EXAMPLES or 0 < c.images < FEW_PHOTOS]
    if rare:
        listed = [f"{c.name} ({c.instances} in {c.images} photos)" for c in sorted(rare, key=lambda c: c.instances)]
        add(Finding("warn", "Classes with few examples",
                    f"{_names(listed)}: too few to learn well (aim for {FEW_EXAMPLES} or more examples in "
                    f"{FEW_PHOTOS} or more photos); expect these to come out poorly."))
    shares = [c.pixel_share for c in stats.classes if c.pixel_share > 0]
    if len(shares) >= 2 and max(shares) / min(shares) > IMBALANCE:
        small = min((c for c in stats.classes if c.pixel_share > 0), key=lambda c: c.pixel_share)
        big = max(stats.classes, key=lambda c: c.pixel_share)
        add(Finding("warn", "Unbalanced classes",
                    f"{big.name} covers {max(shares) / min(shares):.0f}x more pixels than {small.name}: small classes "
                    "take longer to learn, so give the training more time."))


def _validation_findings(dataset: Dataset, usable: list, val_fraction: float, seed: int, add) -> None:
    try:
        split = training_split(replace(dataset, samples=usable), val_fraction, seed)
    except DatasetError:  # no images to train on: said above
        return
    if not split.val:
        add(Finding("warn", "No validation photos", "too few images to hold some back, so no score will say how "
                                                    "good the model is. Add images."))
        return
    present = {r.label for s in split.val for r in s.regions}
    trained = {r.label for s in split.train for r in s.regions}
    unscored = [n for n in dataset.class_map.names if n in trained and n not in present]
    if unscored:
        add(Finding("warn", "Classes the validation photos leave unscored",
                    f"the {len(split.val)} validation photos have no {_names(unscored)}, so the scores say nothing "
                    "about them. Add photos with them, or hold out a larger validation share."))


def _size_findings(stats: DatasetStats, add) -> None:
    if not stats.sizes:
        return
    shorts = [min(w, h) for (w, h) in stats.sizes]
    longs = [max(w, h) for (w, h) in stats.sizes]
    if min(shorts) < SMALL_SIDE:
        add(Finding("warn", "Small photos", f"some photos are only {min(shorts)} px on their short side: fine "
                                            "parts may be lost."))
    if max(longs) > 2 * min(longs):
        add(Finding("ok", "Photo sizes vary", f"from {min(longs)} to {max(longs)} px on the long side; "
                                              "masksmith plans the scale from them."))
