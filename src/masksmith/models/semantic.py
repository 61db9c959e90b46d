"""Semantic segmentation networks: the baseline CNN and the FCN-8s head (ours), U-Net, FPN and DeepLabV3+
(segmentation_models_pytorch, with timm encoders through smp's `tu-` names).

Every model maps (B, 3, H, W) float images to (B, C, H, W) logits, C = number of classes + 1 (background),
or C = 1 for binary models trained with BCE. With `side_pairs`, left/right classes come from a part and a
shared side map (models/sides.py); the outputs are still one logit per class. Which models exist, and for
which task, is `models/registry.py`'s table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from masksmith.core.errors import ModelError
from masksmith.models.encoders import LITE0_TIMM_NAME, OFFLINE_WEIGHTS, resolve_encoder_weights
from masksmith.models.registry import get_model

DEFAULT_ENCODER = LITE0_TIMM_NAME


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model's architecture (weights travel separately, in the artifact)."""

    arch: str = "unet"
    num_outputs: int = 2
    encoder: str = DEFAULT_ENCODER
    encoder_weights: str | None = OFFLINE_WEIGHTS
    decoder_channels: list[int] | None = None
    # output indices of left/right class pairs (left first) predicted as a part and a side (models/sides.py)
    side_pairs: list[list[int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def smp_encoder_name(name: str) -> str:
    """smp's name for an encoder: its own encoders as they are, any other timm model as `tu-<name>`."""
    import segmentation_models_pytorch as smp

    if name.startswith("tu-") or name in smp.encoders.get_encoder_names():
        return name
    return f"tu-{name}"


class BaselineCNN(nn.Module):
    """Three 3x3 conv layers at full resolution: the classic first try, kept as a yardstick."""

    def __init__(self, num_outputs: int, width: int = 32) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, width // 2, 3, padding=1), nn.BatchNorm2d(width // 2), nn.ReLU(inplace=True),
            nn.Conv2d(width // 2, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, num_outputs, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class FCN(nn.Module):
    """FCN-8s (Long et al. 2015) on an smp encoder: 1x1 class scores at strides 32, 16 and 8, summed
    after upsampling, then upsampled to the input size."""

    def __init__(self, encoder: nn.Module, num_outputs: int) -> None:
        super().__init__()
        self.encoder = encoder
        channels = encoder.out_channels
        self.score32 = nn.Conv2d(channels[-1], num_outputs, 1)
        self.score16 = nn.Conv2d(channels[-2], num_outputs, 1)
        self.score8 = nn.Conv2d(channels[-3], num_outputs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        out = self.score32(features[-1])
        out = F.interpolate(out, size=features[-2].shape[-2:], mode="bilinear", align_corners=False)
        out = out + self.score16(features[-2])
        out = F.interpolate(out, size=features[-3].shape[-2:], mode="bilinear", align_corners=False)
        out = out + self.score8(features[-3])
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _build_baseline(config: ModelConfig, pretrained: bool) -> nn.Module:
    return BaselineCNN(config.num_outputs, width=int(config.extra.get("width", 32)))


def _smp_builder(smp_arch: str) -> Callable[[ModelConfig, bool], nn.Module]:
    def build(config: ModelConfig, pretrained: bool) -> nn.Module:
        from masksmith.models.encoders import create_smp_model

        kwargs: dict[str, Any] = {"in_channels": 3, "classes": config.num_outputs}
        if config.decoder_channels and smp_arch == "unet":
            kwargs["decoder_channels"] = list(config.decoder_channels)
        weights = config.encoder_weights if pretrained else None
        return create_smp_model(smp_arch, smp_encoder_name(config.encoder), weights, **kwargs)

    return build


def _build_fcn(config: ModelConfig, pretrained: bool) -> nn.Module:
    import segmentation_models_pytorch as smp

    name = smp_encoder_name(config.encoder)
    plan = resolve_encoder_weights(name, config.encoder_weights if pretrained else None)
    encoder = smp.encoders.get_encoder(name, in_channels=3, depth=5, weights=plan.smp_encoder_weights)
    plan.load_into(encoder)
    return FCN(encoder, config.num_outputs)


# the builders of the models the registry lists for the semantic task: (config, load pretrained weights) -> net
BUILDERS: dict[str, Callable[[ModelConfig, bool], nn.Module]] = {
    "baseline": _build_baseline, "unet": _smp_builder("unet"), "fcn": _build_fcn, "fpn": _smp_builder("fpn"),
    "deeplabv3plus": _smp_builder("deeplabv3plus"),
}


def build_model(config: ModelConfig, pretrained: bool = True) -> nn.Module:
    """The model for `config`; with `pretrained`, the encoder starts from `config.encoder_weights`."""
    spec = get_model(config.arch, "semantic")
    config.arch = spec.name
    build = BUILDERS[spec.name]
    if not config.side_pairs:
        return build(config, pretrained)
    from masksmith.models.sides import SideFactoredHead

    inner = replace(config, num_outputs=SideFactoredHead.inner_outputs(config.num_outputs, config.side_pairs))
    return SideFactoredHead(build(inner, pretrained), config.num_outputs, config.side_pairs)


def check_input_size(arch_name: str, height: int, width: int) -> None:
    """Raise a ModelError that says how to pad when (height, width) do not fit the architecture."""
    divisor = get_model(arch_name).divisor
    if height % divisor or width % divisor:
        ph, pw = -(-height // divisor) * divisor, -(-width // divisor) * divisor
        raise ModelError(f"input {width}x{height} does not fit {arch_name}: height and width must be multiples "
                         f"of {divisor}.", fix=f"pad your images to {pw}x{ph} (or set `size={max(ph, pw)}`).")


def pad_amount(arch_name: str, height: int, width: int) -> tuple[int, int]:
    """Bottom and right padding that makes (height, width) fit the architecture."""
    d = get_model(arch_name).divisor
    return (-height) % d, (-width) % d


class SegmentationNet(nn.Module):
    """A model with its preprocessing inside: takes RGB pixels as floats in [0, 255], normalises them the way
    the encoder's weights expect, returns logits. Training, prediction and the ONNX export all go through
    this, so preprocessing can never differ between them (the timm `resolve_data_config` idea)."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)))
        self.register_buffer("shift", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
                             / torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels * self.scale - self.shift)


def default_normalisation(config: ModelConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """mean and std for the encoder's weights: [-1, 1] inputs for the offline Lite0 weights, ImageNet
    statistics for hub weights, and [-1, 1] for random or baseline models."""
    from masksmith.models.encoders import PREPROCESS

    if config.encoder_weights == "imagenet" and get_model(config.arch).uses_encoder:
        return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return tuple(PREPROCESS["mean"]), tuple(PREPROCESS["std"])


def network_for(artifact: Any) -> nn.Module:
    """The network a semantic model file describes (its preprocessing inside), weights not yet loaded."""
    config = ModelConfig.from_dict(artifact.model)
    return SegmentationNet(build_model(config, pretrained=False), tuple(artifact.preprocessing["mean"]),
                           tuple(artifact.preprocessing["std"]))
