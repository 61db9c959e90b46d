"""COCO instances JSON: read and write (polygons, compressed and uncompressed RLE).

Reads what real tools write: `iscrowd` as 0/1 or true/false (COCO Annotator writes booleans), extra keys
anywhere, a `_background_` category that no annotation uses, images kept in a sub-folder such as JPEGImages/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from masksmith.data.formats._common import as_float, find_image, load_json, points_array
from masksmith.data.formats._write import copy_image, output_folder, output_names
from masksmith.data.rasterize import region_rle
from masksmith.data.schema import Dataset, ProblemLog, Region, Sample, make_classes
from masksmith.errors import DatasetError
from masksmith.outputs import OutputFolder

NAME = "coco"
DESCRIPTION = "COCO instances JSON"
_DEFAULT_NAMES = ("annotations.json", "_annotations.coco.json", "instances_default.json", "instances.json")


def _looks_like_coco(path: Path) -> bool:
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    with path.open("rb") as f:
        head = f.read(1 << 16)
    # the image list may fill the first 64 KiB; its entries' key file_name is COCO's own
    return b'"images"' in head and (b'"file_name"' in head or b'"annotations"' in head)


def annotation_file(path: Path) -> Path:
    """The COCO JSON for `path`: the file itself, or the one COCO file in the folder (or its annotations/)."""
    if path.is_file():
        return path
    candidates: list[Path] = []
    for folder in (path, path / "annotations"):
        if folder.is_dir():
            candidates += sorted(p for p in folder.glob("*.json") if _looks_like_coco(p))
    for name in _DEFAULT_NAMES:
        for c in candidates:
            if c.name == name:
                return c
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise DatasetError("no COCO annotation file found.", path=path)
    names = ", ".join(c.name for c in candidates)
    raise DatasetError(f"holds several COCO files ({names}).", path=path,
                       fix="point at the one you mean.")


def detect(path: Path) -> bool:
    if path.is_file():
        return _looks_like_coco(path)
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
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            raise DatasetError("RLE 'size' must be [height, width].", path=path, item=item)
        if isinstance(counts, list):
            if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != size[0] * size[1]:
                raise DatasetError("uncompressed RLE counts do not add up to height x width.", path=path,
                                   item=item, fix="re-export the annotation.")
            rle = mask_utils.frPyObjects({"counts": counts, "size": size}, *size)
        elif isinstance(counts, str):
            rle = {"counts": counts.encode("ascii", "replace"), "size": size}
            try:
                decoded = mask_utils.decode(rle)
            except Exception:  # noqa: BLE001 - pycocotools raises bare exceptions on bad strings
                decoded = None
            if decoded is None or decoded.shape != (size[0], size[1]):
                raise DatasetError("compressed RLE counts cannot be decoded.", path=path, item=item)
        else:
            raise DatasetError("RLE 'counts' must be a string or a list of integers.", path=path, item=item)
        return Region(label="", rle=rle)
    raise DatasetError(f"segmentation is a {type(seg).__name__}, not polygons or RLE.", path=path, item=item)


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


def read(path: Path, log: ProblemLog, **options: Any) -> Dataset:
    file = annotation_file(path)
    root = file.parent.parent if file.parent.name == "annotations" else file.parent
    data = load_json(file)
    if not isinstance(data, dict):
        raise DatasetError("is not a COCO file: the top level must be an object.", path=file)
    images, annotations, categories = (_as_list(data, k, file) for k in ("images", "annotations", "categories"))

    cat_names: dict[Any, str] = {}
    colors: dict[str, tuple[int, int, int]] = {}
    for cat in categories:
        name = cat.get("name")
        if not isinstance(name, str) or "id" not in cat:
            raise DatasetError(f"category {cat!r:.80} has no id or name.", path=file)
        cat_names[cat["id"]] = name
        color = _hex_color(cat.get("color"))
        if color:
            colors[name] = color
    classes = make_classes(list(cat_names.values()), colors if options.get("keep_colors", True) else None)

    samples: dict[Any, Sample] = {}
    for img in images:
        item = f"image {img.get('id')!r}"
        file_name = img.get("file_name")
        if not isinstance(file_name, str) or "id" not in img:
            log.add("has no id or file_name.", path=file, item=item, fix="re-export the annotations.")
            continue
        try:
            width = int(as_float(img.get("width", 0), path=file, item=item, what="width"))
            height = int(as_float(img.get("height", 0), path=file, item=item, what="height"))
        except DatasetError as exc:
            log.add(exc.problem, path=file, item=item)
            continue
        extra = img.get("path") if isinstance(img.get("path"), str) else ""
        image_path = find_image(root, file_name, extra)
        samples[img["id"]] = Sample(name=file_name, image_path=image_path, width=width, height=height)

    bad: set[Any] = set()
    for k, ann in enumerate(annotations):
        image_id = ann.get("image_id")
        item = f"annotation {ann.get('id', k)!r}"
        sample = samples.get(image_id) if isinstance(image_id, (int, str)) else None
        if sample is None:
            log.add(f"refers to image_id {image_id!r}, which the file does not list.", path=file, item=item,
                    fix="remove the annotation or add its image.")
            continue
        if ann.get("category_id") not in cat_names:
            log.add(f"category_id {ann.get('category_id')!r} is not declared in 'categories'.", path=file,
                    item=item, fix="add the category or remove the annotation.")
            bad.add(image_id)
            continue
        try:
            region = _parse_segmentation(ann.get("segmentation", []), sample.height, sample.width,
                                         path=file, item=item)
        except DatasetError as exc:
            log.add(exc.problem, path=file, item=item, fix=exc.fix or "")
            bad.add(image_id)
            continue
        if region is None:
            continue
        region.label = cat_names[ann["category_id"]]
        region.iscrowd = bool(ann.get("iscrowd", False))
        samples[image_id].regions.append(region)
    return Dataset(classes=classes, samples=[s for i, s in samples.items() if i not in bad], root=root)


def _rle_json(rle: dict[str, Any]) -> dict[str, Any]:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def write(dataset: Dataset, out: Path | OutputFolder, **options: Any) -> None:
    """Write out/annotations.json and copy the images to out/images/ (sample names keep their sub-folders;
    names that would leave the folder are flattened by masksmith.paths, and the JSON says the same name)."""
    folder = output_folder(dataset, out)
    index = dataset.class_to_index()
    categories = [{"id": index[c.name], "name": c.name, "supercategory": "",
                   "color": "#{:02x}{:02x}{:02x}".format(*c.color)} for c in dataset.classes]
    images, annotations = [], []
    for image_id, (sample, name) in enumerate(zip(dataset.samples, output_names(dataset), strict=True), start=1):
        copy_image(sample, folder, f"images/{name}")
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
                ann["segmentation"] = _rle_json(rle)
            annotations.append(ann)
    doc = {"info": {"description": "written by masksmith"}, "images": images, "annotations": annotations,
           "categories": categories}
    folder.write_text("annotations.json", json.dumps(doc))
