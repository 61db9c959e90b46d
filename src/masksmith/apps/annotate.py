"""Pre-annotations: a model's predictions written in the user's labelling tool's format, to correct rather
than draw (`masksmith predict MODEL photos/ --to coco|via|labelme|cvat`).

Masks become polygons (`masksmith.data.polygons`: contours with holes bridged in, simplified to `tolerance`
pixels, parts under `min_area` pixels dropped). Instance models give one region per object (its parts grouped
where the format groups); semantic models one region per connected part of each class. The polygons go into a
plain `Dataset` and out through the format's own writer (`masksmith.data.formats.<name>.write`), the same one
`masksmith dataset convert` uses, so what is written reads back with `load_dataset` / `dataset inspect`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from masksmith.core.errors import MasksmithError
from masksmith.core.labels import ClassMap
from masksmith.core.objects import DetectedObject
from masksmith.data.polygons import mask_polygons
from masksmith.data.schema import Dataset, Region, Sample, make_classes

FORMATS = ("coco", "via", "labelme", "cvat")


@dataclass
class Prediction:
    """One photo's prediction: a semantic class-index mask or a list of objects (label, score, mask)."""

    path: Path
    width: int
    height: int
    mask: np.ndarray | None = None  # (H, W) class indices (semantic models)
    objects: list = field(default_factory=list)  # DetectedObject / Instance (instance models)


def semantic_regions(mask: np.ndarray, classes: ClassMap, tolerance: float = 0.4,
                     min_area: int = 16) -> list[Region]:
    """One polygon region per connected part of each class of a class-value mask."""
    regions = []
    for value, name in zip(classes.values, classes.names, strict=True):
        part = mask == value
        if part.any():
            regions += [Region(name, [p]) for p in mask_polygons(part, tolerance, min_area)]
    return regions


def object_regions(objects: Sequence, tolerance: float = 0.4, min_area: int = 16) -> list[Region]:
    """One region per object (all its parts' polygons), with its score as an attribute."""
    regions = []
    for obj in objects:
        polygons = mask_polygons(obj.mask, tolerance, min_area)
        if polygons:
            regions.append(Region(obj.label, polygons, attributes={"score": round(float(obj.score), 4)}))
    return regions


def predictions_dataset(predictions: Sequence[Prediction], classes: ClassMap, tolerance: float = 0.4,
                        min_area: int = 16) -> Dataset:
    """The predictions as a Dataset of polygon regions (sample names: the photos' file names, made unique)."""
    from masksmith.core.paths import unique_stems

    stems = unique_stems([p.path for p in predictions])
    samples = []
    for pred, stem in zip(predictions, stems, strict=True):
        regions = (semantic_regions(pred.mask, classes, tolerance, min_area) if pred.mask is not None
                   else object_regions(pred.objects, tolerance, min_area))
        samples.append(Sample(name=f"{stem}{pred.path.suffix.lower() or '.png'}", image_path=pred.path,
                              width=pred.width, height=pred.height, regions=regions))
    return Dataset(classes=make_classes(list(classes.names), classes.colors_by_name()), samples=samples,
                   format="prediction", root=None)


def check_format(to: str) -> str:
    """`to` when pre-annotations can be written in it (checked before any photo is predicted)."""
    if to not in FORMATS:
        raise MasksmithError(f"cannot write pre-annotations as {to!r}.", fix=f"use one of: {', '.join(FORMATS)}.")
    return to


def write_preannotations(predictions: Sequence[Prediction], classes: ClassMap, to: str, out,
                         tolerance: float = 0.4, min_area: int = 16) -> Path:
    """Write the predictions as format `to` (coco, via, labelme, cvat) into `out` (a folder or OutputFolder;
    the photos are copied beside the annotations as the tool expects). Returns the folder."""
    from masksmith.core.outputs import as_output_folder
    from masksmith.data.formats import get_format

    check_format(to)
    dataset = predictions_dataset(predictions, classes, tolerance, min_area)
    folder = as_output_folder(out, inputs=[p.path for p in predictions])
    get_format(to).write(dataset, folder)
    return folder.root


def predictions_from_outputs(written: Sequence[dict]) -> list[Prediction]:
    """The Predictions that `masksmith predict` wrote (its returned rows): the class-index <stem>_mask.png of a
    semantic model or the <stem>_instances.json (RLE masks) of an instance model, read back, so pre-annotations
    need nothing from inside the prediction loop."""
    import json

    from PIL import Image

    predictions = []
    for row in written:
        path = Path(row["image"])
        if row.get("mask"):
            with Image.open(row["mask"]) as im:
                mask = np.asarray(im)
            predictions.append(Prediction(path, mask.shape[1], mask.shape[0], mask=mask))
        elif row.get("json"):
            from pycocotools import mask as mask_utils

            doc = json.loads(Path(row["json"]).read_text(encoding="utf-8"))
            objects = []
            for obj in doc.get("instances", []):
                rle = dict(obj["mask"])
                rle["counts"] = rle["counts"].encode("ascii") if isinstance(rle["counts"], str) else rle["counts"]
                objects.append(DetectedObject(obj["class"], float(obj["score"]), mask_utils.decode(rle).astype(bool)))
            predictions.append(Prediction(path, int(doc["width"]), int(doc["height"]), objects=objects))
        else:
            raise MasksmithError(f"the prediction of {path} wrote neither a mask nor an instances file.")
    return predictions
