"""A new user's journey with annotation files as people have them: inspect without the images, see every skip,
meet one clear error when nothing is left, find the reading options, split by counts, train on the right split
with a summary first, evaluate with the options the model was trained with, and convert without losing or
merging images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import run_cli
from masksmith.core.errors import DatasetError
from masksmith.data import load_dataset
from masksmith.data.convert import convert
from masksmith.data.rasterize import semantic_mask
from masksmith.data.stats import dataset_stats

W, H = 64, 48


run = run_cli  # (exit code, stdout, stderr) of one command, in this process


def cvat_task(root: Path, with_images: bool) -> Path:
    """A CVAT for images 1.1 task export whose zip was unpacked without its images/ folder."""
    root.mkdir(parents=True, exist_ok=True)
    images = "".join(f"""
  <image id="{k}" name="frame_{k:06d}.png" width="{W}" height="{H}">
    <polygon label="car" source="manual" occluded="0" points="10,10;40,10;40,30;10,30" z_order="0"></polygon>
    <polyline label="car" source="manual" occluded="0" points="0,47;63,47" z_order="0"></polyline>
  </image>""" for k in range(3))
    (root / "annotations.xml").write_text(f"""<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version>
  <meta><task><id>1</id><name>cars</name><size>3</size><mode>annotation</mode>
    <labels><label><name>car</name><color>#fa3253</color><type>any</type><attributes></attributes></label></labels>
  </task></meta>{images}
</annotations>
""")
    if with_images:
        (root / "images").mkdir()
        for k in range(3):
            Image.new("RGB", (W, H)).save(root / "images" / f"frame_{k:06d}.png")
    return root


def test_inspect_reads_the_file_alone_and_lists_missing_images_once(tmp_path: Path, monkeypatch, capsys) -> None:
    root = cvat_task(tmp_path / "task", with_images=False)
    code, out, _ = run(monkeypatch, capsys, "dataset", "inspect", str(root), "--no-pixels")
    assert code == 0
    assert "format cvat, 3 images, 1 classes, 3 instances" in out
    assert "3 of 3 image(s) are missing: frame_000000.png, frame_000001.png, frame_000002.png" in out
    assert "1 problem(s): 3 reported (nothing dropped)" in out
    assert "3 polyline, points, skeleton or cuboid shape(s) skipped" in out and "no problems found" not in out
    # pixel shares come from the annotations and the sizes the file states; no image is opened
    code, out, _ = run(monkeypatch, capsys, "dataset", "inspect", str(root))
    assert code == 0 and "over 3 of 3 images" in out
    # training and conversion need the pixels: one error with the count
    code, _, err = run(monkeypatch, capsys, "dataset", "convert", str(root), str(tmp_path / "out"), "--to", "coco")
    assert code == 2 and err.count("\n") == 1 and "3 of 3 image(s) are missing" in err


def test_images_are_found_where_the_tools_put_them(tmp_path: Path) -> None:
    """images/, JPEGImages/, the folder named after the annotation file, and the base name of a path from
    another machine."""
    from masksmith.data.formats._common import ImageFinder

    root = tmp_path / "set"
    for rel in ("images/a.jpg", "JPEGImages/b.jpg", "val2017/c.jpg", "deep/er/d.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H)).save(root / rel)
    finder = ImageFinder(root, ("val2017",))
    assert finder.find("a.jpg") == root / "images" / "a.jpg"
    assert finder.find("b.jpg") == root / "JPEGImages" / "b.jpg"
    assert finder.find("c.jpg") == root / "val2017" / "c.jpg"
    assert finder.find("file:/Users/ann/Desktop/shots/d.jpg") == root / "deep" / "er" / "d.jpg"
    assert finder.find("C:\\Users\\ann\\a.jpg") == root / "images" / "a.jpg"
    assert finder.find("../../a.jpg") == root / "images" / "a.jpg"  # never outside: its base name inside
    (tmp_path / "outside.jpg").write_bytes(b"x")
    assert finder.find("../outside.jpg") is None and finder.find("/etc/passwd") is None
    for sub in ("x", "y"):  # two files named e.jpg deep below the root
        (root / "deep" / sub).mkdir()
        Image.new("RGB", (W, H)).save(root / "deep" / sub / "e.jpg")
    finder = ImageFinder(root)
    assert finder.find("/home/ann/e.jpg") is None  # not guessed ...
    assert set(finder.ambiguous) == {"e.jpg"}  # ... and said


def test_no_images_left_is_one_clear_error_from_every_command(tmp_path: Path, monkeypatch, capsys) -> None:
    root = tmp_path / "labelme"
    root.mkdir()
    for k in range(2):
        (root / f"car_{k}.json").write_text('{"version": "5.2.1", "imagePath": "a.jpg", "shapes": [')  # cut
    for args in (["dataset", "inspect", str(root), "--lenient"], ["dataset", "preview", str(root), "--lenient",
                                                                   "--out", str(tmp_path / "p.png")],
                 ["dataset", "convert", str(root), str(tmp_path / "c"), "--to", "coco", "--lenient"],
                 ["dataset", "split", str(root), str(tmp_path / "s"), "--lenient"],
                 ["dataset", "tile", str(root), str(tmp_path / "t"), "--lenient"],
                 ["train", str(root), "--lenient", "--runs", str(tmp_path / "runs")]):
        code, out, err = run(monkeypatch, capsys, *args)
        assert code == 2 and "holds no image left to use: 2 problem(s)" in err and "Traceback" not in err, args
    # a CVAT video task and a VIA 3 video project are refused with the reason, never read as 0 images
    video = tmp_path / "video"
    video.mkdir()
    (video / "annotations.xml").write_text('<annotations><version>1.1</version><meta><task><mode>interpolation'
                                           '</mode></task></meta></annotations>')
    code, _, err = run(monkeypatch, capsys, "dataset", "inspect", str(video))
    assert code == 2 and "CVAT for video" in err


def test_statistics_on_data_without_sizes_claim_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    """VIA stores no image size: with the images missing, no pixel can be counted, and none is claimed."""
    root = tmp_path / "via"
    root.mkdir()
    doc = {"car.jpg123": {"filename": "car.jpg", "size": 123, "file_attributes": {},
                          "regions": [{"shape_attributes": {"name": "rect", "x": 1, "y": 1, "width": 5, "height": 5},
                                       "region_attributes": {"name": "dent"}}]}}
    (root / "via_region_data.json").write_text(json.dumps(doc))
    stats = dataset_stats(load_dataset(root, need_pixels=False))
    assert stats.counted_pixels == 0 and stats.background.pixel_share == 0.0 and stats.pixel_images == 0
    code, out, _ = run(monkeypatch, capsys, "dataset", "inspect", str(root))
    assert code == 0 and "no pixels counted" in out and "% objects" not in out


def test_lenient_drops_the_region_and_says_what_it_dropped(tmp_path: Path, monkeypatch, capsys) -> None:
    root = cvat_task(tmp_path / "task", with_images=True)
    xml = root / "annotations.xml"
    xml.write_text(xml.read_text().replace('points="10,10;40,10;40,30;10,30" z_order="0"></polygon>',
                                           'points="10,10;40,10;40,30;10,30" z_order="0"></polygon>'
                                           '<polygon label="bus" points="1,1;5,1;5,5" z_order="1"></polygon>', 1))
    code, out, _ = run(monkeypatch, capsys, "dataset", "inspect", str(root), "--lenient")
    assert code == 0 and "3 images" in out
    assert "1 problem(s): 1 region(s) dropped (the rest of their images kept)" in out and "'bus'" in out


def test_formats_lists_reading_options_and_unknown_keys_are_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    code, out, _ = run(monkeypatch, capsys, "dataset", "formats")
    assert code == 0
    for text in ("masks:", "-o ignore_value=", "-o class_names=", "-o masks=", "-o threshold=", "via:",
                 "-o label_attribute=", "coco:", "-o boxes_as_masks=", "labelme:", "-o instance_suffix="):
        assert text in out, text
    root = cvat_task(tmp_path / "task", with_images=True)
    code, _, err = run(monkeypatch, capsys, "dataset", "inspect", str(root), "-o", "bogus=1")
    assert code == 2 and "format cvat takes no option 'bogus'" in err
    with pytest.raises(DatasetError, match="takes no option 'bogus'.*its options are: .*ignore_value"):
        load_dataset(tmp_path, "masks", bogus=1)


def test_split_takes_counts_as_well_as_fractions(tmp_path: Path, monkeypatch, capsys) -> None:
    from masksmith.data.synthetic import make_sample_dataset

    data = make_sample_dataset(tmp_path / "cars", n_images=12, size=(64, 48), seed=0)
    code, _, _ = run(monkeypatch, capsys, "dataset", "split", str(data), str(tmp_path / "lists"), "--val", "0.25",
                     "--test", "5")
    lengths = {p: len((tmp_path / "lists" / f"{p}.txt").read_text().split()) for p in ("train", "val", "test")}
    assert code == 0 and lengths == {"train": 4, "val": 3, "test": 5}
    code, _, err = run(monkeypatch, capsys, "dataset", "split", str(data), str(tmp_path / "l2"), "--test", "2.5")
    assert code == 2 and "neither a fraction below 1 nor a whole count" in err


def camvid(root: Path) -> Path:
    """Index masks in split folders, value 3 the rare 'unlabelled' one, as SegNet's CamVid ships them."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 2), ("test", 3)):
        for k in range(count):
            (root / split).mkdir(parents=True, exist_ok=True)
            (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
            lab = np.zeros((H, W), np.uint8)
            lab[:, W // 2:] = 1
            lab[H // 2:, :] = 2
            lab[0, :3] = 3
            photo = (lab[..., None] * 80 + rng.integers(0, 20, (H, W, 3))).astype(np.uint8)
            Image.fromarray(photo).save(root / split / f"{split}_{k}.png")
            Image.fromarray(lab, "L").save(root / f"{split}annot" / f"{split}_{k}.png")
    return root


@pytest.fixture(scope="module")
def camvid_run(tmp_path_factory) -> tuple[Path, Path, str]:
    """`masksmith train` on split folders with a reading option, as a user runs it."""
    import subprocess

    tmp = tmp_path_factory.mktemp("journey")
    data = camvid(tmp / "CamVid")
    proc = subprocess.run([sys.executable, "-m", "masksmith.cli", "train", str(data), "--model", "baseline",
                           "--size", "32", "--epochs", "1", "--batch-size", "4", "--name", "camvid",
                           "-o", "ignore_value=3"],
                          capture_output=True, text=True, timeout=900, cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return data, tmp / "runs" / "camvid", proc.stdout


def test_train_uses_train_and_val_splits_and_says_so_first(camvid_run: tuple[Path, Path, str]) -> None:
    data, run_dir, out = camvid_run
    assert "run folder: runs/camvid" in out  # under runs/ in the current folder, said as the user can type it
    summary = out[: out.index("run folder:")]
    assert "images: 6 to train on, 2 to validate on; validating on the val split" in summary
    assert "split folders: test 3, train 6, val 2" in summary and "the test split (3 images) is left for" in summary
    assert "reading options: ignore_value=3" in summary and "void" in summary
    assert "folders: images train/ with masks trainannot/" in summary
    assert "classes (2), share of the training pixels: _background_" in summary


def test_reading_options_travel_with_the_model(camvid_run: tuple[Path, Path, str], tmp_path: Path) -> None:
    import subprocess

    from masksmith.models.artifact import load_artifact

    data, run_dir, _ = camvid_run
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["data_options"] == {"ignore_value": 3}
    training = load_artifact(run_dir / "model.masksmith").training
    assert training["data_options"] == {"ignore_value": 3} and training["data_format"] == "masks"
    proc = subprocess.run([sys.executable, "-m", "masksmith.cli", "evaluate", str(run_dir), str(data), "--out",
                           str(tmp_path / "ev")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "with the options the model was trained with: ignore_value=3" in proc.stdout
    assert "evaluating on the test split (3 images; 8 train/val images left out)" in proc.stdout
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert report["samples_used"].startswith("evaluating on the test split")
    # the classes are the model's two, not three: value 3 stayed void
    assert len(report["at_full_size"]["per_class"]) == 3


def cvat_two_subsets(root: Path, names: tuple[str, ...]) -> Path:
    """A CVAT project export: the same file names in the Train and Validation subsets, images/<subset>/."""
    images, k = [], 0
    for s_index, subset in enumerate(("Train", "Validation")):
        for n_index, name in enumerate(names):
            (root / "images" / subset).mkdir(parents=True, exist_ok=True)
            color = (40 * s_index + 10, 60 * n_index + 20, 90)
            Image.new("RGB", (W, H), color).save(root / "images" / subset / name, quality=95)
            x = 5 + 10 * s_index + 20 * n_index
            images.append(f"""
  <image id="{k}" name="{name}" subset="{subset}" task_id="1" width="{W}" height="{H}">
    <polygon label="car" source="manual" occluded="0" points="{x},5;{x + 15},5;{x + 15},30" z_order="0"></polygon>
  </image>""")
            k += 1
    (root / "annotations.xml").write_text(f"""<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version>
  <meta><project><id>1</id><name>cars</name>
    <labels><label><name>car</name><color>#fa3253</color><type>any</type><attributes></attributes></label></labels>
    <subsets>Train
Validation</subsets>
  </project></meta>{"".join(images)}
</annotations>
""", encoding="utf-8")
    return root


def test_convert_round_trips_names_and_never_merges_two_images(tmp_path: Path) -> None:
    """Names with spaces and accents come back as they were; one name in two subsets stays two images."""
    root = cvat_two_subsets(tmp_path / "cvat", names=("my car 1.jpg", "voiture été.jpg"))
    ds = load_dataset(root)
    names = sorted(s.name for s in ds.samples)
    assert names == ["Train/my car 1.jpg", "Train/voiture été.jpg", "Validation/my car 1.jpg",
                     "Validation/voiture été.jpg"]
    index = ds.class_map.index()
    for to in ("coco", "voc", "masks"):
        out = tmp_path / to
        convert(ds, to, out)
        back = load_dataset(out, to)
        assert len(back.samples) == 4, to
        stems = sorted(Path(s.name).with_suffix("").as_posix().split("/", 1)[-1] if to != "coco" else s.name
                       for s in back.samples)
        assert stems == (names if to == "coco" else [Path(n).with_suffix("").as_posix() for n in names]), to
        by_stem = {Path(s.name).stem + Path(s.name).parent.name: s for s in back.samples}
        for s in ds.samples:
            other = by_stem[Path(s.name).stem + Path(s.name).parent.name]
            assert np.array_equal(semantic_mask(s, index), semantic_mask(other, back.class_map.index())), (to, s.name)
            assert np.array_equal(s.load_image(), other.load_image()), (to, s.name)


def test_problem_header_counts_what_each_problem_dropped() -> None:
    from masksmith.cli.render import problem_header as _problem_header
    from masksmith.data.schema import Problem

    problems = [Problem("a", "r1", "x", dropped="region"), Problem("a", "r2", "x", dropped="region"),
                Problem("b", "", "12 missing", dropped="image", count=12), "photos/bad.png: unreadable"]
    assert _problem_header(problems) == ("4 problem(s): 2 region(s) dropped (the rest of their images kept), "
                                         "12 image(s) dropped, 1 photo(s) skipped")
