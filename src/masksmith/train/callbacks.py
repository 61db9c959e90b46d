"""Lightning callbacks that make a run folder worth opening: the clock-driven LR schedule, metrics.csv and
curves.png, a preview picture per epoch, a progress bar with true epoch counts and the time left, and the
model file kept current. Training is extended by adding a
callback here, never by editing the loop."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import OnExceptionCheckpoint, RichProgressBar

from masksmith.core.durations import format_duration
from masksmith.core.labels import ClassMap
from masksmith.core.outputs import atomic_save_image, storage_error
from masksmith.core.runfolder import CURVES, METRICS, PREVIEWS, append_csv_row
from masksmith.draw.charts import plot_curves


class ClockSchedule(L.Callback):
    """Linear warm-up, then cosine decay, driven by whichever runs out first: epochs or the time budget.

    With a time budget the number of steps is unknown in advance, so progress is measured by the clock; this
    is what lets a 12-minute run end at a low learning rate instead of being cut off mid-schedule.
    """

    def __init__(self, base_lrs: list[float], epochs: int | None, time_budget: float | None,
                 warmup: float = 0.03, floor: float = 0.01) -> None:
        self.base_lrs = base_lrs
        self.epochs = epochs
        self.time_budget = time_budget
        self.warmup = warmup
        self.floor = floor
        self.elapsed_before = 0.0  # training seconds of earlier sessions of a resumed run
        self.started = time.monotonic()
        self.progress = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed": self.elapsed()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.elapsed_before = float(state.get("elapsed", 0.0))

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.monotonic()

    def progress_now(self, trainer: L.Trainer) -> float:
        """Fraction of the run done, 0..1, by steps or by the clock, whichever is further along."""
        parts = []
        if self.epochs:
            steps = max(1, self.epochs * max(1, trainer.num_training_batches))
            parts.append(trainer.global_step / steps)
        if self.time_budget:
            parts.append(self.elapsed() / self.time_budget)
        return min(1.0, max(parts)) if parts else 0.0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self.progress = self.progress_now(trainer)
        factor = self.factor(self.progress)
        for group, base in zip(trainer.optimizers[0].param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def factor(self, p: float) -> float:
        if p < self.warmup:
            return max(p / self.warmup, 0.02)
        q = (p - self.warmup) / max(1e-9, 1 - self.warmup)
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * q))


class ProgressiveResize(L.Callback):
    """Trains on smaller crops for the first part of the run, then at full size: low-resolution steps cost
    about half as much on a CPU, and the model sees many more images in the same time. Decided per epoch."""

    def __init__(self, transform: Any, clock: ClockSchedule, factor: float, until: float,
                 full: tuple[int, int], divisor: int = 1) -> None:
        self.transform, self.clock, self.until, self.full = transform, clock, until, tuple(full)
        self.small = tuple(max(divisor, round(s * factor / divisor) * divisor) for s in full)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.transform.size = self.small if self.clock.progress_now(trainer) < self.until else self.full


def run_clock(trainer: L.Trainer) -> ClockSchedule | None:
    """The run's ClockSchedule among the trainer's callbacks (it knows the time budget and time used)."""
    return next((c for c in trainer.callbacks if isinstance(c, ClockSchedule)), None)


def epoch_label(epoch: int, trainer: L.Trainer, word: str = "epoch") -> str:
    """"epoch 3/10" (epochs counted from 1, out of the total), and with a time budget the time left:
    "epoch 3 · 4m 10s left"."""
    total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
    text = f"{word} {epoch}/{total}" if total else f"{word} {epoch}"
    clock = run_clock(trainer)
    if clock is not None and clock.time_budget:
        text += f" \u00b7 {format_duration(clock.time_budget - clock.elapsed())} left"
    return text


class TrainingProgress(RichProgressBar):
    """Lightning's rich progress bar, saying "Epoch 3/10" (it says "Epoch 2/9", and "Epoch 0/0" for one
    epoch) and, for --time budgets, the time left instead of an epoch count it cannot know."""

    def __init__(self) -> None:
        super().__init__()
        self._shown = 0.0

    def _get_train_description(self, current_epoch: int) -> str:
        text = epoch_label(current_epoch + 1, self.trainer, "Epoch")
        width = len(self.validation_description)
        return f"{text:{width}}" if len(text) < width else text

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        clock = run_clock(trainer)
        now = time.monotonic()
        if clock is not None and clock.time_budget and now - self._shown >= 1.0 and self.progress is not None \
                and self.train_progress_bar_id is not None:
            self._shown = now  # the time left, once a second
            self.progress.update(self.train_progress_bar_id,
                                 description=self._get_train_description(trainer.current_epoch))


class History(L.Callback):
    """Appends one row per epoch to metrics.csv, redraws curves.png and prints a one-line summary."""

    COLUMNS = ["epoch", "step", "seconds", "lr", "train_loss", "val_loss", "val_miou", "val_mean_dice",
               "val_pixel_accuracy"]

    def __init__(self, run_dir: Path, echo: bool = True) -> None:
        self.csv = run_dir / METRICS
        self.png = run_dir / CURVES
        self.echo = echo
        self.t0 = time.monotonic()

    def plot(self) -> None:
        plot_curves(self.csv, self.png)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        m = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
        clock = next((c for c in trainer.callbacks if isinstance(c, ClockSchedule)), None)
        seconds = clock.elapsed() if clock is not None else time.monotonic() - self.t0  # across resumed sessions
        self.write_row(trainer, {"epoch": trainer.current_epoch + 1, "step": trainer.global_step,
                                 "seconds": round(seconds, 1), "lr": trainer.optimizers[0].param_groups[0]["lr"], **m})

    def write_row(self, trainer: L.Trainer, values: dict[str, Any]) -> None:
        """One row of metrics.csv (the columns of `values` it has), the curves redrawn, the summary echoed."""
        row = {k: values.get(k) for k in self.COLUMNS}
        append_csv_row(self.csv, self.COLUMNS, row)
        self.plot()
        if self.echo:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "step") and
                              isinstance(v, float))
            label = "epoch 0 (the model it starts from)" if row["epoch"] == 0 else epoch_label(row["epoch"], trainer)
            print(f"{label}: {shown}", flush=True)


class Previews(L.Callback):
    """After every epoch, previews/epoch_NNN.png: fixed images as photo | truth | prediction | difference,
    titled with the epoch and its validation score, each row with the image's name and mIoU, and the legend.

    `names`: the preview images' names; `metric`: the callback metric shown in the title."""

    CELL = 192

    def __init__(self, run_dir: Path, images: torch.Tensor, masks: torch.Tensor,
                 classes: ClassMap, names: list[str] | None = None,
                 metric: str = "val_miou", metric_name: str = "validation mIoU") -> None:
        self.dir = run_dir / PREVIEWS
        self.images = images
        self.masks = masks
        self.classes = classes
        self.names = names or [f"image {k + 1}" for k in range(len(images))]
        self.metric, self.metric_name = metric, metric_name

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or len(self.images) == 0:
            return
        from masksmith.draw import comparison_sheet, semantic_row
        from masksmith.evaluate.metrics import ConfusionMatrix

        pred = pl_module.predict_masks(self.images)
        rows, captions = [], []
        for image, truth, p, name in zip(self.images, self.masks, pred, self.names, strict=True):
            im, t, p = image.permute(1, 2, 0).numpy(), truth.numpy(), p.numpy()
            rows.append(semantic_row(im, t, p, self.classes.palette(), self.CELL))
            one = ConfusionMatrix(self.classes.num_values)
            one.update_numpy(p, t)
            captions.append(f"{name} \u00b7 mIoU {one.scores().miou(True):.3f}")
        picture = comparison_sheet(rows, title=preview_title(trainer, self.metric, self.metric_name),
                                   captions=captions, classes=self.classes,
                                   cell=self.CELL)
        save_preview(picture, self.dir, trainer.current_epoch + 1)


def preview_title(trainer: L.Trainer, metric: str, metric_name: str) -> str:
    """"epoch 3/10 · validation mIoU 0.612" (the epoch's score, or a note that there is no validation set)."""
    value = trainer.callback_metrics.get(metric)
    score = f"{metric_name} {float(value):.3f}" if value is not None else "no validation set"
    return f"{epoch_label(trainer.current_epoch + 1, trainer)} \u00b7 {score}"


def save_preview(picture: Any, folder: Path, epoch: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return atomic_save_image(picture.pixels, folder / f"epoch_{epoch:03d}.png", **picture.save_options())


class KeepModelFile(L.Callback):
    """Writes model.masksmith whenever validation improves (every epoch when there is no validation set), and
    once more if training stops on an error or Ctrl-C before any model was kept, so the run folder always
    holds a usable model. Only ever from a trained state: nothing is written when the run stops before its
    first step (a checkpoint that does not load, an error at start), and never a state worse than the best."""

    def __init__(self, save, monitor: str | None) -> None:
        self.save = save  # callable(pl_module, reason) -> Path
        self.monitor = monitor
        self.best = -math.inf
        self.trained = False  # a training step ran in this session
        self.saved: tuple[str, int] | None = None  # (reason, epoch) of the model file written in this session

    def _save(self, pl_module: L.LightningModule, reason: str) -> None:
        self.save(pl_module, reason)
        self.saved = (reason, pl_module.current_epoch + 1)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.trained = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not self.trained:
            return
        value = trainer.callback_metrics.get(self.monitor) if self.monitor else None
        if value is None:
            self._save(pl_module, "last")
        elif float(value) > self.best:
            self.best = float(value)
            self._save(pl_module, "best")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if trainer.is_global_zero and self.trained and self.best == -math.inf and self.saved is None and \
                storage_error(exception) is None:  # on a full disk the model file there is the last good one
            with last_words("the model file"):
                self._save(pl_module, "interrupted")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state.get("best", -math.inf))


class KeepInterrupted(OnExceptionCheckpoint):
    """checkpoints/interrupted.ckpt when training stops on Ctrl-C or an error, but only after a training step
    of this session: a run that fails while it starts (a checkpoint that does not fit) writes nothing that a
    later --resume could prefer over the real last.ckpt."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start_step: int | None = None
        self.written: Path | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start_step = trainer.global_step  # after the checkpoint was restored

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self.start_step is None or trainer.global_step <= self.start_step or storage_error(exception):
            return
        with last_words("checkpoints/interrupted.ckpt"):
            super().on_exception(trainer, pl_module, exception)
            self.written = Path(self.ckpt_path)


@contextlib.contextmanager
def last_words(what: str) -> Iterator[None]:
    """A write made while training stops on an error: when it fails too, it is logged, so the error that
    stopped training is the one reported (not a chain of tracebacks ending in this write's)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the stop's own error is already on its way up
        logging.getLogger(__name__).warning("%s was not written while training stopped: %s", what, exc)


class StartingModel(L.Callback):
    """A fine-tune's starting weights as epoch 0 (masksmith.train.finetune): scored on the validation photos
    before the first step, recorded as metrics.csv's epoch 0, written as the run's model file and best.ckpt,
    and the score every epoch must beat. KeepModelFile and the best ModelCheckpoint (the same monitor) then
    replace them only with an epoch that scores higher, so a fine-tune never leaves a worse model than it
    started from. A resumed run skips this: its checkpoint holds the best so far."""

    def __init__(self, score: Any, monitor: str, keep: KeepModelFile, best: Any = None,
                 history: History | None = None) -> None:
        self.score = score  # callable(pl_module) -> {metric: value}, the validation metrics
        self.monitor, self.keep, self.best, self.history = monitor, keep, best, history
        self.start: float | None = None  # the starting model's score, when scored in this session
        self.trained_best = -math.inf  # the best epoch of this session

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step > 0:
            return
        metrics = self.score(pl_module)
        value = float(metrics[self.monitor])
        self.start = value
        if trainer.is_global_zero:
            self.keep.save(pl_module, "start", epoch=0, metrics=metrics)
            self.keep.saved = ("start", 0)
            if self.history is not None:
                self.history.write_row(trainer, {"epoch": 0, "step": 0, "seconds": 0.0, "lr": 0.0, **metrics})
        self.keep.best = value
        if self.best is not None:  # best.ckpt: the starting weights, the top-1 to beat
            path = str(Path(self.best.dirpath) / f"{self.best.filename}{self.best.FILE_EXTENSION}")
            trainer.save_checkpoint(path)
            score = torch.tensor(value)
            self.best.best_k_models = {path: score}
            self.best.kth_best_model_path = self.best.best_model_path = path
            self.best.kth_value = self.best.best_model_score = score

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None:
            self.trained_best = max(self.trained_best, float(value))

    def kept_start(self) -> bool:
        """Whether the run ends with the starting model because no epoch beat it."""
        return self.start is not None and self.keep.saved == ("start", 0)

    def verdict(self) -> str | None:
        """One line for the run's log: whether an epoch beat the starting model."""
        if self.start is None:
            return None
        best = f"{self.trained_best:.4f}" if self.trained_best > -math.inf else "none"
        if self.kept_start():
            return (f"fine-tune: no epoch beat the starting model's {self.monitor} {self.start:.4f} (best epoch: "
                    f"{best}), so the run's model file is the starting model, unchanged")
        return f"fine-tune: {self.monitor} {self.start:.4f} before training (epoch 0), {best} at best after"
