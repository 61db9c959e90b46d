"""placed_rle: a box mask placed in a large image without ever building the image-size array."""

from __future__ import annotations

import base64
import io
import json
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from masksmith.data import load_dataset
from masksmith.data.rasterize import placed_rle, polygons_to_rle, region_mask


def full_placement(part: np.ndarray, left: int, top: int, height: int, width: int) -> np.ndarray:
    full = np.zeros((height, width), bool)
    t, lft = max(top, 0), max(left, 0)
    b, r = min(top + part.shape[0], height), min(left + part.shape[1], width)
    if b > t and r > lft:
        full[t:b, lft:r] = part[t - top: b - top, lft - left: r - left]
    return full


def test_placed_rle_equals_painting_the_box_into_a_full_array() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):  # boxes inside, across every border, and wholly outside the image
        height, width = (int(v) for v in rng.integers(1, 30, 2))
        part = rng.random(tuple(int(v) for v in rng.integers(1, 15, 2))) > 0.5
        left, top = (int(v) for v in rng.integers(-12, 32, 2))
        got = mask_utils.decode(placed_rle(part, left, top, height, width)).astype(bool)
        assert (got == full_placement(part, left, top, height, width)).all()


def test_a_mask_shape_in_a_huge_declared_image_costs_memory_of_the_box_only(tmp_path: Path) -> None:
    """A LabelMe file may declare 12000 x 12000 around a 10 x 10 mask: reading it must not allocate 144 MB
    arrays (the fuzz tests met such files, and several of them at once exhausted a CI machine's memory)."""
    buf = io.BytesIO()
    Image.new("L", (10, 10), 255).save(buf, format="PNG")
    Image.new("1", (12000, 12000)).save(tmp_path / "big.png")  # 1 bit per pixel: 18 MB here, a few kB on disk
    doc = {"version": "5.2.1", "flags": {}, "imagePath": "big.png", "imageData": None,
           "imageHeight": 12000, "imageWidth": 12000,
           "shapes": [{"label": "dent", "points": [[100.0, 200.0], [109.0, 209.0]], "shape_type": "mask",
                       "mask": base64.b64encode(buf.getvalue()).decode(), "group_id": None, "flags": {}}]}
    (tmp_path / "big.json").write_text(json.dumps(doc))
    tracemalloc.start()
    try:
        ds = load_dataset(tmp_path / "big.json", format="labelme")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30 * 2**20, f"reading took {peak / 2**20:.0f} MB"
    (sample,) = ds.samples
    (region,) = sample.regions
    rle = region.rle
    assert rle["size"] == [12000, 12000] and mask_utils.area(rle) == 100
    assert mask_utils.toBbox(rle).tolist() == [100.0, 200.0, 10.0, 10.0]
    small = region_mask(region, 12000, 12000)[195:215, 95:115]
    assert small.sum() == 100 and small[5:15, 5:15].all()


def test_a_polygon_reaching_far_outside_is_clipped_before_pycocotools_sees_it() -> None:
    """A vertex at 1e15 made pycocotools allocate by the polygon's extent (the fuzz tests' out-of-memory kill);
    clipped to the image, it paints what lies inside, and polygons within the bounds tolerance are untouched."""
    far = np.array([[2.0, 2.0], [1e15, 2.0], [2.0, 1e15]])
    mask = mask_utils.decode(polygons_to_rle([far], 20, 30)).astype(bool)
    assert mask.shape == (20, 30) and mask[5:, 5:].all() and not mask[0, 0]
    assert mask_utils.area(polygons_to_rle([np.array([[-1e12, -1e12], [-1e12, -5e11], [-5e11, -1e12]])], 20, 30)) == 0
    rng = np.random.default_rng(1)
    for _ in range(200):  # inside the tolerance: exactly pycocotools' own raster
        poly = rng.uniform((-3, -3), (33, 23), (int(rng.integers(3, 8)), 2))  # within 4 px of the 30x20 image
        ref = mask_utils.decode(mask_utils.frPyObjects([poly.ravel().tolist()], 20, 30)[0])
        assert (mask_utils.decode(polygons_to_rle([poly], 20, 30)) == ref).all()
