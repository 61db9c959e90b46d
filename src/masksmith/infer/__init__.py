"""Prediction: one predictor per task, chosen by the model file (`open_predictor`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def open_predictor(path: str | Path, backend: str | None = None, **kwargs: Any):
    """A `Predictor` for a semantic model or an `InstancePredictor` for a Mask R-CNN one.

    `path` is a `.masksmith` file (or a run folder), or an `.onnx` file that `masksmith export` wrote.
    `backend`: "torch" or "onnx"; by default the file's own (an ONNX file runs on ONNX Runtime, a model file on
    PyTorch); a `.masksmith` semantic model with backend "onnx" is exported in memory first.
    `kwargs` go to the predictor; those the other kind takes (``tta`` for semantic models, ``score_threshold``
    for instance models) are dropped when they do not apply, so callers can pass both."""
    from masksmith.errors import MasksmithError

    path = Path(path)
    if backend not in (None, "torch", "onnx"):
        raise MasksmithError(f"unknown backend {backend!r}.", fix="use torch or onnx.")
    if path.suffix.lower() == ".onnx":
        from masksmith.infer.onnx import OnnxNetwork, read_onnx_artifact
        from masksmith.infer.predictor import Predictor

        if backend == "torch":
            raise MasksmithError("is an ONNX file; it runs on ONNX Runtime only.", path=path,
                                 fix="drop --backend torch, or pass the .masksmith file it was exported from.")
        artifact = read_onnx_artifact(path)
        kwargs.pop("score_threshold", None)
        return Predictor(artifact, net=OnnxNetwork(path), backend="onnx", **kwargs)

    from masksmith.models.artifact import load_artifact

    artifact = load_artifact(path)
    if artifact.task == "instance":
        from masksmith.infer.instance import InstancePredictor

        if backend == "onnx":
            raise MasksmithError("Mask R-CNN models run on PyTorch only (their ONNX export is not built yet).",
                                 path=path, fix="drop --backend onnx.")
        kwargs.pop("tta", None)
        return InstancePredictor(artifact, **kwargs)
    from masksmith.infer.predictor import Predictor

    kwargs.pop("score_threshold", None)
    return Predictor(artifact, backend=backend or "torch", **kwargs)
