"""What a model file's network would cost, found before it is built: the network is built on PyTorch's meta
device (shapes only, no memory), its weights are compared with the file's tensor by tensor, and one image at the
model's input size is run through it, recording the largest activation. A model file is refused when
its description does not match its weights (a `decoder_channels` of 100000 would otherwise allocate the network
it describes before the weights are found not to fit), or when one image would need more memory than this
machine has free (docs/security.md).

The estimate for one image: the weights, plus ACTIVATION_FACTOR times the largest single activation (measured:
a no-grad forward of U-Net, DeepLabV3+ and the baseline at 1024 x 1024 peaked at 2.2 to 4.6 times it, with
skip connections and the input kept alive), plus, for Mask R-CNN, its heads: the RoI features of every proposal
and one float mask plane per detection at the network's input size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from masksmith.core import memory
from masksmith.core.errors import MasksmithError, ModelError

if TYPE_CHECKING:  # torch is imported where a network is built: an ONNX file's check runs without it
    import torch
    from torch import nn

ACTIVATION_FACTOR = 6
# when a network cannot run on the meta device: 128 float channels at full resolution (the baseline CNN's and
# the U-Net's widest full-resolution maps are 32; Mask R-CNN's FPN has 256 at a quarter of it)
FALLBACK_CHANNELS = 128


@dataclass
class Footprint:
    weights: int  # bytes of parameters and buffers
    activation: int  # bytes of the largest single activation for one image
    heads: int  # Mask R-CNN's heads and mask planes (0 for semantic models)
    height: int
    width: int
    field: str  # the model file's field that sets the input size

    @property
    def total(self) -> int:
        return self.weights + ACTIVATION_FACTOR * self.activation + self.heads


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _tensors(v)


def encoder_problem(model: dict[str, Any]) -> str | None:
    """An encoder name neither smp nor timm knows (building it would fail deep inside timm)."""
    import segmentation_models_pytorch as smp
    import timm

    name = model.get("encoder", "tf_efficientnet_lite0")
    if name in smp.encoders.get_encoder_names() or timm.is_model(name.removeprefix("tu-")):
        return None
    return f"model encoder {name!r} is not an encoder smp or timm knows"


def meta_network(artifact: Any) -> nn.Module:
    """The network `artifact` describes, on the meta device: every shape, no memory, no weights."""
    import torch

    from masksmith.models.registry import get_model

    spec = get_model(str(artifact.model.get("arch", "")), artifact.task)
    if artifact.task == "semantic" and spec.uses_encoder:
        problem = encoder_problem(artifact.model)
        if problem:
            raise ModelError(f"{problem}.", fix="use the model file that `masksmith train` wrote, or train again.")
    try:
        with torch.device("meta"):
            return spec.build(artifact).eval()
    except MasksmithError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever smp, timm or torchvision say about the description
        raise ModelError(f"model cannot be built as described ({type(exc).__name__}: {str(exc)[:200]}).",
                         fix="use the model file that `masksmith train` wrote, or train again.") from None


def weights_problem(net: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    """Whether the file's weights are exactly the tensors of the network it describes (names and shapes)."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensor(s) of the described network are missing (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} tensor(s) are not in it (first: {unexpected[0][:80]})")
        return "weights do not fit the described architecture: " + "; ".join(parts)
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            return (f"weights do not fit the described architecture: {key} is {tuple(state[key].shape)} in the "
                    f"file, {tuple(tensor.shape)} in the network the model field describes")
    return None


def _peak_activation(module: nn.Module, pixels: torch.Tensor) -> int | None:
    """Bytes of the largest tensor any module outputs for `pixels` (on the meta device), or None when the
    network cannot run there."""
    import torch

    peak = pixels.numel() * pixels.element_size()

    def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal peak
        for t in _tensors(output):
            peak = max(peak, t.numel() * t.element_size())

    handles = [m.register_forward_hook(record) for m in module.modules()]
    try:
        with torch.no_grad():
            module(pixels)
    except Exception:  # noqa: BLE001 - an op without a meta kernel: the caller falls back to a fixed estimate
        return None
    finally:
        for h in handles:
            h.remove()
    return peak


def network_footprint(artifact: Any, net: nn.Module | None = None, weight_bytes: int | None = None) -> Footprint:
    """The memory one image through `artifact`'s network would take (see the module's notes). With
    `weight_bytes` (an ONNX file: its weights are in the graph) nothing is built and the largest activation is
    the fixed estimate, FALLBACK_CHANNELS float channels at the input size."""
    from masksmith.models.registry import get_model

    divisor = get_model(str(artifact.model.get("arch", "")), artifact.task).divisor
    heads = 0
    if artifact.task == "instance":
        side = int(artifact.model.get("max_size") or 512)
        h = w = -(-side // divisor) * divisor
        field = "model max_size"
        m = artifact.model
        detections = int(m.get("detections_per_image") or 100)
        proposals = int(m.get("rpn_post_nms_top_n_test") or 1000)
        channels = int(m.get("fpn_channels") or 256)
        heads = 4 * (detections * h * w  # one float mask plane per detection
                     + proposals * channels * 7 * 7  # RoI-aligned box features
                     + 2 * proposals * int(m.get("box_representation") or 1024)
                     + 2 * detections * max(channels, int(m.get("mask_head_channels") or 256)) * 28 * 28)
    else:
        ih, iw = artifact.input_size
        h, w = -(-ih // divisor) * divisor, -(-iw // divisor) * divisor
        field = "preprocessing size"
    activation = None
    if weight_bytes is None:
        import torch

        net = net if net is not None else meta_network(artifact)
        weight_bytes = sum(t.numel() * t.element_size() for t in net.state_dict().values())
        body = net.backbone if artifact.task == "instance" else net
        activation = _peak_activation(body, torch.empty(1, 3, h, w, device="meta"))
    if activation is None:
        activation = 4 * FALLBACK_CHANNELS * h * w
    return Footprint(weight_bytes, activation, heads, h, w, field)


def footprint_problem(artifact: Any, available: int | None = None, *, weights: bool = True,
                      weight_bytes: int | None = None) -> str | None:
    """Why `artifact`'s network cannot be built here (with `weights`, weights that do not fit its description;
    one image needing more than the memory free now, or `available` bytes), or None. An ONNX file's artifact
    has its weights in the graph: `weights=False` and `weight_bytes`, the graph's size (nothing is built)."""
    net = None
    if weight_bytes is None:
        net = meta_network(artifact)
        if weights:
            problem = weights_problem(net, artifact.state_dict)
            if problem:
                return problem
    fp = network_footprint(artifact, net, weight_bytes)
    free = memory.available_memory() if available is None else available
    if free is not None and fp.total > free:
        return (f"one image through this network at its input size ({fp.field}: {fp.width}x{fp.height}) needs "
                f"about {_gb(fp.total)} (weights {_gb(fp.weights)}, {ACTIVATION_FACTOR} x its largest activation of "
                f"{_gb(fp.activation)}" + (f", heads and masks {_gb(fp.heads)}" if fp.heads else "")
                + f"), more than the {_gb(free)} this machine has free")
    return None


def check_footprint(artifact: Any, available: int | None = None, *, weights: bool = True,
                    weight_bytes: int | None = None) -> None:
    """ModelError naming the problem when `footprint_problem` finds one."""
    problem = footprint_problem(artifact, available, weights=weights, weight_bytes=weight_bytes)
    if problem:
        fix = ("train it again at a smaller `size`, or free memory." if "needs about" in problem
               else "use the model file that `masksmith train` wrote, or train again.")
        raise ModelError(f"{problem}.", fix=fix)
