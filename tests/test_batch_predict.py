"""Batch prediction: streams, resumes after an interruption writing each output once, leaves no half-written
file, and writes a summary of pixels per class."""

from __future__ import annotations

import csv
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from masksmith.infer import open_predictor
from masksmith.infer.batch import predict_batch, prefetch
from masksmith.models.artifact import save_artifact

sys.path.insert(0, str(Path(__file__).parent))
from test_onnx import photos, tiny_artifact  # noqa: E402


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return save_artifact(tiny_artifact("baseline"), tmp_path / "model.masksmith")


def outputs_of(out: Path) -> dict[str, int]:
    """Output file -> inode (a file written again atomically is a new inode)."""
    return {p.name: p.stat().st_ino for p in out.iterdir() if p.suffix in (".png", ".jpg")}


def test_interrupted_run_resumes_and_writes_each_output_once(model: Path, tmp_path: Path) -> None:
    src = photos(tmp_path / "photos", 7)
    out = tmp_path / "out"
    predictor = open_predictor(model)
    calls: list[int] = []
    original = predictor.predict
    stop_at = [4]

    def counting(image):
        calls.append(1)
        if len(calls) == stop_at[0]:  # Ctrl-C while the fourth photo is being predicted
            stop_at[0] = 0
            raise KeyboardInterrupt
        return original(image)

    predictor.predict = counting
    interrupted = False
    try:
        for _ in predict_batch(predictor, [src], out, summary=out / "summary.csv"):
            pass
    except KeyboardInterrupt:
        interrupted = True
    assert interrupted
    first = outputs_of(out)
    assert len(first) == 3 * 3  # three photos done, each with mask, overlay and colour
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no half-written file
    assert not (out / "summary.csv").exists()  # the summary appears only when a run completes

    calls.clear()
    progress: list[tuple[int, int]] = []
    rows = list(predict_batch(predictor, [src], out, summary=out / "summary.csv",
                              progress=lambda d, t: progress.append((d, t))))
    assert len(calls) == 4  # only the photos not done before
    assert [r["status"] for r in rows] == ["existing"] * 3 + ["predicted"] * 4
    assert progress[0] == (0, 4) and progress[-1] == (4, 4)
    second = outputs_of(out)
    assert len(second) == 7 * 3
    assert all(second[name] == inode for name, inode in first.items())  # the first three were not rewritten

    with open(out / "summary.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [Path(r["image"]).name for r in table] == sorted(p.name for p in src.iterdir())
    for r in table:  # counts from the masks, including the three photos of the first run
        mask = np.asarray(Image.open(out / f"{Path(r['image']).stem}_mask.png"))
        assert int(r["width"]) * int(r["height"]) == mask.size
        assert int(r["pixels_box"]) == int((mask == 1).sum())
        assert sum(int(r[f"pixels_{n}"]) for n in ["background", "box", "left_flag", "right_flag"]) == mask.size

    calls.clear()
    again = list(predict_batch(predictor, [src], out, overwrite=True))
    assert len(calls) == 7 and all(r["status"] == "predicted" for r in again)


def test_a_photo_with_some_outputs_missing_is_predicted_again(model: Path, tmp_path: Path) -> None:
    src = photos(tmp_path / "photos", 2)
    out = tmp_path / "out"
    predictor = open_predictor(model)
    list(predict_batch(predictor, [src], out))
    (out / "photo_01_overlay.jpg").unlink()
    rows = list(predict_batch(predictor, [src], out))
    assert [r["status"] for r in rows] == ["existing", "predicted"]


def test_reading_runs_ahead_in_a_bounded_background_thread() -> None:
    started: list[int] = []
    main_thread = threading.get_ident()
    threads: set[int] = set()

    def load(i: int) -> int:
        threads.add(threading.get_ident())
        started.append(i)
        return i * 10

    stream = prefetch(range(100), load, depth=3)
    assert next(stream) == (0, 0)
    time.sleep(0.3)
    assert len(started) <= 1 + 3 + 1  # the one handed over, a full queue, one waiting to be put
    assert main_thread not in threads
    assert [v for _, v in stream] == [i * 10 for i in range(1, 100)]

    def failing(i: int) -> int:
        if i == 2:
            raise ValueError("bad photo")
        return i

    results = list(prefetch(range(4), failing))
    assert [r for _, r in results][:2] == [0, 1] and isinstance(results[2][1], ValueError)
    assert results[3] == (3, 3)


def test_cli_predict_batch_with_summary_and_rerun(model: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    src = photos(tmp_path / "photos", 3)
    (src / "broken.png").write_bytes(b"not a png")

    def cli(*args: str) -> tuple[int, str, str]:
        return run_cli(monkeypatch, capsys, *args)

    out = tmp_path / "results"
    code, stdout, err = cli("predict", str(model), str(src), "--out", str(out), "--summary",
                            str(tmp_path / "results.csv"), "--lenient", "--backend", "onnx")
    assert code == 0, err
    assert "predicted 3 image(s)" in stdout and "1 photo(s) skipped" in stdout and "broken.png" in stdout
    with open(tmp_path / "results.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 3
    code, stdout, _ = cli("predict", str(model), str(src), "--out", str(out), "--lenient")
    assert code == 0 and "predicted 0 image(s)" in stdout and "3 already there, kept" in stdout
    code, _, err = cli("predict", str(model), str(src), "--out", str(out), "--backend", "tensorflow")
    assert code == 2 and "unknown backend 'tensorflow'" in err
