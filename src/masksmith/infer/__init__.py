"""Prediction: one predictor per task (`masksmith.tasks`), opened from a model file by `open_predictor`."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

BACKEND_CHOICES = ("auto", "torch", "onnx")


def open_predictor(path: str | Path, backend: str | None = None, **kwargs: Any):
    """The task's predictor for a model: a `Predictor` for a semantic model, an `InstancePredictor` for a
    Mask R-CNN one.

    `path` is a `.masksmith` file (or a run folder), or an `.onnx` file that `masksmith export` wrote.
    `backend`: "torch", "onnx" or "auto"; by default the file's own (an ONNX file runs on ONNX Runtime, a model
    file on PyTorch). "onnx" with a `.masksmith` file runs the `.onnx` exported beside it when it was exported
    from this very file, else exports in memory first. "auto" takes that exported file when its export
    measured it faster than PyTorch, and PyTorch otherwise (`masksmith.infer.backend.choose_backend`); the
    predictor's `backend_note` says which and why.
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

    if backend not in (None, *BACKEND_CHOICES):
        raise MasksmithError(f"unknown backend {backend!r}.", fix="use `backend=auto`, `torch` or `onnx`.")
    note = None
    choice = None
    if backend in ("auto", "onnx") and path.suffix.lower() != ".onnx":
        from masksmith.infer.backend import choose_backend

        choice = choose_backend(path, prefer="onnx" if backend == "onnx" else None)
        note = choice.reason
        if choice.net is not None:
            path, backend = choice.path, "onnx"
            kwargs |= {"net": choice.net}
        elif backend == "auto":
            backend = "torch"
    if path.suffix.lower() == ".onnx":
        from masksmith.infer.runtime import OnnxNetwork, artifact_from_metadata, session_shapes

        if backend == "torch":
            raise MasksmithError("is an ONNX file; it runs on ONNX Runtime only.", path=path,
                                 fix="use `backend=onnx`, or the .masksmith file it was exported from.")
        from masksmith.models.footprint import check_footprint

        net = kwargs.get("net") or OnnxNetwork(path)
        artifact = artifact_from_metadata(net.metadata(), path, session_shapes(net.session))
        # one image at its input size checked before the first run (the session holds only the graph's weights,
        # which are the file); read from the open session, so the file is parsed once and onnx is not imported
        check_footprint(artifact, weights=False, weight_bytes=path.stat().st_size)
        kwargs |= {"net": net, "backend": "onnx"}
        note = note or f"ONNX Runtime ({path.name}; {net.graph})"
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
        note = "ONNX Runtime (exported in memory" + (f"; {choice.detail})" if choice else ")")
    result = predictor(artifact, **{k: v for k, v in kwargs.items() if k in accepted})
    result.backend_note = note or "PyTorch"
    return result
