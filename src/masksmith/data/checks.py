"""Checks every format shares, run after reading: image files, sizes, bounds and classes.

A sample with any problem is reported; in lenient mode it is skipped whole (dropping only the bad region would
silently turn its pixels into background and teach the model something false).
"""

from __future__ import annotations

import numpy as np

from masksmith.data.schema import Dataset, ProblemLog, Sample
from masksmith.images import ImageReadError, image_size


# Annotation tools let vertices stray a little past the border (a click on the edge: car-parts has vertices
# 2 px outside); rasterising clips those. Further out is a real fault, such as a region on the wrong image.
def bounds_tolerance(width: int, height: int) -> float:
    return max(4.0, 0.01 * max(width, height))


def validate(dataset: Dataset, log: ProblemLog) -> Dataset:
    """Fill missing image sizes and drop (or raise on) samples with problems. Returns the same dataset."""
    declared = set(dataset.class_names)
    kept: list[Sample] = []
    for sample in dataset.samples:
        if _check_sample(sample, declared, log):
            kept.append(sample)
    dataset.samples = kept
    return dataset


def _exists(path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long for the file system
        return False


def _check_sample(sample: Sample, declared: set[str], log: ProblemLog) -> bool:
    where = sample.image_path if sample.image_path is not None else sample.name
    before = len(log.problems)
    if sample.image_path is not None and (sample.image_data is None or _exists(sample.image_path)):
        if not _exists(sample.image_path):
            log.add("the image file is missing.", path=sample.image_path, item=sample.name,
                    fix="put the image beside the annotations or correct the file name in them.")
            return False
        try:
            size = image_size(sample.image_path)
        except ImageReadError as exc:
            log.add(exc.problem, path=sample.image_path, item=sample.name,
                    fix=exc.fix or "replace it with a valid JPEG or PNG, or remove it from the annotations.")
            return False
        if sample.width <= 0 or sample.height <= 0:
            sample.width, sample.height = size
        elif size != (sample.width, sample.height):
            log.add(f"the annotations say the image is {sample.width}x{sample.height} but the file is "
                    f"{size[0]}x{size[1]}.", path=sample.image_path, item=sample.name,
                    fix="re-export the annotations for this image, or restore the original image.")
            return False
    elif sample.width <= 0 or sample.height <= 0:
        try:
            sample.width, sample.height = sample.open_image().size
        except Exception as exc:  # noqa: BLE001 - reported, never raised past the log
            log.add(f"the embedded image cannot be read ({exc}).", path=where, item=sample.name)
            return False
    w, h = sample.width, sample.height
    for k, region in enumerate(sample.regions):
        item = f"{sample.name}, region {k + 1} ({region.label})"
        if region.label not in declared:
            log.add(f"class {region.label!r} is not declared in the data set's class list.", path=where,
                    item=item, fix="add the class to the annotation file's class list or relabel the region.")
            continue
        if region.rle is not None:
            rh, rw = region.rle["size"]
            if (rw, rh) != (w, h):
                log.add(f"its mask is {rw}x{rh} but the image is {w}x{h}.", path=where, item=item,
                        fix="make the mask the same size as its image.")
            continue
        if not region.polygons:
            log.add("the region has no shape.", path=where, item=item, fix="delete the empty region.")
            continue
        pts = np.concatenate(region.polygons, axis=0)
        lo = pts.min(axis=0)
        hi = pts.max(axis=0)
        tol = bounds_tolerance(w, h)
        if lo[0] < -tol or lo[1] < -tol or hi[0] > w + tol or hi[1] > h + tol:
            log.add(f"the region reaches ({lo[0]:.0f}, {lo[1]:.0f})-({hi[0]:.0f}, {hi[1]:.0f}), outside the "
                    f"{w}x{h} image.", path=where, item=item,
                    fix="redraw the region inside the image, or check that it belongs to this image.")
    if sample.ignore_rle is not None and tuple(sample.ignore_rle["size"]) != (h, w):
        log.add("its void mask has a different size from the image.", path=where, item=sample.name)
    return len(log.problems) == before
