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
    if config.from_model:  # fine-tuning: the network is the model's, so the config records its task and shape
        _take_architecture(config, given.get("size"))
    if given.get("time_budget") is not None and given.get("epochs") is None:
        config.epochs = None  # a budget alone: the clock ends the run
    config.fixed = sorted({*config.fixed, *(k for k in PLANNED_SETTINGS if given.get(k) is not None)})
    config.auto_plan = plan
    if not plan:
        config.plan = {}  # recorded afresh: each value from the person or the default
    return config.check()


def _take_architecture(config: TrainConfig, size: int | None = None) -> None:
    """The model's task and network for a fine-tune; an instance model also keeps its size (`size`: the one
    the person gave, refused when it differs), since Mask R-CNN's anchors were chosen for it."""
    from masksmith.models.artifact import load_artifact

    start = load_artifact(config.from_model)  # a broken or missing file: one line naming it
    config.from_model = str(config.from_model)
    config.task = start.task
    config.arch = str(start.model.get("arch", config.arch))
    config.encoder = str(start.model.get("encoder", config.encoder))
    if start.task == "instance":
        own = int(start.model.get("max_size") or config.size)
        if size is not None and int(size) != own:
            raise MasksmithError(f"`size` {size} differs from the model's own ({own}); an instance model is "
                                 "fine-tuned at the size it was trained at.", path=config.from_model,
                                 fix=f"leave out `size` (or give {own}).")
        config.size = own
        config.fixed = sorted({*config.fixed, "size"})  # the plan keeps it


def finetune_config(run_dir: str | Path, data: str | Path | None = None, *, time_budget: float | None = None,
                    epochs: int | None = None, **given: Any) -> TrainConfig:
    """Continue training from what a run's model knows: a new run with the run's settings that starts from its
    model file (`from_model`), on `data` (default: the run's data set, which may have grown since)."""
    run_dir = Path(run_dir)
    if not (run_dir / runfolder.MODEL).is_file():
        raise MasksmithError("has no model file to continue from.", path=run_dir,
                             fix="train it first, or give the run folder that holds model.masksmith.")
    base = resume_config(run_dir)
    config = training_config(data or base.data, start_from=run_dir / runfolder.CONFIG,
                             from_model=str(run_dir / runfolder.MODEL), time_budget=time_budget, epochs=epochs,
                             **given)
    if config.auto_plan:
        config.plan = {}  # planned afresh for this budget and data, around the model's own scale (train.finetune)
    from masksmith.data import load_dataset
    from masksmith.models.artifact import load_artifact

    names = load_dataset(config.data, config.format, strict=False, need_pixels=False,
                         **config.data_options).class_names
    if list(names) != list(load_artifact(config.from_model).classes):  # refused before a run folder is made
        raise MasksmithError(f"the data set's classes ({', '.join(names)}) are not the model's.", path=config.data,
                             fix="continue training on a data set with the model's classes, or train a new model.")
    return config


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
    run's evaluation/<data name>/), whose run's report.html is brought up to date. Returns the Evaluation.

    Classes are matched by name: data sharing none of the model's classes is refused; when only some match,
    `announce` hears which (and what becomes of the others), and the Evaluation's `notes` keep it."""
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
    overlap = check_class_overlap(predictor.artifact.class_map.names, dataset.class_names, data,
                                  predictor.artifact.task)
    notes = [overlap.note()] if overlap.partial else []
    for note in notes:
        if announce is not None:
            announce(note)
    samples, used = evaluation_samples(dataset)
    evaluator = get_task(predictor.artifact.task).load("evaluator")
    target = Path(out) if save and out is not None else None
    evaluation = evaluator(predictor, dataset, label or data_label(data), samples, used, target, worst=worst,
                           notes=notes)
    if target is not None:
        page = update_report(target)  # the run's report.html, when `out` is the run's evaluation/<name>/
        if page is not None:
            evaluation.files["report"] = str(page)
    return evaluation


@dataclass
class ClassOverlap:
    """How a model's classes and a data set's meet: the classes both have, the model's the data never annotates,
    and the data's the model does not know."""

    matched: list[str]
    model_only: list[str]
    data_only: list[str]
    task: str = "semantic"

    @property
    def partial(self) -> bool:
        return bool(self.model_only or self.data_only)

    def note(self) -> str:
        """One line saying which classes are scored and what happens to the others."""
        text = (f"{len(self.matched)} of the model's {len(self.matched) + len(self.model_only)} classes are in "
                f"the data ({_listed(self.matched)})")
        if self.model_only:
            text += f"; missing from the data: {_listed(self.model_only)} " + (
                "(pixels the model gives them count as wrong)" if self.task == "semantic" else
                "(what the model finds of them has nothing to match)")
        if self.data_only:
            text += f"; missing from the model: {_listed(self.data_only)} " + (
                "(their pixels are scored as background)" if self.task == "semantic" else
                "(their objects are left out of the scores)")
        return text

    def to_dict(self) -> dict[str, list[str]]:
        return {"matched": self.matched, "model_only": self.model_only, "data_only": self.data_only}


def _listed(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_class_overlap(model_classes: tuple[str, ...] | list[str], data_classes: list[str],
                        data: str | Path, task: str = "semantic") -> ClassOverlap:
    """Which classes a model and a data set share (`ClassOverlap.note()` says it in one line); refuses data that
    shares none, naming both lists."""
    model_classes, data_classes = list(model_classes), list(data_classes)
    overlap = ClassOverlap([c for c in model_classes if c in data_classes],
                           [c for c in model_classes if c not in data_classes],
                           [c for c in data_classes if c not in model_classes], task)
    if data_classes and not overlap.matched:
        raise MasksmithError(f"none of the data set's classes ({_listed(data_classes)}) are the model's "
                             f"({_listed(model_classes)}).", path=data,
                             fix="evaluate on data annotated with the classes the model was trained on, or read it "
                                 "with a reading option that names its classes as the model does (`options`).")
    return overlap


# --------------------------------------------------------------------------------------------- data sets
def inspect_dataset(data: str | Path) -> dict[str, Any]:
    """What `dataset inspect` finds, as JSON: the statistics (DatasetStats.to_dict), the problems (with what
    each dropped; files named inside the data set, never by a path of this machine), the notes, the class
    colours, the declared splits and the health check (`data.health`: usable images, what to fix). Reads the
    annotations alone (lenient)."""
    from masksmith.data import load_dataset
    from masksmith.data.health import dataset_health
    from masksmith.data.stats import dataset_stats

    dataset = load_dataset(data, strict=False, need_pixels=False)
    stats = dataset_stats(dataset, pixels=True)
    roots = [str(r) for r in (dataset.root, data) if r]

    def inside(text: str) -> str:
        for root in roots:
            text = text.replace(root.rstrip("/") + "/", "").replace(root, "the data set")
        return text

    summary = stats.to_dict()
    summary["problems"] = [{"text": inside(str(p)), "dropped": p.dropped, "count": p.count} for p in stats.problems]
    summary["notes"] = [inside(str(n)) for n in stats.notes]
    summary["class_colors"] = [{"name": c.name, "color": list(c.color)} for c in dataset.classes]
    summary["splits"] = dict(stats.splits)
    summary["health"] = dataset_health(dataset, stats).to_dict()
    return summary


def add_unlabelled(data: str | Path, photos: list[Any]) -> list[str]:
    """Add photos without annotations to a labelling folder (`data.labelling`): files, folders of photos, or
    (name, bytes) pairs from an upload. Returns the names they were given."""
    from masksmith.data import labelling

    files: list[tuple[str, Any]] = []
    for item in photos:
        if isinstance(item, tuple):
            files.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            files += [(p.name, p) for p in sorted(path.iterdir())
                      if p.is_file() and p.suffix.lower() in labelling.PHOTO_SUFFIXES]
        elif path.is_file():
            files.append((path.name, path))
        else:
            raise MasksmithError("does not exist.", path=path, fix="give photo files or folders of photos.")
    if not files:
        raise MasksmithError("no photos given.", fix="give JPEG or PNG photos, or folders holding them.")
    return labelling.add_unlabelled(data, files)


def start_labelling(data: str | Path, out: str | Path, colors: dict[str, Any] | None = None,
                    objects: bool = False) -> Path:
    """A labelling folder at `out` from any data set (`dataset convert` to class-value masks), so photos can
    be added to it and corrected masks saved as its annotations. With `objects`, an instance data set: each
    photo's objects kept too (`masksmith.data.labelling_objects`), edited and saved as objects."""
    from masksmith.data.convert import convert
    from masksmith.data.labelling_objects import make_instance_folder

    dataset = open_dataset(data, colors)
    convert(dataset, "masks", Path(out))
    if objects:
        make_instance_folder(out, dataset)
    return Path(out)


def open_dataset(data: str | Path, colors: dict[str, Any] | None = None, strict: bool = False):
    """The data set with its pixels (lenient by default), in the class colours a person chose."""
    from masksmith.data import load_dataset

    dataset = load_dataset(data, strict=strict)
    if colors:
        dataset.recolor_classes(colors)
    return dataset


def write_split(dataset, folder_for: Callable[[str], Path], val: float = 0.2, test: float = 0.0,
                seed: int = 0) -> dict[str, Path]:
    """`split`, each part written as a COCO data set into `folder_for(part name)`: {part name: folder}."""
    from masksmith.data.convert import convert

    written = {}
    for name, part in split(dataset, val, test, seed).items():
        folder = folder_for(name)
        convert(part, "coco", folder)
        written[name] = folder
    return written


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


@dataclass
class RunSummary:
    """A run at a glance: epochs done, seconds trained, its headline figure and whether it has a model file."""

    epochs: int
    seconds: float | None
    headline: Headline
    has_model: bool


def run_summary(run_dir: str | Path, task: str) -> RunSummary:
    progress = runfolder.run_progress(Path(run_dir))
    rows = progress["epochs"]
    return RunSummary(len(rows), rows[-1].get("seconds") if rows else None, run_headline(run_dir, task),
                      progress["model"])


# ------------------------------------------------------------------------------------ what to expect
def suggest_budget(data: str | Path, *, task: str | None = None, model: str | None = None,
                   colors: dict[str, Any] | None = None) -> dict[str, Any]:
    """The budget this data set needs on this machine (`train.suggest`): the plan's input size and batch for
    the chosen model, this machine's measured speed at them, minutes for a usable and for a good model, and
    what a few budgets give, in words."""
    from masksmith.data.fingerprint import dataset_fingerprint
    from masksmith.models.registry import get_model
    from masksmith.tasks import get_task
    from masksmith.train.plan import Machine, plan_training
    from masksmith.train.suggest import instance_rate
    from masksmith.train.suggest import suggest_budget as suggest

    config = training_config(data, task=task, model=model, strict_data=False)
    dataset = open_dataset(data, colors)
    usable = [s for s in dataset.samples if not s.image_missing]
    fp = dataset_fingerprint(dataset)
    divisor = get_model(config.arch, config.task).divisor
    plan = plan_training(fp, Machine.here(), task=config.task, divisor=divisor)
    size, batch = int(plan.value("size")), int(plan.value("batch_size"))
    train_images = max(1, round(len(usable) * (1 - config.val_fraction)))
    if get_task(config.task).speed is not None:  # this machine's measured rate (the plan's measurement, cached)
        rate, measured = 1.0 / get_task(config.task).load("speed")(config, dataset.class_map).train_seconds(
            size * size), True
    else:
        rate, measured = instance_rate(size), False
    budget = suggest(train_images, rate, size, batch, measured)
    return {**budget.to_dict(), "task": config.task, "model": config.arch,
            "expect": {str(m): budget.expect(m) for m in sorted({1, 3, budget.usable_minutes, budget.good_minutes})}}


CLASS_LEVELS = {"score": (0.7, 0.4), "percent": (0.5, 0.25)}  # (good at, fair at) for IoU and for AP


def model_card(run_dir: str | Path, task: str) -> dict[str, Any] | None:
    """The model in plain words, from its score on the validation photos: whether it is usable, the main
    score explained, and per class a bar and a level (good / fair / not yet), best first. None before the
    run has been scored."""
    from masksmith.evaluate.result import Evaluation

    metrics = runfolder.read_evaluation(Path(run_dir) / runfolder.EVALUATION / runfolder.VALIDATION)
    if not metrics:
        return None
    evaluation = Evaluation.from_dict(metrics)
    column = evaluation.columns[0] if evaluation.columns else None
    good, fair = CLASS_LEVELS.get(column.kind if column else "score", (0.7, 0.4))
    rows, unscored = [], []
    for name, value in (evaluation.class_values(column.name).items() if column else []):
        if name.lower() in ("background", "_background_"):
            continue
        if value is None:
            unscored.append({"name": name, "value": None, "level": "not scored"})
            continue
        level = "good" if value >= good else "fair" if value >= fair else "not yet"
        rows.append({"name": name, "value": float(value), "level": level})
    rows.sort(key=lambda r: -r["value"])
    headline = evaluation.headline
    usable = headline.value is not None and headline.value >= (fair + good) / 2 - 0.05
    said = [f"{words} {_in_words(names)}" for level, words in (("good", "good at"), ("fair", "fair at"),
                                                              ("not yet", "not yet at"))
            if (names := [r["name"] for r in rows if r["level"] == level])]
    if unscored:
        said.append(f"{_in_words([r['name'] for r in unscored])} not scored (no validation photo has them)")
    said_text = "; ".join(said)
    explained = (f"{headline.name} {headline.text()}: on the {evaluation.images} validation photos, the parts the "
                 f"model paints overlap the true parts by {100 * (headline.value or 0):.0f} % of their combined "
                 "area, on average over the classes." if headline.kind == "score" else
                 f"{headline.name} {headline.text()}: of the objects in the {evaluation.images} validation photos, "
                 "how many the model finds with a well-fitting mask (100 is perfect).")
    before = runfolder.read_evaluation(Path(run_dir) / runfolder.EVALUATION / runfolder.STARTED_FROM)
    started = Evaluation.from_dict(before).headline if before else None
    return {"usable": usable, "verdict": ("Usable: " if usable else "Not usable yet: ") + said_text + ".",
            "before": {"name": started.name, "value": started.value, "text": started.text()} if started else None,
            "explained": explained, "column": column.name if column else "", "classes": rows + unscored,
            "headline": {"name": headline.name, "value": headline.value, "text": headline.text()},
            "images": evaluation.images}


def _in_words(names: list[str], most: int = 4) -> str:
    shown = names[:most]
    text = ", ".join(shown[:-1]) + (" and " if len(shown) > 1 else "") + shown[-1]
    return text + (f" (+{len(names) - most} more)" if len(names) > most else "")


# ---------------------------------------------------------------------------------------------- the clock
PREPARE_SECONDS, PREPARE_PER_IMAGE = 8.0, 0.15  # reading and decoding the photos, building the model
SCORE_SECONDS, SCORE_PER_IMAGE = 4.0, 0.4  # scoring the model file on the validation photos at the end


def run_clock(run_dir: str | Path, state: str, now: float | None = None, images: int | None = None
              ) -> dict[str, Any]:
    """One clock for a whole training job, from what the run folder says: the wall time since Start over
    every session (status.json: `wall_before` + this session), the time left (training left by the budget or
    the epochs, plus preparing when this session has not finished an epoch, plus scoring at the end), the
    fraction done, and the phase. `images`: the data set's size, for the first preparation's estimate."""
    import json
    import time as _time

    from masksmith.core.durations import format_duration

    run_dir = Path(run_dir)
    now = _time.time() if now is None else now
    progress = runfolder.run_progress(run_dir)
    status, rows = progress["status"], progress["epochs"]
    try:
        config = TrainConfig.from_yaml(run_dir / runfolder.CONFIG)
    except Exception:  # a page must not fail on a broken config; the clock then says less
        config = None
    started = status.get("started")
    active = state in ("running", "stopping")
    this_session = (now if active else status.get("ended") or now) - started if started else 0.0
    elapsed = float(status.get("wall_before") or 0.0) + max(0.0, this_session)
    metrics = run_dir / runfolder.METRICS
    written = metrics.stat().st_mtime if metrics.is_file() else 0.0
    epoch_this_session = bool(rows) and started is not None and written >= started
    trained = float(rows[-1].get("seconds", 0)) if rows else 0.0
    if active and epoch_this_session:
        trained += max(0.0, now - written)
    try:
        data = json.loads((run_dir / runfolder.DATA).read_text(encoding="utf-8"))
        images, val_images = data["images"]["total"], data["images"]["validation"]
    except (OSError, ValueError, KeyError, TypeError):
        val_images = round(0.15 * (images or 20))
    prepare = PREPARE_SECONDS + PREPARE_PER_IMAGE * (images or 20)
    score = SCORE_SECONDS + SCORE_PER_IMAGE * val_images
    train_left = 0.0
    if config is not None and config.time_budget:
        train_left = max(0.0, config.time_budget - trained)
    elif config is not None and config.epochs:
        per_epoch = trained / max(1, len(rows)) if rows else 0.0
        train_left = per_epoch * max(0, config.epochs - len(rows))
    preparing = state in ("queued", "running") and not epoch_this_session
    prepare_left = max(3.0, prepare - max(0.0, this_session)) if preparing and state == "running" else \
        prepare if state == "queued" else 0.0
    scoring = active and not preparing and train_left <= 0
    left = 0.0 if state == "finished" else train_left + prepare_left + (score if not scoring else max(
        2.0, score - max(0.0, now - written)))
    phase = _phase(state, preparing, scoring, prepare_left, left, bool(status.get("resumed")), len(rows))
    return {"elapsed": round(elapsed, 1), "elapsed_text": format_duration(elapsed), "left": round(left, 1),
            "left_text": format_duration(left), "fraction": 1.0 if state == "finished" else
            round(elapsed / max(1e-6, elapsed + left), 4) if elapsed + left > 0 else 0.0, "phase": phase,
            "budget": config.time_budget if config else None, "max_epochs": config.epochs if config else None,
            "budget_key": f"{config.time_budget}|{config.epochs}" if config else "", "trained": round(trained, 1),
            "resumed": bool(status.get("resumed")), "resumed_at": status.get("resumed_at")}


def _phase(state: str, preparing: bool, scoring: bool, prepare_left: float, left: float, resumed: bool,
           epochs: int) -> str:
    from masksmith.core.durations import format_duration

    if state == "running" and preparing:
        what = f"resuming from its checkpoint (epoch {epochs})" if resumed and epochs else \
            "preparing the data and the model"
        return f"{what}: about {format_duration(prepare_left)}"
    if state == "running" and scoring:
        return f"scoring the model on the validation photos: about {format_duration(left)}"
    return {"queued": "waiting for the training before it to finish", "running": "training",
            "stopping": "stopping (saving a checkpoint)", "finished": "finished", "stopped": "stopped",
            "failed": "failed", "interrupted": "interrupted"}[state]
