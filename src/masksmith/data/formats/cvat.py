"""CVAT for images 1.1 XML (annotations.xml of a task, job or project export). Read and written.

    <annotations><version>1.1</version>
      <meta><task>|<job>|<project> ... <labels><label><name>car</name><color>#fa3253</color>...</label>
      <image id="0" name="a.jpg" width="640" height="480" [subset="Train"]>
        <polygon label="car" points="x0,y0;x1,y1;..." occluded="0" source="manual" z_order="1">
          <attribute name="...">value</attribute></polygon>
        <box label xtl ytl xbr ybr [rotation]/>  <ellipse label cx cy rx ry [rotation]/>
        <mask label rle="3, 5, 7, ..." left top width height z_order/>
        <polyline>, <points>, <skeleton>, <cuboid>: no area, skipped and counted in the report; <tag>: an
        image-level label, skipped and counted

Classes are the meta labels in order, with their colours, including labels no shape uses; labels of a kind
that never has an area (skeleton, points, polyline, cuboid, tag, and skeleton parts) are left out. A file
whose meta lists no labels takes its classes from the shapes, in order of appearance.
Boxes and ellipses become polygons (rotated about their centre by `rotation` degrees, clockwise on screen,
as CVAT draws them). Regions are sorted by z_order (stable), so higher ones paint over lower ones; polygon
shapes of one label sharing a group_id are the parts of one object and become one region.
A CVAT mask's rle counts alternate runs of 0s and 1s (starting with 0s) over its `width` x `height` box at
(`left`, `top`), row by row — CVAT's own exporter and its MaskConverter read it so.
The file is parsed with no DOCTYPE or entity declarations allowed (no "billion laughs").
Images are looked for beside the XML, in images/, and in images/<subset>/ (a project export); when the file
holds several subsets, sample names carry the subset (`Train/a.jpg`), so two images of one name in two subsets
stay two images, and the subsets are the data set's splits. A 'CVAT for video' export (tracks of frames, or a
video task's meta without images) is refused with that reason.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC
from pathlib import Path
from typing import Any
from xml.parsers import expat

import numpy as np

from masksmith.core.errors import DatasetError
from masksmith.core.images import ImageReadError, image_size
from masksmith.data.formats._common import (
    ImageFinder,
    Option,
    as_float,
    ellipse,
    points_array,
    rectangle,
    split_name,
    stem_folders,
)
from masksmith.data.formats._write import (
    check_class_names,
    coordinate,
    copy_image,
    output_folder,
    output_names,
    region_polygons,
    require_size,
    splits_of,
)
from masksmith.data.rasterize import placed_rle
from masksmith.data.schema import Dataset, ProblemLog, Region, Sample, make_classes

NAME = "cvat"
DESCRIPTION = "CVAT for images 1.1 XML"

AREA_SHAPES = ("polygon", "box", "ellipse", "mask")
NO_AREA_SHAPES = ("polyline", "points", "skeleton", "cuboid")
OPTIONS: tuple[Option, ...] = ()
NO_AREA = "{n} polyline, points, skeleton or cuboid shape(s) skipped: lines and points have no area"
TAGS = "{n} tag(s) skipped: a tag labels a whole image, not an area"
NO_AREA_LABEL_TYPES = frozenset({"skeleton", "points", "polyline", "cuboid", "tag"})
MAX_PIXELS = 1 << 28  # a mask this large would not fit in memory beside its image; no real photo is
_ROOT = re.compile(rb"<annotations[\s>]")
_FIX_EXPORT = "export the task again from CVAT as 'CVAT for images 1.1'."
SUBSETS = {"train": "Train", "val": "Validation", "test": "Test"}  # CVAT's own subset names


# ---------------------------------------------------------------- files

def _looks_like_cvat(path: Path) -> bool:
    if path.suffix.lower() != ".xml" or not path.is_file():
        return False
    with path.open("rb") as f:
        return _ROOT.search(f.read(4096)) is not None


def annotation_file(path: Path) -> Path:
    """The CVAT XML for `path`: the file itself, or annotations.xml (else the one CVAT XML) in the folder."""
    if path.is_file():
        return path
    if _looks_like_cvat(path / "annotations.xml"):
        return path / "annotations.xml"
    candidates = sorted(p for p in path.glob("*.xml") if _looks_like_cvat(p))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise DatasetError("no CVAT annotations.xml found.", path=path, fix=_FIX_EXPORT)
    names = ", ".join(c.name for c in candidates)
    raise DatasetError(f"holds several CVAT XML files ({names}).", path=path,
                       fix="point at the one you mean.")


def detect(path: Path) -> bool:
    if path.is_file():
        return _looks_like_cvat(path)
    return _looks_like_cvat(path / "annotations.xml") or any(_looks_like_cvat(p) for p in path.glob("*.xml"))


class _Forbidden(Exception):
    """A DOCTYPE or entity declaration: never in a CVAT export, and the way to an entity-expansion bomb."""


def _forbid(*_: Any) -> None:
    raise _Forbidden


def parse_xml(file: Path) -> ET.Element:
    """The XML tree of `file`, parsed by expat with DOCTYPE and entity declarations refused."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot be read ({exc.strerror or exc}).", path=file) from None
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = _forbid
    parser.EntityDeclHandler = _forbid
    parser.UnparsedEntityDeclHandler = _forbid
    parser.ExternalEntityRefHandler = _forbid
    try:
        parser.Parse(data, True)
        return builder.close()
    except _Forbidden:
        raise DatasetError("declares a DOCTYPE or entities, which CVAT never writes and which are not read "
                           "(they can expand without bound).", path=file, fix=_FIX_EXPORT) from None
    except expat.ExpatError as exc:
        raise DatasetError(f"is not well-formed XML (line {exc.lineno}, column {exc.offset + 1}: "
                           f"{expat.ErrorString(exc.code)}).", path=file,
                           fix="re-export the annotations from CVAT, or repair the file.") from None


# ---------------------------------------------------------------- classes

def _hex(text: str | None) -> tuple[int, int, int] | None:
    m = re.fullmatch(r"\s*#([0-9a-fA-F]{6})\s*", text or "")
    if not m:
        return None
    h = m.group(1)
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


def meta_labels(meta: ET.Element | None) -> tuple[list[str], dict[str, tuple[int, int, int]]]:
    """Label names (in order) and colours from <meta> of a task, job or project export."""
    names: list[str] = []
    colors: dict[str, tuple[int, int, int]] = {}
    if meta is None:
        return names, colors
    for labels in meta.iter("labels"):
        for label in labels.findall("label"):
            name = (label.findtext("name") or "").strip()
            kind = (label.findtext("type") or "any").strip().lower()
            if not name or name in names or kind in NO_AREA_LABEL_TYPES or label.find("parent") is not None:
                continue
            names.append(name)
            color = _hex(label.findtext("color"))
            if color is not None:
                colors[name] = color
    return names, colors


# ---------------------------------------------------------------- shapes

def decode_rle(counts: list[int], width: int, height: int) -> np.ndarray:
    """A CVAT mask RLE as an (height, width) bool array: runs of 0s and 1s, 0s first, row by row."""
    if any(c < 0 for c in counts):
        raise DatasetError("the mask rle has a negative count.", fix=_FIX_EXPORT)
    total = sum(counts)
    if total != width * height:
        raise DatasetError(f"the mask rle covers {total} pixels, but its box is {width}x{height} = "
                           f"{width * height}.", fix=_FIX_EXPORT)
    values = (np.arange(len(counts)) % 2).astype(bool)
    return np.repeat(values, counts).reshape(height, width)


def _number(el: ET.Element, key: str, file: Path, item: str, default: float | None = None) -> float:
    value = el.get(key)
    if value is None:
        if default is not None:
            return default
        raise DatasetError(f"has no {key}.", path=file, item=item, fix=_FIX_EXPORT)
    return as_float(value, path=file, item=item, what=key)


def _points(text: str | None, file: Path, item: str) -> np.ndarray:
    try:
        pairs = [tuple(float(v) for v in pair.split(",")) for pair in (text or "").strip().split(";") if pair]
    except ValueError:
        raise DatasetError(f"points {text!r:.60} are not x,y;x,y;... numbers.", path=file,
                           item=item) from None
    if any(len(p) != 2 for p in pairs):
        raise DatasetError(f"points {text!r:.60} are not x,y pairs.", path=file, item=item)
    return points_array(pairs, path=file, item=item)


def _rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    """Points turned about their box centre, as CVAT turns a rotated box."""
    if degrees == 0:
        return points
    cx, cy = (points.min(axis=0) + points.max(axis=0)) / 2
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    x, y = points[:, 0] - cx, points[:, 1] - cy
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def _mask(el: ET.Element, size: tuple[int, int], file: Path, item: str) -> dict[str, Any]:
    width_img, height_img = size
    left, top, width, height = (math.trunc(_number(el, k, file, item))
                                for k in ("left", "top", "width", "height"))
    inside = left >= 0 and top >= 0 and left + width <= width_img and top + height <= height_img
    if width <= 0 or height <= 0 or not inside:
        raise DatasetError(f"the mask box (left {left}, top {top}, {width}x{height}) does not lie inside the "
                           f"{width_img}x{height_img} image.", path=file, item=item, fix=_FIX_EXPORT)
    try:
        counts = [int(t) for t in (el.get("rle") or "").split(",") if t.strip()]
    except ValueError:
        raise DatasetError(f"the mask rle {el.get('rle')!r:.60} is not a list of integers.", path=file,
                           item=item, fix=_FIX_EXPORT) from None
    try:
        tight = decode_rle(counts, width, height)
    except DatasetError as exc:
        raise DatasetError(exc.problem, path=file, item=item, fix=exc.fix) from None
    rle = placed_rle(tight, left, top, height_img, width_img)  # no full-size array for a small mask
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _region(el: ET.Element, size: tuple[int, int], file: Path, item: str) -> Region:
    label = el.get("label")
    if not label:
        raise DatasetError("has no label.", path=file, item=item, fix=_FIX_EXPORT)
    rotation = _number(el, "rotation", file, item, default=0.0)
    if el.tag == "polygon":
        region = Region(label, polygons=[_points(el.get("points"), file, item)])
    elif el.tag == "box":
        x0, y0, x1, y1 = (_number(el, k, file, item) for k in ("xtl", "ytl", "xbr", "ybr"))
        region = Region(label, polygons=[_rotate(rectangle(x0, y0, x1 - x0, y1 - y0), rotation)])
    elif el.tag == "ellipse":
        cx, cy, rx, ry = (_number(el, k, file, item) for k in ("cx", "cy", "rx", "ry"))
        if rx <= 0 or ry <= 0:
            raise DatasetError(f"the ellipse has radii {rx} and {ry}.", path=file, item=item,
                               fix="delete the ellipse or redraw it.")
        region = Region(label, polygons=[ellipse(cx, cy, rx, ry, math.radians(rotation))])
    else:
        region = Region(label, rle=_mask(el, size, file, item))
    region.attributes = {a.get("name"): a.text or "" for a in el.findall("attribute") if a.get("name")}
    region.attributes["occluded"] = el.get("occluded", "0") == "1"
    for key in ("source", "group_id", "z_order"):
        if el.get(key) is not None:
            region.attributes[key] = el.get(key)
    return region


# ---------------------------------------------------------------- images

def _size(el: ET.Element, image_path: Path, file: Path, item: str, need: bool) -> tuple[int, int]:
    """(width, height) from the <image> element; from the image file when missing and masks need it."""
    try:
        width = math.trunc(_number(el, "width", file, item, default=0.0))
        height = math.trunc(_number(el, "height", file, item, default=0.0))
    except DatasetError as exc:
        raise DatasetError(exc.problem, path=file, item=item, fix=_FIX_EXPORT) from None
    if need and (width <= 0 or height <= 0):
        try:
            found = image_size(image_path)
        except ImageReadError:
            raise DatasetError("has masks but no width and height, and its image cannot be read.", path=file,
                               item=item, fix="add width and height to the <image> element, or the image.") from None
        width, height = found
    if width * height > MAX_PIXELS:
        raise DatasetError(f"says the image is {width}x{height}, too large to hold a mask.", path=file,
                           item=item)
    return width, height


def _sample(el: ET.Element, finder: ImageFinder, file: Path, log: ProblemLog, subsets: bool) -> Sample:
    name = el.get("name")
    item = f"image {name!r}" if name else f"image id={el.get('id')!r}"
    if not name:
        raise DatasetError("has no name.", path=file, item=item, fix=_FIX_EXPORT)
    subset = el.get("subset") or ""
    folders = (f"images/{subset}", subset) if subset else ()
    found = finder.find(name, *([f"{subset}/{name}"] if subset else []), folders=folders)
    image_path = found or finder.fallback(f"{subset}/{name}" if subset else name)
    shapes = [child for child in el if child.tag in AREA_SHAPES]
    width, height = _size(el, image_path, file, item, need=any(s.tag == "mask" for s in shapes))
    ordered: list[tuple[int, Region]] = []
    for k, child in enumerate(shapes):
        shape_item = f"{name}, {child.tag} {k + 1} ({child.get('label')})"
        try:
            z = _number(child, "z_order", file, shape_item, default=0.0)
            ordered.append((int(z), _region(child, (width, height), file, shape_item)))
        except DatasetError as exc:  # this shape is lost; the image and its other shapes are kept
            log.add(exc.problem, path=exc.path or file, item=exc.item or shape_item, fix=exc.fix or "",
                    dropped="region")
    skipped = 0
    for child in el:
        if child.tag in NO_AREA_SHAPES or child.tag == "tag":
            skipped += 1
            log.note(NO_AREA if child.tag != "tag" else TAGS, f"{name}, {child.tag} ({child.get('label')})")
    ordered.sort(key=lambda zr: zr[0])  # stable: file order within one z level
    return Sample(name=f"{subset}/{name}" if subsets and subset else name, image_path=image_path, width=width,
                  height=height, regions=_merge_groups([r for _, r in ordered]), split=split_name(subset),
                  skipped=skipped)


def _merge_groups(regions: list[Region]) -> list[Region]:
    """Polygon shapes of one label in one CVAT group are parts of one object (an object split by an
    occluder): one region with several polygons, painted where its first part is."""
    out: list[Region] = []
    first: dict[tuple[str, str], Region] = {}
    for region in regions:
        group = str(region.attributes.get("group_id", "0")).strip()
        if region.rle is None and group not in ("", "0"):
            key = (group, region.label)
            if key in first:
                first[key].polygons.extend(region.polygons)
                continue
            first[key] = region
        out.append(region)
    return out


def _is_video_export(tree: ET.Element) -> bool:
    """A 'CVAT for video' export: tracks of frames, or (with no track) a video task's meta: interpolation
    mode or the video's original_size, and no <image> at all."""
    if tree.find("track") is not None:
        return True
    mode = (tree.findtext("meta/task/mode") or tree.findtext("meta/job/mode") or "").strip().lower()
    return mode == "interpolation" or tree.find("meta/task/original_size") is not None or \
        tree.find("meta/job/original_size") is not None


def read(path: Path, log: ProblemLog, **options: Any) -> Dataset:
    file = annotation_file(Path(path))
    root = file.parent
    if Path(path).is_dir():
        others = sorted(p.name for p in Path(path).glob("*.xml") if p != file and _looks_like_cvat(p))
        if others:
            log.note(f"the folder holds several CVAT XML files ({', '.join([file.name, *others])}); read "
                     f"{file.name}, the name CVAT exports give it", fix="Point at another to read it.", skipped=False)
    tree = parse_xml(file)
    if tree.tag != "annotations":
        raise DatasetError(f"is not a CVAT XML file: its root element is <{tree.tag}>, not <annotations>.",
                           path=file, fix=_FIX_EXPORT)
    images = tree.findall("image")
    if not images and _is_video_export(tree):
        raise DatasetError("is a 'CVAT for video' export (tracks of frames of a video), not 'CVAT for images': "
                           "its frames are not images masksmith can read.", path=file, fix=_FIX_EXPORT)
    names, colors = meta_labels(tree.find("meta"))
    subsets = len({el.get("subset") or "" for el in images}) > 1
    finder = ImageFinder(root, stem_folders(file))
    samples = []
    for el in images:
        try:
            samples.append(_sample(el, finder, file, log, subsets))
        except DatasetError as exc:
            log.add(exc.problem, path=exc.path or file, item=exc.item or "", fix=exc.fix or "")
        except OSError as exc:  # e.g. an image name too long to be a file name
            log.add(f"its image cannot be looked up ({exc.strerror or exc}).", path=file,
                    item=f"image {el.get('name')!r}", fix="correct the image name.")
    finder.report(log)
    if not names:  # a hand-made file without <meta>: the shapes name the classes
        names = list(dict.fromkeys(r.label for s in samples for r in s.regions))
    return Dataset(classes=make_classes(names, colors), samples=samples, root=root)


def _subset_names(dataset: Dataset) -> list[tuple[str, str]]:
    """(CVAT subset or "", image name) per sample: no subsets when no sample has a split; else each image's
    name within its subset (`Train/a.jpg` read from a CVAT subset is `a.jpg` in Train), unless two would meet."""
    names = output_names(dataset)
    if not splits_of(dataset):
        return [("", n) for n in names]
    out = []
    for sample, name in zip(dataset.samples, names, strict=True):
        first, _, rest = name.partition("/")
        out.append((SUBSETS.get(sample.split or "", "default"),
                    rest if rest and split_name(first) == sample.split else name))
    if len({(s, n.lower()) for s, n in out}) < len(out):
        out = [(s, n) for (s, _), n in zip(out, names, strict=True)]
    return out


def check_writable(dataset: Dataset, **options: Any) -> None:
    """Refuse what this format cannot hold before a file is written (`convert` asks first)."""
    check_class_names(dataset, "annotations.xml", xml=True, stripped=True)


def write(dataset: Dataset, out: Any, **options: Any) -> None:
    """A "CVAT for images 1.1" task export, as CVAT writes it: out/annotations.xml (version, meta with the task
    and its labels with colours, one <image> per photo with <polygon label points="x,y;..." source="auto"
    occluded="0" z_order="0">; the parts of one object share a group_id) and the images under out/images/
    (the layout CVAT's "Upload annotations" and our reader take). Samples with a split carry CVAT's subset
    (Train, Validation, Test; `default` for the others), their images in images/<subset>/ as a project export
    has them, which the reader reads back as splits."""
    from datetime import datetime

    folder = output_folder(dataset, out)
    check_writable(dataset)
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    now = datetime.now(UTC).isoformat(sep=" ")
    for key, value in (("id", "1"), ("name", str(options.get("task", "masksmith pre-annotations"))),
                       ("size", str(len(dataset.samples))), ("mode", "annotation"), ("overlap", "0"),
                       ("bugtracker", ""), ("created", now), ("updated", now), ("subset", "default"),
                       ("start_frame", "0"), ("stop_frame", str(max(0, len(dataset.samples) - 1))),
                       ("frame_filter", "")):
        ET.SubElement(task, key).text = value
    labels = ET.SubElement(task, "labels")
    for c in dataset.classes:
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = c.name
        ET.SubElement(label, "color").text = "#{:02x}{:02x}{:02x}".format(*c.color)
        ET.SubElement(label, "type").text = "polygon"
        ET.SubElement(label, "attributes")
    group = 0
    for k, (sample, (subset, name)) in enumerate(zip(dataset.samples, _subset_names(dataset), strict=True)):
        require_size(sample)
        attrs = {"id": str(k), "name": name, "width": str(sample.width), "height": str(sample.height)}
        if subset:  # as a project export: each image in its subset, and in images/<subset>/
            attrs["subset"] = subset
            copy_image(sample, folder, f"images/{subset}/{name}")
        else:
            copy_image(sample, folder, f"images/{name}")
        image = ET.SubElement(root, "image", attrs)
        for region in sample.regions:
            polygons = region_polygons(region, sample.height, sample.width)
            if len(polygons) > 1:
                group += 1
            for polygon in polygons:
                attrs = {"label": region.label, "source": "auto", "occluded": "0",
                         "points": ";".join(f"{coordinate(x)},{coordinate(y)}" for x, y in polygon),
                         "z_order": "0"}
                if len(polygons) > 1:
                    attrs["group_id"] = str(group)
                ET.SubElement(image, "polygon", attrs)
    ET.indent(root, "  ")
    folder.write_bytes("annotations.xml", b'<?xml version="1.0" encoding="utf-8"?>\n' +
                       ET.tostring(root, encoding="unicode").encode("utf-8") + b"\n")
