"""The model's half of the labelling loop: which unlabelled photo to label next (`rank`'s order), and
the mask it proposes for a photo, in the labelling folder's class values (`data/labelling.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from masksmith.core.errors import MasksmithError
from masksmith.core.images import read_image
from masksmith.data import labelling


@dataclass
class NextPhoto:
    """An unlabelled photo, with how unsure the model is of it (None without a model)."""

    name: str
    score: float | None


def check_classes(model_classes: list[str] | tuple[str, ...], data_classes: list[str], model: str | Path = "") -> None:
    """The model must know the data set's classes, in its order, to propose masks or to be fine-tuned on it."""
    if list(model_classes) != list(data_classes):
        raise MasksmithError(f"the model's classes ({', '.join(model_classes)}) are not the data set's "
                             f"({', '.join(data_classes)}).", path=model or None,
                             fix="use a model trained on this data set's classes, or train a new one.")


def label_next(root: str | Path, predictor=None, limit: int | None = None, measure: str = "entropy",
               known: dict | None = None, strategy: str = "diverse") -> list[NextPhoto]:
    """The unlabelled photos in the order to label them with a predictor (`rank.order`: by default the diverse
    order, each photo the most unsure one unlike those before it and unlike the photos labelled since this
    predictor ranked them), name order without one. `known`: what this predictor found for photos of this
    folder so far (read, and filled with the new ones; `rank.Ranked` by name), so a page that lists them again
    scores only the photos added since, and knows which of them were labelled meanwhile."""
    from masksmith.apps.rank import check_strategy, order, score_images

    found = labelling.unlabelled_photos(root)
    if predictor is None:
        return [NextPhoto(p.name, None) for p in found[:limit]]
    check_strategy(strategy)
    check_classes(predictor.classes.names, labelling.class_names(root))
    known = {} if known is None else known
    todo = [p for p in found if p.name not in known]
    for row in score_images(predictor, ((p.name, read_image(p)) for p in todo), measure):
        known[row.image] = row
    waiting = {p.name for p in found}
    labelled = {p.name for p in labelling.photos(root) if p.labelled}
    covered = [row.feature for name, row in sorted(known.items()) if name not in waiting and name in labelled]
    rows = order([known[p.name] for p in found], strategy, covered, most=len(found) if limit is None else limit)
    return [NextPhoto(r.image, r.score) for r in rows[:limit]]


def proposal(root: str | Path, name: str, predictor=None) -> np.ndarray:
    """The mask to start editing photo `name` from: its saved mask when it has one, else the model's
    prediction in the data set's class values, else all background."""
    saved = labelling.read_mask(root, name)
    if saved is not None:
        return saved
    photo = labelling.find_photo(root, name)
    image = read_image(photo.path)
    if predictor is None:
        return np.zeros(image.shape[:2], np.uint8)
    check_classes(predictor.classes.names, labelling.class_names(root))
    return np.asarray(predictor.predict(image)).astype(np.uint8)  # same classes, same order: same values


SUPERPIXEL_PIXELS = 400_000  # superpixels are found on the photo shrunk to about this many pixels


def superpixels(image: np.ndarray, segments: int = 600) -> np.ndarray:
    """(H, W) int32 superpixel ids (SLIC, scikit-image) of the photo, for the editor's "snap to edges": a stroke
    grows to the superpixels it mostly covers and leaves those it barely touches. Large photos are segmented
    shrunk and the ids scaled back up (nearest), so a 12-megapixel photo takes about as long as a small one."""
    from PIL import Image
    from skimage.segmentation import slic

    h, w = image.shape[:2]
    factor = min(1.0, (SUPERPIXEL_PIXELS / max(1, h * w)) ** 0.5)
    small = image
    if factor < 1.0:
        small = np.asarray(Image.fromarray(image).resize((max(1, round(w * factor)), max(1, round(h * factor))),
                                                         Image.BILINEAR))
    ids = slic(small, n_segments=segments, compactness=10.0, start_label=0).astype(np.int32)
    if factor < 1.0:
        ids = np.asarray(Image.fromarray(ids).resize((w, h), Image.NEAREST)).astype(np.int32)
    return ids


def encode_ids(ids: np.ndarray) -> np.ndarray:
    """Ids as an RGB picture (id = r + 256 g + 65536 b), which a browser's canvas reads back exactly."""
    ids = ids.astype(np.uint32)
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)
