"""Training configuration: one dataclass, saved as the run folder's config.yaml and read back by --resume."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from masksmith.core.errors import MasksmithError

MAX_EPOCHS = 1_000_000
MAX_SECONDS = 366 * 24 * 3600.0  # a time budget of a year at most


@dataclass
class TrainConfig:
    data: str = ""
    format: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    val_data: str | None = None  # a separate validation set; otherwise val_fraction of `data`
    val_fraction: float = 0.15
    task: str = "semantic"
    arch: str = "unet"
    encoder: str = "tf_efficientnet_lite0"
    encoder_weights: str | None = "imagenet-offline"
    decoder_channels: list[int] | None = field(default_factory=lambda: [128, 64, 32, 16, 16])
    # a pretrained encoder keeps its stem and stages down to stride 2**N fixed (weights and BatchNorm
    # statistics): generic filters that need no retraining, and a training step is ~25 % faster without
    # their backward pass; 0 trains every layer (from-scratch encoders always do)
    freeze_encoder_levels: int = 2
    # left/right class pairs (flip_pairs) predicted as one part plus a side map shared by all pairs, so which
    # side of the car a pixel shows is learned once from every left/right pixel (models/sides.py)
    side_head: bool = True
    model_options: dict[str, Any] = field(default_factory=dict)  # instance models: keys of instance_model_config
    # fine-tune: start from this model file's (or run folder's) network and weights instead of a new network;
    # the data set must have the model's classes (the labelling loop's "continue training")
    from_model: str | None = None
    size: int = 256  # images are resized to size x size (see input_mode in the model file) ...
    shrink: float | None = None  # ... or shrunk by this factor, keeping their aspect (sliding-window prediction)
    # with shrink: train on random crops of this side ([h, w] when they differ) of the shrunk photos, instead of
    # one window of the median photo's size cut from each photo's top-left corner
    crop: int | list[int] | None = None
    crops_per_image: int = 1  # crops per photo and epoch
    # training items (crops, or whole photos) per epoch; None: one pass over the photos. A budgeted plan sets it
    # so the run has several epochs ("validation intervals") whatever the data size
    crops_per_epoch: int | None = None
    val_items: int | None = None  # validation windows (or photos) scored each epoch, a fixed subset; None: all
    foreground_crops: float = 0.0  # share of crops centred on a labelled pixel of a class the photo has
    # plan the values above, batch_size and size from the data set's fingerprint (masksmith.train.plan) before
    # training, except the fields named in `fixed` (the user set them); the plan applied is recorded in `plan`
    # (each value with its source, plan / user / default, and its reason), and a config with a plan is not
    # planned again (--resume, --config)
    auto_plan: bool = False
    fixed: list[str] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)
    low_res_factor: float | None = 0.75  # progressive resizing: train at this fraction of the size first ...
    low_res_until: float = 0.5  # ... for this fraction of the run (by epochs or by the clock)
    loss: str = "auto"  # ce+dice; bce+dice (one sigmoid output) when there is a single class
    class_weights: list[float] | None = None
    # {class name: [r, g, b]}: draw these classes (and record them in the model file) in these colours instead
    # of the data set's own (the web app's data set page lets a user choose them)
    class_colors: dict[str, list[int]] = field(default_factory=dict)
    lr: float = 4e-3  # short CPU runs learn far faster at 4e-3 than at the usual 1e-3 (docs/benchmarks.md)
    # a fine-tune (`from_model`) peaks at lr * this: the trained weights are near a good minimum, and the
    # from-scratch peak throws them away in a few dozen AdamW steps (masksmith.train.finetune)
    finetune_lr_factor: float = 0.1
    encoder_lr_factor: float = 1.0  # the pretrained encoder learns at lr * this; the new decoder at lr
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.03
    batch_size: int = 8
    epochs: int | None = 30
    # seconds the whole run may take: reading the data, training, validating, the final evaluation and the
    # report (masksmith.train.budget keeps to it); the learning-rate schedule follows the clock when given
    time_budget: float | None = None
    flip: bool = True
    flip_pairs: list[list[str]] | str = "auto"  # "auto": detected from class names; [] for none
    scale: list[float] = field(default_factory=lambda: [0.7, 1.0])  # crops keep enough context for left/right
    color_jitter: float = 0.25
    precision: str = "auto"  # "auto" uses bf16 autocast where the CPU supports it
    channels_last: bool = True
    seed: int = 0
    preview_images: int = 4
    num_workers: int = 0
    devices: int | str = 1
    strategy: str = "auto"
    accelerator: str = "auto"
    name: str | None = None
    runs_dir: str = "runs"
    strict_data: bool = True

    @classmethod
    def for_task(cls, task: str | None = None, model: str | None = None, **values: Any) -> TrainConfig:
        """A config with the task's defaults (model, size, batch; `masksmith.tasks`), the task chosen from the
        model when not given, then `values` on top. Not yet checked: call `check()`."""
        from masksmith.tasks import choose_task

        chosen = choose_task(task, model)
        config = cls(task=chosen.name, arch=model or chosen.default_model, size=chosen.default_size,
                     batch_size=chosen.default_batch)
        for key, value in values.items():
            if key not in cls.__dataclass_fields__:
                raise MasksmithError(f"`{key}` is not a training setting.",
                                     fix=f"use one of: {', '.join(sorted(cls.__dataclass_fields__))}.")
            setattr(config, key, value)
        return config

    def check(self, path: str | Path | None = None) -> TrainConfig:
        """Refuse values no run can use (a batch of 0, negative epochs or time, a fraction above 1, a model of
        another task ...) with one line naming the setting (as `name`, which each front spells its own way:
        a flag, a form field) and the fix; the one place these are checked."""
        import math

        def bad(key: str, rule: str) -> MasksmithError:
            return MasksmithError(f"`{key}` is {getattr(self, key)!r}; it must be {rule}.", path=path,
                                  fix=f"give `{key}` {rule}.")

        def number(key: str, low: float | None = None, high: float | None = None, *, low_open: bool = False,
                    optional: bool = False, integer: bool = False) -> None:
            value = getattr(self, key)
            if value is None and optional:
                return
            kind = "a whole number" if integer else "a number"
            if isinstance(value, bool) or not isinstance(value, int if integer else int | float) or \
                    not math.isfinite(value):
                raise bad(key, kind)
            if low is not None and (value <= low if low_open else value < low):
                raise bad(key, f"{kind} {'above' if low_open else 'of at least'} {_shown(low)}"
                          + (f" and at most {_shown(high)}" if high is not None else ""))
            if high is not None and value > high:
                raise bad(key, f"{kind} of at most {_shown(high)}")

        number("batch_size", 1, 4096, integer=True)
        number("epochs", 1, MAX_EPOCHS, optional=True, integer=True)
        number("time_budget", 0, MAX_SECONDS, low_open=True, optional=True)
        if self.epochs is None and self.time_budget is None:
            raise MasksmithError("neither epochs nor a time budget is set: the run would never end.", path=path,
                                 fix="set `epochs` or `time_budget`.")
        from masksmith.models.registry import get_model
        from masksmith.tasks import get_task

        self.arch = get_model(self.arch, get_task(self.task).name).name
        number("size", 16, 8192, integer=True)
        number("shrink", 1, 64, optional=True)  # a factor: 2 halves each side
        number("lr", 0, 10, low_open=True)
        number("encoder_lr_factor", 0, None)
        number("finetune_lr_factor", 0, 1, low_open=True)
        number("weight_decay", 0, None)
        number("warmup_fraction", 0, 0.99)
        number("val_fraction", 0, 0.95)
        number("low_res_factor", 0, 1, low_open=True, optional=True)
        number("low_res_until", 0, 1)
        number("color_jitter", 0, 1)
        number("freeze_encoder_levels", 0, 5, integer=True)
        number("preview_images", 0, 64, integer=True)
        number("crops_per_epoch", 1, None, optional=True, integer=True)
        number("val_items", 1, None, optional=True, integer=True)
        number("num_workers", 0, 64, integer=True)
        number("seed", 0, 2**32 - 1, integer=True)
        if self.name:  # the run folder is `runs_dir`/`name`, never anywhere else
            from masksmith.core.paths import is_plain_name, safe_filename

            if not isinstance(self.name, str) or not is_plain_name(self.name):
                raise MasksmithError(f"`name` is {self.name!r}; a run name is one folder name under `runs_dir`, "
                                     "never a path (no / or \\, no leading dot, no control or reserved "
                                     "characters).", path=path, fix="give `name` a plain name, e.g. "
                                     f"`name={safe_filename(str(self.name), 'run')}`.")
        if self.from_model is not None:
            self._check_from_model(path)
        if not (isinstance(self.scale, list) and len(self.scale) == 2 and
                all(isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 1 for v in self.scale)
                and self.scale[0] <= self.scale[1]):
            raise MasksmithError(f"`scale` is {self.scale!r}; it must be [low, high] with 0 < low <= high <= 1.",
                                 path=path, fix="e.g. `scale` [0.7, 1.0].")
        return self

    def with_plan(self, plan: Any) -> TrainConfig:
        """A copy of this config with a training plan's values (masksmith.train.plan.Plan) and its record."""
        from dataclasses import replace

        return replace(self, **plan.settings(), plan=plan.to_dict())

    def with_record(self, record: dict[str, Any]) -> TrainConfig:
        """A copy with `record` as its plan record (where each planned value came from)."""
        from dataclasses import replace

        return replace(self, plan=record)

    def to_yaml(self) -> str:
        return yaml.safe_dump(asdict(self), sort_keys=False)

    @classmethod
    def from_yaml(cls, path: Path) -> TrainConfig:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise MasksmithError(f"cannot be read as a training config ({exc}).", path=path) from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MasksmithError(f"has unknown keys: {', '.join(unknown)}.", path=path,
                                 fix=f"remove them; known keys: {', '.join(sorted(known))}.")
        hints = get_type_hints(cls)
        for key, value in data.items():
            if not _fits(value, hints[key]):
                raise MasksmithError(f"{key}: {value!r} is not of type {_type_name(hints[key])}.", path=path,
                                     fix=f"give {key} a value of that type (default: {getattr(cls(), key)!r}).")
        return cls(**data).check(path)

    def _check_from_model(self, path: str | Path | None) -> None:
        """`from_model` names an existing model file or run folder (its task and classes are checked against the
        run's when training starts)."""
        model = Path(str(self.from_model)) if isinstance(self.from_model, str) and self.from_model else None
        if model is None or not (model.is_file() or (model / "model.masksmith").is_file()):
            raise MasksmithError(f"`from_model` is {self.from_model!r}, which is no model file.", path=path,
                                 fix="give `from_model` the model.masksmith (or the run folder) to fine-tune.")


def _shown(value: float) -> str:
    """A bound as a person reads it: 31622400, not 3.16224e+07."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _fits(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a field's type: unions, None, lists, dicts; ints pass for floats, bools only
    for bools."""
    if hint is Any:
        return True
    origin = get_origin(hint)
    if origin in (Union, UnionType):
        return any(_fits(value, h) for h in get_args(hint))
    if hint is type(None):
        return value is None
    if origin is not None:
        return isinstance(value, origin)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "") if get_origin(hint) else hint.__name__
