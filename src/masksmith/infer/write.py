"""`masksmith predict` outputs: per image a class-index mask PNG (palette: opens in colour), an overlay and
an opaque colour mask, named after the input file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from masksmith.apps.overlay import colorize, overlay
from masksmith.data.formats._common import is_image_file
from masksmith.errors import MasksmithError
from masksmith.infer.predictor import Predictor


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Image files named directly or found (non-recursively) in named folders."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and is_image_file(f))
        elif p.exists():
            files.append(p)
        else:
            raise MasksmithError("does not exist.", path=p, fix="check the path.")
    if not files:
        raise MasksmithError("no images found in the given paths.", fix="pass image files or folders of images.")
    return files


def save_index_mask(mask: np.ndarray, colors: list[tuple[int, int, int]], path: Path) -> Path:
    """A palette PNG: pixel values are class indices, and viewers show the class colours."""
    im = Image.fromarray(mask, mode="P")
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(colors)] = np.asarray(colors, np.uint8)
    im.putpalette(palette.ravel().tolist())
    im.save(path)
    return path


def predict_to_folder(predictor: Predictor, inputs: Iterable[str | Path], out: Path, opacity: float = 0.5
                      ) -> list[dict[str, str]]:
    """Predict every input image and write <stem>_mask.png, <stem>_overlay.png and <stem>_color.png."""
    out.mkdir(parents=True, exist_ok=True)
    colors = predictor.colors
    written = []
    for path, image, mask in predictor.predict_files(expand_inputs(inputs)):
        stem = path.stem
        files = {
            "mask": save_index_mask(mask, colors, out / f"{stem}_mask.png"),
            "overlay": out / f"{stem}_overlay.png",
            "color": out / f"{stem}_color.png",
        }
        Image.fromarray(overlay(image, mask, colors, opacity)).save(files["overlay"])
        Image.fromarray(colorize(mask, colors)).save(files["color"])
        written.append({"image": str(path), **{k: str(v) for k, v in files.items()}})
    return written
