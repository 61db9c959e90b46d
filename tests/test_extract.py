"""Cut-outs keep pixels by the mask, never by colour, and transparent PNGs carry the mask as alpha."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masksmith.apps.extract import cut_out, regions_of_classes, write_cutouts, write_index
from masksmith.core.errors import MasksmithError
from masksmith.core.labels import ClassMap
from masksmith.core.objects import DetectedObject, mask_box


def black_boot_photo() -> tuple[np.ndarray, np.ndarray]:
    """A white-ish photo with a black boot (pure black pixels inside it) and a black shadow outside it."""
    image = np.full((40, 60, 3), 230, np.uint8)
    mask = np.zeros((40, 60), bool)
    mask[10:30, 20:35] = True
    image[mask] = (0, 0, 0)  # the boot is pure black
    image[12:14, 22:24] = (200, 10, 10)  # a red lace
    image[32:36, 18:40] = (0, 0, 0)  # a black shadow on the floor, not part of the boot
    return image, mask


@pytest.mark.parametrize("background", ["white", "black"])
def test_black_pixels_inside_the_mask_stay_black(background: str) -> None:
    image, mask = black_boot_photo()
    out = cut_out(image, mask, background)
    assert out.shape == (20, 15, 3)
    assert (out == 0).all(axis=2).sum() == 20 * 15 - 4  # every boot pixel kept except the lace
    assert tuple(out[2, 2]) == (200, 10, 10)


def test_padding_fills_by_the_mask_not_by_colour() -> None:
    image, mask = black_boot_photo()
    out = cut_out(image, mask, "white", pad=6)
    assert out.shape == (32, 27, 3)  # rows 4..36, cols 14..41
    inside = np.zeros(out.shape[:2], bool)
    inside[6:26, 6:21] = True
    assert (out[~inside] == 255).all()  # the black shadow in the padding became background
    assert (out[inside] == image[10:30, 20:35].reshape(-1, 3)).all()


def test_transparent_png_has_the_mask_as_alpha(tmp_path: Path) -> None:
    image, mask = black_boot_photo()
    rows = write_cutouts(tmp_path / "photo.jpg", image, [DetectedObject("boots", 0.9, mask)], tmp_path,
                         "transparent", pad=2)
    png = Image.open(tmp_path / rows[0].file)
    assert png.mode == "RGBA" and png.size == (19, 24)
    rgba = np.asarray(png)
    expected_alpha = np.where(mask[8:32, 18:37], 255, 0)
    assert np.array_equal(rgba[..., 3], expected_alpha)
    assert np.array_equal(rgba[..., :3], image[8:32, 18:37])  # colour untouched, even where alpha is 0
    assert rows[0].box == (18, 8, 19, 24)


def test_regions_of_a_semantic_mask_and_the_index(tmp_path: Path) -> None:
    mask = np.zeros((30, 40), np.uint8)
    mask[2:10, 2:10] = 1
    mask[15:25, 20:35] = 1
    mask[2:8, 30:38] = 2
    objects = regions_of_classes(mask, ClassMap.from_names(["bag", "boots"]), wanted=["bag"])
    assert [o.label for o in objects] == ["bag", "bag"]
    assert sorted(int(o.mask.sum()) for o in objects) == [64, 150]
    image = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    rows = write_cutouts(Path("shot.png"), image, objects, tmp_path)
    csv_path, json_path = write_index(rows, tmp_path)
    table = list(csv.DictReader(csv_path.open()))
    assert [r["class"] for r in table] == ["bag", "bag"] and table[0]["source"] == "shot.png"
    assert {(int(r["width"]), int(r["height"])) for r in table} == {(8, 8), (15, 10)}
    assert len(json.loads(json_path.read_text())) == 2
    with pytest.raises(MasksmithError, match="no class hat"):
        regions_of_classes(mask, ClassMap.from_names(["bag", "boots"]), wanted=["hat"])


def test_mask_box_and_errors() -> None:
    m = np.zeros((10, 10), bool)
    assert mask_box(m) is None
    m[3, 4] = True
    assert mask_box(m, pad=100) == (0, 0, 10, 10)
    with pytest.raises(MasksmithError, match="empty"):
        cut_out(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), bool))
    with pytest.raises(MasksmithError, match="unknown background"):
        cut_out(np.zeros((10, 10, 3), np.uint8), m, "pink")
