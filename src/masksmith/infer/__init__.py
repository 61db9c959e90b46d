"""Prediction: one predictor per task, chosen by the model file (`open_predictor`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def open_predictor(path: str | Path, **kwargs: Any):
    """A `Predictor` for a semantic model file or an `InstancePredictor` for a Mask R-CNN one.

    `kwargs` go to the predictor; those the other kind takes (``tta`` for semantic models, ``score_threshold``
    for instance models) are dropped when they do not apply, so callers can pass both."""
    from masksmith.models.artifact import load_artifact

    artifact = load_artifact(path)
    if artifact.task == "instance":
        from masksmith.infer.instance import InstancePredictor

        kwargs.pop("tta", None)
        return InstancePredictor(artifact, **kwargs)
    from masksmith.infer.predictor import Predictor

    kwargs.pop("score_threshold", None)
    return Predictor(artifact, **kwargs)
