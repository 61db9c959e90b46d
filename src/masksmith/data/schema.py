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

from masksmith.errors import DatasetError

BACKGROUND = "_background_"
IGNORE_INDEX = 255  # value of "void" / "don't care" pixels in semantic masks (the Pascal VOC convention)
MAX_CLASSES = 254  # class indices 1..254 fit a uint8 mask beside background 0 and ignore 255


def voc_color(index: int) -> tuple[int, int, int]:
    """The Pascal VOC colour of class `index` (0 is black): the palette every segmentation tool knows."""
    r = g = b = 0
    c = index
    for bit in range(8):
        r |= ((c >> 0) & 1) << (7 - bit)
        g |= ((c >> 1) & 1) << (7 - bit)
        b |= ((c >> 2) & 1) << (7 - bit)
        c >>= 3
    return (r, g, b)


# The default class colours: bright (they read on dark photos; overlays add a dark outline for light ones),
# each clearly unlike its neighbours in the list (CIELAB distance >= 75) and no two of the first 20 alike
# (>= 14). The first, a saturated magenta, stands out on dark and light photos alike (contrast 6.7 against
# black, 3.2 against white) and is rare in real scenes: a single class gets it.
CLASS_PALETTE: tuple[tuple[int, int, int], ...] = tuple(
    (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)) for h in (
        "FF38C8", "00D2FF", "FFD000", "7C5CFF", "3DE05A", "FF6A2C", "00E0B4", "C86BFF", "B8F23C", "FF3A5C",
        "4AA8FF", "FFA030", "FF80E0", "2CF0F0", "E0E860", "9C8CFF", "70FF9C", "FF8C8C", "66C8FF", "FFC890"))
VOID_COLOR = (224, 224, 192)  # what the VOC palette draws void (255) in


def class_color(index: int) -> tuple[int, int, int]:
    """The default colour of class `index` (1-based; 0 is background, black). Beyond the 20 listed colours,
    golden-ratio hues at alternating saturation, all bright and all different (colour masks need that)."""
    if index <= 0:
        return (0, 0, 0)
    if index <= len(CLASS_PALETTE):
        return CLASS_PALETTE[index - 1]
    return _extra_colors()[index - len(CLASS_PALETTE) - 1]


_EXTRA: list[tuple[int, int, int]] = []


def _extra_colors() -> list[tuple[int, int, int]]:
    import colorsys

    if not _EXTRA:
        taken = {(0, 0, 0), VOID_COLOR, *CLASS_PALETTE}
        k = 0
        while len(_EXTRA) < MAX_CLASSES - len(CLASS_PALETTE):
            hue = (0.9 + 0.61803398875 * k) % 1.0
            saturation, value = ((0.95, 1.0), (0.6, 1.0), (0.85, 0.85))[k % 3]
            color = tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, saturation, value))
            if color not in taken:
                taken.add(color)
                _EXTRA.append(color)  # type: ignore[arg-type]
            k += 1
    return _EXTRA


def voc_palette() -> list[int]:
    """A flat 768-entry palette for PIL 'P' images, index 255 drawn in VOC's cream colour for void."""
    pal: list[int] = []
    for i in range(256):
        pal.extend(voc_color(i))
    pal[IGNORE_INDEX * 3: IGNORE_INDEX * 3 + 3] = list(VOID_COLOR)
    return pal


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
        from masksmith.images import ImageReadError, open_image

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
        from masksmith.images import to_rgb

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

    def class_to_index(self) -> dict[str, int]:
        """Semantic-mask value of each class: 1..N in declaration order (0 is background)."""
        return {c.name: i + 1 for i, c in enumerate(self.classes)}

    def colors(self) -> list[tuple[int, int, int]]:
        """Colour of each semantic index, background (black) first."""
        return [(0, 0, 0)] + [c.color for c in self.classes]

    def recolor_classes(self, colors: dict[str, Any]) -> None:
        """Draw the named classes in other colours ({name: (r, g, b)}); unknown names are refused."""
        known = set(self.class_names)
        unknown = sorted(set(colors) - known)
        if unknown:
            raise DatasetError(f"class colours name classes this data set does not have: {', '.join(unknown)}.",
                               fix=f"use the class names: {', '.join(self.class_names)}.")
        for c in self.classes:
            if c.name in colors:
                r, g, b = (int(v) for v in colors[c.name])
                if not all(0 <= v <= 255 for v in (r, g, b)):
                    raise DatasetError(f"class {c.name!r}: colour {colors[c.name]!r} is not three values 0-255.")
                c.color = (r, g, b)


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
