"""Shared fixtures. Tests are offline: the hub is switched off before anything imports it.

Tests that need *a* trained model (not training itself) share one small trained run per task, trained once per
session: `semantic_run` and `instance_run`. They are read-only: a test that writes into a run folder (resumes
it, evaluates into it, damages a checkpoint) works on `copy_run(...)` in its own tmp_path, so the tests stay
independent of each other and of their order; the session checks at its end that the shared runs are as
they were trained."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import contextlib  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402
from PIL import Image  # noqa: E402

from masksmith.data.formats import coco  # noqa: E402
from masksmith.data.schema import Dataset, Region, Sample, make_classes  # noqa: E402

# The fuzz tests draw the same examples on every run (CI passes or fails for the code, not for the dice);
# HYPOTHESIS_PROFILE=explore draws new ones to hunt for bugs.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


def _main() -> int:
    """masksmith's CLI entry point under the argv already set: its exit code."""
    from masksmith.cli import main

    try:
        main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def run_cli(monkeypatch, capsys, *args: object) -> CliResult:
    """masksmith's CLI in this process, as a user runs it: exit code, stdout and stderr of this command only.
    An exception escaping main() fails the test (the CLI must never show a traceback)."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["masksmith", *map(str, args)])
    code = _main()
    out = capsys.readouterr()
    return CliResult(code, out.out, out.err)


def run_cli_in(folder: Path, *args: object) -> CliResult:
    """As run_cli, from `folder` as the current folder, for fixtures wider than one test (no capsys there)."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        mp.setattr(sys, "argv", ["masksmith", *map(str, args)])
        mp.chdir(folder)
        code = _main()
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Zip extraction, the fingerprints and the sample data set go to a per-session cache, never the user's
    (set for the whole session, so the shared trained runs use it too)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MASKSMITH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield


def make_small_dataset(root: Path, sizes=((70, 50), (64, 64), (33, 47))) -> Dataset:
    """Three photos with a square 'box' and a triangle 'roof' (overlapping), as a Dataset with image files."""
    root.mkdir(parents=True, exist_ok=True)
    samples = []
    rng = np.random.default_rng(0)
    for k, (w, h) in enumerate(sizes):
        path = root / f"photo_{k}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        box = [[2, 2], [w * 0.6, 2], [w * 0.6, h * 0.6], [2, h * 0.6]]
        roof = [[w * 0.3, h * 0.3], [w - 1, h * 0.5], [w * 0.4, h - 1]]
        samples.append(Sample(name=path.name, image_path=path, width=w, height=h,
                              regions=[Region("box", [np.array(box)]), Region("roof", [np.array(roof)])]))
    return Dataset(classes=make_classes(["box", "roof"]), samples=samples, format="test", root=root)


@pytest.fixture
def small_coco(tmp_path: Path) -> Path:
    """A small COCO data set on disk (folder with annotations.json and images/)."""
    ds = make_small_dataset(tmp_path / "src")
    out = tmp_path / "coco"
    coco.write(ds, out)
    return out


# ------------------------------------------------------------------------------------ shared trained runs
class TrainedRun(NamedTuple):
    run: Path  # the run folder (model.masksmith, checkpoints/, previews/, evaluation/validation/, report.html)
    data: Path  # the data set it was trained on (the sample cars: body, wheel, window, light)
    out: str  # what training printed


def _checksums(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "/"
            for p in sorted(folder.rglob("*"))}


@contextlib.contextmanager
def _kept_as_trained(trained: TrainedRun):
    before = _checksums(trained.run)
    yield trained
    after = _checksums(trained.run)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, (f"a test wrote into the shared run {trained.run} ({', '.join(changed[:8])}); "
                         "copy it first with copy_run()")


def copy_run(trained: TrainedRun | Path, folder: Path) -> Path:
    """A copy of a shared run folder (`folder`/<its name>) that a test may write into."""
    run = trained.run if isinstance(trained, TrainedRun) else trained
    return Path(shutil.copytree(run, folder / run.name, symlinks=True))


@pytest.fixture(scope="session")
def semantic_cars(tmp_path_factory) -> Path:
    """16 sample cars of about 96x72 (body, wheel, window, light): the shared semantic run's data."""
    from masksmith.data.synthetic import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("semantic-cars") / "cars", n_images=16, size=(96, 72), seed=1)


@pytest.fixture(scope="session")
def semantic_run(semantic_cars: Path, tmp_path_factory) -> TrainedRun:
    """A U-Net (the default model, on its offline pretrained encoder, small decoder) trained 3 epochs at 64 px
    on the 16 `semantic_cars`, 4 held out for validation: run folder, previews per epoch, validation scores,
    report. Enough steps (batch 2, learning rate 0.01) that it is sure of a car and unsure of a blank picture."""
    from masksmith import service
    from masksmith.train.config import TrainConfig

    config = TrainConfig(data=str(semantic_cars), size=64, epochs=3, batch_size=2, lr=1e-2, name="tiny",
                         decoder_channels=[32, 16, 16, 8, 8], runs_dir=str(tmp_path_factory.mktemp("semantic-run")),
                         preview_images=2, val_fraction=0.25)
    with _kept_as_trained(TrainedRun(service.train(config), semantic_cars, "")) as trained:
        yield trained


@pytest.fixture(scope="session")
def instance_cars(tmp_path_factory) -> Path:
    """10 sample cars of about 128x96: the shared instance run's data."""
    from masksmith.data.synthetic import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("instance-cars") / "cars", n_images=10, size=(128, 96),
                               seed=3)


@pytest.fixture(scope="session")
def instance_run(instance_cars: Path, tmp_path_factory) -> TrainedRun:
    """Mask R-CNN on Lite0 trained 2 epochs at 128 px on the 10 `instance_cars` (2 for validation), by
    `masksmith train` as a user runs it (in this process, from the folder its runs/ lies in)."""
    root = tmp_path_factory.mktemp("instance-run")
    code, out, err = run_cli_in(root, "train", instance_cars, "--model", "maskrcnn_lite0", "--size", "128",
                                "--epochs", "2", "--batch-size", "4", "--val", "0.2", "--name", "inst")
    assert code == 0, err[-3000:]
    with _kept_as_trained(TrainedRun(root / "runs" / "inst", instance_cars, out)) as trained:
        yield trained


@pytest.fixture
def web(tmp_path: Path, coco: Path):
    """A web app (test client) with the requesting module's `coco` data set added as "cars": (client, id)."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from masksmith.web.app import create_app

    client = TestClient(create_app(tmp_path / "data", load_sample=False, watch=False),
                        base_url="http://127.0.0.1:8765")
    made = client.post("/api/datasets/folder", json={"path": str(coco), "name": "cars"}).json()
    return client, made["id"]
