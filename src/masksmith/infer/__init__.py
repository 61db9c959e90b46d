"""Prediction: one predictor per task (`masksmith.tasks`), opened from a model file by `open_predictor`."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any


def open_predictor(path: str | Path, backend: str | None = None, **kwargs: Any):
    """The task's predictor for a model: a `Predictor` for a semantic model, an `InstancePredictor` for a
    Mask R-CNN one.

    `path` is a `.masksmith` file (or a run folder), or an `.onnx` file that `masksmith export` wrote.
    `backend`: "torch" or "onnx"; by default the file's own (an ONNX file runs on ONNX Runtime, a model file on
    PyTorch); a `.masksmith` semantic model with backend "onnx" is exported in memory first.
    `kwargs` go to the predictor; those it does not take (``tta`` for instance models, ``score_threshold``
    for semantic ones) are dropped, so callers can pass both."""
    from masksmith.core.errors import MasksmithError

    path = Path(path)
    try:
        return _open(path, backend, kwargs)
    except MasksmithError as exc:
        if exc.path is None:  # a problem found while building the network: say which file described it
            exc.path = str(path)
            exc.args = (exc._compose(),)
        raise


def _open(path: Path, backend: str | None, kwargs: dict[str, Any]):
    from masksmith.core.errors import MasksmithError
    from masksmith.tasks import get_task

    if backend not in (None, "torch", "onnx"):
        raise MasksmithError(f"unknown backend {backend!r}.", fix="use `backend=torch` or `backend=onnx`.")
    if path.suffix.lower() == ".onnx":
        from masksmith.infer.runtime import OnnxNetwork, read_onnx_artifact

        if backend == "torch":
            raise MasksmithError("is an ONNX file; it runs on ONNX Runtime only.", path=path,
                                 fix="use `backend=onnx`, or the .masksmith file it was exported from.")
        from masksmith.models.footprint import check_footprint

        artifact = read_onnx_artifact(path)
        check_footprint(artifact, weights=False)  # one image at its input size, before ONNX Runtime allocates
        kwargs |= {"net": OnnxNetwork(path), "backend": "onnx"}
    else:
        from masksmith.models.artifact import load_artifact

        artifact = load_artifact(path)
    predictor = get_task(artifact.task).load("predictor")
    accepted = inspect.signature(predictor).parameters
    if (backend == "onnx" or "net" in kwargs) and "backend" not in accepted:
        raise MasksmithError(f"{artifact.task} models run on PyTorch only (their ONNX export is not built yet).",
                             path=path, fix="use `backend=torch`.")
    if backend == "onnx" and "net" not in kwargs:
        from masksmith.infer.export import onnx_bytes_for
        from masksmith.infer.runtime import OnnxNetwork

        kwargs |= {"net": OnnxNetwork(onnx_bytes_for(artifact)), "backend": "onnx"}
    return predictor(artifact, **{k: v for k, v in kwargs.items() if k in accepted})
