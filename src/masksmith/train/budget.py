"""The time budget is the whole wait: a run given `time_budget` T ends within T plus MARGIN, reading the data,
training, validating, the final evaluation and the report included.

The deadline is set when the wait begins (the command's start, or the call to train). Training ends early
enough for what must follow it: one last validation, the final full-size evaluation of the validation photos
and the report. Those are estimated before training from the measured prediction rate (masksmith.train.plan's
`reserve_seconds`), and again after every validation from how long it really took, so a machine that slows
down under other jobs ends training sooner instead of overrunning. The learning-rate schedule follows the
moved end (ClockSchedule.time_budget), so the run still ends at a low learning rate.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L

MARGIN = 0.05  # the stated margin: a run ends within T x (1 + MARGIN) ...
MARGIN_SECONDS = 5.0  # ... or T + MARGIN_SECONDS, whichever is larger
EPOCH_END_SECONDS = 2.0  # the last epoch's checkpoint, preview and model file
UNKNOWN_END_SHARE = 0.1  # of the budget kept for the end before anything was measured (no estimate)
END_PER_VALIDATION = 1.5  # without an estimate: the end takes this many measured validations


def allowed_seconds(budget: float) -> float:
    """The longest a run with this budget may take: the budget plus the stated margin."""
    return budget + max(MARGIN_SECONDS, MARGIN * budget)


def process_started() -> float:
    """time.monotonic() at this process's start (when the command was given), from /proc; now elsewhere."""
    try:
        stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        age = uptime - int(stat[19]) / ticks
        return time.monotonic() - max(0.0, age)
    except (OSError, ValueError, IndexError):
        return time.monotonic()


def session_seconds(budget: float, run_dir: Path, resume: bool) -> float:
    """The wait this session may take: the whole budget for a new run; for a resumed one, what is left of it
    after the training seconds already done (metrics.csv), at least a tenth of it."""
    if not resume:
        return budget
    from masksmith.core.runfolder import METRICS, read_metrics

    path = run_dir / METRICS
    rows = read_metrics(path) if path.is_file() else []
    done = float(rows[-1].get("seconds", 0.0)) if rows else 0.0
    return max(0.1 * budget, budget - done)


@dataclass
class Deadline:
    """`seconds` from `started` (time.monotonic())."""

    seconds: float
    started: float

    def left(self) -> float:
        return self.started + self.seconds - time.monotonic()

    def spent(self) -> float:
        return time.monotonic() - self.started


@dataclass
class RunBudget:
    """What a trainer hands fit_run: the deadline, and the planned seconds of the end (`end_seconds`: the final
    evaluation and the report, of which `end_network` is the network's share) and of one validation during
    training (None where not estimated)."""

    deadline: Deadline
    end_seconds: float | None = None
    validation_seconds: float | None = None
    end_network: float = 0.0


VALIDATION_FIXED = 1.0  # seconds a validation takes beyond its network work (the loop, logging, metrics)
MAX_LOAD = 4.0  # the end is never estimated more than this much slower than planned


class KeepToBudget(L.Callback):
    """Moves the end of training (the clock's budget) so the run ends by its deadline, and stops it there."""

    def __init__(self, budget: RunBudget, clock: Any) -> None:
        self.budget, self.clock = budget, clock
        self.measured: float | None = None  # seconds of the last validation
        self._t0 = self._step0 = 0.0

    def load(self) -> float:
        """How much slower validating is than planned (1 when not measured or not slower)."""
        b = self.budget
        if self.measured is None or not b.validation_seconds:
            return 1.0
        return min(MAX_LOAD, max(1.0, self.measured / (b.validation_seconds + VALIDATION_FIXED)))

    def end_reserve(self) -> float:
        """Seconds to keep for one last validation and the end of the run."""
        b = self.budget
        if b.end_seconds is not None:
            end = b.end_seconds + b.end_network * (self.load() - 1)  # the network's share runs slower too
        elif self.measured is not None:
            end = END_PER_VALIDATION * self.measured
        else:
            end = UNKNOWN_END_SHARE * b.deadline.seconds
        last = self.measured if self.measured is not None else (b.validation_seconds or 0.0) + VALIDATION_FIXED
        return end + last + EPOCH_END_SECONDS

    def _move_end(self) -> None:
        self.clock.time_budget = max(1.0, self.clock.elapsed() + self.budget.deadline.left() - self.end_reserve())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._move_end()

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.monotonic()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.measured = time.monotonic() - self._t0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._move_end()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._step0 = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = time.monotonic() - self._step0
        # stop when the next step would end past the end: a step on a busy CPU can take seconds
        if self.clock.elapsed() + 0.5 * step >= self.clock.time_budget:
            trainer.should_stop = True
