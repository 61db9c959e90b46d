"""What every training run shares, whatever the task: the model file writer and the Lightning Trainer with
its checkpoints, clock-driven schedule, Ctrl-C checkpoint, history, previews, progressive resizing and
progress bar; data.json when training starts, and when it ends the model file evaluated on the validation
split (evaluation/validation/) and report.html. The task trainers (semantic.py, instance.py) build the data,
module and callbacks that differ."""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from masksmith.errors import MasksmithError
from masksmith.models.artifact import ModelArtifact, save_artifact
from masksmith.runfolder import DATA, MODEL, VALIDATION
from masksmith.train.callbacks import ClockSchedule, KeepModelFile, ProgressiveResize, TrainingProgress
from masksmith.train.config import TrainConfig
from masksmith.train.samples import SampleSplit

MODEL_FILE = MODEL


def start_run(config: TrainConfig, run_dir: Path | None, resume: bool) -> tuple[Path, Path | None]:
    """Quiet Lightning, seed everything, and return (run folder, checkpoint to resume from or None): a new
    folder under config.runs_dir unless `run_dir` is given."""
    quiet_lightning()
    L.seed_everything(config.seed, workers=True, verbose=False)
    run_dir = run_dir or new_run_dir(config)
    return run_dir, resume_checkpoint(run_dir) if resume else None


def quiet_lightning() -> None:
    """Lightning's hints that do not apply to how we drive it (we pass ckpt_path ourselves, validation is
    optional) would only confuse users; real warnings stay."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    for message in (r"`\.fit\(ckpt_path=None\)` was called without a model", r"\.fit\(ckpt_path=\"last\"\) is set",
                    r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"You defined a `validation_step` but have no",
                    r"The '\w+_dataloader' does not have many workers", r"The number of training batches",
                    r"Found \d+ module\(s\) in eval mode at the start of training"):  # our frozen encoder stages
        warnings.filterwarnings("ignore", message=message)


def new_run_dir(config: TrainConfig) -> Path:
    root = Path(config.runs_dir)
    base = config.name or f"{config.arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    run = root / base
    k = 2
    while run.exists():
        run = root / f"{base}-{k}"
        k += 1
    return run


def resume_checkpoint(run_dir: Path) -> Path:
    """The newest of checkpoints/last.ckpt and interrupted.ckpt (written on Ctrl-C mid-epoch)."""
    found = [p for p in (run_dir / "checkpoints" / n for n in ("last.ckpt", "interrupted.ckpt")) if p.exists()]
    if not found:
        raise MasksmithError("has no checkpoints/last.ckpt to resume from.", path=run_dir,
                             fix="start a new run without --resume.")
    return max(found, key=lambda p: p.stat().st_mtime)


def model_saver(run_dir: Path, config: TrainConfig, artifact_fields: dict[str, Any], images: int,
                **summary: Any) -> Callable[[L.LightningModule, str], Path]:
    """save(pl_module, reason) -> run_dir/model.masksmith with the module's `net` weights, the artifact
    fields (task, model, classes, ...) and a training summary (reason, epoch, data, scalar metrics)."""

    def save(pl_module: L.LightningModule, reason: str) -> Path:
        state = {k: v.contiguous() for k, v in pl_module.net.state_dict().items()}
        metrics = {k: float(v) for k, v in pl_module.trainer.callback_metrics.items()
                   if torch.is_tensor(v) and v.numel() == 1}
        training = {"reason": reason, "epoch": pl_module.current_epoch + 1, "data": str(config.data),
                    "images": images, **summary, "metrics": metrics}
        return save_artifact(ModelArtifact(**artifact_fields, training=training, state_dict=state),
                             run_dir / MODEL_FILE)

    return save


def fit_run(config: TrainConfig, run_dir: Path, module: L.LightningModule, train_loader: Any, val_loader: Any,
            *, save: Callable[[L.LightningModule, str], Path], monitor: str | None, history: L.Callback,
            previews: L.Callback, precision: str, resume_from: Path | None,
            resize: tuple[Any, tuple[int, int], int] | None = None, split: SampleSplit | None = None,
            extra_callbacks: list[L.Callback] | None = None, **trainer_options: Any) -> None:
    """Fit `module` and leave the run folder complete (the model file is written even when nothing improved;
    with `split`, data.json, the validation split's evaluation and report.html too).

    `monitor`: the validation metric (higher is better) that picks best.ckpt and the model file; None keeps the
    last. `resize`: (object with a `size`, full (h, w), divisor) for progressive resizing when the config asks.
    `trainer_options` go to L.Trainer (e.g. gradient_clip_val)."""
    ckpt_dir = run_dir / "checkpoints"
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor=monitor, mode="max", save_last=True,
        save_top_k=1 if monitor else 0, enable_version_counter=False)
    clock = ClockSchedule(module.base_lrs(), config.epochs, config.time_budget, config.warmup_fraction)
    callbacks: list[L.Callback] = [
        clock, checkpoint,
        # written only when training stops on Ctrl-C or an error
        L.pytorch.callbacks.OnExceptionCheckpoint(dirpath=ckpt_dir, filename="interrupted"),
        history, previews, KeepModelFile(save, monitor), *(extra_callbacks or []),
    ]
    if resize is not None and config.low_res_factor and config.low_res_factor < 1:
        target, full, divisor = resize
        callbacks.append(ProgressiveResize(target, clock, config.low_res_factor, config.low_res_until, full,
                                           divisor))
    interactive = sys.stdout.isatty()
    if interactive:
        callbacks.append(TrainingProgress())
    trainer = L.Trainer(
        max_epochs=config.epochs if config.epochs else -1,
        max_time={"seconds": config.time_budget} if config.time_budget else None,
        accelerator=config.accelerator, devices=config.devices, strategy=config.strategy,
        precision=precision, callbacks=callbacks, logger=False,
        enable_progress_bar=interactive, enable_model_summary=False, default_root_dir=str(run_dir),
        num_sanity_val_steps=0, log_every_n_steps=5, deterministic=False, **trainer_options,
    )
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, trainer.world_size)))
    if split is not None and trainer.is_global_zero:
        write_data_summary(run_dir, config, split)
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(resume_from) if resume_from else None)
    if trainer.is_global_zero and not (run_dir / MODEL_FILE).exists():
        save(module, "last")
    if trainer.is_global_zero and split is not None:
        finish_run(run_dir, config, split)


def write_data_summary(run_dir: Path, config: TrainConfig, split: SampleSplit) -> Path:
    """data.json: what this run trains on (the report's data section)."""
    import json

    from masksmith.data.stats import dataset_stats
    from masksmith.outputs import atomic_write_text

    stats = dataset_stats(split.dataset, pixels=False)
    counts = {c.name: c for c in stats.classes}
    summary = {
        "data": str(config.data), "val_data": config.val_data, "format": split.dataset.format,
        "images": {"total": len(split.dataset.samples), "train": len(split.train), "validation": len(split.val)},
        "classes": [{"name": c.name, "color": list(c.color), "instances": counts[c.name].instances,
                     "images": counts[c.name].images} for c in split.dataset.classes],
        "flip_pairs": split.flip_pairs, "skipped": [str(p) for p in split.dataset.problems],
        "validation_images": [s.name for s in split.val],
    }
    return atomic_write_text(run_dir / DATA, json.dumps(summary, indent=1))


def finish_run(run_dir: Path, config: TrainConfig, split: SampleSplit) -> None:
    """When training ends: the model file evaluated on the validation split into evaluation/validation/
    (full-size scores, per-class table, confusion matrix, worst and best images), then report.html."""
    from masksmith.data.schema import Dataset
    from masksmith.report import write_report
    from masksmith.runfolder import EVALUATION

    if split.val:
        # no root: the subset is only read, and writing goes to our own run folder
        subset = Dataset(classes=split.dataset.classes, samples=list(split.val), format=split.dataset.format)
        out = run_dir / EVALUATION / VALIDATION
        try:
            if config.task == "instance":
                from masksmith.infer.instance import evaluate_instances

                evaluate_instances(run_dir / MODEL_FILE, subset, out, worst=4, data_label=VALIDATION)
            else:
                from masksmith.infer.evaluate import evaluate_semantic

                evaluate_semantic(run_dir / MODEL_FILE, subset, out, worst=4, data_label=VALIDATION)
            return  # the evaluation wrote the report
        except MasksmithError as exc:  # the model is saved; a failed evaluation must not hide that
            logging.getLogger(__name__).warning("the validation split was not evaluated: %s", exc)
    write_report(run_dir)
