"""What every training run shares, whatever the task: the model file writer and the Lightning Trainer with
its checkpoints, clock-driven schedule, Ctrl-C checkpoint, history, previews, progressive resizing and
progress bar; data.json when training starts, and when it ends the model file evaluated on the validation
split (evaluation/validation/) and report.html. The task trainers (semantic.py, instance.py) build the data,
module and callbacks that differ."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerStatus

from masksmith.core.errors import MasksmithError, TrainingInterrupted, signal_words, stop_signal
from masksmith.core.outputs import atomic_save, atomic_write_text, check_writable, os_error, storage_error
from masksmith.core.runfolder import CONFIG, DATA, LOCK, MODEL, STARTED_FROM, VALIDATION
from masksmith.models.artifact import ModelArtifact, save_artifact
from masksmith.train.budget import Deadline, KeepToBudget, RunBudget
from masksmith.train.callbacks import (
    ClockSchedule,
    KeepInterrupted,
    KeepModelFile,
    ProgressiveResize,
    StartingModel,
    TrainingProgress,
)
from masksmith.train.config import TrainConfig
from masksmith.train.finetune import warmup
from masksmith.train.samples import SampleSplit

MODEL_FILE = MODEL
RUN_DIR_ENV = "MASKSMITH_RUN_DIR"  # the run folder, for the processes Lightning starts (DDP)
EVALUATION_OVERHEAD = 1.5  # a photo's evaluation against its bare prediction: reading, scoring, the galleries


@contextlib.contextmanager
def claimed_run(config: TrainConfig, run_dir: Path | None = None, resume: bool = False,
                announce: Callable[[str], None] | None = None) -> Iterator[tuple[Path, Path | None]]:
    """Check the config, quiet Lightning, seed everything, and hold the run folder for this training: yields
    (run folder, checkpoint to resume from or None). A new run gets a folder of its own under
    config.runs_dir (`name`, or `name-2` ... when that one is taken, which `announce` is told); a given
    folder (`run_dir`, or the one to resume) is refused while another training holds it. Everything that can
    refuse the run (values out of range, a runs folder that cannot be written, a folder in use, a checkpoint
    that cannot be read) does so here, before the data is read and before anything in the run folder is
    touched; a new folder left empty by a run that stopped before training is removed again."""
    config.check()
    quiet_lightning()
    L.seed_everything(config.seed, workers=True, verbose=False)
    shared = os.environ.get(RUN_DIR_ENV) if launched_worker() else None
    if shared:  # a process Lightning started for distributed training: its parent holds the folder
        yield Path(shared), resume_checkpoint(Path(shared)) if resume else None
        return
    created = run_dir is None
    if run_dir is None:
        check_writable(Path(config.runs_dir))
        run_dir, lock = new_run_dir(config, announce)
    else:
        if resume:
            resume_checkpoint(run_dir)  # a folder that is not a run is refused before it is locked
        else:
            check_writable(run_dir)
        lock = RunLock(run_dir).acquire()
    try:
        yield run_dir, resume_checkpoint(run_dir) if resume else None
    except KeyboardInterrupt as exc:  # while the data was read and the network built (fit_run says the rest)
        signum = stop_signal(exc) or signal.SIGINT
        raise TrainingInterrupted(
            f"training stopped by {signal_words(signum)} before it started; "
            + ("nothing was written." if created else "the run folder is as it was."),
            fix=f"resume with: `resume={shlex.quote(str(run_dir))}`" if resume else "start the run again.",
            signum=signum) from None
    finally:
        lock.release()
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # only when empty: a run that stopped before training wrote nothing


def launched_worker() -> bool:
    """Whether this process is one Lightning started for distributed training (rank above 0)."""
    return any(os.environ.get(k, "0").strip() not in ("", "0") for k in ("LOCAL_RANK", "NODE_RANK"))


class RunLock:
    """One training's hold on its run folder: an exclusive lock (flock) on RUN/training.lock, which says
    which process holds it. The system drops the lock when the process ends in any way (SIGKILL too), so
    a folder is never left locked by a training that is gone; a second training of the same folder is
    refused while the first runs, instead of both writing metrics.csv and the model file."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock; False when another training holds it."""
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise os_error(exc, self.path) from None
            if not _lock_fd(fd):
                os.close(fd)
                return False
            try:  # its last holder may have removed the file between our open and our lock
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                os.ftruncate(fd, 0)
                os.write(fd, f"process {os.getpid()} on {socket.gethostname()} since "
                             f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
                return True
            os.close(fd)
        return False

    def acquire(self) -> RunLock:
        """Take the lock, or refuse naming the training that holds it."""
        if not self.try_acquire():
            raise MasksmithError(f"is in use by another training ({self.holder()}); nothing was changed.",
                                 path=self.run_dir, fix="wait until it ends or stop it, or give another `name`.")
        return self

    def holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "a process that is starting"
        except OSError:
            return "a process that is starting"

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # while still held: a training waiting on this file tries again
        with contextlib.suppress(OSError):
            os.close(self.fd)  # closing drops the lock
        self.fd = None


def _lock_fd(fd: int) -> bool:
    """An exclusive lock on an open file without waiting: flock on POSIX, msvcrt on Windows."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def quiet_lightning() -> None:
    """Lightning's hints that do not apply to how we drive it (we pass ckpt_path ourselves, validation is
    optional) would only confuse users; real warnings stay."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    for message in (r"`\.fit\(ckpt_path=None\)` was called without a model", r"\.fit\(ckpt_path=\"last\"\) is set",
                    r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"You defined a `validation_step` but have no",
                    r"The '\w+_dataloader' does not have many workers", r"The number of training batches",
                    r"Found \d+ module\(s\) in eval mode at the start of training"):  # our frozen encoder stages
        warnings.filterwarnings("ignore", message=message)


def new_run_dir(config: TrainConfig, announce: Callable[[str], None] | None = None) -> tuple[Path, RunLock]:
    """A folder of this run's own under config.runs_dir, created and locked: `name` (by default the model and
    the time), or the first of `name-2`, `name-3` ... that no other run has, which `announce` is told."""
    root = Path(config.runs_dir)
    base = config.name or f"{config.arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    for k in range(1, 10_000):
        run = root / (base if k == 1 else f"{base}-{k}")
        try:
            run.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as exc:
            raise os_error(exc, run) from None
        lock = RunLock(run)
        if not lock.try_acquire():  # another training made it an instant ago
            continue
        if k > 1 and config.name and announce is not None:
            announce(f"{root / base} exists (another run has that name), so this run is {run}.")
        return run, lock
    raise MasksmithError(f"has no free run name left for {base!r}.", path=root, fix="give another `name`.")


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
                **summary: Any) -> Callable[..., Path]:
    """save(pl_module, reason) -> run_dir/model.masksmith with the module's `net` weights, the artifact
    fields (task, model, classes, ...) and a training summary (reason, epoch, data, scalar metrics); keyword
    arguments (epoch=, metrics=) replace the summary's own."""

    def save(pl_module: L.LightningModule, reason: str, **override: Any) -> Path:
        state = {k: v.contiguous() for k, v in pl_module.net.state_dict().items()}
        metrics = {k: float(v) for k, v in pl_module.trainer.callback_metrics.items()
                   if torch.is_tensor(v) and v.numel() == 1}
        training = {"reason": reason, "epoch": pl_module.current_epoch + 1, "data": str(config.data),
                    "images": images, **summary, "metrics": metrics, **override}
        return save_artifact(ModelArtifact(**artifact_fields, training=training, state_dict=state),
                             run_dir / MODEL_FILE)

    return save


def fit_run(config: TrainConfig, run_dir: Path, module: L.LightningModule, train_loader: Any, val_loader: Any,
            *, save: Callable[[L.LightningModule, str], Path], monitor: str | None, history: L.Callback,
            previews: L.Callback, precision: str, resume_from: Path | None,
            resize: tuple[Any, tuple[int, int], int] | None = None, split: SampleSplit | None = None,
            extra_callbacks: list[L.Callback] | None = None, budget: RunBudget | None = None,
            baseline: Callable[[L.LightningModule], dict[str, float]] | None = None,
            **trainer_options: Any) -> None:
    """Fit `module` and leave the run folder complete (the model file is written even when nothing improved;
    with `split`, data.json, the validation split's evaluation and report.html too).

    `monitor`: the validation metric (higher is better) that picks best.ckpt and the model file; None keeps the
    last. `resize`: (object with a `size`, full (h, w), divisor) for progressive resizing when the config asks.
    `budget`: the deadline the whole run keeps to (masksmith.train.budget), training ending early enough for
    the final evaluation and the report. `baseline` (a fine-tune, with `monitor`): the validation metrics of the
    module's weights, scored before the first step as epoch 0 and kept unless an epoch beats them
    (callbacks.StartingModel). `trainer_options` go to L.Trainer (e.g. gradient_clip_val). An
    interruption (Ctrl-C, SIGTERM) raises TrainingInterrupted and a full disk a MasksmithError, each one line
    saying what was kept."""
    ckpt_dir = run_dir / "checkpoints"
    # last.ckpt every epoch from a checkpoint of its own: Lightning's save_last writes it only in an epoch whose
    # score made the top k (or not at all with save_top_k=0), so --resume would go back to the best epoch
    last = L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1,
                                               enable_version_counter=False)
    checkpoints = [last] + ([L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor=monitor, mode="max", save_top_k=1, enable_version_counter=False)]
        if monitor else [])
    clock = ClockSchedule(module.base_lrs(), config.epochs, config.time_budget, warmup(config))
    keep = KeepModelFile(save, monitor)
    interrupted = KeepInterrupted(dirpath=ckpt_dir, filename="interrupted")  # on Ctrl-C or an error only
    start = StartingModel(baseline, monitor, keep, checkpoints[-1], history) if baseline and monitor else None
    callbacks: list[L.Callback] = [BeginRun(run_dir, config, split), *([start] if start else []), clock,
                                   *checkpoints, interrupted, history, previews, keep, *(extra_callbacks or [])]
    if budget is not None:
        callbacks.insert(callbacks.index(clock) + 1, KeepToBudget(budget, clock))
    if resize is not None and config.low_res_factor and config.low_res_factor < 1:
        target, full, divisor = resize
        callbacks.append(ProgressiveResize(target, clock, config.low_res_factor, config.low_res_until, full,
                                           divisor))
    trainer = make_trainer(config, run_dir, callbacks, precision, budget, **trainer_options)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, trainer.world_size)))
    handler = signal.getsignal(signal.SIGINT)
    if trainer.world_size > 1:
        os.environ[RUN_DIR_ENV] = str(run_dir)  # the processes Lightning starts write into this folder too
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=str(resume_from) if resume_from else None,
                    weights_only=True)
    except BaseException as exc:
        failure = training_failure(exc, run_dir, keep, interrupted, trainer, resume_from)
        if failure is None:
            raise
        raise failure from None
    finally:
        os.environ.pop(RUN_DIR_ENV, None)
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)  # Lightning ignores Ctrl-C from its first one on
    if start is not None and trainer.is_global_zero and start.verdict():
        print(start.verdict(), flush=True)
        logging.getLogger(__name__).info(start.verdict())
    try:
        if trainer.is_global_zero and not (run_dir / MODEL_FILE).exists():
            save(module, "last")
        if trainer.is_global_zero and split is not None:
            finish_run(run_dir, config, split, budget.deadline if budget is not None else None)
    except KeyboardInterrupt as exc:
        signum = stop_signal(exc) or signal.SIGINT
        raise TrainingInterrupted(
            f"training had ended when {signal_words(signum)} stopped the evaluation on the validation images "
            f"and the report. Kept: {kept_files(run_dir, keep, interrupted)}.",
            fix="the model is complete; evaluate it and write its report again when you need them.",
            signum=signum) from None


def make_trainer(config: TrainConfig, run_dir: Path, callbacks: list[L.Callback], precision: str,
                 budget: RunBudget | None = None, **trainer_options: Any) -> L.Trainer:
    """The Lightning Trainer of a run: epochs or the clock (Lightning's max_time when there is no run budget
    whose KeepToBudget stops it), checkpoints read safely, no logger; a progress bar on a terminal."""
    interactive = sys.stdout.isatty()
    if interactive:
        callbacks = [*callbacks, TrainingProgress()]
    return L.Trainer(
        max_epochs=config.epochs if config.epochs else -1,
        max_time={"seconds": config.time_budget} if config.time_budget and budget is None else None,
        accelerator=config.accelerator, devices=config.devices, strategy=config.strategy,
        precision=precision, callbacks=callbacks, logger=False,
        enable_progress_bar=interactive, enable_model_summary=False, default_root_dir=str(run_dir),
        num_sanity_val_steps=0, log_every_n_steps=5, deterministic=False, plugins=[SafeCheckpointIO()],
        **trainer_options,
    )


class BeginRun(L.Callback):
    """The moment training starts, after a resumed run's checkpoint was restored: config.yaml (rewritten on
    resume, with the epochs or time asked now) and data.json, so an interrupted run is understood and can be
    resumed, and a resume refused before it (a checkpoint of another model) changes nothing."""

    def __init__(self, run_dir: Path, config: TrainConfig, split: SampleSplit | None) -> None:
        self.run_dir, self.config, self.split = run_dir, config, split

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        atomic_write_text(self.run_dir / CONFIG, self.config.to_yaml())
        if self.split is not None:
            write_data_summary(self.run_dir, self.config, self.split)


def training_failure(exc: BaseException, run_dir: Path, keep: KeepModelFile, interrupted: KeepInterrupted,
                     trainer: L.Trainer, resume_from: Path | None) -> MasksmithError | None:
    """The one line for a training that did not end normally, or None to let `exc` through: an interruption
    (Lightning ends Ctrl-C with sys.exit(1) after its on_exception hooks, and SIGTERM with its
    SIGTERMException), a full disk, or a resumed checkpoint that does not fit the model."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if isinstance(exc, SystemExit):
        if trainer.state.status != TrainerStatus.INTERRUPTED:
            return None
        signum = signal.SIGTERM if isinstance(exc, SIGTERMException) else stop_signal(exc) or signal.SIGINT
        return interrupted_error(run_dir, keep, interrupted, trainer, signum)
    if not isinstance(exc, Exception):
        return None
    full = storage_error(exc)
    if full is not None:
        return MasksmithError(f"training stopped in epoch {trainer.current_epoch + 1} (step {trainer.global_step}): "
                              f"{full.problem} Kept: {kept_files(run_dir, keep, interrupted)}.", path=full.path,
                              fix=full.fix)
    if resume_from is not None and not keep.trained and not isinstance(exc, MasksmithError):
        return MasksmithError(f"does not fit this run's model, so training could not continue "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
                              "nothing in the run folder was changed.", path=resume_from,
                              fix="resume with the config.yaml the run was started with, or start a new run.")
    return None


def kept_files(run_dir: Path, keep: KeepModelFile, interrupted: KeepInterrupted) -> str:
    """Which model file (and checkpoint) a stopped training leaves, for its last line."""
    model = run_dir / MODEL_FILE
    if keep.saved is not None:
        reason, epoch = keep.saved
        kept = (f"{model} (the model it started from: no epoch beat it)" if reason == "start" else
                f"{model} ({'best so far' if reason == 'best' else reason}, epoch {epoch})")
    elif model.exists():
        kept = f"{model} (unchanged, from before)"
    else:
        kept = "no model file yet"
    ckpt = last_checkpoint(run_dir, interrupted)
    return kept + (f" and the checkpoint {ckpt}" if ckpt else "")


def last_checkpoint(run_dir: Path, interrupted: KeepInterrupted) -> Path | None:
    return interrupted.written or next((p for p in (run_dir / "checkpoints" / n for n in CHECKPOINTS)
                                        if p.exists()), None)


def interrupted_error(run_dir: Path, keep: KeepModelFile, interrupted: KeepInterrupted, trainer: L.Trainer,
                      signum: int = signal.SIGINT) -> TrainingInterrupted:
    """What the interruption kept (which model file, which checkpoint), naming the signal that came, and the
    exact command that resumes the run."""
    ckpt = last_checkpoint(run_dir, interrupted)
    return TrainingInterrupted(
        f"training stopped by {signal_words(signum)} in epoch {trainer.current_epoch + 1} "
        f"(step {trainer.global_step}). Kept: {kept_files(run_dir, keep, interrupted)}.",
        fix=f"resume with: `resume={shlex.quote(str(run_dir))}`" if ckpt else
        "start the run again; no checkpoint was written yet.", signum=signum)


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
        if config.from_model:  # fine-tuned: the model it started from, scored on the same validation photos
            try:
                predictor = task.load("predictor")(load_artifact(config.from_model))
                task.load("evaluator")(predictor, subset, STARTED_FROM, subset.samples,
                                       "evaluating the model it started from", run_dir / EVALUATION / STARTED_FROM,
                                       worst=0)
            except MasksmithError as exc:
                logging.getLogger(__name__).warning("the model it started from was not evaluated: %s", exc)
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
