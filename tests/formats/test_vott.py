"""VoTT v2: the 'VoTT JSON' export (vott-json-export/<project>-export.json) and the project folder of
<asset id>-asset.json files beside <project>.vott, in the layout VoTT 2.2 writes them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzzing import NAMES, Example
from hypothesis import strategies as st
from PIL import Image

from masksmith.core.errors import DatasetError
from masksmith.data import load_dataset
from masksmith.data.formats import vott
from masksmith.data.rasterize import semantic_mask

W, H = 64, 48
TAGS = [{"name": "scratch", "color": "#5db300"}, {"name": "dent", "color": "#e81123"},
        {"name": "rust", "color": "#6917aa"}]


def save_image(path: Path, color: tuple[int, int, int] = (120, 90, 60)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W, H), color).save(path)


def asset(asset_id: str, name: str, state: int = 2, source: str = "C:/Users/ann/Pictures/cars") -> dict:
    return {"format": name.rsplit(".", 1)[-1], "id": asset_id, "name": name,
            "path": f"file:{source}/{name}", "size": {"width": W, "height": H}, "state": state, "type": 1}


def rect_region(rid: str, tags: list[str], left: float, top: float, width: float, height: float) -> dict:
    corners = [(left, top), (left + width, top), (left + width, top + height), (left, top + height)]
    return {"id": rid, "type": "RECTANGLE", "tags": tags,
            "boundingBox": {"height": height, "width": width, "left": left, "top": top},
            "points": [{"x": x, "y": y} for x, y in corners]}


def poly_region(rid: str, tags: list[str], points: list[tuple[float, float]], kind: str = "POLYGON") -> dict:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return {"id": rid, "type": kind, "tags": tags,
            "boundingBox": {"height": max(ys) - min(ys), "width": max(xs) - min(xs), "left": min(xs),
                            "top": min(ys)},
            "points": [{"x": x, "y": y} for x, y in points]}


def assets() -> dict[str, dict]:
    """Four assets: two tagged, one visited but empty (background only), one never opened."""
    return {
        "8fd8e4bd2b3a3a2e4f0ac0d2b3b9ac2e": {
            "asset": asset("8fd8e4bd2b3a3a2e4f0ac0d2b3b9ac2e", "car_1.jpg"),
            "regions": [rect_region("sO4m1DtTZ", ["scratch"], 5, 8, 20, 10),
                        poly_region("BsO3zj9bn", ["dent", "scratch"],
                                    [(20, 10), (50, 10), (50, 30), (20, 30)])],
            "version": "2.2.0"},
        "0d3de147fea94f1797f9d012acad9666": {
            "asset": asset("0d3de147fea94f1797f9d012acad9666", "car_2.png"),
            "regions": [poly_region("35t9mf-Zr", ["rust"], [(10, 40), (30, 20), (40, 40)], "POLYLINE"),
                        poly_region("mosw0b97K", ["rust"], [(10, 40), (30, 20), (40, 40)])],
            "version": "2.2.0"},
        "b482849bc1bd1b5e2a3e1b1d7ab5c3f1": {
            "asset": asset("b482849bc1bd1b5e2a3e1b1d7ab5c3f1", "car_3.jpg", state=1), "regions": [],
            "version": "2.2.0"},
        "50fef05a8a1b5d4e2f6f0e6c3e2b1a9d": {
            "asset": asset("50fef05a8a1b5d4e2f6f0e6c3e2b1a9d", "car_4.jpg", state=0), "regions": [],
            "version": "2.2.0"},
    }


def project(**extra: Any) -> dict:
    """The project object VoTT 2.2 keeps in <name>.vott and copies into the export."""
    doc = {
        "name": "Car parts", "securityToken": "Car parts Token",
        "sourceConnection": {"name": "cars", "providerType": "localFileSystemProxy",
                             "providerOptions": {"encrypted": "eyJjaXBoZXJ0ZXh0IjoiIn0="}, "id": "dZ1xI2Zxw"},
        "targetConnection": {"name": "target", "providerType": "localFileSystemProxy",
                             "providerOptions": {"encrypted": "eyJjaXBoZXJ0ZXh0IjoiIn0="}, "id": "qUQ7XbPnC"},
        "videoSettings": {"frameExtractionRate": 15}, "tags": copy.deepcopy(TAGS), "id": "0OPxbBiQE",
        "activeLearningSettings": {"autoDetect": False, "predictTag": True, "modelPathType": "coco"},
        "exportFormat": {"providerType": "vottJson",
                         "providerOptions": {"encrypted": "eyJjaXBoZXJ0ZXh0IjoiIn0="}},
        "version": "2.2.0", "lastVisitedAssetId": "0d3de147fea94f1797f9d012acad9666",
    }
    doc.update(extra)
    return doc


def write_export(root: Path, doc: dict | None = None) -> Path:
    """target/vott-json-export/Car-parts-export.json with the images copied beside it, as VoTT exports."""
    out = root / "vott-json-export"
    for name in ("car_1.jpg", "car_2.png", "car_3.jpg", "car_4.jpg"):
        save_image(out / name)
    path = out / "Car-parts-export.json"
    path.write_text(json.dumps(doc if doc is not None else project(assets=assets()), indent=4))
    return path


def test_reads_export_file_and_folder(tmp_path: Path) -> None:
    path = write_export(tmp_path / "target")
    for where in (path, path.parent, tmp_path / "target"):
        ds = load_dataset(where)
        assert ds.format == "vott"
        assert ds.class_names == ["scratch", "dent", "rust"]
        assert ds.classes[0].color == (0x5D, 0xB3, 0x00)
        # the never-opened asset is left out; the visited empty one is a background-only sample
        assert [s.name for s in ds.samples] == ["car_1.jpg", "car_2.png", "car_3.jpg"]
        assert [len(s.regions) for s in ds.samples] == [2, 1, 0]
        assert ds.problems == []


def test_geometry_and_masks(tmp_path: Path) -> None:
    ds = load_dataset(write_export(tmp_path / "target"))
    first, second = ds.samples[0], ds.samples[1]
    assert (first.width, first.height) == (W, H)
    rect, dent = first.regions
    assert rect.label == "scratch" and rect.bbox() == (5.0, 8.0, 20.0, 10.0)
    np.testing.assert_allclose(dent.polygons[0], [[20, 10], [50, 10], [50, 30], [20, 30]])
    assert dent.label == "dent" and dent.attributes["tags"] == ["dent", "scratch"]  # first tag is the class
    index = ds.class_map.index()
    mask = semantic_mask(first, index)
    assert mask.shape == (H, W)
    assert mask[12, 10] == index["scratch"]
    assert mask[12, 22] == index["dent"]  # the later region covers the earlier one where they overlap
    assert mask[25, 40] == index["dent"]
    assert mask[40, 5] == 0
    tri = semantic_mask(second, index)
    assert tri[35, 30] == index["rust"] and tri[22, 12] == 0


def test_project_folder_of_asset_files(tmp_path: Path) -> None:
    """The target folder VoTT saves to while tagging; images stay in the source folder `asset.path` names."""
    source, target = tmp_path / "source", tmp_path / "target"
    for name in ("car_1.jpg", "car_2.png"):
        save_image(source / name)
    target.mkdir()
    doc = project(assets={k: v["asset"] for k, v in assets().items()})
    (target / "Car parts.vott").write_text(json.dumps(doc, indent=4))
    for key, entry in list(assets().items())[:2]:
        entry["asset"]["path"] = f"file:{source.as_posix()}/{entry['asset']['name']}"
        (target / f"{key}-asset.json").write_text(json.dumps(entry, indent=4))
    for where in (target, target / "Car parts.vott"):
        ds = load_dataset(where)
        assert ds.format == "vott"
        assert ds.class_names == ["scratch", "dent", "rust"]
        assert sorted(s.image_path for s in ds.samples) == [source / "car_1.jpg", source / "car_2.png"]
        assert sorted(len(s.regions) for s in ds.samples) == [1, 2]


def test_tags_used_but_not_declared_are_reported(tmp_path: Path) -> None:
    doc = project(assets=assets())
    doc["tags"] = TAGS[:2]  # 'rust' deleted from the project after tagging
    path = write_export(tmp_path / "t", doc)
    with pytest.raises(DatasetError, match="'rust' is not declared"):
        load_dataset(path)
    ds = load_dataset(path, strict=False)
    # both 'rust' regions are dropped (their pixels void), car_2 stays
    assert [s.name for s in ds.samples] == ["car_1.jpg", "car_2.png", "car_3.jpg"]
    assert ds.samples[1].regions == [] and ds.samples[1].ignore_rle is not None
    assert len(ds.problems) == 1 and "car_2.png" in ds.problems[0].item and ds.problems[0].dropped == "region"


@pytest.mark.parametrize("region, message", [
    ({"id": "a", "type": "CIRCLE", "tags": ["dent"], "points": []}, "region type 'CIRCLE'"),
    ({"id": "a", "type": "POLYGON", "tags": [], "points": [{"x": 1, "y": 1}] * 3}, "has no tag"),
    ({"id": "a", "type": "POLYGON", "tags": ["dent"], "points": [{"x": 1, "y": 1}, {"x": 5, "y": 5}]},
     "needs at least 3"),
    ({"id": "a", "type": "RECTANGLE", "tags": ["dent"], "boundingBox": {"left": "x", "top": 0, "width": 1,
                                                                         "height": 1}}, "not a number"),
])
def test_bad_region_drops_only_itself(tmp_path: Path, region: dict, message: str) -> None:
    doc = project(assets=assets())
    doc["assets"]["0d3de147fea94f1797f9d012acad9666"]["regions"].append(region)
    path = write_export(tmp_path / "t", doc)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(path)
    assert "Car-parts-export.json" in str(info.value) and "car_2.png" in str(info.value)
    ds = load_dataset(path, strict=False)
    assert [s.name for s in ds.samples] == ["car_1.jpg", "car_2.png", "car_3.jpg"]
    assert len(ds.samples[1].regions) == 1  # its good polygon is kept
    assert len(ds.problems) == 1 and message.split()[0] in ds.problems[0].message


def test_broken_json_names_the_file(tmp_path: Path) -> None:
    path = write_export(tmp_path / "t")
    path.write_text(path.read_text()[:500])
    with pytest.raises(DatasetError, match="not valid JSON") as info:
        load_dataset(path, format="vott")
    assert str(path) in str(info.value)


def test_export_without_assets_object_is_refused(tmp_path: Path) -> None:
    path = write_export(tmp_path / "t", project(assets=[1, 2]))
    with pytest.raises(DatasetError, match="'assets'"):
        load_dataset(path, format="vott")


def test_round_trip_through_coco(tmp_path: Path) -> None:
    coco = pytest.importorskip("masksmith.data.formats.coco")
    if not hasattr(coco, "write"):
        pytest.skip("the COCO writer is not there yet")
    ds = load_dataset(write_export(tmp_path / "project" / "target"))  # the data set is project/
    coco.write(ds, tmp_path / "coco")
    back = load_dataset(tmp_path / "coco", format="coco")
    assert back.class_names == ds.class_names
    assert [c.color for c in back.classes] == [c.color for c in ds.classes]
    assert [s.name for s in back.samples] == [s.name for s in ds.samples]
    for a, b in zip(ds.samples, back.samples, strict=True):
        assert [r.label for r in a.regions] == [r.label for r in b.regions]
        for ra, rb in zip(a.regions, b.regions, strict=True):
            np.testing.assert_allclose(np.concatenate(ra.polygons), np.concatenate(rb.polygons))
        np.testing.assert_array_equal(semantic_mask(a, ds.class_map.index()),
                                      semantic_mask(b, back.class_map.index()))


def test_detect_ignores_other_json(tmp_path: Path) -> None:
    other = tmp_path / "labelme.json"
    other.write_text(json.dumps({"shapes": [], "imagePath": "a.jpg"}))
    assert not vott.detect(other)
    assert not vott.detect(tmp_path)
    assert vott.detect(write_export(tmp_path / "t"))


# ---------------------------------------------------------------- VoTT 1 and video projects

def vott1_doc(keys: list[str], canvas: tuple[int, int] = (W * 2, H * 2)) -> dict:
    """What VoTT 1 saves for an image folder: regions in the coordinates of the canvas they were drawn on
    (here twice the image size), the class as the last tag, a Point region, the tags as one string."""
    cw, ch = canvas

    def box(x1: float, y1: float, x2: float, y2: float, tags: list[str], rid: int, kind: str = "Rectangle") -> dict:
        return {"x1": x1, "y1": y1, "x2": x2, "y2": y2, "id": rid, "width": cw, "height": ch, "type": kind,
                "tags": tags, "name": rid, "UID": f"uid{rid}",
                "box": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
                "points": [{"x": x1, "y": y1}, {"x": x2, "y": y1}, {"x": x2, "y": y2}, {"x": x1, "y": y2}]}

    first = [box(10, 20, 50, 40, ["dent", "scratch"], 1), box(60, 60, 60, 60, ["rust"], 2, "Point")]
    return {"frames": {keys[0]: first, keys[1]: [box(0, 0, 40, 40, ["rust"], 3)]},
            "framerate": "1", "inputTags": "scratch,dent,rust", "suggestiontype": "track", "scd": False,
            "visitedFrames": keys, "tag_colors": ["#5db300", "#e81123", "#6917aa"]}


def test_vott1_json_beside_its_image_folder(tmp_path: Path) -> None:
    for name in ("car_1.jpg", "car_2.jpg"):
        save_image(tmp_path / "cars" / name)
    (tmp_path / "cars.json").write_text(json.dumps(vott1_doc(["car_1.jpg", "car_2.jpg"])))
    ds = load_dataset(tmp_path / "cars.json")
    assert ds.format == "vott" and ds.class_names == ["scratch", "dent", "rust"]
    one, two = ds.samples
    assert (one.name, two.name) == ("cars/car_1.jpg", "cars/car_2.jpg")
    assert [r.label for r in one.regions] == ["scratch"]  # VoTT 1's exporter takes the last tag
    assert one.regions[0].bbox() == (5.0, 10.0, 20.0, 10.0)  # canvas coordinates scaled to the image
    assert one.skipped == 1 and any("point or polyline" in str(n) for n in ds.notes)
    # older VoTT 1 numbered the frames of a folder: the images in name order, said in the report
    (tmp_path / "cars.json").write_text(json.dumps(vott1_doc(["0", "1"])))
    ds = load_dataset(tmp_path / "cars.json")
    assert [s.name for s in ds.samples] == ["cars/car_1.jpg", "cars/car_2.jpg"]
    assert any("in name order" in str(n) for n in ds.notes)


def test_video_frame_assets_match_the_exported_frame_files(tmp_path: Path) -> None:
    """VoTT 2 tags a video's frames as assets named clip.mp4#t=10.75; exports hold them as image files."""
    def frame(asset_id: str, t: float) -> dict:
        a = asset(asset_id, f"clip.mp4#t={t}")
        a.update({"format": "mp4", "type": 3, "timestamp": t,
                  "parent": {"format": "mp4", "id": "v0", "name": "clip.mp4", "path": "file:C:/Users/ann/clip.mp4",
                             "size": {"width": W, "height": H}, "state": 2, "type": 2}})
        return {"asset": a, "regions": [rect_region(f"r{asset_id}", ["dent"], 5, 5, 10, 10)], "version": "2.2.0"}

    assets_ = {"f1": frame("f1", 10.75), "f2": frame("f2", 11.5),
               "v0": {"asset": {**asset("v0", "clip.mp4"), "type": 2}, "regions": [], "version": "2.2.0"}}
    out = tmp_path / "target" / "vott-json-export"
    save_image(out / "clip.mp4#t=10.75.jpg")
    Image.new("RGB", (W, H)).save(out / "clip.mp4#t=11.5", format="JPEG")  # VoTT JSON export: the asset's name
    (out / "Car-parts-export.json").write_text(json.dumps(project(assets=assets_)))
    ds = load_dataset(out / "Car-parts-export.json")
    assert [s.image_path for s in ds.samples] == [out / "clip.mp4#t=10.75.jpg", out / "clip.mp4#t=11.5"]
    assert all(len(s.regions) == 1 for s in ds.samples)
    assert any("video asset" in str(n) for n in ds.notes)


def test_images_in_the_source_folder_beside_the_target_and_never_at_asset_path(tmp_path: Path) -> None:
    """VoTT's own layout: project/source/ (the images) beside project/target/ (.vott, asset files, export);
    asset.path names the annotator's disk and is never opened."""
    project_dir = tmp_path / "sample_project"
    elsewhere = tmp_path / "elsewhere"
    save_image(elsewhere / "car_1.jpg")  # where asset.path points: must not be read
    save_image(project_dir / "source" / "car_2.png")
    entries = assets()
    for entry in entries.values():
        entry["asset"]["path"] = f"file:{elsewhere.as_posix()}/{entry['asset']['name']}"
    path = project_dir / "target" / "vott-json-export" / "Car-parts-export.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(project(assets=entries)))
    ds = load_dataset(path, need_pixels=False)
    assert ds.root == project_dir
    by_name = {s.name: s for s in ds.samples}
    assert by_name["car_2.png"].image_path == project_dir / "source" / "car_2.png"
    assert by_name["car_1.jpg"].image_missing and project_dir in by_name["car_1.jpg"].image_path.parents
    assert "2 of 3 image(s) are missing" in str(ds.problems[0])
    # an export whose project holds the source folder's path unencrypted: looked for by that folder's name
    save_image(project_dir / "shots" / "car_1.jpg")
    save_image(project_dir / "old" / "car_1.jpg")  # the same name elsewhere: the source folder decides
    doc = project(assets=entries)
    doc["sourceConnection"]["providerOptions"] = {"folderPath": "C:\\Users\\ann\\shots"}
    path.write_text(json.dumps(doc))
    ds = load_dataset(path, need_pixels=False)
    assert {s.name: s for s in ds.samples}["car_1.jpg"].image_path == project_dir / "shots" / "car_1.jpg"


# ---------------------------------------------------------------- for the fuzz suite (test_fuzz.py)

def write_video_project(root: Path) -> None:
    """A VoTT 2 project of video frames: source/ beside target/, the frames exported under the assets' names."""
    frames = {}
    for k, t in enumerate((1.5, 2.0)):
        a = asset(f"f{k}", f"clip.mp4#t={t}")
        a.update({"format": "mp4", "type": 3, "timestamp": t, "parent": {"format": "mp4", "id": "v0",
                  "name": "clip.mp4", "path": "file:C:/clip.mp4", "size": {"width": W, "height": H}, "type": 2}})
        frames[f"f{k}"] = {"asset": a, "regions": [rect_region(f"r{k}", ["dent"], 5, 5, 10, 10)], "version": "2.2.0"}
        (root / "target" / "vott-json-export").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H)).save(root / "target" / "vott-json-export" / f"clip.mp4#t={t}", format="JPEG")
    frames["a"] = {"asset": asset("a", "a.jpg"), "regions": [rect_region("ra", ["rust"], 1, 1, 9, 9)],
                   "version": "2.2.0"}
    save_image(root / "source" / "a.jpg")
    (root / "target" / "vott-json-export" / "p-export.json").write_text(json.dumps(project(assets=frames)))


def write_vott1(root: Path) -> None:
    for name in ("car_1.jpg", "car_2.jpg"):
        save_image(root / "cars" / name)
    (root / "cars.json").write_text(json.dumps(vott1_doc(["car_1.jpg", "car_2.jpg"])))


VOTT_VALUES = NAMES | st.sampled_from(["0", "1", "7", "Rectangle", "Point", "Square", "Polygon", "RECTANGLE",
                                       "POLYLINE", 0, 1, 2, 3, "x", W, 2 * W, "scratch,dent", ["dent", ""]])
EXPORT = "vott-json-export/Car-parts-export.json"
VIDEO = "target/vott-json-export/p-export.json"
FUZZ_EXAMPLES = [
    Example("export", write_export, files=(EXPORT, "vott-json-export/car_1.jpg"), points=(EXPORT, "vott-json-export"),
            values=VOTT_VALUES, moves=("source/car_1.jpg", "vott-json-export/clip.mp4#t=1.5", "Car-parts.vott")),
    Example("video frames", write_video_project, files=(VIDEO, "target/vott-json-export/clip.mp4#t=1.5"),
            points=(VIDEO, "target"), values=VOTT_VALUES, moves=("source/clip.mp4#t=2.0", "target/a.jpg")),
    Example("VoTT 1", write_vott1, files=("cars.json", "cars/car_1.jpg"), points=("cars.json",), values=VOTT_VALUES,
            moves=("clip.mp4.json", "photos.json", "cars/0", "car_2.jpg")),
]


# ---------------------------------------------------------------- the CSV export
def write_csv_export(root: Path, rows: list[str], images: tuple[str, ...] = ("car 1.jpg", "car2.jpg")) -> Path:
    """What VoTT's csv.ts writes: vott-csv-export/<project>-export.csv, json2csv's quoted header and strings,
    one row per region and tag, the images copied beside it."""
    folder = root / "target" / "vott-csv-export"
    for name in images:
        save_image(folder / name)
    header = '"image","xmin","ymin","xmax","ymax","label"'
    (folder / "My-Project-export.csv").write_text("\n".join([header, *rows]) + "\n")
    return folder / "My-Project-export.csv"


def test_csv_export_reads_each_region_as_its_box(tmp_path: Path) -> None:
    csv_file = write_csv_export(tmp_path, [
        '"car 1.jpg",2,3,12.5,10,"car"',
        '"car 1.jpg",2,3,12.5,10,"red"',  # the same region's second tag
        '"car 1.jpg",20,5,30,15,"wheel"',
        '"car2.jpg",0,0,40,30,"car"',
        '"car2.jpg",5,5,5,9,"wheel"',  # no area: reported, the image kept
    ])
    from masksmith.data.schema import ProblemLog

    for path in (tmp_path / "target", csv_file):
        log = ProblemLog(strict=False)
        ds = vott.read(path, log)
        assert sorted(ds.class_names) == ["car", "wheel"] and [s.name for s in ds.samples] == ["car 1.jpg", "car2.jpg"]
        first = ds.samples[0]
        assert [r.label for r in first.regions] == ["car", "wheel"]
        assert first.regions[0].attributes["tags"] == ["car", "red"]
        assert any("covers nothing" in p.message for p in log.problems)
        assert any("bounding box only" in str(n) for n in log.notes)
    ds = load_dataset(tmp_path / "target", strict=False)
    assert ds.format == "vott"
    mask = semantic_mask(ds.samples[0], ds.class_map.index())
    car = ds.class_names.index("car") + 1
    assert (mask == car).sum() == 11 * 7 and mask[5, 5] == car and mask[12, 5] == 0  # x 2..12, y 3..9


def test_csv_export_rows_vott_never_writes_are_named(tmp_path: Path) -> None:
    write_csv_export(tmp_path, ['"car 1.jpg",2,3,"x",10,"car"', '"car2.jpg",1,2,3', '"car2.jpg",0,0,40,30,"car"'])
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path / "target")
    assert "My-Project-export.csv" in str(err.value) and "line 2" in str(err.value)
    ds = load_dataset(tmp_path / "target", strict=False)
    assert [s.name for s in ds.samples] == ["car2.jpg"]
