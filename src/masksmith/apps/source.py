"""Where an app's masks come from: a model's predictions of the classes asked for (semantic or instance), or a
mask file the user already has. Recolour, paste, colours and the web app's tools take their pixels from a
`MaskSource`, so `classes` and `mask` mean the same everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from masksmith.core.errors import MasksmithError


class MaskSource:
    """The masks of the wanted classes in each photo: from `model` (a model file or run folder; its predictions)
    or from `mask` (one mask file for every photo). Everything is checked when it is made, before any photo is
    read: the model opens, the classes asked for are the model's, a mask file is not combined with classes."""

    def __init__(self, photos: Sequence[Path], *, model: str | Path | None = None, mask: str | Path | None = None,
                 classes: Sequence[str] | None = None, groups: str | Path | dict[str, list[str]] | None = None,
                 score: float = 0.5, need_classes: bool = True) -> None:
        from masksmith.apps.selection import read_groups, resolve_classes

        self.photos = [Path(p) for p in photos]
        self.mask_file = Path(mask) if mask is not None else None
        self.predictor: Any = None
        self.classes: Any = None
        self.wanted: list[str] = []
        if (model is None) == (mask is None):
            raise MasksmithError("give either a model or a `mask` file.",
                                 fix="give the model file first, then the photos; or a `mask` file and photos.")
        if mask is not None and classes:
            raise MasksmithError("`classes` names a model's classes; with `mask` there is no model.",
                                 fix="leave out `classes` (the mask file says which pixels).")
        if model is not None:
            from masksmith.infer import open_predictor

            self.predictor = open_predictor(model, score_threshold=score)
            self.classes = self.predictor.classes
            group_map = groups if isinstance(groups, dict) else read_groups(groups)
            self.wanted = resolve_classes(classes, self.classes.names, group_map, model,
                                          default_all=not need_classes)
        if not self.photos:
            raise MasksmithError("no photo given.", fix="give one or more photos after the model.")

    @classmethod
    def from_arguments(cls, inputs: Sequence[Path], mask: Path | None, classes: Sequence[str] | None,
                       groups: Path | None, score: float = 0.5, need_classes: bool = True) -> MaskSource:
        """From a command's arguments: MODEL PHOTO..., or with a `mask` file PHOTO... alone."""
        if mask is not None:
            return cls(inputs, mask=mask, classes=classes, groups=groups, score=score, need_classes=need_classes)
        if len(inputs) < 2:
            raise MasksmithError("give a model and at least one photo (or a `mask` file and photos).",
                                 fix="give the model file (or run folder) first, then the photos.")
        return cls(inputs[1:], model=inputs[0], classes=classes, groups=groups, score=score,
                   need_classes=need_classes)

    def jobs(self, folder: Any) -> list[Any]:
        """The photos (folders expanded) with their output names in `folder` (an OutputFolder)."""
        from masksmith.infer.batch import plan_outputs

        return plan_outputs(self.photos, folder)

    def describe(self) -> str:
        """What the masks hold, for messages: the wanted classes, or 'the mask'."""
        return ", ".join(self.wanted) or "the mask"

    def masks(self, image: np.ndarray, split_regions: bool, min_pixels: int = 16) -> list[np.ndarray]:
        """The wanted objects' masks in a photo: one per object or connected region, or with
        split_regions=False one mask of all their pixels."""
        from masksmith.apps.selection import object_masks, read_mask_file

        if self.predictor is None:
            mask = read_mask_file(self.mask_file, image.shape[:2])
            if not split_regions:
                return [mask]
            from masksmith.apps.paste import regions

            return regions(mask, min_pixels)
        return object_masks(self.predictor.predict(image), self.classes, self.wanted, min_pixels, split_regions)

    def part(self, image: np.ndarray) -> np.ndarray:
        """(H, W) bool: every wanted pixel of the photo (empty when none was found)."""
        from masksmith.apps.selection import union_of

        return union_of(self.masks(image, split_regions=False), image.shape[:2])

    def respray_masks(self, image: np.ndarray):
        """What a respray needs in this photo (`masksmith.apps.respray.ResprayMasks`): the wanted parts, the
        car (every predicted class: where the paint may grow) and the other parts (kept). With a mask file
        there is no car: the paint stays inside the mask."""
        from masksmith.apps.respray import ResprayMasks, respray_masks

        if self.predictor is None:
            part = self.part(image)
            return ResprayMasks(part, None, None)
        return respray_masks(self.predictor.predict(image), self.classes, self.wanted, image.shape[:2])
