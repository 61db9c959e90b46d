"""One photo, everything a person may want of it: the class mask, the objects (connected regions of each class
for semantic models, detections for instance models), the colour mask, the overlay and the cut-outs (the web
app's "try it")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from masksmith.apps.extract import regions_of_classes, write_cutouts, write_index
from masksmith.core.labels import ClassMap
from masksmith.core.objects import union_mask
from masksmith.core.outputs import OutputFolder, as_output_folder
from masksmith.draw import colorize, overlay
from masksmith.infer.batch import save_index_mask


@dataclass
class PhotoPrediction:
    """One photo's prediction in the shape every app uses: the class-index mask at the photo's size (the
    union of the objects for instance models), the objects (connected regions of each class for semantic
    models, detected objects for instance models) and the model's classes."""

    mask: np.ndarray
    objects: list
    classes: ClassMap

    def found(self) -> list[str]:
        """The classes with pixels in the mask, in class order."""
        return self.classes.names_of(sorted(int(v) for v in np.unique(self.mask)))


def predict_photo(predictor, image: np.ndarray, min_pixels: int = 16) -> PhotoPrediction:
    """`predictor.predict(image)` as a PhotoPrediction, for either kind of model."""
    classes = predictor.classes
    found = predictor.predict(image)
    if isinstance(found, np.ndarray):  # a class-value mask: its connected regions are the objects
        return PhotoPrediction(found, regions_of_classes(found, classes, None, min_pixels), classes)
    objects = [o for o in found if int(o.mask.sum()) >= min_pixels]
    return PhotoPrediction(union_mask(objects, classes, image.shape[:2]), objects, classes)


def write_photo_results(image: np.ndarray, prediction: PhotoPrediction, out: Path | OutputFolder,
                        opacity: float = 0.5, stem: str = "photo") -> dict[str, str]:
    """Everything a user may want of one photo, in `out`: the photo, the mask (palette PNG of class indices),
    the colour mask, the overlay and the cut-outs with their index; returns {kind: file name}."""
    folder = as_output_folder(out)
    palette = prediction.classes.palette()
    files = {
        "photo": folder.save_image(f"{stem}.png", image),
        "mask": save_index_mask(prediction.mask, palette, folder, f"{stem}_mask.png"),
        "color": folder.save_image(f"{stem}_color.png", colorize(prediction.mask, palette)),
        "overlay": folder.save_image(f"{stem}_overlay.png", overlay(image, prediction.mask, palette, opacity)),
    }
    rows = write_cutouts(Path(f"{stem}.png"), image, prediction.objects, folder, "transparent", stem=stem)
    csv_path, _ = write_index(rows, folder)
    return {**{k: v.name for k, v in files.items()}, "index": csv_path.name,
            **{f"cutout_{k}": r.file for k, r in enumerate(rows)}}
