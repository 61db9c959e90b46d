"""ONNX Runtime for masksmith models: an exported file's metadata read back as a ModelArtifact, and the
network the Predictor runs through an `InferenceSession`. Export and quantisation are `infer/export.py`."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from masksmith.core.errors import MasksmithError, ModelError
from masksmith.models.artifact import FORMAT, VERSION, ModelArtifact, artifact_from_payload

METADATA_KEY = "masksmith"
EXPORT_KEY = "masksmith_export"  # what the export measured: source digest, speeds (see export_facts)
OPTIMIZED_SUFFIX = ".optimized-"
INPUT_NAME, OUTPUT_NAME = "pixels", "logits"


class OnnxError(ModelError):
    """An ONNX file or export that masksmith cannot use."""


# ---------------------------------------------------------------------------------------------- metadata
def artifact_metadata(artifact: ModelArtifact) -> dict[str, Any]:
    """The model file's description without its weights (what the ONNX metadata holds)."""
    data = asdict(artifact)
    data.pop("state_dict")
    return {"format": FORMAT, "version": VERSION, **data}


def read_onnx_props(path: str | Path) -> dict[str, str]:
    """An ONNX file's metadata_props, read with the onnx package (without loading external data)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise OnnxError("the ONNX file does not exist.", path=path, fix="pass the file `masksmith export` wrote.")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure means the same to the user
        raise OnnxError(f"cannot be read as an ONNX model ({type(exc).__name__}).", path=path,
                        fix="pass a .onnx file written by `masksmith export`; it may be truncated.") from None
    return {p.key: p.value for p in model.metadata_props}


def read_onnx_artifact(path: str | Path) -> ModelArtifact:
    """The ModelArtifact (without weights) that an exported `.onnx` file describes in its metadata, checked
    against the graph's input and output shapes."""
    import onnx

    model = None
    props = read_onnx_props(path)
    with contextlib.suppress(Exception):
        model = onnx.load(str(path), load_external_data=False)

    def dims(value: Any) -> list[int | None]:
        shape = value.type.tensor_type.shape
        return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]

    shapes = None if model is None or not model.graph.input or not model.graph.output else \
        (dims(model.graph.input[0]), dims(model.graph.output[0]))
    return artifact_from_metadata(props, Path(path), shapes)


def metadata_json(artifact: ModelArtifact) -> str:
    return json.dumps(artifact_metadata(artifact), default=str)


def artifact_from_metadata(props: dict[str, str], path: str | Path | None = None,
                           shapes: tuple[list[int | None], list[int | None]] | None = None) -> ModelArtifact:
    """The ModelArtifact (without weights) an ONNX file's metadata describes (`props`: its metadata_props),
    through the model file's own field checks; `shapes`: the graph's (first input, first output) dimensions
    (None for a dynamic one), checked against what the metadata describes."""
    if METADATA_KEY not in props:
        raise OnnxError("is an ONNX model without masksmith metadata (classes, colours, preprocessing).",
                        path=path, fix="export it again from its .masksmith model file.")
    try:
        data = json.loads(props[METADATA_KEY])
    except (ValueError, RecursionError) as exc:
        raise OnnxError(f"has broken masksmith metadata ({type(exc).__name__}: {str(exc)[:120]}).", path=path,
                        fix="export the model again with `masksmith export`.") from None
    artifact = artifact_from_payload(data, path, error=OnnxError, weights=False)  # the model file's own checks
    problem = graph_problem(shapes, artifact) if shapes is not None else None
    if problem:
        raise OnnxError(f"{problem}; the metadata does not describe this graph.", path=path,
                        fix="export the model again with `masksmith export`.")
    return artifact


def session_shapes(session: Any) -> tuple[list[int | None], list[int | None]]:
    """An InferenceSession's (first input, first output) dimensions, None for dynamic ones."""
    def dims(value: Any) -> list[int | None]:
        return [d if isinstance(d, int) else None for d in value.shape]

    return dims(session.get_inputs()[0]), dims(session.get_outputs()[0])


def graph_problem(shapes: tuple[list[int | None], list[int | None]], artifact: ModelArtifact) -> str | None:
    """Whether a semantic graph takes (B, 3, H, W) pixels and gives one logit per output the metadata
    describes (a Mask R-CNN graph is checked by its export's detection parity)."""
    if artifact.task != "semantic":
        return None
    inputs, outputs = shapes
    if len(inputs) != 4 or inputs[1] not in (3, None):
        return f"the graph's input is {inputs}, not (batch, 3, height, width) pixels"
    want = artifact.model.get("num_outputs")
    if len(outputs) != 4 or outputs[1] not in (want, None):
        return f"the graph gives {outputs[1] if len(outputs) == 4 else outputs} outputs a pixel, the metadata " \
               f"{want} (model num_outputs, {len(artifact.classes)} classes)"
    return None


def export_facts(props: dict[str, str]) -> dict[str, Any]:
    """What `masksmith export` measured and recorded beside the model description (EXPORT_KEY): the source
    model file's digest, and the network's speed on both backends; {} for files exported before."""
    try:
        facts = json.loads(props.get(EXPORT_KEY, "{}"))
    except ValueError:
        return {}
    return facts if isinstance(facts, dict) else {}


# ------------------------------------------------------------------------------------------- the session
def every_core() -> int:
    """The cores this process may run on (its CPU affinity, so a container's limit counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def use_every_core() -> int:
    """Let torch (when loaded) compute on every core this process may use; training may have lowered its
    count (one share per process with several devices). Returns the count."""
    torch = sys.modules.get("torch")
    cores = every_core()
    if torch is not None and torch.get_num_threads() < cores:
        torch.set_num_threads(cores)
    return cores


def default_threads(threads: int | None = None) -> int:
    """`threads`, else torch's count when torch is loaded (both backends then use the same), else 0
    (onnxruntime's default: one per physical core)."""
    if threads:
        return int(threads)
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else 0


def _options(threads: int | None, level: str):
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # the "hardware specific optimizations" notice is the point here
    options = ort.SessionOptions()
    options.intra_op_num_threads = default_threads(threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.log_severity_level = 3  # errors only: shape-inference warnings on dynamic outputs are noise
    return options


def _open(source: str | bytes, options, where: Path | None):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        text = str(exc)
        if "Protobuf parsing failed" in text or "INVALID_PROTOBUF" in text:
            raise OnnxError("cannot be read as an ONNX model (protobuf parsing failed).", path=where,
                            fix="pass a .onnx file written by `masksmith export`; it may be truncated.") from None
        raise OnnxError(f"onnxruntime cannot load it ({text.splitlines()[0][:200]}).", path=where,
                        fix="export the model again with `masksmith export`.") from None


def _machine_key() -> str:
    """What an optimised graph depends on besides the model: onnxruntime's version and this CPU's features
    (the NCHWc layouts ORT_ENABLE_ALL writes are hardware specific)."""
    import platform

    import onnxruntime as ort

    try:
        flags = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags"))
    except (OSError, StopIteration):
        flags = platform.processor()
    return f"{ort.__version__}|{platform.machine()}|{flags}"


def optimized_name(model: Path) -> str:
    """The cached optimised graph's file name for `model` (changes when the model, onnxruntime or the CPU
    does, so a stale graph is never loaded)."""
    digest = hashlib.sha256()
    with open(model, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update(_machine_key().encode())
    return f"{model.name}{OPTIMIZED_SUFFIX}{digest.hexdigest()[:16]}"


def _cache_folders(model: Path) -> list[Path]:
    """Where an optimised graph may live: beside the model, else the user's cache."""
    from masksmith.data.archive import cache_dir

    return [model.parent, cache_dir() / "onnxruntime"]


def cached_session(model: Path, threads: int | None = None):
    """A session on `model` whose optimised graph is cached beside it (`<name>.optimized-<key>`, written
    once through SessionOptions.optimized_model_filepath and loaded with no optimisation afterwards); the
    key covers the model's bytes, onnxruntime's version and the CPU, so a changed model is optimised again.
    Where the model's folder takes no file, the cache goes to the user's cache folder; where neither does,
    the graph is optimised in memory as before. Returns (session, where the optimised graph came from)."""
    from masksmith.core.outputs import OutputFolder

    if not model.is_file():
        raise OnnxError("the ONNX file does not exist.", path=model, fix="pass the file `masksmith export` wrote.")
    name = optimized_name(model)
    for folder in _cache_folders(model):
        path = folder / name
        if path.is_file():
            try:
                return _open(str(path), _options(threads, "ORT_DISABLE_ALL"), path), f"cached graph {path}"
            except OnnxError:
                pass  # damaged: optimised again below
    for folder in _cache_folders(model):
        try:
            out = OutputFolder(folder, create=folder != model.parent)
            for old in folder.glob(f"{glob.escape(model.name)}{OPTIMIZED_SUFFIX}*"):
                if old.name != name and out.owns(old):
                    old.unlink(missing_ok=True)  # our graph of an earlier version of the model
            holder: list[Any] = []

            def write(tmp: Path, holder: list[Any] = holder) -> None:
                options = _options(threads, "ORT_ENABLE_ALL")
                options.optimized_model_filepath = str(tmp)
                holder.append(_open(str(model), options, model))

            path = out.save(name, write)
            return holder[0], f"optimised graph cached in {path}"
        except (MasksmithError, OSError):
            continue
    return _open(str(model), _options(threads, "ORT_ENABLE_ALL"), model), "optimised in memory (no folder to cache it)"


def session(model: str | Path | bytes, threads: int | None = None, cache: bool = True):
    """An onnxruntime CPU session with all graph optimisations, on `threads` threads (see `default_threads`);
    a model file's optimised graph is cached beside it (`cached_session`)."""
    if isinstance(model, bytes):
        return _open(model, _options(threads, "ORT_ENABLE_ALL"), None)
    if cache:
        return cached_session(Path(model), threads)[0]
    return _open(str(model), _options(threads, "ORT_ENABLE_ALL"), Path(model))


class OnnxNetwork:
    """An ONNX Runtime session behind the interface the Predictor calls: (B, 3, H, W) float32 pixels ->
    logits, as numpy arrays (a torch tensor in gives a torch tensor out, for the export's parity checks)."""

    def __init__(self, model: str | Path | bytes, threads: int | None = None, cache: bool = True) -> None:
        self.graph = "in memory"
        if isinstance(model, bytes) or not cache:
            self.session = session(model, threads, cache=False)
        else:
            self.session, self.graph = cached_session(Path(model), threads)
        self.input_name = self.session.get_inputs()[0].name

    def eval(self) -> OnnxNetwork:
        return self

    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, pixels: Any) -> Any:
        if isinstance(pixels, list):  # an instance model: torchvision's call, a list of (3, H, W) images
            return [self.detect(image) for image in pixels]
        is_array = isinstance(pixels, np.ndarray)
        if not is_array:
            pixels = pixels.detach().cpu().numpy()
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(pixels, dtype=np.float32)})[0]
        if is_array:
            return out
        import torch

        return torch.from_numpy(out)


    def detect(self, image: Any) -> dict[str, Any]:
        """An exported Mask R-CNN on one (3, H, W) float image in [0, 1]: torchvision's output dict (boxes,
        labels, scores, masks as torch tensors; masks (N, 1, H, W) probabilities at the image's size)."""
        import torch

        x = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
        boxes, labels, scores, masks = self.session.run(
            None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels.astype(np.int64)),
                "scores": torch.from_numpy(scores), "masks": torch.from_numpy(masks)}


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
