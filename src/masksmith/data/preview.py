"""`dataset preview`: a PNG grid of images beside their masks in the class colours, with a legend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from masksmith.apps.overlay import colorize, grid, legend, overlay
from masksmith.data.rasterize import semantic_mask
from masksmith.data.schema import Dataset
from masksmith.errors import DatasetError
from masksmith.outputs import OutputFolder


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


def write_preview(dataset: Dataset, out: Path, count: int = 8, cell: int = 256, overwrite: bool = False) -> Path:
    """The preview as a PNG file (refusing another suffix, the data set's folder and files we did not write)."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise DatasetError("the preview is a PNG picture; this name has another suffix.", path=out,
                           fix="name the output like preview.png.")
    if not dataset.samples:
        raise DatasetError("the data set holds no images to preview.", path=dataset.root or "",
                           fix="check the path, or see the problems `masksmith dataset inspect` lists.")
    folder, name = OutputFolder.for_file(out, inputs=[dataset.root], overwrite=overwrite)
    return folder.save_image(name, preview_image(dataset, count, cell))
