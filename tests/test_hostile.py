"""Hostile and careless input (issue 13): each case ends in one clear line naming the file and the fix, writes
nothing outside its output folder, leaves the inputs as they were, and never crashes or shows a traceback."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from masksmith.cli import main
from masksmith.data import load_dataset
from masksmith.errors import DatasetError


# ---------------------------------------------------------------------------------------------------- helpers
def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """The CLI in process: (exit code, stdout + stderr). An exception escaping main() fails the test."""
    monkeypatch.setattr(sys, "argv", ["masksmith", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out + out.err


def checksums(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def coco_doc(images: list[dict], annotations: list[dict] | None = None, categories: list[dict] | None = None):
    return {"images": images, "annotations": annotations or [],
            "categories": categories if categories is not None else [{"id": 1, "name": "part"}]}


def write_coco(folder: Path, doc: dict, images: dict[str, tuple[int, int]] | None = None) -> Path:
    """folder/annotations.json and the named images (w, h) beside it."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, (w, h) in (images or {}).items():
        Image.new("RGB", (w, h), (90, 120, 150)).save(folder / name)
    (folder / "annotations.json").write_text(json.dumps(doc))
    return folder / "annotations.json"


# ---------------------------------------------------------------------------------------- 3. silently wrong data
def test_coco_duplicate_image_ids_name_both_files(tmp_path: Path) -> None:
    file = write_coco(tmp_path / "d", coco_doc([{"id": 1, "file_name": "a.png", "width": 8, "height": 8},
                                                {"id": 1, "file_name": "b.png", "width": 8, "height": 8}]),
                      {"a.png": (8, 8), "b.png": (8, 8)})
    for strict in (True, False):  # lenient too: which masks belong to which photo is unknown
        with pytest.raises(DatasetError) as err:
            load_dataset(file, strict=strict)
        text = str(err.value)
        assert str(file) in text and "image id 1" in text and "'a.png'" in text and "'b.png'" in text
        assert "Fix: give each image its own id" in text


def test_coco_duplicate_category_ids_are_an_error(tmp_path: Path) -> None:
    file = write_coco(tmp_path / "d", coco_doc([{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
                                               categories=[{"id": 3, "name": "door"}, {"id": 3, "name": "hood"}]),
                      {"a.png": (8, 8)})
    with pytest.raises(DatasetError, match=r"category id 3 is declared twice, as 'door' and as 'hood'.*Fix: "):
        load_dataset(file, strict=False)


# ----------------------------------------------------------------------------------------------- 4. RLE bombs
def rle_doc(segmentation: dict, w: int = 8, h: int = 8) -> dict:
    return coco_doc([{"id": 1, "file_name": "a.png", "width": w, "height": h}],
                    [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": segmentation, "iscrowd": 1}])


@pytest.mark.parametrize(("segmentation", "words"), [
    ({"size": [200000, 200000], "counts": "PPYo1"}, "RLE size is 200000x200000 but its image is 8x8"),
    ({"size": [8, 8], "counts": [10**10]}, "do not add up"),
    ({"size": [8, 8], "counts": [64, -1, 1]}, "do not add up"),
    ({"size": [8, 8], "counts": "0000zzzz"}, "cannot be decoded"),
    ({"size": [8, 8], "counts": "\u00e9t\u00e9"}, "cannot be decoded"),
    ({"size": [0, 8], "counts": ""}, "is empty"),
])
def test_rle_sizes_and_counts_are_checked_before_decoding(tmp_path: Path, segmentation: dict, words: str) -> None:
    file = write_coco(tmp_path / "d", rle_doc(segmentation), {"a.png": (8, 8)})
    with pytest.raises(DatasetError) as err:
        load_dataset(file)
    assert words in str(err.value) and str(file) in str(err.value) and "annotation 1" in str(err.value)
    ds = load_dataset(file, strict=False)  # lenient: the region is dropped, the photo kept
    assert len(ds.samples) == 1 and ds.samples[0].regions == [] and ds.problems[0].dropped == "region"


def test_rle_larger_than_any_photo_is_refused_when_the_image_size_is_unknown(tmp_path: Path) -> None:
    doc = rle_doc({"size": [200000, 200000], "counts": "PPYo1"}, w=0, h=0)
    file = write_coco(tmp_path / "d", doc)
    with pytest.raises(DatasetError, match="more than the 178 megapixels"):
        load_dataset(file, need_pixels=False)


def test_inspect_of_a_200000_pixel_rle_does_not_crash_the_process(tmp_path: Path) -> None:
    """It segfaulted in pycocotools once: run in a child process, so a regression cannot take pytest down."""
    file = write_coco(tmp_path / "d", rle_doc({"size": [200000, 200000], "counts": "PPYo1"}, w=0, h=0))
    done = subprocess.run([sys.executable, "-m", "masksmith.cli", "dataset", "inspect", str(file)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: {file}") and "megapixels" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_valid_rles_still_read(tmp_path: Path) -> None:
    import numpy as np
    from pycocotools import mask as mask_utils

    m = np.zeros((8, 8), np.uint8, order="F")
    m[2:5, 1:7] = 1
    packed = mask_utils.encode(m)
    for seg in ({"size": [8, 8], "counts": packed["counts"].decode()}, {"size": [8, 8], "counts": [17, 3, 5, 3, 5,
                                                                                              3, 28]}):
        ds = load_dataset(write_coco(tmp_path / "ok", rle_doc(seg), {"a.png": (8, 8)}))
        assert len(ds.samples[0].regions) == 1
