"""Torch adapter for instance segmentation: (image, target) pairs in torchvision's detection format.

Every image is decoded, shrunk (longer side at most `max_size`) and its objects rasterised once; masks are
kept as COCO RLE, which costs a few bytes per object instead of a full-size plane, and decoded per item.
Crowd regions are kept apart (they are ignored by training and by COCO AP alike) and objects whose mask
vanishes when shrunk are dropped.

Augmentation runs torchvision.transforms.v2 on tv_tensors (Image, BoundingBoxes, Mask), so boxes and masks
move with the image; afterwards boxes are re-derived from the masks, which stay exact where boxes can only be
clipped, and objects cut away entirely are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset as TorchDataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from masksmith.core.labels import ClassMap
from masksmith.data.rasterize import decode_masks, encode_masks, instance_masks
from masksmith.data.schema import Dataset, Sample
from masksmith.data.torchdata import colour_jitter, detect_flip_pairs

Target = dict[str, torch.Tensor]


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) masks -> (N, 4) float (x0, y0, x1, y1), end-exclusive pixel edges; zeros for empty masks."""
    if masks.shape[0] == 0:
        return torch.zeros((0, 4), dtype=torch.float32)
    m = masks.bool()
    rows, cols = m.any(2), m.any(1)
    h, w = m.shape[-2:]
    y0 = rows.float().argmax(1)
    y1 = h - rows.flip(1).float().argmax(1)
    x0 = cols.float().argmax(1)
    x1 = w - cols.flip(1).float().argmax(1)
    boxes = torch.stack([x0, y0, x1, y1], 1).float()
    return boxes * rows.any(1, keepdim=True)


def flip_permutation(classes: ClassMap, pairs: Sequence[Sequence[str]] | None = None) -> torch.Tensor:
    """(K + 1,) int64 table: label -> label after a horizontal flip (a flipped left door is a right door).

    `pairs` defaults to the left/right pairs found in the class names (`detect_flip_pairs`)."""
    if pairs is None:
        pairs = detect_flip_pairs(classes.names)
    return torch.tensor(classes.mirrored(pairs), dtype=torch.int64)


@dataclass
class CachedInstanceSample:
    """One image at training size and its objects as RLEs at that size."""

    name: str
    image: torch.Tensor  # (3, H, W) uint8
    rles: list[dict[str, Any]]
    labels: np.ndarray  # (N,) int64, 1..K
    crowd_rles: list[dict[str, Any]] = field(default_factory=list)
    crowd_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    scale: float = 1.0  # cached size / original size

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[2])

    def masks(self) -> np.ndarray:
        return decode_masks(self.rles, *self.size)


def fit_size(height: int, width: int, max_size: int | None) -> tuple[int, int]:
    """(h, w) with the longer side at most `max_size`, aspect kept; images are never enlarged."""
    if not max_size or max(height, width) <= max_size:
        return height, width
    s = max_size / max(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


def _resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    if masks.shape[1:] == (h, w):
        return masks
    return np.stack([np.asarray(Image.fromarray(m).resize((w, h), Image.NEAREST)) for m in masks]) \
        if len(masks) else np.zeros((0, h, w), bool)


def cache_sample(sample: Sample, class_to_index: dict[str, int], max_size: int | None) -> CachedInstanceSample:
    """Decode, shrink and rasterise one sample (see the module doc)."""
    image = sample.load_image()
    masks, labels, crowd = instance_masks(sample, class_to_index)
    size = fit_size(*image.shape[:2], max_size)
    if size != image.shape[:2]:
        image = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))
        masks = _resize_masks(masks, size)
    keep = masks.reshape(len(masks), -1).any(1) if len(masks) else np.zeros(0, bool)
    objects, crowds = keep & ~crowd, keep & crowd
    return CachedInstanceSample(
        name=sample.name, image=torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
        rles=encode_masks(masks[objects]), labels=labels[objects].astype(np.int64),
        crowd_rles=encode_masks(masks[crowds]), crowd_labels=labels[crowds].astype(np.int64),
        scale=size[0] / max(1, sample.height))


# ------------------------------------------------------------------------------------------ augmentation
class InstanceFlip(v2.Transform):
    """Random horizontal flip of image, boxes and masks that also swaps left/right class labels."""

    def __init__(self, perm: torch.Tensor, p: float = 0.5) -> None:
        super().__init__()
        self.perm = perm
        self.p = p

    def forward(self, image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:  # type: ignore[override]
        if torch.rand(()) >= self.p:
            return image, target
        target = dict(target)
        for key in ("boxes", "masks"):
            if key in target:
                target[key] = TF.horizontal_flip(target[key])
        target["labels"] = self.perm[target["labels"]]
        return TF.horizontal_flip(image), target


class ScaleJitter(v2.Transform):
    """Zoom by a random factor, then cut or pad (black) back to the image's own size at a random place.

    The canvas keeps its size because Mask R-CNN's own transform resizes every input to a fixed size, which
    would undo a plain resize; zooming inside the canvas is what changes the objects' scale (as Detectron2's
    large-scale jitter does)."""

    def __init__(self, scale_range: tuple[float, float] = (0.8, 1.25)) -> None:
        super().__init__()
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))

    def forward(self, image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:  # type: ignore[override]
        lo, hi = self.scale_range
        factor = lo + (hi - lo) * float(torch.rand(()))
        h, w = image.shape[-2:]
        size = [max(1, round(h * factor)), max(1, round(w * factor))]
        image, target = v2.Resize(size, antialias=True)(image, target)
        return v2.RandomCrop((h, w), pad_if_needed=True, fill=0)(image, target)


class InstanceAugment(v2.Transform):
    """Flip (swapping left/right labels), scale jitter and colour jitter, each optional."""

    def __init__(self, perm: torch.Tensor | None = None, scale_range: tuple[float, float] | None = (0.8, 1.25),
                 color_jitter: float = 0.0) -> None:
        super().__init__()
        self.flip = InstanceFlip(perm) if perm is not None else None
        self.scale = ScaleJitter(scale_range) if scale_range and scale_range[0] != scale_range[1] else None
        self.jitter = colour_jitter(color_jitter)

    def forward(self, image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:  # type: ignore[override]
        if self.flip is not None:
            image, target = self.flip(image, target)
        if self.scale is not None:
            image, target = self.scale(image, target)
        if self.jitter is not None:
            image = self.jitter(image)
        return image, target


# ------------------------------------------------------------------------------------------------ dataset
class InstanceTensors(TorchDataset):
    """Serves (image float (3, H, W) in [0, 1], target) for torchvision's Mask R-CNN.

    target: boxes (N, 4) float x0, y0, x1, y1; labels (N,) int64 in 1..K; masks (N, H, W) uint8;
    image_id () int64, the item's index (used to find its ground truth for COCO AP).
    """

    def __init__(self, dataset: Dataset, samples: Sequence[Sample] | None = None, max_size: int | None = 512,
                 transform: v2.Transform | None = None) -> None:
        index = dataset.class_map.index()
        chosen = list(dataset.samples if samples is None else samples)
        self.class_names = dataset.class_names
        self.items = [cache_sample(s, index, max_size) for s in chosen]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def raw(self, i: int) -> tuple[torch.Tensor, Target]:
        """Item `i` before augmentation: uint8 Image and tv_tensor target."""
        item = self.items[i]
        h, w = item.size
        masks = torch.from_numpy(item.masks())
        target: Target = {
            "boxes": tv_tensors.BoundingBoxes(boxes_from_masks(masks), format="XYXY", canvas_size=(h, w)),
            "labels": torch.from_numpy(item.labels.copy()),
            "masks": tv_tensors.Mask(masks),
            "image_id": torch.tensor(i, dtype=torch.int64),
        }
        return tv_tensors.Image(item.image), target

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Target]:
        image, target = self.raw(i)
        if self.transform is not None:
            image, target = self.transform(image, target)
        return finish(image, target)


def finish(image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
    """Plain tensors for the model: float image in [0, 1], boxes re-derived from the masks, empty objects
    (cut away by a crop) dropped."""
    masks = target["masks"].as_subclass(torch.Tensor).to(torch.uint8)
    keep = masks.flatten(1).bool().any(1) if masks.numel() else torch.zeros(masks.shape[0], dtype=torch.bool)
    masks = masks[keep]
    out = {"boxes": boxes_from_masks(masks), "labels": target["labels"].as_subclass(torch.Tensor)[keep].long(),
           "masks": masks}
    if "image_id" in target:
        out["image_id"] = target["image_id"]
    pixels = image.as_subclass(torch.Tensor)
    return (pixels.float() / 255.0 if pixels.dtype == torch.uint8 else pixels.float()), out


def collate_fn(batch: Sequence[tuple[torch.Tensor, Target]]) -> tuple[list[torch.Tensor], list[Target]]:
    """Images of different sizes cannot be stacked; Mask R-CNN takes lists."""
    images, targets = zip(*batch, strict=True) if batch else ((), ())
    return list(images), list(targets)
