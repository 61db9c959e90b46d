"""Instance segmentation networks: torchvision Mask R-CNN on two backbones.

- ``maskrcnn_lite0``: timm ``tf_efficientnet_lite0`` (features at strides 4, 8, 16 and 32) with the offline
  ImageNet weights, a 128-channel FPN and a light 4 x 128 mask head. CPU-practical: it trains in minutes.
- ``maskrcnn_resnet50_fpn``: torchvision's classic model. It starts from scratch, or from a COCO Mask R-CNN
  state dict the user supplies (torchvision's ``maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth``); the class-specific
  heads are then re-initialised for our classes and everything else is loaded.

Every model takes a list of (3, H, W) float images in [0, 1] and normalises them itself (``image_mean`` /
``image_std`` of Mask R-CNN's transform), so callers never normalise. The architecture is described by a
plain dict (stored as ``ModelArtifact.model``); its structure depends only on that dict, never on whether
weights are loaded, so a model file always rebuilds the network it was saved from.
"""

from __future__ import annotations

import contextlib
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from masksmith.core.errors import ModelError
from masksmith.models.checks import instance_model_problem
from masksmith.models.encoders import (
    LITE0_TIMM_NAME,
    OFFLINE_WEIGHTS,
    PREPROCESS,
    early_encoder_modules,
    freeze_modules,
)
from masksmith.models.registry import get_model
from masksmith.models.roi_align import use_gather_roi_align

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_MAX_SIZE = 512
CONFIG_FIX = "use a model file that masksmith train wrote, or model options within these ranges."
# class-specific tensors of a COCO Mask R-CNN: they have 91 classes there, so they are re-initialised
HEAD_PREFIXES = (
    "roi_heads.box_predictor.cls_score.",
    "roi_heads.box_predictor.bbox_pred.",
    "roi_heads.mask_predictor.mask_fcn_logits.",
)
# torchvision renamed some modules in 0.8-0.13; the published COCO file (2019) still has the old names
_OLD_NAMES = [
    (re.compile(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$"),
     lambda m: f"roi_heads.mask_head.{int(m[1]) - 1}.0.{m[2]}"),
    (re.compile(r"^rpn\.head\.conv\.(weight|bias)$"), lambda m: f"rpn.head.conv.0.0.{m[1]}"),
    (re.compile(r"^backbone\.fpn\.(inner|layer)_blocks\.(\d+)\.(weight|bias)$"),
     lambda m: f"backbone.fpn.{m[1]}_blocks.{m[2]}.0.{m[3]}"),
]


def default_anchor_sizes(max_size: int) -> list[int]:
    """One anchor size per FPN level. torchvision's 32..512 suit COCO at 800-1333 px; at the few hundred
    pixels a CPU can afford, objects are 2-3x smaller, so the anchors are halved."""
    return [16, 32, 64, 128, 256] if max_size <= 640 else [32, 64, 128, 256, 512]


def instance_model_config(arch: str, max_size: int = DEFAULT_MAX_SIZE, min_size: int | None = None,
                          weights: str | None = OFFLINE_WEIGHTS, **extra: Any) -> dict[str, Any]:
    """A complete architecture dict for `arch` (what `build_instance_model` takes and the model file keeps).

    `weights`: for ``maskrcnn_lite0`` ``"imagenet-offline"`` (default), None (random) or an encoder checkpoint
    file; for ``maskrcnn_resnet50_fpn`` None or a COCO Mask R-CNN ``.pth`` file (``"imagenet-offline"`` means
    None there: there are no offline ResNet weights). Images are resized so that their shorter side is
    `min_size` (default `max_size`) unless the longer side would exceed `max_size`.
    """
    arch = check_instance_arch(arch)
    if arch == "maskrcnn_resnet50_fpn" and weights == OFFLINE_WEIGHTS:
        weights = None
    frozen = weights is not None  # frozen BatchNorm only makes sense on top of pretrained statistics
    config: dict[str, Any] = {
        "arch": arch,
        "min_size": int(min_size or max_size),
        "max_size": int(max_size),
        "weights": str(weights) if weights is not None else None,
        "frozen_bn": frozen,
        "anchor_sizes": default_anchor_sizes(int(max_size)),
        # RoIs sampled per image for the box and mask heads: torchvision's 512 is for COCO's crowded scenes;
        # 128 (Detectron2's own advice for small data sets) makes a CPU step about a quarter cheaper
        "box_batch_size_per_image": 128,
        "rpn_pre_nms_top_n_test": 1000,
        "rpn_post_nms_top_n_test": 500,
        "detections_per_image": 100,
    }
    if arch == "maskrcnn_lite0":
        config |= {"fpn_channels": 128, "mask_head_channels": 128, "mask_head_layers": 4,
                   "box_representation": 512}
    config.update(extra)
    return config


def check_instance_arch(arch: str) -> str:
    """The registry's name of instance model `arch` (ModelError when it is not one)."""
    return get_model(arch, "instance").name


def instance_normalisation(config: Mapping[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """mean and std the network applies to [0, 1] pixels: [-1, 1] for Lite0 (its TF weights were trained so),
    ImageNet statistics for ResNet-50 (torchvision's COCO weights)."""
    if config["arch"] == "maskrcnn_lite0":
        return tuple(PREPROCESS["mean"]), tuple(PREPROCESS["std"])
    return IMAGENET_MEAN, IMAGENET_STD


def build_instance_model(config: Mapping[str, Any], num_classes: int, pretrained: bool) -> nn.Module:
    """A torchvision ``MaskRCNN`` for `num_classes` object classes (background is added: K + 1 outputs).

    `config` is an architecture dict (see :func:`instance_model_config`; missing keys take its defaults).
    With `pretrained`, ``config["weights"]`` is loaded; otherwise the weights are left random (a model file or
    a checkpoint is about to be loaded into it).
    """
    if num_classes < 1:
        raise ModelError("an instance model needs at least one object class.",
                         fix="annotate at least one class of objects.")
    arch = check_instance_arch(str(config.get("arch", "")))
    problem = instance_model_problem(config)
    if problem:
        raise ModelError(f"{problem}.", fix=CONFIG_FIX)
    full = instance_model_config(arch, int(config.get("max_size") or DEFAULT_MAX_SIZE), config.get("min_size"),
                                 config.get("weights", OFFLINE_WEIGHTS if arch == "maskrcnn_lite0" else None))
    full.update({k: v for k, v in config.items() if v is not None or k == "weights"})
    problem = instance_model_problem(full)  # before anything is built: every size and count in range
    if problem:
        raise ModelError(f"{problem}.", fix=CONFIG_FIX)
    if pretrained:
        check_weights(arch, full.get("weights"))
    if arch == "maskrcnn_lite0":
        return _build_lite0(full, num_classes, pretrained)
    return _build_resnet50(full, num_classes, pretrained)


def check_weights(arch: str, weights: str | None) -> None:
    """ModelError, before anything is built, for weights that cannot be had for `arch`."""
    if weights is None or (arch == "maskrcnn_lite0" and weights == OFFLINE_WEIGHTS):
        return
    from masksmith.models.encoders import CHECKPOINT_SUFFIXES

    kind = "a COCO Mask R-CNN state dict" if arch == "maskrcnn_resnet50_fpn" else "a Lite0 encoder checkpoint"
    choices = (f"'{OFFLINE_WEIGHTS}', " if arch == "maskrcnn_lite0" else "") + f"none, or {kind} (.pth)"
    path = Path(weights)
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise ModelError(f"{arch} cannot start from weights {weights!r} (nothing is downloaded).", item=arch,
                         fix=f"use {choices}.")
    if not path.is_file():
        raise ModelError("the weights file does not exist.", path=path, fix=f"check the path, or use {choices}.")


def _common_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    sizes = tuple((int(s),) for s in config["anchor_sizes"])
    mean, std = instance_normalisation(config)
    return {
        "min_size": int(config["min_size"]),
        "max_size": int(config["max_size"]),
        "image_mean": list(mean),
        "image_std": list(std),
        "rpn_anchor_generator": AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes)),
        "box_batch_size_per_image": int(config["box_batch_size_per_image"]),
        "rpn_pre_nms_top_n_test": int(config["rpn_pre_nms_top_n_test"]),
        "rpn_post_nms_top_n_test": int(config["rpn_post_nms_top_n_test"]),
        "box_detections_per_img": int(config["detections_per_image"]),
    }


# --------------------------------------------------------------------------------------------- Lite0 + FPN
class TimmFPNBackbone(nn.Module):
    """A timm ``features_only`` body and a torchvision FPN, shaped like torchvision's ``BackboneWithFPN``:
    returns an OrderedDict of feature maps ``"0".."3"`` plus ``"pool"`` and has ``out_channels``."""

    def __init__(self, body: nn.Module, out_channels: int) -> None:
        super().__init__()
        from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

        self.body = body
        self.fpn = FeaturePyramidNetwork(list(body.feature_info.channels()), out_channels,
                                         extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels
        # bf16 autocast for the convolutions here only (set by the trainer where the CPU has bf16 units): the
        # backbone and FPN are most of the arithmetic, while the detection heads (box decoding, RoIAlign,
        # losses) turn NaN in bf16 within a few hundred steps, so they keep float32 features
        self.autocast_dtype: torch.dtype | None = None

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        dtype = self.autocast_dtype
        # no autocast context at all when it is off: the memory estimate runs this on the meta device
        with torch.autocast(x.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
            features = self.body(x)
            out = self.fpn(OrderedDict((str(i), f) for i, f in enumerate(features)))
        return OrderedDict((k, v.float()) for k, v in out.items())


def _lite0_body(config: Mapping[str, Any], pretrained: bool) -> nn.Module:
    import timm
    from timm.layers import freeze_batch_norm_2d

    # strides 4, 8, 16, 32 (24, 40, 112, 320 channels): the FPN levels Mask R-CNN's RoI pooling expects
    body = timm.create_model(LITE0_TIMM_NAME, pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
    weights = config.get("weights")
    if pretrained and weights is not None:
        if weights == OFFLINE_WEIGHTS:
            from masksmith.models.encoders import load_lite0_into_timm

            load_lite0_into_timm(body)
        else:
            from masksmith.models.encoders import load_checkpoint_into_encoder

            load_checkpoint_into_encoder(body, Path(weights))
    if config.get("frozen_bn"):
        # batches of 2-8 images give useless BatchNorm statistics; keep ImageNet's, and keep the low-level
        # stride-2/4 stages as they are (the Detectron2 / torchvision fine-tuning recipe)
        body = freeze_batch_norm_2d(body)
        freeze_modules(early_encoder_modules(body, 2) or [])
    return body


def init_predictors(model: nn.Module) -> nn.Module:
    """Detectron2's initialisation of the class-specific layers: small normal weights, zero biases.

    torchvision's defaults (kaiming for the mask logits) start the mask loss near 9 instead of ln 2 on the
    Lite0 features, and the first SGD steps at lr 0.01 then diverge; with these the losses start where they
    should (about ln(K + 1) + ln 2 + ...) and fall."""
    predictor = model.roi_heads.box_predictor
    for layer, std in ((predictor.cls_score, 0.01), (predictor.bbox_pred, 0.001),
                       (model.roi_heads.mask_predictor.mask_fcn_logits, 0.001)):
        nn.init.normal_(layer.weight, std=std)
        nn.init.zeros_(layer.bias)
    return model


def _build_lite0(config: Mapping[str, Any], num_classes: int, pretrained: bool) -> nn.Module:
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

    channels = int(config["fpn_channels"])
    backbone = TimmFPNBackbone(_lite0_body(config, pretrained), channels)
    rep = int(config["box_representation"])
    mask_ch = int(config["mask_head_channels"])
    return use_gather_roi_align(init_predictors(MaskRCNN(
        backbone,
        num_classes=None,  # the predictors below carry K + 1
        box_head=TwoMLPHead(channels * 7 * 7, rep),
        box_predictor=FastRCNNPredictor(rep, num_classes + 1),
        mask_head=MaskRCNNHeads(channels, [mask_ch] * int(config["mask_head_layers"]), 1),
        mask_predictor=MaskRCNNPredictor(mask_ch, mask_ch, num_classes + 1),
        **_common_kwargs(config),
    )))


# ------------------------------------------------------------------------------------------- ResNet-50 FPN
def _build_resnet50(config: Mapping[str, Any], num_classes: int, pretrained: bool) -> nn.Module:
    from timm.layers import freeze_batch_norm_2d
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    model = use_gather_roi_align(init_predictors(maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=num_classes + 1, **_common_kwargs(config))))
    if config.get("frozen_bn"):
        # what torchvision does when it starts from pretrained weights (trainable_backbone_layers=3)
        model.backbone.body = freeze_batch_norm_2d(model.backbone.body)
        freeze_modules(early_encoder_modules(model.backbone.body, 2) or [])
    weights = config.get("weights")
    if pretrained and weights is not None:
        load_coco_maskrcnn_weights(model, Path(weights))
    return model


def load_coco_maskrcnn_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Load a COCO Mask R-CNN ResNet-50 FPN state dict into `model`, except the class-specific heads (box
    classifier, box regressor, mask logits), which keep their fresh initialisation for our classes.

    Every other tensor of the model must be in the file with the same shape, else ModelError naming the file
    (nothing is loaded). Returns the names of the re-initialised tensors.
    """
    from masksmith.models.encoders import _read_checkpoint

    path = Path(path)
    data = _read_checkpoint(path)
    data = modernise_keys(data)
    target = model.state_dict()
    heads = [k for k in target if k.startswith(HEAD_PREFIXES)]
    wanted = [k for k in target if not k.startswith(HEAD_PREFIXES)]
    missing = [k for k in wanted if k not in data]
    wrong = [f"{k} {tuple(data[k].shape)} vs model {tuple(target[k].shape)}" for k in wanted
             if k in data and data[k].shape != target[k].shape]
    if missing or wrong:
        problem = []
        if missing:
            problem.append(f"{len(missing)} of {len(wanted)} tensors are missing (first: {', '.join(missing[:4])})")
        if wrong:
            problem.append(f"shape differs for {', '.join(wrong[:4])}")
        raise ModelError(
            "does not fit maskrcnn_resnet50_fpn: " + "; ".join(problem) + ".", path=path,
            fix="pass the COCO Mask R-CNN state dict torchvision publishes (maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth, "
                "not the _v2 one), or leave the weights out to train from scratch.")
    model.load_state_dict({k: data[k] for k in wanted}, strict=False)
    return heads


def modernise_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Today's torchvision names for a Mask R-CNN state dict saved with the old ones (what torchvision's own
    `_load_from_state_dict` hooks do, done up front so that the file can be checked before anything loads)."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        for pattern, replace in _OLD_NAMES:
            m = pattern.match(key)
            if m:
                key = replace(m)
                break
        out[key] = value
    return out


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all, trainable) parameter counts."""
    return sum(p.numel() for p in model.parameters()), sum(p.numel() for p in trainable_parameters(model))


def as_float_image(image: Any) -> Tensor:
    """(H, W, 3) uint8 array or (3, H, W) uint8 tensor -> (3, H, W) float in [0, 1], what the models take."""
    t = image if isinstance(image, Tensor) else torch.from_numpy(np.array(image))  # a writable copy
    if t.ndim == 3 and t.shape[-1] == 3 and t.shape[0] != 3:
        t = t.permute(2, 0, 1)
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()


def network_for(artifact: Any) -> nn.Module:
    """The Mask R-CNN a model file describes, weights not yet loaded."""
    return build_instance_model(artifact.model, len(artifact.class_map), pretrained=False)
