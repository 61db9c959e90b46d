"""Instance data sets in the labelling loop: a photo's annotation is a set of objects (an id, a class, a mask).

A labelling folder (`masksmith.data.labelling`) is an instance data set when it has an `objects/` folder:

    DATA/objects/<stem>.png          the photo's objects: an 8-bit grey PNG of object ids (0 no object, 1..255),
                                     with the id -> class name table as JSON in its "masksmith-objects" text
                                     chunk ({"1": "door", "2": "wheel"}): one file, so one atomic replace
                                     saves the ids and their classes together
    DATA/masks/<stem>.png            the class-value mask drawn from the objects (so every semantic reader,
                                     the photo counts and `inspect` see the photo as labelled)
    DATA/.versions/<stem>.<n>.objects.png   the earlier objects of a photo, beside its earlier masks

`load_dataset` reads such a folder as the mask-folder format and then (`use_objects`) gives each photo with an
objects file one instance region per object, so `dataset convert --to coco` writes them as COCO instances and
instance training sees the objects the person drew. A photo labelled before the folder took objects keeps its
class regions (instance training splits those into connected parts, as for any mask folder).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from masksmith.core.errors import DatasetError
from masksmith.core.outputs import atomic_copy, atomic_save
from masksmith.data import labelling

OBJECTS = "objects"
CHUNK = "masksmith-objects"  # the PNG text chunk holding {id: class name}
MAX_OBJECTS = 255  # ids are one byte


def is_instance_folder(root: str | Path | None) -> bool:
    """Whether the labelling folder `root` holds objects (an instance data set)."""
    return root is not None and labelling.is_labelling_folder(root) and (Path(root) / OBJECTS).is_dir()


def objects_path(root: str | Path, photo: labelling.Photo) -> Path:
    """objects/<the photo's path under images/>.png (refused when it, or objects/, is a link out of the data
    set's folder)."""
    return labelling.inside(Path(root), OBJECTS, Path(photo.name).with_suffix(".png").as_posix())


def encode(ids: np.ndarray, classes: dict[int, str]) -> bytes:
    """The objects as PNG bytes: grey ids, and the id -> class table in a text chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(CHUNK, json.dumps({str(k): v for k, v in sorted(classes.items())}), zip=True)
    png = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(ids, np.uint8), "L").save(png, format="PNG", pnginfo=info)
    return png.getvalue()


def read_file(path: Path) -> tuple[np.ndarray, dict[int, str]]:
    """(ids, {id: class name}) of an objects file; refused with one line when it is not one."""
    from masksmith.data.formats.masks import open_mask

    im = open_mask(path)  # decoded, any failure one line naming the file
    text = getattr(im, "text", {}).get(CHUNK)
    if im.mode != "L" or text is None:
        raise DatasetError("is not an objects file (a grey PNG with a masksmith-objects table).", path=path,
                           fix="save the photo's objects again in the editor, or remove the file.")
    return np.asarray(im, dtype=np.uint8), parse_classes(text, path)


def parse_classes(text: Any, path: Path | str = "") -> dict[int, str]:
    """{id: class name} from JSON text or a dict ({"1": "door"}): ids 1..255, names non-empty strings."""
    try:
        table = json.loads(text) if isinstance(text, (str, bytes)) else text
    except ValueError:
        table = None
    if not isinstance(table, dict):
        raise DatasetError("the objects' class table is not a JSON object of id -> class name.", path=path,
                           fix='send {"1": "door", "2": "wheel"}.')
    out: dict[int, str] = {}
    for key, name in table.items():
        if not (isinstance(key, str) and key.isdigit() and 1 <= int(key) <= MAX_OBJECTS):
            raise DatasetError(f"the objects' class table has object id {key!r}.", path=path,
                               fix=f"number the objects 1..{MAX_OBJECTS}.")
        if not isinstance(name, str) or not name:
            raise DatasetError(f"object {key} has class {name!r}.", path=path, fix="give each object a class name.")
        out[int(key)] = name
    return out


def check(ids: np.ndarray, classes: dict[int, str], size: tuple[int, int], names: list[str]) -> np.ndarray:
    """`ids` as (H, W) uint8 if it is `size` (width, height), every id in it has a class, and every class is
    one of `names`. Ids in the table but not in the mask are dropped from the table by the caller."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or (ids.shape[1], ids.shape[0]) != tuple(size):
        got = f"{ids.shape[1]}x{ids.shape[0]}" if ids.ndim == 2 else f"shape {ids.shape}"
        raise DatasetError(f"the objects mask is {got} but the photo is {size[0]}x{size[1]}.",
                           fix="send a mask of the photo's size.")
    if ids.dtype != np.uint8 and (ids.dtype.kind not in "iu" or (ids.size and (ids.min() < 0 or ids.max() > 255))):
        raise DatasetError(f"the objects mask holds {ids.dtype} values, not 8-bit object ids.",
                           fix="send an 8-bit grey PNG of object ids.")
    unknown = sorted({n for n in classes.values() if n not in names})
    if unknown:
        raise DatasetError(f"the objects name class{'es' if len(unknown) > 1 else ''} "
                           f"{', '.join(map(repr, unknown[:5]))}, which the data set does not have.",
                           fix=f"use the data set's classes: {', '.join(names)}.")
    present = np.flatnonzero(np.bincount(ids.ravel().astype(np.uint8), minlength=256))
    missing = [int(v) for v in present if v and int(v) not in classes]
    if missing:
        raise DatasetError(f"the objects mask holds object id{'s' if len(missing) > 1 else ''} "
                           f"{', '.join(map(str, missing[:5]))} with no class.", fix="give every object a class.")
    return ids.astype(np.uint8)


def class_mask(ids: np.ndarray, classes: dict[int, str], values: dict[str, int]) -> np.ndarray:
    """The class-value mask of the objects (0 where no object)."""
    lut = np.zeros(256, np.uint8)
    for k, name in classes.items():
        lut[k] = values[name]
    return lut[ids]


def from_classes(mask: np.ndarray, names: dict[int, str]) -> tuple[np.ndarray, dict[int, str]]:
    """Objects from a class-value mask: each 8-connected part of each class one object (largest first, at
    most 255; smaller parts beyond that join no object)."""
    from masksmith.data.rasterize import connected_components

    ids = np.zeros(mask.shape, np.uint8)
    classes: dict[int, str] = {}
    for value in np.flatnonzero(np.bincount(mask.ravel(), minlength=256)).tolist():
        if value not in names or value == 0:
            continue
        for part in connected_components(mask == value):
            if len(classes) == MAX_OBJECTS:
                break
            classes[len(classes) + 1] = names[value]
            ids[part] = len(classes)
    return ids, classes


def read_objects(root: str | Path, name: str) -> tuple[np.ndarray, dict[int, str]] | None:
    """The photo's saved objects, or None when it has none yet."""
    path = objects_path(root, labelling.find_photo(root, name))
    return read_file(path) if path.is_file() else None


def start_objects(root: str | Path, name: str, mask: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """The objects the editor starts from: the saved ones, else the parts of `mask` (the saved class mask or
    the model's proposal)."""
    saved = read_objects(root, name)
    return saved if saved is not None else from_classes(mask, labelling.named_values(root))


def save_objects(root: str | Path, name: str, ids: np.ndarray | bytes, classes: dict[int, str] | Any
                 ) -> labelling.Saved:
    """Save photo `name`'s objects (ids as an array or PNG bytes, {id: class name}) as its annotation: checked,
    the previous objects and mask kept under .versions/, the objects file then the class mask written
    atomically, the photo moved from unlabelled/ to images/. Under the data set's lock."""
    from masksmith.core.images import image_size

    root = labelling.require_folder(root)
    if not is_instance_folder(root):
        raise DatasetError("is not an instance data set (it has no objects/ folder).", path=root,
                           fix="save a class mask instead, or make the data set one of objects first.")
    array = labelling.decode_mask(ids) if isinstance(ids, bytes) else np.asarray(ids)
    table = parse_classes(classes)
    values = {n: v for v, n in labelling.named_values(root).items() if v > 0}
    with labelling.labelling_lock(root):
        photo = labelling.find_photo(root, name)
        array = check(array, table, image_size(photo.path), list(values))
        present = set(np.flatnonzero(np.bincount(array.ravel(), minlength=256)).tolist())
        table = {k: v for k, v in table.items() if k in present}
        target, mask = objects_path(root, photo), labelling.mask_path(root, photo)
        kept, version = None, 1
        if mask.is_file() or target.is_file():
            key = labelling.version_key(photo)
            version = len(labelling.versions(root, key)) + 1
            earlier = root / labelling.VERSIONS / f"{key}.{version}.png"
            if mask.is_file():
                kept = atomic_copy(mask, earlier)
            if target.is_file():
                atomic_copy(target, earlier.with_suffix(".objects.png"))
            version += 1
        data = encode(array, table)
        atomic_save(target, lambda tmp: tmp.write_bytes(data))
        png = io.BytesIO()
        Image.fromarray(class_mask(array, table, values), "L").save(png, format="PNG")
        atomic_save(mask, lambda tmp: tmp.write_bytes(png.getvalue()))
        if photo.path.parent == root / labelling.UNLABELLED:
            dest = labelling.inside(root, labelling.IMAGES, photo.name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(photo.path, dest)
    return labelling.Saved(photo.name, mask, kept, version)


def make_instance_folder(root: str | Path, dataset=None) -> Path:
    """Make the labelling folder `root` an instance data set: objects/ for every labelled photo, from the
    instance regions of `dataset` (the data set the folder was written from, samples in the order `dataset
    convert` wrote them) when given, else from the connected parts of each saved class mask."""
    root = labelling.require_folder(root)
    (root / OBJECTS).mkdir(exist_ok=True)
    if dataset is not None:
        from masksmith.data.formats._write import output_stems, split_stems
        from masksmith.data.rasterize import instance_masks

        index = dataset.class_map.index()
        names = {i: n for n, i in index.items()}
        for sample, stem in zip(dataset.samples, split_stems(dataset, output_stems(dataset)), strict=True):
            masks, labels, crowd = instance_masks(sample, index)
            ids = np.zeros((sample.height, sample.width), np.uint8)
            table: dict[int, str] = {}
            for m, label in zip(masks[~crowd][:MAX_OBJECTS], labels[~crowd][:MAX_OBJECTS], strict=True):
                table[len(table) + 1] = names[int(label)]
                ids[m] = len(table)
            data = encode(ids, table)
            atomic_save(root / OBJECTS / f"{stem}.png", lambda tmp, data=data: tmp.write_bytes(data))
        return root
    for photo in labelling.photos(root):
        target = objects_path(root, photo)
        if photo.labelled and not target.is_file():
            ids, table = from_classes(labelling.read_mask(root, photo.name), labelling.named_values(root))
            target.parent.mkdir(parents=True, exist_ok=True)
            data = encode(ids, table)
            atomic_save(target, lambda tmp, data=data: tmp.write_bytes(data))
    return root


def use_objects(dataset, log) -> None:
    """Give each photo of an instance labelling folder that has an objects file one instance region per
    object (its void pixels stay), in place. Called by `load_dataset` after the mask-folder reader; an objects
    file that cannot be read is a problem of its photo (`log`: raised when strict, else the photo dropped)."""
    from masksmith.data.rasterize import mask_to_rle
    from masksmith.data.schema import Region

    root = Path(dataset.root)
    kept = []
    for sample in dataset.samples:
        try:
            rel = Path(sample.image_path).relative_to(root / labelling.IMAGES)
        except ValueError:
            kept.append(sample)
            continue
        path = root / OBJECTS / rel.with_suffix(".png")
        try:
            path = labelling.inside(root, OBJECTS, rel.with_suffix(".png").as_posix())
            if path.is_file():
                ids, table = read_file(path)
                sample.regions = [Region(label=table[k], rle=mask_to_rle(ids == k), is_instance=True)
                                  for k in sorted(table) if (ids == k).any()]
        except DatasetError as exc:
            log.add(exc.problem, path=exc.path or path, item=sample.name, fix=exc.fix or "")
            continue
        kept.append(sample)
    dataset.samples = kept
