"""Regions to masks, with pycocotools' pixel semantics (so masks match COCO's annToMask exactly).

Overlap order: regions are painted in the order the annotation file lists them (readers sort by the tool's
own z-order where it has one, as CVAT does), so a later region covers an earlier one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from masksmith.core.labels import IGNORE_INDEX
from masksmith.data.schema import Dataset, Region, Sample


# Annotation tools let vertices stray a little past the border (a click on the edge: car-parts has vertices
# 2 px outside); rasterising clips those. Further out is a real fault, such as a region on the wrong image.
def bounds_tolerance(width: int, height: int) -> float:
    return max(4.0, 0.01 * max(width, height))


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """(N, H, W) masks as compressed COCO RLEs (bytes counts), in one pycocotools call."""
    if len(masks) == 0:
        return []
    return mask_utils.encode(np.asfortranarray(np.asarray(masks, dtype=bool).transpose(1, 2, 0).astype(np.uint8)))


def decode_masks(rles: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """COCO RLEs -> (N, H, W) uint8 masks."""
    if not rles:
        return np.zeros((0, height, width), np.uint8)
    return np.ascontiguousarray(mask_utils.decode(list(rles)).transpose(2, 0, 1))


def rle_json(rle: dict[str, Any]) -> dict[str, Any]:
    """An RLE with `counts` as str and `size` as plain ints, ready for JSON."""
    counts = rle["counts"]
    return {"size": [int(s) for s in rle["size"]],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def clip_polygon(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """The part of a polygon inside [-1, width + 1] x [-1, height + 1] (Sutherland-Hodgman against the four
    sides); fewer than 3 points when none of it is there."""
    pts = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    for axis, bound, inside in ((0, -1.0, np.greater_equal), (0, width + 1.0, np.less_equal),
                                (1, -1.0, np.greater_equal), (1, height + 1.0, np.less_equal)):
        if len(pts) == 0:
            break
        nxt = np.roll(pts, -1, axis=0)
        a_in, b_in = inside(pts[:, axis], bound), inside(nxt[:, axis], bound)
        with np.errstate(divide="ignore", invalid="ignore"):  # used only where the edge crosses the side
            cross = pts + ((bound - pts[:, axis]) / (nxt[:, axis] - pts[:, axis]))[:, None] * (nxt - pts)
        cross[:, axis] = bound
        out = []
        for k in range(len(pts)):  # inside points, and where each edge crosses the side
            if a_in[k]:
                out.append(pts[k])
            if a_in[k] != b_in[k]:
                out.append(cross[k])
        pts = np.array(out, dtype=np.float64).reshape(-1, 2)
    return pts


def polygons_to_rle(polygons: list[np.ndarray], height: int, width: int) -> dict[str, Any]:
    """One merged RLE for the polygons of a region.

    pycocotools allocates by a polygon's extent, not the image's: a vertex at 1e15 (a file can hold one, and a
    region that far out is voided, so still painted) asks it for terabytes and kills the process. A polygon
    reaching past the checks' bounds tolerance is clipped to the image first; the others are rasterised as
    they are, pixel for pixel as COCO's annToMask."""
    tol = bounds_tolerance(width, height)
    flat = []
    for p in polygons:
        pts = np.ascontiguousarray(p, dtype=np.float64).reshape(-1, 2)
        if len(pts) and (pts.min() < -tol or (pts.max(axis=0) > (width + tol, height + tol)).any()):
            pts = clip_polygon(pts, height, width)
        if len(pts) >= 3:
            flat.append(pts.ravel().tolist())
    if not flat:  # nothing of it inside the image
        return mask_utils.frPyObjects({"counts": [height * width], "size": [height, width]}, height, width)
    rles = mask_utils.frPyObjects(flat, height, width)
    return mask_utils.merge(rles) if len(rles) > 1 else rles[0]


def region_rle(region: Region, height: int, width: int) -> dict[str, Any]:
    """The region as a compressed COCO RLE."""
    if region.rle is not None:
        rle = region.rle
        if isinstance(rle.get("counts"), list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        return rle
    return polygons_to_rle(region.polygons, height, width)


def region_mask(region: Region, height: int, width: int) -> np.ndarray:
    """The region as an (H, W) bool mask."""
    return mask_utils.decode(region_rle(region, height, width)).astype(bool)


def sample_rles(sample: Sample) -> list[dict[str, Any]]:
    """RLE of every region of a sample, in paint order; polygons are encoded in one pycocotools call."""
    h, w = sample.height, sample.width
    flat: list[list[float]] = []
    owner: list[int] = []
    for i, region in enumerate(sample.regions):
        if region.rle is None:
            for p in region.polygons:
                flat.append(np.ascontiguousarray(p, dtype=np.float64).ravel().tolist())
                owner.append(i)
    poly_rles = mask_utils.frPyObjects(flat, h, w) if flat else []
    grouped: dict[int, list[dict[str, Any]]] = {}
    for i, rle in zip(owner, poly_rles, strict=True):
        grouped.setdefault(i, []).append(rle)
    out = []
    for i, region in enumerate(sample.regions):
        if region.rle is not None:
            out.append(region_rle(region, h, w))
        else:
            parts = grouped[i]
            out.append(mask_utils.merge(parts) if len(parts) > 1 else parts[0])
    return out


def semantic_mask(sample: Sample, class_to_index: dict[str, int]) -> np.ndarray:
    """(H, W) uint8 class-index mask: 0 background, i for class i, 255 for ignored (void) pixels.

    Regions whose label is not in `class_to_index` are left out (they stay background).
    """
    # Painted in column-major order, the layout pycocotools decodes into, so each region is one
    # contiguous masked copy; this is what makes us faster than annToMask plus boolean indexing.
    mask = np.zeros((sample.height, sample.width), dtype=np.uint8, order="F")
    if sample.regions:
        rles = sample_rles(sample)
        for region, rle in zip(sample.regions, rles, strict=True):
            index = class_to_index.get(region.label)
            if index is None:
                continue
            np.copyto(mask, index, where=mask_utils.decode(rle).view(bool))
    if sample.ignore_rle is not None:
        np.copyto(mask, IGNORE_INDEX, where=mask_utils.decode(sample.ignore_rle).view(bool))
    return np.ascontiguousarray(mask)


def instance_masks(sample: Sample, class_to_index: dict[str, int]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-object masks for instance segmentation: (N, H, W) bool, (N,) class indices, (N,) iscrowd.

    Regions from class-only sources (mask folders) are split into connected components, one per object.
    """
    masks: list[np.ndarray] = []
    labels: list[int] = []
    crowd: list[bool] = []
    rles = sample_rles(sample) if sample.regions else []
    for region, rle in zip(sample.regions, rles, strict=True):
        index = class_to_index.get(region.label)
        if index is None:
            continue
        m = mask_utils.decode(rle).astype(bool)
        parts = [m] if region.is_instance else connected_components(m)
        for part in parts:
            masks.append(part)
            labels.append(index)
            crowd.append(region.iscrowd)
    if not masks:
        return (np.zeros((0, sample.height, sample.width), bool), np.zeros(0, np.int64), np.zeros(0, bool))
    return np.stack(masks), np.asarray(labels, np.int64), np.asarray(crowd, bool)


def count_components(mask: np.ndarray) -> int:
    """How many 8-connected components a bool mask has (one label image, never a mask per component)."""
    from scipy import ndimage

    _, n = ndimage.label(mask, structure=np.ones((3, 3), bool), output=np.int32)
    return int(n)


def connected_components(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a bool mask, largest first."""
    from scipy import ndimage

    labelled, n = ndimage.label(mask, structure=np.ones((3, 3), int))
    if n == 0:
        return []
    sizes = np.bincount(labelled.ravel())[1:]
    return [labelled == (k + 1) for k in np.argsort(-sizes)]


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """A bool (H, W) mask as compressed RLE with `counts` as str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def placed_rle(part: np.ndarray, left: int, top: int, height: int, width: int) -> dict[str, Any]:
    """A box-sized bool mask placed at (left, top) in a height x width image, as compressed RLE (bytes counts).

    Built from the box's own runs, never from a full-size array: a file may declare a huge image around a
    small mask, and the full array would cost height x width bytes several times over.
    """
    top_c, left_c = max(top, 0), max(left, 0)
    bottom, right = min(top + part.shape[0], height), min(left + part.shape[1], width)
    clipped = part[top_c - top: bottom - top, left_c - left: right - left] if bottom > top_c and right > left_c \
        else np.zeros((0, 0), bool)
    # column-major runs: pad each column with a background pixel above and below, then find the edges
    padded = np.zeros((clipped.shape[0] + 2, clipped.shape[1]), np.int8)
    padded[1:-1] = clipped
    cols, rows = np.nonzero(np.diff(padded, axis=0).T)  # sorted by column, then row
    edges = (cols.astype(np.int64) + left_c) * height + top_c + rows  # starts and ends of runs, alternating
    bounds = np.concatenate([[0], edges, [height * width]])
    counts = np.diff(bounds).tolist()
    return mask_utils.frPyObjects({"counts": counts, "size": [height, width]}, height, width)


def dataset_semantic_masks(dataset: Dataset):
    """Yield (sample, semantic mask) for every sample."""
    index = dataset.class_map.index()
    for sample in dataset.samples:
        yield sample, semantic_mask(sample, index)
