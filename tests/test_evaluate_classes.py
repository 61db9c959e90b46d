"""`evaluate` on data whose classes only partly match the model's (issue 24): it says which classes match,
which are missing on each side and what becomes of them, and refuses data that shares none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli
from masksmith.core.errors import MasksmithError
from masksmith.data.formats import coco
from masksmith.data.schema import Dataset, Region, Sample, make_classes
from masksmith.models.artifact import ModelArtifact, save_artifact
from masksmith.models.semantic import ModelConfig, SegmentationNet, build_model
from masksmith.service import check_class_overlap

MODEL_CLASSES = ["box", "roof", "wheel"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    config = ModelConfig(arch="baseline", num_outputs=len(MODEL_CLASSES) + 1, extra={"width": 8})
    torch.manual_seed(0)
    net = SegmentationNet(build_model(config, pretrained=False), (0.5,) * 3, (0.5,) * 3)
    artifact = ModelArtifact("semantic", config.to_dict(), list(MODEL_CLASSES),
                             [[0, 0, 0], [200, 0, 0], [0, 200, 0], [0, 0, 200]],
                             {"mean": [0.5] * 3, "std": [0.5] * 3, "input_mode": "resize", "size": [32, 32]},
                             state_dict=net.state_dict())
    return save_artifact(artifact, tmp_path_factory.mktemp("model") / "model.masksmith")


def coco_set(root: Path, classes: list[str]) -> Path:
    """Two photos, one square region of each class, written as COCO."""
    root.mkdir(parents=True, exist_ok=True)
    samples = []
    for k in range(2):
        path = root / f"photo_{k}.png"
        Image.fromarray(np.full((40, 48, 3), 40 + 60 * k, np.uint8)).save(path)
        regions = [Region(name, [np.array([[2 + 12 * j, 2], [12 + 12 * j, 2], [12 + 12 * j, 30], [2 + 12 * j, 30]])])
                   for j, name in enumerate(classes)]
        samples.append(Sample(name=path.name, image_path=path, width=48, height=40, regions=regions))
    out = root.parent / f"{root.name}_coco"
    coco.write(Dataset(classes=make_classes(classes), samples=samples, format="test", root=root), out)
    return out


def test_the_overlap_names_each_side() -> None:
    overlap = check_class_overlap(["box", "roof", "wheel"], ["roof", "sky", "box"], "data")
    assert (overlap.matched, overlap.model_only, overlap.data_only) == (["box", "roof"], ["wheel"], ["sky"])
    assert overlap.partial
    assert overlap.note() == ("2 of the model's 3 classes are in the data (box, roof); missing from the data: wheel "
                              "(pixels the model gives them count as wrong); missing from the model: sky (their "
                              "pixels are scored as background)")
    assert "(what the model finds of them has nothing to match)" in check_class_overlap(["a", "b"], ["a"], "d",
                                                                                      "instance").note()
    assert not check_class_overlap(["a", "b"], ["b", "a"], "d").partial


def test_no_shared_class_is_refused_naming_both_lists() -> None:
    with pytest.raises(MasksmithError) as err:
        check_class_overlap(["box", "roof"], ["sky", "road"], "data")
    text = str(err.value)
    assert text.startswith("data: none of the data set's classes (sky, road) are the model's (box, roof).")
    assert "`options`" in text  # the library names the setting; each front spells it


def test_evaluate_in_the_library_says_which_classes_match(model_file: Path, tmp_path: Path) -> None:
    from masksmith import service

    data = coco_set(tmp_path / "half", ["box", "sky"])
    heard: list[str] = []
    evaluation = service.evaluate(model_file, data, tmp_path / "eval", announce=heard.append)
    note = ("1 of the model's 3 classes are in the data (box); missing from the data: roof, wheel (pixels the model "
            "gives them count as wrong); missing from the model: sky (their pixels are scored as background)")
    assert note in heard and evaluation.notes == [note]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["notes"] == [note]
    from masksmith.evaluate.result import Evaluation

    assert Evaluation.from_dict(json.loads((tmp_path / "eval" / "metrics.json").read_text())).notes == [note]
    whole = service.evaluate(model_file, coco_set(tmp_path / "all", MODEL_CLASSES), save=False)
    assert whole.notes == []


def test_evaluate_on_the_command_line_says_which_classes_match(model_file: Path, tmp_path: Path, monkeypatch,
                                                               capsys) -> None:
    data = coco_set(tmp_path / "half", ["box", "sky"])
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", model_file, data, "--out", tmp_path / "eval")
    assert code == 0, err
    assert "1 of the model's 3 classes are in the data (box); missing from the data: roof, wheel" in out
    assert "missing from the model: sky (their pixels are scored as background)" in out


def test_evaluate_on_the_command_line_refuses_data_sharing_no_class(model_file: Path, tmp_path: Path,
                                                                   monkeypatch, capsys) -> None:
    data = coco_set(tmp_path / "other", ["sky", "road"])
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", model_file, data, "--out", tmp_path / "eval")
    text = out + err
    assert code == 2 and "none of the data set's classes (sky, road) are the model's (box, roof, wheel)" in text
    assert "--option" in text and "`" not in text and "Traceback" not in text
    assert len(text.strip().splitlines()) == 1 and not (tmp_path / "eval").exists()
