"""Mask R-CNN in ONNX (issue 26): export with dynamic image size, detection parity (matched boxes, classes,
scores, masks) checked before the file is written, an ONNX-backed InstancePredictor, `predict --backend onnx`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from masksmith.infer import open_predictor
from masksmith.infer.export import detection_parity, export_onnx
from masksmith.infer.runtime import OnnxNetwork, read_onnx_artifact
from masksmith.models.artifact import ModelArtifact, build_network, load_artifact, save_artifact
from masksmith.models.instance import build_instance_model, instance_model_config, instance_normalisation

sys.path.insert(0, str(Path(__file__).parent))
from test_onnx import photos  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
CLASSES = ["box", "ring", "dot"]


@pytest.fixture(scope="module")
def instance_model(tmp_path_factory) -> Path:
    """A Mask R-CNN (Lite0 with its offline ImageNet weights, 128 px) whose heads are random: its detections
    are many and low-scored, a harder parity case than a trained model's few decisive ones."""
    config = instance_model_config("maskrcnn_lite0", 128)
    torch.manual_seed(0)
    net = build_instance_model(config, len(CLASSES), pretrained=True)
    mean, std = instance_normalisation(config)
    artifact = ModelArtifact("instance", config, CLASSES, [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]],
                             {"mean": list(mean), "std": list(std), "input_mode": "instance",
                              "input_range": [0.0, 1.0], "size": [128, 128], "max_size": 128},
                             state_dict=net.state_dict())
    return save_artifact(artifact, tmp_path_factory.mktemp("mrcnn") / "model.masksmith")


def test_export_checks_detection_parity_on_two_sizes_and_predicts_through_onnx(instance_model: Path,
                                                                                tmp_path: Path) -> None:
    report = export_onnx(instance_model, tmp_path / "cars.onnx")
    assert report.ok, report.parity.describe()
    parity = report.parity
    assert parity.images == 2 and parity.reference > 0 and parity.matched == parity.reference
    assert parity.min_mask_iou >= 0.99 and parity.max_score <= 0.01 and parity.extra == 0
    artifact = read_onnx_artifact(report.path)
    assert artifact.task == "instance" and artifact.classes == CLASSES

    # dynamic size: shapes never seen at export give PyTorch's detections too
    net = build_network(load_artifact(instance_model))
    net.roi_heads.score_thresh = 0.05
    onnx_net = OnnxNetwork(report.path)
    inputs = [torch.rand(3, 90, 130), torch.rand(3, 128, 64)]
    assert all(onnx_net([x])[0]["masks"].shape[-2:] == x.shape[-2:] for x in inputs)
    assert detection_parity(net, onnx_net, inputs).ok()

    torch_p, onnx_p = open_predictor(instance_model, score_threshold=0.2), open_predictor(report.path,
                                                                                          score_threshold=0.2)
    assert onnx_p.backend == "onnx" and torch_p.backend == "torch"
    image = (np.random.default_rng(3).random((150, 200, 3)) * 255).astype(np.uint8)  # shrunk to 128 first
    a, b = torch_p.predict(image), onnx_p.predict(image)
    assert len(a) == len(b) > 0 and all(i.score >= 0.2 for i in b)
    for x, y in zip(a, b, strict=True):
        assert x.label == y.label and abs(x.score - y.score) < 0.01 and x.mask.shape == (150, 200)
        assert np.abs(np.subtract(x.box, y.box)).max() < 1.0
        assert (x.mask & y.mask).sum() / max(1, (x.mask | y.mask).sum()) >= 0.99


def test_export_that_fails_detection_parity_writes_nothing(instance_model: Path, tmp_path: Path,
                                                          monkeypatch) -> None:
    import masksmith.infer.export as export

    monkeypatch.setattr(export, "MASK_IOU", 1.01)  # a bar no export can pass
    report = export_onnx(instance_model, tmp_path / "x.onnx")
    assert not report.ok and not (tmp_path / "x.onnx").exists()


def test_predict_backend_onnx_for_an_instance_model(instance_model: Path, tmp_path: Path, monkeypatch,
                                                    capsys) -> None:
    src = photos(tmp_path / "photos", 2)
    code, out, err = run_cli(monkeypatch, capsys, "predict", instance_model, src, "--out", tmp_path / "o",
                             "--backend", "onnx", "--score", "0.2")
    assert code == 0, err
    assert "backend: ONNX Runtime (exported in memory" in out
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "o").glob("*_instances.json"))]
    assert len(records) == 2 and all(o["score"] >= 0.2 for r in records for o in r["instances"])
    code, out, err = run_cli(monkeypatch, capsys, "export", instance_model, "--int8", "--calibrate", src)
    assert code == 2 and "INT8 export covers semantic models" in err
