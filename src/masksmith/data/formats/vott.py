"""Microsoft VoTT: the v2 "VoTT JSON" and CSV exports, the v2 project's own folder of per-asset files, VoTT 1 JSON.

Four layouts are read:
- the v2 export, `vott-json-export/<project>-export.json`: the project object (name, securityToken, tags, ...)
  with `assets` = {asset id: {asset, regions, version}}; VoTT copies the images beside it;
- the v2 target folder VoTT saves to while tagging: one `<asset id>-asset.json` per image ({asset, regions,
  version}) beside the `<project>.vott` file, which declares the tags;
- VoTT 1 (`{frames: {key: [{x1, y1, x2, y2, width, height, type, tags}]}, inputTags, visitedFrames, ...}`),
  saved as `<folder>.json` beside the image folder, or `<video>.json` beside a video (frames keyed by number,
  exported by VoTT 1 as `<video stem>_frame_<number>.jpg`). Its boxes are in the coordinates of the canvas
  they were drawn on (`width` x `height`); like VoTT's own exporter they are scaled to the image's size;
- the v2 CSV export, `vott-csv-export/<project>-export.csv` (VoTT's csv.ts: columns image, xmin, ymin, xmax,
  ymax, label; one row per region and tag, images copied beside it when asked): each region's bounding box
  only, so every shape reads as its box (said in a note: the 'VoTT JSON' export keeps polygons). A region with
  several tags gives one row per tag with the same box: the first row's tag is its class, as for the JSON.

The data set's folder (the only place images are read from) is the project folder: the parent of the target
folder that holds the .vott file and the asset files (VoTT's layout is `project/source/` beside
`project/target/`), the target folder being the parent of `vott-json-export/` for an export. `asset.path` is a
URL on the annotator's machine: it is never opened; its folder's name (`source`) and the image's name are
looked up in the project folder. Video frame assets (`clip.mp4#t=10.75`) are matched to exported frame files
of that name, with or without an image suffix (`clip.mp4#t=10.75.jpg`).

A region's class is its first tag (VoTT 1: the last, as its exporter takes it); tag colours become class
colours. Points and polylines have no area: they are counted in the report and left out.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from masksmith.core.errors import DatasetError
from masksmith.data.formats._common import (
    IMAGE_SUFFIXES,
    ImageFinder,
    Option,
    as_float,
    load_json,
    points_array,
    rectangle,
    rel_name,
    stem_folders,
    usable_name,
)
from masksmith.data.schema import ClassInfo, Dataset, ProblemLog, Region, Sample, make_classes

NAME = "vott"
DESCRIPTION = "Microsoft VoTT v2 JSON or CSV export or project folder, VoTT 1 JSON"
OPTIONS: tuple[Option, ...] = ()
NO_AREA = "{n} point or polyline region(s) skipped: points and lines have no area"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".ogg", ".ogv", ".m4v", ".wmv")

EXPORT_SUFFIX = "-export.json"
ASSET_SUFFIX = "-asset.json"
PROJECT_SUFFIX = ".vott"
EXPORT_FOLDER = "vott-json-export"
CSV_EXPORT_FOLDER = "vott-csv-export"
CSV_SUFFIX = "-export.csv"
CSV_COLUMNS = ("image", "xmin", "ymin", "xmax", "ymax", "label")
CSV_BOXES_ONLY = ("VoTT's CSV export holds each region's bounding box only: {n} region(s) read as boxes, "
                  "whatever shape they were drawn as")

_HEAD_BYTES = 1 << 16
_ASSETS_KEY = re.compile(rb'"assets"\s*:')
_ASSET_KEY = re.compile(rb'"asset"\s*:')
_REGIONS_KEY = re.compile(rb'"regions"\s*:')
_PROJECT_KEYS = re.compile(rb'"(securityToken|videoSettings|sourceConnection|activeLearningSettings)"\s*:')
_V1_FRAMES = re.compile(rb'"frames"\s*:')
_V1_KEYS = re.compile(rb'"(inputTags|visitedFrames|suggestiontype|framerate)"\s*:')

# Shapes without area: nothing to paint, and not a fault either.
_NO_AREA = {"POINT", "POLYLINE"}
_VIDEO = 2  # AssetType.Video: the frames are separate assets (type 3) and carry the regions
_VIDEO_FRAME = 3
_NOT_VISITED = 0  # AssetState.NotVisited








def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(_HEAD_BYTES)


def _is_export(path: Path) -> bool:
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    head = _head(path)
    return bool(_ASSETS_KEY.search(head) and (_PROJECT_KEYS.search(head) or _ASSET_KEY.search(head)))


def _is_asset_file(path: Path) -> bool:
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    head = _head(path)
    return bool(_ASSET_KEY.search(head) and _REGIONS_KEY.search(head) and not _ASSETS_KEY.search(head))


def _is_v1(path: Path) -> bool:
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    head = _head(path)
    return bool(_V1_FRAMES.search(head) and _V1_KEYS.search(head))


def _is_csv_export(path: Path) -> bool:
    """A CSV whose header is VoTT's export columns (quoted, as json2csv writes them, or not)."""
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    first = _head(path).split(b"\n", 1)[0].decode("utf-8-sig", "replace")
    return tuple(c.strip().strip('"').lower() for c in first.split(",")) == CSV_COLUMNS


def _csv_candidates(folder: Path) -> list[Path]:
    found: list[Path] = []
    for sub in (folder, folder / CSV_EXPORT_FOLDER):
        if sub.is_dir():
            found += [p for p in sorted(sub.glob(f"*{CSV_SUFFIX}")) if _is_csv_export(p)]
    return found


def _export_candidates(folder: Path) -> list[Path]:
    found: list[Path] = []
    for sub in (folder, folder / EXPORT_FOLDER):
        if sub.is_dir():
            found += sorted(sub.glob(f"*{EXPORT_SUFFIX}"))
    return found


def detect(path: Path) -> bool:
    if path.is_file():
        if path.suffix.lower() == PROJECT_SUFFIX:
            return True
        return _is_export(path) or _is_asset_file(path) or _is_v1(path) or _is_csv_export(path)
    if not path.is_dir():
        return False
    exports = _export_candidates(path)
    if exports:
        return _is_export(exports[0])
    if _csv_candidates(path):
        return True
    # a project folder: the .vott file or the per-asset files (names alone; VoTT's suffixes are its own)
    return next(path.glob(f"*{PROJECT_SUFFIX}"), None) is not None or \
        next(path.glob(f"*{ASSET_SUFFIX}"), None) is not None


def _hex_color(value: Any) -> tuple[int, int, int] | None:
    """'#rrggbb' or '#rgb' as an RGB triple; anything else is None (the class gets a VOC colour)."""
    if not isinstance(value, str) or not re.fullmatch(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", value.strip()):
        return None
    digits = value.strip()[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


Tags = tuple[list[str], dict[str, tuple[int, int, int]]]


def _declared_tags(project: dict[str, Any], file: Path) -> Tags | None:
    """The project's tag names and colours, or None when the project declares no tag list at all."""
    if "tags" not in project or project["tags"] is None:
        return None
    tags = project["tags"]
    if not isinstance(tags, list):
        raise DatasetError(f"'tags' is a {type(tags).__name__}, not a list of {{name, color}}.", path=file,
                           fix="re-export the project from VoTT.")
    names: list[str] = []
    colors: dict[str, tuple[int, int, int]] = {}
    for k, tag in enumerate(tags):
        if not isinstance(tag, dict) or not isinstance(tag.get("name"), str) or not tag["name"]:
            raise DatasetError(f"tag {k + 1} ({str(tag)[:60]}) has no name.", path=file,
                               fix="name the tag in VoTT's tag editor or delete it, then export again.")
        names.append(tag["name"])
        color = _hex_color(tag.get("color"))
        if color is not None:
            colors.setdefault(tag["name"], color)
    return names, colors


def _point_list(points: Any, *, path: Path, item: str) -> np.ndarray:
    """VoTT's [{x, y}, ...] as an (N, 2) array."""
    if not isinstance(points, list):
        raise DatasetError("'points' is not a list of {x, y}.", path=path, item=item)
    xy = []
    for p in points:
        if not isinstance(p, dict):
            raise DatasetError(f"point {str(p)[:40]} is not an {{x, y}} object.", path=path, item=item)
        xy.append((as_float(p.get("x"), path=path, item=item, what="x"),
                   as_float(p.get("y"), path=path, item=item, what="y")))
    return np.asarray(xy, dtype=np.float64).reshape(-1, 2)


def _rectangle(region: dict[str, Any], *, path: Path, item: str) -> np.ndarray:
    """A RECTANGLE from its boundingBox, or from the corner points when the box is missing."""
    box = region.get("boundingBox")
    if isinstance(box, dict):
        x, y, w, h = (as_float(box.get(k), path=path, item=item, what=f"boundingBox.{k}")
                      for k in ("left", "top", "width", "height"))
    else:
        pts = _point_list(region.get("points"), path=path, item=item)
        if len(pts) < 2:
            raise DatasetError("the rectangle has neither a boundingBox nor corner points.", path=path,
                               item=item, fix="redraw the region in VoTT.")
        (x, y), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        w, h = x1 - x, y1 - y
    if w <= 0 or h <= 0:
        raise DatasetError(f"the rectangle is {w:g} x {h:g} pixels; it covers nothing.", path=path, item=item,
                           fix="delete the region or redraw it.")
    return rectangle(x, y, w, h)


def _region(raw: Any, *, path: Path, item: str) -> Region | None:
    """One VoTT region, None for shapes without area; DatasetError for a region that cannot be used.
    A region with a shape but no tag comes back with label "" (its pixels are known, its class is not)."""
    if not isinstance(raw, dict):
        raise DatasetError(f"the region is a {type(raw).__name__}, not an object.", path=path, item=item)
    kind = raw.get("type") if isinstance(raw.get("type"), str) else repr(raw.get("type"))
    if kind in _NO_AREA:
        return None
    tags = raw.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise DatasetError("'tags' is not a list of tag names.", path=path, item=item)
    if kind in ("RECTANGLE", "SQUARE"):
        polygon = _rectangle(raw, path=path, item=item)
    elif kind == "POLYGON":
        polygon = points_array(_point_list(raw.get("points"), path=path, item=item), path=path, item=item)
    else:
        raise DatasetError(f"region type {kind!r} is not one VoTT defines (POLYGON, RECTANGLE, ...).",
                           path=path, item=item, fix="redraw the region in VoTT or delete it.")
    if not np.isfinite(polygon).all():
        raise DatasetError("the region's coordinates are too large to be pixels.", path=path, item=item)
    attributes: dict[str, Any] = {}
    if isinstance(raw.get("id"), str):
        attributes["vott_id"] = raw["id"]
    if len(tags) > 1:
        attributes["tags"] = list(tags)  # the class is the first tag; keep the others for the record
    return Region(label=tags[0] if tags else "", polygons=[polygon], attributes=attributes)


NO_TAG = ("the region has no tag, so it has no class.", "tag the region in VoTT (or delete it) and export again.")


def _local_path(url: Any) -> str:
    """The file a `file:` URL names, '' for anything else (http, blob storage, garbage)."""
    if not isinstance(url, str) or not url.lower().startswith("file:"):
        return ""
    try:
        return unquote(urlparse(url).path)
    except ValueError:
        return ""


def _source_folders(url: Any) -> tuple[str, ...]:
    """The name of the folder `asset.path` points into on the annotator's machine (VoTT's source folder), to
    look for under the project folder; never the path itself."""
    local = _local_path(url).replace("\\", "/").rstrip("/")
    parts = [p for p in local.split("/") if p not in ("", ".", "..")]
    return (parts[-2],) if len(parts) >= 2 and ":" not in parts[-2] else ()


def _frame_names(name: str) -> tuple[str, ...]:
    """File names a video frame asset (`clip.mp4#t=10.75`) is exported under."""
    if "#" not in name:
        return ()
    names = [name, *(name + s for s in IMAGE_SUFFIXES)]
    flat = name.replace("#", "_")
    names += [flat, *(flat + s for s in IMAGE_SUFFIXES)]
    return tuple(names)


def _sample(entry: Any, key: str, *, file: Path, finder: ImageFinder, log: ProblemLog) -> Sample | None:
    """The sample of one asset entry ({asset, regions}); None (after logging) when it cannot be used."""
    root = finder.root
    item = f"asset {key!r}"
    if not isinstance(entry, dict) or not isinstance(entry.get("asset"), dict):
        log.add("is not an {asset, regions} object.", path=file, item=item, fix="re-export the project.")
        return None
    asset = entry["asset"]
    name = asset.get("name")
    if not isinstance(name, str) or not name.strip():
        log.add("has no image name ('asset.name').", path=file, item=item, fix="re-export the project.")
        return None
    item = f"asset {name!r}"
    if not usable_name(name, root):
        log.add("the image name is too long to be a file name.", path=file, item=item[:120],
                fix="rename the image and tag it again.")
        return None
    regions_raw = entry.get("regions", [])
    if regions_raw is None:
        regions_raw = []
    if not isinstance(regions_raw, list):
        log.add("'regions' is not a list.", path=file, item=item, fix="re-export the project.")
        return None
    if asset.get("type") == _VIDEO and not regions_raw:
        log.note("{n} video asset(s) without regions skipped: VoTT keeps a video's tags on its frame assets",
                 name)
        return None
    if asset.get("state") == _NOT_VISITED and not regions_raw:
        return None  # never opened in VoTT: no regions does not mean "background only"
    size = asset.get("size") if isinstance(asset.get("size"), dict) else {}
    try:
        width = int(as_float(size.get("width", 0), path=file, item=item, what="asset.size.width"))
        height = int(as_float(size.get("height", 0), path=file, item=item, what="asset.size.height"))
    except DatasetError as exc:
        log.add(exc.problem, path=file, item=item, fix="re-export the project.")
        return None
    regions: list[Region] = []
    voids: list[Region] = []
    skipped = 0
    for k, raw in enumerate(regions_raw):
        where = f"{item}, region {k + 1}"
        try:
            region = _region(raw, path=file, item=where)
        except DatasetError as exc:  # this region is lost; the image and its other regions are kept
            log.add(exc.problem, path=file, item=where, fix=exc.fix or "", dropped="region")
            continue
        if region is None:
            skipped += 1
            log.note(NO_AREA, where)
        elif not region.label:
            log.add(NO_TAG[0], path=file, item=where, fix=NO_TAG[1], dropped="region")
            voids.append(region)
        else:
            regions.append(region)
    local = name.replace("\\", "/")
    found = finder.find(local, *_frame_names(local), near=file.parent, folders=_source_folders(asset.get("path")))
    image_path = found or finder.fallback(local)
    # VoTT names images by their file name alone (its source folder is flat): the sample keeps that name, or
    # the exported frame's file name for a video frame
    return Sample(name=found.name if found else image_path.name, image_path=image_path,
                  width=max(width, 0), height=max(height, 0), regions=regions, void_regions=voids,
                  skipped=skipped)


def _classes(declared: Tags | None, samples: list[Sample]) -> list[ClassInfo]:
    """The project's tags when it declares them (so checks flag undeclared ones), else the tags in use."""
    if declared is not None:
        names, colors = declared
        return make_classes(names, colors)
    seen: dict[str, None] = {}
    for sample in samples:
        for region in sample.regions:
            seen.setdefault(region.label, None)
    return make_classes(list(seen))


def project_root(target: Path) -> Path:
    """The project folder for a target folder (the one holding the .vott file and the asset files): its
    parent, where VoTT's source folder lies beside it. A folder at the top of the file system is its own."""
    return target.parent if target.parent != target else target


def _finder(target: Path, project: Any = None) -> ImageFinder:
    """Looks in the target folder, its export folder, and the folder named like the project's source folder
    (when the project holds its path unencrypted), all under the project folder."""
    root = project_root(target)
    folders = (target.name, f"{target.name}/{EXPORT_FOLDER}") if target != root else ()
    source = project.get("sourceConnection") if isinstance(project, dict) else None
    options = source.get("providerOptions") if isinstance(source, dict) else None
    folder_path = options.get("folderPath") if isinstance(options, dict) else None
    if isinstance(folder_path, str):
        parts = [p for p in folder_path.replace("\\", "/").split("/") if p not in ("", ".", "..")]
        if parts and ":" not in parts[-1]:
            folders += (parts[-1],)
    return ImageFinder(root, folders)


def _read_export(file: Path, log: ProblemLog) -> Dataset:
    data = load_json(file)
    if not isinstance(data, dict) or not isinstance(data.get("assets"), dict):
        raise DatasetError("is not a VoTT JSON export: the top level must be an object holding 'assets'.",
                           path=file, fix="export the project from VoTT with the 'VoTT JSON' provider.")
    declared = _declared_tags(data, file)
    target = file.parent.parent if file.parent.name == EXPORT_FOLDER else file.parent
    finder = _finder(target, data)
    samples = [s for key, entry in data["assets"].items()
               if (s := _sample(entry, str(key), file=file, finder=finder, log=log)) is not None]
    finder.report(log)
    return Dataset(classes=_classes(declared, samples), samples=samples, root=finder.root)


def _read_csv_export(file: Path, log: ProblemLog) -> Dataset:
    """VoTT's CSV export: a box per row; rows of one image and one box are one region (the first tag its class)."""
    try:
        rows = list(csv.reader(file.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot be read as a VoTT CSV export ({type(exc).__name__}).", path=file,
                           fix="export the project from VoTT again.") from None
    target = file.parent.parent if file.parent.name == CSV_EXPORT_FOLDER else file.parent
    finder = _finder(target)
    boxes: dict[str, dict[tuple[float, ...], list[str]]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        item = f"line {line}"
        try:
            if len(row) != len(CSV_COLUMNS):
                raise DatasetError(f"has {len(row)} columns; VoTT writes {len(CSV_COLUMNS)} "
                                   f"({', '.join(CSV_COLUMNS)}).", path=file, item=item)
            name, label = row[0].strip(), row[5].strip()
            x0, y0, x1, y1 = (as_float(v, path=file, item=item, what=c) for v, c in zip(row[1:5], CSV_COLUMNS[1:5],
                                                                                        strict=True))
            if not name or not usable_name(name, finder.root):
                raise DatasetError("the image name is empty or too long to be a file name.", path=file, item=item)
            if not (x1 > x0 and y1 > y0):
                raise DatasetError(f"the box {x0:g},{y0:g} - {x1:g},{y1:g} covers nothing.", path=file, item=item,
                                   fix="delete the region in VoTT or redraw it, and export again.")
        except DatasetError as exc:
            log.add(exc.problem, path=file, item=item, fix=exc.fix or "re-export the project.", dropped="region")
            continue
        boxes.setdefault(name, {}).setdefault((x0, y0, x1, y1), []).append(label)
    samples = []
    for name, regions in boxes.items():
        found = finder.find(name.replace("\\", "/"), near=file.parent)
        made = []
        for (x0, y0, x1, y1), tags in regions.items():
            attributes = {"tags": tags} if len(tags) > 1 else {}
            if tags[0]:
                made.append(Region(label=tags[0], polygons=[rectangle(x0, y0, x1 - x0, y1 - y0)],
                                   attributes=attributes))
            else:
                log.add(NO_TAG[0], path=file, item=f"image {name!r}", fix=NO_TAG[1], dropped="region")
        log.note(CSV_BOXES_ONLY, name, fix="Export the project with the 'VoTT JSON' provider to keep polygons.",
                 skipped=False, count=len(made))
        image_path = found or finder.fallback(name)
        samples.append(Sample(name=found.name if found else image_path.name, image_path=image_path,
                              width=0, height=0, regions=made))
    finder.report(log)
    return Dataset(classes=_classes(None, samples), samples=samples, root=finder.root)


def _project_file(folder: Path) -> Path | None:
    projects = sorted(folder.glob(f"*{PROJECT_SUFFIX}"))
    if len(projects) > 1:
        names = ", ".join(p.name for p in projects)
        raise DatasetError(f"holds several VoTT project files ({names}).", path=folder,
                           fix="keep one project per folder, or point at the export JSON.")
    return projects[0] if projects else None


def _read_asset_files(folder: Path, files: list[Path], log: ProblemLog) -> Dataset:
    """Per-asset files, with the tags of the folder's .vott project file when there is one."""
    project = _project_file(folder)
    declared, data = None, None
    if project is not None:
        data = load_json(project)
        if not isinstance(data, dict):
            raise DatasetError("is not a VoTT project: the top level must be an object.", path=project)
        declared = _declared_tags(data, project)
    samples: list[Sample] = []
    finder = _finder(folder, data)
    for file in files:
        try:
            entry = load_json(file)
        except DatasetError as exc:
            log.add(exc.problem, path=file, fix=exc.fix or "", dropped="file")
            continue
        sample = _sample(entry, file.name.removesuffix(ASSET_SUFFIX), file=file, finder=finder, log=log)
        if sample is not None:
            samples.append(sample)
    finder.report(log)
    return Dataset(classes=_classes(declared, samples), samples=samples, root=finder.root)


def read(path: Path, log: ProblemLog, **options: Any) -> Dataset:
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == PROJECT_SUFFIX:  # the live project: its asset files, not an older export
            return _read_asset_files(path.parent, sorted(path.parent.glob(f"*{ASSET_SUFFIX}")), log)
        if path.name.endswith(ASSET_SUFFIX) or _is_asset_file(path):
            return _read_asset_files(path.parent, [path], log)
        if not _is_export(path) and _is_v1(path):
            return _read_v1(path, log)
        if _is_csv_export(path):
            return _read_csv_export(path, log)
        return _read_export(path, log)
    if not path.is_dir():
        raise DatasetError("does not exist.", path=path)
    exports = _export_candidates(path) or _csv_candidates(path)
    if len(exports) > 1:
        names = ", ".join(rel_name(p, path) for p in exports)
        raise DatasetError(f"holds several VoTT exports ({names}).", path=path,
                           fix="point at the one you mean.")
    if exports:
        return _read_csv_export(exports[0], log) if exports[0].suffix.lower() == ".csv" else \
            _read_export(exports[0], log)
    files = sorted(path.glob(f"*{ASSET_SUFFIX}"))
    if not files and _project_file(path) is None:
        raise DatasetError("holds no VoTT export (*-export.json), *-asset.json files or .vott project.",
                           path=path, fix="export the project from VoTT with the 'VoTT JSON' provider.")
    return _read_asset_files(path, files, log)


# ---------------------------------------------------------------- VoTT 1

def _v1_region(raw: Any, *, file: Path, item: str) -> Region | None:
    """A VoTT 1 region in its canvas coordinates (x1..y2 on a `width` x `height` canvas); None for points.
    The class is the last tag, as VoTT 1's exporter takes it; label "" when it has none."""
    if not isinstance(raw, dict):
        raise DatasetError(f"the region is a {type(raw).__name__}, not an object.", path=file, item=item)
    kind = str(raw.get("type", "Rectangle")).lower()
    if kind in ("point", "points"):
        return None
    if kind not in ("rectangle", "rect", "square"):
        raise DatasetError(f"region type {raw.get('type')!r} is not one VoTT 1 draws (Rectangle, Square, Point).",
                           path=file, item=item, fix="redraw the region in VoTT or delete it.")
    x1, y1, x2, y2 = (as_float(raw.get(k), path=file, item=item, what=k) for k in ("x1", "y1", "x2", "y2"))
    (x0, x1), (y0, y1) = sorted((x1, x2)), sorted((y1, y2))
    if x1 <= x0 or y1 <= y0 or max(abs(x0), abs(y0), x1, y1) > 1e7:
        raise DatasetError(f"the rectangle {x0:g},{y0:g}-{x1:g},{y1:g} covers nothing.", path=file, item=item,
                           fix="delete the region or redraw it.")
    tags = raw.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise DatasetError("'tags' is not a list of tag names.", path=file, item=item)
    canvas = tuple(as_float(raw.get(k, 0) or 0, path=file, item=item, what=k) for k in ("width", "height"))
    region = Region(label=tags[-1] if tags else "", polygons=[rectangle(x0, y0, x1 - x0, y1 - y0)],
                    attributes={"canvas": canvas})
    if len(tags) > 1:
        region.attributes["tags"] = list(tags)
    return region


def _v1_names(key: str, file: Path, video: bool, listing: list[str]) -> tuple[str, ...]:
    """Image names a VoTT 1 frame key stands for: the name itself (image folders, newer VoTT 1), the image at
    that position of the folder in name order (older VoTT 1 numbered them), or a video's exported frame."""
    if video:
        stem = Path(file.name[: -len(".json")]).stem
        return (f"{stem}_frame_{key}.jpg", f"{stem}_frame_{key}.png")
    if key.isdigit() and listing and int(key) < len(listing) and key not in listing:
        return (listing[int(key)],)
    return (key,)


def _read_v1(file: Path, log: ProblemLog) -> Dataset:
    data = load_json(file)
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, dict):
        raise DatasetError("is not a VoTT 1 file: 'frames' must be an object of frame -> regions.", path=file,
                           fix="save the tagging job from VoTT 1 again, or export it from VoTT 2.")
    tags = data.get("inputTags", "")
    names = [t.strip() for t in tags.split(",") if t.strip()] if isinstance(tags, str) else []
    colors_raw = data.get("tag_colors") if isinstance(data.get("tag_colors"), list) else []
    colors = {n: c for n, c in zip(names, (_hex_color(c) for c in colors_raw), strict=False) if c is not None}
    root = file.parent
    video = file.name.lower()[: -len(".json")].endswith(VIDEO_SUFFIXES)
    finder = ImageFinder(root, stem_folders(file))
    folder = next((root / f for f in stem_folders(file) if (root / f).is_dir()), None)
    listing = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder else []
    visited = data.get("visitedFrames") if isinstance(data.get("visitedFrames"), list) else []
    keys = list(dict.fromkeys([*map(str, frames), *(str(v) for v in visited if isinstance(v, (str, int)))]))
    numbered = not video and any(k.isdigit() and k not in listing for k in keys) and listing
    if numbered:
        log.note("{n} VoTT 1 frame number(s) matched to the images of the folder in name order, the order VoTT 1 "
                 "numbered them in", count=len(keys), skipped=False)
    samples: list[Sample] = []
    for key in keys:
        raw_regions = frames.get(key, frames.get(int(key)) if key.isdigit() else None) or []
        item = f"frame {key!r}"
        if not isinstance(raw_regions, list):
            log.add("is not a list of regions.", path=file, item=item, fix="save the tagging job again.")
            continue
        regions, voids, skipped, canvas = [], [], 0, None
        for k, raw in enumerate(raw_regions):
            where = f"{item}, region {k + 1}"
            try:
                region = _v1_region(raw, file=file, item=where)
            except DatasetError as exc:
                log.add(exc.problem, path=file, item=where, fix=exc.fix or "", dropped="region")
                continue
            if region is None:
                skipped += 1
                log.note(NO_AREA, where)
                continue
            canvas = canvas or region.attributes["canvas"]
            if not region.label:
                log.add(NO_TAG[0], path=file, item=where, fix=NO_TAG[1], dropped="region")
                voids.append(region)
            else:
                regions.append(region)
        candidates = _v1_names(key, file, video, listing)
        found = finder.find(*candidates)
        image_path = found or finder.fallback(candidates[0])
        width, height = _v1_scale(found, canvas, [*regions, *voids])
        samples.append(Sample(name=rel_name(image_path, root), image_path=image_path, width=width, height=height,
                              regions=regions, void_regions=voids, skipped=skipped))
    finder.report(log)
    if names:  # tags used but not declared in inputTags (VoTT 1 accepts them): classes too, said
        used = dict.fromkeys(r.label for s in samples for r in s.regions)
        extra = [t for t in used if t not in names]
        if extra:
            shown = ", ".join(repr(t) for t in extra[:10]) + (" ..." if len(extra) > 10 else "")
            log.note(f"{file} uses tag(s) {shown} that its inputTags do not declare: read as classes",
                     count=len(extra), fix="(Declare them in the project's tags to keep this order.)", skipped=False)
        names = [*names, *extra]
    declared = names if names else None
    return Dataset(classes=_classes((declared, colors) if declared else None, samples), samples=samples,
                   root=root)


def _v1_scale(image: Path | None, canvas: tuple[float, float] | None, regions: list[Region]) -> tuple[int, int]:
    """Scale canvas coordinates to the image's pixels (VoTT 1's exporter multiplies by image size / canvas
    size); the image size, or the canvas size when the image is not there."""
    from masksmith.core.images import ImageReadError, image_size

    size = None
    if image is not None:
        try:
            size = image_size(image)
        except ImageReadError:
            size = None
    if canvas is None or not all(c > 0 for c in canvas):
        return size or (0, 0)
    if size is None:
        return int(round(canvas[0])), int(round(canvas[1]))
    for region in regions:
        cw, ch = region.attributes.pop("canvas", canvas) or canvas
        if cw > 0 and ch > 0:
            region.polygons = [p * np.array([size[0] / cw, size[1] / ch]) for p in region.polygons]
    return size
