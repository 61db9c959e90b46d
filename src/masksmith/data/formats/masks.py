"""Mask folders: an image folder beside a folder of mask images, paired by file name. Read and write.

Layouts recognised (the folder given, or one level below it, e.g. `train/` and `val/` each holding a pair):
- `images/` + `masks/` (also `image/ imgs/ img/ JPEGImages/ rgb/` + `mask/ labels/ label/ annotations/ gt/`),
- `<split>/` + `<split>_masks/` (`_mask`, `_labels`, `_gt`, `annot`, `_annot`), as Carvana (`train/` +
  `train_masks/xxx_mask.gif`) and CamVid (`train/` + `trainannot/`) ship them;
- a mask folder with no masks of its own and one sub-folder named like the images holds them there, as
  Oxford-IIIT Pet ships them (`images/` + `annotations/trimaps/`, beside `annotations/xmls/`);
- when no conventional name pairs two folders, folders of any names whose files pair (`_named_pairs`: the
  masks' names add to the images' names, or the mask folder's name says masks), as ISIC ships them
  (`ISIC2018_Task1-2_Training_Input/` + `ISIC2018_Task1_Training_GroundTruth/<id>_segmentation.png`).
The folder the user names is the data set: pointing at `DATA/train` (or at its mask folder `DATA/trainannot`,
or at `DATA/images/train`) reads that split alone, never its siblings. Split folders (`train/ val/ test/`,
`training/`, `images/train/`) set each sample's split.
Any sibling folder that could hold the masks of an image folder (a conventional name, files named like the
images, or as many image files) is a candidate; when there are several (DRIVE's `1st_manual/` vessel masks
beside its `mask/` field-of-view masks) nothing is picked: the reader stops, lists them, and takes option
`masks=NAME`. Pointing at a mask folder, or at a mask file, uses that one. The chosen folders are reported.
Images are found recursively; the mask of `images/a/b.jpg` is looked up in `masks/a/` by the first name
pattern that exists (option `mask_pattern`, a pattern or a list), by default in this order:
`{stem}.png, {stem}_mask.png, {stem}_mask.gif, {stem}.gif, {stem}_mask.jpg, {stem}_mask.jpeg, {stem}.jpg,
{stem}.jpeg, {stem}_label.png, {stem}_labels.png, {stem}_mask.tif, {stem}.tif, {stem}.tiff, {stem}.bmp`
(`{stem}` is the image name without extension, `{name}` the full image name, `{number}` the first run of
digits in the stem: DRIVE's `21_training.tif` has its vessels in `{number}_manual1.gif`).

Three kinds of mask (option `mask_kind`; otherwise guessed from the first masks):
- "binary": 0/255 or 0/1 (also 2-colour GIF palettes, and anti-aliased JPEG masks thresholded at 128): one
  class named by option `class_name`, else line 1 of classes.txt, else "foreground". Option `threshold=N`
  reads grey masks as binary with foreground at grey >= N (masks resized with smoothing).
- "index": grey values are class indices 0..N (0 background); option `ignore_value` (default 255, None for
  none) marks void pixels. Names from option `class_names` (a list, or {value: name}, which may name 0) or
  `classes.txt` (one name a line; a leading labelme `__ignore__` line is skipped), else "class_1", ... A list
  that starts with a background name names values 1.. after it; a plain list is read against the values of
  all masks (masksmith.data.formats._classlist: from 0 when it names every value present, from 1 when it
  names up to the highest, refused when it fits both ways), so the names are given at the end of the read.
  Index 0 named with a name that is not a background name (`sky`, `membrane`) is a class like the others.
  The values found and their pixel shares are reported, with a hint when one looks like void (the highest
  value, one used far less than the others, one lining the boundaries between others: _values.py).
  Grey masks with many levels (binary masks resized with smoothing), and black, white and two or more evenly
  spaced grey levels between them (soft masks: several annotators averaged, as CUB-200's 0, 51, ..., 255) are
  refused, naming option `threshold`.
- "color": RGB masks whose colours are classes, from option `color_map` {"name": (r, g, b) or "#rrggbb"} or a
  `classes.csv` file with `name,r,g,b` lines (an optional header line; a `_background_`/`background` row sets
  the background colour, black by default; a `__ignore__` row marks void pixels). Colours within distance 30
  of a class colour count as that class (JPEG noise), and in JPEG masks so do the blends within 3 px of an
  edge between classes; any other colour is a problem naming it and the file.

Each class present in a mask becomes one Region (is_instance=False) holding a COCO RLE of the mask's size;
the sample's size is left to the shared checks, so a mask whose size differs from its image is reported
there with both sizes.

This module also holds the mask-image and atomic-writing helpers that voc.py shares.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from masksmith.core.errors import DatasetError
from masksmith.core.labels import BACKGROUND, BACKGROUND_NAMES, IGNORE_INDEX, MAX_CLASSES, VOID_COLOR, voc_palette
from masksmith.data.formats._classlist import (
    IGNORE_NAMES,
    ClassList,
    classes_txt,
    classes_txt_line,
    option_class_list,
    read_classes_txt,
    resolve,
)
from masksmith.data.formats._common import Option, is_image_file, rel_name, split_name
from masksmith.data.formats._values import ValueTally, shape_masks
from masksmith.data.formats._write import (
    GENERIC_IMAGE_DIRS,
    copy_image,
    image_suffix,
    output_folder,
    output_stems,
    require_size,
    save_png,
    split_stems,
)
from masksmith.data.rasterize import mask_to_rle, semantic_mask
from masksmith.data.schema import Dataset, ProblemLog, Region, Sample, make_classes

NAME = "masks"
DESCRIPTION = "image folder + mask folder (binary, class-index or colour masks)"

KINDS = ("binary", "index", "color")
DEFAULT_PATTERNS = (
    "{stem}.png", "{stem}_mask.png", "{stem}_mask.gif", "{stem}.gif", "{stem}_mask.jpg", "{stem}_mask.jpeg",
    "{stem}.jpg", "{stem}.jpeg", "{stem}_label.png", "{stem}_labels.png", "{stem}_mask.tif", "{stem}.tif",
    "{stem}.tiff", "{stem}.bmp",
    "{stem}_segmentation.png", "{stem}_Segmentation.png",  # ISIC lesion challenges (2017-2018, 2016)
)
NAMED_PAIR_FOLDERS = 24  # folders paired by their files are looked for among at most this many sub-folders
# a folder of any name holds masks when its name says so (the generic pairing: `_named_pairs`)
MASK_FOLDER_WORDS = re.compile(r"mask|label|annot|ground[ _-]?truth|segmentation|(?<![a-z])gt(?![a-z])")
SPLIT_IMAGE_DIRS = ("train", "training", "val", "valid", "validation", "test", "testing")
GENERIC_MASK_DIRS = ("masks", "mask", "labels", "label", "annotations", "gt", "groundtruth", "ground_truth")
# sibling folders that hold pictures of the images but never their training masks
NOT_MASK_DIRS = frozenset({"overlay", "overlays", "preview", "previews", "vis", "visualization", "visualizations",
                           "thumbnails", "thumbs", "predictions", "prediction", "results", "output", "outputs",
                           "unlabelled",  # the labelling loop's photos without a mask (data/labelling.py)
                           "objects",  # the labelling loop's objects of an instance data set (labelling_objects)
                           # Pascal VOC's own folders: that layout is read by the voc format
                           "segmentationclass", "segmentationobject", "segmentationclassaug"})
BLUR_LEVELS = 32  # a grey mask with more distinct values than this is not binary and not class indices
OPTIONS = (
    Option("mask_kind", "binary, index or color (guessed from the first masks)", None),
    Option("masks", "the mask folder to pair with the images, when several could be", None),
    Option("mask_pattern", "how a mask is named from its image: {stem}, {name}, {number} (a pattern or a list)",
           None),
    Option("class_name", "binary masks: the name of the foreground class", "foreground"),
    Option("class_names", "index masks: a list (from value 0 or 1, as the values present say; a leading "
           "'background' fixes 1) or {value: name} (may name 0)", None),
    Option("ignore_value", "index masks: the value of void pixels (None for none)", IGNORE_INDEX),
    Option("threshold", "read grey masks as binary, foreground at grey >= this (blurred masks)", None),
    Option("color_map", "colour masks: {name: (r, g, b) or '#rrggbb'} (or classes.csv)", None),
)
SPLIT_MASK_SUFFIXES = ("_masks", "_mask", "_labels", "_gt", "annot", "_annot")
MASK_VALUE = "mask_value"  # a region's raw mask value while reading, until the class list names it
COLOR_TOLERANCE = 30.0  # JPEG noise on flat colours stays well inside this
LOSSY_SUFFIXES = (".jpg", ".jpeg")
LOSSY_EDGE = 3  # px either side of a class edge that JPEG's 4:2:0 chroma and ringing blend
DETECT_SAMPLE = 8  # masks looked at to guess the kind
MASK_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I", "I;16", "I;16L",
                        "I;16B", "I;16N"})


# ---------------------------------------------------------------- mask images (shared with voc.py)

def open_mask(path: Path) -> Image.Image:
    """The mask image, fully decoded; any decoding failure becomes a DatasetError naming the file."""
    try:
        im = Image.open(path)
        im.load()
    except FileNotFoundError:
        raise DatasetError("the mask file is missing.", path=path) from None
    except Exception as exc:  # noqa: BLE001 - PIL raises many types on broken files; all mean "unreadable"
        from masksmith.core.images import is_lfs_pointer

        if is_lfs_pointer(path):
            raise DatasetError("is a Git LFS pointer, not the mask itself.", path=path,
                               fix="fetch the real files with `git lfs pull` in the repository you cloned.") from None
        raise DatasetError(f"cannot be read as an image ({type(exc).__name__}: {exc}).", path=path,
                           fix="replace it with a valid PNG mask, or remove it and its image.") from None
    if im.mode not in MASK_MODES:
        raise DatasetError(f"has pixel format {im.mode}, which masks are not saved in.", path=path,
                           fix="save the mask as an 8-bit PNG (grey, palette or RGB).")
    return im


def converted(im: Image.Image, mode: str, path: Path) -> np.ndarray:
    """The image converted to `mode` as a uint8 array; PIL's refusals become a DatasetError."""
    try:
        return np.asarray(im.convert(mode), dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - PIL raises ValueError/OSError/... on odd images
        raise DatasetError(f"cannot be converted to {mode} ({exc}).", path=path,
                           fix="save the mask as an 8-bit PNG (grey, palette or RGB).") from None


def grey_or_indices(im: Image.Image, path: Path) -> np.ndarray:
    """(H, W) integer values of a palette or grey mask (palette indices as they are)."""
    if im.mode in ("P", "L"):
        return np.asarray(im, dtype=np.uint8)
    if im.mode == "1":
        return np.asarray(im, dtype=np.uint8)
    if im.mode == "LA":
        return np.asarray(im.getchannel("L"), dtype=np.uint8)
    if im.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        arr = np.asarray(im).astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DatasetError(f"holds values up to {arr.max()}; class masks hold 0..255.", path=path,
                               fix="save the mask as an 8-bit PNG.")
        return arr.astype(np.uint8)
    rgb = as_rgb(im, path)
    if is_grey(rgb, lossy=path.suffix.lower() in LOSSY_SUFFIXES):
        return rgb[..., 0].copy()
    raise DatasetError("is a colour image, not a class-index mask.", path=path,
                       fix="give the class colours (mask_kind='color' with color_map, or classes.csv).")


def as_rgb(im: Image.Image, path: Path) -> np.ndarray:
    """(H, W, 3) uint8, palette and alpha resolved."""
    return converted(im, "RGB", path)


def is_grey(rgb: np.ndarray, lossy: bool) -> bool:
    """True when R = G = B everywhere (nearly, for JPEG masks whose chroma carries compression noise)."""
    if rgb.size == 0:
        return True
    r = rgb[..., 0].astype(np.int16)
    spread = max(int(np.abs(r - rgb[..., 1]).max()), int(np.abs(r - rgb[..., 2]).max()))
    return spread <= (12 if lossy else 0)


def colors_to_indices(rgb: np.ndarray, palette: dict[int, tuple[int, int, int]], path: Path,
                      fix: str, tolerance: float = COLOR_TOLERANCE, lossy: bool = False) -> np.ndarray:
    """(H, W) uint8 index of each pixel's colour in `palette` {index: colour}: the nearest one within
    `tolerance`. In `lossy` (JPEG) masks, where edges blend two or three class colours, pixels within
    LOSSY_EDGE px of a change of class also take the nearest colour, however far.

    Any other colour is a DatasetError naming it, with its pixel count.
    """
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    uniq, inverse = np.unique(packed.ravel(), return_inverse=True)
    indices = np.array(list(palette), dtype=np.int64)
    colors = np.array([palette[i] for i in palette], dtype=np.float64).reshape(-1, 3)
    found = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=1).astype(np.float64)
    nearest = np.empty(len(uniq), np.int64)
    gap = np.empty(len(uniq), np.float64)
    for start in range(0, len(uniq), 4096):  # JPEG masks hold many colours: bounded memory
        dist = np.linalg.norm(found[start: start + 4096, None, :] - colors[None, :, :], axis=2)
        nearest[start: start + 4096] = dist.argmin(axis=1)
        gap[start: start + 4096] = dist.min(axis=1)
    labels = indices[nearest][inverse].reshape(packed.shape).astype(np.uint8)
    far = (gap > tolerance)[inverse].reshape(packed.shape)
    if far.any() and lossy:
        from scipy import ndimage

        size = 2 * LOSSY_EDGE + 1
        far &= ndimage.maximum_filter(labels, size) == ndimage.minimum_filter(labels, size)
    if far.any():
        bad, counts = np.unique(packed[far], return_counts=True)
        order = np.argsort(-counts, kind="stable")
        shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255}) #{c:06x} in {n} px"
                          for c, n in zip(bad[order][:5].tolist(), counts[order][:5].tolist(), strict=True))
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DatasetError(f"has colour{'s' if len(bad) > 1 else ''} {shown}{more} that match no class.",
                           path=path, fix=fix)
    return labels


def class_regions(labels: np.ndarray, names: dict[int, str]) -> tuple[list[Region], dict[str, Any] | None]:
    """One class region per value of `labels` present (0 is background), and the void RLE (value 255)."""
    regions = []
    present = np.bincount(labels.ravel(), minlength=256)
    for value in np.flatnonzero(present):
        if value in (0, IGNORE_INDEX):
            continue
        regions.append(Region(label=names[int(value)], rle=mask_to_rle(labels == value), is_instance=False))
    ignore = mask_to_rle(labels == IGNORE_INDEX) if present[IGNORE_INDEX] else None
    return regions, ignore


def parse_names(value: Any, what: str) -> list[str]:
    """Class names from an option: a list or a comma-separated string; a leading background name dropped."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise DatasetError(f"option {what} must be a list of class names, not {value!r:.60}.",
                           fix=f"pass {what}=['cat', 'dog', ...] (index 1 first).")
    names = list(value)
    if names and names[0].lower() in BACKGROUND_NAMES:
        names = names[1:]
    return names


# ---------------------------------------------------------------- layout

@dataclass
class Pair:
    images: Path
    masks: Path
    split: str | None = None  # the split all of its images belong to (train/ + trainannot/)
    only: str | None = None  # read only this sub-folder of the images (the user named DATA/images/train)


def _has_image(folder: Path) -> bool:
    """True when an image file lies in `folder` or below it (masks may sit in sub-folders)."""
    try:
        return any(p.is_file() and is_image_file(p) for p in folder.rglob("*"))
    except OSError:
        return False


def _top_images(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    except OSError:
        return []


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    except OSError:
        return []


def _image_dir_names() -> tuple[str, ...]:
    return GENERIC_IMAGE_DIRS + SPLIT_IMAGE_DIRS


def _other_pair_dir(name: str) -> bool:
    """Names that belong to another pair: image folders and split folders, and their mask folders."""
    lower = name.lower()
    if name in _image_dir_names() or lower in _image_dir_names():
        return True
    return any(lower == f"{split}{suffix}" for split in SPLIT_IMAGE_DIRS for suffix in SPLIT_MASK_SUFFIXES)


def _named_mask_dirs(name: str) -> list[str]:
    names = [f"{name}{suffix}" for suffix in SPLIT_MASK_SUFFIXES]
    if name in GENERIC_IMAGE_DIRS:
        names += list(GENERIC_MASK_DIRS)
    return names


def mask_candidates(images: Path) -> list[Path]:
    """Sibling folders that could hold the masks of `images`: a conventional name, or (for any other name)
    files named like the images by the default patterns, or as many image files as `images` has."""
    folder, name = images.parent, images.name
    named = _named_mask_dirs(name)
    out = [folder / n for n in named if (folder / n).is_dir() and _has_image(folder / n)]
    top = _top_images(images)
    for d in _subdirs(folder):
        if d == images or d in out or d.name.lower() in NOT_MASK_DIRS or _other_pair_dir(d.name):
            continue
        theirs = _top_images(d)
        if not theirs:
            continue
        if _pairs_by_name(top, {p.name for p in theirs}) or (top and len(theirs) == len(top)):
            out.append(d)
    return sorted(out)


def _number(stem: str) -> str:
    m = re.search(r"\d+", stem)
    return m.group(0) if m else stem


def _choose(images: Path, chosen: str | None) -> Path | None:
    """The mask folder of `images`: the one option `masks` names, else the only candidate; several candidates
    and no choice stop with the list."""
    if chosen is not None:
        target = images.parent / chosen
        return _masks_within(target, images) if target.is_dir() else None
    found = mask_candidates(images)
    if len(found) > 1:
        listed = ", ".join(f"{d.name}/ ({len(_top_images(d))} files)" for d in found)
        raise DatasetError(f"has several folders of masks that could pair with {images.name}/: {listed}. "
                           "masksmith does not pick one.", path=images.parent,
                           fix=f"name the one to use with `masks={found[0].name}` (or another of them), or "
                               "point at that mask folder.")
    return _masks_within(found[0], images) if found else None


def _masks_within(masks: Path, images: Path) -> Path:
    """`masks`, or the one sub-folder of it that holds the masks when it has none of its own: the images lie
    at the top of their folder, the mask folder's top has no image, and exactly one sub-folder has files named
    like the images (Oxford-IIIT Pet: `images/` + `annotations/trimaps/`, beside `annotations/xmls/`)."""
    top = _top_images(images)
    if not top or _top_images(masks):
        return masks
    paired = [d for d in _subdirs(masks) if d.name.lower() not in NOT_MASK_DIRS
              and _pairs_by_name(top, {p.name for p in _top_images(d)})]
    return paired[0] if len(paired) == 1 else masks


def _pairs_by_name(images: list[Path], listing: set[str]) -> bool:
    """True when a mask named by a default pattern lies in `listing` for one of the first images."""
    return any(pat.format(stem=i.stem, name=i.name, number=_number(i.stem)) in listing
               for i in images[:DETECT_SAMPLE] for pat in DEFAULT_PATTERNS)


def _pairs_in(folder: Path, chosen: str | None = None) -> list[Pair]:
    pairs = []
    for name in _image_dir_names():
        images = folder / name
        if images.is_dir():
            masks = _choose(images, chosen)
            if masks is not None and masks != images:
                pairs.append(Pair(images, masks, split_name(name)))
    return pairs or ([] if chosen is not None else _named_pairs(folder))


def _named_pairs(folder: Path) -> list[Pair]:
    """Folders of any names paired by their files, when no conventional name pairs them: B holds the masks of
    A when 3 in 4 of A's first images have a file in B by one default pattern, and that pattern adds to the
    image's name or B's name says masks and A's does not. ISIC ships `ISIC2018_Task1-2_Training_Input/
    ISIC_0000000.jpg` with `ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png`. An image folder
    with several such mask folders is left out (nothing is guessed); a split word in A's name sets the split."""
    subdirs = [d for d in _subdirs(folder) if d.name.lower() not in NOT_MASK_DIRS]
    if len(subdirs) > NAMED_PAIR_FOLDERS:  # a collection of folders (or a home folder), not pairs of them
        return []
    tops = {d: files for d in subdirs if (files := _first_images(d))}
    pairs = []
    for images, files in tops.items():
        found = [masks for masks in tops if masks != images and _holds_masks_of(images, files, masks)]
        if len(found) == 1:
            pairs.append(Pair(images, found[0], _split_in_name(images.name)))
    masks_of = {pair.masks for pair in pairs}
    return [pair for pair in pairs if pair.images not in masks_of]  # a mask folder is never also an image folder


def _first_images(folder: Path) -> list[Path]:
    """A few images of `folder`: those at its top, else those of its first sub-folders (CUB keeps its photos
    in one folder a species, its masks in the same folders under `segmentations/`)."""
    found = _top_images(folder)
    for sub in ([] if found else _subdirs(folder)):
        found += _top_images(sub)
        if len(found) >= DETECT_SAMPLE:
            break
    return found[:DETECT_SAMPLE]


def _holds_masks_of(images: Path, files: list[Path], masks: Path) -> bool:
    """The masks of 3 in 4 of `files` (images of `images`) lie at the same place under `masks`, named by one
    default pattern; and that pattern adds to the image's name or `masks`'s name says masks."""
    listings: dict[Path, set[str]] = {}
    for f in files:  # the names in the mask folder's counterpart of each image's folder, listed once
        where = masks / f.parent.relative_to(images)
        if where not in listings:
            listings[where] = {p.name for p in _top_images(where)}
    for pattern in DEFAULT_PATTERNS:
        hits = sum(pattern.format(stem=f.stem, name=f.name, number=_number(f.stem)) in
                   listings[masks / f.parent.relative_to(images)] for f in files)
        if 4 * hits >= 3 * len(files):  # a photo or two without a mask is reported
            says = bool(MASK_FOLDER_WORDS.search(masks.name.lower())) and \
                not MASK_FOLDER_WORDS.search(images.name.lower())
            return not pattern.startswith("{stem}.") or says
    return False


def _split_in_name(name: str) -> str | None:
    """The one split a folder's name says among its words (`ISIC2018_Task1-2_Validation_Input`: val)."""
    found = {split_name(word) for word in re.split(r"[^a-z0-9]+", name.lower())} - {None}
    return found.pop() if len(found) == 1 else None


@dataclass
class Layout:
    root: Path
    pairs: list[Pair]


def find_layout(path: Path, chosen: str | None = None) -> Layout | None:
    """The data set at `path`: a folder holding image/mask folder pairs (or whose sub-folders do), or one of
    those folders (its pair alone), a split sub-folder of one (`images/train`), or a file inside them."""
    path = Path(path)
    if path.is_file():
        return _enclosing(path.parent, chosen)
    if not path.is_dir():
        return None
    pairs = _pairs_in(path, chosen)
    if pairs:
        return Layout(path, pairs)
    nested = []
    for child in _subdirs(path):
        for pair in _pairs_in(child, chosen):
            pair.split = pair.split or split_name(child.name)
            nested.append(pair)
    if nested:
        return Layout(path, nested)
    return _enclosing(path, chosen)


def _enclosing(folder: Path, chosen: str | None, climbing: bool = False) -> Layout | None:
    """`folder` as the image or mask folder of a pair in its parent, or as a sub-folder of one (`climbing`: the
    parent of the folder given; folders paired by their files are looked for beside the folder given alone)."""
    parent = folder.parent
    if parent == folder:
        return None
    if folder.name in _image_dir_names():
        masks = _choose(folder, chosen)
        if masks is not None:
            return Layout(parent, [Pair(folder, masks, split_name(folder.name))])
    for name in _image_dir_names():  # `folder` is the mask folder of a pair: use it
        images = parent / name
        if images.is_dir() and images != folder and (folder.name in _named_mask_dirs(name) or
                                                     folder in mask_candidates(images)):
            return Layout(parent, [Pair(images, folder, split_name(name))])
    for pair in ([] if chosen is not None or climbing else _named_pairs(parent)):  # paired by their files
        if folder in (pair.images, pair.masks):
            return Layout(parent, [pair])
    if parent.parent != parent:  # DATA/images/train or DATA/masks/train: that split of the pair
        inner = _enclosing(parent, chosen, climbing=True)
        if inner is not None and len(inner.pairs) == 1:
            pair = inner.pairs[0]
            if (pair.images / folder.name).is_dir():
                return Layout(inner.root, [Pair(pair.images, pair.masks, split_name(folder.name) or pair.split,
                                                folder.name)])
    return None


DETECT_OPTIONS = ("masks",)  # what settles the layout: detection takes it as reading does


def _valid_choice(chosen: Any) -> bool:
    """Option masks names a sibling folder: a plain name, never a path."""
    return isinstance(chosen, str) and bool(chosen.strip()) and "/" not in chosen and "\\" not in chosen and \
        chosen not in (".", "..")


def detect(path: Path, masks: str | None = None) -> int | bool:
    layout = find_layout(path, masks if _valid_choice(masks) else None)
    if layout is None:
        return False
    nested = path.is_dir() and layout.root == path and all(p.images.parent != path for p in layout.pairs)
    return 2 if nested else True


def _patterns(option: Any) -> tuple[str, ...]:
    if option is None:
        return DEFAULT_PATTERNS
    patterns: tuple = (option,) if isinstance(option, str) else ()
    if isinstance(option, (list, tuple)):
        patterns = tuple(option)
    if not patterns or not all(isinstance(p, str) and any(k in p for k in ("{stem}", "{name}", "{number}"))
                               for p in patterns):
        raise DatasetError(f"option mask_pattern {option!r:.60} is not a pattern with {{stem}}, {{name}} or "
                           "{number}.", fix="for example mask_pattern='{stem}_mask.png'.")
    try:
        for p in patterns:
            p.format(stem="x", name="x.jpg", number="1")
    except (KeyError, IndexError, ValueError) as exc:
        raise DatasetError(f"option mask_pattern {option!r:.60} is not a valid pattern ({exc}).",
                           fix="use only the placeholders {stem}, {name} and {number}.") from None
    return patterns


def _match_masks(root: Path, pairs: list[Pair], patterns: tuple[str, ...], log: ProblemLog
                 ) -> list[tuple[Path, Path, str | None]]:
    """(image, mask, split) for every image that has a mask; images without one are logged."""
    matched: list[tuple[Path, Path, str | None]] = []
    listing: dict[Path, set[str]] = {}
    for pair in pairs:
        top = pair.images / pair.only if pair.only else pair.images
        for image in sorted(p for p in top.rglob("*") if p.is_file() and is_image_file(p)):
            rel = image.relative_to(pair.images)
            folder = pair.masks / rel.parent
            if folder not in listing:
                listing[folder] = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
            names = [p.format(stem=image.stem, name=image.name, number=_number(image.stem)) for p in patterns]
            found = next((n for n in names if n in listing[folder]), None)
            if found is None:
                log.add(f"has no mask in {rel_name(folder, root)}/ (looked for {', '.join(names[:4])}"
                        f"{', ...' if len(names) > 4 else ''}).", path=image, item=rel_name(image, root),
                        fix="add its mask, remove the image, or set mask_pattern to how the masks are named.")
                continue
            split = pair.split or (split_name(rel.parts[0]) if len(rel.parts) > 1 else None)
            matched.append((image, folder / found, split))
    return matched


# ---------------------------------------------------------------- class definitions

def _find_file(root: Path, pairs: list[Pair], name: str) -> Path | None:
    for folder in [root] + [p.masks for p in pairs]:
        if (folder / name).is_file():
            return folder / name
    return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot be read as UTF-8 text ({exc}).", path=path) from None


def parse_color(value: Any, what: str, path: Path | str = "") -> tuple[int, int, int]:
    """(r, g, b) from a tuple/list of three 0..255 integers or a '#rrggbb' string."""
    if isinstance(value, str):
        m = re.fullmatch(r"#?([0-9a-fA-F]{6})", value.strip())
        if m:
            h = m.group(1)
            return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
    elif isinstance(value, (list, tuple)) and len(value) == 3:
        rgb = [_channel(v) for v in value]
        if all(v is not None for v in rgb):
            return (rgb[0], rgb[1], rgb[2])  # type: ignore[return-value]
    raise DatasetError(f"{what} is {value!r:.40}, not a colour.", path=path or None,
                       fix="write it as r,g,b with three integers 0..255, or as #rrggbb.")


def _channel(value: Any) -> int | None:
    """A colour channel 0..255 from an int, an integral float or a decimal string; else None."""
    decimal = isinstance(value, str) and re.fullmatch(r"\s*[0-9]{1,3}\s*", value)
    if decimal or (isinstance(value, float) and value.is_integer()):
        value = int(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value <= 255:
        return int(value)
    return None


@dataclass
class ColorMap:
    names: list[str]
    colors: dict[str, tuple[int, int, int]]
    background: tuple[int, int, int] = (0, 0, 0)
    void: tuple[int, int, int] | None = None
    source: str = "option color_map"

    def palette(self) -> dict[int, tuple[int, int, int]]:
        pal = {0: self.background}
        pal.update({i + 1: self.colors[n] for i, n in enumerate(self.names)})
        if self.void is not None:
            pal[IGNORE_INDEX] = self.void
        return pal


def _color_map_from(entries: list[tuple[str, tuple[int, int, int], bool]], source: str) -> ColorMap:
    """entries: (name, colour, literal); a literal name (written quoted) is a class whatever it is called."""
    cmap = ColorMap([], {}, source=source)
    for name, color, literal in entries:
        if not literal and name.lower() in BACKGROUND_NAMES:
            cmap.background = color
        elif not literal and name in IGNORE_NAMES:
            cmap.void = color
        elif name in cmap.colors:
            raise DatasetError(f"names class {name!r} twice.", path=source, fix="give each class one line.")
        else:
            cmap.names.append(name)
            cmap.colors[name] = color
    return cmap


def _csv_cell_name(cell: str) -> tuple[str, bool]:
    """(name, literal): a cell holding a JSON string (how masksmith writes awkward names) is that name."""
    if cell.startswith('"') and cell.endswith('"') and len(cell) > 1:
        try:
            name = json.loads(cell)
        except ValueError:
            return cell, False
        if isinstance(name, str) and name:
            return name, True
    return cell, False


def read_classes_csv(path: Path) -> ColorMap:
    """A colour map from `name,r,g,b` lines (header line and # comments allowed)."""
    entries = []
    rows = csv.reader(io.StringIO(_read_text(path), newline=""))
    for lineno, row in enumerate(rows, start=1):
        row = [c.strip() for c in row]
        if not row or not any(row) or row[0].startswith("#"):
            continue
        if lineno == 1 and len(row) == 4 and not row[1].lstrip("-").isdigit():
            continue  # header
        if len(row) != 4 or not row[0]:
            raise DatasetError(f"line {lineno} is {','.join(row)!r:.60}, not name,r,g,b.", path=path,
                               fix="write one class a line as name,r,g,b (for example car,128,0,0).")
        name, literal = _csv_cell_name(row[0])
        entries.append((name, parse_color(row[1:], f"the colour on line {lineno}", path), literal))
    return _color_map_from(entries, str(path))


def color_map_option(value: Any) -> ColorMap:
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise DatasetError(f"option color_map must map class names to colours, not {value!r:.60}.",
                           fix="pass color_map={'car': (128, 0, 0), 'road': '#804080'}.")
    entries = [(k, parse_color(v, f"color_map[{k!r}]"), False) for k, v in value.items()]
    return _color_map_from(entries, "option color_map")


# ---------------------------------------------------------------- reading

@dataclass
class Config:
    kind: str
    ignore_value: int | None = IGNORE_INDEX
    classes: ClassList | None = None  # index kind: the class list given (None: class_<value>)
    class_name: str = "foreground"
    colors: ColorMap | None = None
    threshold: int | None = None  # binary: foreground at grey >= threshold
    tally: ValueTally = field(default_factory=ValueTally)  # index kind: the raw values of every mask


def _guess_one(path: Path) -> str | None:
    """The kind one mask looks like, or None when it cannot be read (it is reported later)."""
    try:
        im = open_mask(path)
    except DatasetError:
        return None
    lossy = path.suffix.lower() in LOSSY_SUFFIXES
    if im.mode == "P":
        used = np.flatnonzero(np.bincount(np.asarray(im, dtype=np.uint8).ravel(), minlength=256))
        pal = im.getpalette() or []
        colors = {tuple(pal[3 * i: 3 * i + 3]) for i in used if 3 * i + 3 <= len(pal)}
        return "binary" if colors <= {(0, 0, 0), (255, 255, 255)} or set(used) <= {0, 1} else "index"
    if im.mode in ("RGB", "RGBA", "CMYK", "YCbCr"):
        try:
            rgb = as_rgb(im, path)
        except DatasetError:
            return None
        if not is_grey(rgb, lossy):
            return "color"
        values = rgb[..., 0]
    else:
        try:
            values = grey_or_indices(im, path)
        except DatasetError:
            return None
    hist = np.bincount(values.ravel(), minlength=256)
    present = set(np.flatnonzero(hist).tolist())
    if present <= {0, 255} or present <= {0, 1} or lossy:
        return "binary"
    if len(present) > BLUR_LEVELS:  # too many levels to be classes: a smoothed binary mask, or no mask at all
        extremes = hist[:BLUR_LEVELS + 1].sum() + hist[255 - BLUR_LEVELS:].sum()
        return "blurred" if extremes >= 0.8 * hist.sum() else "grey"
    return "graded" if graded_levels(present) else "index"


def graded_levels(values: set[int]) -> bool:
    """Black, white and at least two grey levels evenly spaced between them (0, 51, 102, ..., 255): a soft
    binary mask (several annotators' masks averaged, as CUB-200's), not class indices. A single grey level
    (0/128/255) may well be three classes, and is left to be read as such."""
    levels = sorted(values)
    if len(levels) < 4 or levels[0] != 0 or levels[-1] != 255:
        return False
    steps = np.diff(levels)
    return int(steps.max() - steps.min()) <= 1


def guess_kind(masks: list[Path]) -> str:
    looked = [(m, _guess_one(m)) for m in masks[:DETECT_SAMPLE]]
    kinds = {k for _, k in looked if k}
    for odd in ("blurred", "graded", "grey"):
        if odd in kinds:
            mask = next(m for m, k in looked if k == odd)
            found = np.unique(np.asarray(open_mask(mask).convert("L")))
            levels = len(found)
            if odd == "graded":
                raise DatasetError(f"holds the grey levels {', '.join(map(str, found.tolist()))}, evenly spaced from "
                                   "black to white: a soft binary mask (several annotators' masks averaged), not "
                                   "class indices.", path=mask,
                                   fix="set `threshold=128` to read the masks as binary (foreground where grey "
                                       ">= 128), or `mask_kind=index` if each grey level is a class.")
            if odd == "blurred":
                raise DatasetError(f"holds {levels} grey levels, most pixels near black or white: a binary mask "
                                   "resized with smoothing, not class indices.", path=mask,
                                   fix="set `threshold=128` to read the masks as binary (foreground where grey "
                                       ">= 128), or `mask_kind=index` if the grey levels are classes.")
            raise DatasetError(f"holds {levels} grey levels: too many to be class indices or a binary mask.",
                               path=mask, fix="point at the folder of the masks, or set `mask_kind=index` if "
                                              "each grey level is a class, or `threshold=N` for binary masks.")
    for kind in ("color", "index"):
        if kind in kinds:
            return kind
    return "binary"


def _config(root: Path, pairs: list[Pair], masks: list[Path], options: dict[str, Any]) -> Config:
    kind = options.get("mask_kind")
    if kind is not None and kind not in KINDS:
        raise DatasetError(f"option mask_kind is {kind!r}.", fix=f"use one of: {', '.join(KINDS)}.")
    threshold = options.get("threshold")
    if threshold is not None:
        if type(threshold) is not int or not 1 <= threshold <= 255:
            raise DatasetError(f"option threshold is {threshold!r}.", fix="give a grey level 1..255, e.g. 128.")
        if kind not in (None, "binary"):
            raise DatasetError(f"option threshold reads binary masks; mask_kind is {kind!r}.",
                               fix="leave out one of the two options.")
        kind = "binary"
    colors = color_map_option(options["color_map"]) if options.get("color_map") is not None else None
    csv_file = _find_file(root, pairs, "classes.csv")
    if colors is None and csv_file is not None and kind in (None, "color"):
        colors = read_classes_csv(csv_file)
    classes: ClassList | None = None
    if options.get("class_names") is not None:
        classes = option_class_list(options["class_names"], "class_names")
    txt_file = _find_file(root, pairs, "classes.txt")
    if classes is None and txt_file is not None:
        classes = read_classes_txt(txt_file)
    if kind is None:
        if colors is not None:
            kind = "color"
        elif classes is not None and len(classes.names) > 1:
            kind = "index"  # the first masks may show only one class; the class list knows better
        else:
            kind = guess_kind(masks)
    ignore = options.get("ignore_value", IGNORE_INDEX)
    if ignore is not None and (type(ignore) is not int or not 0 <= ignore <= 255):
        raise DatasetError(f"option ignore_value is {ignore!r}.", fix="give a pixel value 0..255, or None.")
    cfg = Config(kind=kind, ignore_value=ignore, classes=classes, threshold=threshold)
    if kind == "binary":
        given = options.get("class_name")
        if given is not None and (not isinstance(given, str) or not given):
            raise DatasetError(f"option class_name is {given!r}.", fix="give the class a name.")
        cfg.class_name = given or (classes.first_name() if classes is not None else None) or "foreground"
    if kind == "color":
        cfg.classes = None
        if colors is None:
            raise DatasetError("holds colour masks but no class colours are given.", path=root,
                               fix="pass color_map={'name': (r, g, b), ...}, or add classes.csv with "
                                   "name,r,g,b lines beside the mask folder.")
        if not colors.names:
            raise DatasetError("names no classes besides the background.", path=colors.source,
                               fix="add a name,r,g,b line for every class.")
        cfg.colors = colors
    return cfg


def _labels(im: Image.Image, path: Path, cfg: Config) -> np.ndarray:
    """A binary or colour mask as (H, W) uint8: 0 background, 1..N classes, 255 void."""
    if cfg.kind == "binary":
        return _foreground(im, path, cfg).astype(np.uint8)
    assert cfg.colors is not None
    fix = f"add the colour to {cfg.colors.source} (name,r,g,b), or repaint those pixels."
    return colors_to_indices(as_rgb(im, path), cfg.colors.palette(), path, fix,
                             lossy=path.suffix.lower() in LOSSY_SUFFIXES)


def _foreground(im: Image.Image, path: Path, cfg: Config) -> np.ndarray:
    """Foreground of a binary mask: value 1 where the mask only holds 0/1 (also palette indices, as in
    Carvana's GIFs), else grey level >= 128 (0/255 masks, and anti-aliased JPEG masks)."""
    if cfg.threshold is not None:  # a blurred mask: foreground wherever it is bright enough
        values = np.asarray(im).astype(np.int64) if im.mode.startswith("I") else converted(im, "L", path)
        return values >= cfg.threshold
    if im.mode == "P":
        indices = np.asarray(im, dtype=np.uint8)
        if indices.size and indices.max() <= 1:
            return indices == 1
        grey = converted(im, "L", path)
    elif im.mode.startswith("I"):
        values = np.asarray(im).astype(np.int64)
        if values.size and values.max() > 255:  # 16-bit masks: half the range
            return values >= 32768
        grey = values
    elif im.mode in ("L", "1", "LA"):
        grey = grey_or_indices(im, path)
    else:
        grey = converted(im, "L", path)
    if grey.size and grey.max() <= 1:
        return grey == 1
    return grey >= 128


def _class_names(cfg: Config) -> dict[int, str]:
    """Mask label (after _labels) -> class name, for binary and colour masks."""
    if cfg.kind == "binary":
        return {1: cfg.class_name}
    assert cfg.colors is not None
    return {i + 1: n for i, n in enumerate(cfg.colors.names)}


def _read_sample(image: Path, mask: Path, root: Path, cfg: Config, split: str | None, measure: bool) -> Sample:
    im = open_mask(mask)
    name = rel_name(image, root)
    if cfg.kind == "index":
        return _index_sample(name, image, grey_or_indices(im, mask), mask, cfg, split, measure)
    regions, ignore = class_regions(_labels(im, mask, cfg), _class_names(cfg))
    return Sample(name=name, image_path=image, width=0, height=0, regions=regions, ignore_rle=ignore, split=split)


def _index_sample(name: str, image: Path, values: np.ndarray, mask: Path, cfg: Config, split: str | None,
                  measure: bool) -> Sample:
    """One region per raw value present, 0 included, named once every mask has been read (a plain class list
    is read against the values of all masks); void pixels as the sample's void mask."""
    hist = cfg.tally.add(values, mask, ignore=cfg.ignore_value, measure=measure)
    regions = [Region(label="", rle=mask_to_rle(values == v), is_instance=False, attributes={MASK_VALUE: v})
               for v in np.flatnonzero(hist).tolist() if v != cfg.ignore_value]
    void = cfg.ignore_value is not None and hist[cfg.ignore_value] > 0
    return Sample(name=name, image_path=image, width=0, height=0, regions=regions,
                  ignore_rle=mask_to_rle(values == cfg.ignore_value) if void else None, split=split)


def read(path: Path, log: ProblemLog, **options: Any) -> Dataset:
    chosen = options.get("masks")
    if chosen is not None and not _valid_choice(chosen):
        raise DatasetError(f"option masks is {chosen!r}.", fix="give the name of the mask folder, e.g. masks=mask.")
    layout = find_layout(Path(path), chosen)
    if layout is None:
        where = f" (looked for a folder named {chosen!r} beside the images)" if chosen else ""
        raise DatasetError(f"holds no image folder with a matching mask folder{where}.", path=path,
                           fix="put images in images/ and their masks in masks/, with the same names.")
    root, pairs = layout.root, layout.pairs
    matched = _match_masks(root, pairs, _patterns(options.get("mask_pattern")), log)
    cfg = _config(root, pairs, [m for _, m, _ in matched], options)
    measured = shape_masks(len(matched))
    samples: list[Sample] = []
    masks: list[Path] = []
    for k, (image, mask, split) in enumerate(matched):
        try:
            samples.append(_read_sample(image, mask, root, cfg, split, k in measured))
            masks.append(mask)
        except DatasetError as exc:
            log.add(exc.problem, path=exc.path or mask, item=rel_name(image, root), fix=exc.fix or "")
    mapping: dict[int, str] = {}
    if cfg.kind == "binary":
        names = [cfg.class_name]
    elif cfg.kind == "color":
        assert cfg.colors is not None
        names = cfg.colors.names
    else:  # every mask read: now the class list can say which value each name names
        mapping = _value_mapping(cfg, log)
        samples = _name_regions(samples, masks, mapping, cfg, log)
        names = [mapping[v] for v in sorted(mapping)]
    colors = cfg.colors.colors if cfg.colors is not None else None
    dataset = Dataset(classes=make_classes(names, colors), samples=samples, root=root)
    dataset.info["folders"] = [(_rel(p.images, root) + (f"/{p.only}" if p.only else ""), _rel(p.masks, root))
                               for p in pairs]
    if cfg.kind == "index":
        counts = cfg.tally.counts
        dataset.info["mask_values"] = {int(v): int(n) for v, n in enumerate(counts) if n}
        dataset.info["mask_names"] = _value_names(cfg, mapping)
        dataset.info["names_given"] = cfg.classes is not None
        dataset.info["mask_shapes"] = cfg.tally.info()
    return dataset


def _value_mapping(cfg: Config, log: ProblemLog) -> dict[int, str]:
    """{raw mask value: class name} for the values present (0 only when it is a class, not the background)."""
    present = cfg.tally.present(cfg.ignore_value)
    if cfg.classes is None:  # class_<v> for 1..the highest value: a class's index is its mask value
        return {v: f"class_{v}" for v in range(1, min(max(present, default=0), MAX_CLASSES) + 1)}
    mapping, note = resolve(cfg.classes, present)  # the message names the list: it is at fault, not a mask
    if note:
        log.note(note, skipped=False)
    top = max((v for v in mapping if v > 0), default=0)
    return {**{v: f"class_{v}" for v in range(1, top + 1)}, **mapping}  # values a {value: name} map skips


def _name_regions(samples: list[Sample], masks: list[Path], mapping: dict[int, str], cfg: Config,
                  log: ProblemLog) -> list[Sample]:
    """Give every region the class its raw value names; value 0 without a name is the background (its region
    goes). A sample holding a value without a name is refused (lenient: dropped)."""
    named = set(mapping) | {0}
    unnamed = sorted(v for v in cfg.tally.present(cfg.ignore_value) if v not in named)
    if unnamed and log.strict:
        top = unnamed[-1]
        raise DatasetError(_unnamed_message(top, cfg, mapping), path=cfg.tally.first_seen.get(top),
                           fix=_UNNAMED_FIX)
    kept = []
    for sample, mask in zip(samples, masks, strict=True):
        values = [r.attributes.get(MASK_VALUE) for r in sample.regions]
        bad = [v for v in values if v not in named]
        if bad:
            log.add(_unnamed_message(max(bad), cfg, mapping), path=mask, item=sample.name, fix=_UNNAMED_FIX)
            continue
        regions = []
        for region in sample.regions:
            value = region.attributes.pop(MASK_VALUE)
            if value in mapping:
                region.label = mapping[value]
                regions.append(region)
        sample.regions = regions
        kept.append(sample)
    return kept


_UNNAMED_FIX = ("add the missing class names (classes.txt or `class_names`), or set `ignore_value` if that value "
                "marks void pixels.")


def _unnamed_message(value: int, cfg: Config, mapping: dict[int, str]) -> str:
    if cfg.classes is None:
        return f"has class index {value}, more than the {MAX_CLASSES} classes a mask can hold."
    return f"has class index {value}, but {cfg.classes.source} names only {len(mapping)} classes."


def _rel(path: Path, root: Path) -> str:
    return rel_name(path, root) if path != root else "."


def _value_names(cfg: Config, mapping: dict[int, str]) -> dict[int, str]:
    """What each raw mask value means: 'void', a class name or the background."""
    out: dict[int, str] = {}
    for value in np.flatnonzero(cfg.tally.counts).tolist():
        if cfg.ignore_value is not None and value == cfg.ignore_value:
            out[value] = "void"
        elif value in mapping:
            out[value] = mapping[value]
        else:
            out[value] = BACKGROUND if value == 0 else "?"
    return out


# ---------------------------------------------------------------- writing

def check_writable(dataset: Dataset, **options: Any) -> None:
    """Refuse what the mask kind cannot hold before a file is written (`convert` asks first)."""
    kind = options.get("kind", "index")
    if kind not in KINDS:
        raise DatasetError(f"option kind is {kind!r}.", fix=f"use one of: {', '.join(KINDS)}.")
    has_void = any(s.ignore_rle is not None for s in dataset.samples)
    if kind == "binary":
        _check_binary(dataset, has_void)
    if kind == "color":
        _color_lut(dataset, has_void)


def write(dataset: Dataset, out: Path, **options: Any) -> None:
    """Write out/images/<name> and out/masks/<name>.png, plus classes.txt (index, binary) or classes.csv
    (color), written first so that a folder cut short still names its classes. Option kind: "index" (default;
    grey PNG 0..N, 255 void), "color" (RGB PNG in the class colours), or "binary" (0/255 PNG; one class, no
    void). Samples with a split go to images/<split>/ and masks/<split>/, which the reader takes as splits."""
    check_writable(dataset, **options)
    kind = options.get("kind", "index")
    folder = output_folder(dataset, out)
    index = dataset.class_map.index()
    stems = split_stems(dataset, output_stems(dataset))
    has_void = any(s.ignore_rle is not None for s in dataset.samples)
    lut = _color_lut(dataset, has_void) if kind == "color" else None
    if kind == "color":
        rows = ["name,r,g,b", f"{BACKGROUND},0,0,0"]
        rows += [f"{_csv_name(c.name)},{c.color[0]},{c.color[1]},{c.color[2]}" for c in dataset.classes]
        if has_void:
            rows.append("__ignore__,{},{},{}".format(*VOID_COLOR))
        folder.write_text("classes.csv", "\n".join(rows) + "\n")
    else:
        folder.write_text("classes.txt", classes_txt(dataset.class_names))
    for sample, stem in zip(dataset.samples, stems, strict=True):
        require_size(sample)
        copy_image(sample, folder, f"images/{stem}{image_suffix(sample)}")
        sem = semantic_mask(sample, index)
        if kind == "color":
            assert lut is not None
            image = Image.fromarray(lut[sem], "RGB")
        elif kind == "binary":
            image = Image.fromarray(np.where(sem > 0, 255, 0).astype(np.uint8), "L")
        else:
            image = Image.fromarray(sem, "L")
        save_png(image, folder, f"masks/{stem}.png")


def _csv_name(name: str) -> str:
    """A class name as a classes.csv cell that reads back as itself (awkward names as JSON strings)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([classes_txt_line(name)])
    return buf.getvalue()


def _check_binary(dataset: Dataset, has_void: bool) -> None:
    if len(dataset.classes) != 1:
        raise DatasetError(f"binary masks hold one class, but the data set has {len(dataset.classes)}.",
                           fix="write with kind='index' or kind='color'.")
    if has_void:
        raise DatasetError("binary masks cannot mark void (ignored) pixels, which this data set has.",
                           fix="write with kind='index', which keeps void as 255.")


def _color_lut(dataset: Dataset, has_void: bool) -> np.ndarray:
    """256x3 colour of each semantic index, checked to tell every class apart."""
    lut = np.zeros((256, 3), np.uint8)
    pal = np.asarray(voc_palette(), np.uint8).reshape(256, 3)
    lut[:] = pal
    seen: dict[tuple[int, int, int], str] = {(0, 0, 0): BACKGROUND}
    if has_void:
        seen[VOID_COLOR] = "void"
    for i, c in enumerate(dataset.classes, start=1):
        color = tuple(int(v) for v in c.color)
        if color in seen:
            raise DatasetError(f"classes {seen[color]!r} and {c.name!r} share the colour {color}, so colour "
                               "masks could not tell them apart.", fix="give each class its own colour, or "
                               "write with kind='index'.")
        seen[color] = c.name  # type: ignore[index]
        lut[i] = color
    lut[IGNORE_INDEX] = VOID_COLOR
    return lut
