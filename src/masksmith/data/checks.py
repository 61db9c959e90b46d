"""Checks every format shares, run after reading: image files, sizes, bounds and classes.

What a problem drops is the smallest thing it spoils: a region with an undeclared class or outside its image
is dropped alone (in lenient mode) and its pixels become void, so they are neither learned as background nor
scored; an image that cannot be read, or whose size disagrees with the annotations, is dropped whole.

Missing images are one problem for the whole data set, with the count and a few names. When the pixels are
needed (training, conversion, preview) that problem stops a strict read or drops those images; when only the
annotation file is (`dataset inspect`), the samples stay, marked `image_missing`, and every check that the
file alone allows (classes, geometry where it states the image size) still runs.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import numpy as np
from pycocotools import mask as mask_utils

from masksmith.core.errors import DatasetError
from masksmith.core.images import ImageReadError, image_size, is_lfs_pointer
from masksmith.data.rasterize import bounds_tolerance, region_rle
from masksmith.data.schema import Dataset, Problem, ProblemLog, Region, Sample

SHOWN = 5  # names listed in the one-line problem about missing images


def validate(dataset: Dataset, log: ProblemLog, *, need_pixels: bool = True) -> Dataset:
    """Fill missing image sizes, drop (or raise on) bad regions and images, and report missing images once.
    Returns the same dataset."""
    declared = set(dataset.class_names)
    kept: list[Sample] = []
    missing: list[Sample] = []
    lfs: list[Sample] = []
    ambiguous: list[Sample] = []
    for sample in dataset.samples:
        status = _check_image(sample, log)
        if status == "bad":
            continue
        if status in ("missing", "lfs"):
            if status == "missing" and _ambiguous_name(sample, log) is not None:
                ambiguous.append(sample)
            else:
                (missing if status == "missing" else lfs).append(sample)
            if need_pixels:
                continue
            sample.image_missing = True
        if not _check_regions(sample, declared, log) or not _apply_void(sample, log):
            continue
        kept.append(sample)
    total = len(dataset.samples)
    for group, problem, fix in (
            (missing, ("is missing", "are missing"),
             "put the images where the annotations name them (beside the annotation file or in images/), or point "
             "at the folder that holds both."),
            (lfs, ("is a Git LFS pointer file, not the image", "are Git LFS pointer files, not the images"),
             "fetch them with `git lfs pull` in the repository you cloned.")):
        if group:
            _report_images(group, total, problem[len(group) > 1], fix, dataset, log, need_pixels)
    if ambiguous:
        _report_ambiguous(ambiguous, total, dataset, log, need_pixels)
    dataset.samples = kept
    return dataset


def _ambiguous_name(sample: Sample, log: ProblemLog) -> str | None:
    """The base name of the sample's image when several files below the data set folder have it."""
    for name in (sample.image_path.name if sample.image_path is not None else "", PurePosixPath(sample.name).name):
        if name in log.ambiguous:
            return name
    return None


def _report_ambiguous(group: list[Sample], total: int, dataset: Dataset, log: ProblemLog, need_pixels: bool
                      ) -> None:
    """One problem for images whose name several files share: the same words for `inspect`, which keeps them,
    and for the commands that need the pixels, which stop (or leave them out)."""
    shown = []
    for sample in group[:SHOWN]:
        base = _ambiguous_name(sample, log) or sample.name
        paths = log.ambiguous.get(base, [])
        shown.append(f"{base} ({', '.join(paths[:3])}{', ...' if len(paths) > 3 else ''})")
    more = " ..." if len(group) > SHOWN else ""
    verb = "is" if len(group) == 1 else "are"
    message = (f"{len(group)} of {total} image(s) {verb} named by several files below the data set folder, and "
               f"masksmith does not guess which: {'; '.join(shown)}{more}.")
    fix = "write each image's path relative to the annotation file (or the data set folder), or keep one file of " \
          "that name."
    if need_pixels and log.strict:
        raise DatasetError(message, path=dataset.root or "", fix=fix + " Or read it leniently (`lenient`) to leave "
                                                                       "them out.")
    log.report(Problem(str(dataset.root or ""), "", message, fix, "image" if need_pixels else "", len(group)))


def _report_images(group: list[Sample], total: int, problem: str, fix: str, dataset: Dataset, log: ProblemLog,
                   need_pixels: bool) -> None:
    names = ", ".join(s.name for s in group[:SHOWN]) + (" ..." if len(group) > SHOWN else "")
    message = f"{len(group)} of {total} image(s) {problem}: {names}."
    if need_pixels:
        message += " Training, conversion and previews need the pixels."
        if log.strict:
            raise DatasetError(message, path=dataset.root or "",
                               fix=fix + " Or read it leniently (`lenient`) to leave them out.")
        log.report(Problem(str(dataset.root or ""), "", message, fix, "image", len(group)))
    else:
        message += " The annotations were checked without them."
        log.report(Problem(str(dataset.root or ""), "", message, fix, "", len(group)))


def _exists(path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system
        return False


def _check_image(sample: Sample, log: ProblemLog) -> str:
    """'ok', 'missing', 'lfs' or 'bad' (logged); fills the sample's size from the image when it is unknown."""
    path = sample.image_path
    if path is not None and _exists(path):
        try:
            size = image_size(path)
        except ImageReadError as exc:
            if is_lfs_pointer(path):
                return "lfs"
            if sample.image_data is None:
                log.add(exc.problem, path=path, item=sample.name,
                        fix=exc.fix or "replace it with a valid JPEG or PNG, or remove it from the annotations.")
                return "bad"
            sample.image_path = None  # the embedded copy stands in for a file that is not an image
            return _check_embedded(sample, log)
        if sample.width <= 0 or sample.height <= 0:
            sample.width, sample.height = size
        elif size != (sample.width, sample.height):
            log.add(f"the annotations say the image is {sample.width}x{sample.height} but the file is "
                    f"{size[0]}x{size[1]}.", path=path, item=sample.name,
                    fix="re-export the annotations for this image, or restore the original image.")
            return "bad"
        return "ok"
    if sample.image_data is not None:
        return _check_embedded(sample, log)
    return "missing"


def _check_embedded(sample: Sample, log: ProblemLog) -> str:
    try:
        size = sample.open_image().size
    except Exception as exc:  # noqa: BLE001 - reported, never raised past the log
        log.add(f"the embedded image cannot be read ({exc}).", path=sample.name, item=sample.name)
        return "bad"
    if sample.width <= 0 or sample.height <= 0:
        sample.width, sample.height = size
    return "ok"


def _check_regions(sample: Sample, declared: set[str], log: ProblemLog) -> bool:
    """Drop (or raise on) regions with problems; those whose shape is usable become void. False when a fault
    spoils the whole image (a mask of another size: the annotation is not this image's)."""
    where = sample.image_path if sample.image_path is not None else sample.name
    w, h = sample.width, sample.height
    known = w > 0 and h > 0
    kept: list[Region] = []
    for k, region in enumerate(sample.regions):
        item = f"{sample.name}, region {k + 1} ({region.label})"
        fault, fix, action = _region_fault(region, declared, w, h, known)
        if fault is None:
            kept.append(region)
            continue
        log.add(fault, path=where, item=item, fix=fix, dropped="image" if action == "image" else "region")
        if action == "image":
            return False
        if action == "void":
            sample.void_regions.append(region)
    sample.regions = kept
    return True


def _region_fault(region: Region, declared: set[str], w: int, h: int, known: bool
                  ) -> tuple[str | None, str, str]:
    """(problem or None, fix, what to do: 'void' its pixels, 'drop' it alone, or drop the 'image')."""
    if region.rle is not None:
        rh, rw = region.rle["size"]
        if known and (rw, rh) != (w, h):
            return f"its mask is {rw}x{rh} but the image is {w}x{h}.", "make the mask the same size as its image.", \
                "image"
    if region.label not in declared:
        return (f"class {region.label!r} is not declared in the data set's class list.",
                "add the class to the annotation file's class list or relabel the region.", "void")
    if region.rle is not None:
        return None, "", ""
    if not region.polygons:
        return "the region has no shape.", "delete the empty region.", "drop"
    if not known:
        return None, "", ""  # bounds need the image size: checked when the image is there
    pts = np.concatenate(region.polygons, axis=0)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    tol = bounds_tolerance(w, h)
    if lo[0] < -tol or lo[1] < -tol or hi[0] > w + tol or hi[1] > h + tol:
        return (f"the region reaches ({lo[0]:.0f}, {lo[1]:.0f})-({hi[0]:.0f}, {hi[1]:.0f}), outside the {w}x{h} "
                "image.", "redraw the region inside the image, or check that it belongs to this image.", "void")
    return None, "", ""


def _apply_void(sample: Sample, log: ProblemLog) -> bool:
    """Paint the sample's void shapes into its void mask once its size is known; False when the sample's own
    void mask does not fit its image (logged, the image is dropped)."""
    w, h = sample.width, sample.height
    if w <= 0 or h <= 0:
        return True
    if sample.ignore_rle is not None and tuple(sample.ignore_rle["size"]) != (h, w):
        log.add("its void mask has a different size from the image.", path=sample.image_path or sample.name,
                item=sample.name)
        return False
    if not sample.void_regions:
        return True

    rles = [region_rle(r, h, w) for r in sample.void_regions
            if r.polygons or (r.rle is not None and tuple(r.rle["size"]) == (h, w))]
    if sample.ignore_rle is not None:
        rles.append(sample.ignore_rle)
    if rles:
        sample.ignore_rle = mask_utils.merge(rles) if len(rles) > 1 else rles[0]
    sample.void_regions = []
    return True
