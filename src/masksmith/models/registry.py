"""The one model table: every network masksmith trains, with its task, what it is, and the input-size divisor
its encoder needs. The CLI help, the web app's model lists, the task table (`masksmith.tasks`), training and
the ONNX export all read this table; the builders live beside the networks (`models/semantic.py`,
`models/instance.py`), so reading the table imports no deep-learning code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from masksmith.core.errors import ModelError

SEMANTIC_NETWORK = "masksmith.models.semantic:network_for"
INSTANCE_NETWORK = "masksmith.models.instance:network_for"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str  # "semantic" or "instance" (masksmith.tasks)
    description: str
    divisor: int  # input height and width must be multiples of this
    network: str  # "module:function" building the network a model file describes (artifact -> nn.Module)
    uses_encoder: bool = True
    fast: bool = False  # a preset for speed on a CPU (the web app and docs say so)

    def build(self, artifact: Any) -> Any:
        """The untrained network of `artifact` (a ModelArtifact); weights are loaded by the caller."""
        module, _, function = self.network.partition(":")
        return getattr(importlib.import_module(module), function)(artifact)


MODELS: dict[str, ModelSpec] = {m.name: m for m in [
    ModelSpec("unet", "semantic", "U-Net (smp) on a pretrained encoder", 32, SEMANTIC_NETWORK, fast=True),
    ModelSpec("fpn", "semantic", "Feature Pyramid Network (smp)", 32, SEMANTIC_NETWORK),
    ModelSpec("deeplabv3plus", "semantic", "DeepLabV3+ (smp)", 32, SEMANTIC_NETWORK),
    ModelSpec("fcn", "semantic", "FCN-8s head on a pretrained encoder", 32, SEMANTIC_NETWORK),
    ModelSpec("baseline", "semantic", "three conv layers, no encoder (a yardstick)", 1, SEMANTIC_NETWORK,
              uses_encoder=False),
    ModelSpec("maskrcnn_lite0", "instance", "Mask R-CNN on EfficientNet-Lite0 + 128-channel FPN (offline ImageNet "
              "weights; CPU-friendly)", 32, INSTANCE_NETWORK, fast=True),
    ModelSpec("maskrcnn_resnet50_fpn", "instance", "torchvision Mask R-CNN ResNet-50 FPN (from scratch, or from a "
              "COCO weights file)", 32, INSTANCE_NETWORK),
]}

ALIASES = {"deeplab": "deeplabv3plus", "deeplabv3+": "deeplabv3plus", "cnn": "baseline", "maskrcnn": "maskrcnn_lite0"}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def find_model(name: str) -> ModelSpec | None:
    """The model `name` names (any case, - or _, and a few aliases), or None."""
    key = _key(name)
    if key in MODELS:
        return MODELS[key]
    squashed = {k.replace("_", ""): k for k in MODELS}
    key = ALIASES.get(key.replace("_", ""), ALIASES.get(key, squashed.get(key.replace("_", ""), key)))
    return MODELS.get(key)


def models_for(task: str) -> list[str]:
    """The names of the task's models, its default first (the table's order)."""
    return [m.name for m in MODELS.values() if m.task == task]


def get_model(name: str, task: str | None = None) -> ModelSpec:
    """The model `name` names; a ModelError listing the choices (of `task`, when given) otherwise."""
    spec = find_model(str(name))
    if spec is None:
        choices = models_for(task) if task else list(MODELS)
        raise ModelError(f"unknown model {name!r}.", fix=f"use one of: {', '.join(choices)}.")
    if task is not None and spec.task != task:
        raise ModelError(f"model {spec.name!r} does {spec.task} segmentation, not {task}.",
                         fix=f"use one of: {', '.join(models_for(task))}.")
    return spec
