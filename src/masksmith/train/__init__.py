"""Training: Lightning modules, losses, metrics and callbacks.

`run_training(config)` is the one entry point the CLI, the web app and the demo use: it picks the semantic or
the instance (Mask R-CNN) trainer from `config.task`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from masksmith.train.config import TrainConfig

TASKS = ("semantic", "instance")


def run_training(config: TrainConfig, run_dir: Path | None = None, resume: bool = False,
                 announce: Callable[[str], None] | None = None) -> Path:
    """Train (or with `resume`, continue `run_dir`) and return the run folder. `announce` receives the data
    summary (images in train and val, classes with pixel shares, folders, options, problems) before training."""
    from masksmith.errors import MasksmithError

    if config.task == "instance":
        from masksmith.train.instance import train_instance

        return train_instance(config, run_dir, resume=resume, announce=announce)
    if config.task == "semantic":
        from masksmith.train.semantic import train_semantic

        return train_semantic(config, run_dir, resume=resume, announce=announce)
    raise MasksmithError(f"unknown task {config.task!r}.", fix=f"use one of: {', '.join(TASKS)}.")


def dry_run(config: TrainConfig, announce: Callable[[str], None] | None = None) -> dict:
    """What `train --dry-run` does: read the data, print its summary, fingerprint and the plan (when the config
    plans), and stop; nothing is written but the fingerprint's cache entry. Returns the plan record."""
    from masksmith.train.samples import planned_split

    planned_split(config, announce)
    return config.plan
