"""The one schema every annotation format is read into and written from.

A data set is a plain list of samples (one per image) plus its classes, in the spirit of Detectron2's
"list of dicts": format readers never touch training code, and training never knows the format.

Geometry conventions (the COCO ones, so that masks match pycocotools pixel for pixel):
- coordinates are in pixels of the full-size image, x to the right, y down;
- (0, 0) is the top-left corner of the top-left pixel, so a pixel (col, row) covers [col, col+1) x [row, row+1);
- a polygon is an (N, 2) float array of (x, y) vertices, N >= 3, implicitly closed;
- a region may hold several polygons (parts of one object) or a mask in COCO RLE form, never both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from masksmith.core.errors import DatasetError, MasksmithError
from masksmith.core.labels import BACKGROUND, MAX_CLASSES, ClassMap, class_color


@dataclass
class ClassInfo:
    """One class: its name and the colour it is drawn in. Its index is its position in Dataset.classes + 1."""

    name: str
    color: tuple[int, int, int]


@dataclass
class Region:
    """One annotated object (or, for mask-image sources, all pixels of one class in one image)."""

    label: str
    polygons: list[np.ndarray] = field(default_factory=list)
    rle: dict[str, Any] | None = None  # COCO RLE {"size": [h, w], "counts": bytes|str|list}
    iscrowd: bool = False
    is_instance: bool = True  # False when the source only knows classes, not objects (mask folders)
    attributes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.polygons = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in self.polygons]

    @property
    def kind(self) -> str:
        return "mask" if self.rle is not None else "polygon"

    def bbox(self) -> tuple[float, float, float, float]:
        """(x, y, width, height) of the region, the COCO way."""
        if self.rle is not None:
            from pycocotools import mask as mask_utils

            x, y, w, h = mask_utils.toBbox(self.rle).tolist()
            return (x, y, w, h)
        pts = np.concatenate(self.polygons, axis=0)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


@dataclass
class Sample:
    """One image and its regions."""

    name: str  # the image's path relative to the data set root, with forward slashes
    image_path: Path | None
    width: int
    height: int
    regions: list[Region] = field(default_factory=list)
    ignore_rle: dict[str, Any] | None = None  # pixels to leave out of training and metrics (VOC void)
    image_data: bytes | None = None  # embedded image bytes (LabelMe imageData) when there is no file
    split: str | None = None  # "train", "val" or "test" when the data set's layout says so (split folders)
    # shapes whose pixels are known but not their class (a dropped region, a box-only annotation): painted as
    # void once the image size is known, so they are neither learned nor counted as background
    void_regions: list[Region] = field(default_factory=list)
    skipped: int = 0  # annotations of this image left out on purpose (lines, points, box-only): not "unannotated"
    image_missing: bool = False  # set by the checks when only the annotation file was needed (inspect)

    def open_image(self) -> Image.Image:
        """The decoded, upright image (EXIF orientation applied): the file, or the embedded bytes when the
        file is not there."""
        from masksmith.core.images import ImageReadError, open_image

        if self.image_data is not None and (self.image_path is None or not self.image_path.exists()):
            source: Path | bytes = self.image_data
        elif self.image_path is None:
            raise DatasetError("the sample has neither an image file nor embedded image data.",
                               item=self.name, fix="point the annotation at an existing image file.")
        else:
            source = self.image_path
        try:
            return open_image(source)
        except ImageReadError as exc:
            raise DatasetError(exc.problem, path=self.image_path or self.name, item=self.name,
                               fix=exc.fix) from None

    def load_image(self) -> np.ndarray:
        """The image as an upright (H, W, 3) uint8 RGB array (high bit depths scaled to 8 bits)."""
        from masksmith.core.images import to_rgb

        return to_rgb(self.open_image())


# What a problem cost: the one region (the rest of its image is kept), the image, a whole annotation file, or
# nothing (a problem that is only reported, such as images missing while inspecting the annotations alone).
DROPPED = ("region", "image", "file", "")


@dataclass
class Problem:
    """Something wrong with one item of a data set: what was dropped (see DROPPED) and why."""

    path: str
    item: str
    message: str
    fix: str = ""
    dropped: str = "image"
    count: int = 1  # items this one line stands for (e.g. "12 images are missing: ...")

    def __str__(self) -> str:
        text = f"{self.path}: {self.item}: {self.message}" if self.item else f"{self.path}: {self.message}"
        return text + (f" Fix: {self.fix}" if self.fix else "")


@dataclass
class Note:
    """Something the report must say that is not a fault: annotations left out on purpose (`skipped`: line
    shapes, box-only annotations, video files) or a choice made while reading (folders, options, splits)."""

    message: str  # with {n} where the count goes
    count: int = 0
    examples: list[str] = field(default_factory=list)
    fix: str = ""
    skipped: bool = True

    def __str__(self) -> str:
        text = self.message.replace("{n}", str(self.count))  # never str.format: names from data hold braces
        if self.examples:
            more = " ..." if self.count > len(self.examples) else ""
            text += f" (e.g. {'; '.join(self.examples)}{more})"
        return text + (f" {self.fix}" if self.fix else "")


MAX_EXAMPLES = 3


class ProblemLog:
    """Collects problems and notes. Strict logs raise at the first problem; lenient logs record it so the item
    is dropped. Notes never raise: each kind is counted once, with a few examples."""

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict
        self.problems: list[Problem] = []
        self._notes: dict[str, Note] = {}
        # image base names that several files below the data set folder share ({name: their paths}): images
        # named so are not guessed, and are reported as ambiguous rather than missing (masksmith.data.checks)
        self.ambiguous: dict[str, list[str]] = {}

    def add(self, message: str, *, path: str | Path, item: str = "", fix: str = "", dropped: str = "image") -> None:
        if self.strict:
            raise DatasetError(message, path=path, item=item or None, fix=fix or None)
        self.problems.append(Problem(str(path), item, message, fix, dropped))

    def report(self, problem: Problem) -> None:
        """Record a problem that never stops reading, in strict mode too (what the caller decides to say)."""
        self.problems.append(problem)

    def note(self, message: str, item: str = "", *, fix: str = "", skipped: bool = True, count: int = 1) -> None:
        """Count one more case of `message` (a template with {n}); `item` may become one of its examples."""
        note = self._notes.setdefault(message, Note(message, fix=fix, skipped=skipped))
        note.count += count
        if item and len(note.examples) < MAX_EXAMPLES and item not in note.examples:
            note.examples.append(item)

    @property
    def notes(self) -> list[Note]:
        return list(self._notes.values())


@dataclass
class Dataset:
    """Classes and samples in one schema; `format` names the reader that produced it."""

    classes: list[ClassInfo]
    samples: list[Sample]
    format: str = "unknown"
    root: Path | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    # what the reader found that the report shows: "folders" (chosen image/mask folders), "mask_values" ({value:
    # pixels} of index masks), "mask_names" ({value: class or "void"}), "options" (the reading options used)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def class_map(self) -> ClassMap:
        """The classes as a ClassMap: mask value i + 1 for classes[i], their colours, background 0, void 255."""
        return ClassMap(tuple(c.name for c in self.classes), tuple(tuple(c.color) for c in self.classes))

    def recolor_classes(self, colors: dict[str, Any]) -> None:
        """Draw the named classes in other colours ({name: (r, g, b)}); unknown names are refused."""
        unknown = sorted(set(colors) - set(self.class_names))
        if unknown:
            raise DatasetError(f"class colours name classes this data set does not have: {', '.join(unknown)}.",
                               fix=f"use the class names: {', '.join(self.class_names)}.")
        try:
            recolored = self.class_map.recolored(colors)
        except MasksmithError as exc:
            raise DatasetError(exc.problem, fix=exc.fix) from None
        for info, color in zip(self.classes, recolored.colors, strict=True):
            info.color = color


def make_classes(names: list[str], colors: dict[str, tuple[int, int, int]] | None = None) -> list[ClassInfo]:
    """ClassInfo list for `names` (background dropped): the data set's own colours where it has them, else the
    default palette (`class_color`)."""
    colors = colors or {}
    out: list[ClassInfo] = []
    for name in names:
        if name == BACKGROUND or name in (c.name for c in out):
            continue
        out.append(ClassInfo(name, tuple(colors.get(name, class_color(len(out) + 1)))))  # type: ignore[arg-type]
    if len(out) > MAX_CLASSES:
        raise DatasetError(f"{len(out)} classes are more than the {MAX_CLASSES} a mask can hold.",
                           fix="merge classes or split the data set.")
    return out
