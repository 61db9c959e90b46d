"""Torch adapters: decode and resize every sample once, then serve augmented uint8 tensors.

Decoding JPEGs and rasterising polygons is done once per run (the cache), because on a 2-core machine the
data path must never be what the model waits for. Augmentation uses torchvision.transforms.v2, which moves
images and masks together (masks always with nearest-neighbour sampling).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset as TorchDataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from masksmith.core.labels import IGNORE_INDEX, ClassMap
from masksmith.data.rasterize import semantic_mask
from masksmith.data.schema import Dataset, Sample

_SIDE = re.compile(r"(?<![a-z])(left|right)(?![a-z])", re.IGNORECASE)


def mirrored_name(name: str) -> str | None:
    """`front_left_door` -> `front_right_door`; None when the name has no left/right word."""
    if not _SIDE.search(name):
        return None

    def swap(m: re.Match[str]) -> str:
        word = m.group(0)
        other = "right" if word.lower() == "left" else "left"
        return other.upper() if word.isupper() else other.capitalize() if word[0].isupper() else other

    return _SIDE.sub(swap, name)


def names_left_side(name: str) -> bool:
    """Whether the name has the word `left` (`front_left_door`, `Left Hand`; not `leftover`)."""
    return any(m.group(0).lower() == "left" for m in _SIDE.finditer(name))


def detect_flip_pairs(class_names: Sequence[str]) -> list[tuple[str, str]]:
    """Classes whose names pair up as left/right, so a horizontal flip can swap them (a flipped left door is a
    right door). Each pair appears once, in class order."""
    names = set(class_names)
    pairs: list[tuple[str, str]] = []
    for name in class_names:
        other = mirrored_name(name)
        if other and other in names and (other, name) not in pairs and other != name:
            pairs.append((name, other))
    return pairs


def flip_lut(classes: ClassMap, pairs: Sequence[Sequence[str]]) -> torch.Tensor:
    """(256,) uint8 table mapping each mask value to its value after a horizontal flip."""
    lut = torch.arange(256, dtype=torch.uint8)
    lut[:classes.num_values] = torch.tensor(classes.mirrored(pairs), dtype=torch.uint8)
    return lut


def resize_pair(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image (bilinear, antialiased) and its mask (nearest) to (height, width)."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image, mask
    im = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
    m = np.asarray(Image.fromarray(mask).resize((w, h), Image.NEAREST))
    return im, m


def fit_window(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pad (black image, void mask) or cut an image and its mask to (height, width), from the top-left."""
    h, w = size
    im = np.zeros((h, w, 3), np.uint8)
    m = np.full((h, w), IGNORE_INDEX, np.uint8)
    ch, cw = min(h, image.shape[0]), min(w, image.shape[1])
    im[:ch, :cw] = image[:ch, :cw]
    m[:ch, :cw] = mask[:ch, :cw]
    return im, m


@dataclass
class CachedSamples:
    """All samples decoded and resized: images (N, 3, H, W) uint8 and masks (N, H, W) uint8."""

    images: torch.Tensor
    masks: torch.Tensor
    names: list[str]

    @classmethod
    def build(cls, dataset: Dataset, size: tuple[int, int], samples: Sequence[Sample] | None = None,
              scale: float | None = None) -> CachedSamples:
        """Every sample resized to `size` (h, w); with `scale`, resized by that factor keeping its aspect and
        then padded (void in the mask) or cut to `size` from the top-left corner."""
        index = dataset.class_map.index()
        chosen = list(dataset.samples if samples is None else samples)
        images = torch.empty((len(chosen), 3, *size), dtype=torch.uint8)
        masks = torch.empty((len(chosen), *size), dtype=torch.uint8)
        for k, sample in enumerate(chosen):
            image, mask = sample.load_image(), semantic_mask(sample, index)
            if scale is None:
                im, m = resize_pair(image, mask, size)
            else:
                target = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
                im, m = fit_window(*resize_pair(image, mask, target), size)
            images[k] = torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1)))
            masks[k] = torch.from_numpy(np.array(m))
        return cls(images, masks, [s.name for s in chosen])

    def __len__(self) -> int:
        return len(self.names)


class HorizontalFlipSwap(v2.Transform):
    """Random horizontal flip that also swaps left/right classes in the mask."""

    def __init__(self, lut: torch.Tensor, p: float = 0.5) -> None:
        super().__init__()
        self.lut = lut
        self.p = p

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.rand(()) >= self.p:
            return image, mask
        image = tv_tensors.wrap(image.flip(-1), like=image)
        mask = tv_tensors.wrap(self.lut[mask.flip(-1).long()], like=mask)
        return image, mask


@dataclass
class AugmentConfig:
    flip: bool = True
    scale: tuple[float, float] = (0.7, 1.0)  # area fraction kept by the random resized crop
    color_jitter: float = 0.25
    rotate: float = 0.0  # degrees


def colour_jitter(strength: float) -> v2.ColorJitter | None:
    """Brightness, contrast and saturation jitter of this strength; no hue: shifting hue goes through HSV and
    cost 4.5 ms of the 8 ms per 256 px image that all augmentation took, with paint colours varied enough
    in real photos already."""
    return v2.ColorJitter(brightness=strength, contrast=strength, saturation=strength) if strength else None


class TrainAugment(v2.Transform):
    """Flip (swapping left/right classes), random resized crop, colour jitter; the output side `size` may be
    changed between epochs (progressive resizing: cheap low-resolution epochs first)."""

    def __init__(self, size: tuple[int, int], aug: AugmentConfig, lut: torch.Tensor) -> None:
        super().__init__()
        self.size = tuple(size)
        self.flip = HorizontalFlipSwap(lut) if aug.flip else None
        self.scale = tuple(aug.scale) if aug.scale and aug.scale[0] < 1.0 else None
        self.rotate = v2.RandomRotation(aug.rotate, fill={tv_tensors.Image: 0, tv_tensors.Mask: 0}) \
            if aug.rotate else None
        self.jitter = colour_jitter(aug.color_jitter)

    def forward(self, image, mask):  # type: ignore[override]
        if self.flip is not None:
            image, mask = self.flip(image, mask)
        if self.scale is not None:
            image, mask = v2.RandomResizedCrop(self.size, scale=self.scale, ratio=(0.75, 1.333),
                                               antialias=True)(image, mask)
        elif tuple(image.shape[-2:]) != self.size:
            image, mask = v2.Resize(self.size, antialias=True)(image, mask)
        if self.rotate is not None:
            image, mask = self.rotate(image, mask)
        if self.jitter is not None:
            image = self.jitter(image)
        return image, mask


def train_transform(size: tuple[int, int], aug: AugmentConfig, lut: torch.Tensor) -> TrainAugment:
    return TrainAugment(size, aug, lut)


class SegmentationTensors(TorchDataset):
    """Serves (image uint8 (3, H, W), mask int64 (H, W)) from a cache, augmented when a transform is given."""

    def __init__(self, cache: CachedSamples, transform: v2.Transform | None = None) -> None:
        self.cache = cache
        self.transform = transform

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = tv_tensors.Image(self.cache.images[i])
        mask = tv_tensors.Mask(self.cache.masks[i])
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


# ------------------------------------------------------------------------- keep the scale: crops of photos


def tile_starts(length: int, window: int) -> list[int]:
    """Window starts covering `length` without overlap except the last one, which ends at the edge."""
    if length <= window:
        return [0]
    out = list(range(0, length - window, window))
    return [*out, length - window]


@dataclass
class ScaledSamples:
    """Every sample decoded once and resized by one factor, keeping its aspect and its own size: images
    [(3, H, W) uint8], masks [(H, W) uint8], and per image the classes present with up to FOREGROUND_POINTS
    pixel positions each (for crops centred on them)."""

    images: list[torch.Tensor]
    masks: list[torch.Tensor]
    names: list[str]
    points: list[dict[int, torch.Tensor]]  # class value -> (K, 2) (y, x)

    FOREGROUND_POINTS = 256

    @classmethod
    def build(cls, dataset: Dataset, scale: float, samples: Sequence[Sample] | None = None,
              seed: int = 0) -> ScaledSamples:
        index = dataset.class_map.index()
        chosen = list(dataset.samples if samples is None else samples)
        rng = np.random.default_rng(seed)
        images, masks, points = [], [], []
        for sample in chosen:
            image, mask = sample.load_image(), semantic_mask(sample, index)
            target = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
            im, m = resize_pair(image, mask, target)
            images.append(torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))))
            masks.append(torch.from_numpy(np.array(m)))
            found: dict[int, torch.Tensor] = {}
            for value in np.unique(m):
                if value in (0, IGNORE_INDEX):
                    continue
                ys, xs = np.nonzero(m == value)
                pick = rng.choice(len(ys), min(len(ys), cls.FOREGROUND_POINTS), replace=False)
                found[int(value)] = torch.from_numpy(np.stack([ys[pick], xs[pick]], 1))
            points.append(found)
        return cls(images, masks, [s.name for s in chosen], points)

    def __len__(self) -> int:
        return len(self.names)

    def tiles(self, size: tuple[int, int], limit: int | None = None) -> CachedSamples:
        """The photos cut into windows of `size` covering each whole (padded with void where a photo is
        smaller): the fixed validation set of a crop-trained run. `limit` keeps that many, evenly spread."""
        h, w = size
        boxes = [(k, y, x) for k, im in enumerate(self.images)
                 for y in tile_starts(im.shape[1], h) for x in tile_starts(im.shape[2], w)]
        if limit is not None and len(boxes) > limit:
            boxes = [boxes[i] for i in np.linspace(0, len(boxes) - 1, limit).round().astype(int)]
        images = torch.zeros((len(boxes), 3, h, w), dtype=torch.uint8)
        masks = torch.full((len(boxes), h, w), IGNORE_INDEX, dtype=torch.uint8)
        for j, (k, y, x) in enumerate(boxes):
            im, m = self.images[k][:, y:y + h, x:x + w], self.masks[k][y:y + h, x:x + w]
            images[j, :, :im.shape[1], :im.shape[2]] = im
            masks[j, :m.shape[0], :m.shape[1]] = m
        return CachedSamples(images, masks, [f"{self.names[k]}@{y},{x}" for k, y, x in boxes])


class CropTensors(TorchDataset):
    """Random crops of scaled photos, `per_image` per photo and epoch: with probability `foreground` centred
    on a labelled pixel of a class the photo has (the class drawn uniformly among them, so rare classes are
    seen as often as common ones), else anywhere. Crops are `size` at the training scale; the transform
    brings them to its own `size` (progressive resizing: the same view at a lower resolution for a while).
    Photos smaller than the crop are padded (black image, void mask)."""

    def __init__(self, samples: ScaledSamples, size: tuple[int, int], per_image: int = 1, foreground: float = 0.0,
                 transform: v2.Transform | None = None) -> None:
        self.samples, self.size, self.per_image = samples, tuple(size), max(1, per_image)
        self.foreground, self.transform = foreground, transform

    def __len__(self) -> int:
        return len(self.samples) * self.per_image

    def window(self, k: int, size: tuple[int, int]) -> tuple[int, int]:
        """Top-left corner of a crop of `size` in photo k."""
        _, h, w = self.samples.images[k].shape
        ch, cw = size
        points = self.samples.points[k]
        if points and torch.rand(()) < self.foreground:
            classes = list(points)
            found = points[classes[int(torch.randint(len(classes), ()))]]
            cy, cx = found[int(torch.randint(len(found), ()))].tolist()
            y, x = cy - ch // 2, cx - cw // 2
        else:
            y, x = int(torch.randint(max(1, h - ch + 1), ())), int(torch.randint(max(1, w - cw + 1), ()))
        return min(max(0, y), max(0, h - ch)), min(max(0, x), max(0, w - cw))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = i // self.per_image
        ch, cw = self.size
        y, x = self.window(k, (ch, cw))
        im = self.samples.images[k][:, y:y + ch, x:x + cw]
        m = self.samples.masks[k][y:y + ch, x:x + cw]
        if tuple(m.shape) != (ch, cw):
            pad_im = torch.zeros((3, ch, cw), dtype=torch.uint8)
            pad_m = torch.full((ch, cw), IGNORE_INDEX, dtype=torch.uint8)
            pad_im[:, :im.shape[1], :im.shape[2]], pad_m[:m.shape[0], :m.shape[1]] = im, m
            im, m = pad_im, pad_m
        image, mask = tv_tensors.Image(im), tv_tensors.Mask(m)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()
