"""Real files that still went wrong (issue 24), each rebuilt here from what the tool writes: conversions cut
short, void through COCO, many components, repeated and placeholder categories, void-like mask values, splits
through every writer, undeclared VoTT 1 tags, ambiguous image names, the model's reading options while
detecting, float TIFFs, and zips with two of something."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import masksmith
from conftest import make_small_dataset, run_cli
from masksmith.core.errors import ArchiveError, DatasetError
from masksmith.data import load_dataset
from masksmith.data.convert import convert
from masksmith.data.formats import coco
from masksmith.data.load import reading_options
from masksmith.data.rasterize import semantic_mask
from masksmith.data.stats import dataset_stats

W, H = 64, 48


def photo(path: Path, w: int = W, h: int = H, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def void_pixels(ds) -> int:
    index = ds.class_map.index()
    return sum(int((semantic_mask(s, index) == 255).sum()) for s in ds.samples)


# ---------------------------------------------------------------- a conversion cut short

def test_a_conversion_stopped_half_way_is_read_as_partial(tmp_path: Path, monkeypatch, capsys) -> None:
    ds = make_small_dataset(tmp_path / "src")
    (tmp_path / "src" / "photo_2.png").unlink()  # the third photo is gone when the writer gets to it
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="neither an image file"):
        convert(ds, "masks", out)
    assert (out / "classes.txt").is_file()  # the class list comes first
    with pytest.raises(DatasetError, match="is a partial output: masksmith was writing 3 image.s. as masks here"):
        load_dataset(out)
    code, _, err = run_cli(monkeypatch, capsys, "dataset", "inspect", str(out))
    assert code == 2 and err.count("\n") == 1 and "partial output" in err and "--lenient" in err
    part = load_dataset(out, strict=False)
    assert part.class_names == ["box", "roof"] and len(part.samples) == 2  # named, not class_1 ...
    assert any("partial output" in p.message and p.dropped == "" for p in part.problems)
    make_small_dataset(tmp_path / "src")  # the photo is back: the same command finishes the job
    convert(ds, "masks", out)
    assert len(load_dataset(out).samples) == 3 and not part.problems[0].message.startswith("x")


def _convert_under_a_file_size_limit(tmp_path: Path, on_limit: str) -> tuple[subprocess.CompletedProcess, Path]:
    """`dataset convert` in a child process that may write files of at most 4 KB: the photos (10 KB) do not
    fit. With SIGXFSZ at its default the child is killed there, at once, like a SIGKILL; ignored, the write
    fails as on a full disk."""
    src = tmp_path / "coco"
    coco.write(make_small_dataset(tmp_path / "src"), src)
    out = tmp_path / "out"
    code = (f"import signal, sys; signal.signal(signal.SIGXFSZ, signal.{on_limit}); "
            f"sys.argv = ['masksmith', 'dataset', 'convert', {str(src)!r}, {str(out)!r}, '--to', 'masks']; "
            "from masksmith.cli import main; main()")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    home = tmp_path / "home"  # an empty home: no cache a library builds on first use may count against the limit
    home.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(masksmith.__file__).parents[1]), "PYTHONDONTWRITEBYTECODE": "1",
           "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "MPLCONFIGDIR": str(home / "mpl"),
           "MASKSMITH_CACHE": str(home / "masksmith")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                          preexec_fn=limit, cwd=tmp_path)
    return proc, out


def test_a_conversion_killed_mid_write_is_read_as_partial(tmp_path: Path, monkeypatch, capsys) -> None:
    proc, out = _convert_under_a_file_size_limit(tmp_path, "SIG_DFL")
    assert proc.returncode == -signal.SIGXFSZ, proc.stderr[-2000:]
    assert (out / "classes.txt").read_text() == "_background_\nbox\nroof\n"
    code, _, err = run_cli(monkeypatch, capsys, "dataset", "inspect", str(out))
    assert code == 2 and "is a partial output: masksmith was writing 3 image(s) as masks here" in err


def test_a_full_disk_names_the_output_file_not_the_photo(tmp_path: Path) -> None:
    proc, out = _convert_under_a_file_size_limit(tmp_path, "SIG_IGN")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: {out / 'images' / 'photo_0.png'}: cannot write (File too large, EFBIG)")
    assert str(tmp_path / "coco") not in proc.stderr
    with pytest.raises(DatasetError, match="is a partial output"):  # nothing but the class list got there
        load_dataset(out, strict=False)


# ---------------------------------------------------------------- void through COCO

def labelme_with_void(root: Path) -> Path:
    photo(root / "street.png")
    doc = {"version": "5.2.1", "flags": {}, "imagePath": "street.png", "imageData": None, "imageHeight": H,
           "imageWidth": W, "shapes": [
               {"label": "car", "points": [[4, 4], [40, 4], [40, 30], [4, 30]], "group_id": None,
                "shape_type": "polygon", "flags": {}},
               {"label": "__ignore__", "points": [[30, 20], [60, 20], [60, 44], [30, 44]], "group_id": None,
                "shape_type": "polygon", "flags": {}}]}
    (root / "street.json").write_text(json.dumps(doc))
    return root


def test_void_pixels_survive_conversion_to_coco(tmp_path: Path) -> None:
    ds = load_dataset(labelme_with_void(tmp_path / "in" / "street"))
    void = void_pixels(ds)
    assert void == 30 * 24
    out = convert(ds, "coco", tmp_path / "coco")
    doc = json.loads((out / "annotations.json").read_text())
    assert {"id": 255, "name": "__ignore__", "supercategory": ""} in doc["categories"]
    (crowd,) = [a for a in doc["annotations"] if a["category_id"] == 255]
    assert crowd["iscrowd"] == 1 and crowd["area"] == void
    back = load_dataset(out)
    assert back.class_names == ["car"] and void_pixels(back) == void
    index = ds.class_map.index()
    assert np.array_equal(semantic_mask(ds.samples[0], index), semantic_mask(back.samples[0], index))
    assert any("'__ignore__' read as void" in str(n) for n in back.notes)
    assert void_pixels(load_dataset(convert(ds, "labelme", tmp_path / "again"))) == void


# ---------------------------------------------------------------- many components

def test_counting_many_components_keeps_memory_near_one_image(tmp_path: Path) -> None:
    side = 300
    root = tmp_path / "VOC"
    photo(root / "JPEGImages" / "dots.jpg", side, side)
    mask = np.zeros((side, side), np.uint8)
    mask[::3, ::3] = 1  # 10,000 pixels, none touching another: 10,000 objects
    (root / "SegmentationClass").mkdir()
    Image.fromarray(mask, "L").save(root / "SegmentationClass" / "dots.png")
    ds = load_dataset(root, class_names=["dot"])
    dataset_stats(load_dataset(root, class_names=["dot"]))  # imports and caches once, before measuring
    tracemalloc.start()
    try:
        stats = dataset_stats(ds)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert stats.classes[0].instances == 10_000
    assert peak < 40 * side * side, f"{peak / 1e6:.1f} MB for a {side}x{side} mask"


# ---------------------------------------------------------------- categories as exporters write them

def coco_file(root: Path, categories: list[dict], annotations: list[dict] | None = None) -> Path:
    photo(root / "images" / "a.jpg")
    anns = annotations if annotations is not None else [
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [[2, 2, 30, 2, 30, 20]]}]
    (root / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}], "annotations": anns,
        "categories": categories}))
    return root


def test_identical_repeated_categories_are_merged_and_conflicting_ones_refused(tmp_path: Path) -> None:
    via = coco_file(tmp_path / "via", [{"id": 1, "name": "car", "supercategory": "type"},
                                       {"id": 1, "name": "car", "supercategory": "type"},
                                       {"id": 2, "name": "bus", "supercategory": "type"},
                                       {"id": 2, "name": "bus", "supercategory": "type"}])
    ds = load_dataset(via)
    assert ds.class_names == ["car", "bus"] and len(ds.samples[0].regions) == 1
    (note,) = [str(n) for n in ds.notes if "repeated category" in str(n)]
    assert note.startswith("2 repeated category entr(ies) with the same id and name merged") and "'car'" in note
    bad = coco_file(tmp_path / "bad", [{"id": 1, "name": "car"}, {"id": 1, "name": "truck"}])
    with pytest.raises(DatasetError, match="category id 1 is declared twice, as 'car' and as 'truck'"):
        load_dataset(bad)


def test_an_unused_project_category_is_skipped_not_a_class(tmp_path: Path, monkeypatch, capsys) -> None:
    root = coco_file(tmp_path / "roboflow", [{"id": 0, "name": "car-parts-x1y2", "supercategory": "none"},
                                             {"id": 1, "name": "door", "supercategory": "car-parts-x1y2"},
                                             {"id": 2, "name": "hood", "supercategory": "car-parts-x1y2"}],
                     [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [[2, 2, 30, 2, 30, 20]]},
                      {"id": 2, "image_id": 1, "category_id": 2, "iscrowd": 0,
                       "segmentation": [[32, 22, 60, 22, 60, 40]]}])
    ds = load_dataset(root)
    assert ds.class_names == ["door", "hood"]
    (note,) = [n for n in ds.notes if "supercategory" in str(n)]
    assert note.skipped and "id 0 'car-parts-x1y2'" in str(note)
    code, out, _ = run_cli(monkeypatch, capsys, "dataset", "inspect", str(root))
    assert code == 0 and "skipped: 1 category(ies) that no annotation uses" in out


# ---------------------------------------------------------------- a value shaped like void

def street_masks(root: Path, n: int = 3) -> Path:
    """Class-index masks as street scenes have them: objects (1-4) on background, each outlined by a 2-pixel
    strip of value 5 (unlabelled), and a 2-pixel lane line (6) on the background alone."""
    for k in range(n):
        photo(root / "images" / f"s{k}.png", 128, 96, seed=k)
        m = np.zeros((96, 128), np.uint8)
        for i in range(8):
            y, x = 8 + (i // 4) * 44, 6 + (i % 4) * 31
            m[y - 2: y + 22, x - 2: x + 18] = 5
            m[y: y + 20, x: x + 14] = 1 + (i + k) % 4
        m[92:94, 4:124] = 6
        (root / "masks").mkdir(exist_ok=True)
        Image.fromarray(m, "L").save(root / "masks" / f"s{k}.png")
    return root


def test_a_value_lining_every_object_is_said_to_look_like_void(tmp_path: Path, monkeypatch, capsys) -> None:
    root = street_masks(tmp_path / "street")
    stats = dataset_stats(load_dataset(root))
    (problem,) = [p for p in stats.problems if "looks" in p.message or "boundaries" in p.message]
    assert problem.item == "mask value 5 (class_5)" and problem.dropped == ""
    assert "in 24 small pieces over 3 mask(s)" in problem.message and "`ignore_value=5`" in problem.fix
    code, out, _ = run_cli(monkeypatch, capsys, "dataset", "inspect", str(root))
    assert code == 0 and "-o ignore_value=5" in out and "no problems found" not in out
    assert "mask value 6" not in out  # a thin line on one class is a class
    settled = dataset_stats(load_dataset(root, ignore_value=5))
    assert not [p for p in settled.problems if "boundaries" in p.message]


# ---------------------------------------------------------------- splits through every writer

def cvat_three_subsets(root: Path) -> Path:
    images = []
    for k, subset in enumerate(("Train", "Train", "Validation", "Test")):
        name = f"frame_{k}.jpg"
        photo(root / "images" / subset / name, seed=k)
        images.append(f'<image id="{k}" name="{name}" subset="{subset}" width="{W}" height="{H}">'
                      f'<polygon label="car" points="{4 + k},4;40,4;40,30" z_order="0"/></image>')
    (root / "annotations.xml").write_text(
        "<annotations><version>1.1</version><meta><project><labels><label><name>car</name><color>#fa3253</color>"
        f"<type>any</type></label></labels></project></meta>{''.join(images)}</annotations>")
    return root


@pytest.mark.parametrize("to", ["voc", "coco", "masks", "labelme", "cvat"])
def test_cvat_subsets_stay_splits_in_every_writer(tmp_path: Path, to: str) -> None:
    ds = load_dataset(cvat_three_subsets(tmp_path / "in" / "cvat"))
    splits = {Path(s.name).stem: s.split for s in ds.samples}
    assert splits == {"frame_0": "train", "frame_1": "train", "frame_2": "val", "frame_3": "test"}
    back = load_dataset(convert(ds, to, tmp_path / to), to)
    assert {Path(s.name).stem: s.split for s in back.samples} == splits, to
    index = ds.class_map.index()
    by_stem = {Path(s.name).stem: s for s in back.samples}
    for s in ds.samples:
        other = by_stem[Path(s.name).stem]
        assert np.array_equal(semantic_mask(s, index), semantic_mask(other, back.class_map.index())), to
    if to == "voc":
        lists = tmp_path / "voc" / "ImageSets" / "Segmentation"
        assert (lists / "val.txt").read_text().split() == ["Validation/frame_2"]
        assert len((lists / "default.txt").read_text().split()) == 4


# ---------------------------------------------------------------- VoTT 1 tags

def test_vott1_tags_not_declared_are_classes_with_a_note_naming_the_json(tmp_path: Path) -> None:
    root = tmp_path / "job"
    photo(root / "photos" / "a.jpg")
    box = {"x1": 4, "y1": 4, "x2": 30, "y2": 20, "width": W, "height": H, "type": "Rectangle", "id": 0}
    (root / "photos.json").write_text(json.dumps({
        "frames": {"a.jpg": [{**box, "tags": ["car"]}, {**box, "x1": 34, "x2": 60, "tags": ["bus"]}]},
        "framerate": "1", "inputTags": "car", "suggestiontype": "track", "scd": False, "visitedFrames": ["a.jpg"],
        "tag_colors": ["#ff0000"]}))
    ds = load_dataset(root / "photos.json")
    assert ds.class_names == ["car", "bus"] and sorted(r.label for r in ds.samples[0].regions) == ["bus", "car"]
    (note,) = [str(n) for n in ds.notes if "inputTags" in str(n)]
    assert f"{root / 'photos.json'} uses tag(s) 'bus' that its inputTags do not declare: read as classes" in note
    assert not ds.problems


# ---------------------------------------------------------------- one image name, several files

def test_an_image_name_several_files_share_is_one_message_in_inspect_and_convert(tmp_path: Path, monkeypatch,
                                                                                 capsys) -> None:
    root = tmp_path / "set"
    for sub in ("x", "y"):
        photo(root / "deep" / sub / "a.jpg")
    photo(root / "images" / "b.jpg")
    (root / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "/home/ann/shots/a.jpg", "width": W, "height": H},
                   {"id": 2, "file_name": "b.jpg", "width": W, "height": H}],
        "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "segmentation": [[2, 2, 30, 2, 30, 20]]}],
        "categories": [{"id": 1, "name": "car"}]}))
    said = ("1 of 2 image(s) is named by several files below the data set folder, and masksmith does not guess "
            "which: a.jpg (deep/x/a.jpg, deep/y/a.jpg).")
    code, out, _ = run_cli(monkeypatch, capsys, "dataset", "inspect", str(root))
    assert code == 0 and said in out and "missing" not in out
    code, _, err = run_cli(monkeypatch, capsys, "dataset", "convert", str(root), str(tmp_path / "out"), "--to", "voc")
    assert code == 2 and said in err and "missing" not in err and err.count("\n") == 1


# ---------------------------------------------------------------- the model's reading options

def test_the_models_reading_options_apply_while_detecting(tmp_path: Path) -> None:
    """DRIVE's layout: images/ beside 1st_manual/ (the vessels) and mask/ (the field of view); training chose
    `masks=1st_manual` with `mask_pattern`; evaluating the same folder must detect it with them."""
    root = tmp_path / "DRIVE"
    for k in (21, 22):
        photo(root / "images" / f"{k}_training.png", seed=k)
        for folder, name in (("1st_manual", f"{k}_manual1.gif"), ("mask", f"{k}_training_mask.gif")):
            (root / folder).mkdir(exist_ok=True)
            m = np.zeros((H, W), np.uint8)
            m[10:30, 5 + k - 21: 40] = 255
            Image.fromarray(m, "L").save(root / folder / name)
    stored = {"masks": "1st_manual", "mask_pattern": "{number}_manual1.gif"}
    training = {"data_format": "masks", "data_options": stored}
    with pytest.raises(DatasetError, match="several folders of masks"):
        load_dataset(root)
    fmt, options, said = reading_options(root, None, None, training)
    assert fmt == "masks" and options == stored and "with the options the model was trained with" in said
    assert len(load_dataset(root, fmt, **options).samples) == 2


# ---------------------------------------------------------------- float images

def test_a_float_tiff_of_16_bit_values_is_a_picture_not_a_white_page(tmp_path: Path) -> None:
    from masksmith.core.images import read_image

    values = np.tile(np.linspace(0, 65535, W, dtype=np.float32), (H, 1))
    Image.fromarray(values, "F").save(tmp_path / "scan.tif")
    grey = read_image(tmp_path / "scan.tif")[..., 0]
    assert grey[0, 0] == 0 and grey[0, -1] == 255 and abs(int(grey[0, W // 2]) - 128) <= 3
    assert len(np.unique(grey)) > 50
    Image.fromarray(values / 65535, "F").save(tmp_path / "unit.tif")  # 0..1 floats: as before
    assert np.array_equal(read_image(tmp_path / "unit.tif")[..., 0], grey)
    signed = values - 30000  # negative values: stretched over their own range
    Image.fromarray(signed, "F").save(tmp_path / "signed.tif")
    assert np.array_equal(read_image(tmp_path / "signed.tif")[..., 0], grey)


# ---------------------------------------------------------------- zips with two of something

def test_a_zip_with_two_annotation_files_says_which_it_read(tmp_path: Path) -> None:
    src = coco_file(tmp_path / "src", [{"id": 1, "name": "car"}])
    zip_path = tmp_path / "data.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.write(src / "images" / "a.jpg", "data/images/a.jpg")
        zf.write(src / "annotations.json", "data/annotations.json")
        zf.write(src / "annotations.json", "data/instances_old.json")
    ds = load_dataset(zip_path)
    (note,) = [str(n) for n in ds.notes if "several COCO files" in str(n)]
    assert "(annotations.json, instances_old.json); read annotations.json, the name COCO exports give it" in note


def test_a_zip_with_two_entries_for_one_file_is_refused(tmp_path: Path) -> None:
    src = coco_file(tmp_path / "src", [{"id": 1, "name": "car"}])
    zip_path = tmp_path / "appended.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.write(src / "images" / "a.jpg", "images/a.jpg")
        zf.write(src / "annotations.json", "annotations.json")
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(zip_path, "a") as zf:
        zf.writestr("annotations.json", '{"images": [], "annotations": [], "categories": []}')
    with pytest.raises(ArchiveError, match="holds two entries for the same file 'annotations.json'; which one is "
                                           "meant is unknown"):
        load_dataset(zip_path)
