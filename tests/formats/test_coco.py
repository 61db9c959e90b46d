"""COCO instances JSON: the layout the COCO 2017 files and COCO Annotator write, read, written, read again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fuzzing import NAMES, Example
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from masksmith.core.errors import DatasetError
from masksmith.core.outputs import OutputError
from masksmith.data import load_dataset
from masksmith.data.convert import convert
from masksmith.data.rasterize import instance_masks, semantic_mask

W, H = 64, 48


def crowd_rle() -> dict:
    m = np.zeros((H, W), np.uint8)
    m[30:40, 40:60] = 1
    # uncompressed RLE, column-major, as COCO 2017 stores crowd regions
    flat = m.ravel(order="F")
    counts, last, run = [], 0, 0
    for v in flat:
        if v != last:
            counts.append(run)
            run, last = 0, v
        run += 1
    counts.append(run)
    return {"counts": counts, "size": [H, W]}


def write_coco(root: Path, iscrowd_bool: bool = False) -> Path:
    """A COCO file in the 2017 layout (info, licenses, images with coco_url ...) plus COCO Annotator extras."""
    (root / "images").mkdir(parents=True)
    for name in ("000000000001.jpg", "000000000002.jpg", "000000000003.jpg"):
        Image.new("RGB", (W, H), (90, 120, 30)).save(root / "images" / name)
    compressed = mask_utils.encode(np.asfortranarray((np.arange(H)[:, None] < 10) & (np.arange(W)[None] < 8)
                                                     ).astype(np.uint8))
    false, true = (False, True) if iscrowd_bool else (0, 1)
    doc = {
        "info": {"description": "COCO 2017 Dataset", "version": "1.0", "year": 2017},
        "licenses": [{"url": "http://creativecommons.org/licenses/by/2.0/", "id": 4, "name": "Attribution"}],
        "images": [
            {"license": 4, "file_name": "000000000001.jpg", "coco_url": "http://x/1.jpg", "height": H, "width": W,
             "date_captured": "2013-11-14 17:02:52", "flickr_url": "http://x", "id": 1},
            {"license": 4, "file_name": "000000000002.jpg", "height": H, "width": W, "id": 2,
             "path": "images/000000000002.jpg", "metadata": {}, "annotated": True},
            {"license": 4, "file_name": "000000000003.jpg", "height": H, "width": W, "id": 3},
        ],
        "annotations": [
            {"segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]], "area": 400.0, "iscrowd": false,
             "image_id": 1, "bbox": [10, 10, 20, 20], "category_id": 18, "id": 1768},
            {"segmentation": [[20, 20, 40, 20, 40, 40], [50, 5, 60, 5, 60, 15, 50, 15]], "area": 300.0,
             "iscrowd": false, "image_id": 1, "bbox": [20, 5, 40, 35], "category_id": 3, "id": 1769,
             "color": "#e45779", "metadata": {}, "isbbox": False},
            {"segmentation": crowd_rle(), "area": 200.0, "iscrowd": true, "image_id": 1,
             "bbox": [40, 30, 20, 10], "category_id": 1, "id": 900100},
            {"segmentation": {"size": [H, W], "counts": compressed["counts"].decode()}, "area": 80.0,
             "iscrowd": false, "image_id": 2, "bbox": [0, 0, 8, 10], "category_id": 3, "id": 5},
        ],
        "categories": [{"supercategory": "person", "id": 1, "name": "person"},
                       {"supercategory": "vehicle", "id": 3, "name": "car", "color": "#00ff00"},
                       {"supercategory": "animal", "id": 18, "name": "dog"}],
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("iscrowd_bool", [False, True])
def test_reads_coco_layout(tmp_path: Path, iscrowd_bool: bool) -> None:
    path = write_coco(tmp_path / "coco", iscrowd_bool)
    ds = load_dataset(path.parent)
    assert ds.format == "coco"
    assert ds.class_names == ["person", "car", "dog"]
    assert ds.classes[1].color == (0, 255, 0)
    assert [len(s.regions) for s in ds.samples] == [3, 1, 0]
    crowd = ds.samples[0].regions[2]
    assert crowd.iscrowd and crowd.kind == "mask"
    assert [len(r.polygons) for r in ds.samples[0].regions[:2]] == [1, 2]


def test_masks_match_pycocotools_annToMask(tmp_path: Path) -> None:
    path = write_coco(tmp_path / "coco")
    ds = load_dataset(path)
    coco = COCO(str(path))
    index = ds.class_map.index()
    cat_to_index = {c["id"]: index[c["name"]] for c in coco.loadCats(coco.getCatIds())}
    for img_id, sample in zip(coco.getImgIds(), ds.samples, strict=True):
        expected = np.zeros((H, W), np.uint8)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img_id)):
            expected[coco.annToMask(ann).astype(bool)] = cat_to_index[ann["category_id"]]
        assert np.array_equal(semantic_mask(sample, index), expected)


def test_round_trip_keeps_classes_polygons_and_masks(tmp_path: Path) -> None:
    first = load_dataset(write_coco(tmp_path / "coco"))
    convert(first, "coco", tmp_path / "out")
    second = load_dataset(tmp_path / "out")
    assert second.class_names == first.class_names
    assert [c.color for c in second.classes] == [c.color for c in first.classes]
    idx = first.class_map.index()
    for a, b in zip(first.samples, second.samples, strict=True):
        assert a.name == b.name and (a.width, a.height) == (b.width, b.height)
        for ra, rb in zip(a.regions, b.regions, strict=True):
            assert ra.label == rb.label and ra.iscrowd == rb.iscrowd
            assert all(np.array_equal(p, q) for p, q in zip(ra.polygons, rb.polygons, strict=True))
        assert np.array_equal(semantic_mask(a, idx), semantic_mask(b, idx))
        ma, la, ca = instance_masks(a, idx)
        mb, lb, cb = instance_masks(b, idx)
        assert np.array_equal(ma, mb) and np.array_equal(la, lb) and np.array_equal(ca, cb)


def test_broken_json_names_file_and_position(tmp_path: Path) -> None:
    path = write_coco(tmp_path / "coco")
    path.write_text(path.read_text()[:-40])
    with pytest.raises(DatasetError, match=r"annotations\.json.*not valid JSON \(line 1"):
        load_dataset(path, "coco")


def test_undeclared_category_is_reported_and_skippable(tmp_path: Path) -> None:
    path = write_coco(tmp_path / "coco")
    doc = json.loads(path.read_text())
    doc["annotations"][3]["category_id"] = 77
    path.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="category_id 77 is not declared"):
        load_dataset(path)
    ds = load_dataset(path, strict=False)
    # the one annotation is dropped, its image kept; its pixels are void, not background
    assert [s.name for s in ds.samples] == ["000000000001.jpg", "000000000002.jpg", "000000000003.jpg"]
    assert len(ds.problems) == 1 and "annotation 5" in str(ds.problems[0]) and ds.problems[0].dropped == "region"
    two = ds.samples[1]
    assert two.regions == [] and semantic_mask(two, ds.class_map.index())[:10, :8].tolist() == [[255] * 8] * 10


def test_region_outside_image_and_missing_image(tmp_path: Path) -> None:
    path = write_coco(tmp_path / "coco")
    doc = json.loads(path.read_text())
    doc["annotations"][0]["segmentation"] = [[100, 100, 130, 100, 130, 130]]
    path.write_text(json.dumps(doc))
    (tmp_path / "coco" / "images" / "000000000003.jpg").unlink()
    with pytest.raises(DatasetError, match=r"000000000001\.jpg.*region 1 \(dog\).*outside the 64x48 image"):
        load_dataset(path)
    ds = load_dataset(path, strict=False)
    # the stray region is dropped alone; the image without its file is dropped (training needs its pixels)
    assert [s.name for s in ds.samples] == ["000000000001.jpg", "000000000002.jpg"]
    assert [r.label for r in ds.samples[0].regions] == ["car", "person"]
    messages = " | ".join(map(str, ds.problems))
    assert "outside the 64x48 image" in messages and "000000000003.jpg" in messages and "missing" in messages


def test_image_that_is_not_an_image_and_wrong_size(tmp_path: Path) -> None:
    path = write_coco(tmp_path / "coco")
    (tmp_path / "coco" / "images" / "000000000002.jpg").write_bytes(b"not a jpeg")
    Image.new("RGB", (10, 10)).save(tmp_path / "coco" / "images" / "000000000003.jpg")
    ds = load_dataset(path, strict=False)
    messages = " | ".join(map(str, ds.problems))
    assert "000000000002.jpg: cannot be read as an image" in messages
    assert "64x48 but the file is 10x10" in messages


def test_convert_refuses_to_write_into_the_source(tmp_path: Path) -> None:
    path = write_coco(tmp_path / "coco")
    ds = load_dataset(path)
    with pytest.raises(OutputError, match="lies inside, the input"):
        convert(ds, "coco", tmp_path / "coco")


# ---------------------------------------------------------------- for the fuzz suite (test_fuzz.py)

def write_results(root: Path) -> None:
    """A results file (what a model's predictions are saved as), the ground truth it was made on, the images."""
    for name in ("a.jpg", "b.png", "1.jpg"):
        Image.new("RGB", (16, 12), (200, 0, 0)).save(root / name)
    gt = {"images": [{"id": 1, "file_name": "a.jpg", "width": 16, "height": 12},
                     {"id": "2", "file_name": "b.png", "width": 16, "height": 12}],
          "annotations": [], "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "bus"}]}
    (root / "gt.json").write_text(json.dumps(gt))
    rle = mask_utils.encode(np.asfortranarray(np.pad(np.ones((4, 6), np.uint8), ((2, 6), (3, 7)))))
    results = [{"image_id": 1, "category_id": 1, "score": 0.9, "bbox": [3, 2, 6, 4],
                "segmentation": {"size": [12, 16], "counts": rle["counts"].decode()}},
               {"image_id": 1, "category_id": 2, "score": 0.7, "bbox": [1, 1, 5, 5]},
               {"image_id": "2", "category_id": 2, "score": 0.4, "segmentation": [[1, 1, 9, 1, 5, 8]]}]
    (root / "results.json").write_text(json.dumps(results))


def write_box_only(root: Path) -> None:
    """String image ids (" 2" too), a box-only annotation (bbox, empty segmentation), names with folders."""
    (root / "sub").mkdir()
    for name in ("a.jpg", "sub/b.png"):
        Image.new("RGB", (16, 12), (0, 90, 0)).save(root / name)
    doc = {"images": [{"id": "1", "file_name": "a.jpg", "width": 16, "height": 12},
                      {"id": " 2", "file_name": "sub/b.png", "width": 16, "height": 12}],
           "annotations": [{"id": 1, "image_id": "1", "category_id": 1, "bbox": [1, 1, 6, 5], "segmentation": []},
                           {"id": 2, "image_id": " 2", "category_id": 2, "bbox": [2, 2, 4, 4],
                            "segmentation": [[2, 2, 9, 2, 9, 9]], "iscrowd": 0}],
           "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "bus"}]}
    (root / "annotations.json").write_text(json.dumps(doc))


def results_options(root: Path) -> st.SearchStrategy[dict]:
    against = st.sampled_from([{}, {"images": str(root / "gt.json")}, {"images": str(root)},
                               {"images": str(root / "nowhere.json")}])
    extra = st.fixed_dictionaries({}, optional={
        "boxes_as_masks": st.booleans(), "min_score": st.sampled_from([0, 0.5, 1.5, -1, "x"]),
        "class_names": st.sampled_from([["car", "bus"], "car", [], {"1": "a"}])})
    return st.builds(lambda a, b: {**a, **b}, against, extra)


IDS = st.sampled_from([0, 1, 2, 3, "0", "1", " 2", "x", "", "a"])
COCO_OPTIONS = st.fixed_dictionaries({}, optional={"boxes_as_masks": st.booleans(), "keep_colors": st.booleans()})
FUZZ_EXAMPLES = [
    Example("instances", lambda root: write_coco(root / "coco"),
            files=("coco/annotations.json", "coco/images/000000000001.jpg", "coco/images/000000000002.jpg"),
            points=("coco/annotations.json", "coco"), options=lambda root: COCO_OPTIONS, values=NAMES | IDS,
            moves=("coco/annotations/instances_val.json", "coco/000000000001.jpg", "annotations.json")),
    Example("results file", write_results, files=("results.json", "gt.json", "a.jpg"), points=("results.json",),
            options=results_options, values=NAMES | IDS, valid_with=lambda root: {"images": str(root / "gt.json")}),
    Example("string ids, box only", write_box_only, files=("annotations.json", "sub/b.png"),
            points=("annotations.json", ""), options=lambda root: COCO_OPTIONS, values=NAMES | IDS,
            moves=("b.png", "sub/a.jpg")),
]


# ---------------------------------------------------------------- files as other tools write them

def via_coco_export(root: Path) -> Path:
    """What VIA 2's 'Export as COCO' writes: int image ids, image_id of the annotations as strings, segmentation
    [[x0, y0, ...]] with bbox and area, a point region as keypoints with an empty segmentation."""
    (root / "images").mkdir(parents=True)
    for name in ("car_0.jpg", "car_1.jpg"):
        Image.new("RGB", (W, H), (10, 20, 30)).save(root / "images" / name)
    doc = {"info": {"year": 2024, "version": "1.0", "description": "VIA project exported to COCO format using "
                    "VGG Image Annotator (http://www.robots.ox.ac.uk/~vgg/software/via/)", "contributor": "",
                    "url": "http://www.robots.ox.ac.uk/~vgg/software/via/", "date_created": "Mon Jan 01 2024"},
           "images": [{"id": 0, "width": W, "height": H, "file_name": "car_0.jpg", "license": 0,
                       "flickr_url": "car_0.jpg", "coco_url": "car_0.jpg", "date_captured": ""},
                      {"id": 1, "width": W, "height": H, "file_name": "car_1.jpg", "license": 0,
                       "flickr_url": "car_1.jpg", "coco_url": "car_1.jpg", "date_captured": ""}],
           "annotations": [
               {"segmentation": [[5, 5, 25, 5, 25, 20, 5, 20]], "area": 300, "bbox": [5, 5, 20, 15], "iscrowd": 0,
                "id": 1, "image_id": "0", "category_id": 1},
               {"segmentation": [[]], "area": [], "bbox": [], "iscrowd": 0, "keypoints": [30, 30, 2],
                "num_keypoints": 1, "id": 2, "image_id": "0", "category_id": 2},
               {"segmentation": [[30, 10, 50, 10, 40, 30]], "area": 200, "bbox": [30, 10, 20, 20], "iscrowd": 0,
                "id": 3, "image_id": "1", "category_id": 2}],
           "licenses": [{"id": 0, "name": "Unknown License", "url": ""}],
           "categories": [{"supercategory": "damage", "id": 1, "name": "scratch"},
                          {"supercategory": "damage", "id": 2, "name": "dent"}]}
    path = root / "via_project_coco.json"
    path.write_text(json.dumps(doc))
    return path


def test_string_image_id_is_the_same_image(tmp_path: Path) -> None:
    ds = load_dataset(via_coco_export(tmp_path / "via"))
    assert [s.name for s in ds.samples] == ["car_0.jpg", "car_1.jpg"]
    assert [[r.label for r in s.regions] for s in ds.samples] == [["scratch"], ["dent"]]
    assert ds.problems == []
    # the point has no shape: counted as skipped, and its image is not "without annotations"
    assert ds.samples[0].skipped == 1 and any("neither a segmentation nor a bbox" in str(n) for n in ds.notes)


def detection_ground_truth(root: Path) -> Path:
    """A detection data set (COCO 2017 style) whose annotations are boxes only: empty segmentation lists."""
    path = write_coco(root)
    doc = json.loads(path.read_text())
    for ann in doc["annotations"]:
        ann["segmentation"] = []
        ann["iscrowd"] = 0
    path.write_text(json.dumps(doc))
    return path


def test_box_only_annotations_are_counted_void_or_rectangles(tmp_path: Path) -> None:
    from masksmith.data.stats import dataset_stats

    path = detection_ground_truth(tmp_path / "det")
    ds = load_dataset(path)
    assert all(s.regions == [] for s in ds.samples)
    (note,) = [n for n in ds.notes if "box-only" in str(n)]
    assert note.count == 4 and "boxes_as_masks=true" in str(note)
    stats = dataset_stats(ds)
    assert stats.unannotated == ["000000000003.jpg"]  # the two boxed images are not "without annotations"
    m = semantic_mask(ds.samples[0], ds.class_map.index())
    assert m[15, 15] == 255 and m[45, 5] == 0  # the box is void, the rest background
    boxes = load_dataset(path, boxes_as_masks=True)
    assert [r.label for r in boxes.samples[0].regions] == ["dog", "car", "person"]
    m = semantic_mask(boxes.samples[0], boxes.class_map.index())
    assert m[15, 15] == boxes.class_map.index()["dog"] and not any("box-only" in str(n) for n in boxes.notes)


def write_results(root: Path) -> Path:
    """A COCO results file as detectors write it and pycocotools' loadRes reads it: a list of predictions."""
    compressed = mask_utils.encode(np.asfortranarray((np.arange(H)[:, None] < 10) & (np.arange(W)[None] < 8)
                                                     ).astype(np.uint8))
    rle = {"size": [H, W], "counts": compressed["counts"].decode()}
    results = [{"image_id": 1, "category_id": 3, "bbox": [0, 0, 8, 10], "score": 0.91, "segmentation": rle},
               {"image_id": 1, "category_id": 1, "bbox": [20, 20, 10, 10], "score": 0.12, "segmentation": rle},
               {"image_id": 2, "category_id": 18, "bbox": [5, 5, 20, 10], "score": 0.77}]
    root.mkdir(parents=True, exist_ok=True)
    path = root / "detections_val2017_results.json"
    path.write_text(json.dumps(results))
    return path


def test_results_file_is_explained_then_read_against_ground_truth_or_a_folder(tmp_path: Path) -> None:
    results = write_results(tmp_path / "out")
    with pytest.raises(DatasetError, match="is a COCO results file: 3 prediction.* for 2 image") as info:
        load_dataset(results)
    assert "`images=GT.json`" in str(info.value)
    truth = write_coco(tmp_path / "coco")
    ds = load_dataset(results, images=str(truth))
    assert ds.class_names == ["person", "car", "dog"]  # from the ground truth
    assert [s.name for s in ds.samples] == ["000000000001.jpg", "000000000002.jpg", "000000000003.jpg"]
    assert [r.label for r in ds.samples[0].regions] == ["car"]  # the 0.12 prediction is below min_score
    assert ds.samples[0].regions[0].attributes["score"] == 0.91
    assert any("kept 2 of 3 prediction" in str(n) for n in ds.notes)
    assert len(load_dataset(results, images=str(truth), min_score=0.0).samples[0].regions) == 2
    # pre-annotations of an image folder: image_id = file stem, classes named by option
    folder = tmp_path / "photos"
    folder.mkdir()
    for stem in ("1", "2"):
        Image.new("RGB", (W, H)).save(folder / f"{stem}.jpg")
    pre = load_dataset(results, images=str(folder), class_names=["person", "bicycle", "car"], boxes_as_masks=True)
    assert [s.name for s in pre.samples] == ["1.jpg", "2.jpg"]
    assert [[r.label for r in s.regions] for s in pre.samples] == [["car"], ["category 18"]]


def test_missing_images_do_not_stop_reading_the_file(tmp_path: Path) -> None:
    """The file states every image's size: its counts, classes and geometry are read without the images."""
    path = write_coco(tmp_path / "coco")
    for p in (tmp_path / "coco" / "images").iterdir():
        p.unlink()
    ds = load_dataset(path, need_pixels=False)
    assert len(ds.samples) == 3 and all(s.image_missing for s in ds.samples)
    (problem,) = ds.problems
    assert "3 of 3 image(s) are missing: 000000000001.jpg, 000000000002.jpg, 000000000003.jpg" in str(problem)
    assert problem.dropped == "" and problem.count == 3
    with pytest.raises(DatasetError, match="3 of 3 image.* are missing.*need the pixels"):
        load_dataset(path)
