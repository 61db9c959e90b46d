"""ONNX export, parity against PyTorch, and INT8 static quantisation (the ONNX Runtime network the predictors
run is `infer/runtime.py`).

- Semantic models: the exported graph is `SegmentationNet` itself (normalisation inside), input ``pixels``
  (B, 3, H, W) float RGB in [0, 255], output ``logits`` (B, C, H, W), batch, height and width dynamic. H and W
  must fit the architecture (the Predictor pads them, as it does for PyTorch).
- Mask R-CNN: torchvision's model with its transform and post-processing, input ``image`` (3, H, W) in [0, 1],
  outputs boxes, labels, scores and masks, image size and object count dynamic; torchvision's RoIAlign (the
  ONNX RoiAlign operator) replaces our gather one in the exported copy, and detections scoring at least
  EXPORT_SCORE_THRESHOLD are kept (the predictor drops those below its own threshold).
- The model file's description (classes, colours, preprocessing, architecture, flip pairs: the same dict the
  `.masksmith` file stores, without the weights) goes into the ONNX ``metadata_props`` under ``masksmith`` as
  JSON, so a bare `.onnx` is self-describing and `open_predictor` accepts it; what the export measured (the
  source file's SHA-256, parity, the speed of both backends) goes under ``masksmith_export``, which
  `backend="auto"` reads.
- The exporter is TorchScript-based (``dynamo=False``): on torch 2.14 the dynamo exporter took 10 s for the
  three-layer baseline and 405 s for DeepLabV3+ (against 1.5 s and 7 s), for the same graph and parity.
- `export_onnx` checks parity before it writes: semantic models, max absolute logit difference and share of
  equal mask pixels on sample inputs (at the training size and at a larger, non-square one); Mask R-CNN,
  detections matched one to one (class, box IoU, score, mask IoU) on two image sizes.
- `--int8`: onnxruntime static quantisation by several recipes (QDQ or QOperator, per-channel int8 weights,
  the TF-style SAME padding made static or not), int8 activations calibrated on the network inputs the
  Predictor builds from the calibration photos; parity against the float graph on photos of that set not
  used for calibration, speed against the float graph; the fastest recipe that keeps parity and pays
  (INT8_MIN_GAIN) is written, else one line says why INT8 will not pay.
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
from masksmith.core.runfolder import model_file
from masksmith.infer.runtime import (
    EXPORT_KEY,
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


def measure_speed(reference, candidate, size: tuple[int, int], repeats: int = 5) -> dict:
    """Median milliseconds of the PyTorch module `reference` and the ONNX network `candidate` on one
    (1, 3, *size) input, interleaved repeat by repeat after a warm-up (what `backend="auto"` reads)."""
    import time

    from masksmith.infer.predictor import TorchNetwork
    from masksmith.infer.runtime import default_threads

    x = np.ascontiguousarray(np.random.default_rng(0).uniform(0, 255, (1, 3, *size)), dtype=np.float32)
    runs = {"torch": TorchNetwork(reference), "onnx": candidate}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for f in runs.values():
        f(x)
    for _ in range(repeats):
        for name, f in runs.items():
            t = time.perf_counter()
            f(x)
            times[name].append(time.perf_counter() - t)
    return {"size": f"{size[1]}x{size[0]}", "threads": default_threads() or torch.get_num_threads(),
            **{f"{k}_ms": round(1000 * float(np.median(v)), 3) for k, v in times.items()}}


def describe_speed(speed: dict) -> str:
    return (f"network alone at {speed['size']} on {speed['threads']} thread(s): PyTorch {speed['torch_ms']:.1f} ms, "
            f"ONNX Runtime {speed['onnx_ms']:.1f} ms ({speed['torch_ms'] / max(speed['onnx_ms'], 1e-9):.2f}x)")


def with_facts(model_bytes: bytes, facts: dict) -> bytes:
    """The ONNX model with `facts` (what the export measured) added to its metadata under EXPORT_KEY."""
    import json

    import onnx

    model = onnx.load_from_string(model_bytes)
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != EXPORT_KEY]
    del model.metadata_props[:]
    for k, v in [*kept, (EXPORT_KEY, json.dumps(facts))]:
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    return model.SerializeToString()


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
        def __call__(self, x: np.ndarray) -> np.ndarray:
            seen.extend(torch.from_numpy(np.array(t[None], dtype=np.float32)) for t in x)
            n = 1 if artifact.model.get("num_outputs") == 1 else artifact.class_map.num_values
            return np.zeros((x.shape[0], n, *x.shape[-2:]), np.float32)

    predictor = Predictor(artifact, net=Recorder(), backend="torch")
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


@dataclass(frozen=True)
class Int8Recipe:
    """One way to quantise: the ONNX format (QDQ: Quantize/DequantizeLinear pairs ORT fuses into int8 kernels;
    QOperator: QLinearConv and friends written directly), per-channel or per-tensor weights, and whether the
    TF-style SAME padding (a Pad computed from the input's size in front of a strided Conv) is made static
    first, so ORT fuses it into the Conv and the Conv quantises as one pattern."""

    format: str = "QDQ"
    per_channel: bool = True
    static_pads: bool = False

    @property
    def name(self) -> str:
        return (f"{self.format}, {'per-channel' if self.per_channel else 'per-tensor'} weights"
                + (", static SAME padding" if self.static_pads else ""))


INT8_RECIPES = (Int8Recipe("QDQ", True), Int8Recipe("QOperator", True), Int8Recipe("QDQ", True, True),
                Int8Recipe("QOperator", True, True))
# an INT8 graph is written only when it runs at least this much faster than the float graph (and keeps
# INT8_EQUAL_SHARE of the mask pixels): below it, the float model is the better deployment
INT8_MIN_GAIN = 1.15


def quantize_int8(float_model: bytes, inputs: Sequence[torch.Tensor], recipe: Int8Recipe = INT8_RECIPES[0]) -> bytes:
    """Static INT8 quantisation (int8 weights, symmetric; int8 activations, MinMax calibration over `inputs`)
    by `recipe`, metadata kept."""
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
            quantize_static(str(pre), str(dst), Reader(), quant_format=getattr(QuantFormat, recipe.format),
                            per_channel=recipe.per_channel, weight_type=QuantType.QInt8,
                            activation_type=QuantType.QInt8,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        model = onnx.load(str(dst))
    meta = {p.key: p.value for p in onnx.load_from_string(float_model).metadata_props}
    del model.metadata_props[:]
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    return model.SerializeToString()


def static_same_padding(net: nn.Module, divisor: int) -> tuple[nn.Module, int]:
    """A copy of `net` whose timm Conv2dSame layers (TF-style SAME padding, computed from the input size on
    every call) pad by fixed amounts instead: for inputs whose sides are multiples of `divisor` (what the
    Predictor always gives the network) the amounts never change, so the exported Pad is constant and ORT
    folds it into the Conv. Returns (copy, layers changed)."""
    import copy
    import math

    net = copy.deepcopy(net).eval()
    changed = 0

    class StaticSame(nn.Module):
        def __init__(self, conv: nn.Conv2d, pads: tuple[int, int, int, int]) -> None:
            super().__init__()
            self.pad, self.conv = nn.ZeroPad2d(pads), conv

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(self.pad(x))

    def pads(conv: nn.Conv2d) -> tuple[int, int, int, int] | None:
        out = []
        for k, s, d in zip(conv.kernel_size, conv.stride, conv.dilation, strict=True):
            if divisor % s:
                return None
            n = divisor  # any multiple of the divisor pads alike (n % s == 0)
            total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
            out.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = out
        return left, right, top, bottom

    for name, module in list(net.named_modules()):
        if type(module).__name__ != "Conv2dSame":
            continue
        amounts = pads(module)
        if amounts is None:
            continue
        plain = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride, 0,
                          module.dilation, module.groups, module.bias is not None)
        plain.load_state_dict(module.state_dict())
        parent = net.get_submodule(name.rpartition(".")[0]) if "." in name else net
        setattr(parent, name.rpartition(".")[2], StaticSame(plain, amounts))
        changed += 1
    return net, changed


@dataclass
class Int8Trial:
    recipe: Int8Recipe
    parity: Parity | None
    speedup: float  # float graph's latency / INT8 graph's, same inputs, interleaved
    data: bytes = field(repr=False, default=b"")
    error: str | None = None  # why onnxruntime could not quantise the graph this way

    def pays(self, min_gain: float) -> bool:
        return self.error is None and self.parity.ok(INT8_EQUAL_SHARE) and self.speedup >= min_gain

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.recipe.name}: onnxruntime could not quantise it ({self.error})"
        return f"{self.recipe.name}: {self.speedup:.2f}x the float graph's speed, {self.parity.describe()}"


def relative_speed(reference, candidate, x: torch.Tensor, repeats: int = 5) -> float:
    """reference latency / candidate latency on `x`, medians of interleaved runs after a warm-up."""
    import time

    xn = np.ascontiguousarray(x.numpy(), dtype=np.float32)
    times: dict[int, list[float]] = {0: [], 1: []}
    for f in (reference, candidate):
        f(xn)
    for _ in range(repeats):
        for k, f in enumerate((reference, candidate)):
            t = time.perf_counter()
            f(xn)
            times[k].append(time.perf_counter() - t)
    return float(np.median(times[0]) / max(np.median(times[1]), 1e-9))


def try_int8(net: nn.Module, artifact: ModelArtifact, float_bytes: bytes, float_net, calibration: Sequence,
             held_out: Sequence, recipes: Sequence[Int8Recipe] = INT8_RECIPES) -> list[Int8Trial]:
    """Every recipe quantised, its parity against the float graph on `held_out` inputs and its speed against
    the float graph at the training size."""
    from masksmith.models.registry import get_model

    trials = []
    static_bytes = None
    h, w = artifact.input_size
    probe = torch.rand(1, 3, h, w) * 255
    for recipe in recipes:
        source = float_bytes
        if recipe.static_pads:
            if static_bytes is None:
                static_net, changed = static_same_padding(net, get_model(artifact.model["arch"]).divisor)
                static_bytes = export_network(static_net, artifact) if changed else b""
            if not static_bytes:
                continue  # no SAME padding to fix in this model: the same graph as without
            source = static_bytes
        try:
            data = quantize_int8(source, calibration, recipe)
            candidate = OnnxNetwork(data)
        except (AssertionError, RuntimeError, ValueError, MasksmithError) as exc:  # ORT's quantiser refused
            trials.append(Int8Trial(recipe, None, 0.0, error=f"{type(exc).__name__}: {str(exc)[:120]}"))
            continue
        trials.append(Int8Trial(recipe, parity(float_net, candidate, held_out),
                                relative_speed(float_net, candidate, probe), data))
    return trials


# ------------------------------------------------------------------------------------- Mask R-CNN (instance)
# The exported graph keeps detections scoring at least this (COCO's customary 0.05, what evaluation scores);
# the predictor drops those below its own threshold afterwards.
EXPORT_SCORE_THRESHOLD = 0.05
INSTANCE_INPUT, INSTANCE_OUTPUTS = "image", ["boxes", "labels", "scores", "masks"]
# detection parity: detections scoring at least this must match one to one (same class, box IoU >= 0.9), with
# mask IoU >= MASK_IOU and scores within SCORE_TOLERANCE; lower ones may differ in the last NMS decisions
PARITY_MIN_SCORE, MASK_IOU, SCORE_TOLERANCE = 0.1, 0.99, 0.01


def exportable_instance_network(net: nn.Module) -> nn.Module:
    """A copy of a Mask R-CNN ready for export: torchvision's RoIAlign (the ONNX RoiAlign operator, any image
    size) in place of our gather one (same numbers; its feature sizes would be traced as constants), and the
    export score threshold."""
    import copy

    from torchvision.ops import MultiScaleRoIAlign

    net = copy.deepcopy(net).eval()
    for name in ("box_roi_pool", "mask_roi_pool"):
        old = getattr(net.roi_heads, name)
        setattr(net.roi_heads, name, MultiScaleRoIAlign(old.featmap_names, old.output_size, old.sampling_ratio))
    net.roi_heads.score_thresh = EXPORT_SCORE_THRESHOLD
    return net


def export_instance_network(net: nn.Module, artifact: ModelArtifact) -> bytes:
    """A Mask R-CNN as ONNX bytes: input ``image`` (3, H, W) floats in [0, 1], H and W dynamic; outputs boxes,
    labels, scores and masks ((N, 1, H, W) probabilities), N dynamic; the artifact's metadata inside."""
    import onnx

    size = int(artifact.model.get("max_size", 512))
    sample = torch.rand(3, size * 3 // 4, size)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(exportable_instance_network(net), ([sample],), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[INSTANCE_INPUT], output_names=INSTANCE_OUTPUTS, do_constant_folding=True,
                          dynamic_axes={INSTANCE_INPUT: {1: "height", 2: "width"}, "boxes": {0: "objects"},
                                        "labels": {0: "objects"}, "scores": {0: "objects"},
                                        "masks": {0: "objects", 2: "height", 3: "width"}})
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata_json(artifact)
    model.producer_name = "masksmith"
    model.doc_string = (f"masksmith instance model (Mask R-CNN): input {INSTANCE_INPUT} (3, H, W) RGB floats 0-1; "
                        f"outputs {', '.join(INSTANCE_OUTPUTS)}; classes: {', '.join(artifact.classes)}")
    return model.SerializeToString()


def instance_sample_inputs(artifact: ModelArtifact, seed: int = 0) -> list[torch.Tensor]:
    """Smooth random images at two shapes (landscape at the model's size, a smaller portrait one), so parity
    is checked on dynamic sizes."""
    size = int(artifact.model.get("max_size", 512))
    g = torch.Generator().manual_seed(seed)
    out = []
    for h, w in ((size * 3 // 4, size), (size * 7 // 8, size * 5 // 8)):
        coarse = torch.rand(1, 3, max(2, h // 16), max(2, w // 16), generator=g)
        out.append(torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0])
    return out


@dataclass
class DetectionParity:
    """How close the exported Mask R-CNN's detections come to PyTorch's on the same images."""

    reference: int  # PyTorch's detections scoring at least PARITY_MIN_SCORE
    matched: int  # of those, found by the candidate (same class, box IoU >= 0.9)
    extra: int  # the candidate's detections at least PARITY_MIN_SCORE that match none
    max_box: float  # largest box coordinate difference (pixels) of matched pairs
    max_score: float  # largest score difference of matched pairs
    min_mask_iou: float  # smallest mask IoU (masks at 0.5) of matched pairs
    images: int

    def ok(self) -> bool:
        return (self.matched == self.reference and self.extra == 0 and self.min_mask_iou >= MASK_IOU
                and self.max_score <= SCORE_TOLERANCE)

    def describe(self) -> str:
        return (f"{self.matched} of {self.reference} detections (score >= {PARITY_MIN_SCORE}) matched on "
                f"{self.images} images, {self.extra} extra; boxes within {self.max_box:.3g} px, scores within "
                f"{self.max_score:.3g}, mask IoU >= {self.min_mask_iou:.4f}")


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, 4) x (m, 4) boxes (x0, y0, x1, y1) -> (n, m) IoU."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def detection_parity(reference, candidate, inputs: Sequence[torch.Tensor]) -> DetectionParity:
    """Match `candidate`'s detections to `reference`'s (torchvision-style callables on [image]) image by image."""
    total = matched = extra = 0
    max_box = max_score = 0.0
    min_iou = 1.0
    for x in inputs:
        with torch.no_grad():
            a, b = reference([x])[0], candidate([x])[0]
        ka = (a["scores"] >= PARITY_MIN_SCORE).numpy()
        kb = (b["scores"] >= PARITY_MIN_SCORE).numpy()
        boxes_a, boxes_b = a["boxes"].numpy()[ka], b["boxes"].numpy()[kb]
        labels_a, labels_b = a["labels"].numpy()[ka], b["labels"].numpy()[kb]
        scores_a, scores_b = a["scores"].numpy()[ka], b["scores"].numpy()[kb]
        masks_a, masks_b = a["masks"].numpy()[ka][:, 0] > 0.5, b["masks"].numpy()[kb][:, 0] > 0.5
        iou = _box_iou(boxes_a, boxes_b) if len(boxes_a) and len(boxes_b) else np.zeros((len(boxes_a), len(boxes_b)))
        iou[labels_a[:, None] != labels_b[None, :]] = 0
        used: set[int] = set()
        total += len(boxes_a)
        for i in np.argsort(-scores_a):
            order = [j for j in np.argsort(-iou[i]) if j not in used and iou[i, j] >= 0.9]
            if not order:
                continue
            j = order[0]
            used.add(j)
            matched += 1
            max_box = max(max_box, float(np.abs(boxes_a[i] - boxes_b[j]).max()))
            max_score = max(max_score, float(abs(scores_a[i] - scores_b[j])))
            union = np.logical_or(masks_a[i], masks_b[j]).sum()
            min_iou = min(min_iou, float(np.logical_and(masks_a[i], masks_b[j]).sum() / union) if union else 1.0)
        extra += len(boxes_b) - len(used)
    return DetectionParity(total, matched, extra, max_box, max_score, min_iou, len(inputs))


def measure_instance_speed(net: nn.Module, candidate, artifact: ModelArtifact, repeats: int = 3) -> dict:
    """Median milliseconds of PyTorch (at the predictor's default score threshold, 0.5) and of the exported
    graph (threshold EXPORT_SCORE_THRESHOLD inside, the rest dropped after) on one image at the model's size."""
    import time

    from masksmith.infer.runtime import default_threads

    size = int(artifact.model.get("max_size", 512))
    x = instance_sample_inputs(artifact)[0]
    own = net.roi_heads.score_thresh
    net.roi_heads.score_thresh = 0.5
    runs = {"torch": lambda: net([x]), "onnx": lambda: candidate([x])}
    times: dict[str, list[float]] = {k: [] for k in runs}
    try:
        with torch.no_grad():
            for f in runs.values():
                f()
            for _ in range(repeats):
                for name, f in runs.items():
                    t = time.perf_counter()
                    f()
                    times[name].append(time.perf_counter() - t)
    finally:
        net.roi_heads.score_thresh = own
    return {"size": f"{size}x{size * 3 // 4}", "threads": default_threads() or torch.get_num_threads(),
            **{f"{k}_ms": round(1000 * float(np.median(v)), 3) for k, v in times.items()}}


def export_instance(model_path: Path, artifact: ModelArtifact, folder, name: str) -> ExportReport:
    """Export a Mask R-CNN model: written only when detection parity holds (see DetectionParity.ok)."""
    from masksmith.infer.backend import file_digest

    net = build_network(artifact)
    data = export_instance_network(net, artifact)
    onnx_net = OnnxNetwork(data)
    own = net.roi_heads.score_thresh
    net.roi_heads.score_thresh = EXPORT_SCORE_THRESHOLD
    try:
        result = detection_parity(net, onnx_net, instance_sample_inputs(artifact))
    finally:
        net.roi_heads.score_thresh = own
    report = ExportReport(folder.path(name), result, result.ok())  # type: ignore[arg-type]
    if not report.ok:
        return report
    source = model_file(model_path)
    report.speed = measure_instance_speed(net, onnx_net, artifact)
    facts = {"source": source.name, "source_sha256": file_digest(source), "speed": report.speed,
             "parity": {"matched": result.matched, "reference": result.reference,
                        "min_mask_iou": result.min_mask_iou}}
    path = folder.write_bytes(name, with_facts(data, facts))
    report.graph = OnnxNetwork(path).graph
    return report


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
    speed: dict | None = None  # the network alone on both backends (measure_speed)
    graph: str | None = None  # where the optimised graph of the written file is cached
    int8_trials: list = field(default_factory=list)  # every INT8 recipe tried (Int8Trial)
    int8_recipe: Int8Recipe | None = None  # the one written
    int8_refusal: str | None = None  # why none was written, in one line

    def failure(self, model: str | Path) -> MasksmithError | None:
        """Why the export wrote nothing (None when the float file was written; an INT8 copy that does not pay
        or keep parity is not a failure: `int8_refusal` says why it was not written)."""
        if not self.ok:
            return MasksmithError(
                "ONNX parity check failed; nothing was written.", path=model,
                fix=f"report this with the model's architecture (the export checks {100 * FLOAT_EQUAL_SHARE:g} % "
                    f"equal pixels and logits within {100 * FLOAT_LOGIT_TOLERANCE:g} %; Mask R-CNN: every "
                    "detection matched, mask IoU >= 0.99).")
        return None


def default_onnx_path(model_path: Path) -> Path:
    if model_path.is_dir():
        return model_path / "model.onnx"
    return model_path.with_suffix(".onnx")


def export_onnx(model: str | Path, out: str | Path | None = None, *, int8: bool = False,
                calibrate: str | Path | None = None, calibration_images: int = 128, parity_images: int = 8,
                overwrite: bool = False, recipes: Sequence[Int8Recipe] = INT8_RECIPES,
                int8_min_gain: float | None = None) -> ExportReport:
    """Export a `.masksmith` model to ONNX; files are written only when parity holds. With `int8` (semantic
    models), every INT8 recipe is tried on the calibration photos and the fastest one that keeps parity and
    runs at least `int8_min_gain` (INT8_MIN_GAIN) times the float graph's speed is written beside it as
    `<name>.int8.onnx`; when none does, `int8_refusal` says why in one line."""
    int8_min_gain = INT8_MIN_GAIN if int8_min_gain is None else int8_min_gain
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder

    model_path = Path(model)
    artifact = load_artifact(model_path)
    if int8 and artifact.task != "semantic":
        raise OnnxError("INT8 export covers semantic models; a Mask R-CNN exports in float only.", path=model_path,
                        fix="export without `int8`.")
    if int8 and calibrate is None:
        raise MasksmithError("`int8` needs photos to calibrate on.", fix="give `calibrate` DATA (a folder of "
                             "training photos or the training data set).")
    out_path = Path(out) if out is not None else default_onnx_path(model_path)
    folder, name = OutputFolder.for_file(out_path, inputs=[model_path], overwrite=overwrite)
    int8_name = f"{Path(name).stem}.int8.onnx"
    for n in [name, *([int8_name] if int8 else [])]:
        folder.claim(n)  # refuse before minutes of work, not after
    if artifact.task == "instance":
        return export_instance(model_path, artifact, folder, name)

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
    from masksmith.infer.backend import file_digest

    source = model_file(model_path)
    report.speed = measure_speed(net, float_net, artifact.input_size)
    facts = {"source": source.name, "source_sha256": file_digest(source), "speed": report.speed,
             "parity": {"max_abs": result.max_abs, "equal_share": result.equal_share}}
    path = folder.write_bytes(name, with_facts(float_bytes, facts))
    report.graph = OnnxNetwork(path).graph  # optimised once now, so the first prediction finds it cached
    if int8:
        calib = photos[:-parity_images] if len(photos) > parity_images else photos
        held_out = photos[-parity_images:] if len(photos) > parity_images else photos
        if len(photos) <= parity_images:
            report.notes.append(f"only {len(photos)} calibration photo(s): INT8 parity is measured on the "
                                "photos it was calibrated on")
        report.calibrated_on = len(calib)
        report.int8_trials = try_int8(net, artifact, float_bytes, float_net,
                                      predictor_inputs(artifact, calib, calibration_images),
                                      predictor_inputs(artifact, held_out, parity_images), recipes)
        paying = sorted((t for t in report.int8_trials if t.pays(int8_min_gain)), key=lambda t: -t.speedup)
        report.int8_path = folder.path(int8_name)
        if paying:
            best = paying[0]
            report.int8_parity, report.int8_ok, report.int8_recipe = best.parity, True, best.recipe
            speed = {**report.speed, "onnx_ms": round(report.speed["onnx_ms"] / best.speedup, 3)}
            folder.write_bytes(int8_name, with_facts(best.data, {**facts, "speed": speed,
                                                                 "int8": {"recipe": best.recipe.name,
                                                                          "equal_share": best.parity.equal_share,
                                                                          "vs_float": best.speedup}}))
            OnnxNetwork(report.int8_path)  # its optimised graph cached now too
        else:
            report.int8_ok = False
            report.int8_refusal = int8_refusal(report.int8_trials, int8_min_gain)
    return report


def int8_refusal(trials: Sequence[Int8Trial], min_gain: float) -> str:
    """Why no INT8 graph was written, in one line."""
    if not trials:
        return "INT8 will not pay for this model: no quantisation recipe applies to it."
    made = [t for t in trials if t.error is None]
    if not made:
        return "INT8 will not pay for this model: onnxruntime could quantise it by none of the recipes."
    accurate = [t for t in made if t.parity.ok(INT8_EQUAL_SHARE)]
    if not accurate:
        best = max(made, key=lambda t: t.parity.equal_share)
        return (f"INT8 will not pay for this model: no recipe kept {100 * INT8_EQUAL_SHARE:.0f} % of the mask "
                f"pixels (best: {best.recipe.name}, {100 * best.parity.equal_share:.1f} %).")
    best = max(accurate, key=lambda t: t.speedup)
    return (f"INT8 will not pay for this model: the fastest accurate recipe ({best.recipe.name}) ran at "
            f"{best.speedup:.2f}x the float graph's speed, below the {min_gain:.2f}x worth an INT8 file "
            "(int8 kernels gain little on depthwise convolutions, which most of this encoder is).")


def onnx_bytes_for(artifact: ModelArtifact, net: nn.Module | None = None) -> bytes:
    """An in-memory export (for `--backend onnx` with a .masksmith file)."""
    exporter = export_instance_network if artifact.task == "instance" else export_network
    return exporter(net or build_network(artifact), artifact)

