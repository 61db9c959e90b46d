"""The command line as a user meets it: reports, files written, and errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli

run = run_cli  # (exit code, stdout, stderr) of one command, in this process


def test_inspect_reports_format_counts_and_shares(small_coco: Path, monkeypatch, capsys) -> None:
    code, out, _ = run(monkeypatch, capsys, "dataset", "inspect", str(small_coco))
    assert code == 0
    assert "format coco, 3 images, 2 classes, 6 instances" in out
    assert "_background_" in out and "box" in out and "roof" in out and "no problems found" in out


def test_inspect_json(small_coco: Path, monkeypatch, capsys) -> None:
    code, out, _ = run(monkeypatch, capsys, "dataset", "inspect", str(small_coco), "--json")
    report = json.loads(out)
    assert code == 0 and report["images"] == 3 and report["instances"] == 6
    assert abs(sum(c["pixel_share"] for c in report["per_class"]) - 1) < 1e-9


def test_convert_preview_split_tile(small_coco: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    code, out, _ = run(monkeypatch, capsys, "dataset", "convert", str(small_coco), "--to", "coco",
                       str(tmp_path / "again"))
    assert code == 0 and (tmp_path / "again" / "annotations.json").exists()
    code, _, _ = run(monkeypatch, capsys, "dataset", "preview", str(small_coco), "--out", str(tmp_path / "p.png"))
    picture = np.asarray(Image.open(tmp_path / "p.png"))
    assert code == 0 and picture.ndim == 3 and picture.shape[0] > 256
    code, out, _ = run(monkeypatch, capsys, "dataset", "split", str(small_coco), str(tmp_path / "split"),
                       "--val", "0.34")
    assert code == 0 and len((tmp_path / "split" / "val.txt").read_text().split()) == 1
    code, out, _ = run(monkeypatch, capsys, "dataset", "tile", str(small_coco), str(tmp_path / "tiles"),
                       "--size", "32", "--to", "coco")
    assert code == 0 and "into 14 tiles" in out and (tmp_path / "tiles" / "tiles.json").exists()


def test_bad_input_prints_one_clear_line_and_exits_nonzero(tmp_path: Path) -> None:
    broken = tmp_path / "annotations.json"
    broken.write_text('{"images": [{"file_name": "a.jpg", "id": 1')
    proc = subprocess.run([sys.executable, "-m", "masksmith.cli", "dataset", "inspect", str(broken), "-f", "coco"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "annotations.json: is not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_lenient_lists_skipped_items(small_coco: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    (small_coco / "images" / "photo_1.png").unlink()
    # conversion needs the pixels: it stops once, with the count
    code, _, err = run(monkeypatch, capsys, "dataset", "convert", str(small_coco), str(tmp_path / "o"), "--to", "coco")
    assert code == 2 and "1 of 3 image(s) is missing: photo_1.png" in err and "--lenient" in err
    code, out, _ = run(monkeypatch, capsys, "dataset", "convert", str(small_coco), str(tmp_path / "o"), "--to", "coco",
                       "--lenient")
    assert code == 0 and "wrote 2 images" in out and "1 image(s) dropped" in out and "photo_1.png" in out


@pytest.mark.parametrize("args", [["dataset", "convert", "x", "y", "--to", "coco"], ["dataset", "inspect", "x"]])
def test_missing_path(args: list[str], monkeypatch, capsys) -> None:
    code, _, err = run(monkeypatch, capsys, *args)
    assert code == 2 and "x: does not exist" in err
