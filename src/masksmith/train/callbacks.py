"""Lightning callbacks that make a run folder worth opening: the clock-driven LR schedule, metrics.csv and
curves.png, a preview picture per epoch, and the model file kept current. Training is extended by adding a
callback here, never by editing the loop."""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from masksmith.outputs import atomic_save_figure, atomic_save_image, atomic_write_text


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


class History(L.Callback):
    """Appends one row per epoch to metrics.csv, redraws curves.png and prints a one-line summary."""

    COLUMNS = ["epoch", "step", "seconds", "lr", "train_loss", "val_loss", "val_miou", "val_mean_dice",
               "val_pixel_accuracy"]

    def __init__(self, run_dir: Path, echo: bool = True) -> None:
        self.csv = run_dir / "metrics.csv"
        self.png = run_dir / "curves.png"
        self.echo = echo
        self.t0 = time.monotonic()

    def plot(self) -> None:
        plot_curves(self.csv, self.png)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        m = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
        row = {"epoch": trainer.current_epoch + 1, "step": trainer.global_step,
               "seconds": round(time.monotonic() - self.t0, 1),
               "lr": trainer.optimizers[0].param_groups[0]["lr"],
               **{k: m.get(k) for k in self.COLUMNS[4:]}}
        append_csv_row(self.csv, self.COLUMNS, row)
        self.plot()
        if self.echo:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "step") and
                              isinstance(v, float))
            print(f"epoch {row['epoch']}: {shown}", flush=True)


def append_csv_row(path: Path, columns: list[str], row: dict[str, Any]) -> Path:
    """The CSV rewritten with one more row, atomically: an interrupted epoch never leaves half a line."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    if not old:
        writer.writeheader()
    writer.writerow(row)
    return atomic_write_text(path, old + buf.getvalue())


def read_metrics(path: Path) -> list[dict[str, float]]:
    with path.open() as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


def plot_curves(csv_path: Path, png_path: Path, losses: tuple[str, ...] = ("train_loss", "val_loss"),
                metrics: tuple[str, ...] = ("val_miou", "val_mean_dice", "val_pixel_accuracy"),
                metrics_title: str = "validation") -> Path:
    """Loss curves (left) and validation metrics in [0, 1] (right) per epoch, from metrics.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(csv_path)
    epochs = [r["epoch"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for axes, keys, title in ((a, losses, "loss"), (b, metrics, metrics_title)):
        for key in keys:
            if any(key in r for r in rows):
                main = key == keys[0] or axes is b
                axes.plot(epochs, [r.get(key, np.nan) for r in rows], marker="o" if main else ".", label=key,
                          linewidth=2 if key == keys[0] else 1)
        axes.set_xlabel("epoch")
        axes.set_title(title)
        if axes.lines:
            axes.legend(fontsize=7 if len(keys) > 3 else None)
    b.set_ylim(0, 1)
    fig.tight_layout()
    atomic_save_figure(fig, png_path, dpi=90)
    plt.close(fig)
    return png_path


class Previews(L.Callback):
    """After every epoch, previews/epoch_NNN.png: fixed images, their truth and the model's prediction."""

    def __init__(self, run_dir: Path, images: torch.Tensor, masks: torch.Tensor,
                 colors: list[tuple[int, int, int]]) -> None:
        self.dir = run_dir / "previews"
        self.images = images
        self.masks = masks
        self.colors = colors

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or len(self.images) == 0:
            return
        from masksmith.apps.overlay import colorize, grid, overlay

        pred = pl_module.predict_masks(self.images)
        pictures = []
        for image, truth, p in zip(self.images, self.masks, pred, strict=True):
            im = image.permute(1, 2, 0).numpy()
            pictures += [im, colorize(truth.numpy(), self.colors), overlay(im, p.numpy(), self.colors, 0.6)]
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch_{trainer.current_epoch + 1:03d}.png"
        atomic_save_image(grid(pictures, columns=3, cell=192), self.dir / name)


class KeepModelFile(L.Callback):
    """Writes model.masksmith whenever validation improves (every epoch when there is no validation set), and
    once more if training stops on an error or Ctrl-C, so the run folder always holds a usable model."""

    def __init__(self, save, monitor: str | None) -> None:
        self.save = save  # callable(pl_module, reason) -> Path
        self.monitor = monitor
        self.best = -math.inf

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        value = trainer.callback_metrics.get(self.monitor) if self.monitor else None
        if value is None:
            self.save(pl_module, "last")
        elif float(value) > self.best:
            self.best = float(value)
            self.save(pl_module, "best")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if trainer.is_global_zero and self.best == -math.inf:
            self.save(pl_module, "interrupted")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state.get("best", -math.inf))
