"""ONNX Runtime for masksmith models: an exported file's metadata read back as a ModelArtifact, and the
network the Predictor runs through an `InferenceSession`. Export and quantisation are `infer/export.py`."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from masksmith.core.errors import ModelError
from masksmith.models.artifact import FORMAT, VERSION, ModelArtifact, artifact_from_payload

METADATA_KEY = "masksmith"
INPUT_NAME, OUTPUT_NAME = "pixels", "logits"


class OnnxError(ModelError):
    """An ONNX file or export that masksmith cannot use."""


# ---------------------------------------------------------------------------------------------- metadata
def artifact_metadata(artifact: ModelArtifact) -> dict[str, Any]:
    """The model file's description without its weights (what the ONNX metadata holds)."""
    data = asdict(artifact)
    data.pop("state_dict")
    return {"format": FORMAT, "version": VERSION, **data}


def read_onnx_artifact(path: str | Path) -> ModelArtifact:
    """The ModelArtifact (without weights) that an exported `.onnx` file describes in its metadata."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise OnnxError("the ONNX file does not exist.", path=path, fix="pass the file `masksmith export` wrote.")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure means the same to the user
        raise OnnxError(f"cannot be read as an ONNX model ({type(exc).__name__}).", path=path,
                        fix="pass a .onnx file written by `masksmith export`; it may be truncated.") from None
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise OnnxError("is an ONNX model without masksmith metadata (classes, colours, preprocessing).",
                        path=path, fix="export it again from its .masksmith model file.")
    try:
        data = json.loads(props[METADATA_KEY])
    except (ValueError, RecursionError) as exc:
        raise OnnxError(f"has broken masksmith metadata ({type(exc).__name__}: {str(exc)[:120]}).", path=path,
                        fix="export the model again with `masksmith export`.") from None
    artifact = artifact_from_payload(data, path, error=OnnxError, weights=False)  # the model file's own checks
    problem = graph_problem(model, artifact)
    if problem:
        raise OnnxError(f"{problem}; the metadata does not describe this graph.", path=path,
                        fix="export the model again with `masksmith export`.")
    return artifact


def graph_problem(model: Any, artifact: ModelArtifact) -> str | None:
    """Whether the graph takes (B, 3, H, W) pixels and gives one logit per output the metadata describes."""
    if artifact.task != "semantic":
        return f"its metadata describes a {artifact.task} model; ONNX export covers semantic models only"
    graph = model.graph
    if len(graph.input) < 1 or len(graph.output) < 1:
        return "the graph has no input or no output"

    def dims(value: Any) -> list[int | None]:
        shape = value.type.tensor_type.shape
        return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]

    inputs, outputs = dims(graph.input[0]), dims(graph.output[0])
    if len(inputs) != 4 or inputs[1] not in (3, None):
        return f"the graph's input is {inputs}, not (batch, 3, height, width) pixels"
    want = artifact.model.get("num_outputs")
    if len(outputs) != 4 or outputs[1] not in (want, None):
        return f"the graph gives {outputs[1] if len(outputs) == 4 else outputs} outputs a pixel, the metadata " \
               f"{want} (model num_outputs, {len(artifact.classes)} classes)"
    return None


def metadata_json(artifact: ModelArtifact) -> str:
    return json.dumps(artifact_metadata(artifact), default=str)


def session(model: str | Path | bytes, threads: int | None = None):
    """An onnxruntime CPU session with all graph optimisations, on `threads` threads (torch's count by
    default, so both backends use the same)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: shape-inference warnings on dynamic outputs are noise
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        where = None if isinstance(model, bytes) else model
        raise OnnxError(f"onnxruntime cannot load it ({str(exc).splitlines()[0][:200]}).", path=where,
                        fix="export the model again with `masksmith export`.") from None


class OnnxNetwork:
    """An ONNX Runtime session behind the interface the Predictor calls: (B, 3, H, W) float pixels -> logits."""

    def __init__(self, model: str | Path | bytes, threads: int | None = None) -> None:
        self.session = session(model, threads)
        self.input_name = self.session.get_inputs()[0].name

    def eval(self) -> OnnxNetwork:
        return self

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(pixels.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: x})[0])


@contextlib.contextmanager
def quiet_onnxruntime():
    """onnxruntime.quantization logs dozens of warnings on the root logger and ORT's own logger; the export
    prints parity instead."""
    import onnxruntime as ort

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    try:
        yield
    finally:
        root.setLevel(level)
