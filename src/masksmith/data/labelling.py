"""The labelling loop's data set: photos waiting for a label beside the labelled ones, and corrected masks saved
as real annotations.

The layout is the mask-folder format's (`formats/masks.py`), so every reader and `dataset convert` see the
labelled photos as ordinary samples:

    DATA/images/<photo>            labelled photos
    DATA/masks/<stem>.png          their class-value masks (0 background, 1..N the classes, 255 void)
    DATA/classes.txt               the class names, line i = value i (line 0 the background)
    DATA/unlabelled/<photo>        photos without a mask yet (no reader pairs them; `inspect` counts them)
    DATA/.versions/<stem>.<n>.png  every earlier mask of a photo, n = 1, 2, ... (oldest first)

A save writes the new mask atomically beside the old one, keeps the old one under `.versions/`, and moves the
photo from `unlabelled/` to `images/`; saves to one data set take a lock, so two at once leave one
consistent mask and the one before it. Names from uploads go through `masksmith.core.paths`.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from masksmith.core.errors import DatasetError
from masksmith.core.labels import IGNORE_INDEX
from masksmith.core.outputs import atomic_copy, atomic_save
from masksmith.core.paths import resolve_under, safe_filename

IMAGES, MASKS, UNLABELLED, VERSIONS, CLASSES = "images", "masks", "unlabelled", ".versions", "classes.txt"
LOCK = ".labelling.lock"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_THREAD_LOCK = threading.Lock()  # flock conflicts across open files, the thread lock within one process


@dataclass
class Photo:
    """One photo of a labelling data set: its file name, where it is, and whether it has a mask."""

    name: str
    path: Path
    labelled: bool


def is_labelling_folder(root: str | Path) -> bool:
    """Whether `root` has the layout above (a classes.txt and an images/ or unlabelled/ folder)."""
    root = Path(root)
    return (root / CLASSES).is_file() and ((root / IMAGES).is_dir() or (root / UNLABELLED).is_dir())


def require_folder(root: str | Path) -> Path:
    root = Path(root)
    if not is_labelling_folder(root):
        raise DatasetError("is not a folder of masks to label (images/, masks/ and classes.txt).", path=root,
                           fix="convert the data set first: `dataset convert DATA OUT --to masks`, then use OUT.")
    return root


def named_values(root: str | Path) -> dict[int, str]:
    """{mask value: class name} from the folder's classes.txt (a line of the background first, as `dataset
    convert` writes it: the names are values 1..N; a list without it is read as values 1..N too)."""
    from masksmith.data.formats import masks

    found = masks.read_classes_txt(Path(root) / CLASSES)
    if isinstance(found, tuple):  # (the name of value 0 when it is a class, the names of values 1..N)
        zero, names = found
        return {**({0: zero} if zero else {}), **{i: n for i, n in enumerate(names, start=1)}}
    if found.values is not None:  # a class list that says where it starts
        return dict(found.values)
    return {i: n for i, n in enumerate(found.names, start=1)}


def class_names(root: str | Path) -> list[str]:
    """The class names of mask values 1..N, in value order."""
    named = named_values(root)
    return [named[v] for v in sorted(named) if v > 0]


def top_value(root: str | Path) -> int:
    """The highest class value a mask may hold (N, the classes after the background)."""
    return max(named_values(root), default=0)


def _is_photo(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in PHOTO_SUFFIXES


def _photos_in(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if _is_photo(p))
    except OSError:
        return []


def unlabelled_photos(root: str | Path) -> list[Path]:
    """The photos under DATA/unlabelled/ (none when the folder does not exist)."""
    return _photos_in(Path(root) / UNLABELLED)


def photos(root: str | Path) -> list[Photo]:
    """Every photo: those in images/ (sub-folders too; labelled when masks/ holds their mask) and the
    unlabelled ones."""
    root = Path(root)
    try:
        found = sorted(p for p in (root / IMAGES).rglob("*") if _is_photo(p))
    except OSError:
        found = []
    out = []
    for path in found:
        rel = path.relative_to(root / IMAGES).as_posix()
        out.append(Photo(rel, path, (root / MASKS / Path(rel).with_suffix(".png")).is_file()))
    return out + [Photo(p.name, p, False) for p in unlabelled_photos(root)]


def counts(root: str | Path) -> dict[str, int]:
    """{"labelled": photos with a mask, "unlabelled": photos waiting for one}."""
    found = photos(root)
    return {"labelled": sum(p.labelled for p in found), "unlabelled": sum(not p.labelled for p in found)}


def _taken_stems(root: Path) -> set[str]:
    return {p.stem.lower() for folder in (IMAGES, UNLABELLED, MASKS) for p in _photos_in(root / folder)}


def _free_name(name: str, taken: set[str]) -> str:
    safe = safe_filename(Path(name).name or name, "photo")
    stem, suffix = Path(safe).stem or "photo", Path(safe).suffix.lower()
    candidate, n = stem, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem}_{n}"
    taken.add(candidate.lower())
    return candidate + suffix


def add_unlabelled(root: str | Path, files: Iterable[tuple[str, bytes | Path]]) -> list[str]:
    """Copy photos (name, bytes or a file) into DATA/unlabelled/ under safe names that no photo of the data
    set has yet (`a.jpg` -> `a_2.jpg`); each must open as an image. Returns the names given."""
    from masksmith.core.images import image_size

    root = require_folder(root)
    added: list[str] = []
    with labelling_lock(root):
        taken = _taken_stems(root)
        for name, data in files:
            if Path(name).suffix.lower() not in PHOTO_SUFFIXES:
                raise DatasetError(f"{name!r} is not a photo ({', '.join(PHOTO_SUFFIXES)}).",
                                   fix="add JPEG or PNG photos.")
            image_size(data if isinstance(data, bytes) else Path(data))  # refuses what is not an image
            target = inside(root, UNLABELLED, _free_name(name, taken))
            if isinstance(data, bytes):
                atomic_save(target, lambda tmp, data=data: tmp.write_bytes(data))
            else:
                atomic_copy(data, target)
            added.append(target.name)
    return added


def inside(root: Path, folder: str, name: str) -> Path:
    """root/folder/name, refused (one line) when the name climbs out or a link (the folder itself too) leads out
    of the data set's folder."""
    resolve_under(root, folder, what="folder")  # the folder may not be a link out of the data set either
    path = resolve_under(root / folder, name, what="photo name")
    resolve_under(root, f"{folder}/{path.relative_to(root / folder).as_posix()}", what="photo name")
    return path


def find_photo(root: str | Path, name: str) -> Photo:
    """The photo called `name` (a file name from a request: resolved under its folder, never outside)."""
    root = Path(root)
    path = inside(root, IMAGES, name)  # images/ may have sub-folders
    if _is_photo(path):
        rel = path.relative_to(root / IMAGES).as_posix()
        return Photo(rel, path, (root / MASKS / Path(rel).with_suffix(".png")).is_file())
    path = inside(root, UNLABELLED, name)
    if _is_photo(path) and path.parent == root / UNLABELLED:
        return Photo(path.name, path, False)
    raise DatasetError(f"has no photo {name!r}.", path=root, fix="pick a photo the data set page lists.")


def mask_path(root: str | Path, photo: Photo) -> Path:
    """masks/<the photo's path under images/>.png (an unlabelled photo's mask goes where it will be)."""
    return Path(root) / MASKS / Path(photo.name).with_suffix(".png")


def version_key(photo: Photo) -> str:
    """The name a photo's earlier masks are kept under in .versions/ (its path, sub-folders joined by '__')."""
    return safe_filename(Path(photo.name).with_suffix("").as_posix().replace("/", "__"), "photo")


def read_mask(root: str | Path, name: str) -> np.ndarray | None:
    """The photo's saved class-value mask, or None when it has none yet."""
    path = mask_path(root, find_photo(root, name))
    if not path.is_file():
        return None
    from masksmith.data.formats.masks import grey_or_indices, open_mask

    return grey_or_indices(open_mask(path), path)


def decode_mask(data: bytes) -> np.ndarray:
    """A class-value mask from PNG bytes: grey or palette values as they are, or RGB(A) whose channels are equal
    (what a canvas saves) with full alpha. Anything else is refused with one line."""
    from masksmith.core.images import open_image

    im = open_image(data, orient=False)
    if im.format != "PNG":
        raise DatasetError(f"the mask is a {im.format} file, not a PNG.", fix="send the mask as a PNG.")
    if im.mode in ("L", "P"):
        return np.asarray(im, dtype=np.uint8)
    if im.mode not in ("RGB", "RGBA"):
        raise DatasetError(f"the mask has pixel format {im.mode}.", fix="send an 8-bit grey PNG of class values.")
    arr = np.asarray(im, dtype=np.uint8)
    if im.mode == "RGBA" and (arr[..., 3] != 255).any():
        raise DatasetError("the mask has transparent pixels.", fix="send every pixel with full opacity.")
    if (arr[..., 0] != arr[..., 1]).any() or (arr[..., 0] != arr[..., 2]).any():
        raise DatasetError("the mask is a colour image, not class values.", fix="send R = G = B = the class value.")
    return arr[..., 0].copy()


def check_mask(mask: np.ndarray, size: tuple[int, int], classes: int) -> np.ndarray:
    """`mask` as (H, W) uint8 if it is `size` (width, height) and holds only 0..`classes` and void (255)."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or (mask.shape[1], mask.shape[0]) != tuple(size):
        got = f"{mask.shape[1]}x{mask.shape[0]}" if mask.ndim == 2 else f"shape {mask.shape}"
        raise DatasetError(f"the mask is {got} but the photo is {size[0]}x{size[1]}.",
                           fix="send a mask of the photo's size.")
    if mask.dtype != np.uint8:
        if mask.dtype.kind not in "iu" or (mask.size and (mask.min() < 0 or mask.max() > 255)):
            raise DatasetError(f"the mask holds {mask.dtype} values, not 8-bit class values.",
                               fix="send an 8-bit grey PNG of class values.")
        mask = mask.astype(np.uint8)
    present = np.flatnonzero(np.bincount(mask.ravel(), minlength=256))  # a count, not a sort: fast on 12 MP
    bad = [int(v) for v in present if not (v <= classes or v == IGNORE_INDEX)]
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
        raise DatasetError(f"the mask holds value{'s' if len(bad) > 1 else ''} {shown}, which name no class "
                           f"(0 background, 1..{classes} the classes, {IGNORE_INDEX} void).",
                           fix="paint only the data set's classes.")
    return mask


@dataclass
class Saved:
    """What a save did: the mask written, the earlier mask kept (None for a first label), the version."""

    photo: str
    mask: Path
    kept: Path | None
    version: int


def versions(root: str | Path, stem: str) -> list[Path]:
    """The earlier masks of a photo (by `version_key`: its stem for a photo at the top of images/), oldest
    first."""
    pattern = re.compile(re.escape(stem) + r"\.(\d+)\.png")
    found = []
    for p in (Path(root) / VERSIONS).glob(f"{glob_escape(stem)}.*.png"):
        m = pattern.fullmatch(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def save_mask(root: str | Path, name: str, mask: np.ndarray | bytes) -> Saved:
    """Save the class-value mask of photo `name` (an array, or PNG bytes) as its annotation: checked against the
    photo's size and the classes, the previous mask kept under .versions/, written atomically, the photo moved
    from unlabelled/ to images/. Under the data set's lock."""
    from masksmith.core.images import image_size

    root = require_folder(root)
    array = decode_mask(mask) if isinstance(mask, bytes) else np.asarray(mask)
    with labelling_lock(root):
        photo = find_photo(root, name)
        array = check_mask(array, image_size(photo.path), top_value(root))
        target = mask_path(root, photo)
        kept, version = None, 1
        if target.is_file():
            key = version_key(photo)
            earlier = versions(root, key)
            version = len(earlier) + 1
            kept = atomic_copy(target, root / VERSIONS / f"{key}.{version}.png")
            version += 1
        png = io.BytesIO()
        Image.fromarray(array, "L").save(png, format="PNG")
        atomic_save(target, lambda tmp: tmp.write_bytes(png.getvalue()))
        if photo.path.parent == root / UNLABELLED:
            dest = inside(root, IMAGES, photo.name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(photo.path, dest)
    return Saved(photo.name, target, kept, version)


@contextlib.contextmanager
def labelling_lock(root: Path) -> Iterator[None]:
    """One writer at a time in a labelling folder: a thread lock, and an exclusive flock on DATA/.labelling.lock
    (other processes: the CLI beside the web app)."""
    with _THREAD_LOCK:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: the thread lock alone
            yield
            return
        fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


