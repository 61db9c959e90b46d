"""The task table: what differs between semantic segmentation (a class per pixel) and instance segmentation
(objects, Mask R-CNN), in one place, the way Ultralytics maps a task to its model, trainer, validator and
predictor. Everything that used to ask "semantic or instance?" asks the table instead: the defaults a training
starts from, the models a task offers (from the one model registry), the headline figure, and the functions
that train, predict, evaluate and write for it.

The functions are named by module path and imported on first use, so any floor may read the table's facts
(a training config its defaults, the report its headline) without importing training or prediction code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from masksmith.core.errors import MasksmithError
from masksmith.models.registry import find_model, models_for


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    default_model: str
    default_size: int  # semantic: photos resized to size x size; instance: the longer side the network sees
    default_batch: int
    size_meaning: str
    monitor: str  # the validation metric in metrics.csv the best model is chosen by
    headline: str  # its name in words ("mIoU", "mask AP")
    headline_kind: str  # how it is shown: "score" (0.412) or "percent" (41.2, as COCO AP is)
    # "module:attribute" of the functions and classes that do the task's work
    trainer: str  # (config, run_dir, resume, announce) -> run folder
    predictor: str  # (artifact, **options) -> a predictor
    evaluator: str  # (predictor, dataset, label, samples, samples_used, out, worst, notes) -> Evaluation
    writer: str  # (predictor, opacity, save=None) -> what predict writes per photo (save: which outputs)
    outputs: str  # the files predict writes per photo, for messages
    planner: str  # (fingerprint, machine, user=, divisor=, budget=, rate=) -> Plan (masksmith.train.plan)
    planned: tuple[str, ...]  # the settings its plan chooses (recorded with their source when planning is off)
    speed: str | None = None  # (config, class_map) -> RateCurve: the plan measures the machine to spend a budget

    @property
    def models(self) -> list[str]:
        return models_for(self.name)

    def load(self, role: str) -> Callable[..., Any]:
        """The trainer, predictor, evaluator, writer, planner or speed measure of this task."""
        module, _, attribute = getattr(self, role).partition(":")
        return getattr(importlib.import_module(module), attribute)


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("semantic", "a class for every pixel (U-Net, FPN, DeepLabV3+, FCN, a baseline CNN)",
         default_model="unet", default_size=256, default_batch=8,
         size_meaning="photos are resized to size x size", monitor="val_miou", headline="mIoU", headline_kind="score",
         trainer="masksmith.train.semantic:train_semantic", predictor="masksmith.infer.predictor:Predictor",
         evaluator="masksmith.evaluate.semantic:evaluate_semantic", writer="masksmith.infer.batch:SemanticWriter",
         outputs="*_mask.png, *_overlay.jpg, *_color.png", planner="masksmith.train.plan:plan_semantic",
         planned=("shrink", "size", "crop", "crops_per_image", "foreground_crops", "batch_size", "class_weights"),
         speed="masksmith.train.semantic:measured_rate"),
    Task("instance", "separate objects with their own masks (Mask R-CNN)",
         default_model="maskrcnn_lite0", default_size=512, default_batch=2,
         size_meaning="the longer side the network sees", monitor="val_mask_ap", headline="mask AP",
         headline_kind="percent",
         trainer="masksmith.train.instance:train_instance",
         predictor="masksmith.infer.instance:InstancePredictor",
         evaluator="masksmith.evaluate.instance:evaluate_instances",
         writer="masksmith.infer.instance:InstanceWriter",
         outputs="*_instances.json, *_overlay.jpg", planner="masksmith.train.plan:plan_instance",
         planned=("size", "batch_size")),
]}


def get_task(name: str) -> Task:
    task = TASKS.get(str(name).strip().lower())
    if task is None:
        raise MasksmithError(f"unknown task {name!r}.", fix=f"use one of: {', '.join(TASKS)}.")
    return task


def choose_task(task: str | None, model: str | None) -> Task:
    """The task asked for, or the one the model belongs to (`task` None or "auto"), or semantic; refused when
    the model does another task."""
    spec = find_model(model) if model else None
    if task in (None, "", "auto"):
        return TASKS[spec.task] if spec else TASKS["semantic"]
    chosen = get_task(task)
    if spec is not None and spec.task != chosen.name:
        raise MasksmithError(f"model {spec.name!r} does {spec.task} segmentation, not {chosen.name}.",
                             fix=f"leave out the task, or pick one of: {', '.join(chosen.models)}.")
    return chosen
