"""The use cases both fronts call: build a training config from what a person gave, train, extend a run,
evaluate a model on a data set with the model's reading options, split a data set, and a run's headline
figure. The CLI and the web app hold no engine logic of their own: a command or a route that needs logic the
other front lacks puts it here first (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from masksmith.core import runfolder
from masksmith.core.errors import MasksmithError
from masksmith.train.config import TrainConfig

Announce = Callable[[str], None] | None
PLANNED_SETTINGS = ("size", "shrink", "batch_size")  # what the plan chooses unless the person fixed it


# ---------------------------------------------------------------------------------------------- training
def training_config(data: str | Path | None, *, task: str | None = None, model: str | None = None,
                    start_from: str | Path | None = None, plan: bool = True, **given: Any) -> TrainConfig:
    """A checked TrainConfig for a new run from what a front was given.

    `start_from`: a config.yaml whose values replace the task's defaults. `task` (None or "auto": the model's
    task, else semantic) and `model` choose the task's defaults (`masksmith.tasks`); every value in `given`
    that is not None goes on top (`encoder_weights="none"`: random weights). `size`, `shrink` and
    `batch_size` given are kept by the training plan;
    with `plan`, the others are planned from the data set's fingerprint when training starts."""
    base = TrainConfig.from_yaml(Path(start_from)) if start_from else None
    model = model or (base.arch if base else None)
    config = TrainConfig.for_task(task if task not in (None, "auto") else (base.task if base else None), model)
    if base is not None:
        for key in ("task", "arch"):
            setattr(base, key, getattr(config, key))
        config = base
    if data is not None:
        config.data = str(data)
    if not config.data:
        raise MasksmithError("no data set given.", fix="give the annotated data set to train on.")
    for key, value in given.items():
        if key not in TrainConfig.__dataclass_fields__:
            raise MasksmithError(f"`{key}` is not a training setting.")
        if key == "encoder_weights" and isinstance(value, str) and value.lower() == "none":
            config.encoder_weights = None  # train from random weights
        elif value is not None:
            setattr(config, key, value)
    if given.get("time_budget") is not None and given.get("epochs") is None:
        config.epochs = None  # a budget alone: the clock ends the run
    config.fixed = sorted({*config.fixed, *(k for k in PLANNED_SETTINGS if given.get(k) is not None)})
    config.auto_plan = plan
    if not plan:
        config.plan = {}  # recorded afresh: each value from the person or the default
    return config.check()


def resume_config(run_dir: str | Path, *, epochs: int | None = None, time_budget: float | None = None
                  ) -> TrainConfig:
    """The config a run folder continues with: its config.yaml, with the total epochs or the budget asked now."""
    run_dir = Path(run_dir)
    path = run_dir / runfolder.CONFIG
    if not path.is_file():
        raise MasksmithError("is not a run folder (no config.yaml).", path=run_dir,
                             fix="give the run folder that training printed.")
    config = TrainConfig.from_yaml(path)
    if epochs is not None:
        config.epochs = epochs
    if time_budget is not None:
        config.time_budget = time_budget
    return config.check(path)


def extend_config(run_dir: str | Path, *, more_minutes: float = 0, more_epochs: int = 0) -> TrainConfig:
    """The config that trains a run longer: `more_minutes` on top of the time it has trained (the budget
    then replaces epochs), or `more_epochs` on top of the epochs it has done."""
    run_dir = Path(run_dir)
    config = resume_config(run_dir)
    done = runfolder.run_progress(run_dir)["epochs"]
    if more_minutes > 0:
        trained = float(done[-1].get("seconds", 0)) if done else 0.0
        config.time_budget = (config.time_budget or trained) + 60 * more_minutes
        config.epochs = None
    elif more_epochs > 0:
        config.epochs = len(done) + int(more_epochs)
        config.time_budget = None
    return config.check()


def train(config: TrainConfig, run_dir: str | Path | None = None, resume: bool = False,
          announce: Announce = None, started: float | None = None) -> Path:
    """Train (or with `resume`, continue `run_dir`) with the task's trainer; returns the run folder.
    `announce` receives the data summary and the plan before training starts. A time budget is the whole
    wait, counted from `started` (time.monotonic() when the person asked; default: now): the run ends within
    it plus the stated margin (masksmith.train.budget), its final evaluation and report included."""
    from masksmith.tasks import get_task

    trainer = get_task(config.task).load("trainer")
    return trainer(config, Path(run_dir) if run_dir is not None else None, resume=resume, announce=announce,
                   started=started)


def command_started() -> float:
    """time.monotonic() when this process started: a command's time budget counts from there (the wait a
    person sees includes starting Python)."""
    from masksmith.train.budget import process_started

    return process_started()


def dry_run(config: TrainConfig, announce: Announce = None, started: float | None = None) -> dict[str, Any]:
    """Read the data, announce its summary, fingerprint and the plan (with a time budget: this machine's
    measured speed, and what the budget buys), and stop (nothing is written but the fingerprint's and the
    speed's cache entries). Returns the plan record."""
    import time

    from masksmith.train.samples import planned_split

    return planned_split(config, announce, time.monotonic() if started is None else started)[1].plan


@dataclass
class PlanSummary:
    """What a budget buys on a data set with a model, for a front to show before training: the plan's
    choices and reasons, the predicted passes over the data, the training seconds, and the finish time."""

    lines: list[str]
    record: dict[str, Any]
    passes: float | None
    train_seconds: float | None
    budget_seconds: float | None
    finish: float | None  # time.time() when the run is predicted to end (started now)
    enough: bool | None  # the budget buys the plan's minimum passes

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def plan_summary(data: str | Path, time_budget: float | None = None, *, task: str | None = None,
                 model: str | None = None, epochs: int | None = None, config: TrainConfig | None = None,
                 **given: Any) -> PlanSummary:
    """The plan `train` would make for `data` with this budget (seconds, the whole wait) and model, on this
    machine now (its speed measured: seconds), without training: the web app's budget picker and the CLI's
    --dry-run show the same. `given`: settings the person fixed (size, shrink, batch_size, ...); `config`: a
    config a front built already (training_config), used as it is."""
    import time

    now, started = time.time(), time.monotonic()
    if config is None:
        config = training_config(data, task=task, model=model, time_budget=time_budget, epochs=epochs,
                                 **{k: v for k, v in given.items() if v is not None})
    time_budget = config.time_budget
    record = dry_run(config, started=started)
    figures = (record.get("budget") or {}).get("value") or {}
    lines = [f"{name}: {c['value']!r} ({c['source']}) {c['reason']}" for name, c in record.items()
             if name != "budget"]
    notes = (record.get("budget") or {}).get("notes") or []
    return PlanSummary(lines=[*lines, *notes], record=record,
                       passes=figures.get("passes"), train_seconds=figures.get("train_seconds"),
                       budget_seconds=time_budget, finish=now + time_budget if time_budget else None,
                       enough=figures.get("enough"))


# -------------------------------------------------------------------------------------------- evaluation
def evaluate(model: Any, data: Any, out: str | Path | None = None, *, save: bool = True,
             format: str | None = None, options: dict[str, Any] | None = None, strict: bool = True, worst: int = 8,
             tta: bool = False, label: str | None = None, announce: Announce = None):
    """Score a model (a model file, a run folder, or an open predictor) on an annotated data set (a path, read
    with the options the model was trained with unless `options` are given, or a loaded Dataset): the test
    split when the data set has one, by the task's evaluator. With `save`, written into `out` (default: the
    run's evaluation/<data name>/), whose run's report.html is brought up to date. Returns the Evaluation."""
    from masksmith.core.runfolder import data_label, evaluation_folder, run_folder_of
    from masksmith.data import load_dataset
    from masksmith.data.load import reading_options
    from masksmith.data.schema import Dataset
    from masksmith.data.split import evaluation_samples
    from masksmith.html_report import update_report
    from masksmith.infer import open_predictor
    from masksmith.tasks import get_task

    if hasattr(model, "artifact"):
        predictor = model
        if save and out is None:
            raise MasksmithError("an open predictor has no run folder to write into.",
                                 fix="give `out`, or evaluate without saving.")
    else:
        model = Path(model)
        predictor = open_predictor(model, tta=tta)
        if save and out is None:
            run = run_folder_of(model)
            out = evaluation_folder(run or (model.parent if model.is_file() else model), data, name=label)
    if isinstance(data, Dataset):
        dataset = data
        data = str(dataset.root or dataset.format)
    else:
        format, options, said = reading_options(data, format, options, predictor.artifact.training)
        if said and announce is not None:
            announce(said)
        dataset = load_dataset(data, format, strict=strict, **options)
    check_class_overlap(predictor.artifact.class_map.names, dataset.class_names, data)
    samples, used = evaluation_samples(dataset)
    evaluator = get_task(predictor.artifact.task).load("evaluator")
    target = Path(out) if save and out is not None else None
    evaluation = evaluator(predictor, dataset, label or data_label(data), samples, used, target, worst=worst)
    if target is not None:
        page = update_report(target)  # the run's report.html, when `out` is the run's evaluation/<name>/
        if page is not None:
            evaluation.files["report"] = str(page)
    return evaluation


def check_class_overlap(model_classes: tuple[str, ...] | list[str], data_classes: list[str],
                        data: str | Path) -> None:
    """Refuse data that shares no class with the model, naming both lists."""
    if data_classes and not set(data_classes) & set(model_classes):
        raise MasksmithError(f"none of the data set's classes ({', '.join(data_classes)}) are the model's "
                             f"({', '.join(model_classes)}).", path=data,
                             fix="evaluate on data annotated with the classes the model was trained on.")


# --------------------------------------------------------------------------------------------- data sets
def split(dataset, val: float = 0.2, test: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """The data set split at random (seeded) into train, and val and test when asked (fractions below 1,
    or counts of images): {part name: Dataset}."""
    from masksmith.data.split import split_dataset

    if val < 0 or test < 0:
        raise MasksmithError("the validation and test parts cannot be negative.",
                             fix="give `val` and `test` as fractions (0.2) or numbers of images (5).")
    sizes: dict[str, float | None] = {"train": None, **{k: v for k, v in (("val", val), ("test", test)) if v}}
    return split_dataset(dataset, sizes, seed=seed)


# ------------------------------------------------------------------------------------------------- runs
@dataclass
class Headline:
    """A run's one figure: its name, value (None before any score) and where it comes from."""

    name: str
    value: float | None
    source: str
    kind: str = "score"

    def text(self) -> str:
        from masksmith.evaluate.result import format_value

        return format_value(self.value, self.kind)


def run_headline(run_dir: str | Path, task: str) -> Headline:
    """The figure a run is known by: the full-size score of its model file on the validation images when
    training has evaluated it, else the best validation score of an epoch."""
    from masksmith.evaluate.result import Evaluation
    from masksmith.tasks import get_task

    run_dir = Path(run_dir)
    facts = get_task(task)
    metrics = runfolder.read_evaluation(run_dir / runfolder.EVALUATION / runfolder.VALIDATION)
    if metrics:
        figure = Evaluation.from_dict(metrics).headline
        return Headline(figure.name, figure.value, "validation images, full size", figure.kind)
    rows = runfolder.run_progress(run_dir)["epochs"]
    scored = [r[facts.monitor] for r in rows if facts.monitor in r]
    return Headline(facts.headline, max(scored) if scored else None, "validation, best epoch", facts.headline_kind)
