"""VGG Image Annotator: VIA 2 JSON export, VIA 1 JSON (regions keyed by index), VIA 2 project file, VIA CSV
export and VIA 3 project, in the layouts those versions write."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzzing import NAMES, Example
from hypothesis import strategies as st
from PIL import Image

from masksmith.core.errors import DatasetError
from masksmith.data import load_dataset
from masksmith.data.formats import via
from masksmith.data.rasterize import semantic_mask

W, H = 64, 48
FILE_ATTRS = {"caption": "", "public_domain": "no", "image_url": ""}


def save_images(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("car_1.jpg", "car_2.png", "car_3.jpg"):
        Image.new("RGB", (W, H), (40, 80, 120)).save(root / name)


def polygon(xs: list[float], ys: list[float], kind: str = "polygon") -> dict:
    return {"name": kind, "all_points_x": xs, "all_points_y": ys}


def regions_by_image(label: str = "name") -> dict[str, list[dict]]:
    """Shape and region attributes of each image, as VIA 2 keeps them."""
    def region(shape: dict, cls: str) -> dict:
        return {"shape_attributes": shape, "region_attributes": {label: cls, "occluded": {"yes": True}}}

    return {
        "car_1.jpg": [
            region(polygon([5, 25, 25, 5], [5, 5, 20, 20]), "scratch"),
            region({"name": "rect", "x": 30, "y": 10, "width": 20, "height": 15}, "dent"),
            region({"name": "point", "cx": 3, "cy": 3}, "scratch"),
        ],
        "car_2.png": [
            region({"name": "circle", "cx": 20, "cy": 24, "r": 10}, "rust"),
            region({"name": "ellipse", "cx": 48, "cy": 24, "rx": 10, "ry": 5, "theta": math.pi / 2}, "dent"),
            region(polygon([2, 12, 2], [36, 42, 46], "polyline"), "scratch"),
        ],
        "car_3.jpg": [],
    }


def via2_metadata(label: str = "name") -> dict[str, dict]:
    sizes = {"car_1.jpg": 21548, "car_2.png": 30417, "car_3.jpg": 19876}
    return {f"{name}{sizes[name]}": {"filename": name, "size": sizes[name], "regions": regions,
                                     "file_attributes": dict(FILE_ATTRS)}
            for name, regions in regions_by_image(label).items()}


def write_json(root: Path, doc: Any, name: str = "via_region_data.json") -> Path:
    save_images(root)
    path = root / name
    path.write_text(json.dumps(doc))
    return path


def via2_project(label: str = "name", region_label: str = "__via_region_id__") -> dict:
    """What VIA 2.0.10 saves with Project > Save."""
    return {
        "_via_settings": {
            "ui": {"annotation_editor_height": 25, "annotation_editor_fontsize": 0.8, "leftsidebar_width": 18,
                   "image_grid": {"img_height": 80, "rshape_fill": "none", "rshape_fill_opacity": 0.3,
                                  "rshape_stroke": "yellow", "rshape_stroke_width": 2,
                                  "show_region_shape": True, "show_image_policy": "all"},
                   "image": {"region_label": region_label, "region_color": "__via_default_region_color__",
                             "region_label_font": "10px Sans",
                             "on_image_annotation_editor_placement": "NEAR_REGION"}},
            "core": {"buffer_size": 18, "filepath": {}, "default_filepath": "/home/ann/Pictures/cars/"},
            "project": {"name": "car_parts"}},
        "_via_img_metadata": via2_metadata(label),
        "_via_attributes": {
            "region": {label: {"type": "dropdown", "description": "damage",
                               "options": {"dent": "Dent", "scratch": "Scratch", "rust": "Rust"},
                               "default_options": {}},
                       "occluded": {"type": "checkbox", "description": "", "options": {"yes": ""},
                                    "default_options": {}}},
            "file": {"caption": {"type": "text", "description": "", "default_value": ""}}},
        "_via_data_format_version": "2.0.10",
        "_via_image_id_list": ["car_3.jpg19876", "car_2.png30417", "car_1.jpg21548"],
    }


def check_geometry(ds: Any) -> None:
    """The shapes of regions_by_image(), whatever VIA layout carried them."""
    by_name = {s.name: s for s in ds.samples}
    assert set(by_name) == {"car_1.jpg", "car_2.png", "car_3.jpg"}
    one, two, three = by_name["car_1.jpg"], by_name["car_2.png"], by_name["car_3.jpg"]
    assert [r.label for r in one.regions] == ["scratch", "dent"]  # the point has no area
    assert [r.label for r in two.regions] == ["rust", "dent", "scratch"]
    assert three.regions == []
    assert (one.width, one.height) == (W, H)  # VIA stores no size: read from the image
    np.testing.assert_allclose(one.regions[0].polygons[0], [[5, 5], [25, 5], [25, 20], [5, 20]])
    assert one.regions[1].bbox() == (30.0, 10.0, 20.0, 15.0)
    assert one.regions[0].attributes == {"occluded": {"yes": True}}
    index = ds.class_map.index()
    m1, m2 = semantic_mask(one, index), semantic_mask(two, index)
    assert m1[10, 10] == index["scratch"] and m1[15, 40] == index["dent"] and m1[40, 10] == 0
    assert m2[24, 20] == index["rust"] and m2[16, 20] == index["rust"] and m2[24, 33] == 0
    # the ellipse is turned by theta = pi/2: 10 px tall, 5 px wide
    assert m2[32, 48] == index["dent"] and m2[24, 56] == 0
    assert m2[41, 5] == index["scratch"]  # the polyline, closed into a triangle
    assert semantic_mask(three, index).max() == 0


def test_via2_json_export(tmp_path: Path) -> None:
    path = write_json(tmp_path / "cars", via2_metadata())
    for where in (path, path.parent):
        ds = load_dataset(where)
        assert ds.format == "via"
        assert ds.class_names == ["scratch", "dent", "rust"]  # first seen: VIA declares no classes here
        check_geometry(ds)


def test_via1_json_with_regions_keyed_by_index(tmp_path: Path) -> None:
    doc = via2_metadata()
    for entry in doc.values():  # VIA 1.0.x: regions {"0": ..., "1": ...}, fileref and base64_img_data
        entry["regions"] = {str(i): r for i, r in enumerate(entry["regions"])}
        entry.update(fileref="", base64_img_data="")
    ds = load_dataset(write_json(tmp_path / "v1", doc))
    assert ds.format == "via"
    check_geometry(ds)


def test_via2_project_file(tmp_path: Path) -> None:
    ds = load_dataset(write_json(tmp_path / "p", via2_project(), "car_parts.json"))
    assert ds.format == "via"
    assert ds.class_names == ["dent", "scratch", "rust"]  # the dropdown's options, in their order
    assert [s.name for s in ds.samples] == ["car_3.jpg", "car_2.png", "car_1.jpg"]  # _via_image_id_list
    check_geometry(ds)


def test_project_region_label_setting_names_the_class_attribute(tmp_path: Path) -> None:
    path = write_json(tmp_path / "p", via2_project(label="damage", region_label="damage"), "car_parts.json")
    ds = load_dataset(path)
    assert ds.class_names == ["dent", "scratch", "rust"]
    check_geometry(ds)


def test_checkbox_attribute_gives_the_ticked_option(tmp_path: Path) -> None:
    doc = via2_metadata()
    for entry in doc.values():
        for r in entry["regions"]:
            cls = r["region_attributes"].pop("name")
            r["region_attributes"]["type"] = {c: c == cls for c in ("scratch", "dent", "rust")}
    ds = load_dataset(write_json(tmp_path / "c", doc), label_attribute="type")
    check_geometry(ds)
    first = next(iter(doc.values()))["regions"][0]["region_attributes"]["type"]
    first["dent"] = True  # two boxes ticked: which class?
    with pytest.raises(DatasetError, match="several options of the 'type' attribute"):
        load_dataset(write_json(tmp_path / "c2", doc), label_attribute="type")


def test_missing_label_attribute_names_it_and_the_alternatives(tmp_path: Path) -> None:
    doc = via2_metadata()
    attrs = doc["car_2.png30417"]["regions"][1]["region_attributes"]
    attrs["type"] = attrs.pop("name")
    path = write_json(tmp_path / "m", doc)
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    text = str(info.value)
    assert "no 'name' attribute" in text and "label_attribute=" in text and "'type'" in text
    assert "via_region_data.json" in text and "car_2.png" in text
    ds = load_dataset(path, strict=False)
    # the region without a class is dropped alone and its pixels become void; car_2 keeps its other regions
    two = {s.name: s for s in ds.samples}["car_2.png"]
    assert [r.label for r in two.regions] == ["rust", "scratch"]
    assert len(ds.problems) == 1 and "'name'" in ds.problems[0].message and ds.problems[0].dropped == "region"
    assert semantic_mask(two, ds.class_map.index())[32, 48] == 255


def test_label_attribute_option(tmp_path: Path) -> None:
    ds = load_dataset(write_json(tmp_path / "o", via2_metadata(label="damage")), label_attribute="damage")
    check_geometry(ds)
    with pytest.raises(DatasetError, match="'damage'"):
        load_dataset(write_json(tmp_path / "o2", via2_metadata(label="damage")))


def csv_cell(value: Any) -> str:
    return '"' + json.dumps(value, separators=(",", ":")).replace('"', '""') + '"'


def write_csv(root: Path, header: str = via.CSV_HEADER) -> Path:
    """What VIA 2 writes with Annotation > Export as csv: a row per region; an image without any gets one."""
    save_images(root)
    lines = [header]
    for name, regions in regions_by_image().items():
        size = 1000 + len(name)
        if not regions:
            lines.append(f'{name},{size},"{{}}",0,0,"{{}}","{{}}"')
        for k, r in enumerate(regions):
            lines.append(f"{name},{size},{csv_cell(FILE_ATTRS)},{len(regions)},{k},"
                         f"{csv_cell(r['shape_attributes'])},{csv_cell(r['region_attributes'])}")
    path = root / "via_export_csv.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("header", [via.CSV_HEADER, "#" + via.CSV_HEADER])
def test_csv_export(tmp_path: Path, header: str) -> None:
    path = write_csv(tmp_path / "csv", header)
    for where in (path, path.parent):
        ds = load_dataset(where)
        assert ds.format == "via"
        assert ds.class_names == ["scratch", "dent", "rust"]
        check_geometry(ds)


def test_csv_with_a_broken_json_cell(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "csv")
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace('""circle""', '""circle')
    path.write_text("\n".join(lines))
    with pytest.raises(DatasetError, match="JSON column") as info:
        load_dataset(path)
    assert "car_2.png" in str(info.value) and "line 5" in str(info.value)
    ds = load_dataset(path, strict=False)
    # the row is one region: it is dropped, its image and the image's other rows are kept
    two = {s.name: s for s in ds.samples}["car_2.png"]
    assert [r.label for r in two.regions] == ["dent", "scratch"] and ds.problems[0].dropped == "region"


def via3_project() -> dict:
    """What VIA 3.0.x saves: shapes as [shape id, coordinates...], classes as option ids of attribute '1'."""
    def region(vid: str, xy: list[float], option: str) -> dict:
        return {"vid": vid, "flg": 0, "z": [], "xy": xy, "av": {"1": option, "2": "0"}}

    return {
        "project": {"pid": "__VIA_PROJECT_ID__", "rev": "__VIA_PROJECT_REV_ID__",
                    "rev_timestamp": "__VIA_PROJECT_REV_TIMESTAMP__", "pname": "car parts",
                    "creator": "VGG Image Annotator (http://www.robots.ox.ac.uk/~vgg/via)",
                    "created": 1649082838493, "data_format_version": "3.1.1", "vid_list": ["1", "2", "3"]},
        "config": {"file": {"loc_prefix": {"1": "", "2": "", "3": "", "4": ""}},
                   "ui": {"file_content_align": "center", "file_metadata_editor_visible": True,
                          "spatial_metadata_editor_visible": True, "spatial_region_label_attribute_id": "1",
                          "gtimeline_container_height": "45"}},
        "attribute": {
            "1": {"aname": "name", "anchor_id": "FILE1_Z0_XY1", "type": 3, "desc": "damage",
                  "options": {"0": "scratch", "1": "dent", "2": "rust"}, "default_option_id": ""},
            "2": {"aname": "occluded", "anchor_id": "FILE1_Z0_XY1", "type": 2, "desc": "",
                  "options": {"0": "yes"}, "default_option_id": ""},
            "3": {"aname": "caption", "anchor_id": "FILE1_Z0_XY0", "type": 1, "desc": "", "options": {},
                  "default_option_id": ""}},
        "file": {"1": {"fid": "1", "fname": "car_1.jpg", "type": 2, "loc": 1, "src": ""},
                 "2": {"fid": "2", "fname": "car_2.png", "type": 2, "loc": 1, "src": ""},
                 "3": {"fid": "3", "fname": "car_3.jpg", "type": 2, "loc": 1, "src": ""}},
        "view": {"1": {"fid_list": ["1"]}, "2": {"fid_list": ["2"]}, "3": {"fid_list": ["3"]}},
        "metadata": {
            "1_kmn0Dquz": region("1", [7, 5, 5, 25, 5, 25, 20, 5, 20], "0"),
            "1_Q9d1Ztcn": region("1", [2, 30, 10, 20, 15], "1"),
            "1_pxJb3ZXo": region("1", [1, 3, 3], "0"),
            "1_fileattr": {"vid": "1", "flg": 0, "z": [], "xy": [], "av": {"3": "a red car"}},
            "2_q7mZs0Qa": region("2", [9, 20, 14, 10, 24, 20, 34], "2"),  # extreme circle: (20, 24), r 10
            "2_dVb1Zf0R": region("2", [8, 40, 24, 48, 14, 56, 24, 48, 34], "1"),  # extreme rectangle
            "2_n4rsPz1q": region("2", [6, 2, 36, 12, 42, 2, 46], "0"),
        },
    }


def test_via3_project(tmp_path: Path) -> None:
    path = write_json(tmp_path / "v3", via3_project(), "car_parts_via3.json")
    ds = load_dataset(path)
    assert ds.format == "via"
    assert ds.class_names == ["scratch", "dent", "rust"]
    by_name = {s.name: s for s in ds.samples}
    one, two = by_name["car_1.jpg"], by_name["car_2.png"]
    assert [r.label for r in one.regions] == ["scratch", "dent"]
    assert [r.label for r in two.regions] == ["rust", "dent", "scratch"]
    assert by_name["car_3.jpg"].regions == []
    np.testing.assert_allclose(one.regions[0].polygons[0], [[5, 5], [25, 5], [25, 20], [5, 20]])
    assert two.regions[1].bbox() == (40.0, 14.0, 16.0, 20.0)
    assert one.regions[0].attributes == {"occluded": "0"}
    index = ds.class_map.index()
    m1, m2 = semantic_mask(one, index), semantic_mask(two, index)
    assert m1[10, 10] == index["scratch"] and m1[15, 40] == index["dent"]
    assert m2[24, 20] == index["rust"] and m2[24, 33] == 0 and m2[30, 50] == index["dent"]


def test_via3_without_the_label_attribute(tmp_path: Path) -> None:
    doc = via3_project()
    doc["attribute"]["1"]["aname"] = "damage"
    doc["config"]["ui"].pop("spatial_region_label_attribute_id")
    path = write_json(tmp_path / "v3", doc, "car_parts_via3.json")
    with pytest.raises(DatasetError, match="no 'name' attribute") as info:
        load_dataset(path)
    assert "'damage'" in str(info.value)
    assert load_dataset(path, label_attribute="damage").class_names == ["scratch", "dent", "rust"]


def test_broken_json_names_the_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "b", via2_metadata())
    path.write_text(path.read_text()[:300])
    with pytest.raises(DatasetError, match="not valid JSON") as info:
        load_dataset(path, format="via")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("shape, message", [
    ({"name": "polygon", "all_points_x": [1, 2, 3], "all_points_y": [1, 2]}, "equal length"),
    ({"name": "polygon", "all_points_x": [1, 2], "all_points_y": [1, 2]}, "at least 3"),
    ({"name": "rect", "x": 1, "y": 1, "width": "wide", "height": 3}, "not a number"),
    ({"name": "hexagon"}, "'hexagon' is not one VIA draws"),
])
def test_bad_shape_drops_only_its_region(tmp_path: Path, shape: dict, message: str) -> None:
    doc = via2_metadata()
    bad = {"shape_attributes": shape, "region_attributes": {"name": "dent"}}
    doc["car_2.png30417"]["regions"].append(bad)
    path = write_json(tmp_path / "s", doc)
    with pytest.raises(DatasetError, match=message):
        load_dataset(path)
    ds = load_dataset(path, strict=False)
    assert sorted(s.name for s in ds.samples) == ["car_1.jpg", "car_2.png", "car_3.jpg"]
    two = {s.name: s for s in ds.samples}["car_2.png"]
    assert [r.label for r in two.regions] == ["rust", "dent", "scratch"]
    assert len(ds.problems) == 1 and "car_2.png" in ds.problems[0].item and ds.problems[0].dropped == "region"


def test_round_trip_through_coco(tmp_path: Path) -> None:
    coco = pytest.importorskip("masksmith.data.formats.coco")
    if not hasattr(coco, "write"):
        pytest.skip("the COCO writer is not there yet")
    ds = load_dataset(write_json(tmp_path / "r", via2_metadata()))
    coco.write(ds, tmp_path / "coco")
    back = load_dataset(tmp_path / "coco", format="coco")
    assert back.class_names == ds.class_names
    assert [s.name for s in back.samples] == [s.name for s in ds.samples]
    for a, b in zip(ds.samples, back.samples, strict=True):
        assert [r.label for r in a.regions] == [r.label for r in b.regions]
        for ra, rb in zip(a.regions, b.regions, strict=True):
            np.testing.assert_allclose(np.concatenate(ra.polygons), np.concatenate(rb.polygons))
        np.testing.assert_array_equal(semantic_mask(a, ds.class_map.index()),
                                      semantic_mask(b, back.class_map.index()))


def test_detect(tmp_path: Path) -> None:
    assert via.detect(write_json(tmp_path / "a", via2_metadata()))
    assert via.detect(write_csv(tmp_path / "b"))
    assert via.detect(write_json(tmp_path / "c", via3_project(), "p.json"))
    other = tmp_path / "d" / "labelme.json"
    other.parent.mkdir()
    other.write_text(json.dumps({"version": "5.2.1", "shapes": [], "imagePath": "a.jpg"}))
    assert not via.detect(other) and not via.detect(other.parent)


# ---------------------------------------------------------------- for the fuzz suite (test_fuzz.py)

# CSV cells as VIA versions write them: JavaScript's `undefined`, VIA 1.0's key=value pairs, escaped separators
CELLS = st.one_of(
    st.text(alphabet='{}[]:;,="\\ undefinamex0123456789', max_size=40),
    st.sampled_from(['{"name":undefined}', '{"name":"rect","x":1,"y":1,"width":undefined,"height":3}',
                     "name=rect;x=1;y=1;width=4;height=3;", "name=polygon;all_points_x=[1:5:3];all_points_y=[1:1:4]",
                     r"name=rect\;x=1\;y=2", "name=car;", "=", ";;", "[1:2", '"{}"', "{}", "", "#filename",
                     "undefined"]))
SHAPE_NAMES = st.sampled_from(["polygon", "polyline", "rect", "circle", "ellipse", "point", "square", ""])
VIA_OPTIONS = st.fixed_dictionaries({}, optional={"label_attribute": st.sampled_from([None, "name", "type", ""])})
VIA_FILES = ("car_1.jpg", "car_2.png")
FUZZ_EXAMPLES = [
    Example(name, lambda root, doc=doc, file=file: write_json(root, doc(), file), files=(file, *VIA_FILES),
            points=(file, ""), options=lambda root: VIA_OPTIONS, values=NAMES | CELLS | SHAPE_NAMES,
            moves=("images/car_1.jpg", "car_1.JPG", "sub/" + file))
    for name, doc, file in [("json export", via2_metadata, "via_region_data.json"),
                            ("project", via2_project, "car_parts.json"),
                            ("VIA 3 project", via3_project, "car_parts_via3.json")]
] + [
    Example(name, lambda root, header=header: write_csv(root, header), files=("via_export_csv.csv", *VIA_FILES),
            points=("via_export_csv.csv", ""), options=lambda root: VIA_OPTIONS, values=NAMES | CELLS | SHAPE_NAMES,
            moves=("images/car_1.jpg", "via_export_csv.CSV"))
    for name, header in [("csv export", via.CSV_HEADER), ("VIA 1 csv", "#" + via.CSV_HEADER)]
]


def test_csv_with_javascript_undefined_reads_it_as_empty(tmp_path: Path) -> None:
    """VIA's CSV export writes `undefined` (JSON.stringify of a missing value) into attribute columns."""
    path = write_csv(tmp_path / "csv")
    lines = path.read_text().splitlines()
    lines = [ln.replace('""occluded"":{""yes"":true}', '""occluded"":undefined') for ln in lines]
    lines.append('car_3.jpg,19876,"{""caption"":undefined}",1,0,"{""name"":""rect"",""x"":1,""y"":1,""width"":5,'
                 '""height"":5}","{""name"":undefined}"')
    path.write_text("\n".join(lines) + "\n")
    ds = load_dataset(path, strict=False)
    by_name = {s.name: s for s in ds.samples}
    assert [r.label for r in by_name["car_1.jpg"].regions] == ["scratch", "dent"]
    assert by_name["car_1.jpg"].regions[0].attributes == {"occluded": ""}
    # the region whose class is `undefined` has an empty class: dropped alone, named in the problem
    assert by_name["car_3.jpg"].regions == [] and "'name' attribute is empty" in str(ds.problems[0])


def test_via_1_0_key_value_csv(tmp_path: Path) -> None:
    """VIA 1.0.x wrote '#filename,...' and attributes as key=value pairs (';' or '\\;'), arrays as [1:2:3]."""
    save_images(tmp_path / "v10")
    rows = ["#filename,file_size,file_attributes,region_count,region_id,region_shape_attributes,region_attributes",
            'car_1.jpg,21548,"",2,0,"name=polygon;all_points_x=[5:25:25:5];all_points_y=[5:5:20:20];",'
            '"name=scratch;"',
            'car_1.jpg,21548,"",2,1,"name=rect\\;x=30\\;y=10\\;width=20\\;height=15","name=dent"',
            'car_3.jpg,19876,"",0,0,"",""']
    path = tmp_path / "v10" / "via_region_data.csv"
    path.write_text("\n".join(rows) + "\n")
    ds = load_dataset(path)
    assert ds.format == "via" and ds.class_names == ["scratch", "dent"]
    one = {s.name: s for s in ds.samples}["car_1.jpg"]
    np.testing.assert_allclose(one.regions[0].polygons[0], [[5, 5], [25, 5], [25, 20], [5, 20]])
    assert one.regions[1].bbox() == (30.0, 10.0, 20.0, 15.0)


def test_points_are_reported_as_skipped(tmp_path: Path) -> None:
    ds = load_dataset(write_json(tmp_path / "cars", via2_metadata()))
    (note,) = [n for n in ds.notes if "no area" in str(n)]
    assert note.count == 1 and "car_1.jpg, region 3" in str(note)


def test_via3_video_project_is_refused_with_the_reason(tmp_path: Path) -> None:
    doc = via3_project()
    doc["file"] = {"1": {"fid": "1", "fname": "clip.mp4", "type": 4, "loc": 1, "src": ""}}
    doc["view"] = {"1": {"fid_list": ["1"]}}
    doc["project"]["vid_list"] = ["1"]
    doc["metadata"] = {"1_a": {"vid": "1", "flg": 0, "z": [2.5, 4.0], "xy": [], "av": {"1": "0"}}}
    path = write_json(tmp_path / "video", doc, "via_video.json")
    with pytest.raises(DatasetError, match="VIA 3 video project .1 video file.*no images"):
        load_dataset(path)
    mixed = via3_project()
    mixed["file"]["4"] = {"fid": "4", "fname": "clip.mp4", "type": 4, "loc": 1, "src": ""}
    mixed["view"]["4"] = {"fid_list": ["4"]}
    ds = load_dataset(write_json(tmp_path / "mixed", mixed, "via_mixed.json"))
    assert len(ds.samples) == 3 and any("video or audio file" in str(n) and n.count == 1 for n in ds.notes)
