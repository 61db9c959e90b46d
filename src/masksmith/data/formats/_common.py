"""Small helpers every format reader shares: JSON loading, image lookup and sizes, shape conversion."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from masksmith.errors import DatasetError

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


# Folders that annotation tools and data set conventions keep images in, beside the annotation file.
IMAGE_FOLDERS = ("", "images", "JPEGImages", "imgs", "img", "data", "train", "val", "test")


def find_image(root: Path, name: str, *extra: str) -> Path:
    """The image `name` refers to: looked up beside the annotation, in the usual image folders, then anywhere
    below `root` by bare file name. `extra` are other names the annotation gives (e.g. COCO Annotator's path).

    Returns the most plausible path even when it does not exist; validation reports missing files.
    """
    names = [n.replace("\\", "/") for n in (name, *extra) if n]
    try:
        for n in names:
            for folder in IMAGE_FOLDERS:
                for candidate in (root / folder / n, root / folder / Path(n).name):
                    if candidate.is_file():
                        return candidate
        found = _images_below(root).get(Path(names[0]).name) if names else None
        if found is not None and found.is_file():
            return found
    except (OSError, ValueError):  # a name too long for the file system, or with a NUL byte
        pass
    return root / names[0] if names else root


@functools.lru_cache(maxsize=8)
def _images_below(root: Path) -> dict[str, Path]:
    """Every image file below `root` by bare name (first found wins), built once per folder: looking each
    missing image up with its own recursive search would be quadratic on large folders."""
    index: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            index.setdefault(p.name, p)
    return index


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
