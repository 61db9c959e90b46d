"""Fine-tuning (`from_model`, the labelling loop's "continue training"): the rules that start from what a trained
model knows without losing it (issue 27; docs/training.md, "Fine-tuning").

- Learning rate: the peak is `lr * finetune_lr_factor` (0.1). A from-scratch run's peak is set for a new decoder
  that must move far; a trained network sits near a good minimum, and AdamW moves every weight by about the
  learning rate per step whatever the gradient's size, so the full peak throws the trained weights away in a few
  dozen steps (car-parts: a 120-s fine-tune at the full peak fell from mIoU 0.253 to 0.141). A tenth of the
  from-scratch rate is the usual fine-tuning rate for Adam-type optimizers.
- Warm-up: FINETUNE_WARMUP of the run (at least). AdamW's moment estimates start from zero, so its first steps
  are its largest relative to the gradient; a ramp lets them settle before the (already lower) peak.
- Geometry: the model's own input (resize to its size, or its scale and window), never a new plan's: the
  network learned objects at that scale, and a plan made for the grown data set could pick another scale or
  crops instead of whole photos. No low-resolution first phase either: the model already knows the full scale.
- Validation: the photos the starting model validated on (its run folder's data.json), so the score before
  training (epoch 0) and after is taken on photos neither run trained on; new photos all train.
- Never worse: the starting weights are scored before the first step and are the best to beat; when no epoch
  beats them the run's model file is the starting model (masksmith.train.run.StartingModel).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from masksmith.core.runfolder import DATA, model_file

FINETUNE_WARMUP = 0.1  # of the run, at least: see the module's docstring


def start_folder(from_model: str | Path) -> Path:
    """The run folder of the model to start from (the folder itself when given one)."""
    path = Path(from_model)
    return path if path.is_dir() else path.parent


def peak_lr(config: Any, lr: float | None = None) -> float:
    """The learning rate the run's schedule peaks at: `lr` (default `config.lr`; Mask R-CNN gives SGD's), times
    `finetune_lr_factor` for a fine-tune."""
    base = float(config.lr if lr is None else lr)
    return base * (float(config.finetune_lr_factor) if config.from_model else 1.0)


def warmup(config: Any) -> float:
    """The share of the run the learning rate ramps up over."""
    return max(float(config.warmup_fraction), FINETUNE_WARMUP) if config.from_model else float(config.warmup_fraction)


def start_geometry(from_model: str | Path) -> dict[str, Any]:
    """The input the model was trained on, as the plan's settings: {input_mode, shrink, size, crop}."""
    from masksmith.models.artifact import load_artifact

    pre = load_artifact(model_file(from_model)).preprocessing
    h, w = (int(v) for v in pre["size"])
    if pre.get("input_mode", "resize") == "scale":
        shrink = round(1.0 / float(pre["scale"]), 4)
        return {"input_mode": "scale", "shrink": shrink, "size": max(h, w), "crop": h if h == w else [h, w]}
    return {"input_mode": "resize", "shrink": None, "size": max(h, w), "crop": None}


def start_validation(from_model: str | Path) -> list[str] | None:
    """The names of the photos the starting model validated on (its run folder's data.json), or None."""
    path = start_folder(from_model) / DATA
    try:
        names = json.loads(path.read_text(encoding="utf-8")).get("validation_images")
    except (OSError, ValueError, AttributeError):
        return None
    return [str(n) for n in names] if isinstance(names, list) and names else None


def recipe_lines(config: Any) -> list[str]:
    """What the fine-tune rule sets, for the plan the person is shown."""
    return [f"fine-tune from {model_file(config.from_model)}: peak learning rate {peak_lr(config):g} "
            f"({config.finetune_lr_factor:g} x the from-scratch {config.lr:g}: a trained network is near a good "
            "minimum and the full rate would throw it away), warm-up over the first "
            f"{warmup(config):.0%} of the run, the model's own input scale, no low-resolution phase",
            "the starting model is scored on the validation photos before the first step (epoch 0) and is the "
            "model to beat: when no epoch beats it, the run's model file is the starting model"]


def unplanned(config: Any) -> Any:
    """A fine-tune without a plan: the model's geometry (unless the person set size or shrink) and no
    low-resolution phase, recorded like planned values."""
    from dataclasses import replace

    changes: dict[str, Any] = {"low_res_factor": None}
    if not {"size", "shrink"} & set(config.fixed):
        geometry = start_geometry(config.from_model)
        changes.update({k: v for k, v in geometry.items() if k != "input_mode"})
    record = dict(config.plan)
    for key, value in changes.items():
        if key in record:
            record[key] = {"value": value, "source": "model", "reason": "the model to fine-tune was trained so"}
    logging.getLogger(__name__).info("fine-tune without a plan: %s", changes)
    return replace(config, **changes, plan=record)
