"""masksmith: from annotated photos to a trained segmentation model and results you can use.

The Python path in one import (each name is loaded on first use, so `import masksmith` stays quick)::

    import masksmith as ms

    data = ms.load_dataset("cars.zip")                       # any supported annotation format
    config = ms.training_config("cars.zip", time_budget=600)  # the task's defaults, planned from the data
    print(ms.plan_summary("cars.zip", 600).lines)             # what 10 minutes buy here (the whole wait)
    run = ms.train(config)                                     # a run folder with model.masksmith
    scores = ms.evaluate(run, "test_cars/")                    # an Evaluation: headline, per class, galleries
    predictor = ms.open_predictor(run)                         # masks for new photos
"""

from __future__ import annotations

import importlib
from typing import Any

from masksmith.core.errors import MasksmithError

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "load_dataset": "masksmith.data.load",
    "Dataset": "masksmith.data.schema",
    "ClassMap": "masksmith.core.labels",
    "semantic_mask": "masksmith.data.rasterize",
    "TrainConfig": "masksmith.train.config",
    "training_config": "masksmith.service",
    "resume_config": "masksmith.service",
    "train": "masksmith.service",
    "plan_summary": "masksmith.service",
    "evaluate": "masksmith.service",
    "split": "masksmith.service",
    "run_headline": "masksmith.service",
    "Evaluation": "masksmith.evaluate.result",
    "open_predictor": "masksmith.infer",
    "Predictor": "masksmith.infer.predictor",
    "InstancePredictor": "masksmith.infer.instance",
    "predict_batch": "masksmith.infer.batch",
    "export_onnx": "masksmith.infer.export",
    "load_model": ("masksmith.models.artifact", "load_artifact"),
    "TASKS": "masksmith.tasks",
    "MODELS": "masksmith.models.registry",
    "recolor": "masksmith.apps.recolor",
    "paste_all": "masksmith.apps.paste",
    "cluster_image": "masksmith.apps.cluster",
    "cut_out": "masksmith.apps.extract",
    "write_report": "masksmith.html_report",
}

__all__ = ["MasksmithError", "__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'masksmith' has no attribute {name!r}")
    module, attribute = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
