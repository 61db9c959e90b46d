"""`dataset preview`: a PNG grid of images beside their masks in the class colours, with a legend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from masksmith.apps.overlay import colorize, grid, legend, overlay
from masksmith.data.rasterize import semantic_mask
from masksmith.data.schema import Dataset


def preview_image(dataset: Dataset, count: int = 8, cell: int = 256, opacity: float = 0.5) -> np.ndarray:
    """Rows of (photo, mask overlay, mask) for the first `count` samples, then a colour legend."""
    index = dataset.class_to_index()
    colors = dataset.colors()
    pictures = []
    for sample in dataset.samples[:count]:
        image = sample.load_image()
        mask = semantic_mask(sample, index)
        pictures += [image, overlay(image, mask, colors, opacity), colorize(mask, colors)]
    body = grid(pictures, columns=3, cell=cell)
    key = legend(["background", *dataset.class_names], colors, body.shape[1])
    return np.concatenate([body, key], axis=0)


def write_preview(dataset: Dataset, out: Path, count: int = 8, cell: int = 256) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(preview_image(dataset, count, cell)).save(out)
    return out
