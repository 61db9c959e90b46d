"""Small helpers every format reader shares: JSON loading, image lookup and sizes, shape conversion."""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from masksmith.core.errors import DatasetError, MasksmithError
from masksmith.core.paths import relative_parts, resolve_under, safe_filename, safe_relative

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def load_json(path: Path) -> Any:
    """Parse a JSON file, turning every failure into a DatasetError that names the file and the spot."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError("the file does not exist.", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot be read as UTF-8 text ({exc}).", path=path,
                           fix="save the annotations as UTF-8 JSON.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).",
                           path=path, fix="re-export the annotations from the tool, or repair the file.") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer longer than Python will convert
        raise DatasetError(f"is not valid JSON ({exc}).", path=path,
                           fix="re-export the annotations from the tool, or repair the file.") from None
    except RecursionError:
        raise DatasetError("is nested too deeply to be an annotation file.", path=path) from None


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


@dataclass(frozen=True)
class Option:
    """One reading option a format takes (`-o name=value`): listed by `masksmith dataset formats`, and the
    only keys load_dataset accepts for that format."""

    name: str
    meaning: str
    default: Any = None


# Split folder names as data sets publish them, and the one name masksmith gives each split.
SPLIT_NAMES = {"train": "train", "training": "train", "trainval": "train", "val": "val", "valid": "val",
               "validation": "val", "dev": "val", "test": "test", "testing": "test"}


def split_name(text: str | None) -> str | None:
    """'train', 'val' or 'test' for a folder, list or subset name that means one (Train, validation, ...)."""
    return SPLIT_NAMES.get(text.strip().lower()) if isinstance(text, str) else None


# Folders that annotation tools and data set conventions keep images in, beside the annotation file.
IMAGE_FOLDERS = ("", "images", "JPEGImages", "imgs", "img", "data", "train", "val", "test")
_INDEX_DEPTH = 4  # the base-name search goes this deep below the root ...
_INDEX_LIMIT = 200_000  # ... and looks at no more entries than this (a data set, not a home folder)


class ImageFinder:
    """Finds the image an annotation names, reading only from under `root` (the data set's folder).

    Names come from data and are hostile: every candidate goes through masksmith.core.paths.resolve_under, so
    `..` cannot climb out and links cannot lead out. A name tried, in order:
    1. relative to `near` (the annotation file's folder, as LabelMe's imagePath is), when that stays under root;
    2. as a relative path in root and in the usual image folders (images/, JPEGImages/, ...) and the `folders`
       the reader adds (the annotation file's stem folder, VoTT's source folder, a CVAT subset);
    3. by base name in those folders, and then anywhere below the root (when exactly one file has that name,
       compared case-insensitively only when the exact name is not there). An absolute name from another
       machine (`/home/u/x.jpg`, `file:/Users/...`, `C:\\...`) is only ever looked up by its base name.

    `find` returns the existing file, or None; `fallback` the path it would have had (for the report).
    Base names that several files below the root share are not guessed: they are listed in `ambiguous`.
    """

    def __init__(self, root: Path, folders: tuple[str, ...] = ()) -> None:
        self.root = Path(root)
        self.folders = tuple(dict.fromkeys((*IMAGE_FOLDERS, *folders)))
        self._index: dict[str, list[Path]] | None = None
        self._lower: dict[str, list[Path]] | None = None
        self.ambiguous: dict[str, list[Path]] = {}

    def find(self, name: str, *extra: str, near: Path | None = None, folders: tuple[str, ...] = ()) -> Path | None:
        names = [n for n in (name, *extra) if isinstance(n, str) and n.strip() and "\x00" not in n]
        search = tuple(dict.fromkeys((*folders, *self.folders)))
        for n in names:
            for rel in self._candidates(n, near, search):
                found = self._existing(rel)
                if found is not None:
                    return found
        for n in names:
            found = self._by_base_name(_base_name(n))
            if found is not None:
                return found
        return None

    def fallback(self, name: str) -> Path:
        """Where the image would be: root / the name made safe (its base name for an absolute one)."""
        try:
            return resolve_under(self.root, safe_relative(name.replace("\\", "/")), flatten=True)
        except MasksmithError:
            return self.root / (safe_filename(_base_name(name)) if name else "image")

    def _candidates(self, name: str, near: Path | None, folders: tuple[str, ...]) -> list[str]:
        """Relative paths (POSIX) under the root to try for `name`, most specific first."""
        text = name.replace("\\", "/")
        out: list[str] = []
        try:
            strict = "/".join(relative_parts(text))
        except MasksmithError:
            strict = ""  # absolute, or climbing out: only its safe remainder and base name are tried
        if near is not None and not _is_absolute(text):
            try:  # relative to the annotation's folder, '..' included, as long as it stays under the root
                base = Path(near).relative_to(self.root).as_posix()
            except ValueError:
                base = None
            if base is not None:
                joined = posixpath.normpath(posixpath.join(base, text))
                if joined != ".." and not joined.startswith("../") and joined != ".":
                    out.append(joined)
        try:
            flat = safe_relative(text)
        except MasksmithError:
            return out
        base_name = posixpath.basename(flat)
        for rel in dict.fromkeys(r for r in (strict, flat, base_name) if r):
            for folder in folders:
                out.append(posixpath.join(folder, rel) if folder else rel)
        return list(dict.fromkeys(out))

    def _existing(self, rel: str) -> Path | None:
        try:
            if not (self.root / rel).is_file():  # a cheap stat first; most candidates are not there
                return None
            return resolve_under(self.root, rel)  # then the full check: no '..', no link out of the root
        except (MasksmithError, OSError, ValueError):
            return None

    def _by_base_name(self, base: str) -> Path | None:
        if not base:
            return None
        index, lower = self._indexes()
        found = index.get(base) or lower.get(base.lower()) or []
        if len(found) > 1:
            self.ambiguous[base] = found
            return None
        if found:
            return self._existing(found[0].relative_to(self.root).as_posix())
        return None

    def _indexes(self) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
        """Every image file below the root by base name (and lower-cased), built once per finder: a lookup per
        missing image would be quadratic on large folders."""
        if self._index is None or self._lower is None:
            self._index, self._lower = {}, {}
            seen = 0
            for top, dirs, files in os.walk(self.root):
                depth = len(Path(top).relative_to(self.root).parts)
                dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < _INDEX_DEPTH else []
                for f in sorted(files):
                    seen += 1
                    if Path(f).suffix.lower() in IMAGE_SUFFIXES:
                        path = Path(top) / f
                        self._index.setdefault(f, []).append(path)
                        self._lower.setdefault(f.lower(), []).append(path)
                if seen > _INDEX_LIMIT:
                    break
        return self._index, self._lower

    def report(self, log: Any) -> None:
        """Hand the base names that several files share to the log: the shared checks report the images
        named so as ambiguous (one message, whether the pixels are needed or not), not as missing."""
        for base, paths in self.ambiguous.items():
            log.ambiguous[base] = [p.relative_to(self.root).as_posix() for p in paths]


def find_image(root: Path, name: str, *extra: str, near: Path | None = None,
               folders: tuple[str, ...] = ()) -> Path:
    """The image `name` refers to (see ImageFinder), or where it would be when it is not there.

    A reader that looks up many images keeps one ImageFinder instead, so the base-name index is built once."""
    finder = ImageFinder(root)
    return finder.find(name, *extra, near=near, folders=folders) or finder.fallback(name)


def stem_folders(annotation_file: Path) -> tuple[str, ...]:
    """Folders named after an annotation file, where tools put its images: `train.json` -> `train/`,
    `instances_val2017.json` -> `val2017/`, VoTT 1's `photos.json` beside `photos/`."""
    stem = annotation_file.name
    for suffix in (".coco.json", ".json", ".xml", ".csv"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    names = [stem]
    for prefix in ("instances_", "annotations_", "annotation_", "labels_", "_annotations"):
        if stem.lower().startswith(prefix) and len(stem) > len(prefix):
            names.append(stem[len(prefix):])
    return tuple(n for n in dict.fromkeys(names) if n and n not in (".", ".."))


def _base_name(name: str) -> str:
    parts = [p for p in str(name).replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return parts[-1] if parts else ""


def _is_absolute(text: str) -> bool:
    return text.startswith("/") or bool(re.match(r"^[A-Za-z]:", text)) or text.lower().startswith("file:")


def usable_name(name: str, root: Path) -> bool:
    """False for names no file system takes (a part over 255 bytes, a path over 4 KiB): os.stat would raise
    'File name too long' instead of saying the file is not there."""
    parts = name.replace("\\", "/").split("/")
    return len(str(root)) + len(name.encode("utf-8", "surrogatepass")) < 4000 and \
        all(len(p.encode("utf-8", "surrogatepass")) <= 255 for p in parts)


def rel_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def as_float(value: Any, *, path: Path, item: str, what: str) -> float:
    """A finite float, or a DatasetError naming the file and item (JSON true/false are not numbers)."""
    if isinstance(value, bool):
        raise DatasetError(f"{what} is {value!r}, not a number.", path=path, item=item)
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        raise DatasetError(f"{what} is {value!r}, not a number.", path=path, item=item) from None
    if not math.isfinite(f):
        raise DatasetError(f"{what} is {value!r}, not a finite number.", path=path, item=item)
    return f


def points_array(values: Any, *, path: Path, item: str) -> np.ndarray:
    """An (N, 2) float array from [[x, y], ...] or [x0, y0, x1, y1, ...], checked to be a polygon."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise DatasetError("polygon points are not numbers.", path=path, item=item) from None
    if arr.ndim == 1 and arr.size % 2 == 0:
        arr = arr.reshape(-1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DatasetError("polygon points are not (x, y) pairs.", path=path, item=item)
    if not np.isfinite(arr).all():
        raise DatasetError("polygon points include NaN or infinity.", path=path, item=item)
    if len(arr) < 3:
        raise DatasetError(f"polygon has {len(arr)} points; a polygon needs at least 3.", path=path, item=item,
                           fix="delete the region or redraw it.")
    return arr


def rectangle(x: float, y: float, w: float, h: float) -> np.ndarray:
    """A box (top-left corner, width, height) as a 4-point polygon."""
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)


def ellipse(cx: float, cy: float, rx: float, ry: float, theta: float = 0.0, n: int | None = None) -> np.ndarray:
    """An ellipse (centre, radii, rotation in radians) as a polygon fine enough to rasterise exactly."""
    if n is None:
        n = int(min(360, max(16, math.ceil(2 * math.pi * max(rx, ry, 1.0)))))
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    c, s = math.cos(theta), math.sin(theta)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)
