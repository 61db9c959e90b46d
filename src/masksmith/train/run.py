"""What every training run shares, whatever the task: the model file writer and the Lightning Trainer with
its checkpoints, clock-driven schedule, Ctrl-C checkpoint, history, previews, progressive resizing and
progress bar; data.json when training starts, and when it ends the model file evaluated on the validation
split (evaluation/validation/) and report.html. The task trainers (semantic.py, instance.py) build the data,
module and callbacks that differ."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerStatus

from masksmith.core.errors import MasksmithError, TrainingInterrupted
from masksmith.core.outputs import atomic_save, atomic_write_text, check_writable
from masksmith.core.runfolder import CONFIG, DATA, MODEL, VALIDATION
from masksmith.models.artifact import ModelArtifact, save_artifact
from masksmith.train.budget import Deadline, KeepToBudget, RunBudget
from masksmith.train.callbacks import (
    ClockSchedule,
    KeepInterrupted,
    KeepModelFile,
    ProgressiveResize,
    TrainingProgress,
)
from masksmith.train.config import TrainConfig
from masksmith.train.samples import SampleSplit

MODEL_FILE = MODEL
EVALUATION_OVERHEAD = 1.5  # a photo's evaluation against its bare prediction: reading, scoring, the galleries


def start_run(config: TrainConfig, run_dir: Path | None, resume: bool) -> tuple[Path, Path | None]:
    """Check the config, quiet Lightning, seed everything, and return (run folder, checkpoint to resume from or
    None): a new folder under config.runs_dir unless `run_dir` is given. Everything that can refuse the run
    (values out of range, a runs folder that cannot be written, a checkpoint that cannot be read) does so here,
    before the data is read and before anything in the run folder is touched."""
    config.check()
    quiet_lightning()
    L.seed_everything(config.seed, workers=True, verbose=False)
    if run_dir is None:
        check_writable(Path(config.runs_dir))
        run_dir = new_run_dir(config)
    elif not resume:
        check_writable(run_dir)
    return run_dir, resume_checkpoint(run_dir) if resume else None


def begin_run(run_dir: Path, config: TrainConfig) -> None:
    """The moment training starts: the run folder and its config.yaml (rewritten on resume, with the epochs or
    time asked now), so an interrupted run is understood and can be resumed."""
    check_writable(run_dir)
    atomic_write_text(run_dir / CONFIG, config.to_yaml())


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


CHECKPOINTS = ("last.ckpt", "interrupted.ckpt")  # what --resume continues from (best.ckpt may be older)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A Lightning checkpoint read with weights_only=True, whatever TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD says (a
    poisoned checkpoint in a shared run folder must not run code), and checked to hold what resuming needs;
    a MasksmithError naming the file otherwise."""
    fix = "delete it (or move it away) to resume from another checkpoint, or start a new run instead of resuming."
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - damaged, truncated or code-carrying: one answer to the user
        raise MasksmithError(f"cannot be read as a training checkpoint ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:160] if str(exc) else 'no detail'}); nothing was changed.",
                             path=path, fix=fix) from None
    ok = isinstance(state, dict) and isinstance(state.get("state_dict"), dict) and \
        all(isinstance(state.get(k), int) and not isinstance(state.get(k), bool) and state[k] >= 0
            for k in ("epoch", "global_step"))
    if not ok:
        raise MasksmithError("is not a Lightning training checkpoint (no state_dict, epoch and global_step); "
                             "nothing was changed.", path=path, fix=fix)
    return state


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint reader with weights_only=True always: the one way masksmith's trainer reads a
    checkpoint."""

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None
                        ) -> dict[str, Any]:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        atomic_save(Path(path), lambda tmp: torch.save(checkpoint, tmp))  # never half a checkpoint


def resume_checkpoint(run_dir: Path) -> Path:
    """The checkpoint furthest along in training (global step, then epoch, read inside each file, never by
    file time) of checkpoints/last.ckpt and interrupted.ckpt (written on Ctrl-C mid-epoch). Every one of them
    must be readable: a damaged one stops the resume, naming it, before anything is changed."""
    found = [p for p in (run_dir / "checkpoints" / n for n in CHECKPOINTS) if p.exists()]
    if not found:
        raise MasksmithError("has no checkpoints/last.ckpt to resume from.", path=run_dir,
                             fix="start a new run instead of resuming.")
    progress = {}
    for path in found:
        state = read_checkpoint(path)
        progress[path] = (state["global_step"], state["epoch"], path.name == "last.ckpt")
    return max(found, key=progress.__getitem__)


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
            extra_callbacks: list[L.Callback] | None = None, budget: RunBudget | None = None,
            **trainer_options: Any) -> None:
    """Fit `module` and leave the run folder complete (the model file is written even when nothing improved;
    with `split`, data.json, the validation split's evaluation and report.html too).

    `monitor`: the validation metric (higher is better) that picks best.ckpt and the model file; None keeps the
    last. `resize`: (object with a `size`, full (h, w), divisor) for progressive resizing when the config asks.
    `budget`: the deadline the whole run keeps to (masksmith.train.budget), training ending early enough for
    the final evaluation and the report. `trainer_options` go to L.Trainer (e.g. gradient_clip_val)."""
    ckpt_dir = run_dir / "checkpoints"
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor=monitor, mode="max", save_last=True,
        save_top_k=1 if monitor else 0, enable_version_counter=False)
    clock = ClockSchedule(module.base_lrs(), config.epochs, config.time_budget, config.warmup_fraction)
    keep = KeepModelFile(save, monitor)
    interrupted = KeepInterrupted(dirpath=ckpt_dir, filename="interrupted")  # on Ctrl-C or an error only
    callbacks: list[L.Callback] = [clock, checkpoint, interrupted, history, previews, keep,
                                   *(extra_callbacks or [])]
    if budget is not None:
        callbacks.insert(1, KeepToBudget(budget, clock))
    if resize is not None and config.low_res_factor and config.low_res_factor < 1:
        target, full, divisor = resize
        callbacks.append(ProgressiveResize(target, clock, config.low_res_factor, config.low_res_until, full,
                                           divisor))
    interactive = sys.stdout.isatty()
    if interactive:
        callbacks.append(TrainingProgress())
    trainer = L.Trainer(
        max_epochs=config.epochs if config.epochs else -1,
        max_time={"seconds": config.time_budget} if config.time_budget and budget is None else None,
        accelerator=config.accelerator, devices=config.devices, strategy=config.strategy,
        precision=precision, callbacks=callbacks, logger=False,
        enable_progress_bar=interactive, enable_model_summary=False, default_root_dir=str(run_dir),
        num_sanity_val_steps=0, log_every_n_steps=5, deterministic=False, plugins=[SafeCheckpointIO()],
        **trainer_options,
    )
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, trainer.world_size)))
    if trainer.is_global_zero:
        begin_run(run_dir, config)
    if split is not None and trainer.is_global_zero:
        write_data_summary(run_dir, config, split)
    handler = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=str(resume_from) if resume_from else None,
                    weights_only=True)
    except SystemExit:  # Lightning's answer to Ctrl-C: sys.exit(1) after its on_exception hooks ran
        if trainer.state.status == TrainerStatus.INTERRUPTED:
            raise interrupted_error(run_dir, keep, interrupted, trainer) from None
        raise
    except Exception as exc:
        if resume_from is not None and not keep.trained and not isinstance(exc, MasksmithError):
            raise MasksmithError(f"does not fit this run's model, so training could not continue "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
                                 "the model file was left as it was.", path=resume_from,
                                 fix="resume with the config.yaml the run was started with, or start a new run."
                                 ) from None
        raise
    finally:
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)  # Lightning ignores Ctrl-C from its first one on
    if trainer.is_global_zero and not (run_dir / MODEL_FILE).exists():
        save(module, "last")
    if trainer.is_global_zero and split is not None:
        finish_run(run_dir, config, split, budget.deadline if budget is not None else None)


def interrupted_error(run_dir: Path, keep: KeepModelFile, interrupted: KeepInterrupted,
                      trainer: L.Trainer) -> TrainingInterrupted:
    """What Ctrl-C kept (which model file, which checkpoint) and the exact command that resumes the run."""
    import shlex

    model = run_dir / MODEL_FILE
    if keep.saved is not None:
        reason, epoch = keep.saved
        kept = f"{model} ({'best so far' if reason == 'best' else reason}, epoch {epoch})"
    elif model.exists():
        kept = f"{model} (unchanged, from before)"
    else:
        kept = "no model file yet"
    ckpt = interrupted.written or next((p for p in (run_dir / "checkpoints" / n for n in CHECKPOINTS)
                                        if p.exists()), None)
    state = f" and the checkpoint {ckpt}" if ckpt else ""
    return TrainingInterrupted(
        f"training stopped by Ctrl-C in epoch {trainer.current_epoch + 1} (step {trainer.global_step}). "
        f"Kept: {kept}{state}.",
        fix=f"resume with: `resume={shlex.quote(str(run_dir))}`" if ckpt else
        "start the run again; no checkpoint was written yet.")


def write_data_summary(run_dir: Path, config: TrainConfig, split: SampleSplit) -> Path:
    """data.json: what this run trains on (the report's data section)."""
    import json

    from masksmith.core.outputs import atomic_write_text
    from masksmith.data.stats import dataset_stats

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


def finish_run(run_dir: Path, config: TrainConfig, split: SampleSplit, deadline: Deadline | None = None) -> None:
    """When training ends: the model file evaluated on the validation split into evaluation/validation/
    (full-size scores, per-class table, confusion matrix, worst and best images), then report.html. With a
    `deadline`, as many validation photos as fit before it (evenly spread; the evaluation says how many)."""
    from masksmith.core.runfolder import EVALUATION
    from masksmith.data.schema import Dataset
    from masksmith.html_report import write_report
    from masksmith.models.artifact import load_artifact
    from masksmith.tasks import get_task
    from masksmith.train.plan import GALLERY_PHOTOS

    if split.val:
        out = run_dir / EVALUATION / VALIDATION
        task = get_task(config.task)
        try:
            predictor = task.load("predictor")(load_artifact(run_dir / MODEL_FILE))
            samples, used = list(split.val), f"evaluating on the {len(split.val)} validation images"
            if deadline is not None:
                samples, used = fitting_samples(predictor, samples, deadline)
            # no root: the subset is only read, and writing goes to our own run folder
            subset = Dataset(classes=split.dataset.classes, samples=samples, format=split.dataset.format)
            task.load("evaluator")(predictor, subset, VALIDATION, subset.samples, used, out,
                                   worst=GALLERY_PHOTOS // 2)
        except MasksmithError as exc:  # the model is saved; a failed evaluation must not hide that
            logging.getLogger(__name__).warning("the validation split was not evaluated: %s", exc)
    write_report(run_dir)


def fitting_samples(predictor: Any, samples: list[Any], deadline: Deadline) -> tuple[list[Any], str]:
    """The validation samples whose evaluation fits before the deadline (the report's time kept back), timed
    on the first photo; all of them when they fit, else evenly spread, and the words that say so."""
    import numpy as np

    from masksmith.train.plan import GALLERY_PHOTOS, REPORT_SECONDS

    t0 = time.monotonic()
    predictor.predict(samples[0].load_image())
    prediction = time.monotonic() - t0
    per_photo = EVALUATION_OVERHEAD * prediction
    # the worst and best galleries predict their photos again
    room = deadline.left() - REPORT_SECONDS - min(GALLERY_PHOTOS, len(samples)) * prediction
    n = max(1, min(len(samples), int(room / max(per_photo, 1e-3))))
    if n >= len(samples):
        return samples, f"evaluating on the {len(samples)} validation images"
    picked = [samples[i] for i in sorted(set(np.linspace(0, len(samples) - 1, n).round().astype(int).tolist()))]
    return picked, (f"evaluating on {len(picked)} of the {len(samples)} validation images, evenly spread (the rest "
                    "did not fit in the time budget)")
