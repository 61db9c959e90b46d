"""What every format writer shares: the output folder guard, safe and unique output names, image copies.

Writers take `out` as a folder path or an `OutputFolder` (which `convert` makes with the data set as input and
the user's --overwrite choice): the folder may not be, hold or lie inside the data set, no file masksmith did
not write is replaced without --overwrite, and every file is written atomically (masksmith.core.outputs).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path, PurePosixPath

from PIL import Image

from masksmith.core.errors import DatasetError
from masksmith.core.outputs import OutputFolder, as_output_folder
from masksmith.core.paths import safe_relative
from masksmith.data.formats._common import IMAGE_SUFFIXES, split_name
from masksmith.data.schema import Dataset, Sample

GENERIC_IMAGE_DIRS = ("images", "image", "imgs", "img", "JPEGImages", "rgb")
# Written first into a folder a data set is being written to, removed last: a folder that still holds it was cut
# short (Ctrl-C, a kill, a full disk) and is read as partial (masksmith.data.load), never as a complete data set.
PARTIAL_MARKER = ".masksmith-partial"


def begin_output(folder: OutputFolder, format: str, images: int) -> None:
    folder.write_text(PARTIAL_MARKER, json.dumps({"writing": format, "images": images,
                                                  "by": "masksmith"}) + "\n")


def end_output(folder: OutputFolder) -> None:
    with contextlib.suppress(FileNotFoundError):
        folder.path(PARTIAL_MARKER).unlink()


def partial_output(folder: Path) -> dict | None:
    """What the marker of an unfinished output in `folder` says ({} when it cannot be read), or None."""
    marker = folder / PARTIAL_MARKER
    try:
        if not marker.is_file():
            return None
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def output_folder(dataset: Dataset, out: str | Path | OutputFolder, overwrite: bool = False) -> OutputFolder:
    """`out` as an OutputFolder guarded against the data set's own folder."""
    return as_output_folder(out, inputs=[dataset.root], overwrite=overwrite)


def output_names(dataset: Dataset) -> list[str]:
    """Each sample's name as a relative path safe to write below an output folder (masksmith.core.paths
    flattens '../' and absolute names), refusing two samples that would land on one file."""
    names, seen = [], {}
    for sample in dataset.samples:
        name = safe_relative(sample.name, what="image file name")
        key = name.lower()
        if key in seen:
            raise DatasetError(f"images {seen[key]!r} and {sample.name!r} would be written to the same file "
                               f"{name!r}.", item=sample.name, fix="rename one of the images.")
        seen[key] = sample.name
        names.append(name)
    return names


def output_stems(dataset: Dataset, image_dirs: tuple[str, ...] = GENERIC_IMAGE_DIRS) -> list[str]:
    """A relative path without extension for each sample, safe to join below an output folder and unique.

    A leading image-folder name ("images/", "JPEGImages/") is dropped, sub-folders are kept.
    """
    stems: list[str] = []
    seen: dict[str, str] = {}
    for sample in dataset.samples:
        parts = list(PurePosixPath(safe_relative(sample.name, what="image file name")).parts)
        if len(parts) > 1 and parts[0] in image_dirs:
            parts = parts[1:]
        stem = str(PurePosixPath(*parts).with_suffix("")) or "image"
        if stem.lower() in seen:
            raise DatasetError(f"images {seen[stem.lower()]!r} and {sample.name!r} would share the name "
                               f"{stem!r}.", item=sample.name, fix="rename one of the images.")
        seen[stem.lower()] = sample.name
        stems.append(stem)
    return stems


def split_stems(dataset: Dataset, names: list[str]) -> list[str]:
    """`names` (output names or stems, one per sample) with each sample's split as the first folder
    (`train/a`), unless the name already starts with a folder of that split (`Train/a` from a CVAT subset):
    the layout that keeps splits for readers that take split folders (mask folders, LabelMe)."""
    out: list[str] = []
    seen: dict[str, str] = {}
    for sample, name in zip(dataset.samples, names, strict=True):
        parts = PurePosixPath(name).parts
        if sample.split and not (len(parts) > 1 and split_name(parts[0]) == sample.split):
            name = f"{sample.split}/{name}"
        if name.lower() in seen:
            raise DatasetError(f"images {seen[name.lower()]!r} and {sample.name!r} would share the name {name!r}.",
                               item=sample.name, fix="rename one of the images.")
        seen[name.lower()] = sample.name
        out.append(name)
    return out


def splits_of(dataset: Dataset) -> list[str]:
    """The splits the samples carry, in the order train, val, test (empty when none has one)."""
    found = {s.split for s in dataset.samples if s.split}
    return [s for s in ("train", "val", "test") if s in found]


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def check_class_names(dataset: Dataset, file: str, *, xml: bool = False, reserved: frozenset[str] = frozenset(),
                      forbidden: str = "", stripped: bool = False, comment: str = "") -> None:
    """Refuse, before anything is written, a class name the output `file` cannot hold so that it reads back
    as the same class: characters UTF-8 (or XML) cannot carry, one of `forbidden`, spaces at its ends where
    the tool's readers strip them (`stripped`), a leading `comment` character, or a `reserved` name (compared
    in lower case too) that the file gives another meaning (`__ignore__` marks void pixels)."""
    for name in dataset.class_names:
        problem = "has spaces at its ends, which readers of the file strip" if stripped and name != name.strip() \
            else ""
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            problem = problem or "holds a character UTF-8 cannot store (a lone surrogate)"
        if not problem and xml and _NOT_XML.search(name):
            problem = "holds a control character XML cannot store"
        if not problem and any(c in name for c in forbidden):
            problem = f"has a {' or '.join(repr(c) for c in forbidden)}"
        if not problem and comment and name.startswith(comment):
            problem = f"starts with {comment!r}, which starts a comment there"
        if not problem and (name in reserved or name.lower() in reserved):
            problem = "has another meaning there (void pixels, or the background), so it would not read back as a class"
        if problem:
            raise DatasetError(f"class {name!r:.80} {problem}; {file} cannot hold it.",
                               fix="rename the class, or convert to another format.")


def image_suffix(sample: Sample) -> str:
    for candidate in (sample.image_path, Path(sample.name)):
        if candidate is not None and candidate.suffix.lower() in IMAGE_SUFFIXES:
            return candidate.suffix
    return ".jpg"


def require_size(sample: Sample) -> None:
    if sample.width <= 0 or sample.height <= 0:
        raise DatasetError("the image size is unknown.", item=sample.name,
                           fix="load the data set with masksmith.data.load_dataset before writing it.")


def copy_image(sample: Sample, folder: OutputFolder, name: str) -> Path:
    """Copy the sample's image file (or its embedded bytes) to output `name`, atomically."""
    src = sample.image_path
    if src is not None and src.exists():
        return folder.copy(name, src)
    if sample.image_data is not None:
        return folder.write_bytes(name, sample.image_data)
    raise DatasetError("the sample has neither an image file nor embedded image data.", path=src or "",
                       item=sample.name, fix="restore the image before converting.")


def save_png(image: Image.Image, folder: OutputFolder, name: str) -> Path:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return folder.write_bytes(name, buf.getvalue())


def region_polygons(region, height: int, width: int, tolerance: float = 0.4) -> list:
    """The polygons of a region for a polygon-only format: its own, or its mask traced
    (masksmith.data.polygons: holes bridged in, parts under 4 pixels dropped)."""
    if region.rle is None:
        return list(region.polygons)
    from masksmith.data.polygons import mask_polygons
    from masksmith.data.rasterize import region_mask

    return mask_polygons(region_mask(region, height, width), tolerance=tolerance, min_area=4)


def coordinate(value: float) -> float | int:
    """A coordinate as written to JSON/XML: 2 decimals, integers without a fraction."""
    v = round(float(value), 2)
    return int(v) if v.is_integer() else v
