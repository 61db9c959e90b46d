"""Cut each object out of a photo: its mask applied, cropped to its box, on a white, black or transparent
background. Pixels are kept or replaced by the mask alone, never by their colour, so a black pixel inside a
black boot stays black.

Works on any mask: instance masks from Mask R-CNN, or the connected regions of a semantic mask (one cut-out
per region of a class).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from masksmith.core.errors import MasksmithError
from masksmith.core.labels import ClassMap
from masksmith.core.objects import DetectedObject, mask_box
from masksmith.core.outputs import OutputFolder, as_output_folder
from masksmith.core.paths import safe_filename

BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0), "transparent": None}


@dataclass
class CutOut:
    source: str
    label: str
    score: float
    box: tuple[int, int, int, int]  # x, y, width, height of the crop in the photo
    file: str


def cut_out(image: np.ndarray, mask: np.ndarray, background: str = "white", pad: int = 0) -> np.ndarray:
    """The object under `mask`, cropped to its box (plus `pad`): RGB on white/black, or RGBA with the mask as
    alpha for "transparent"."""
    if background not in BACKGROUNDS:
        raise MasksmithError(f"unknown background {background!r}.", fix=f"use one of: {', '.join(BACKGROUNDS)}.")
    if image.shape[:2] != mask.shape:
        raise MasksmithError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                             f"{image.shape[1]}x{image.shape[0]}.", fix="pass a mask of the image's size.")
    box = mask_box(mask, pad)
    if box is None:
        raise MasksmithError("the mask is empty; there is nothing to cut out.")
    x0, y0, x1, y1 = box
    crop = image[y0:y1, x0:x1, :3]
    keep = mask[y0:y1, x0:x1].astype(bool)
    color = BACKGROUNDS[background]
    if color is None:
        alpha = np.where(keep, 255, 0).astype(np.uint8)
        return np.dstack([crop, alpha])
    out = np.empty_like(crop)
    out[:] = color
    out[keep] = crop[keep]
    return out


def check_wanted(wanted: Iterable[str] | None, class_names: Sequence[str], model: Path | None = None) -> set[str]:
    """The classes to cut out (all when `wanted` is empty); MasksmithError for names the model lacks."""
    wanted_set = set(wanted) if wanted else set(class_names)
    unknown = wanted_set - set(class_names)
    if unknown:
        raise MasksmithError(f"the model has no class {', '.join(sorted(unknown))}.", path=model,
                             fix=f"choose from: {', '.join(class_names)}.")
    return wanted_set


def objects_of_classes(objects: Iterable[DetectedObject], wanted: Iterable[str] | None = None,
                       min_pixels: int = 16) -> list[DetectedObject]:
    """Detected objects (e.g. Mask R-CNN's) of the wanted classes (all when None) with at least `min_pixels`."""
    wanted_set = set(wanted) if wanted else None
    return [o for o in objects if (wanted_set is None or o.label in wanted_set) and int(o.mask.sum()) >= min_pixels]


def regions_of_classes(mask: np.ndarray, classes: ClassMap, wanted: Iterable[str] | None = None,
                       min_pixels: int = 16) -> list[DetectedObject]:
    """One object per connected region of each class in a class-value mask."""
    from masksmith.data.rasterize import connected_components

    wanted_set = check_wanted(wanted, classes.names)
    objects = []
    for value, name in zip(classes.values, classes.names, strict=True):
        if name in wanted_set:
            objects += [DetectedObject(name, 1.0, part) for part in connected_components(mask == value)
                        if part.sum() >= min_pixels]
    return objects


def write_cutouts(source: Path, image: np.ndarray, objects: Sequence[DetectedObject], out: Path | OutputFolder,
                  background: str = "white", pad: int = 0, stem: str | None = None) -> list[CutOut]:
    """One PNG per object: <stem>_<k>_<label>.png in `out` (the label made safe as a file name, since class
    names come from data); returns the index rows."""
    out = as_output_folder(out)
    rows = []
    stem = stem or safe_filename(source.stem, "image")
    for k, obj in enumerate(objects):
        box = mask_box(obj.mask, pad)
        if box is None:
            continue
        picture = cut_out(image, obj.mask, background, pad)
        file = out.save_image(f"{stem}_{k:03d}_{safe_filename(obj.label, 'object')}.png", picture)
        x0, y0, x1, y1 = box
        rows.append(CutOut(str(source), obj.label, round(float(obj.score), 4), (x0, y0, x1 - x0, y1 - y0),
                           file.name))
    return rows


def write_index(rows: Sequence[CutOut], out: Path | OutputFolder) -> tuple[Path, Path]:
    """index.csv and index.json beside the cut-outs: source image, class, score, box, file."""
    out = as_output_folder(out)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["source", "class", "score", "x", "y", "width", "height", "file"])
    for r in rows:
        writer.writerow([r.source, r.label, r.score, *r.box, r.file])
    return (out.write_text("index.csv", buf.getvalue()),
            out.write_text("index.json", json.dumps([asdict(r) for r in rows], indent=1)))
