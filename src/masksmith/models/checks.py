"""What a model file may contain: the type and range of every field that masksmith reads from a `.masksmith`
file or from an exported `.onnx` file's metadata, checked before anything is built or allocated.

A model file is untrusted input: it may come from anyone. `models/artifact.py` runs these checks on every file
it opens (and `infer/runtime.py` on ONNX metadata, through the same `artifact_problem`); each returns the first
problem as one phrase naming the field, or None. The bounds are fixed caps, each with its reason below; what
one image through the network would cost at the input size is then measured against the memory this machine
has (models/footprint.py). docs/security.md lists both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from masksmith.core.labels import MAX_CLASSES  # 254: class values fit a uint8 mask beside 0 and void 255

# --------------------------------------------------------------------------------------------------- bounds
MAX_INPUT_SIDE = 8192  # the largest training `size` TrainConfig takes
# U-Net decoder widths: smp's default is 256-128-64-32-16, masksmith's 128-64-32-16-16; 1024 is four times
# the widest default, and five blocks of 1024 already hold about 100 million weights
MAX_DECODER_CHANNELS = 1024
DECODER_BLOCKS = 5  # smp's U-Net has one decoder block per encoder stage (depth 5)
MAX_BASELINE_WIDTH = 512  # the baseline CNN's width: 32 by default; it runs at full resolution
# Mask R-CNN: torchvision's own values are 256 FPN / mask-head channels, 1024 box features, 4 mask-head layers,
# 1000 RoIs after NMS and 100 detections; masksmith's Lite0 uses 128 / 128 / 512 / 4 / 500 / 100
INSTANCE_WHOLE = {
    "min_size": (16, MAX_INPUT_SIDE, "the shorter side the photo is resized to"),
    "max_size": (16, MAX_INPUT_SIDE, "the longer side's limit"),
    "box_batch_size_per_image": (1, 4096, "RoIs sampled per image in training (torchvision: 512)"),
    "rpn_pre_nms_top_n_test": (1, 10_000, "proposals per level before NMS (torchvision: 1000)"),
    "rpn_post_nms_top_n_test": (1, 10_000, "proposals kept after NMS (torchvision: 1000)"),
    "detections_per_image": (1, 1000, "objects kept per photo (torchvision: 100), each a mask plane"),
    "fpn_channels": (8, 1024, "FPN width (torchvision: 256)"),
    "mask_head_channels": (8, 1024, "mask-head width (torchvision: 256)"),
    "mask_head_layers": (1, 16, "mask-head convolutions (torchvision: 4)"),
    "box_representation": (8, 4096, "box-head features (torchvision: 1024)"),
}
FPN_LEVELS = 5  # both instance backbones give four feature maps and a pooled one: one anchor size each
MAX_TEXT = 4096  # an encoder weights name or path, a data format name
ENCODER_NAME = re.compile(r"(tu-)?[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")  # timm / smp names, with timm's tags
# load_dataset's own parameters: a reading option of the same name would collide with them
LOADER_PARAMETERS = frozenset({"path", "format", "strict", "need_pixels"})
OPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_OPTION_DEPTH = 4  # reading options are scalars, lists of names, or {name: colour} maps


def whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def shown(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


# ----------------------------------------------------------------------------------------------- semantic
def semantic_model_problem(model: Mapping[str, Any], classes: int) -> str | None:
    """What is wrong with a semantic model's architecture dict (ModelConfig.to_dict()), or None."""
    from masksmith.models.registry import find_model, models_for

    arch = model.get("arch")
    spec = find_model(arch) if isinstance(arch, str) and len(arch) <= 64 else None
    if spec is None or spec.task != "semantic":
        return f"model arch {shown(arch)} is not one of {', '.join(models_for('semantic'))}"
    n = model.get("num_outputs")
    allowed = [classes + 1] + ([1] if classes == 1 else [])
    if not whole(n, 1, MAX_CLASSES + 1) or n not in allowed:
        binary = " (or 1, a binary model)" if classes == 1 else ""
        return f"model num_outputs is {shown(n)}; with {classes} classes it must be {classes + 1}{binary}"
    encoder = model.get("encoder", "tf_efficientnet_lite0")
    if not isinstance(encoder, str) or not ENCODER_NAME.fullmatch(encoder):
        return f"model encoder {shown(encoder)} is not an encoder name (letters, digits, _ . -)"
    weights = model.get("encoder_weights")
    if weights is not None and not (isinstance(weights, str) and len(weights) <= MAX_TEXT):
        return f"model encoder_weights {shown(weights)} must be a name, a file or None"
    channels = model.get("decoder_channels")
    if channels is not None and not (isinstance(channels, list) and len(channels) == DECODER_BLOCKS
                                     and all(whole(c, 1, MAX_DECODER_CHANNELS) for c in channels)):
        return (f"model decoder_channels is {shown(channels)}; it must be {DECODER_BLOCKS} whole numbers of 1 to "
                f"{MAX_DECODER_CHANNELS} (or None)")
    problem = side_pairs_problem(model.get("side_pairs"), n)
    if problem:
        return problem
    extra = model.get("extra", {})
    if not isinstance(extra, dict):
        return f"model extra is a {type(extra).__name__}, not a mapping"
    if "width" in extra and not whole(extra["width"], 2, MAX_BASELINE_WIDTH):
        return f"model extra width is {shown(extra['width'])}; it must be a whole number of 2 to {MAX_BASELINE_WIDTH}"
    return None


def side_pairs_problem(pairs: Any, num_outputs: int) -> str | None:
    """Left/right output pairs (models/sides.py): each two distinct class outputs, each output in one pair."""
    if pairs is None or pairs == []:
        return None
    if not isinstance(pairs, list) or num_outputs < 3:
        return f"model side_pairs {shown(pairs)} must be a list of [left, right] outputs of a multi-class model"
    seen: set[int] = set()
    for pair in pairs:
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(whole(v, 1, num_outputs - 1) for v in pair)
                and pair[0] != pair[1] and not seen & set(pair)):
            return (f"model side_pairs holds {shown(pair)}; each pair must be two distinct outputs of 1 to "
                    f"{num_outputs - 1}, each in one pair only")
        seen |= set(pair)
    return None


# ----------------------------------------------------------------------------------------------- instance
def instance_model_problem(model: Mapping[str, Any]) -> str | None:
    """What is wrong with a Mask R-CNN architecture dict (models/instance.py's `instance_model_config`), or None.
    Missing keys (and None) take the defaults, as `build_instance_model` does; keys it does not read are
    ignored."""
    from masksmith.models.registry import find_model, models_for

    arch = model.get("arch")
    spec = find_model(arch) if isinstance(arch, str) and len(arch) <= 64 else None
    if spec is None or spec.task != "instance":
        return f"model arch {shown(arch)} is not one of {', '.join(models_for('instance'))}"
    for key, (low, high, _) in INSTANCE_WHOLE.items():
        value = model.get(key)
        if value is not None and not whole(value, low, high):
            return f"model {key} is {shown(value)}; it must be a whole number of {low} to {high}"
    low, high = model.get("min_size"), model.get("max_size")
    if low is not None and high is not None and low > high:
        return f"model min_size {low} is above max_size {high}"
    anchors = model.get("anchor_sizes")
    if anchors is not None and not (isinstance(anchors, list) and len(anchors) == FPN_LEVELS
                                    and all(whole(a, 1, MAX_INPUT_SIDE) for a in anchors)):
        return (f"model anchor_sizes is {shown(anchors)}; it must be {FPN_LEVELS} whole numbers of 1 to "
                f"{MAX_INPUT_SIDE}, one per FPN level")
    weights = model.get("weights")
    if weights is not None and not (isinstance(weights, str) and len(weights) <= MAX_TEXT):
        return f"model weights {shown(weights)} must be a name, a file or None"
    frozen = model.get("frozen_bn")
    if frozen is not None and not isinstance(frozen, bool):
        return f"model frozen_bn is {shown(frozen)}; it must be true or false"
    return None


# -------------------------------------------------------------------------------------------- other fields
def preprocessing_problem(p: Any) -> str | None:
    """mean, std, size, input_mode and its scale or max_size."""
    if not isinstance(p, dict):
        return f"preprocessing is a {type(p).__name__}, not a mapping"
    for key in ("mean", "std"):
        v = p.get(key)
        if not (isinstance(v, list) and len(v) == 3 and all(finite(x) for x in v)):
            return f"preprocessing {key} must be three numbers, not {shown(v)}"
    if not all(0 < x <= 255 for x in p["std"]):
        return f"preprocessing std {p['std']} must be above 0 (and at most 255)"
    if not all(abs(x) <= 255 for x in p["mean"]):
        return f"preprocessing mean {p['mean']} must be numbers of -255 to 255"
    size = p.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(whole(v, 1, 1 << 62) for v in size)):
        return f"preprocessing size must be [height, width] in whole pixels, not {shown(size)}"
    if max(size) > MAX_INPUT_SIDE:
        return (f"preprocessing asks for {size[1]}x{size[0]} inputs, more than the {MAX_INPUT_SIDE}x"
                f"{MAX_INPUT_SIDE} masksmith trains at")
    mode = p.get("input_mode", "resize")
    modes = ("resize", "scale", "instance")
    if mode not in modes:
        return f"preprocessing input_mode {shown(mode)} is not one of {', '.join(modes)}"
    if mode == "scale" and not (finite(p.get("scale")) and 0 < p["scale"] <= 1):
        return f"preprocessing scale {shown(p.get('scale'))} must be a number above 0 and at most 1"
    if "max_size" in p and not whole(p["max_size"], 1, MAX_INPUT_SIDE):
        return f"preprocessing max_size {shown(p['max_size'])} must be a whole number of 1 to {MAX_INPUT_SIDE}"
    return None


def _plain(value: Any, depth: int = 0) -> bool:
    """A JSON-like value (what a reading option may be)."""
    if value is None or isinstance(value, str | bool) or finite(value):
        return True
    if depth >= MAX_OPTION_DEPTH:
        return False
    if isinstance(value, list | tuple):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str | int) and _plain(v, depth + 1) for k, v in value.items())
    return False


def training_problem(t: Any) -> str | None:
    """The training record: what evaluation and the report read from it (the reading options the model was
    trained with, its format, epoch and reason); the rest is shown, never used."""
    if not isinstance(t, dict):
        return f"training is a {type(t).__name__}, not a mapping"
    options = t.get("data_options") or {}
    if not isinstance(options, dict):
        return f"training data_options is a {type(options).__name__}, not a mapping"
    for key, value in options.items():
        if not isinstance(key, str) or not OPTION_NAME.fullmatch(key) or key in LOADER_PARAMETERS:
            return f"training data_options has {shown(key)}, which is not a reading option's name"
        if not _plain(value):
            return f"training data_options {key} is {shown(value)}, not plain data"
    fmt = t.get("data_format")
    if fmt is not None and not (isinstance(fmt, str) and len(fmt) <= MAX_TEXT):
        return f"training data_format {shown(fmt)} must be a format name"
    if "epoch" in t and not whole(t["epoch"], 0, 1 << 31):
        return f"training epoch is {shown(t['epoch'])}; it must be a whole number"
    if "reason" in t and not (isinstance(t["reason"], str) and len(t["reason"]) <= MAX_TEXT):
        return f"training reason {shown(t['reason'])} must be a word"
    return None
