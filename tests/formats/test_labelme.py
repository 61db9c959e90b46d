"""LabelMe: one JSON per image as LabelMe 5 saves it (shapes, imagePath, imageData, imageHeight, imageWidth),
a folder of them being one data set."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzzing import NAMES, Example
from hypothesis import strategies as st
from PIL import Image

from masksmith.core.errors import DatasetError
from masksmith.core.labels import IGNORE_INDEX
from masksmith.data import load_dataset
from masksmith.data.formats import labelme
from masksmith.data.rasterize import semantic_mask

W, H = 64, 48


def png_bytes(size: tuple[int, int] = (W, H), color: Any = (200, 30, 30), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def shape(label: str, points: list[list[float]], kind: str = "polygon", group_id: int | None = None) -> dict:
    return {"label": label, "points": points, "group_id": group_id, "description": "", "shape_type": kind,
            "flags": {}}


def car_1_shapes() -> list[dict]:
    return [
        shape("scratch", [[5.0, 5.0], [25.0, 5.0], [25.0, 20.0], [5.0, 20.0]]),
        shape("dent", [[30.0, 25.0], [20.0, 10.0]], "rectangle"),  # corners in either order
        shape("rust", [[20.0, 35.0], [20.0, 43.0]], "circle"),  # centre and a point on the rim: r = 8
        shape("scratch", [[1.0, 1.0], [10.0, 10.0]], "line"),
        shape("scratch", [[3.0, 3.0]], "point"),
        shape("scratch", [[1.0, 40.0], [5.0, 44.0], [9.0, 40.0]], "linestrip"),
        shape("dent", [[40.0, 35.0], [50.0, 35.0], [50.0, 45.0], [40.0, 45.0]], group_id=1),
        shape("dent", [[55.0, 35.0], [62.0, 35.0], [62.0, 45.0], [55.0, 45.0]], group_id=1),
    ]


def labelme_doc(image_path: str, shapes: list[dict], image_data: bytes | None = None) -> dict:
    return {"version": "5.2.1", "flags": {}, "shapes": shapes, "imagePath": image_path,
            "imageData": base64.b64encode(image_data).decode() if image_data is not None else None,
            "imageHeight": H, "imageWidth": W}


def write_folder(root: Path) -> Path:
    """car_1.jpg with its JSON beside it; car_2.json embedding its image, whose file is not there."""
    root.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W, H), (90, 90, 90)).save(root / "car_1.jpg")
    (root / "car_1.json").write_text(json.dumps(labelme_doc("car_1.jpg", car_1_shapes()), indent=2))
    car_2 = [shape("rust", [[30.0, 30.0], [60.0, 30.0], [45.0, 45.0]]),
             shape(labelme.IGNORE_LABEL, [[0.0, 0.0], [10.0, 10.0]], "rectangle")]
    (root / "car_2.json").write_text(json.dumps(labelme_doc("car_2.png", car_2, png_bytes()), indent=2))
    return root


def test_reads_a_folder(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "cars")
    ds = load_dataset(root)
    assert ds.format == "labelme"
    assert ds.class_names == ["scratch", "dent", "rust"]
    assert [s.name for s in ds.samples] == ["car_1.jpg", "car_2.png"]
    one, two = ds.samples
    # line, point and linestrip have no area; the two group_id=1 parts are one object
    assert [r.label for r in one.regions] == ["scratch", "dent", "rust", "dent"]
    assert len(one.regions[3].polygons) == 2 and one.regions[3].attributes["group_id"] == 1
    np.testing.assert_allclose(one.regions[0].polygons[0], [[5, 5], [25, 5], [25, 20], [5, 20]])
    assert one.regions[1].bbox() == (20.0, 10.0, 10.0, 15.0)
    x, y, w, h = one.regions[2].bbox()
    assert abs(x - 12) < 0.1 and abs(w - 16) < 0.1 and abs(y - 27) < 0.1
    index = ds.class_map.index()
    m = semantic_mask(one, index)
    assert m[10, 10] == index["scratch"] and m[15, 22] == index["dent"]  # the later rectangle covers
    assert m[35, 20] == index["rust"] and m[40, 45] == index["dent"] and m[40, 58] == index["dent"]
    assert m[40, 52] == 0 and m[2, 2] == 0 and m[42, 5] == 0


def test_embedded_image_and_void_pixels(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "cars")
    ds = load_dataset(root / "car_2.json")
    assert ds.format == "labelme"
    (two,) = ds.samples
    assert two.image_path == root / "car_2.png" and not two.image_path.exists()
    assert two.image_data == png_bytes() and (two.width, two.height) == (W, H)
    assert two.load_image()[0, 0].tolist() == [200, 30, 30]
    m = semantic_mask(two, ds.class_map.index())
    assert m[5, 5] == IGNORE_INDEX and m[35, 45] == ds.class_map.index()["rust"] and m[20, 30] == 0


def test_annotations_apart_from_images_and_windows_paths(tmp_path: Path) -> None:
    """ann/ and img/ side by side, imagePath written on Windows ('..\\img\\car_1.jpg')."""
    root = tmp_path / "set"
    (root / "ann").mkdir(parents=True)
    (root / "img").mkdir()
    Image.new("RGB", (W, H)).save(root / "img" / "car_1.jpg")
    Image.new("RGB", (W, H)).save(root / "img" / "car_9.jpg")
    (root / "ann" / "car_1.json").write_text(json.dumps(labelme_doc("..\\img\\car_1.jpg", car_1_shapes())))
    # a path from the annotator's machine: found by its bare name
    doc = labelme_doc("C:\\Users\\ann\\car_9.jpg", car_1_shapes())
    (root / "ann" / "car_9.json").write_text(json.dumps(doc))
    ds = load_dataset(root)
    assert ds.format == "labelme"
    assert [s.name for s in ds.samples] == ["img/car_1.jpg", "img/car_9.jpg"]


def test_labels_txt_fixes_the_class_order(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "cars")
    (root / "labels.txt").write_text("__ignore__\n_background_\nrust\ndent\nscratch\n")
    assert load_dataset(root).class_names == ["rust", "dent", "scratch"]
    (root / "labels.txt").write_text("__ignore__\n_background_\nrust\ndent\n")
    with pytest.raises(DatasetError, match="'scratch' is not declared"):
        load_dataset(root)


def test_mask_shape(tmp_path: Path) -> None:
    part = np.zeros((10, 10), np.uint8)
    part[2:7, 3:8] = 1  # rows 12..16, cols 13..17 once placed at (10, 10)
    buf = io.BytesIO()
    Image.fromarray(part * 255).save(buf, format="PNG")
    mask_shape = shape("dent", [[10.0, 10.0], [19.0, 19.0]], "mask")
    mask_shape["mask"] = base64.b64encode(buf.getvalue()).decode()
    root = tmp_path / "m"
    root.mkdir()
    Image.new("RGB", (W, H)).save(root / "car.jpg")
    (root / "car.json").write_text(json.dumps(labelme_doc("car.jpg", [mask_shape])))
    ds = load_dataset(root)
    (region,) = ds.samples[0].regions
    assert region.rle is not None and region.bbox() == (13.0, 12.0, 5.0, 5.0)
    m = semantic_mask(ds.samples[0], ds.class_map.index())
    assert m[14, 15] == 1 and m[11, 15] == 0 and int(m.sum()) == 25


def test_mask_on_an_implausibly_large_image_is_refused(tmp_path: Path) -> None:
    mask_shape = shape("dent", [[10.0, 10.0], [19.0, 19.0]], "mask")
    mask_shape["mask"] = base64.b64encode(png_bytes((10, 10), 255, "L")).decode()
    doc = labelme_doc("car.jpg", [mask_shape])
    doc["imageWidth"] = doc["imageHeight"] = 10**6  # painting on it would take a terabyte
    path = tmp_path / "car.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="too large"):
        load_dataset(path)


def test_broken_json_in_a_folder(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "cars")
    (root / "car_2.json").write_text('{"version": "5.2.1", "shapes": [')
    with pytest.raises(DatasetError, match="not valid JSON") as info:
        load_dataset(root)
    assert "car_2.json" in str(info.value)
    ds = load_dataset(root, strict=False)
    assert [s.name for s in ds.samples] == ["car_1.jpg"]
    assert len(ds.problems) == 1 and ds.problems[0].path.endswith("car_2.json")


def test_broken_single_file(tmp_path: Path) -> None:
    path = write_folder(tmp_path / "cars") / "car_1.json"
    path.write_text(path.read_text()[:200])
    with pytest.raises(DatasetError, match="not valid JSON") as info:
        load_dataset(path, format="labelme")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("bad, message", [
    (shape("dent", [[1.0, 1.0]], "rectangle"), "needs two"),
    (shape("dent", [[1.0, 1.0], [2.0, 2.0]]), "at least 3"),
    (shape("dent", [[1.0, 1.0], [1.0, 1.0]], "circle"), "radius 0"),
    (shape("dent", [[1.0, 1.0], [5.0, 5.0], [1.0, 9.0]], "hexagon"), "'hexagon' is not one LabelMe draws"),
    (shape("", [[1.0, 1.0], [5.0, 5.0], [1.0, 9.0]]), "has no label"),
])
def test_bad_shape_drops_only_itself(tmp_path: Path, bad: dict, message: str) -> None:
    root = write_folder(tmp_path / "cars")
    doc = json.loads((root / "car_1.json").read_text())
    doc["shapes"].append(bad)
    (root / "car_1.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(root)
    assert "car_1.json" in str(info.value) and "shape 9" in str(info.value)
    ds = load_dataset(root, strict=False)
    assert [s.name for s in ds.samples] == ["car_1.jpg", "car_2.png"]  # the file's other shapes are kept
    assert [r.label for r in ds.samples[0].regions] == ["scratch", "dent", "rust", "dent"]
    assert len(ds.problems) == 1 and ds.problems[0].dropped == "region"
    if message == "has no label":  # its shape is known, its class is not: void, not background
        assert semantic_mask(ds.samples[0], ds.class_map.index())[3, 3] == IGNORE_INDEX


def test_round_trip_through_coco(tmp_path: Path) -> None:
    coco = pytest.importorskip("masksmith.data.formats.coco")
    if not hasattr(coco, "write"):
        pytest.skip("the COCO writer is not there yet")
    ds = load_dataset(write_folder(tmp_path / "cars"))
    coco.write(ds, tmp_path / "coco")
    back = load_dataset(tmp_path / "coco", format="coco")
    assert back.class_names == ds.class_names
    assert [s.name for s in back.samples] == [s.name for s in ds.samples]
    for a, b in zip(ds.samples, back.samples, strict=True):
        assert [r.label for r in a.regions] == [r.label for r in b.regions]
        for ra, rb in zip(a.regions, b.regions, strict=True):
            np.testing.assert_allclose(np.concatenate(ra.polygons), np.concatenate(rb.polygons))
        ma, mb = semantic_mask(a, ds.class_map.index()), semantic_mask(b, back.class_map.index())
        keep = ma != IGNORE_INDEX  # COCO has no void pixels
        np.testing.assert_array_equal(ma[keep], mb[keep])


def test_detect(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "cars")
    assert labelme.detect(root) and labelme.detect(root / "car_1.json")
    other = tmp_path / "via.json"
    other.write_text(json.dumps({"a.jpg1": {"filename": "a.jpg", "size": 1, "regions": []}}))
    assert not labelme.detect(other) and not labelme.detect(tmp_path / "nowhere")


# ---------------------------------------------------------------- for the fuzz suite (test_fuzz.py)

def valid_doc() -> dict:
    mask_shape = shape("dent", [[10.0, 10.0], [19.0, 19.0]], "mask")
    mask_shape["mask"] = base64.b64encode(png_bytes((10, 10), 255, "L")).decode()
    shapes = [*car_1_shapes(), mask_shape, shape(labelme.IGNORE_LABEL, [[0.0, 0.0], [4.0, 4.0]], "rectangle")]
    return labelme_doc("car_1.jpg", shapes, png_bytes())


def write_fuzz_folder(root: Path) -> None:
    Image.new("RGB", (W, H)).save(root / "car_1.jpg")
    (root / "car_1.json").write_text(json.dumps(valid_doc(), indent=2))


# labels with instance suffixes, LabelMe's own special labels; imageData as scripts leave it
LABELS = st.sampled_from(["car", "car-1", "car-2", "person-10", "-1", "a-b-3", "", "__ignore__", "_background_"])
IMAGE_DATA = st.sampled_from([None, base64.b64encode(png_bytes((16, 12))).decode(), "@@not base64@@", 7])
FUZZ_EXAMPLES = [
    Example("folder", write_fuzz_folder, files=("car_1.json", "car_1.jpg"), points=("", "car_1.json"),
            options=lambda root: st.fixed_dictionaries({}, optional={
                "instance_suffix": st.sampled_from(["auto", True, False, "maybe"]),
                "labels": st.sampled_from([["scratch", "dent", "rust"], ["car"], [], "labels.txt"])}),
            values=NAMES | LABELS | IMAGE_DATA, moves=("train/car_1.json", "ann/car_1.json", "img/car_1.jpg",
                                                       "car_2.json", "labels.txt")),
]


# ---------------------------------------------------------------- files as people have them

@pytest.mark.parametrize("image_path", [None, "", "car_7", "car_7.json"])
def test_embedded_image_stands_in_when_image_path_names_no_image(tmp_path: Path, image_path: Any) -> None:
    """imagePath missing, not an image file, or the JSON itself (scripts write all three): imageData is used."""
    root = tmp_path / "cars"
    root.mkdir()
    doc = labelme_doc("x", [shape("rust", [[30.0, 30.0], [60.0, 30.0], [45.0, 45.0]])], png_bytes())
    doc["imagePath"] = image_path
    if image_path is None:
        del doc["imagePath"]
    (root / "car_7.json").write_text(json.dumps(doc))
    ds = load_dataset(root)
    (one,) = ds.samples
    assert one.image_path is None and one.image_data == png_bytes() and ds.problems == []
    assert one.load_image()[0, 0].tolist() == [200, 30, 30] and (one.width, one.height) == (W, H)


def test_legacy_instance_suffix_is_one_class_two_objects(tmp_path: Path) -> None:
    """labelme's instance examples label objects person-1, person-2 (its converters read the class before the
    '-'); a label kept in parts (person-2 twice) is one object."""
    root = tmp_path / "people"
    root.mkdir()
    Image.new("RGB", (W, H)).save(root / "street.jpg")
    shapes = [shape("person-1", [[2.0, 2.0], [20.0, 2.0], [20.0, 20.0]]),
              shape("person-2", [[30.0, 2.0], [40.0, 2.0], [40.0, 10.0]]),
              shape("person-2", [[30.0, 20.0], [40.0, 20.0], [40.0, 30.0]]),
              shape("bus", [[45.0, 30.0], [60.0, 30.0], [60.0, 45.0]])]
    (root / "street.json").write_text(json.dumps(labelme_doc("street.jpg", shapes)))
    ds = load_dataset(root)
    assert ds.class_names == ["person", "bus"]
    people = [r for r in ds.samples[0].regions if r.label == "person"]
    assert [r.attributes["instance"] for r in people] == [1, 2] and len(people[1].polygons) == 2
    assert any("legacy instance suffix" in str(n) for n in ds.notes)
    assert load_dataset(root, instance_suffix=False).class_names == ["person-1", "person-2", "bus"]
    # a single 'model-3' is a class name, not an object number
    (root / "street.json").write_text(json.dumps(labelme_doc("street.jpg", [shape("model-3", shapes[0]["points"])])))
    assert load_dataset(root).class_names == ["model-3"]


def test_lines_and_points_are_reported_not_silently_dropped(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "cars")
    ds = load_dataset(root)
    (note,) = [n for n in ds.notes if "no area" in str(n)]
    assert note.count == 3 and str(note).startswith("3 line or point shape(s) skipped")
    assert ds.samples[0].skipped == 3


def test_image_path_cannot_climb_out_of_the_data_set(tmp_path: Path) -> None:
    """'../../secret.jpg' is never opened: the image is looked up by its base name under the data set folder."""
    outside = tmp_path / "secret.jpg"
    Image.new("RGB", (W, H), (255, 0, 0)).save(outside)
    root = tmp_path / "a" / "set"
    root.mkdir(parents=True)
    (root / "car.json").write_text(json.dumps(labelme_doc("../../secret.jpg", car_1_shapes())))
    for absolute in ("/home/ann/secret.jpg", f"file:{outside}", "C:\\Users\\ann\\secret.jpg"):
        (root / "abs.json").write_text(json.dumps(labelme_doc(absolute, car_1_shapes())))
        ds = load_dataset(root, need_pixels=False)
        assert all(s.image_path is not None and root in s.image_path.parents for s in ds.samples)
        assert all(s.image_missing for s in ds.samples)
    Image.new("RGB", (W, H)).save(root / "secret.jpg")  # the same base name inside: that one is used
    ds = load_dataset(root)
    assert {s.image_path for s in ds.samples} == {root / "secret.jpg"}


def test_split_sub_folders_and_an_annotations_folder_beside_the_images(tmp_path: Path) -> None:
    root = tmp_path / "set"
    for split in ("train", "val"):
        (root / "ann" / split).mkdir(parents=True)
        (root / "img").mkdir(exist_ok=True)
        Image.new("RGB", (W, H)).save(root / "img" / f"{split}.jpg")
        (root / "ann" / split / f"{split}.json").write_text(json.dumps(labelme_doc(f"../../img/{split}.jpg",
                                                                                   car_1_shapes())))
    ds = load_dataset(root / "ann")  # the annotations folder: images are looked for in its parent
    assert [(s.name, s.split) for s in ds.samples] == [("img/train.jpg", "train"), ("img/val.jpg", "val")]
