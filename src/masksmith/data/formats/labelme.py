"""LabelMe JSON: one file per image, {version, flags, shapes, imagePath, imageData, imageHeight, imageWidth}.

A folder of such files (sub-folders included) is one data set. What LabelMe's own tools (labelme2voc,
labelme2coco) do is done here too:
- shapes with the same label and a non-null group_id are one object with several parts (one region);
- `imagePath` is relative to the JSON file; when it is not there the image is looked for by its bare name
  (only ever under the data set's folder: the folder read, or its parent when that folder is an annotations
  folder such as `ann/`, `annotations/`, `labels/` or `json/` beside the images);
- embedded `imageData` (base64) is kept on the sample, so a JSON without its image still trains; it is also
  used when `imagePath` is missing, names no image file, or names the JSON itself;
- a `labels.txt` beside the files (labelme2voc's class list, one name a line) fixes the class order, and
  shapes labelled `__ignore__` mark pixels to leave out (the sample's void mask);
- the legacy instance suffix: labels `person-1`, `person-2` are one class `person` and two objects, as
  labelme's own converters (shapes_to_label with type='instance', labelme2coco) read them. Option
  `instance_suffix`: "auto" (default) reads a label `NAME-<number>` so when the data set uses NAME with two
  or more numbers, or NAME itself, or labels.txt lists NAME (and not the suffixed label); true always,
  false never. Unlike labelme (which cuts at the first '-'), only a trailing `-<number>` is the suffix, so
  `traffic-light-1` is class `traffic-light`.
Shapes without area (line, linestrip, point, points) are left out and counted in the report. Sub-folders named
train/, val/, test/ are the data set's splits.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from masksmith.core.errors import DatasetError
from masksmith.core.images import ImageReadError, image_size
from masksmith.core.labels import BACKGROUND
from masksmith.data.formats._common import (
    ImageFinder,
    Option,
    as_float,
    ellipse,
    is_image_file,
    load_json,
    points_array,
    rectangle,
    rel_name,
    split_name,
    usable_name,
)
from masksmith.data.formats._write import (
    check_class_names,
    coordinate,
    copy_image,
    output_folder,
    output_names,
    region_polygons,
    require_size,
    split_stems,
)
from masksmith.data.rasterize import placed_rle, polygons_to_rle
from masksmith.data.schema import ClassInfo, Dataset, ProblemLog, Region, Sample, make_classes

NAME = "labelme"
DESCRIPTION = "LabelMe JSON (one file per image)"

IGNORE_LABEL = "__ignore__"  # labelme2voc's label for "don't care" pixels
LABELS_FILE = "labels.txt"
MAX_PIXELS = 1 << 28  # 16k x 16k: the largest image a 'mask' shape or void area is painted on

_HEAD_BYTES = 1 << 16
_FOLDER_PROBES = 5
_SHAPES_KEY = re.compile(rb'"shapes"\s*:')
_OTHER_KEYS = re.compile(rb'"(imagePath|imageData|shape_type)"\s*:')
_NO_AREA = {"line", "linestrip", "point", "points"}
NO_AREA = "{n} line or point shape(s) skipped: lines and points have no area"
# folders that hold the JSON files of a data set whose images lie in a sibling folder
ANNOTATION_FOLDERS = frozenset({"ann", "anns", "annotation", "annotations", "label", "labels", "json", "jsons",
                                "labelme"})
_SUFFIX = re.compile(r"^(.+)-(\d+)$")
OPTIONS = (
    Option("labels", "the class list (a list, or a file with one name a line, like labelme2voc's labels.txt); "
           "by default labels.txt beside the files", None),
    Option("instance_suffix", "read labels NAME-1, NAME-2 as class NAME, objects 1 and 2: auto, true or false",
           "auto"),
)








def _looks_like_labelme(path: Path) -> bool:
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    with path.open("rb") as f:
        head = f.read(_HEAD_BYTES)
    return bool(_SHAPES_KEY.search(head) and _OTHER_KEYS.search(head))


def detect(path: Path) -> int | bool:
    """True for a LabelMe file or a folder of them; 2 when the files lie one folder down (ann/, labels/)."""
    if path.is_file():
        return _looks_like_labelme(path)
    if not path.is_dir():
        return False
    if any(_looks_like_labelme(p) for p in sorted(path.glob("*.json"))[:_FOLDER_PROBES]):
        return True
    return 2 if any(_looks_like_labelme(p) for p in sorted(path.glob("*/*.json"))[:_FOLDER_PROBES]) else False


def _json_files(folder: Path) -> list[Path]:
    """Every JSON file below `folder`, skipping hidden folders (.git, .ipynb_checkpoints, ...)."""
    out = []
    for p in sorted(folder.rglob("*.json")):
        parts = p.relative_to(folder).parts
        if p.is_file() and not any(part.startswith(".") for part in parts):
            out.append(p)
    return out


@dataclass
class _Group:
    """The shapes of one object: polygons, and the RLEs of LabelMe 'mask' shapes among them."""

    label: str
    polygons: list[np.ndarray] = field(default_factory=list)
    masks: list[dict[str, Any]] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Image:
    """What one LabelMe file says about its image: where it is and how big."""

    file: Path
    path: Path | None
    data: bytes | None
    width: int
    height: int

    def size(self, item: str) -> tuple[int, int]:
        """(width, height): from the JSON, else from the image; needed to place masks and void pixels."""
        if self.width <= 0 or self.height <= 0:
            self.width, self.height = self._image_size(item)
        if self.width * self.height > MAX_PIXELS:  # a full-size mask of it would not fit in memory
            raise DatasetError(f"the image is {self.width} x {self.height} pixels, too large to paint masks "
                               "on.", path=self.file, item=item,
                               fix="check imageWidth and imageHeight in the file.")
        return self.width, self.height

    def _image_size(self, item: str) -> tuple[int, int]:
        size = None
        for source in (self.path, self.data):
            if size is None and source is not None:
                with contextlib.suppress(ImageReadError):
                    size = image_size(source)
        if size is None or min(size) <= 0:
            raise DatasetError("imageWidth and imageHeight are missing and the image cannot be read.",
                               path=self.file, item=item, fix="save the file from LabelMe with its image.")
        return size


def _polygon(shape: dict[str, Any], kind: str, *, path: Path, item: str) -> np.ndarray:
    """A polygon, rectangle or circle shape as a polygon."""
    try:
        pts = points_array(shape.get("points"), path=path, item=item) if kind == "polygon" else \
            _corners(shape.get("points"), kind, path=path, item=item)
    except OverflowError:
        raise DatasetError("the shape's points are too large to be pixels.", path=path, item=item) from None
    if not np.isfinite(pts).all():
        raise DatasetError("the shape's points are too large to be pixels.", path=path, item=item)
    return pts


def _corners(points: Any, kind: str, *, path: Path, item: str) -> np.ndarray:
    """Rectangles are two opposite corners (any order); circles are the centre and a point on the rim."""
    if not isinstance(points, list) or len(points) < 2 or \
            not all(isinstance(p, list) and len(p) == 2 for p in points):
        raise DatasetError(f"a {kind} needs two [x, y] points.", path=path, item=item,
                           fix="redraw the shape in LabelMe.")
    pts = np.array([[as_float(v, path=path, item=item, what="a point coordinate") for v in p] for p in points])
    if kind == "rectangle":
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        if x1 <= x0 or y1 <= y0:
            raise DatasetError("the rectangle has no area.", path=path, item=item,
                               fix="delete the shape or redraw it.")
        return rectangle(x0, y0, x1 - x0, y1 - y0)
    (cx, cy), (px, py) = pts[0], pts[1]
    r = math.hypot(px - cx, py - cy)
    if not 0 < r < 1e7:
        raise DatasetError(f"the circle has radius {r:g}.", path=path, item=item,
                           fix="delete the shape or redraw it.")
    return ellipse(cx, cy, r, r)


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=False)


def _mask(shape: dict[str, Any], image: _Image, *, path: Path, item: str) -> dict[str, Any]:
    """A LabelMe 'mask' shape (a PNG of the object's box, placed at its top-left point) as an image-size RLE."""
    points, data = shape.get("points"), shape.get("mask")
    if not isinstance(data, str) or not isinstance(points, list) or not points or \
            not isinstance(points[0], list) or len(points[0]) != 2:
        raise DatasetError("the mask shape has no 'mask' image or no corner point.", path=path, item=item,
                           fix="redraw the mask in LabelMe.")
    try:
        with Image.open(io.BytesIO(_b64(data))) as im:
            part = np.asarray(im.convert("L")) > 0
    except Exception:  # noqa: BLE001 - bad base64 or PNG: PIL and binascii raise many types
        raise DatasetError("the shape's 'mask' is not a base64 PNG.", path=path, item=item,
                           fix="redraw the mask in LabelMe.") from None
    x0 = int(math.floor(as_float(points[0][0], path=path, item=item, what="the mask's x")))
    y0 = int(math.floor(as_float(points[0][1], path=path, item=item, what="the mask's y")))
    width, height = image.size(item)
    # LabelMe lets boxes reach a pixel past the border: placed_rle clips the box to the image
    return placed_rle(part, x0, y0, height, width)


def _shape_kind(shape: dict[str, Any], *, path: Path, item: str) -> str:
    kind = shape.get("shape_type")
    if kind is None:
        return "polygon"  # LabelMe before 3.0 wrote no shape_type: every shape was a polygon
    if not isinstance(kind, str):
        raise DatasetError(f"shape_type is {str(kind)[:40]}, not a name.", path=path, item=item)
    return kind


def _group_key(shape: dict[str, Any], label: str, index: int) -> tuple[Any, ...]:
    group = shape.get("group_id")
    if group is None or isinstance(group, (list, dict)):
        return ("shape", index)
    return ("group", label, group)


def _shape_attributes(shape: dict[str, Any]) -> dict[str, Any]:
    return {k: shape[k] for k in ("group_id", "flags", "description") if shape.get(k) not in (None, {}, "")}


def _groups(shapes: list[Any], image: _Image, log: ProblemLog, *, path: Path, name: str
            ) -> tuple[list[_Group], list[np.ndarray], list[np.ndarray], int]:
    """Objects in paint order (a group sits where its first shape is), the polygons of void pixels, the shapes
    whose class is missing (also void), and the count of shapes skipped for having no area.

    A shape that cannot be used is dropped alone (lenient mode); the file's other shapes are kept."""
    groups: dict[tuple[Any, ...], _Group] = {}
    ignore: list[np.ndarray] = []
    unlabelled: list[np.ndarray] = []
    skipped = 0
    for k, shape in enumerate(shapes):
        item = f"{name}, shape {k + 1}"
        try:
            if not isinstance(shape, dict):
                raise DatasetError(f"the shape is a {type(shape).__name__}, not an object.", path=path, item=item)
            kind = _shape_kind(shape, path=path, item=item)
            if kind in _NO_AREA:
                skipped += 1  # lines and points mark nothing to segment, whatever their label says
                log.note(NO_AREA, item)
                continue
            label = shape.get("label")
            if isinstance(label, str) and label.strip():
                item = f"{name}, shape {k + 1} ({label})"
            if label == BACKGROUND:
                if groups:  # labelme2voc paints it as background over earlier shapes; masksmith cannot
                    raise DatasetError(f"a {BACKGROUND!r} shape is drawn over other shapes.", path=path,
                                       item=item, fix="cut the hole into the other shapes, or delete this one.")
                continue  # drawn first it changes nothing: everything unlabelled is background anyway
            if kind == "mask":
                part: Any = _mask(shape, image, path=path, item=item)
            elif kind in ("polygon", "rectangle", "circle"):
                part = _polygon(shape, kind, path=path, item=item)
            else:
                raise DatasetError(f"shape_type {kind!r} is not one LabelMe draws (polygon, rectangle, circle, "
                                   "mask, line, point, linestrip).", path=path, item=item,
                                   fix="redraw the shape in LabelMe or delete it.")
            if not isinstance(label, str) or not label.strip():
                unlabelled.append(part)
                raise DatasetError("the shape has no label.", path=path, item=item,
                                   fix="label the shape in LabelMe or delete it.")
        except DatasetError as exc:
            log.add(exc.problem, path=path, item=exc.item or item, fix=exc.fix or "", dropped="region")
            continue
        if label == IGNORE_LABEL:
            ignore.append(part)
            continue
        key = _group_key(shape, label, k)
        group = groups.setdefault(key, _Group(label, attributes=_shape_attributes(shape)))
        (group.masks if kind == "mask" else group.polygons).append(part)
    return list(groups.values()), ignore, unlabelled, skipped


def _union(parts: list[np.ndarray], image: _Image, item: str) -> dict[str, Any]:
    """One RLE of polygons and mask shapes (already image-size RLEs) together."""
    width, height = image.size(item)
    polygons = [p for p in parts if not isinstance(p, dict)]
    rles = [p for p in parts if isinstance(p, dict)]
    if polygons:
        rles.append(polygons_to_rle(polygons, height, width))
    return mask_utils.merge(rles) if len(rles) > 1 else rles[0]


def _region(group: _Group, image: _Image, item: str) -> Region:
    if not group.masks:
        return Region(label=group.label, polygons=group.polygons, attributes=group.attributes)
    rle = _union(group.masks + group.polygons, image, item)
    return Region(label=group.label, rle=rle, attributes=group.attributes)


def _void(parts: list[np.ndarray], image: _Image, item: str) -> dict[str, Any] | None:
    """One RLE of every __ignore__ shape (polygons and masks alike): the sample's void pixels."""
    return _union(parts, image, item) if parts else None


def _image(data: dict[str, Any], file: Path, finder: ImageFinder, name: str) -> _Image:
    """Where the image is (imagePath is relative to the JSON file), its embedded bytes and its size."""
    image_path: Path | None = None
    raw = data.get("imagePath")
    if isinstance(raw, str) and raw.strip():
        rel = raw.replace("\\", "/")
        if not usable_name(rel, file.parent):
            raise DatasetError("imagePath is too long to be a file name.", path=file,
                               fix="rename the image and save the annotations from LabelMe again.")
        # an imagePath that names no image (or this very JSON, as some scripts write) is no image: the
        # embedded imageData stands in, when there is one
        if is_image_file(Path(rel)) or data.get("imageData") is None:
            found = finder.find(rel, near=file.parent)
            image_path = found if found is not None and found != file else (
                None if found == file else finder.fallback(rel))
    blob = None
    # the bytes are kept only when the file is missing: open_image() prefers the file, and a folder of
    # photos' worth of base64 would otherwise sit in memory for nothing
    if data.get("imageData") is not None and (image_path is None or not image_path.is_file()):
        if not isinstance(data["imageData"], str):
            raise DatasetError("imageData is not base64 text.", path=file, item=name,
                               fix="save the file from LabelMe again.")
        try:
            blob = _b64(data["imageData"])
        except (binascii.Error, ValueError):
            raise DatasetError("imageData is not valid base64.", path=file, item=name,
                               fix="save the file from LabelMe again.") from None
    if image_path is None and blob is None:
        raise DatasetError("the file names no image (imagePath) and embeds none (imageData).", path=file,
                           item=name, fix="open the image in LabelMe and save the annotations again.")
    dims = [as_float(data.get(k) or 0, path=file, item=name, what=k) for k in ("imageWidth", "imageHeight")]
    width, height = (int(v) if 0 < v < 1e9 else 0 for v in dims)
    return _Image(file, image_path, blob, width, height)


def _sample(data: dict[str, Any], file: Path, finder: ImageFinder, log: ProblemLog) -> Sample:
    """The sample of one LabelMe file, or a DatasetError naming what is wrong with it."""
    root = finder.root
    name = rel_name(file, root)
    shapes = data.get("shapes")
    if not isinstance(shapes, list):
        raise DatasetError("'shapes' is not a list.", path=file, item=name,
                           fix="save the file from LabelMe again.")
    image = _image(data, file, finder, name)
    groups, ignore, unlabelled, skipped = _groups(shapes, image, log, path=file, name=name)
    regions = [_region(g, image, name) for g in groups]
    void = _void(ignore, image, name)
    voids = [_region(_Group("", polygons=[] if isinstance(p, dict) else [p], masks=[p] if isinstance(p, dict) else []),
                     image, name) for p in unlabelled]
    sample_name = rel_name(image.path if image.path is not None else file.with_suffix(""), root)
    return Sample(name=sample_name, image_path=image.path, width=image.width, height=image.height,
                  regions=regions, ignore_rle=void, image_data=image.data, void_regions=voids, skipped=skipped)


def _label_list(root: Path, option: Any) -> list[str] | None:
    """Class names from option `labels` (a list or a file) or a labels.txt in the root, one name a line."""
    if isinstance(option, (list, tuple)):
        names = [str(n).strip() for n in option]
    else:
        file = Path(option) if isinstance(option, (str, Path)) else root / LABELS_FILE
        if option is None and not file.is_file():
            return None
        try:
            names = [line.strip() for line in file.read_text(encoding="utf-8-sig").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"cannot be read as a class list ({exc}).", path=file,
                               fix="write one class name a line, in UTF-8.") from None
    return [n for n in names if n and n not in (IGNORE_LABEL, BACKGROUND)]


def _classes(names: list[str] | None, samples: list[Sample]) -> list[ClassInfo]:
    if names is not None:
        return make_classes(names)
    seen: dict[str, None] = {}
    for sample in samples:
        for region in sample.regions:
            seen.setdefault(region.label, None)
    return make_classes(list(seen))


def _read_one(file: Path, finder: ImageFinder, log: ProblemLog, single: bool) -> Sample | None:
    """One file's sample. A lone file's faults raise; in a folder they are logged and the file skipped."""
    try:
        data = load_json(file)
        if not isinstance(data, dict) or "shapes" not in data:
            if not single:
                return None  # another tool's JSON beside the LabelMe files (a config, a COCO file ...)
            raise DatasetError("is not a LabelMe file: it has no 'shapes' list.", path=file,
                               fix="point at a JSON that LabelMe saved (with shapes and imagePath).")
        return _sample(data, file, finder, log)
    except DatasetError as exc:
        if single and exc.item is None:
            raise
        log.add(exc.problem, path=exc.path or file, item=exc.item or "", fix=exc.fix or "")
        return None


def data_root(folder: Path) -> Path:
    """Where images are looked for: the folder read, or its parent when it is an annotations folder
    (`set/ann/*.json` beside `set/img/`, imagePath `../img/x.jpg`)."""
    if folder.name.lower() in ANNOTATION_FOLDERS and folder.parent != folder:
        return folder.parent
    return folder


def read(path: Path, log: ProblemLog, **options: Any) -> Dataset:
    path = Path(path)
    if path.is_file():
        folder, files = path.parent, [path]
    elif path.is_dir():
        folder, files = path, _json_files(path)
    else:
        raise DatasetError("does not exist.", path=path)
    root = data_root(folder)
    finder = ImageFinder(root)
    samples = []
    for f in files:
        sample = _read_one(f, finder, log, single=path.is_file())
        if sample is not None:
            parts = f.relative_to(folder).parts
            sample.split = split_name(parts[0]) if len(parts) > 1 else None
            samples.append(sample)
    finder.report(log)
    if path.is_dir() and not samples and not log.problems:
        raise DatasetError("holds no LabelMe JSON files.", path=path,
                           fix="point at the folder LabelMe saved its .json files in.")
    names = _label_list(folder if (folder / LABELS_FILE).is_file() else root, options.get("labels"))
    _instance_suffix(samples, names, options.get("instance_suffix", "auto"), log)
    return Dataset(classes=_classes(names, samples), samples=samples, root=root)


def _instance_suffix(samples: list[Sample], declared: list[str] | None, mode: Any, log: ProblemLog) -> None:
    """Labels NAME-<n> read as class NAME, object n (labelme's legacy instance suffix): the shapes of one such
    label in one file are the parts of one object."""
    if mode not in ("auto", True, False):
        raise DatasetError(f"option instance_suffix is {mode!r}.", fix="use auto, true or false.")
    if mode is False:
        return
    labels = {r.label for s in samples for r in s.regions}
    numbers: dict[str, set[str]] = {}
    for label in labels:
        m = _SUFFIX.match(label)
        if m:
            numbers.setdefault(m.group(1), set()).add(m.group(2))
    listed = set(declared or ())
    chosen = {base for base, n in numbers.items()
              if mode is True or len(n) >= 2 or base in labels or base in listed}
    chosen = {b for b in chosen if not any(f"{b}-{n}" in listed for n in numbers[b])}
    if not chosen:
        return
    for sample in samples:
        merged: dict[str, Region] = {}
        kept: list[Region] = []
        for region in sample.regions:
            m = _SUFFIX.match(region.label)
            if not m or m.group(1) not in chosen:
                kept.append(region)
                continue
            log.note("{n} shape label(s) read as class and object number (labelme's legacy instance suffix, e.g. "
                     "person-1 and person-2: two person objects)", region.label,
                     fix="(`instance_suffix=false` keeps them as class names.)", skipped=False)
            first = merged.get(region.label)
            if first is not None and first.rle is None and region.rle is None:
                first.polygons.extend(region.polygons)  # the same object drawn in parts
                continue
            region.attributes["instance"] = int(m.group(2))
            region.attributes["labelme_label"] = region.label
            region.label = m.group(1)
            merged.setdefault(region.attributes["labelme_label"], region)
            kept.append(region)
        sample.regions = kept


def check_writable(dataset: Dataset, **options: Any) -> None:
    """Refuse what this format cannot hold before a file is written (`convert` asks first)."""
    check_class_names(dataset, "LabelMe JSON", reserved=frozenset({IGNORE_LABEL}))


def write(dataset: Dataset, out: Any, **options: Any) -> None:
    """LabelMe's own layout: each image copied into `out` (sub-folders kept) with <stem>.json beside it, as
    LabelMe 5 saves it (version, flags, shapes, imagePath = the image's name beside the JSON, imageData null,
    imageHeight, imageWidth). Each region is a polygon shape; the parts of one object share a group_id."""
    import json
    from pathlib import PurePosixPath

    folder = output_folder(dataset, out)
    check_writable(dataset)
    for sample, name in zip(dataset.samples, split_stems(dataset, output_names(dataset)), strict=True):
        require_size(sample)
        copy_image(sample, folder, name)
        shapes, group = [], 0
        regions = list(sample.regions)
        if sample.ignore_rle is not None:  # void pixels as LabelMe's own __ignore__ shapes, read back as void
            regions.append(Region(IGNORE_LABEL, rle=sample.ignore_rle, is_instance=False))
        for region in regions:
            polygons = region_polygons(region, sample.height, sample.width)
            if len(polygons) > 1:
                group += 1
            for polygon in polygons:
                shapes.append({"label": region.label,
                               "points": [[coordinate(x), coordinate(y)] for x, y in polygon],
                               "group_id": group if len(polygons) > 1 else None, "description": "",
                               "shape_type": "polygon", "flags": {}})
        doc = {"version": "5.2.1", "flags": {}, "shapes": shapes, "imagePath": PurePosixPath(name).name,
               "imageData": None, "imageHeight": sample.height, "imageWidth": sample.width}
        folder.write_text(str(PurePosixPath(name).with_suffix(".json")), json.dumps(doc, indent=2))
