"""The VIA, LabelMe and CVAT writers: what they write reads back as the same regions (polygons exactly,
masks through their traced polygons), with the layout each tool expects."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from masksmith.core.outputs import OutputError
from masksmith.data import load_dataset
from masksmith.data.convert import convert
from masksmith.data.rasterize import mask_to_rle, semantic_mask
from masksmith.data.schema import Dataset, Region, Sample, make_classes

FORMATS = ["via", "labelme", "cvat"]


def make_small_dataset(root: Path) -> Dataset:
    """Three photos with a square 'box' and a triangle 'roof' over it."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    samples = []
    for k, (w, h) in enumerate(((70, 50), (64, 64), (33, 47))):
        path = root / f"photo_{k}.png"
        Image.new("RGB", (w, h), (k * 40, 90, 120)).save(path)
        box = [[2, 2], [w * 0.6, 2], [w * 0.6, h * 0.6], [2, h * 0.6]]
        roof = [[w * 0.3, h * 0.3], [w - 1, h * 0.5], [w * 0.4, h - 1]]
        samples.append(Sample(name=path.name, image_path=path, width=w, height=h,
                              regions=[Region("box", [np.array(box)]), Region("roof", [np.array(roof)])]))
    return Dataset(classes=make_classes(["box", "roof"]), samples=samples, format="test", root=root)


def masks_with_a_hole(root: Path) -> Dataset:
    """One photo whose 'ring' region is a mask with a hole and a 'dot' inside the hole, as RLE."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (60, 40), (10, 20, 30)).save(root / "ring.png")
    ring = np.zeros((40, 60), bool)
    ring[5:35, 5:55] = True
    ring[12:28, 15:45] = False
    dot = np.zeros((40, 60), bool)
    dot[17:23, 25:35] = True
    regions = [Region("ring", rle=mask_to_rle(ring)), Region("dot", rle=mask_to_rle(dot))]
    return Dataset(classes=make_classes(["ring", "dot"]), root=root, format="test",
                   samples=[Sample("ring.png", root / "ring.png", 60, 40, regions=regions)])


@pytest.mark.parametrize("fmt", FORMATS)
def test_polygons_read_back_pixel_for_pixel(fmt: str, tmp_path: Path) -> None:
    ds = make_small_dataset(tmp_path / "src")
    out = convert(ds, fmt, tmp_path / fmt)
    back = load_dataset(out)
    assert back.format == fmt and [c.name for c in back.classes] == ["box", "roof"]
    index = ds.class_map.index()
    for a, b in zip(sorted(ds.samples, key=lambda s: s.name), sorted(back.samples, key=lambda s: s.name),
                    strict=True):
        assert Path(a.name).name == Path(b.name).name
        assert (semantic_mask(a, index) == semantic_mask(b, index)).all()


@pytest.mark.parametrize("fmt", FORMATS)
def test_masks_with_holes_become_polygons_that_keep_the_hole(fmt: str, tmp_path: Path) -> None:
    ds = masks_with_a_hole(tmp_path / "src")
    back = load_dataset(convert(ds, fmt, tmp_path / fmt))
    index = ds.class_map.index()
    expected = semantic_mask(ds.samples[0], index)
    got = semantic_mask(back.samples[0], index)
    assert (got == expected).mean() > 0.995
    assert got[20, 20] == 0 and got[20, 30] == index["dot"] and got[8, 8] == index["ring"]


def test_each_layout_is_the_tools_own(tmp_path: Path) -> None:
    ds = make_small_dataset(tmp_path / "src")
    via = json.loads((convert(ds, "via", tmp_path / "via") / "via_project.json").read_text())
    assert set(via) >= {"_via_settings", "_via_img_metadata", "_via_attributes", "_via_image_id_list"}
    entry = via["_via_img_metadata"][via["_via_image_id_list"][0]]
    assert (tmp_path / "via" / entry["filename"]).is_file()
    assert entry["regions"][0]["shape_attributes"]["name"] == "polygon"
    assert set(via["_via_attributes"]["region"]["name"]["options"]) == {"box", "roof"}

    convert(ds, "labelme", tmp_path / "labelme")
    doc = json.loads((tmp_path / "labelme" / "photo_0.json").read_text())
    assert doc["imagePath"] == "photo_0.png" and doc["imageData"] is None
    assert (doc["imageWidth"], doc["imageHeight"]) == (70, 50) and doc["shapes"][0]["shape_type"] == "polygon"

    root = ET.parse(convert(ds, "cvat", tmp_path / "cvat") / "annotations.xml").getroot()
    assert root.findtext("version") == "1.1"
    assert [n.text for n in root.iter("name") if n.text in ("box", "roof")] == ["box", "roof"]
    image = root.find("image")
    assert (tmp_path / "cvat" / "images" / image.get("name")).is_file()
    assert image.find("polygon").get("points").count(";") >= 2


def test_writers_refuse_the_source_folder(tmp_path: Path) -> None:
    ds = make_small_dataset(tmp_path / "src")
    for fmt in FORMATS:
        with pytest.raises(OutputError):
            convert(ds, fmt, tmp_path / "src" / "out")
