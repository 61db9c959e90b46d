"""VGG Image Annotator: VIA 1.x/2.x JSON (export or full project), VIA 1.x/2.x CSV export, VIA 3 project.

- VIA 2 JSON export: {"<filename><size>": {filename, size, regions, file_attributes}}; `regions` is a list,
  or in VIA 1.x an object keyed "0", "1", ... A VIA 2 project file wraps the same under `_via_img_metadata`
  beside `_via_attributes` (the attribute definitions) and `_via_settings`.
- VIA CSV: one row per region (filename, file_size, file_attributes, region_count, region_id,
  region_shape_attributes, region_attributes), JSON in the last columns; an image without regions has '{}'.
- VIA 3 project: {project, config, attribute, file, metadata, view}; a region is a metadata entry with
  z == [] and xy == [shape id, coordinates...], its attributes in `av` keyed by attribute id.

- VIA 1.0 CSV (header `#filename,...`): the same columns, but attributes written as `key=value` pairs
  separated by `;` (or `\\;`), arrays as `[1:2:3]`.
VIA writes JavaScript `undefined` into attribute columns of its CSV for attributes it has no value for; it is
read as an empty value.

VIA stores no class field: the class is the region attribute named by option `label_attribute` ("name" by
default, matched against VIA 3's attribute names). Checkbox attributes give the one ticked option. VIA stores
no image size either, so samples leave it at 0 for the checks to read from the image file.
Points and open lines (2-point polylines) have no area: they are counted in the report and left out. A VIA 3
project of video or audio files holds no images and is refused with that reason.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from masksmith.core.errors import DatasetError
from masksmith.data.formats._common import (
    ImageFinder,
    Option,
    as_float,
    ellipse,
    load_json,
    points_array,
    rectangle,
    rel_name,
    stem_folders,
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
)
from masksmith.data.schema import ClassInfo, Dataset, ProblemLog, Region, Sample, make_classes

NAME = "via"
DESCRIPTION = "VGG Image Annotator (VIA 1/2 JSON or CSV, VIA 3 project)"
OPTIONS = (Option("label_attribute", "the region attribute that holds the class", "name"),)
NO_AREA = "{n} point or line region(s) skipped: points and lines have no area"

DEFAULT_LABEL_ATTRIBUTE = "name"
CSV_HEADER = ("filename,file_size,file_attributes,region_count,region_id,region_shape_attributes,"
              "region_attributes")

_AGAIN = "export the annotations from VIA again."
_HEAD_BYTES = 1 << 16
_FOLDER_PROBES = 8  # detect() looks at no more files than this in a folder
_VIA2_PROJECT = re.compile(rb'"_via_(img_metadata|settings|attributes)"\s*:')
_VIA2_EXPORT = (re.compile(rb'"filename"\s*:'), re.compile(rb'"regions"\s*:'))
_VIA3_PROJECT = (re.compile(rb'"vid_list"\s*:'), re.compile(rb'"pid"\s*:'))

# VIA 2 attribute types whose values are option ids; VIA 3's CHECKBOX 2, RADIO 3, SELECT 4 (TEXT is 1)
# (tuples, not sets: a value from the file may be unhashable)
_OPTION_TYPES_2 = ("dropdown", "radio", "checkbox", "image")
_OPTION_TYPES_3 = (2, 3, 4)
_VIA3_IMAGE, _VIA3_VIDEO, _VIA3_AUDIO = 2, 4, 8  # _VIA_FILE_TYPE: only images are read
_VIA3_INLINE = 4  # _VIA_FILE_LOC.INLINE: `src` holds the image as a data URL
# _VIA_RSHAPE
_POINT, _RECT, _CIRCLE, _ELLIPSE, _LINE, _POLYLINE, _POLYGON, _EXTREME_RECT, _EXTREME_CIRCLE = range(1, 10)








def _kind(path: Path) -> str | None:
    """'project2', 'export2', 'via3' or 'csv' for a VIA file, None for anything else. Reads one small head."""
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    with path.open("rb") as f:
        head = f.read(_HEAD_BYTES)
    if suffix in (".csv", ".txt"):
        first = head.decode("utf-8", "ignore").lstrip("\ufeff").splitlines()[:1]
        return "csv" if first and _is_csv_header(first[0]) else None
    if suffix != ".json":
        return None
    if _VIA2_PROJECT.search(head):
        return "project2"
    if all(p.search(head) for p in _VIA3_PROJECT):
        return "via3"
    if all(p.search(head) for p in _VIA2_EXPORT):
        return "export2"
    return None


def _is_csv_header(line: str) -> bool:
    # VIA 1.0 wrote '#filename,...'; spreadsheets may add spaces or a trailing comma
    return line.strip().lstrip("#").rstrip(",").replace(" ", "") == CSV_HEADER


def _candidates(folder: Path) -> list[Path]:
    """JSON and CSV files directly in `folder`, those with 'via' in the name first."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".json", ".csv")]
    return sorted(files, key=lambda p: ("via" not in p.name.lower(), p.name))


def annotation_file(path: Path) -> Path:
    """The VIA file for `path`: the file itself, or the one VIA file in the folder."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise DatasetError("does not exist.", path=path)
    found = [p for p in _candidates(path) if _kind(p)]
    if not found:
        raise DatasetError("holds no VIA annotation file (JSON or CSV exported by VIA).", path=path,
                           fix="export the annotations from VIA (Annotation > Export) into this folder.")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DatasetError(f"holds several VIA files ({names}).", path=path, fix="point at the one you mean.")
    return found[0]


def detect(path: Path) -> bool:
    if path.is_file():
        return _kind(path) is not None
    if not path.is_dir():
        return False
    return any(_kind(p) for p in _candidates(path)[:_FOLDER_PROBES])


ShapeParser = Callable[[], "np.ndarray | None"]  # parses one region's shape when called; raises DatasetError


@dataclass
class _Image:
    """One image as VIA lists it, before its regions are turned into polygons and classes."""

    filename: str
    other_names: tuple[str, ...] = ()
    regions: list[tuple[ShapeParser, Any, str]] = field(default_factory=list)  # (shape, attributes, item)
    image_data: bytes | None = None
    fault: tuple[str, str, str] | None = None  # (item, problem, fix) found while parsing: skip the image


def _data_url(value: Any) -> bytes | None:
    """The bytes of a 'data:image/...;base64,...' URL (VIA 1 base64_img_data, VIA 3 inline files)."""
    if not isinstance(value, str) or not value.startswith("data:") or ";base64," not in value[:100]:
        return None
    try:
        return base64.b64decode(value.split(",", 1)[1], validate=False)
    except (binascii.Error, ValueError):
        return None


def _url_name(name: str) -> str:
    """A local-looking name for a file VIA loaded from a URL: its last path component."""
    if "://" not in name:
        return name
    try:
        return Path(unquote(urlparse(name).path)).name or name
    except ValueError:
        return name


def _ellipse_polygon(cx: float, cy: float, rx: float, ry: float, theta: float, *, path: Path,
                     item: str) -> np.ndarray:
    if rx <= 0 or ry <= 0:
        raise DatasetError(f"the ellipse has radius {rx:g} x {ry:g}; it covers nothing.", path=path,
                           item=item, fix="delete the region or redraw it.")
    if max(rx, ry) > 1e7:
        raise DatasetError("the shape is far larger than any image.", path=path, item=item)
    return ellipse(cx, cy, rx, ry, theta)


def _box_polygon(x: float, y: float, w: float, h: float, *, path: Path, item: str) -> np.ndarray:
    if w <= 0 or h <= 0:
        raise DatasetError(f"the rectangle is {w:g} x {h:g} pixels; it covers nothing.", path=path, item=item,
                           fix="delete the region or redraw it.")
    return rectangle(x, y, w, h)


def _points(values: Any, *, path: Path, item: str) -> np.ndarray:
    try:
        return points_array(values, path=path, item=item)
    except OverflowError:
        raise DatasetError("polygon points are too large to be pixels.", path=path, item=item) from None


def _finite(polygon: np.ndarray | None, *, path: Path, item: str) -> np.ndarray | None:
    if polygon is not None and not np.isfinite(polygon).all():
        raise DatasetError("the region's coordinates are too large to be pixels.", path=path, item=item)
    return polygon


def _shape2(shape: Any, *, path: Path, item: str) -> np.ndarray | None:
    """A VIA 1/2 shape_attributes object as a polygon; None for shapes without area (point, 2-point line)."""
    if not isinstance(shape, dict):
        raise DatasetError(f"shape_attributes is a {type(shape).__name__}, not an object.", path=path,
                           item=item)
    name = shape.get("name")

    def num(key: str, default: Any = None) -> float:
        return as_float(shape.get(key, default), path=path, item=item, what=f"{name} {key}")

    if name in ("polygon", "polyline"):
        xs, ys = shape.get("all_points_x"), shape.get("all_points_y")
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
            raise DatasetError(f"the {name}'s all_points_x and all_points_y are not lists of equal length.",
                               path=path, item=item, fix="redraw the region in VIA.")
        pts = [(as_float(x, path=path, item=item, what="x"), as_float(y, path=path, item=item, what="y"))
               for x, y in zip(xs, ys, strict=True)]
        if name == "polyline" and len(pts) < 3:
            return None  # an open line of two points has no inside
        return _points(pts, path=path, item=item)  # a polyline is closed into a polygon
    if name == "rect":
        return _box_polygon(num("x"), num("y"), num("width"), num("height"), path=path, item=item)
    if name == "circle":
        r = num("r")
        return _ellipse_polygon(num("cx"), num("cy"), r, r, 0.0, path=path, item=item)
    if name == "ellipse":  # theta (radians) exists from VIA 2.0.9 on
        return _ellipse_polygon(num("cx"), num("cy"), num("rx"), num("ry"), num("theta", 0), path=path,
                                item=item)
    if name == "point":
        return None
    raise DatasetError(f"shape {name!r} is not one VIA draws (polygon, rect, circle, ellipse, polyline).",
                       path=path, item=item, fix="redraw the region in VIA or delete it.")


def _circle_through(p: np.ndarray, *, path: Path, item: str) -> tuple[float, float, float]:
    """Centre and radius of the circle through three points (VIA 3's EXTREME_CIRCLE)."""
    (ax, ay), (bx, by), (cx, cy) = p
    d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    if abs(d) < 1e-9:
        raise DatasetError("the three points of the extreme circle lie on one line.", path=path, item=item,
                           fix="redraw the circle in VIA.")
    a2, b2, c2 = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
    ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / d
    uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / d
    return ux, uy, math.hypot(ax - ux, ay - uy)


def _shape3(xy: list[Any], *, path: Path, item: str) -> np.ndarray | None:
    """A VIA 3 xy list [shape id, coordinates...] as a polygon; None for shapes without area."""
    shape_id = xy[0]
    coords = np.asarray([as_float(v, path=path, item=item, what="a coordinate") for v in xy[1:]],
                        dtype=np.float64)

    def need(n: int, what: str) -> None:
        if len(coords) != n:
            raise DatasetError(f"the {what} has {len(coords)} coordinates instead of {n}.", path=path,
                               item=item, fix="redraw the region in VIA.")

    if shape_id in (_POINT, _LINE) or (shape_id == _POLYLINE and len(coords) < 6):
        return None
    if shape_id in (_POLYGON, _POLYLINE):
        if len(coords) % 2:
            raise DatasetError("the polygon has an odd number of coordinates.", path=path, item=item)
        return _points(coords, path=path, item=item)
    if shape_id == _RECT:
        need(4, "rectangle")
        return _box_polygon(*coords, path=path, item=item)
    if shape_id == _CIRCLE:
        need(3, "circle")
        return _ellipse_polygon(coords[0], coords[1], coords[2], coords[2], 0.0, path=path, item=item)
    if shape_id == _ELLIPSE:
        need(4, "ellipse")
        return _ellipse_polygon(*coords[:4], 0.0, path=path, item=item)
    if shape_id == _EXTREME_RECT:  # four extreme points (left, top, right, bottom) of the object
        need(8, "extreme rectangle")
        pts = coords.reshape(-1, 2)
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        return _box_polygon(x0, y0, x1 - x0, y1 - y0, path=path, item=item)
    if shape_id == _EXTREME_CIRCLE:  # three points on the circumference
        need(6, "extreme circle")
        cx, cy, r = _circle_through(coords.reshape(3, 2), path=path, item=item)
        return _ellipse_polygon(cx, cy, r, r, 0.0, path=path, item=item)
    raise DatasetError(f"shape id {shape_id!r} is not one VIA 3 defines (1 to 9).", path=path, item=item,
                       fix="redraw the region in VIA or delete it.")


def _missing_fix(attribute: str, known: list[str]) -> str:
    others = [a for a in known if a != attribute]
    if others:
        listed = ", ".join(repr(a) for a in others)
        return f"pass label_attribute=... naming the attribute that holds the class; the file has: {listed}."
    return (f"give every region a {attribute!r} attribute in VIA, or pass label_attribute=... naming the "
            "attribute that holds the class.")


def _pick_one(ticked: list[str], attribute: str, *, path: Path, item: str) -> str:
    if len(ticked) == 1:
        return ticked[0]
    if not ticked:
        raise DatasetError(f"no option of the {attribute!r} attribute is ticked, so the region has no class.",
                           path=path, item=item, fix="tick one option in VIA or delete the region.")
    listed = ", ".join(repr(t) for t in ticked)
    raise DatasetError(f"several options of the {attribute!r} attribute are ticked ({listed}); a region has "
                       "one class.", path=path, item=item, fix="tick only one option in VIA.")


def _label(attrs: Any, attribute: str, known: list[str], *, path: Path, item: str) -> str:
    """The class of a VIA 1/2 region: its `attribute` value, or the one ticked option of a checkbox."""
    if not isinstance(attrs, dict):
        raise DatasetError(f"region_attributes is a {type(attrs).__name__}, not an object.", path=path,
                           item=item)
    if attribute not in attrs:
        raise DatasetError(f"the region has no {attribute!r} attribute to take its class from.", path=path,
                           item=item, fix=_missing_fix(attribute, known))
    value = attrs[attribute]
    if isinstance(value, dict):  # checkbox: {"option id": true, ...}
        ticked = [str(k).strip() for k, v in value.items() if v is True and str(k).strip()]
        return _pick_one(ticked, attribute, path=path, item=item)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise DatasetError(f"the {attribute!r} attribute is {str(value)[:40]}, not a class name.", path=path,
                           item=item, fix="set it to the class name in VIA.")
    if not value.strip():
        raise DatasetError(f"the region's {attribute!r} attribute is empty, so it has no class.", path=path,
                           item=item, fix="fill it in VIA or delete the region.")
    return value.strip()


def _order_classes(declared: list[str] | None, samples: list[Sample]) -> list[ClassInfo]:
    """Declared options when the label attribute has them (checks flag the rest), else classes in use."""
    if declared:
        return make_classes(declared)
    seen: dict[str, None] = {}
    for sample in samples:
        for region in sample.regions:
            seen.setdefault(region.label, None)
    return make_classes(list(seen))


# (region attributes, item) -> (class, the other attributes)
LabelOf = Callable[[Any, str], "tuple[str, dict[str, Any]]"]


def _build_samples(images: list[_Image], *, file: Path, root: Path, log: ProblemLog,
                   label_of: LabelOf) -> list[Sample]:
    """Samples from parsed images; `label_of(attrs, item)` gives a region's class or raises DatasetError.

    A region that cannot be used is dropped alone (lenient mode); when its shape is good and only its class is
    missing, its pixels become void (neither learned nor background)."""
    samples: list[Sample] = []
    finder = ImageFinder(root, stem_folders(file))
    for image in images:
        if image.fault is not None:
            item, problem, fix = image.fault
            log.add(problem, path=file, item=item, fix=fix)
            continue
        regions: list[Region] = []
        voids: list[Region] = []
        skipped = 0
        for shape, attrs, item in image.regions:
            try:
                polygon = _finite(shape(), path=file, item=item)
            except DatasetError as exc:
                log.add(exc.problem, path=file, item=exc.item or item, fix=exc.fix or "", dropped="region")
                continue
            if polygon is None:
                skipped += 1
                log.note(NO_AREA, item)
                continue
            try:
                label, extra = label_of(attrs, item)
            except DatasetError as exc:
                log.add(exc.problem, path=file, item=exc.item or item, fix=exc.fix or "", dropped="region")
                voids.append(Region(label="", polygons=[polygon]))
                continue
            regions.append(Region(label=label, polygons=[polygon], attributes=extra))
        local = _url_name(image.filename.replace("\\", "/"))
        if not usable_name(local, root):
            log.add("the image name is too long to be a file name.", path=file, item=image.filename[:120],
                    fix="rename the image and add it to VIA again.")
            continue
        others = [n for n in image.other_names if usable_name(n, root)]
        found = finder.find(local, *others)
        image_path = found or finder.fallback(local)
        # embedded bytes only stand in for a missing file (open_image() prefers the file)
        data = image.image_data if found is None else None
        samples.append(Sample(name=rel_name(image_path, root), image_path=image_path, width=0, height=0,
                              regions=regions, image_data=data, void_regions=voids, skipped=skipped))
    finder.report(log)
    return samples


def _via2_images(metadata: dict[str, Any], order: Any, *, file: Path, extra_dir: str) -> list[_Image]:
    """Images of a VIA 1/2 metadata object ({key: {filename, regions, ...}}), in the project's order."""
    keys = list(metadata)
    if isinstance(order, list) and all(isinstance(k, str) and k in metadata for k in order):
        keys = list(dict.fromkeys(order)) + [k for k in metadata if k not in set(order)]
    images: list[_Image] = []
    for key in keys:
        entry = metadata[key]
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str) or not entry["filename"]:
            images.append(_Image(key, fault=(key, "is not an image entry with a filename.",
                                             "export the annotations from VIA again.")))
            continue
        name = entry["filename"]
        others = (extra_dir.rstrip("/\\") + "/" + name,) if extra_dir else ()
        image = _Image(name, others, image_data=_data_url(entry.get("base64_img_data")))
        regions = entry.get("regions", [])
        if isinstance(regions, dict):  # VIA 1.x keyed its regions "0", "1", ...
            regions = list(regions.values())
        if regions is None:
            regions = []
        if not isinstance(regions, list):
            image.fault = (name, "'regions' is neither a list nor an object.", _AGAIN)
        else:
            for k, region in enumerate(regions):
                item = f"{name}, region {k + 1}"
                if not isinstance(region, dict):
                    image.fault = (item, "is not an object with shape_attributes.", "")
                    break
                shape = partial(_shape2, region.get("shape_attributes"), path=file, item=item)
                image.regions.append((shape, region.get("region_attributes", {}), item))
        images.append(image)
    if keys and not any(isinstance(metadata[k], dict) and "filename" in metadata[k] for k in keys):
        raise DatasetError("is not a VIA file: no entry has a filename.", path=file,
                           fix="export the annotations from VIA (Annotation > Export as JSON).")
    return images


def _attribute_names(images: list[_Image], declared: Any) -> list[str]:
    """Every region attribute name the file uses or declares, in first-seen order."""
    names: dict[str, None] = {}
    if isinstance(declared, dict):
        names.update((str(k), None) for k in declared)
    for image in images:
        for _, attrs, _ in image.regions:
            if isinstance(attrs, dict):
                names.update((str(k), None) for k in attrs)
    return list(names)


def _declared_options(definitions: Any, attribute: str) -> list[str] | None:
    """The option ids of a VIA 2 dropdown/radio/checkbox attribute: the classes the project allows."""
    spec = definitions.get(attribute) if isinstance(definitions, dict) else None
    if not isinstance(spec, dict) or spec.get("type") not in _OPTION_TYPES_2:
        return None
    options = spec.get("options")
    if not isinstance(options, dict) or not options:
        return None
    return [str(k).strip() for k in options if str(k).strip()]


def _read_via2(data: dict[str, Any], *, file: Path, root: Path, log: ProblemLog,
               requested: str | None) -> Dataset:
    project = "_via_img_metadata" in data
    metadata = data.get("_via_img_metadata") if project else data
    if not isinstance(metadata, dict):
        raise DatasetError("'_via_img_metadata' is not an object.", path=file,
                           fix="save the project from VIA again.")
    settings = data.get("_via_settings") if project else None
    core = settings.get("core") if isinstance(settings, dict) else None
    default_dir = core.get("default_filepath") if isinstance(core, dict) else None
    images = _via2_images(metadata, data.get("_via_image_id_list") if project else None, file=file,
                          extra_dir=default_dir if isinstance(default_dir, str) else "")
    attributes = data.get("_via_attributes") if project else None
    region_defs = attributes.get("region") if isinstance(attributes, dict) else None
    known = _attribute_names(images, region_defs)
    attribute = requested or _default_attribute(known, _via2_label_setting(settings))
    declared = _declared_options(region_defs, attribute)

    def label_of(attrs: Any, item: str) -> tuple[str, dict[str, Any]]:
        label = _label(attrs, attribute, known, path=file, item=item)
        return label, {k: v for k, v in attrs.items() if k != attribute}

    samples = _build_samples(images, file=file, root=root, log=log, label_of=label_of)
    return Dataset(classes=_order_classes(declared, samples), samples=samples, root=root)


def _via2_label_setting(settings: Any) -> str | None:
    """The attribute a VIA 2 project shows as the region label (Settings > Region label), if it names one."""
    ui = settings.get("ui") if isinstance(settings, dict) else None
    image = ui.get("image") if isinstance(ui, dict) else None
    label = image.get("region_label") if isinstance(image, dict) else None
    return label if isinstance(label, str) and not label.startswith("__via") else None


def _default_attribute(known: list[str], configured: str | None) -> str:
    """'name' when the file uses it; else the attribute the project shows as region label; else 'name'."""
    if DEFAULT_LABEL_ATTRIBUTE in known:
        return DEFAULT_LABEL_ATTRIBUTE
    if configured and configured in known:
        return configured
    return DEFAULT_LABEL_ATTRIBUTE


def _csv_images(file: Path) -> list[_Image]:
    """Images of a VIA CSV export, one row per region, in the order the rows give them."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot be read as UTF-8 text ({exc}).", path=file,
                           fix="export the annotations from VIA as CSV again.") from None
    reader = csv.reader(io.StringIO(text))
    images: dict[str, _Image] = {}
    try:
        header = next(reader, [])
        if not _is_csv_header(",".join(header)):
            raise DatasetError("is not a VIA CSV file: the first line is not VIA's header.", path=file,
                               fix=f"export from VIA, whose CSV starts with '{CSV_HEADER}'.")
        for row in reader:
            _csv_row(row, reader.line_num, images, file)
    except csv.Error as exc:
        raise DatasetError(f"is not valid CSV (line {reader.line_num}: {exc}).", path=file,
                           fix="export the annotations from VIA as CSV again.") from None
    return list(images.values())


def _csv_row(row: list[str], line: int, images: dict[str, _Image], file: Path) -> None:
    if not row or not "".join(row).strip():
        return
    filename = row[0]
    item = f"{filename}, line {line}" if filename else f"line {line}"
    image = images.setdefault(filename, _Image(filename))
    if image.fault is not None:
        return
    if not filename.strip():
        image.fault = (item, "the row has no filename.", "export the annotations from VIA again.")
        return
    if len(row) < 7:
        image.fault = (item, f"the row has {len(row)} columns; VIA writes 7.", _AGAIN)
        return
    try:
        shape = csv_cell(row[5])
        attrs = csv_cell(row[6])
    except (ValueError, RecursionError) as exc:  # this row's region alone is lost, not its image
        image.regions.append((partial(_broken, f"a JSON column cannot be read ({str(exc)[:80]}).", path=file,
                                      item=item), {}, item))
        return
    if shape == {}:
        return  # the row of an image without regions
    image.regions.append((partial(_shape2, shape, path=file, item=item), attrs, item))


_UNDEFINED = re.compile(r"\bundefined\b")
_KEYVAL_SEP = re.compile(r"\\?;")


def csv_cell(text: str) -> Any:
    """One attribute column of a VIA CSV: JSON (VIA 1.1 and later, where VIA writes JavaScript `undefined`
    for a missing value: read as empty), or VIA 1.0's `key=value;key=value` with arrays as `[1:2:3]`."""
    text = text.strip()
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        if text.startswith("{"):
            repaired = _without_undefined(text)
            if repaired != text:
                return json.loads(repaired)
            raise
    if "=" not in text:
        raise ValueError(f"{text[:40]!r} is neither JSON nor VIA 1.0's key=value pairs")
    return _keyval(text)


def _without_undefined(text: str) -> str:
    """`undefined` outside JSON strings replaced by an empty string value."""
    out: list[str] = []
    i, start, in_string = 0, 0, False
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_string = False
                out.append(text[start:i + 1])
                start = i + 1
        elif ch == '"':
            out.append(_UNDEFINED.sub('""', text[start:i]))
            start, in_string = i, True
        i += 1
    tail = text[start:]
    out.append(tail if in_string else _UNDEFINED.sub('""', tail))
    return "".join(out)


def _keyval(text: str) -> dict[str, Any]:
    """VIA 1.0's `name=rect;x=10;y=20` (also with `\\;`), arrays `[1:2:3]`, numbers as numbers."""
    out: dict[str, Any] = {}
    for part in _KEYVAL_SEP.split(text.strip().strip('"')):
        key, sep, value = part.partition("=")
        if not sep:
            if part.strip():
                raise ValueError(f"{part[:40]!r} is not key=value")
            continue
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            out[key.strip()] = [_number(v) for v in re.split(r"[:,]", value[1:-1]) if v.strip()]
        else:
            out[key.strip()] = _number(value)
    return out


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text.strip()


def _broken(problem: str, *, path: Path, item: str) -> None:
    raise DatasetError(problem, path=path, item=item, fix=_AGAIN)


def _read_csv(file: Path, *, root: Path, log: ProblemLog, requested: str | None) -> Dataset:
    images = _csv_images(file)
    known = _attribute_names(images, None)
    attribute = requested or DEFAULT_LABEL_ATTRIBUTE

    def label_of(attrs: Any, item: str) -> tuple[str, dict[str, Any]]:
        label = _label(attrs, attribute, known, path=file, item=item)
        return label, {k: v for k, v in attrs.items() if k != attribute}

    samples = _build_samples(images, file=file, root=root, log=log, label_of=label_of)
    return Dataset(classes=_order_classes(None, samples), samples=samples, root=root)


def _obj(data: dict[str, Any], key: str, file: Path) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise DatasetError(f"'{key}' is a {type(value).__name__}, not an object.", path=file,
                           fix="save the project from VIA 3 again.")
    return value


def _via3_attribute(attributes: dict[str, Any], requested: str | None, config: dict[str, Any]) -> str | None:
    """The id of the label attribute: matched by name (aname) or id; by default 'name', else the one the
    project shows as region label."""
    want = requested or DEFAULT_LABEL_ATTRIBUTE
    for aid, spec in attributes.items():
        if isinstance(spec, dict) and spec.get("aname") == want:
            return aid
    if want in attributes:
        return want
    ui = config.get("ui") if isinstance(config.get("ui"), dict) else {}
    shown = ui.get("spatial_region_label_attribute_id")
    if requested is None and isinstance(shown, str) and shown in attributes:
        return shown
    return None


def _via3_value(value: Any, spec: dict[str, Any], name: str, *, path: Path, item: str) -> str:
    """A VIA 3 attribute value as a class name: option ids become option names."""
    options = spec.get("options") if isinstance(spec.get("options"), dict) else {}

    def option_name(oid: str) -> str:
        label = options.get(oid)
        return label.strip() if isinstance(label, str) and label.strip() else oid

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise DatasetError(f"the {name!r} attribute is {str(value)[:40]}, not a class name.", path=path,
                           item=item, fix="set it in VIA.")
    if spec.get("type") == 2:  # checkbox: comma-separated option ids
        return _pick_one([option_name(v.strip()) for v in value.split(",") if v.strip()], name, path=path,
                         item=item)
    if not value.strip():
        raise DatasetError(f"the region's {name!r} attribute is empty, so it has no class.", path=path,
                           item=item, fix="fill it in VIA or delete the region.")
    return option_name(value.strip())


def _read_via3(data: dict[str, Any], *, file: Path, root: Path, log: ProblemLog,
               requested: str | None) -> Dataset:
    attributes, files, views, metadata = (_obj(data, k, file)
                                          for k in ("attribute", "file", "view", "metadata"))
    config, project = _obj(data, "config", file), _obj(data, "project", file)
    aid = _via3_attribute(attributes, requested, config)
    spec = attributes.get(aid, {}) if aid is not None else {}
    spec = spec if isinstance(spec, dict) else {}
    attr_name = str(spec.get("aname", aid)) if aid is not None else (requested or DEFAULT_LABEL_ATTRIBUTE)
    names = {k: str(s.get("aname", k)) if isinstance(s, dict) else str(k) for k, s in attributes.items()}
    known = list(names.values())
    declared = None
    if spec.get("type") in _OPTION_TYPES_3 and isinstance(spec.get("options"), dict):
        declared = [(v.strip() if isinstance(v, str) and v.strip() else str(k))
                    for k, v in spec["options"].items()]

    by_view: dict[str, list[tuple[str, Any]]] = {}
    for mid, m in metadata.items():
        if isinstance(m, dict) and isinstance(m.get("vid"), (str, int)):
            by_view.setdefault(str(m["vid"]), []).append((mid, m))
    vid_list = project.get("vid_list")
    order = [str(v) for v in vid_list if isinstance(v, (str, int))] if isinstance(vid_list, list) else []
    order = list(dict.fromkeys(order + [str(v) for v in views]))

    images = [img for vid in order if (img := _via3_image(vid, views, files, by_view.get(vid, []), file))]
    media = [f for f in files.values() if isinstance(f, dict) and f.get("type", _VIA3_IMAGE) in
             (_VIA3_VIDEO, _VIA3_AUDIO)]
    if media and not images:
        kinds = "video" if all(m.get("type") == _VIA3_VIDEO for m in media) else "video/audio"
        raise DatasetError(f"is a VIA 3 {kinds} project ({len(media)} {kinds} file(s), no images): masksmith "
                           "reads annotations of images, not of video frames or time segments.", path=file,
                           fix="annotate still images (VIA's image annotator), or export the frames you need as "
                               "images and annotate those.")
    for medium in media:
        log.note("{n} video or audio file(s) of the VIA 3 project skipped: masksmith reads image annotations",
                 str(medium.get("fname", "")))

    def label_of(av: Any, item: str) -> tuple[str, dict[str, Any]]:
        if aid is None or not isinstance(av, dict) or aid not in av:
            raise DatasetError(f"the region has no {attr_name!r} attribute to take its class from.",
                               path=file, item=item, fix=_missing_fix(attr_name, known))
        label = _via3_value(av[aid], spec, attr_name, path=file, item=item)
        return label, {names.get(k, k): v for k, v in av.items() if k != aid}

    samples = _build_samples(images, file=file, root=root, log=log, label_of=label_of)
    return Dataset(classes=_order_classes(declared, samples), samples=samples, root=root)


def _via3_image(vid: str, views: dict[str, Any], files: dict[str, Any], entries: list[tuple[str, Any]],
                file: Path) -> _Image | None:
    """The image of one VIA 3 view with its spatial regions; None for views that are not one image."""
    view = views.get(vid)
    fids = view.get("fid_list") if isinstance(view, dict) else None
    if not isinstance(fids, list) or len(fids) != 1 or not isinstance(fids[0], (str, int)):
        return None  # video pairs and multi-file views are not single images
    spec = files.get(str(fids[0]))
    if not isinstance(spec, dict) or spec.get("type", _VIA3_IMAGE) != _VIA3_IMAGE:
        return None  # video and audio files: nothing to segment
    fname = spec.get("fname")
    if not isinstance(fname, str) or not fname:
        return _Image(f"view {vid}", fault=(f"view {vid}", "its file has no name ('fname').", ""))
    src = spec.get("src") if isinstance(spec.get("src"), str) else ""
    data = _data_url(src) if spec.get("loc") == _VIA3_INLINE or src.startswith("data:") else None
    others = (_url_name(src),) if src and data is None else ()
    image = _Image(fname, others, image_data=data)
    for mid, m in entries:
        z, xy = m.get("z", []), m.get("xy", [])
        if z or not isinstance(xy, list) or not xy:
            continue  # file attributes (no xy) and video segments or frames (z) are not image regions
        item = f"{fname}, region {mid}"
        image.regions.append((partial(_shape3, xy, path=file, item=item), m.get("av", {}), item))
    return image


def read(path: Path, log: ProblemLog, **options: Any) -> Dataset:
    file = annotation_file(Path(path))
    root = file.parent
    requested = options.get("label_attribute")
    if requested is not None and (not isinstance(requested, str) or not requested):
        raise DatasetError(f"label_attribute={requested!r} is not an attribute name.",
                           fix="pass the name of the region attribute that holds the class, e.g. 'name'.")
    kind = _kind(file)
    if kind == "csv" or (kind is None and file.suffix.lower() in (".csv", ".txt")):
        return _read_csv(file, root=root, log=log, requested=requested)
    data = load_json(file)
    if not isinstance(data, dict):
        raise DatasetError(f"is not a VIA file: the top level is a {type(data).__name__}, not an object.",
                           path=file, fix="export the annotations from VIA (Annotation > Export as JSON).")
    if "_via_img_metadata" in data:
        return _read_via2(data, file=file, root=root, log=log, requested=requested)
    if all(k in data for k in ("file", "metadata", "view")):
        return _read_via3(data, file=file, root=root, log=log, requested=requested)
    return _read_via2(data, file=file, root=root, log=log, requested=requested)


def check_writable(dataset: Dataset, **options: Any) -> None:
    """Refuse what this format cannot hold before a file is written (`convert` asks first)."""
    check_class_names(dataset, "via_project.json", stripped=True)


def write(dataset: Dataset, out: Any, **options: Any) -> None:
    """A VIA 2 project (Project > Open in VIA 2.0.x): out/via_project.json with the images copied beside it
    (`default_filepath` is empty, so VIA finds them by their names next to the project, or after "Add Files").
    Each region is a polygon (masks are traced; one object of several parts gives one region per part, as VIA
    has no groups), its class in the dropdown region attribute "name" whose options are the classes."""
    folder = output_folder(dataset, out)
    check_writable(dataset)
    metadata: dict[str, Any] = {}
    for sample, name in zip(dataset.samples, output_names(dataset), strict=True):
        require_size(sample)
        size = copy_image(sample, folder, name).stat().st_size
        regions = []
        for region in sample.regions:
            for polygon in region_polygons(region, sample.height, sample.width):
                regions.append({"shape_attributes": {"name": "polygon",
                                                     "all_points_x": [coordinate(v) for v in polygon[:, 0]],
                                                     "all_points_y": [coordinate(v) for v in polygon[:, 1]]},
                                "region_attributes": {"name": region.label}})
        metadata[f"{name}{size}"] = {"filename": name, "size": size, "regions": regions, "file_attributes": {}}
    project = {
        "_via_settings": {
            "ui": {"annotation_editor_height": 25, "annotation_editor_fontsize": 0.8, "leftsidebar_width": 18,
                   "image_grid": {"img_height": 80, "rshape_fill": "none", "rshape_fill_opacity": 0.3,
                                  "rshape_stroke": "yellow", "rshape_stroke_width": 2, "show_region_shape": True,
                                  "show_image_policy": "all"},
                   "image": {"region_label": "name", "region_color": "name", "region_label_font": "10px Sans",
                             "on_image_annotation_editor_placement": "NEAR_REGION"}},
            "core": {"buffer_size": 18, "filepath": {}, "default_filepath": ""},
            "project": {"name": str(options.get("project", "masksmith"))}},
        "_via_img_metadata": metadata,
        "_via_attributes": {
            "region": {"name": {"type": "dropdown", "description": "class",
                                "options": {c.name: c.name for c in dataset.classes}, "default_options": {}}},
            "file": {}},
        "_via_data_format_version": "2.0.10",
        "_via_image_id_list": list(metadata),
    }
    folder.write_text("via_project.json", json.dumps(project))
