"""Property tests over the reading paths added for files as people have them: whatever the file holds, every
reader raises nothing but masksmith's own errors (results files, string ids and box-only COCO; VIA CSV cells
with `undefined` and VIA 1.0 key=value pairs; VoTT 1 frames and video frame assets; LabelMe imagePath and
imageData in every combination, instance suffixes; CVAT skipped shapes and video metadata; mask folder layouts
with options; VOC files pointed at), and the images found never lie outside the data set's folder."""

from __future__ import annotations

import base64
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from masksmith.core.errors import MasksmithError
from masksmith.data import load_dataset

W, H = 16, 12
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
NAMES = st.sampled_from(["a.jpg", "b.png", "../a.jpg", "/home/u/a.jpg", "file:/Users/x/b.png", "C:\\x\\a.jpg",
                         "sub/a.jpg", "", "a", "x.json", "clip.mp4#t=1.5", "a.jpg\\..\\..\\b.png", "é é.jpg"])
SCALARS = st.none() | st.booleans() | st.integers(-3, 70) | st.floats(allow_nan=True) | st.text(max_size=6) | NAMES
VALUES = st.recursive(SCALARS, lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=4), c,
                                                                                       max_size=4), max_leaves=12)


def png(color: Any = (200, 0, 0), size: tuple[int, int] = (W, H)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def images_under(root: Path, ds: Any) -> None:
    """Every image a sample points at lies under the data set's root."""
    for s in ds.samples:
        if s.image_path is not None:
            assert ds.root in s.image_path.parents or s.image_path == ds.root, s.image_path


def read(path: Path, **options: Any) -> None:
    for strict in (True, False):
        for need_pixels in (True, False):
            with contextlib.suppress(MasksmithError):
                images_under(path, load_dataset(path, strict=strict, need_pixels=need_pixels, **options))


def folder(tmp_path_factory, name: str) -> Path:
    root = tmp_path_factory.mktemp(name)
    for image in ("a.jpg", "b.png"):
        (root / image).write_bytes(png())
    return root


result = st.fixed_dictionaries({"image_id": st.one_of(st.integers(0, 4), st.sampled_from(["1", "2", "a", ""]),
                                                      VALUES),
                                "category_id": st.one_of(st.integers(0, 4), VALUES)},
                               optional={"score": st.one_of(st.floats(0, 1), VALUES),
                                         "bbox": st.one_of(st.lists(st.integers(-2, 20), min_size=4, max_size=4),
                                                           VALUES),
                                         "segmentation": VALUES})


@FUZZ
@given(results=st.lists(result, max_size=5), against=st.sampled_from(["none", "gt", "folder"]),
       boxes=st.booleans())
def test_coco_results_files(tmp_path_factory, results: list, against: str, boxes: bool) -> None:
    root = folder(tmp_path_factory, "res")
    (root / "1.jpg").write_bytes(png())
    gt = {"images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H},
                     {"id": "2", "file_name": "b.png", "width": W, "height": H}],
          "annotations": [], "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "bus"}]}
    (root / "gt.json").write_text(json.dumps(gt))
    path = root / "results.json"
    path.write_text(json.dumps(results))
    options = {"gt": {"images": str(root / "gt.json")}, "folder": {"images": str(root)}, "none": {}}[against]
    read(path, boxes_as_masks=boxes, **options)


@FUZZ
@given(annotations=st.lists(st.fixed_dictionaries({"id": st.integers(0, 9), "image_id": VALUES,
                                                   "category_id": st.sampled_from([1, 2, "1", None]),
                                                   "bbox": VALUES, "segmentation": VALUES}), max_size=5),
       ids=st.lists(st.one_of(st.integers(0, 3), st.sampled_from(["0", "1", " 2", "x"])), min_size=1, max_size=3),
       names=st.lists(NAMES, min_size=1, max_size=3), boxes=st.booleans())
def test_coco_string_ids_and_box_only(tmp_path_factory, annotations: list, ids: list, names: list,
                                      boxes: bool) -> None:
    root = folder(tmp_path_factory, "coco")
    doc = {"images": [{"id": i, "file_name": n, "width": W, "height": H} for i, n in zip(ids, names, strict=False)],
           "annotations": annotations, "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "bus"}]}
    (root / "annotations.json").write_text(json.dumps(doc))
    read(root / "annotations.json", boxes_as_masks=boxes)


CELL = st.one_of(
    st.text(alphabet='{}[]:;,="\\ undefinamex0123456789', max_size=40),
    st.sampled_from(['{"name":undefined}', '{"name":"rect","x":1,"y":1,"width":undefined,"height":3}',
                     "name=rect;x=1;y=1;width=4;height=3;", "name=polygon;all_points_x=[1:5:3];all_points_y=[1:1:4]",
                     r"name=rect\;x=1\;y=2", "name=car;", "=", ";;", "[1:2", '"{}"', "{}", ""]))


@FUZZ
@given(rows=st.lists(st.tuples(NAMES, CELL, CELL), max_size=5), legacy=st.booleans())
def test_via_csv_cells(tmp_path_factory, rows: list, legacy: bool) -> None:
    root = folder(tmp_path_factory, "via")
    header = ("#" if legacy else "") + "filename,file_size,file_attributes,region_count,region_id," \
                                       "region_shape_attributes,region_attributes"
    lines = [header]
    for k, (name, shape, attrs) in enumerate(rows):
        cells = [name, "10", '""', str(len(rows)), str(k), shape, attrs]
        lines.append(",".join('"' + c.replace('"', '""') + '"' if "," in c or '"' in c else c for c in cells))
    (root / "via_region_data.csv").write_text("\n".join(lines) + "\n")
    read(root / "via_region_data.csv")


@FUZZ
@given(frames=st.dictionaries(st.one_of(NAMES, st.sampled_from(["0", "1", "7"])),
                              st.lists(st.one_of(VALUES, st.fixed_dictionaries(
                                  {"x1": st.integers(-5, 40), "y1": st.integers(-5, 40), "x2": VALUES,
                                   "y2": st.integers(-5, 40), "width": st.sampled_from([0, W, 2 * W, None]),
                                   "height": st.sampled_from([0, H, 2 * H, "x"]),
                                   "type": st.sampled_from(["Rectangle", "Point", "Square", "Polygon", None]),
                                   "tags": st.one_of(st.lists(st.sampled_from(["car", "bus", ""]), max_size=2),
                                                     VALUES)})), max_size=3), max_size=4),
       visited=VALUES, tags=VALUES, video=st.booleans())
def test_vott1_frames(tmp_path_factory, frames: dict, visited: Any, tags: Any, video: bool) -> None:
    root = folder(tmp_path_factory, "vott1")
    (root / "photos").mkdir()
    (root / "photos" / "c.jpg").write_bytes(png())
    doc = {"frames": frames, "framerate": "1", "inputTags": tags, "suggestiontype": "track", "scd": False,
           "visitedFrames": visited, "tag_colors": ["#ff0000", 3]}
    name = "clip.mp4.json" if video else "photos.json"
    (root / name).write_text(json.dumps(doc))
    read(root / name)


@FUZZ
@given(assets=st.lists(st.fixed_dictionaries(
    {"name": NAMES, "type": st.sampled_from([1, 2, 3, None, "x"]), "path": st.one_of(NAMES, VALUES),
     "state": st.sampled_from([0, 1, 2]), "regions": st.lists(VALUES, max_size=2)}), max_size=4))
def test_vott2_video_frames_and_source_folders(tmp_path_factory, assets: list) -> None:
    project = tmp_path_factory.mktemp("vott2")
    out = project / "target" / "vott-json-export"
    out.mkdir(parents=True)
    (project / "source").mkdir()
    (project / "source" / "a.jpg").write_bytes(png())
    (out / "clip.mp4#t=1.5").write_bytes(png())
    entries = {str(k): {"asset": {"id": str(k), "name": a["name"], "type": a["type"], "path": a["path"],
                                  "state": a["state"], "size": {"width": W, "height": H}},
                        "regions": a["regions"]} for k, a in enumerate(assets)}
    doc = {"name": "p", "securityToken": "p Token", "tags": [{"name": "car", "color": "#ff0000"}],
           "assets": entries, "version": "2.2.0"}
    (out / "p-export.json").write_text(json.dumps(doc))
    read(out / "p-export.json")


LABELS = st.sampled_from(["car", "car-1", "car-2", "person-10", "-1", "a-b-3", "", "__ignore__", "_background_"])


@FUZZ
@given(image_path=st.one_of(NAMES, VALUES), image_data=st.sampled_from(["none", "png", "junk", "number"]),
       labels=st.lists(LABELS, max_size=4), suffix=st.sampled_from(["auto", True, False, "maybe"]),
       sub=st.sampled_from(["", "train/", "ann/"]))
def test_labelme_image_path_and_data(tmp_path_factory, image_path: Any, image_data: str, labels: list,
                                     suffix: Any, sub: str) -> None:
    root = folder(tmp_path_factory, "labelme")
    data = {"none": None, "png": base64.b64encode(png()).decode(), "junk": "@@not base64@@", "number": 7}
    shapes = [{"label": lab, "points": [[1, 1], [9, 1], [5, 8]], "group_id": None, "shape_type": "polygon",
               "flags": {}} for lab in labels]
    doc = {"version": "5.2.1", "flags": {}, "shapes": shapes, "imagePath": image_path,
           "imageData": data[image_data], "imageHeight": H, "imageWidth": W}
    (root / sub).mkdir(parents=True, exist_ok=True)
    (root / sub / "x.json").write_text(json.dumps(doc))
    read(root, instance_suffix=suffix)


SHAPES = st.sampled_from([
    '<polyline label="car" points="0,0;5,5"/>', '<points label="car" points="1,1"/>', '<tag label="car"/>',
    '<polygon label="car" points="1,1;9,1;5,8"/>', '<polygon label="car" points="1,1;x"/>', '<box label="car" '
    'xtl="1" ytl="1" xbr="9" ybr="9"/>', '<cuboid label="car"/>', '<skeleton label="s"><points label="1" '
    'points="1,1"/></skeleton>', '<mask label="car" rle="1,2" left="0" top="0" width="3" height="1"/>'])


@FUZZ
@given(images=st.lists(st.tuples(NAMES, st.sampled_from(["", "Train", "Validation", "x"]),
                                 st.lists(SHAPES, max_size=3)), max_size=3),
       mode=st.sampled_from(["", "<mode>interpolation</mode>", "<mode>annotation</mode>",
                             "<original_size><width>9</width><height>9</height></original_size>"]),
       track=st.booleans())
def test_cvat_skips_subsets_and_video(tmp_path_factory, images: list, mode: str, track: bool) -> None:
    from xml.sax.saxutils import quoteattr

    root = folder(tmp_path_factory, "cvat")
    body = "".join(f'<image id="{k}" name={quoteattr(n)} subset={quoteattr(s)} width="{W}" height="{H}">'
                   f'{"".join(shapes)}</image>' for k, (n, s, shapes) in enumerate(images))
    track_xml = '<track id="0" label="car"><box frame="0" xtl="1" ytl="1" xbr="5" ybr="5"/></track>' if track else ""
    (root / "annotations.xml").write_text(f"<annotations><version>1.1</version><meta><task>{mode}<labels><label>"
                                          f"<name>car</name></label></labels></task></meta>{body}{track_xml}"
                                          "</annotations>")
    read(root / "annotations.xml")


@FUZZ
@given(layout=st.lists(st.tuples(st.sampled_from(["images", "train", "trainannot", "masks", "mask", "1st_manual",
                                                  "test", "val", "valannot", "images/train", "masks/train"]),
                                 st.sampled_from(["a.png", "a_mask.png", "1_manual1.png", "b.png"]),
                                 st.sampled_from(["binary", "index", "blurred", "rgb", "junk"])), max_size=6),
       options=st.fixed_dictionaries({}, optional={
           "masks": st.sampled_from(["mask", "1st_manual", "nope", "../x", ""]),
           "threshold": st.one_of(st.integers(-1, 300), st.sampled_from([None, "x", 1.5])),
           "class_names": st.one_of(st.sampled_from(["a,b", {"0": "sky", "1": "road"}, {"x": 1}, [], {"300": "a"}]),
                                    VALUES),
           "ignore_value": st.sampled_from([None, 0, 3, 255, 300, "x"]),
           "mask_pattern": st.sampled_from(["{number}_manual1.png", "{stem}.png", "{bad}", "plain"])}),
       point=st.sampled_from(["", "train", "trainannot", "images/train", "mask", "masks/train/a.png"]))
def test_mask_folder_layouts_and_options(tmp_path_factory, layout: list, options: dict, point: str) -> None:
    root = tmp_path_factory.mktemp("masks")
    rng = np.random.default_rng(len(layout))
    for sub, name, kind in layout:
        (root / sub).mkdir(parents=True, exist_ok=True)
        if kind == "binary":
            arr = (rng.random((H, W)) > 0.5).astype(np.uint8) * 255
        elif kind == "index":
            arr = rng.integers(0, 5, (H, W)).astype(np.uint8)
        elif kind == "blurred":
            arr = rng.integers(0, 256, (H, W)).astype(np.uint8)
        elif kind == "rgb":
            Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / sub / name)
            continue
        else:
            (root / sub / name).write_bytes(b"\x89PNG junk")
            continue
        Image.fromarray(arr, "L").save(root / sub / name)
    target = root / point
    if target.exists():
        read(target, **options)


@FUZZ
@given(content=st.binary(max_size=64) | st.just(png()), where=st.sampled_from(
    ["SegmentationClass/x.png", "SegmentationObject/x.png", "JPEGImages/x.jpg", "ImageSets/Segmentation/train.txt",
     "labelmap.txt", "other/x.png"]), listed=st.text(alphabet="x ./-1", max_size=12))
def test_voc_files_pointed_at(tmp_path_factory, content: bytes, where: str, listed: str) -> None:
    root = tmp_path_factory.mktemp("voc")
    for rel in ("SegmentationClass/x.png", "JPEGImages/x.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("P" if rel.endswith("png") else "RGB", (W, H)).save(root / rel)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text(f"x\n{listed}\n")
    target = root / where
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or where.endswith(".png"):
        target.write_bytes(content)
    read(target)
