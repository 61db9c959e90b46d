"""ONNX export of semantic models, parity against PyTorch, and INT8 static quantisation (the ONNX Runtime
network the Predictor runs is `infer/runtime.py`).

- The exported graph is `SegmentationNet` itself (normalisation inside), input ``pixels`` (B, 3, H, W) float
  RGB in [0, 255], output ``logits`` (B, C, H, W), batch, height and width dynamic. H and W must fit the
  architecture (the Predictor pads them, as it does for PyTorch). A side-factored head exports as it runs, so
  the outputs are the same per-class logits and all post-processing is shared.
- The model file's description (classes, colours, preprocessing, architecture, flip pairs: the same dict the
  `.masksmith` file stores, without the weights) goes into the ONNX ``metadata_props`` under ``masksmith`` as
  JSON, so a bare `.onnx` is self-describing and `open_predictor` accepts it.
- The exporter is TorchScript-based (``dynamo=False``): on torch 2.14 the dynamo exporter took 10 s for the
  three-layer baseline and 405 s for DeepLabV3+ (against 1.5 s and 7 s), for the same graph and parity.
- `export_onnx` checks parity before it reports success: max absolute logit difference and share of equal mask
  pixels on sample inputs (at the training size and at a larger, non-square one, so dynamic shapes are tried).
- `--int8`: onnxruntime static quantisation, QDQ format, per-channel int8 weights, int8 activations calibrated
  on the network inputs the Predictor builds from a few dozen photos of a data set; parity against the float
  graph on photos of that set not used for calibration.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from masksmith.core.errors import MasksmithError
from masksmith.infer.runtime import (
    INPUT_NAME,
    METADATA_KEY,
    OUTPUT_NAME,
    OnnxError,
    OnnxNetwork,
    metadata_json,
    quiet_onnxruntime,
)
from masksmith.models.artifact import ModelArtifact, build_network, load_artifact

OPSET = 17
# Float parity: every compared pixel's class equal for at least this share, logits within this fraction of
# their largest magnitude (at least 1).
FLOAT_EQUAL_SHARE, FLOAT_LOGIT_TOLERANCE = 0.999, 1e-3
# INT8 parity against the float graph, on photos not used for calibration.
INT8_EQUAL_SHARE = 0.95


# ------------------------------------------------------------------------------------------------ export
def export_network(net: nn.Module, artifact: ModelArtifact) -> bytes:
    """The network as ONNX bytes (with the artifact's metadata), batch, height and width dynamic."""
    import onnx

    if artifact.task != "semantic":
        raise OnnxError("ONNX export covers semantic models only.", fix="use the .masksmith file with PyTorch.")
    h, w = artifact.input_size
    sample = torch.rand(1, 3, h, w) * 255
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about shape arithmetic that stays dynamic anyway
        torch.onnx.export(net.eval(), (sample,), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True,
                          dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                                        OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}})
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata_json(artifact)
    model.producer_name = "masksmith"
    model.doc_string = (f"masksmith {artifact.task} model: input {INPUT_NAME} (B, 3, H, W) RGB floats 0-255, "
                        f"output {OUTPUT_NAME} (B, C, H, W); classes: {', '.join(artifact.classes)}")
    return model.SerializeToString()


# ------------------------------------------------------------------------------------------------ parity
@dataclass
class Parity:
    """How close a candidate graph comes to a reference on the same inputs."""

    max_abs: float  # largest absolute logit difference
    logit_range: float  # largest absolute reference logit
    equal_share: float  # share of pixels whose class is the same
    pixels: int

    def ok(self, equal_share: float, logit_tolerance: float | None = None) -> bool:
        close = logit_tolerance is None or self.max_abs <= logit_tolerance * max(1.0, self.logit_range)
        return close and self.equal_share >= equal_share

    def describe(self) -> str:
        return (f"max abs logit difference {self.max_abs:.3g} (logits up to {self.logit_range:.3g}), "
                f"equal mask pixels {100 * self.equal_share:.3f} % of {self.pixels}")


def classes_of(logits: np.ndarray) -> np.ndarray:
    """(B, C, H, W) logits -> (B, H, W) classes (binary models: logit > 0)."""
    return (logits[:, 0] > 0) if logits.shape[1] == 1 else logits.argmax(1)


def parity(reference, candidate, inputs: Sequence[torch.Tensor]) -> Parity:
    """Compare two networks (callables on (B, 3, H, W) pixels) on every input."""
    worst = scale = 0.0
    equal = total = 0
    for x in inputs:
        with torch.no_grad():
            a = reference(x).float().numpy()
            b = candidate(x).float().numpy()
        worst = max(worst, float(np.abs(a - b).max()))
        scale = max(scale, float(np.abs(a).max()))
        ca, cb = classes_of(a), classes_of(b)
        equal += int((ca == cb).sum())
        total += ca.size
    return Parity(worst, scale, equal / max(1, total), total)


def sample_inputs(artifact: ModelArtifact, count: int = 2, seed: int = 0) -> list[torch.Tensor]:
    """Smooth random photos at the network's training size and at a larger, non-square size (padded as the
    Predictor pads), so parity is checked on dynamic shapes too."""
    from masksmith.models.registry import get_model

    h, w = artifact.input_size
    d = get_model(artifact.model["arch"]).divisor
    big = (-(-(h + h // 2) // d) * d, -(-(2 * w) // d) * d)  # taller and twice as wide: not square
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(count):
        size = (h, w) if k % 2 == 0 else big
        coarse = torch.rand(1, 3, max(2, size[0] // 8), max(2, size[1] // 8), generator=g) * 255
        out.append(torch.nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False))
    return out


# ----------------------------------------------------------------------------------------- INT8 (static)
def predictor_inputs(artifact: ModelArtifact, images: Sequence[np.ndarray], limit: int) -> list[torch.Tensor]:
    """The (1, 3, H, W) inputs the Predictor gives the network for these photos (resize or sliding window,
    padding included), at most `limit` of them: what calibration and INT8 parity must see."""
    from masksmith.infer.predictor import Predictor

    seen: list[torch.Tensor] = []

    class Recorder:
        def eval(self):
            return self

        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            seen.extend(t[None].clone() for t in x)
            n = 1 if artifact.model.get("num_outputs") == 1 else artifact.class_map.num_values
            return torch.zeros((x.shape[0], n, *x.shape[-2:]))

    predictor = Predictor(artifact, net=Recorder(), backend="torch")  # type: ignore[arg-type]
    for image in images:
        if len(seen) >= limit:
            break
        predictor.predict_proba(image, own_size=False)
    return seen[:limit]


def calibration_photos(data: str | Path) -> list[Path]:
    """Photos of a calibration set: a folder of images, or any annotated data set masksmith reads."""
    from masksmith.infer.batch import expand_inputs

    data = Path(data)
    if not data.exists():
        raise MasksmithError("the calibration data does not exist.", path=data, fix="pass a folder of photos "
                             "or an annotated data set (a few dozen training images).")
    if data.is_dir():
        try:
            return expand_inputs([data])
        except MasksmithError:
            pass
        if (data / "images").is_dir():
            try:
                return expand_inputs([data / "images"])
            except MasksmithError:
                pass
    try:
        from masksmith.data import load_dataset

        dataset = load_dataset(data, None, strict=False, need_pixels=False)
        photos = [s.image_path for s in dataset.samples if s.image_path is not None and Path(s.image_path).is_file()]
    except MasksmithError:
        photos = []
    if not photos:
        raise MasksmithError("holds no images to calibrate on.", path=data,
                             fix="pass a folder of photos or an annotated data set with its images.")
    return sorted(map(Path, photos))


def spread(items: Sequence, count: int) -> list:
    """`count` items spread evenly over `items` (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[round(i * (len(items) - 1) / max(1, count - 1))] for i in range(count)]


_WORKDIR_LOCK = threading.Lock()


@contextlib.contextmanager
def private_workdir():
    """Run onnxruntime's tools inside a private temporary folder as the current folder, removed afterwards:
    some of them write scratch files into the current folder (symbolic shape inference saves
    sym_shape_infer_temp.onnx and its external *.data when it gives up on dynamic sizes). The current folder
    is process-wide, so one export at a time holds it. Yields the folder."""
    with _WORKDIR_LOCK, tempfile.TemporaryDirectory(prefix="masksmith-onnx-") as tmp, contextlib.chdir(tmp):
        yield Path(tmp)


def quantize_int8(float_model: bytes, inputs: Sequence[torch.Tensor]) -> bytes:
    """Static INT8 quantisation (QDQ, per-channel int8 weights, int8 activations, MinMax calibration over
    `inputs`), metadata kept."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not inputs:
        raise OnnxError("no calibration inputs.", fix="give `calibrate` a folder of photos.")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(inputs)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {INPUT_NAME: np.ascontiguousarray(x.numpy(), dtype=np.float32)}

    with private_workdir() as tmp:
        src, pre, dst = Path(tmp, "float.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(float_model)
        with warnings.catch_warnings(), quiet_onnxruntime():
            warnings.simplefilter("ignore")
            # ONNX shape inference and ORT's basic optimisation (which folds the exporter's Identity nodes in
            # front of Conv biases, so they quantise); symbolic shape inference gives up on dynamic H and W
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        model = onnx.load(str(dst))
    meta = {p.key: p.value for p in onnx.load_from_string(float_model).metadata_props}
    del model.metadata_props[:]
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    return model.SerializeToString()


# ------------------------------------------------------------------------------------------ the command
@dataclass
class ExportReport:
    path: Path
    parity: Parity
    ok: bool
    int8_path: Path | None = None
    int8_parity: Parity | None = None
    int8_ok: bool | None = None
    calibrated_on: int = 0
    notes: list[str] = field(default_factory=list)

    def failure(self, model: str | Path) -> MasksmithError | None:
        """Why the export wrote nothing, or why the INT8 copy was not written (None when all went well)."""
        if not self.ok:
            return MasksmithError(
                "ONNX parity check failed; nothing was written.", path=model,
                fix=f"report this with the model's architecture (the export checks {100 * FLOAT_EQUAL_SHARE:g} % "
                    f"equal pixels and logits within {100 * FLOAT_LOGIT_TOLERANCE:g} %).")
        if self.int8_ok is False:
            return MasksmithError(
                f"INT8 parity check failed (fewer than {100 * INT8_EQUAL_SHARE:g} % equal mask pixels against "
                "float); the INT8 file was not written.", path=model,
                fix="calibrate on more photos like those you predict, or use the float model.")
        return None


def default_onnx_path(model_path: Path) -> Path:
    if model_path.is_dir():
        return model_path / "model.onnx"
    return model_path.with_suffix(".onnx")


def export_onnx(model: str | Path, out: str | Path | None = None, *, int8: bool = False,
                calibrate: str | Path | None = None, calibration_images: int = 32, parity_images: int = 8,
                overwrite: bool = False) -> ExportReport:
    """Export a `.masksmith` semantic model to ONNX (and with `int8` an INT8 copy beside it, `<name>.int8.onnx`);
    files are written only when parity holds."""
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder

    model_path = Path(model)
    artifact = load_artifact(model_path)
    if artifact.task != "semantic":
        raise OnnxError("ONNX export covers semantic models only in this version; Mask R-CNN models run on "
                        "PyTorch (torchvision's graph exports, but its detection parity check and an ONNX "
                        "backend for the instance predictor are not built yet).", path=model_path,
                        fix="predict with the .masksmith file.")
    if int8 and calibrate is None:
        raise MasksmithError("`int8` needs photos to calibrate on.", fix="give `calibrate` DATA (a folder of "
                             "training photos or the training data set).")
    out_path = Path(out) if out is not None else default_onnx_path(model_path)
    folder, name = OutputFolder.for_file(out_path, inputs=[model_path], overwrite=overwrite)
    int8_name = f"{Path(name).stem}.int8.onnx"
    for n in [name, *([int8_name] if int8 else [])]:
        folder.claim(n)  # refuse before minutes of work, not after

    net = build_network(artifact)
    photos: list[np.ndarray] = []
    if calibrate is not None:
        paths = calibration_photos(calibrate)
        photos = [read_image(p) for p in spread(paths, calibration_images + parity_images)]

    float_bytes = export_network(net, artifact)
    float_net = OnnxNetwork(float_bytes)
    checks = sample_inputs(artifact)
    if photos:
        checks += predictor_inputs(artifact, photos[-parity_images:], parity_images)
    result = parity(net, float_net, checks)
    ok = result.ok(FLOAT_EQUAL_SHARE, FLOAT_LOGIT_TOLERANCE)
    report = ExportReport(folder.path(name), result, ok)
    if not ok:
        return report
    folder.write_bytes(name, float_bytes)
    if int8:
        calib = photos[:-parity_images] if len(photos) > parity_images else photos
        held_out = photos[-parity_images:] if len(photos) > parity_images else photos
        if len(photos) <= parity_images:
            report.notes.append(f"only {len(photos)} calibration photo(s): INT8 parity is measured on the "
                                "photos it was calibrated on")
        inputs = predictor_inputs(artifact, calib, calibration_images)
        int8_bytes = quantize_int8(float_bytes, inputs)
        report.calibrated_on = len(calib)
        report.int8_parity = parity(float_net, OnnxNetwork(int8_bytes), predictor_inputs(artifact, held_out,
                                                                                         parity_images))
        report.int8_ok = report.int8_parity.ok(INT8_EQUAL_SHARE)
        report.int8_path = folder.path(int8_name)
        if report.int8_ok:
            folder.write_bytes(int8_name, int8_bytes)
    return report


def onnx_bytes_for(artifact: ModelArtifact, net: nn.Module | None = None) -> bytes:
    """An in-memory export (for `--backend onnx` with a .masksmith file)."""
    return export_network(net or build_network(artifact), artifact)

