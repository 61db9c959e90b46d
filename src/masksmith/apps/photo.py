"""One photo, everything a person may want of it: the class mask, the objects (connected regions of each class
for semantic models, detections for instance models), the colour mask, a transparent colour layer, the overlay
and the cut-outs (the web app's "try it"), and per part how much of it was found and how surely, so a front
lists a part as found only above an area and a confidence (`PartFound`, `PhotoPrediction.parts`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from masksmith.apps.extract import regions_of_classes, write_cutouts, write_index
from masksmith.core.labels import ClassMap
from masksmith.core.objects import union_mask
from masksmith.core.outputs import OutputFolder, as_output_folder
from masksmith.draw import colorize, colorize_layer, overlay
from masksmith.infer.batch import save_index_mask

MIN_SHARE = 0.002  # a part covering less of the photo (0.2 %) is too small to show or work on
MIN_CONFIDENCE = 0.5  # the default least mean confidence of a found part
FRAGMENT = 0.1  # a region under this share of its part's largest region is a fragment of it, not an object


@dataclass
class PartFound:
    """One class in one photo: its pixels and share of the photo, the model's mean confidence over them (the
    winning class probability for semantic models, the best object score for instance models) and the
    objects counted (detections; or regions, leaving out fragments under a tenth of the part's largest)."""

    name: str
    pixels: int
    share: float
    confidence: float
    objects: int

    def usable(self, min_share: float = MIN_SHARE, min_confidence: float = MIN_CONFIDENCE) -> bool:
        return self.share >= min_share and self.confidence >= min_confidence

    def reason(self, min_share: float = MIN_SHARE, min_confidence: float = MIN_CONFIDENCE) -> str | None:
        """Why the part cannot be worked on, in words (None when it can)."""
        if self.share < min_share:
            return f"only {self.pixels} pixels ({100 * self.share:.2f} % of the photo): too small to work on"
        if self.confidence < min_confidence:
            return f"found with {100 * self.confidence:.0f} % confidence, below the {100 * min_confidence:.0f} % asked"
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PhotoPrediction:
    """One photo's prediction in the shape every app uses: the class-index mask at the photo's size (the
    union of the objects for instance models), the objects (connected regions of each class for semantic
    models, detected objects for instance models), the model's classes, and the confidence of each pixel's
    class (semantic models; None for instance models, whose objects carry scores)."""

    mask: np.ndarray
    objects: list
    classes: ClassMap
    confidence: np.ndarray | None = None

    def found(self) -> list[str]:
        """The classes with pixels in the mask, in class order."""
        return self.classes.names_of(sorted(int(v) for v in np.unique(self.mask)))

    def parts(self) -> list[PartFound]:
        """Every class with pixels in the mask: area, confidence and objects counted."""
        total = max(1, self.mask.size)
        counts = np.bincount(self.mask.ravel(), minlength=256)
        out = []
        for name in self.found():
            value = self.classes.value(name)
            pixels = int(counts[value])
            mine = [o for o in self.objects if o.label == name]
            if self.confidence is not None:  # regions: a piece under a tenth of the part's largest is a fragment
                confidence = float(self.confidence[self.mask == value].mean())
                sizes = [int(o.mask.sum()) for o in mine]
                count = sum(1 for n in sizes if n >= FRAGMENT * max(sizes))
            else:  # detections: each object the model found, with its score
                confidence, count = max((float(o.score) for o in mine), default=0.0), len(mine)
            out.append(PartFound(name, pixels, pixels / total, round(confidence, 4), count))
        return out

    def usable_parts(self, min_share: float = MIN_SHARE, min_confidence: float = MIN_CONFIDENCE) -> list[str]:
        return [p.name for p in self.parts() if p.usable(min_share, min_confidence)]


def predict_photo(predictor, image: np.ndarray, min_pixels: int = 16) -> PhotoPrediction:
    """`predictor.predict(image)` as a PhotoPrediction, for either kind of model."""
    classes = predictor.classes
    if hasattr(predictor, "predict_proba"):  # semantic: the class of each pixel and how sure the model is
        probs = np.asarray(predictor.predict_proba(image))
        mask = probs.argmax(0).astype(np.uint8)
        return PhotoPrediction(mask, regions_of_classes(mask, classes, None, min_pixels), classes,
                               probs.max(0).astype(np.float32))
    found = predictor.predict(image)
    objects = [o for o in found if int(o.mask.sum()) >= min_pixels]
    return PhotoPrediction(union_mask(objects, classes, image.shape[:2]), objects, classes)


def write_photo_results(image: np.ndarray, prediction: PhotoPrediction, out: Path | OutputFolder,
                        opacity: float = 0.5, stem: str = "photo") -> dict[str, str]:
    """Everything a user may want of one photo, in `out`: the photo, the mask (palette PNG of class indices),
    the colour mask, the colour layer (transparent background), the overlay and the cut-outs with their
    index; returns {kind: file name}."""
    folder = as_output_folder(out)
    palette = prediction.classes.palette()
    files = {
        "photo": folder.save_image(f"{stem}.png", image),
        "mask": save_index_mask(prediction.mask, palette, folder, f"{stem}_mask.png"),
        "color": folder.save_image(f"{stem}_color.png", colorize(prediction.mask, palette)),
        "layer": folder.save_image(f"{stem}_layer.png", colorize_layer(prediction.mask, palette)),
        "overlay": folder.save_image(f"{stem}_overlay.png", overlay(image, prediction.mask, palette, opacity)),
    }
    rows = write_cutouts(Path(f"{stem}.png"), image, prediction.objects, folder, "transparent", stem=stem)
    csv_path, _ = write_index(rows, folder)
    return {**{k: v.name for k, v in files.items()}, "index": csv_path.name,
            **{f"cutout_{k}": r.file for k, r in enumerate(rows)}}
