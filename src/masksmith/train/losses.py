"""Losses by name. Multi-class: cross-entropy, Dice, focal and CE+Dice; binary: BCE, Dice, BCE+Dice, focal.
Focal and binary Dice come from segmentation_models_pytorch; multi-class Dice is computed here (the same value
and gradient as smp's DiceLoss, see tests) because smp builds a one-hot copy of the target and takes three
products over it, which made the loss ~12 % of a CPU training step; void pixels (255) are ignored everywhere."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from masksmith.core.errors import ModelError
from masksmith.core.labels import IGNORE_INDEX

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
        self.dice = None
        if "dice" in self.name:
            self.dice = DiceLoss("binary", from_logits=True, ignore_index=IGNORE_INDEX) if self.binary \
                else multiclass_dice_loss
        mode = "binary" if self.binary else "multiclass"
        self.focal = FocalLoss(mode, ignore_index=IGNORE_INDEX) if "focal" in self.name else None

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        loss = logits.new_zeros(())
        # one log-softmax serves cross-entropy and Dice
        shared = not self.binary and (self.name.startswith("ce") or self.dice is not None)
        log_probs = logits.log_softmax(1) if shared else None
        if self.name.startswith("ce"):
            w = self.weight if self.weight.numel() else None
            loss = loss + F.nll_loss(log_probs, target, weight=w, ignore_index=IGNORE_INDEX)
        if self.name.startswith("bce"):
            valid = (target != IGNORE_INDEX).float()
            pos = self.weight[0] if self.weight.numel() else None
            bce = F.binary_cross_entropy_with_logits(logits[:, 0], (target == 1).float(), reduction="none",
                                                     pos_weight=pos)
            loss = loss + (bce * valid).sum() / valid.sum().clamp_min(1)
        if self.focal is not None:
            loss = loss + self.focal(logits, target)
        if self.dice is not None:
            loss = loss + (self.dice(logits, target) if self.binary else self.dice(log_probs, target))
        return loss


def multiclass_dice_loss(log_probs: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """1 - Dice per class over the whole batch, averaged over classes, classes absent from the target
    counting 0 (smp's DiceLoss in multiclass mode). Dice = 2·overlap / (sum of probabilities + pixel count),
    both over non-void pixels. Per-class sums come from one pass over the probabilities (einsum with the
    valid mask) and the overlap from the probability of each pixel's true class (gather + scatter_add),
    so no one-hot copy of the target is made."""
    probs = log_probs.exp()
    classes = probs.shape[1]
    valid = target != IGNORE_INDEX
    labels = torch.where(valid, target, 0).long()
    weights = valid.to(probs.dtype)
    prob_sum = torch.einsum("bchw,bhw->c", probs, weights)
    true_prob = probs.gather(1, labels.unsqueeze(1)).squeeze(1) * weights
    overlap = probs.new_zeros(classes).scatter_add(0, labels.flatten(), true_prob.flatten())
    count = probs.new_zeros(classes).scatter_add(0, labels.flatten(), weights.flatten())
    dice = 2 * overlap / (prob_sum + count).clamp_min(eps)
    return ((1 - dice) * (count > 0).to(dice.dtype)).mean()
