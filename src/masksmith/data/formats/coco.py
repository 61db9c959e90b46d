"""COCO instances JSON: read and write (polygons, compressed and uncompressed RLE).

Reads what real tools write: `iscrowd` as 0/1 or true/false (COCO Annotator writes booleans), extra keys
anywhere, a `_background_` category that no annotation uses, images kept in a sub-folder such as JPEGImages/
or in the folder named after the file (`instances_val2017.json` beside `val2017/`), `image_id` written as a
string ("0") where `images[].id` is the number 0 (VIA's own COCO export does this).

Box-only annotations (a `bbox` and an empty `segmentation`, as detection data sets have) hold no mask: they are
counted in the report and their boxes are left out of training as void pixels, or with option
`boxes_as_masks=true` read as rectangle masks.

A COCO *results* file (a top-level list of annotations with scores, what detectors and pycocotools' loadRes
take) holds predictions, not a data set: it is read with option `images`, either the ground-truth COCO file it
was predicted on (images and classes from there) or a folder of images (image_id = the file's stem, classes
named by option `class_names` or `category <id>`), keeping predictions scoring at least `min_score`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from masksmith.core.errors import DatasetError, MasksmithError
from masksmith.core.images import MAX_PIXELS
from masksmith.core.outputs import OutputFolder
from masksmith.core.paths import safe_relative
from masksmith.data.formats._classlist import IGNORE_NAMES
from masksmith.data.formats._common import (
    ImageFinder,
    Option,
    as_float,
    is_image_file,
    load_json,
    points_array,
    rectangle,
    split_name,
    stem_folders,
)
from masksmith.data.formats._write import check_class_names, copy_image, output_folder, output_names, splits_of
from masksmith.data.rasterize import region_rle, rle_json
from masksmith.data.schema import ClassInfo, Dataset, ProblemLog, Region, Sample, make_classes

NAME = "coco"
DESCRIPTION = "COCO instances JSON"
_DEFAULT_NAMES = ("annotations.json", "_annotations.coco.json", "instances_default.json", "instances.json")
OPTIONS = (
    Option("keep_colors", "use the categories' 'color' (COCO Annotator) as class colours", True),
    Option("boxes_as_masks", "read box-only annotations (bbox, empty segmentation) as rectangle masks instead "
           "of leaving their boxes out as void", False),
    Option("images", "results files only: the ground-truth COCO file the predictions were made on, or a folder "
           "of images whose file stems are the image_ids", None),
    Option("min_score", "results files only: keep predictions scoring at least this", 0.5),
    Option("class_names", "results files read against an image folder: names of category ids 1, 2, ... (a list) "
           "or {id: name}", None),
)
VOID_NAME = "__ignore__"  # the category of void pixels masksmith writes (LabelMe's name for them)
VOID_ID = 255  # the void mask value: no class has it (classes are 1..254)
BOX_ONLY = ("{n} box-only annotation(s) (a bbox, no segmentation) hold no mask: their boxes are left out of "
            "training and scores as void")


def _looks_like_coco(path: Path) -> bool:
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    with path.open("rb") as f:
        head = f.read(1 << 16)
    # the image list may fill the first 64 KiB; its entries' key file_name is COCO's own
    return b'"images"' in head and (b'"file_name"' in head or b'"annotations"' in head)


def _looks_like_results(path: Path) -> bool:
    """A COCO results file: a JSON list of {image_id, category_id, ...} (with a score, from a detector)."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    with path.open("rb") as f:
        head = f.read(1 << 16)
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[") and b'"image_id"' in head and \
        b'"category_id"' in head


def _candidates(path: Path) -> list[Path]:
    candidates: list[Path] = []
    for folder in (path, path / "annotations"):
        if folder.is_dir():
            candidates += sorted(p for p in folder.glob("*.json") if _looks_like_coco(p))
    return candidates


def _split_of(file: Path) -> str | None:
    """'train', 'val', 'test' or 'default' for a per-split COCO file (`instances_train.json`, `val.json`)."""
    stem = stem_folders(file)[-1]
    return "default" if stem.lower() == "default" else split_name(stem)


def split_files(path: Path) -> list[Path]:
    """The per-split COCO files of a folder (`annotations/instances_train.json`, `instances_val.json`, ...,
    as CVAT and Datumaro export subsets), when every COCO file there is one of a different split; else []."""
    if path.is_file():
        return []
    candidates = _candidates(path)
    splits = [_split_of(c) for c in candidates]
    if len(candidates) < 2 or None in splits or len(set(splits)) != len(splits):
        return []
    return candidates


def choose_annotation_file(path: Path) -> tuple[Path, str]:
    """(the COCO JSON for `path`, why it was chosen among others or ""): the file itself, or the one COCO file
    in the folder (or its annotations/), or the one with the name exporters give it."""
    if path.is_file():
        return path, ""
    candidates = _candidates(path)
    if len(candidates) == 1:
        return candidates[0], ""
    names = ", ".join(c.relative_to(path).as_posix() for c in candidates)
    for name in _DEFAULT_NAMES:
        for c in candidates:
            if c.name == name:
                return c, (f"the folder holds several COCO files ({names}); read {c.relative_to(path).as_posix()}, "
                           "the name COCO exports give it")
    if not candidates:
        raise DatasetError("no COCO annotation file found.", path=path)
    raise DatasetError(f"holds several COCO files ({names}).", path=path,
                       fix="point at the one you mean.")


def annotation_file(path: Path) -> Path:
    """The COCO JSON for `path` (see choose_annotation_file)."""
    return choose_annotation_file(path)[0]


def detect(path: Path) -> bool:
    if path.is_file():
        return _looks_like_coco(path) or _looks_like_results(path)
    try:
        annotation_file(path)
    except DatasetError:
        return False
    return True


def _parse_segmentation(seg: Any, height: int, width: int, *, path: Path, item: str) -> Region | None:
    """Polygons or RLE of one annotation; the label is filled in by the caller."""
    if isinstance(seg, list):
        if not seg:
            return None  # a box-only annotation has no mask; nothing to draw
        if all(isinstance(v, (int, float)) for v in seg):
            seg = [seg]  # a single flat polygon, as some exporters write it
        polygons = [points_array(p, path=path, item=item) for p in seg]
        return Region(label="", polygons=polygons)
    if isinstance(seg, dict):
        counts, size = seg.get("counts"), seg.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                    for v in size)):
            raise DatasetError("RLE 'size' must be [height, width].", path=path, item=item)
        _check_rle_size(size, height, width, path=path, item=item)
        if isinstance(counts, list):
            if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 2**32 for c in counts) \
                    or sum(counts) != size[0] * size[1]:
                raise DatasetError("uncompressed RLE counts do not add up to height x width.", path=path,
                                   item=item, fix="re-export the annotation.")
            rle = mask_utils.frPyObjects({"counts": counts, "size": size}, *size)
        elif isinstance(counts, str):
            if compressed_rle_total(counts) != size[0] * size[1]:
                raise DatasetError("compressed RLE counts cannot be decoded (they do not add up to height x "
                                   "width).", path=path, item=item, fix="re-export the annotation.")
            rle = {"counts": counts.encode("ascii"), "size": size}
        else:
            raise DatasetError("RLE 'counts' must be a string or a list of integers.", path=path, item=item)
        return Region(label="", rle=rle)
    raise DatasetError(f"segmentation is a {type(seg).__name__}, not polygons or RLE.", path=path, item=item)


def _check_rle_size(size: list[int], height: int, width: int, *, path: Path, item: str) -> None:
    """An RLE's [height, width] must be its image's (when the file states it) and never more pixels than
    masksmith reads, checked before anything is decoded: pycocotools allocates height x width bytes at once,
    and a crafted 200000x200000 crashes the process."""
    h, w = size
    if h <= 0 or w <= 0:
        raise DatasetError(f"RLE size {size} is empty.", path=path, item=item, fix="re-export the annotation.")
    if height > 0 and width > 0 and (h, w) != (height, width):
        raise DatasetError(f"RLE size is {w}x{h} but its image is {width}x{height}.", path=path, item=item,
                           fix="re-export the annotation; an RLE covers exactly its image.")
    if h * w > MAX_PIXELS:
        raise DatasetError(f"RLE size {w}x{h} is more than the {MAX_PIXELS // 1_000_000} megapixels masksmith "
                           "reads.", path=path, item=item, fix="re-export the annotation at the image's size.")


def compressed_rle_total(counts: str) -> int | None:
    """The pixels a compressed RLE string covers (the sum of its runs, as pycocotools' rleFrString reads
    them), or None when the string is malformed (not ASCII, cut off inside a number, a negative run). Numpy
    over the string's characters: nothing the size of the mask is allocated."""
    try:
        data = counts.encode("ascii")
    except UnicodeEncodeError:
        return None
    if not data:
        return 0
    c = np.frombuffer(data, np.uint8).astype(np.int64) - 48
    if c.min() < 0 or c.max() > 63:
        return None
    more = (c & 0x20) != 0
    if more[-1]:
        return None  # cut off inside a number
    ends = ~more
    starts = np.flatnonzero(np.concatenate(([True], ends[:-1])))
    group = np.cumsum(np.concatenate(([0], ends[:-1].astype(np.int64))))
    k = np.arange(len(c)) - starts[group]
    if k.max() > 11:  # more than 60 bits: not a run length
        return None
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    last = np.flatnonzero(ends)
    negative = (c[last] & 0x10) != 0
    x[negative] -= np.left_shift(1, 5 * (k[last][negative] + 1))
    runs = x.copy()  # from the fourth run on, each is stored as the difference to the run two before it
    runs[2::2] = np.cumsum(x[2::2])
    runs[1::2] = np.cumsum(x[1::2])
    if len(runs) and (runs.min() < 0 or runs.max() > MAX_PIXELS):
        return None
    return int(runs.sum())


def _as_list(data: dict, key: str, path: Path) -> list:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise DatasetError(f"'{key}' must be a list of objects.", path=path,
                           fix="check that this is a COCO instances file.")
    return value


def _hex_color(value: Any) -> tuple[int, int, int] | None:
    if isinstance(value, str) and len(value) == 7 and value.startswith("#"):
        try:
            return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))
        except ValueError:
            return None
    return None


def _id_key(value: Any) -> Any:
    """An image id as one key whether the file writes it as 7 or "7" (VIA's COCO export writes image_id as a
    string); None for what cannot be an id (true, a list ...)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return int(value)  # 7.0, as some exporters write numbers
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.isdigit() and len(text) < 19 else value
    return None


def _root_of(file: Path) -> Path:
    return file.parent.parent if file.parent.name == "annotations" else file.parent


def read(path: Path, log: ProblemLog, **options: Any) -> Dataset:
    per_split = split_files(path)
    if per_split:
        return _read_splits(per_split, log, options)
    file, why = choose_annotation_file(path)
    if why:
        log.note(why, fix="Point at another to read it.", skipped=False)
    data = load_json(file)
    if isinstance(data, list):
        return _read_results(file, data, log, options)
    if options.get("images") is not None:
        raise DatasetError("option images is for COCO results files (a list of predictions); this file is a "
                           "data set with its own images.", path=file, fix="leave out `images=...`")
    return _read_document(data, file, _root_of(file), log, options)


def _read_splits(files: list[Path], log: ProblemLog, options: dict[str, Any]) -> Dataset:
    """One data set from per-split COCO files: each image's split is its file's (its name `<split>/<name>`
    when a name is in two files: two images, never one); the classes are those of all files, in order."""
    root = _root_of(files[0])
    parts: list[tuple[str, list[Sample]]] = []
    classes: list[ClassInfo] = []
    for file in files:
        data = load_json(file)
        if isinstance(data, list):
            raise DatasetError("is a COCO results file beside per-split annotation files.", path=file,
                               fix="move it out of the folder, or point at one annotation file.")
        part = _read_document(data, file, root, log, options)
        parts.append((_split_of(file) or "default", part.samples))
        classes += [c for c in part.classes if c.name not in {k.name for k in classes}]
    names = [s.name.lower() for _, samples in parts for s in samples]
    apart = len(set(names)) < len(names)  # one name in two splits: `<split>/<name>`, two images
    samples: list[Sample] = []
    for split, members in parts:
        for sample in members:
            sample.split = None if split == "default" else split
            if apart:
                sample.name = f"{split}/{sample.name}"
        samples += members
    log.note(f"read {len(files)} COCO files, one per split: "
             f"{', '.join(f.relative_to(root).as_posix() for f in files)}", skipped=False)
    return Dataset(classes=classes, samples=samples, root=root)


def _read_document(data: Any, file: Path, root: Path, log: ProblemLog, options: dict[str, Any]) -> Dataset:
    if not isinstance(data, dict):
        raise DatasetError("is not a COCO file: the top level must be an object.", path=file)
    images, annotations, categories = (_as_list(data, k, file) for k in ("images", "annotations", "categories"))

    cat_names, colors, void_ids = _categories(categories, annotations, file, log)
    classes = make_classes(list(cat_names.values()), colors if options.get("keep_colors", True) else None)

    samples: dict[Any, Sample] = {}
    stems = stem_folders(file)  # images of instances_train.json in train/ or images/train/ (a subset export)
    finder = ImageFinder(root, (*stems, *(f"images/{f}" for f in stems)))
    for img in images:
        item = f"image {img.get('id')!r}"
        file_name = img.get("file_name")
        if not isinstance(file_name, str) or _id_key(img.get("id")) is None:
            log.add("has no id or file_name.", path=file, item=item, fix="re-export the annotations.")
            continue
        try:
            width = int(as_float(img.get("width", 0), path=file, item=item, what="width"))
            height = int(as_float(img.get("height", 0), path=file, item=item, what="height"))
        except DatasetError as exc:
            log.add(exc.problem, path=file, item=item)
            continue
        extra = img.get("path") if isinstance(img.get("path"), str) else ""
        key = _id_key(img["id"])
        if key in samples:
            raise DatasetError(f"image id {img['id']!r} is given to two images, {samples[key].name!r} and "
                               f"{file_name!r}; their annotations cannot be told apart.", path=file,
                               fix="give each image its own id and re-export the annotations.")
        image_path = finder.find(file_name, extra) or finder.fallback(file_name)
        samples[key] = Sample(name=_sample_name(file_name), image_path=image_path, width=width,
                                             height=height)
    finder.report(log)

    boxes = bool(options.get("boxes_as_masks", False))
    for k, ann in enumerate(annotations):
        image_id = ann.get("image_id")
        item = f"annotation {ann.get('id', k)!r}"
        sample = samples.get(_id_key(image_id))
        if sample is None:
            log.add(f"refers to image_id {image_id!r}, which the file does not list.", path=file, item=item,
                    fix="remove the annotation or add its image.", dropped="region")
            continue
        category = ann.get("category_id")
        is_id = isinstance(category, (int, str)) and not isinstance(category, bool)
        declared = is_id and category in cat_names
        if is_id and category in void_ids:
            _read_void(ann, sample, file, item, log)
            continue
        seg = ann.get("segmentation")
        if isinstance(seg, list) and seg and all(isinstance(part, list) and not part for part in seg):
            seg = []  # [[]]: VIA's COCO export of a point, or a box-only annotation
        try:
            region = _parse_segmentation([] if seg is None or seg == {} else seg, sample.height, sample.width,
                                         path=file, item=item)
            if region is None:
                region = _box_region(ann, boxes, path=file, item=item)
                if region is not None and not boxes:  # its pixels are not known: void, not background
                    sample.void_regions.append(region)
                    sample.skipped += 1
                    log.note(BOX_ONLY, f"{sample.name} ({item})",
                             fix="`boxes_as_masks=true` reads each box as a rectangle mask.")
                    continue
        except DatasetError as exc:
            log.add(exc.problem, path=file, item=item, fix=exc.fix or "", dropped="region")
            continue
        if not declared:
            log.add(f"category_id {ann.get('category_id')!r} is not declared in 'categories'.", path=file,
                    item=item, fix="add the category or remove the annotation.", dropped="region")
            if region is not None:
                sample.void_regions.append(region)  # an object of an unknown class: neither learned nor background
            continue
        if region is None:
            sample.skipped += 1
            log.note("{n} annotation(s) have neither a segmentation nor a bbox: nothing to draw",
                     f"{sample.name} ({item})")
            continue
        region.label = cat_names[ann["category_id"]]
        region.iscrowd = bool(ann.get("iscrowd", False))
        if "score" in ann:
            region.attributes["score"] = ann["score"]
        sample.regions.append(region)
    return Dataset(classes=classes, samples=list(samples.values()), root=root)


def _categories(categories: list[dict[str, Any]], annotations: list[dict[str, Any]], file: Path,
                log: ProblemLog) -> tuple[dict[Any, str], dict[str, tuple[int, int, int]], set[Any]]:
    """({category id: class name}, {name: colour}, ids of void categories). Identical repeated entries (VIA's
    COCO export) are merged with a note, conflicting ones refused; a category named `__ignore__` marks void
    pixels (what masksmith writes); an unused category that is the supercategory of the others (Roboflow's
    project category 0) is not a class."""
    cat_names: dict[Any, str] = {}
    colors: dict[str, tuple[int, int, int]] = {}
    void_ids: set[Any] = set()
    supers = {c.get("supercategory") for c in categories if isinstance(c.get("supercategory"), str)}
    used = {a.get("category_id") for a in annotations if isinstance(a.get("category_id"), (int, str))}
    for cat in categories:
        name = cat.get("name")
        if not isinstance(name, str) or "id" not in cat or isinstance(cat["id"], (dict, list)):
            raise DatasetError(f"category {cat!r:.80} has no id or name.", path=file)
        cid = cat["id"]
        if cid in cat_names or cid in void_ids:
            known = cat_names.get(cid, VOID_NAME)
            if known != name:
                raise DatasetError(f"category id {cid!r} is declared twice, as {known!r} and as {name!r}; which "
                                   "class its annotations belong to is unknown.", path=file,
                                   fix="give each category its own id (and check the annotations' category_id).")
            log.note("{n} repeated category entr(ies) with the same id and name merged into one class",
                     f"id {cid!r} {name!r}", skipped=False)
            continue
        if name in IGNORE_NAMES:
            void_ids.add(cid)
            continue
        if cid not in used and name in supers and cat.get("supercategory") != name and \
                any(c.get("supercategory") == name and c.get("name") != name for c in categories):
            log.note("{n} category(ies) that no annotation uses and that are the supercategory of the others (a "
                     "project's own category, as Roboflow exports it) are not classes", f"id {cid!r} {name!r}")
            continue
        cat_names[cid] = name
        color = _hex_color(cat.get("color"))
        if color:
            colors[name] = color
    return cat_names, colors, void_ids


def _read_void(ann: dict[str, Any], sample: Sample, file: Path, item: str, log: ProblemLog) -> None:
    """An annotation of the `__ignore__` category: its pixels are void (neither learned nor scored)."""
    seg = ann.get("segmentation")
    try:
        region = _parse_segmentation([] if seg is None or seg == {} else seg, sample.height, sample.width,
                                     path=file, item=item)
    except DatasetError as exc:
        log.add(exc.problem, path=file, item=item, fix=exc.fix or "", dropped="region")
        return
    if region is not None:
        sample.void_regions.append(region)
        log.note(f"{{n}} annotation(s) of the category {VOID_NAME!r} read as void (left out of training and "
                 "scores)", sample.name, skipped=False)


def _sample_name(file_name: str) -> str:
    """The image's name as the file gives it, made a safe relative path (a name from another machine's disk,
    `/home/u/x.jpg` or `C:\\x.jpg`, keeps its base name)."""
    try:
        return safe_relative(file_name.replace("\\", "/"), what="image file name")
    except MasksmithError:
        return file_name


def _box_region(ann: dict[str, Any], as_mask: bool, *, path: Path, item: str) -> Region | None:
    """The rectangle of a box-only annotation, or None when it has no usable bbox either."""
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        return None
    x, y, w, h = (as_float(v, path=path, item=item, what="a bbox value") for v in bbox)
    if w <= 0 or h <= 0 or max(abs(x), abs(y), w, h) > 1e7:
        raise DatasetError(f"the bbox {bbox} covers nothing.", path=path, item=item,
                           fix="delete the annotation or redraw it.")
    return Region(label="", polygons=[rectangle(x, y, w, h)], attributes={"from_box": True} if as_mask else {})


# ---------------------------------------------------------------- results files

def _read_results(file: Path, results: list[Any], log: ProblemLog, options: dict[str, Any]) -> Dataset:
    """Predictions (a COCO results list) as annotations of the images option `images` names."""
    source = options.get("images")
    count = len(results)
    ids = {_id_key(r.get("image_id")) for r in results if isinstance(r, dict)}
    if source is None:
        raise DatasetError(f"is a COCO results file: {count} prediction(s) for {len(ids)} image(s), without the "
                           "images or the class names, so it is not a data set by itself.", path=file,
                           fix="set `images=GT.json` (the COCO file the predictions were made on) for images "
                               "and classes, or `images=FOLDER` to read them as pre-annotations of the images "
                               "in FOLDER (image_id = file stem).")
    min_score = options.get("min_score", 0.5)
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)):
        raise DatasetError(f"option min_score is {min_score!r}.", fix="give a number, e.g. min_score=0.5.")
    if not all(isinstance(r, dict) for r in results):
        raise DatasetError("is a list, but not of COCO result objects ({image_id, category_id, ...}).", path=file,
                           fix="pass a COCO instances file, or a results file as detectors write it.")
    kept = [r for r in results if _score(r) >= min_score]
    log.note(f"kept {{n}} of {count} prediction(s) scoring at least {min_score:g}", count=len(kept),
             fix="(`min_score=...` sets the threshold.)", skipped=False)
    source = Path(str(source))
    if source.is_dir():
        doc, root = _folder_document(source, kept, ids, options, file), source
    elif source.is_file():
        truth = load_json(source)
        if not isinstance(truth, dict):
            raise DatasetError("is not a COCO file: the top level must be an object.", path=source,
                               fix="pass the ground-truth COCO file the predictions were made on.")
        doc = {"images": truth.get("images", []), "categories": truth.get("categories", []), "annotations": kept}
        root = _root_of(source)
        file = source
    else:
        raise DatasetError("does not exist.", path=source, fix="pass the ground-truth COCO file or an image folder.")
    dataset = _read_document(doc, file, root, log, options)
    return dataset


def _score(result: dict[str, Any]) -> float:
    value = result.get("score", 1.0)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 1.0


def _folder_document(folder: Path, results: list[dict[str, Any]], ids: set[Any], options: dict[str, Any],
                     file: Path) -> dict[str, Any]:
    """images/categories for predictions made on the images of `folder`: image_id is a file's stem."""
    by_stem: dict[Any, Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and is_image_file(p):
            by_stem.setdefault(_id_key(p.stem), p)
    images = [{"id": key, "file_name": by_stem[key].relative_to(folder).as_posix(), "width": 0, "height": 0}
              for key in sorted(ids & set(by_stem), key=str)]
    if not images:
        raise DatasetError(f"holds no image whose file stem is one of the {len(ids)} image_id(s) of the results.",
                           path=folder, fix="pass the folder of the images the predictions were made on, or the "
                                            "ground-truth COCO file (`images=GT.json`).")
    used = sorted({r.get("category_id") for r in results if isinstance(r.get("category_id"), int)})
    names = _category_names(options.get("class_names"), used)
    return {"images": images, "categories": [{"id": c, "name": names[c]} for c in used], "annotations": results}


def _category_names(option: Any, used: list[int]) -> dict[int, str]:
    names = {c: f"category {c}" for c in used}
    if isinstance(option, str):
        option = [n.strip() for n in option.split(",")]
    if isinstance(option, list):
        names.update({i + 1: str(n) for i, n in enumerate(option) if i + 1 in names and str(n).strip()})
    elif isinstance(option, dict):
        for k, v in option.items():
            key = _id_key(k)
            if key in names and isinstance(v, str) and v.strip():
                names[key] = v.strip()
    elif option is not None:
        raise DatasetError(f"option class_names is {option!r:.60}.",
                           fix="give a list of names (category 1 first) or {id: name}.")
    return names


def check_writable(dataset: Dataset, **options: Any) -> None:
    """Refuse what this format cannot hold before a file is written (`convert` asks first)."""
    check_class_names(dataset, "annotations.json", reserved=IGNORE_NAMES)


def write(dataset: Dataset, out: Path | OutputFolder, **options: Any) -> None:
    """Write out/annotations.json and copy the images to out/images/ (sample names keep their sub-folders;
    names that would leave the folder are flattened by masksmith.core.paths, and the JSON says the same name).

    Void pixels (left out of training and scores) are one annotation per image of the category `__ignore__`
    (id 255, no class can have it) with `iscrowd` 1, the way COCO marks regions that evaluation ignores; the
    reader reads them back as void. A data set with splits is written as CVAT and Datumaro export subsets:
    annotations/instances_<split>.json with its images in images/<split>/ (images in no split:
    instances_default.json), which the reader reads back as one data set with those splits."""
    folder = output_folder(dataset, out)
    check_writable(dataset)
    names = output_names(dataset)
    splits = splits_of(dataset)
    if not splits:
        folder.write_text("annotations.json", json.dumps(_document(dataset, names, "images", folder)))
        return
    groups: dict[str, list[int]] = {}
    for k, sample in enumerate(dataset.samples):
        groups.setdefault(sample.split or "default", []).append(k)
    for split, members in groups.items():
        part = replace(dataset, samples=[dataset.samples[k] for k in members])
        doc = _document(part, [names[k] for k in members], f"images/{split}", folder)
        folder.write_text(f"annotations/instances_{split}.json", json.dumps(doc))


def _document(dataset: Dataset, names: list[str], images_dir: str, folder: OutputFolder) -> dict[str, Any]:
    index = dataset.class_map.index()
    categories = [{"id": index[c.name], "name": c.name, "supercategory": "",
                   "color": "#{:02x}{:02x}{:02x}".format(*c.color)} for c in dataset.classes]
    images, annotations = [], []
    for image_id, (sample, name) in enumerate(zip(dataset.samples, names, strict=True), start=1):
        copy_image(sample, folder, f"{images_dir}/{name}")
        images.append({"id": image_id, "file_name": name, "width": sample.width, "height": sample.height})
        for region in sample.regions:
            if region.label not in index:
                continue
            rle = region_rle(region, sample.height, sample.width)
            ann: dict[str, Any] = {
                "id": len(annotations) + 1, "image_id": image_id, "category_id": index[region.label],
                "iscrowd": int(region.iscrowd), "area": float(mask_utils.area(rle)),
                "bbox": [round(float(v), 3) for v in mask_utils.toBbox(rle)],
            }
            if region.rle is None:
                ann["segmentation"] = [np.asarray(p, dtype=np.float64).ravel().tolist() for p in region.polygons]
            else:
                ann["segmentation"] = rle_json(rle)
            annotations.append(ann)
        void = sample.ignore_rle
        if void is not None and float(mask_utils.area(void)) > 0:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": VOID_ID,
                                "iscrowd": 1, "area": float(mask_utils.area(void)),
                                "bbox": [round(float(v), 3) for v in mask_utils.toBbox(void)],
                                "segmentation": rle_json(void)})
    if any(a["category_id"] == VOID_ID for a in annotations):
        categories.append({"id": VOID_ID, "name": VOID_NAME, "supercategory": ""})
    return {"info": {"description": "written by masksmith"}, "images": images, "annotations": annotations,
            "categories": categories}
