"""`predict --engine ray` (issue 26): on a local Ray with 2 CPUs it writes the very files the local engine writes,
a re-run skips finished photos, and a worker killed mid-run loses no output and duplicates none."""

from __future__ import annotations

import csv
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the Ray engine is an optional extra: pip install 'masksmith[ray]'")

from conftest import run_cli  # noqa: E402
from masksmith.infer import open_predictor  # noqa: E402
from masksmith.infer.batch import predict_batch  # noqa: E402
from masksmith.infer.distributed import predict_with_ray  # noqa: E402
from masksmith.models.artifact import save_artifact  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_onnx import photos, tiny_artifact, trained_baseline  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def local_ray():
    from masksmith.infer.distributed import start_ray

    start_ray(None, 2)  # as `predict --engine ray` starts it: 2 CPUs, workers at normal priority
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ray")
    model = save_artifact(tiny_artifact("baseline", net=trained_baseline()), root / "model.masksmith")
    return model, photos(root / "photos", 30, size=(120, 160))


def files_of(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.suffix in (".png", ".jpg", ".json")}


def summary_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return sorted(csv.DictReader(f), key=lambda r: r["image"])


def test_ray_engine_writes_the_local_engines_files_and_reruns_skip(local_ray, setup, tmp_path: Path) -> None:
    model, src = setup
    local = list(predict_batch(open_predictor(model), [src], tmp_path / "local", summary=tmp_path / "local.csv"))
    rows = list(predict_with_ray(model, [src], tmp_path / "ray", workers=2, summary=tmp_path / "ray.csv"))
    assert len(rows) == len(local) == 30 and {r["status"] for r in rows} == {"predicted"}
    expected, got = files_of(tmp_path / "local"), files_of(tmp_path / "ray")
    assert len(expected) == 90 and sorted(got) == sorted(expected)
    assert all(got[name] == expected[name] for name in expected), "a file differs from the local engine's"
    assert [{k: v for k, v in r.items() if k not in ("mask", "overlay", "color")} for r in
            summary_rows(tmp_path / "ray.csv")] == summary_rows(tmp_path / "local.csv")

    inodes = {p.name: p.stat().st_ino for p in (tmp_path / "ray").iterdir()}
    again = list(predict_with_ray(model, [src], tmp_path / "ray", workers=2))
    assert [r["status"] for r in again] == ["existing"] * 30
    assert {p.name: p.stat().st_ino for p in (tmp_path / "ray").iterdir()} == inodes  # nothing written again

    listed = tmp_path / "photos.txt"  # a list file: one path a line, relative to the list's folder
    listed.write_text("# three photos\n" + "".join(f"{src.name}/photo_0{k}.png\n" for k in range(3)))
    (tmp_path / src.name).symlink_to(src)
    rows = list(predict_with_ray(model, [listed], tmp_path / "listed", workers=2, save="mask"))
    assert sorted(Path(r["mask"]).name for r in rows) == [f"photo_0{k}_mask.png" for k in range(3)]
    assert all((tmp_path / "listed" / n).read_bytes() == expected[n] for n in
               (f"photo_0{k}_mask.png" for k in range(3)))


def worker_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"PredictAndWrite" in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_a_worker_killed_mid_run_loses_no_output_and_duplicates_none(local_ray, setup, tmp_path: Path) -> None:
    model, src = setup
    expected = files_of(_local(model, src, tmp_path / "local"))
    out = tmp_path / "ray"
    killed: list[int] = []

    def kill_one() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not killed:
            done = len(list(out.glob("*_mask.png"))) if out.exists() else 0
            pids = worker_pids()
            if 3 <= done < 25 and pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    rows = list(predict_with_ray(model, [src], out, workers=2))
    killer.join(timeout=5)
    assert killed, "no worker was killed while the photos were being predicted"
    assert len(rows) == 30 and len({r["image"] for r in rows}) == 30  # every photo once
    got = files_of(out)
    assert sorted(got) == sorted(expected)  # none lost, none added (a retried photo replaces its own files)
    assert all(got[n] == expected[n] for n in expected)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no half-written file left


def _local(model: Path, src: Path, out: Path) -> Path:
    list(predict_batch(open_predictor(model), [src], out))
    return out


def test_cli_engine_ray_and_the_one_line_errors(local_ray, setup, tmp_path: Path, monkeypatch, capsys) -> None:
    model, src = setup
    code, out, err = run_cli(monkeypatch, capsys, "predict", model, src, "--out", tmp_path / "o", "--engine", "ray",
                             "--save", "mask", "--backend", "torch")
    assert code == 0, err
    assert "predicted 30 image(s)" in out and len(list((tmp_path / "o").glob("*_mask.png"))) == 30
    code, _, err = run_cli(monkeypatch, capsys, "predict", model, src, "--out", tmp_path / "p", "--engine", "spark")
    assert code == 2 and "unknown engine 'spark'" in err and len(err.strip().splitlines()) == 1
