"""Which samples train and which validate, and which classes swap under a flip: one choice for every task."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from masksmith.core.errors import MasksmithError
from masksmith.data import load_dataset
from masksmith.data.schema import Dataset, Sample
from masksmith.data.torchdata import detect_flip_pairs
from masksmith.train.config import TrainConfig


@dataclass
class SampleSplit:
    dataset: Dataset
    train: list[Sample]
    val: list[Sample]
    flip_pairs: list[list[str]]


def split_samples(config: TrainConfig, announce: Callable[[str], None] | None = None) -> SampleSplit:
    """The training data set, its train/validation samples (the data set's own train/val split folders, a
    separate validation set, or a seeded `val_fraction` of the data; a test split is never trained on) and the
    left/right class pairs (detected from the names, or the config's). `announce` receives the data summary
    (masksmith.data.summary.training_summary) before anything is trained."""
    from masksmith.data.split import training_split
    from masksmith.data.summary import training_summary

    dataset = load_dataset(config.data, config.format, strict=config.strict_data, **config.data_options)
    if config.class_colors:
        dataset.recolor_classes(config.class_colors)
    val_set = None
    if config.val_data:
        val_set = load_dataset(config.val_data, config.format, strict=config.strict_data, **config.data_options)
        if val_set.class_names != dataset.class_names:
            raise MasksmithError(f"has classes {val_set.class_names}, the training set {dataset.class_names}.",
                                 path=config.val_data, fix="use the same class list in both.")
    choice = training_split(dataset, config.val_fraction, config.seed, val_set)
    if config.from_model and val_set is None and not any(s.split == "val" for s in dataset.samples):
        choice = finetune_split(choice, config.from_model)
    if announce is not None:
        announce("\n".join(training_summary(dataset, choice.train, choice.val, choice.how, config.data_options)))
    return SampleSplit(dataset, choice.train, choice.val, flip_pairs(config, dataset.class_names))


def finetune_split(choice, from_model: str):
    """A fine-tune validates on the photos its starting model validated on (those still in the data set), and
    trains on all the others: the score before training (epoch 0) and after is then taken on photos neither
    run trained on. A seeded split of the grown data set would move photos the model trained on into
    validation, where they flatter it. Without its run folder's data.json the usual split stays."""
    from masksmith.train.finetune import start_validation

    names = set(start_validation(from_model) or ())
    pool = [*choice.train, *choice.val]
    val = [s for s in pool if s.name in names]
    if not val and names:  # the same photos in another layout (a COCO set made a labelling folder): by file name
        base = {PurePosixPath(n).name for n in names}
        if len(base) == len(names):
            val = [s for s in pool if PurePosixPath(s.name).name in base]
    if not val or len(val) == len(pool):
        return choice
    how = [f"validating on the {len(val)} validation photos of the model it starts from (new photos all train)",
           *(h for h in choice.how.split("; ") if not h.startswith(("validating", "no validation")))]
    chosen = {id(s) for s in val}
    return replace(choice, train=[s for s in pool if id(s) not in chosen], val=val, how="; ".join(how))


def training_plan(config: TrainConfig, split: SampleSplit, started: float | None = None,
                  announce: Callable[[str], None] | None = None):
    """The plan for a new run (masksmith.train.plan.Plan) when the config asks for one (auto_plan) and has
    none yet, else None (a resumed or repeated run keeps its own; planning is off). With a time budget the
    plan spends it: `started` (time.monotonic() when the wait began) says how much is gone. Applying the plan
    is the caller's (`planned`)."""
    if not config.auto_plan or config.plan:
        return None
    from masksmith.train.plan import plan_config

    return plan_config(config, split.dataset, images=(len(split.train), len(split.val)), started=started,
                       announce=announce)[1]


def planned(config: TrainConfig, plan) -> TrainConfig:
    """`config` with `plan` applied; without a plan, with the record of where each planned value came from
    (the person or the default) unless it has a record already."""
    from masksmith.train.plan import unplanned_record

    if plan is not None:
        return config.with_plan(plan)
    if config.plan:
        return config
    config = config.with_record(unplanned_record(config))
    if config.from_model and config.task == "semantic":  # no plan: still the model's own input, no low-res phase
        from masksmith.train.finetune import unplanned

        config = unplanned(config)
    return config


def planned_split(config: TrainConfig, announce: Callable[[str], None] | None = None,
                  started: float | None = None) -> tuple[SampleSplit, TrainConfig]:
    """The train/validation split and the config to train with (the plan made and applied)."""
    split = split_samples(config, announce)
    return split, planned(config, training_plan(config, split, started, announce))


def flip_pairs(config: TrainConfig, class_names: list[str]) -> list[list[str]]:
    if config.flip_pairs == "auto":
        return [list(p) for p in detect_flip_pairs(class_names)]
    pairs = [list(p) for p in config.flip_pairs]
    unknown = {n for p in pairs for n in p} - set(class_names)
    if unknown or any(len(p) != 2 for p in pairs):
        raise MasksmithError(f"flip_pairs {pairs} name classes the data set lacks: {sorted(unknown)}.",
                             fix=f"use pairs of these classes: {', '.join(class_names)}.")
    named = [n for p in pairs for n in p]
    repeated = sorted({n for n in named if named.count(n) > 1})
    if repeated:  # a flip swaps each class with exactly one other
        raise MasksmithError(f"flip_pairs {pairs} name {', '.join(repeated)} more than once.",
                             fix="give each class in one pair at most, paired with its mirror image.")
    return pairs
