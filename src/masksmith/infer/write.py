"""`masksmith predict` outputs: per image a class-index mask PNG (palette: opens in colour), an overlay and
an opaque colour mask, named after the input file.

Outputs go through an `OutputFolder`: never into (or around) the photos' own folder, never over a file
masksmith did not write, each file atomically; two photos with the same stem get distinct names."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from masksmith.data.formats._common import is_image_file
from masksmith.draw import colorize, overlay
from masksmith.errors import MasksmithError
from masksmith.infer.predictor import Predictor
from masksmith.outputs import OutputFolder, as_output_folder
from masksmith.paths import unique_stems


def expand_inputs(paths: Iterable[str | Path], skip: OutputFolder | None = None) -> list[Path]:
    """Image files named directly or found (non-recursively) in named folders, without the files masksmith
    wrote into `skip` (so a run never reads its own outputs back as photos)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and is_image_file(f))
        elif p.exists():
            files.append(p)
        else:
            raise MasksmithError("does not exist.", path=p, fix="check the path.")
    if skip is not None:
        files = [f for f in files if not skip.is_output(f)]
    if not files:
        raise MasksmithError("no images found in the given paths.", fix="pass image files or folders of images.")
    return files


@dataclass
class PhotoJob:
    """One input photo and the stem its outputs are named with."""

    path: Path
    stem: str


def plan_outputs(inputs: Iterable[str | Path], folder: OutputFolder) -> list[PhotoJob]:
    files = expand_inputs(inputs, skip=folder)
    return [PhotoJob(f, s) for f, s in zip(files, unique_stems(files), strict=True)]


@dataclass
class Skipped:
    """Photos that could not be read (with --lenient), each with the reason."""

    items: list[str] = field(default_factory=list)


def readable(predictor, jobs: list[PhotoJob], lenient: bool, skipped: Skipped) -> Iterator[tuple[PhotoJob,
                                                                                                np.ndarray, object]]:
    """(job, image, prediction) for every job; unreadable photos stop the run, or with `lenient` are listed
    in `skipped` and passed over."""
    from masksmith.images import read_image

    for job in jobs:
        try:
            image = read_image(job.path)
        except MasksmithError as exc:
            if not lenient:
                raise
            skipped.items.append(str(exc))
            continue
        yield job, image, predictor.predict(image)


def index_mask_image(mask: np.ndarray, colors: list[tuple[int, int, int]]) -> Image.Image:
    """A palette image of a class-index mask: pixel values are class indices, viewers show the class colours."""
    im = Image.fromarray(np.asarray(mask, np.uint8), mode="P")
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(colors)] = np.asarray(colors, np.uint8)
    im.putpalette(palette.ravel().tolist())
    return im


def index_mask_png(mask: np.ndarray, colors: list[tuple[int, int, int]]) -> bytes:
    """`index_mask_image` as PNG bytes (what the web app sends for download)."""
    import io

    buf = io.BytesIO()
    index_mask_image(mask, colors).save(buf, "PNG")
    return buf.getvalue()


def save_index_mask(mask: np.ndarray, colors: list[tuple[int, int, int]], folder: OutputFolder, name: str) -> Path:
    """A palette PNG: pixel values are class indices, and viewers show the class colours."""
    return folder.save_image(name, index_mask_image(mask, colors))


def predict_to_folder(predictor: Predictor, inputs: Iterable[str | Path], out: Path | OutputFolder,
                      opacity: float = 0.5, *, overwrite: bool = False, lenient: bool = False,
                      skipped: Skipped | None = None) -> list[dict[str, str]]:
    """Predict every input image and write <stem>_mask.png, <stem>_overlay.png and <stem>_color.png."""
    inputs = list(inputs)
    folder = as_output_folder(out, inputs=inputs, overwrite=overwrite)
    colors = predictor.colors
    written = []
    for job, image, mask in readable(predictor, plan_outputs(inputs, folder), lenient, skipped or Skipped()):
        files = {
            "mask": save_index_mask(mask, colors, folder, f"{job.stem}_mask.png"),
            "overlay": folder.save_image(f"{job.stem}_overlay.png", overlay(image, mask, colors, opacity)),
            "color": folder.save_image(f"{job.stem}_color.png", colorize(mask, colors)),
        }
        written.append({"image": str(job.path), **{k: str(v) for k, v in files.items()}})
    return written


@dataclass
class PhotoPrediction:
    """One photo's prediction in the shape every app uses: the class-index mask at the photo's size (the
    union of the objects for instance models), the objects (connected regions of each class for semantic
    models, detected objects for instance models) and the class names and colours (background first)."""

    mask: np.ndarray
    objects: list
    classes: list[str]
    colors: list[tuple[int, int, int]]


def predict_photo(predictor, image: np.ndarray, min_pixels: int = 16) -> PhotoPrediction:
    """`predictor.predict(image)` as a PhotoPrediction, for either kind of model."""
    from masksmith.apps.extract import regions_of_classes

    classes = list(predictor.artifact.classes)
    colors = [tuple(c) for c in predictor.colors]
    found = predictor.predict(image)
    if predictor.artifact.task == "instance":
        from masksmith.infer.instance import union_mask

        index = {n: i + 1 for i, n in enumerate(classes)}
        objects = [o for o in found if int(o.mask.sum()) >= min_pixels]
        return PhotoPrediction(union_mask(objects, index, image.shape[:2]), objects, classes, colors)
    return PhotoPrediction(found, regions_of_classes(found, classes, None, min_pixels), classes, colors)


def write_photo_results(image: np.ndarray, prediction: PhotoPrediction, out: Path | OutputFolder,
                        opacity: float = 0.5, stem: str = "photo") -> dict[str, str]:
    """Everything a user may want of one photo, in `out`: the photo, the mask (palette PNG of class indices),
    the colour mask, the overlay and the cut-outs with their index; returns {kind: file name}."""
    from masksmith.apps.extract import write_cutouts, write_index

    folder = as_output_folder(out)
    files = {
        "photo": folder.save_image(f"{stem}.png", image),
        "mask": save_index_mask(prediction.mask, prediction.colors, folder, f"{stem}_mask.png"),
        "color": folder.save_image(f"{stem}_color.png", colorize(prediction.mask, prediction.colors)),
        "overlay": folder.save_image(f"{stem}_overlay.png", overlay(image, prediction.mask, prediction.colors,
                                                                    opacity)),
    }
    rows = write_cutouts(Path(f"{stem}.png"), image, prediction.objects, folder, "transparent", stem=stem)
    csv_path, _ = write_index(rows, folder)
    return {**{k: v.name for k, v in files.items()}, "index": csv_path.name,
            **{f"cutout_{k}": r.file for k, r in enumerate(rows)}}
