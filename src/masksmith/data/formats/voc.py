"""Pascal VOC segmentation folders (the VOC2012 layout, and CVAT's / Datumaro's "Segmentation mask" export).

    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png      class index per pixel: 0 background, i = class i, 255 void (borders)
    SegmentationObject/<id>.png     instance id per pixel (optional), 255 void
    ImageSets/Segmentation/*.txt    ids, one a line (train, val, trainval.txt; CVAT writes default.txt)
    labelmap.txt                    optional: `name:r,g,b:parts:actions` lines in mask-index order

The path may be that folder, a folder above it (VOCdevkit/, or an unzipped export's top folder), labelmap.txt,
one mask or image inside it (the whole data set is read), or one list in ImageSets/Segmentation (then only its
ids are read). The lists train.txt, val.txt, trainval.txt and test.txt set each sample's split.

Classes: option `class_names` (index 1 first), else labelmap.txt (a `background` line is index 0 wherever it
stands, as Datumaro reads it), else the 20 VOC classes. Masks may be palette PNGs (VOC2012), grey PNGs, or
RGB PNGs in the class colours (CVAT exports; the colours come from labelmap.txt or the VOC palette).
With SegmentationObject, each object id becomes one instance Region of the class most of its pixels have in
SegmentationClass (only those pixels; any class pixels no object covers become class regions); without it,
each class present becomes one class region (is_instance=False). Void pixels go to Sample.ignore_rle.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from masksmith.core.errors import DatasetError, MasksmithError
from masksmith.core.labels import IGNORE_INDEX, voc_color, voc_palette
from masksmith.core.paths import relative_parts, resolve_under
from masksmith.data.formats._common import IMAGE_SUFFIXES, Option, rel_name, split_name
from masksmith.data.formats._write import (
    check_class_names,
    copy_image,
    image_suffix,
    output_folder,
    output_stems,
    require_size,
    save_png,
)
from masksmith.data.formats.masks import (
    BACKGROUND_NAMES,
    VOID_COLOR,
    as_rgb,
    class_regions,
    colors_to_indices,
    grey_or_indices,
    open_mask,
    parse_color,
    parse_names,
)
from masksmith.data.rasterize import instance_masks, mask_to_rle, semantic_mask
from masksmith.data.schema import Dataset, ProblemLog, Region, Sample, make_classes

NAME = "voc"
DESCRIPTION = "Pascal VOC segmentation folders (SegmentationClass / SegmentationObject PNGs)"

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
CLASS_DIRS = ("SegmentationClass", "SegmentationClassAug")  # the second is the SBD-augmented VOC2012
OBJECT_DIR = "SegmentationObject"
IMAGE_DIR = "JPEGImages"
LISTS_DIR = Path("ImageSets") / "Segmentation"
LABELMAP = "labelmap.txt"
_LINES = re.compile(r"\r\n|\r|\n")
OPTIONS = (Option("class_names", "names of mask values 1, 2, ... (else labelmap.txt, else the 20 VOC classes)",
                  None),)


# ---------------------------------------------------------------- layout

def _class_dir(folder: Path) -> Path | None:
    for name in CLASS_DIRS:
        if (folder / name).is_dir():
            return folder / name
    return None


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def find_root(path: Path) -> tuple[Path, Path | None] | None:
    """(root, list file or None): the VOC folder for `path`, and the list to read when `path` is a list."""
    return _find_root(path)[0]


def _find_root(path: Path) -> tuple[tuple[Path, Path | None] | None, int]:
    """find_root, and how deep below `path` the VOC folder lies (1: the folder itself or a file in it)."""
    if path.is_file():
        return _root_of_file(path), 1
    if _class_dir(path) is not None:
        return (path, None), 1
    below = [d for d in _subdirs(path) if _class_dir(d) is not None]
    depth = 2
    if not below:  # two levels down: VOCdevkit/VOC2012
        below = [d for c in _subdirs(path) for d in _subdirs(c) if _class_dir(d) is not None]
        depth = 3
    if len(below) > 1:
        names = ", ".join(rel_name(d, path) for d in below)
        raise DatasetError(f"holds several VOC data sets ({names}).", path=path,
                           fix="point at the one you mean.")
    return ((below[0], None), depth) if below else (None, 0)


def _root_of_file(path: Path) -> tuple[Path, Path | None] | None:
    """A list or labelmap.txt, or one mask or image of the data set (SegmentationClass/x.png): its root."""
    if path.suffix.lower() != ".txt" and path.parent.name not in (*CLASS_DIRS, OBJECT_DIR, IMAGE_DIR):
        return None
    for up in (path.parent, path.parent.parent, path.parent.parent.parent):
        if _class_dir(up) is not None:
            in_lists = path.suffix == ".txt" and path.parent == up / LISTS_DIR
            return up, path if in_lists else None
    return None


def detect(path: Path) -> int | bool:
    found, depth = _find_root(path)
    return depth if found is not None else False


# ---------------------------------------------------------------- classes

def read_labelmap(path: Path) -> list[tuple[str, tuple[int, int, int] | None]]:
    """(name, colour or None) per line of a Datumaro/CVAT labelmap.txt, in file order."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot be read as UTF-8 text ({exc}).", path=path) from None
    entries: list[tuple[str, tuple[int, int, int] | None]] = []
    for lineno, line in enumerate(_LINES.split(text), start=1):  # not splitlines(): names may hold U+2028
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        name = fields[0].strip()
        if not name:
            raise DatasetError(f"line {lineno} has no label name.", path=path,
                               fix="write each label as name:r,g,b:: (for example car:128,0,0::).")
        color = None
        if len(fields) > 1 and fields[1].strip():
            color = parse_color(fields[1].split(","), f"the colour of {name!r} on line {lineno}", path)
        if any(n == name for n, _ in entries):
            raise DatasetError(f"names label {name!r} twice.", path=path, fix="keep one line per label.")
        entries.append((name, color))
    return entries


class Classes:
    """Class names in mask-index order (index i + 1 = names[i]) and the colours RGB masks use."""

    def __init__(self, names: list[str], colors: dict[str, tuple[int, int, int]],
                 background: tuple[int, int, int] = (0, 0, 0), source: str = "the 20 VOC classes") -> None:
        self.names = names
        self.colors = colors
        self.background = background
        self.source = source

    def palette(self) -> dict[int, tuple[int, int, int]]:
        pal = {0: self.background, IGNORE_INDEX: VOID_COLOR}
        for i, name in enumerate(self.names, start=1):
            pal[i] = self.colors.get(name, voc_color(i))
        return pal


def _classes(root: Path, options: dict[str, Any]) -> Classes:
    if options.get("class_names") is not None:
        return Classes(parse_names(options["class_names"], "class_names"), {}, source="option class_names")
    labelmap = root / LABELMAP
    if labelmap.is_file():
        entries = read_labelmap(labelmap)
        background = next((c for n, c in entries if n.lower() in BACKGROUND_NAMES and c), (0, 0, 0))
        named = [(n, c) for n, c in entries if n.lower() not in BACKGROUND_NAMES]
        colors = {n: c for n, c in named if c is not None}
        return Classes([n for n, _ in named], colors, background, str(labelmap))
    return Classes(list(VOC_CLASSES), {}, source="the 20 VOC classes")


# ---------------------------------------------------------------- reading

def _ids(root: Path, class_dir: Path, list_file: Path | None, log: ProblemLog) -> dict[str, str | None]:
    """The ids to read, each with its split (from the list it is in: train.txt, val.txt, ...)."""
    lists = [list_file] if list_file is not None else sorted((root / LISTS_DIR).glob("*.txt"))
    if not lists:
        return {p.relative_to(class_dir).with_suffix("").as_posix(): None
                for p in sorted(class_dir.rglob("*.png"))}
    ids: dict[str, str | None] = {}
    for file in lists:
        try:
            text = file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"cannot be read as UTF-8 text ({exc}).", path=file) from None
        for lineno, line in enumerate(text.splitlines(), start=1):
            token = _list_id(line, class_dir)
            if not token:
                continue
            try:
                relative_parts(token, what="image id")
            except MasksmithError:
                log.add(f"line {lineno} names {token!r}, which points outside the data set.", path=file,
                        item=token, fix="list image ids relative to JPEGImages/, without extension.")
                continue
            split = split_name(file.stem) if file.stem.lower() != "trainval" else None
            if ids.get(token) is None:  # train.txt / val.txt win over trainval.txt
                ids[token] = split
    if any(v is None for v in ids.values()) and {"train", "val"} & {*ids.values()} and \
            any(f.stem.lower() == "trainval" for f in lists):
        ids = {k: (v if v is not None else "train") for k, v in ids.items()}
    return dict(sorted(ids.items()))


def _list_id(line: str, class_dir: Path) -> str:
    """The id on one line of a list: the whole line (ids may hold spaces), without a trailing flag column
    (`2007_000032  1`, as ImageSets/Main lists write) unless a mask is named so."""
    token = line.strip()
    parts = token.rsplit(None, 1)
    if len(parts) == 2 and parts[1] in ("1", "-1", "0") and not (class_dir / f"{token}.png").is_file():
        return parts[0]
    return token


def _find_image(root: Path, image_id: str) -> Path:
    """JPEGImages/<id>.<suffix>, only ever under the root (an id is a name from a list file: masksmith.core.paths)."""
    for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
        candidate = resolve_under(root, f"{IMAGE_DIR}/{image_id}{suffix}", what="image id")
        if candidate.is_file():
            return candidate
    return root / IMAGE_DIR / f"{image_id}.jpg"  # reported as missing by the shared checks


def _class_labels(path: Path, classes: Classes) -> np.ndarray:
    """SegmentationClass mask as (H, W) uint8: 0 background, 1..N classes, 255 void."""
    im = open_mask(path)
    if im.mode in ("RGB", "RGBA"):
        fix = f"add the colour to {LABELMAP} as name:r,g,b:: (it now lists {classes.source})."
        labels = colors_to_indices(as_rgb(im, path), classes.palette(), path, fix)
    else:
        labels = grey_or_indices(im, path)
    n = len(classes.names)
    bad = (labels > n) & (labels != IGNORE_INDEX)
    if bad.any():
        raise DatasetError(f"has class index {int(labels[bad].max())}, but only {n} classes are declared "
                           f"({classes.source}).", path=path,
                           fix=f"add {LABELMAP} listing every class in mask-index order (background first), "
                               "or pass class_names.")
    return labels


def _object_ids(path: Path) -> np.ndarray:
    """SegmentationObject mask as (H, W) int: 0 none, 1.. object ids, 255 void. RGB masks (CVAT exports)
    have one colour per object; a colour of the VOC palette keeps its index as the id."""
    im = open_mask(path)
    if im.mode not in ("RGB", "RGBA"):
        return grey_or_indices(im, path).astype(np.int32)
    rgb = as_rgb(im, path)
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    uniq, inverse = np.unique(packed.ravel(), return_inverse=True)
    voc = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(voc_color(k) for k in range(256))}
    void = (VOID_COLOR[0] << 16) | (VOID_COLOR[1] << 8) | VOID_COLOR[2]
    ids = np.zeros(len(uniq), np.int32)
    spare = 256  # colours outside the palette get ids no palette colour has
    for k, colour in enumerate(uniq.tolist()):
        if colour == 0:
            continue
        if colour == void:
            ids[k] = IGNORE_INDEX
        elif colour in voc and voc[colour] != IGNORE_INDEX:
            ids[k] = voc[colour]
        else:
            ids[k], spare = spare, spare + 1
    return ids[inverse].reshape(packed.shape)


def _instance_regions(labels: np.ndarray, objects: np.ndarray, names: dict[int, str]) -> list[Region]:
    """One instance region per object (its majority class's pixels), then class regions for the rest."""
    regions: list[Region] = []
    covered = np.zeros(labels.shape, bool)
    is_class = (labels != 0) & (labels != IGNORE_INDEX)
    for obj in np.unique(objects):
        if obj in (0, IGNORE_INDEX):
            continue
        pixels = (objects == obj) & is_class
        if not pixels.any():
            continue
        majority = int(np.bincount(labels[pixels]).argmax())
        part = pixels & (labels == majority)
        covered |= part
        regions.append(Region(label=names[majority], rle=mask_to_rle(part), is_instance=True,
                              attributes={"object_id": int(obj)}))
    rest, _ = class_regions(np.where(covered, 0, labels).astype(np.uint8), names)
    return regions + rest


def _read_sample(root: Path, class_dir: Path, image_id: str, classes: Classes, split: str | None) -> Sample:
    mask = resolve_under(root, f"{class_dir.name}/{image_id}.png", what="image id")
    if not mask.is_file():
        raise DatasetError(f"has no class mask {rel_name(mask, root)}.", path=mask,
                           fix="add the mask, or remove the id from ImageSets/Segmentation.")
    labels = _class_labels(mask, classes)
    names = {i: n for i, n in enumerate(classes.names, start=1)}
    object_mask = root / OBJECT_DIR / f"{image_id}.png"
    if object_mask.is_file():
        objects = _object_ids(object_mask)
        if objects.shape != labels.shape:
            raise DatasetError(f"is {objects.shape[1]}x{objects.shape[0]} but its class mask is "
                               f"{labels.shape[1]}x{labels.shape[0]}.", path=object_mask,
                               fix="re-export the masks; both must have the image's size.")
        regions = _instance_regions(labels, objects, names)
        ignore = mask_to_rle(labels == IGNORE_INDEX) if (labels == IGNORE_INDEX).any() else None
    else:
        regions, ignore = class_regions(labels, names)
    image = _find_image(root, image_id)
    return Sample(name=rel_name(image, root), image_path=image, width=0, height=0, regions=regions,
                  ignore_rle=ignore, split=split)


def read(path: Path, log: ProblemLog, **options: Any) -> Dataset:
    found = find_root(Path(path))
    if found is None:
        raise DatasetError("is not a Pascal VOC segmentation folder (no SegmentationClass/).", path=path,
                           fix="point at the folder holding JPEGImages/ and SegmentationClass/.")
    root, list_file = found
    class_dir = _class_dir(root)
    assert class_dir is not None
    classes = _classes(root, options)
    samples = []
    for image_id, split in _ids(root, class_dir, list_file, log).items():
        try:
            samples.append(_read_sample(root, class_dir, image_id, classes, split))
        except MasksmithError as exc:  # DatasetError, or masksmith.core.paths' UnsafePath for an id leading out
            log.add(exc.problem, path=exc.path or root, item=image_id, fix=exc.fix or "")
        except OSError as exc:  # e.g. an id too long to be a file name
            log.add(f"its files cannot be looked up ({exc.strerror or exc}).", path=root, item=image_id,
                    fix="list image ids relative to JPEGImages/, without extension.")
    palette = classes.palette()  # the colours the masks are drawn in (the VOC palette unless a labelmap says)
    colors = {name: palette[i] for i, name in enumerate(classes.names, start=1)}
    return Dataset(classes=make_classes(classes.names, colors), samples=samples, root=root)


# ---------------------------------------------------------------- writing

def _palette(dataset: Dataset) -> list[int]:
    """The VOC palette with entries 1..N in the class colours, so viewers show the classes as labelled."""
    pal = voc_palette()
    for i, (r, g, b) in enumerate(dataset.class_map.palette()):
        pal[3 * i: 3 * i + 3] = [int(r), int(g), int(b)]
    return pal


def _object_mask(sample: Sample, index: dict[str, int]) -> np.ndarray:
    masks, _, _ = instance_masks(sample, index)
    if len(masks) > 254:
        raise DatasetError(f"has {len(masks)} objects; a VOC object mask holds at most 254.",
                           item=sample.name, fix="write the data set as COCO, which has no such limit.")
    out = np.zeros((sample.height, sample.width), np.uint8)
    for k, m in enumerate(masks, start=1):
        out[m] = k  # later objects cover earlier ones, as in the class mask
    return out


def check_writable(dataset: Dataset, **options: Any) -> None:
    """Refuse what this format cannot hold before a file is written (`convert` asks first)."""
    check_class_names(dataset, LABELMAP, forbidden=":\n\r", stripped=True, comment="#",
                      reserved=BACKGROUND_NAMES)


def write(dataset: Dataset, out: Path, **options: Any) -> None:
    """Write the VOC layout: labelmap.txt with the class colours (first, so a folder cut short still names its
    classes), JPEGImages/, SegmentationClass/ palette PNGs, SegmentationObject/ when the data set has
    instances, and the lists in ImageSets/Segmentation/: default.txt with every image (as CVAT writes it),
    and train.txt, val.txt, test.txt for the samples' splits (which the reader takes as splits)."""
    folder = output_folder(dataset, out)
    check_writable(dataset)
    lines = ["# label:color_rgb:parts:actions", "background:0,0,0::"]
    lines += [f"{c.name}:{c.color[0]},{c.color[1]},{c.color[2]}::" for c in dataset.classes]
    folder.write_text(LABELMAP, "\n".join(lines) + "\n")
    index = dataset.class_map.index()
    stems = output_stems(dataset, (IMAGE_DIR, "images", "image", "imgs", "img"))
    with_objects = any(r.is_instance for s in dataset.samples for r in s.regions)
    palette = _palette(dataset)
    lists: dict[str, list[str]] = {}
    for sample, stem in zip(dataset.samples, stems, strict=True):
        require_size(sample)
        copy_image(sample, folder, f"{IMAGE_DIR}/{stem}{image_suffix(sample)}")
        sem = semantic_mask(sample, index)
        save_png(_palette_image(sem, palette), folder, f"SegmentationClass/{stem}.png")
        if with_objects:
            objects = _object_mask(sample, index)
            objects[sem == IGNORE_INDEX] = IGNORE_INDEX
            save_png(_palette_image(objects, voc_palette()), folder, f"{OBJECT_DIR}/{stem}.png")
        if sample.split:
            lists.setdefault(sample.split, []).append(stem)
    for name, ids in {"default": stems, **lists}.items():
        folder.write_text(f"{LISTS_DIR.as_posix()}/{name}.txt", "".join(f"{s}\n" for s in ids))


def _palette_image(values: np.ndarray, palette: list[int]) -> Image.Image:
    image = Image.fromarray(values.astype(np.uint8), "P")
    image.putpalette(palette)
    return image
