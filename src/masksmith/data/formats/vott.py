"""Microsoft VoTT v2: the "VoTT JSON" export and the project's own folder of per-asset files.

Two layouts are read:
- the export, `vott-json-export/<project>-export.json`: the project object (name, securityToken, tags, ...)
  with `assets` = {asset id: {asset, regions, version}}; the images are usually copied beside it;
- the target folder VoTT saves to while tagging: one `<asset id>-asset.json` per image ({asset, regions,
  version}) beside the `<project>.vott` file, which declares the tags.

A region's class is its first tag; tag colours become class colours. `asset.path` is a URL on the annotator's
machine, so images are found by `asset.name` next to the annotations (and in their parent folder).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from masksmith.data.formats._common import (
    IMAGE_FOLDERS,
    as_float,
    find_image,
    load_json,
    points_array,
    rectangle,
    rel_name,
    usable_name,
)
from masksmith.data.schema import ClassInfo, Dataset, ProblemLog, Region, Sample, make_classes
from masksmith.errors import DatasetError

NAME = "vott"
DESCRIPTION = "Microsoft VoTT v2 JSON export or project folder"

EXPORT_SUFFIX = "-export.json"
ASSET_SUFFIX = "-asset.json"
PROJECT_SUFFIX = ".vott"
EXPORT_FOLDER = "vott-json-export"

_HEAD_BYTES = 1 << 16
_ASSETS_KEY = re.compile(rb'"assets"\s*:')
_ASSET_KEY = re.compile(rb'"asset"\s*:')
_REGIONS_KEY = re.compile(rb'"regions"\s*:')
_PROJECT_KEYS = re.compile(rb'"(securityToken|videoSettings|sourceConnection|activeLearningSettings)"\s*:')

# Shapes without area: nothing to paint, and not a fault either.
_NO_AREA = {"POINT", "POLYLINE"}
_VIDEO = 2  # AssetType.Video: the frames are separate assets (type 3) and carry the regions
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
        return _is_export(path) or _is_asset_file(path)
    if not path.is_dir():
        return False
    exports = _export_candidates(path)
    if exports:
        return _is_export(exports[0])
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
    """One VoTT region, None for shapes without area; DatasetError for a region that cannot be used."""
    if not isinstance(raw, dict):
        raise DatasetError(f"the region is a {type(raw).__name__}, not an object.", path=path, item=item)
    kind = raw.get("type") if isinstance(raw.get("type"), str) else repr(raw.get("type"))
    if kind in _NO_AREA:
        return None
    tags = raw.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise DatasetError("'tags' is not a list of tag names.", path=path, item=item)
    if not tags or not tags[0]:
        raise DatasetError("the region has no tag, so it has no class.", path=path, item=item,
                           fix="tag the region in VoTT (or delete it) and export again.")
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
    return Region(label=tags[0], polygons=[polygon], attributes=attributes)


def _local_path(url: Any) -> str:
    """The file a `file:` URL names, '' for anything else (http, blob storage, garbage)."""
    if not isinstance(url, str) or not url.lower().startswith("file:"):
        return ""
    try:
        return unquote(urlparse(url).path)
    except ValueError:
        return ""


def _locate_image(name: str, url: Any, root: Path) -> Path:
    """The image named `name`: beside the annotations, then in their parent folder, then at `asset.path` if
    the data set is still on the annotator's machine. Falls back to root/name (reported as missing later)."""
    found = find_image(root, name)
    if found.is_file():
        return found
    parent = root.parent
    for folder in IMAGE_FOLDERS:
        candidate = parent / folder / name
        if candidate.is_file():
            return candidate
    local = _local_path(url)
    if local and usable_name(local, root) and Path(local).is_file():
        return Path(local)
    return root / name


def _sample(entry: Any, key: str, *, file: Path, root: Path, log: ProblemLog) -> Sample | None:
    """The sample of one asset entry ({asset, regions}); None (after logging) when it cannot be used."""
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
    for k, raw in enumerate(regions_raw):
        where = f"{item}, region {k + 1}"
        try:
            region = _region(raw, path=file, item=where)
        except DatasetError as exc:
            # one bad region spoils the whole image: dropping it alone would turn its pixels into background
            log.add(exc.problem, path=file, item=where, fix=exc.fix or "")
            return None
        if region is not None:
            regions.append(region)
    image_path = _locate_image(name.replace("\\", "/"), asset.get("path"), root)
    return Sample(name=rel_name(image_path, root), image_path=image_path, width=max(width, 0),
                  height=max(height, 0), regions=regions)


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


def _read_export(file: Path, log: ProblemLog) -> Dataset:
    data = load_json(file)
    if not isinstance(data, dict) or not isinstance(data.get("assets"), dict):
        raise DatasetError("is not a VoTT JSON export: the top level must be an object holding 'assets'.",
                           path=file, fix="export the project from VoTT with the 'VoTT JSON' provider.")
    declared = _declared_tags(data, file)
    root = file.parent
    samples = [s for key, entry in data["assets"].items()
               if (s := _sample(entry, str(key), file=file, root=root, log=log)) is not None]
    return Dataset(classes=_classes(declared, samples), samples=samples, root=root)


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
    declared = None
    if project is not None:
        data = load_json(project)
        if not isinstance(data, dict):
            raise DatasetError("is not a VoTT project: the top level must be an object.", path=project)
        declared = _declared_tags(data, project)
    samples: list[Sample] = []
    for file in files:
        try:
            entry = load_json(file)
        except DatasetError as exc:
            log.add(exc.problem, path=file, fix=exc.fix or "")
            continue
        sample = _sample(entry, file.name.removesuffix(ASSET_SUFFIX), file=file, root=folder, log=log)
        if sample is not None:
            samples.append(sample)
    return Dataset(classes=_classes(declared, samples), samples=samples, root=folder)


def read(path: Path, log: ProblemLog, **options: Any) -> Dataset:
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == PROJECT_SUFFIX:  # the live project: its asset files, not an older export
            return _read_asset_files(path.parent, sorted(path.parent.glob(f"*{ASSET_SUFFIX}")), log)
        if path.name.endswith(ASSET_SUFFIX) or _is_asset_file(path):
            return _read_asset_files(path.parent, [path], log)
        return _read_export(path, log)
    if not path.is_dir():
        raise DatasetError("does not exist.", path=path)
    exports = _export_candidates(path)
    if len(exports) > 1:
        names = ", ".join(rel_name(p, path) for p in exports)
        raise DatasetError(f"holds several VoTT exports ({names}).", path=path,
                           fix="point at the one you mean.")
    if exports:
        return _read_export(exports[0], log)
    files = sorted(path.glob(f"*{ASSET_SUFFIX}"))
    if not files and _project_file(path) is None:
        raise DatasetError("holds no VoTT export (*-export.json), *-asset.json files or .vott project.",
                           path=path, fix="export the project from VoTT with the 'VoTT JSON' provider.")
    return _read_asset_files(path, files, log)
