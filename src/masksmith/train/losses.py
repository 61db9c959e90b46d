"""Losses by name. Multi-class: cross-entropy, Dice, focal and CE+Dice; binary: BCE, Dice, BCE+Dice, focal.
Dice and focal come from segmentation_models_pytorch; void pixels (255) are ignored everywhere."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from masksmith.data.schema import IGNORE_INDEX
from masksmith.errors import ModelError

MULTICLASS = ("ce", "dice", "ce+dice", "focal", "focal+dice")
BINARY = ("bce", "dice", "bce+dice", "focal", "focal+dice")


class SegmentationLoss(nn.Module):
    """Sum of named terms. logits (B, C, H, W); target (B, H, W) class indices with 255 = void."""

    def __init__(self, name: str, num_outputs: int, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        from segmentation_models_pytorch.losses import DiceLoss, FocalLoss

        self.name = name.lower().replace(" ", "")
        self.binary = num_outputs == 1
        allowed = BINARY if self.binary else MULTICLASS
        if self.name not in allowed:
            kind = "binary (one output)" if self.binary else "multi-class"
            raise ModelError(f"loss {name!r} does not fit a {kind} model.", fix=f"use one of: {', '.join(allowed)}.")
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        if weight is not None and not self.binary and len(weight) != num_outputs:
            raise ModelError(f"{len(weight)} class weights given for {num_outputs} classes (background first).",
                             fix="give one weight per class, background included.")
        self.register_buffer("weight", weight if weight is not None else torch.ones(0), persistent=False)
        mode = "binary" if self.binary else "multiclass"
        self.dice = DiceLoss(mode, from_logits=True, ignore_index=IGNORE_INDEX) if "dice" in self.name else None
        self.focal = FocalLoss(mode, ignore_index=IGNORE_INDEX) if "focal" in self.name else None

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        loss = logits.new_zeros(())
        if self.name.startswith("ce"):
            w = self.weight if self.weight.numel() else None
            loss = loss + F.cross_entropy(logits, target, weight=w, ignore_index=IGNORE_INDEX)
        if self.name.startswith("bce"):
            valid = (target != IGNORE_INDEX).float()
            pos = self.weight[0] if self.weight.numel() else None
            bce = F.binary_cross_entropy_with_logits(logits[:, 0], (target == 1).float(), reduction="none",
                                                     pos_weight=pos)
            loss = loss + (bce * valid).sum() / valid.sum().clamp_min(1)
        if self.focal is not None:
            loss = loss + self.focal(logits, target)
        if self.dice is not None:
            loss = loss + self.dice(logits, target)
        return loss
