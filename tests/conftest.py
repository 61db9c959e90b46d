"""Shared fixtures. Tests are offline: the hub is switched off before anything imports it."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

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


def run_cli(monkeypatch, capsys, *args: object) -> CliResult:
    """masksmith's CLI in this process, as a user runs it: exit code, stdout and stderr of this command only.
    An exception escaping main() fails the test (the CLI must never show a traceback)."""
    from masksmith.cli import main

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["masksmith", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return CliResult(code, out.out, out.err)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Zip extraction and the sample data set go to a per-session cache, never the user's."""
    monkeypatch.setenv("MASKSMITH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


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
