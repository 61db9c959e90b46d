"""ONNX export (its parity over every registered model is in test_models.py's every-model suite): the
metadata round trip, one Predictor on both backends, INT8 parity, and bad input as one line each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli
from masksmith.core.errors import MasksmithError
from masksmith.infer import open_predictor
from masksmith.infer.export import (
    FLOAT_EQUAL_SHARE,
    FLOAT_LOGIT_TOLERANCE,
    INT8_EQUAL_SHARE,
    export_network,
    export_onnx,
    parity,
    sample_inputs,
)
from masksmith.infer.predictor import Predictor
from masksmith.infer.runtime import OnnxNetwork, artifact_metadata, read_onnx_artifact
from masksmith.models.artifact import ModelArtifact, build_network, save_artifact
from masksmith.models.semantic import ModelConfig, SegmentationNet, build_model

CLASSES = ["box", "left_flag", "right_flag"]


def tiny_artifact(arch: str, *, mode: str = "resize", size: int = 64, side: bool = False,
                  net: torch.nn.Module | None = None) -> ModelArtifact:
    config = ModelConfig(arch=arch, num_outputs=len(CLASSES) + 1, decoder_channels=[16, 8, 8, 8, 8],
                         side_pairs=[[2, 3]] if side else None, extra={"width": 8})
    torch.manual_seed(0)
    net = net or SegmentationNet(build_model(config, pretrained=False), (0.5,) * 3, (0.5,) * 3)
    preprocessing = {"mean": [0.5] * 3, "std": [0.5] * 3, "input_mode": mode, "size": [size, size]}
    if mode == "scale":
        preprocessing["scale"] = 0.5
    return ModelArtifact("semantic", config.to_dict(), CLASSES, [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]],
                         preprocessing, flip_pairs=[["left_flag", "right_flag"]], training={"epochs": 1},
                         state_dict=net.state_dict())


def photos(folder: Path, count: int, seed: int = 0, size: tuple[int, int] = (72, 90)) -> Path:
    """Photos with a bright square (class 1) on a dark noisy background."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(count):
        h, w = size[0] + 3 * (k % 3), size[1] + 5 * (k % 2)
        image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        image[y:y + h // 3, x:x + w // 3] = 230
        Image.fromarray(image).save(folder / f"photo_{k:02d}.png")
    return folder


run = run_cli  # (exit code, stdout, stderr) of one command, in this process


def test_side_factored_head_exports_the_same_per_class_logits() -> None:
    artifact = tiny_artifact("unet", side=True)
    net = build_network(artifact)
    onnx_net = OnnxNetwork(export_network(net, artifact))
    x = sample_inputs(artifact)[1]
    out = onnx_net(x)
    assert out.shape == (1, len(CLASSES) + 1, 96, 128)
    # normalised log-probabilities, as the PyTorch head gives
    assert torch.allclose(out.exp().sum(1), torch.ones(1, 96, 128), atol=1e-4)
    assert parity(net, onnx_net, [x]).max_abs < 1e-3


def test_a_decisive_side_map_exports_finite_logits_and_int8_stays_finite(tmp_path: Path) -> None:
    """A trained model's side map reaches hundreds: log(sigmoid(-500)) must stay -500, not -inf (an -inf in the
    calibration data gave every INT8 recipe an infinite scale and every output -inf)."""
    artifact = tiny_artifact("baseline", side=True)
    net = build_network(artifact)
    last = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.bias[-1] = -500.0  # every pixel decisively on the second side
    artifact.state_dict = net.state_dict()
    onnx_net = OnnxNetwork(export_network(net, artifact))
    x = sample_inputs(artifact)[0]
    out = onnx_net(x)
    assert torch.isfinite(out).all() and out[:, 2].max() < -400  # left_flag: log sigmoid(-500)
    assert parity(net, onnx_net, [x]).max_abs < 1e-3
    model = save_artifact(artifact, tmp_path / "model.masksmith")
    report = export_onnx(model, int8=True, calibrate=photos(tmp_path / "calib", 8), calibration_images=4,
                         int8_min_gain=0.0)
    made = [t for t in report.int8_trials if t.error is None]
    assert made
    for trial in made:
        assert torch.isfinite(OnnxNetwork(trial.data)(x)).all(), trial.recipe.name


def test_metadata_round_trip_and_the_file_describes_itself(tmp_path: Path, monkeypatch, capsys) -> None:
    artifact = tiny_artifact("baseline")
    model = save_artifact(artifact, tmp_path / "m" / "model.masksmith")
    code, out, err = run(monkeypatch, capsys, "export", str(model), "--to", "onnx")
    assert code == 0, err
    assert "parity ONNX float vs PyTorch: max abs logit difference" in out and "equal mask pixels 100.000 %" in out
    onnx_path = tmp_path / "m" / "model.onnx"
    back = read_onnx_artifact(onnx_path)
    assert back.classes == artifact.classes and back.colors == artifact.colors
    assert back.preprocessing == artifact.preprocessing and back.model == artifact.model
    assert back.flip_pairs == artifact.flip_pairs and back.training == artifact.training
    assert back.state_dict == {}
    meta = artifact_metadata(artifact)
    assert "state_dict" not in meta and meta["format"] == "masksmith-model"
    # a second export replaces our own file; a file masksmith did not write is left alone
    assert run(monkeypatch, capsys, "export", str(model))[0] == 0
    foreign = tmp_path / "m" / "other.onnx"
    foreign.write_bytes(b"mine")
    code, _, err = run(monkeypatch, capsys, "export", str(model), "--out", str(foreign))
    assert code == 2 and "not written by masksmith" in err and foreign.read_bytes() == b"mine"


@pytest.mark.parametrize(("arch", "mode", "tta"), [("unet", "resize", False), ("baseline", "scale", True)])
def test_open_predictor_on_onnx_gives_the_torch_masks(tmp_path: Path, arch: str, mode: str, tta: bool) -> None:
    artifact = tiny_artifact(arch, mode=mode, size=64)
    model = save_artifact(artifact, tmp_path / "model.masksmith")
    report = export_onnx(model)
    assert report.ok and report.path.exists()
    torch_p = open_predictor(model, tta=tta)
    onnx_p = open_predictor(report.path, tta=tta)
    memory_p = open_predictor(model, backend="onnx", tta=tta)  # a .masksmith exported in memory
    assert isinstance(onnx_p, Predictor) and onnx_p.backend == "onnx" and torch_p.backend == "torch"
    assert onnx_p.classes == torch_p.classes and list(onnx_p.classes.names) == CLASSES
    rng = np.random.default_rng(1)
    for h, w in [(50, 70), (150, 210)]:  # in scale mode the larger one takes several sliding windows
        image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        a, b, c = torch_p.predict_proba(image), onnx_p.predict_proba(image), memory_p.predict_proba(image)
        assert a.shape == b.shape == (len(CLASSES) + 1, h, w)
        assert float(np.abs(a - b).max()) < 1e-4 and float(np.abs(a - c).max()) < 1e-4
        assert (a.argmax(0) == b.argmax(0)).mean() > 0.999


def trained_baseline() -> SegmentationNet:
    """A three-layer CNN that has learned 'bright square = class 1': decisive logits, as a trained model has."""
    torch.manual_seed(0)
    config = ModelConfig(arch="baseline", num_outputs=len(CLASSES) + 1, extra={"width": 8})
    net = SegmentationNet(build_model(config, pretrained=False), (0.5,) * 3, (0.5,) * 3)
    x = torch.rand(8, 3, 48, 48) * 60
    y = torch.zeros(8, 48, 48, dtype=torch.long)
    for k in range(8):
        a, b = 4 + 3 * k, 20 + 2 * k
        x[k, :, a:b, a:b] = 230
        y[k, a:b, a:b] = 1
    opt = torch.optim.Adam(net.parameters(), 2e-2)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def test_int8_parity_within_tolerance_and_the_fastest_paying_recipe_is_written(tmp_path: Path) -> None:
    """Tolerance: at least INT8_EQUAL_SHARE (95 %) of mask pixels equal to the float graph's on photos not
    used for calibration; of the recipes that keep it and pay, the fastest is written."""
    artifact = tiny_artifact("baseline", net=trained_baseline())
    model = save_artifact(artifact, tmp_path / "model.masksmith")
    data = photos(tmp_path / "calib", 12)
    report = export_onnx(model, int8=True, calibrate=data, calibration_images=6, int8_min_gain=0.0)
    assert report.calibrated_on == 4 and report.int8_ok and report.int8_refusal is None
    assert {t.recipe.format for t in report.int8_trials} == {"QDQ", "QOperator"}  # no SAME padding here
    paying = [t for t in report.int8_trials if t.pays(0.0)]
    assert report.int8_recipe == max(paying, key=lambda t: t.speedup).recipe
    int8_path = tmp_path / "model.int8.onnx"
    assert int8_path.exists() and read_onnx_artifact(int8_path).classes == CLASSES
    import onnx

    ops = {n.op_type for n in onnx.load(str(int8_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert ("QLinearConv" in ops) == (report.int8_recipe.format == "QOperator")
    float_p, int8_p = open_predictor(tmp_path / "model.onnx"), open_predictor(int8_path)
    equal = total = 0
    for p in sorted(photos(tmp_path / "held_out", 4, seed=7).iterdir()):
        image = np.asarray(Image.open(p).convert("RGB"))
        a, b = float_p.predict(image), int8_p.predict(image)
        equal, total = equal + int((a == b).sum()), total + a.size
        assert (a == 1).any()  # the square is found
    assert equal / total >= INT8_EQUAL_SHARE


def test_int8_that_does_not_pay_is_refused_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    import masksmith.infer.export as export

    model = save_artifact(tiny_artifact("baseline", net=trained_baseline()), tmp_path / "model.masksmith")
    monkeypatch.setattr(export, "INT8_MIN_GAIN", 100.0)  # no recipe runs 100x faster than float
    code, out, err = run(monkeypatch, capsys, "export", str(model), "--int8", "--calibrate",
                         str(photos(tmp_path / "calib", 12)), "--calibration-images", "6")
    assert code == 0, err
    tried = [line for line in out.splitlines() if line.startswith("INT8 tried (4 calibration photo(s)): ")]
    assert len(tried) == 2 and all("x the float graph's speed, max abs logit difference" in t for t in tried)
    refusal = out.splitlines()[-1]
    assert refusal.startswith("INT8 will not pay for this model: the fastest accurate recipe (")
    assert "below the 100.00x worth an INT8 file" in refusal
    assert (tmp_path / "model.onnx").exists() and not (tmp_path / "model.int8.onnx").exists()


def test_static_same_padding_gives_the_same_logits_on_every_valid_size() -> None:
    from masksmith.infer.export import static_same_padding

    artifact = tiny_artifact("unet")  # tf_efficientnet_lite0: TF-style SAME padding on its strided convs
    net = build_network(artifact)
    static, changed = static_same_padding(net, 32)
    assert changed == 5
    for h, w in [(64, 64), (96, 160), (32, 224)]:
        x = torch.rand(1, 3, h, w) * 255
        with torch.no_grad():
            assert torch.allclose(net(x), static(x), atol=1e-4)
    import onnx

    static_bytes = export_network(static, artifact)
    nodes = lambda data: len(onnx.load_from_string(data).graph.node)  # noqa: E731
    assert nodes(static_bytes) < nodes(export_network(net, artifact))  # no padding computed from the size
    onnx_net = OnnxNetwork(static_bytes)
    assert parity(net, onnx_net, sample_inputs(artifact)).ok(FLOAT_EQUAL_SHARE, FLOAT_LOGIT_TOLERANCE)


def test_bad_inputs_say_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    photo_dir = photos(tmp_path / "p", 1)
    fake = tmp_path / "fake.masksmith"
    fake.write_text("not a model")
    code, _, err = run(monkeypatch, capsys, "export", str(fake), "--to", "onnx")
    assert code == 2 and err.count("\n") == 1 and "fake.masksmith: cannot be read as a masksmith model" in err
    assert "Traceback" not in err

    bare = tmp_path / "bare.onnx"  # an ONNX file without our metadata
    torch.onnx.export(torch.nn.Conv2d(3, 2, 1).eval(), (torch.rand(1, 3, 8, 8),), str(bare), dynamo=False)
    code, _, err = run(monkeypatch, capsys, "predict", str(bare), str(photo_dir), "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1 and "without masksmith metadata" in err and "Traceback" not in err
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00garbage")
    code, _, err = run(monkeypatch, capsys, "predict", str(broken), str(photo_dir), "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1 and "cannot be read as an ONNX model" in err

    model = save_artifact(tiny_artifact("baseline"), tmp_path / "model.masksmith")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no photos here")
    code, _, err = run(monkeypatch, capsys, "export", str(model), "--int8", "--calibrate", str(empty))
    assert code == 2 and err.count("\n") == 1 and "holds no images to calibrate on" in err
    assert not (tmp_path / "model.onnx").exists()  # nothing written before the calibration set was checked
    code, _, err = run(monkeypatch, capsys, "export", str(model), "--int8")
    assert code == 2 and "--int8 needs photos" in err
    code, _, err = run(monkeypatch, capsys, "predict", str(tmp_path / "missing.onnx"), str(photo_dir))
    assert code == 2 and err.count("\n") == 1 and "the ONNX file does not exist" in err


def test_onnx_file_with_torch_backend_is_refused(tmp_path: Path) -> None:
    model = save_artifact(tiny_artifact("baseline"), tmp_path / "model.masksmith")
    path = export_onnx(model).path
    with pytest.raises(MasksmithError, match="runs on ONNX Runtime only"):
        open_predictor(path, backend="torch")


def test_export_that_fails_parity_writes_nothing_and_says_so(tmp_path: Path, monkeypatch, capsys) -> None:
    import masksmith.infer.export as onnx_module

    model = save_artifact(tiny_artifact("baseline"), tmp_path / "model.masksmith")
    real = onnx_module.parity

    def off_by_one(reference, candidate, inputs):  # an export whose graph disagrees with PyTorch
        return real(reference, lambda x: candidate(x) + torch.tensor([0.0, 9.0, 0.0, 0.0]).view(1, 4, 1, 1),
                    inputs)

    monkeypatch.setattr(onnx_module, "parity", off_by_one)
    code, out, err = run(monkeypatch, capsys, "export", str(model))
    assert code == 2 and "ONNX parity check failed; nothing was written" in err and err.count("\n") == 1
    assert "equal mask pixels" in out and not (tmp_path / "model.onnx").exists()


def test_onnxruntime_scratch_files_stay_out_of_the_current_folder(tmp_path: Path, monkeypatch) -> None:
    """onnxruntime's symbolic shape inference gives up on dynamic height and width and then saves
    sym_shape_infer_temp.onnx (and its weights as *.data) into the current folder; masksmith runs onnxruntime's
    tools in a private folder, so an export leaves the folder it was started from as it was."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    from masksmith.infer.export import private_workdir

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    graph = onnx.load_from_string(export_network(build_network(tiny_artifact("unet")), tiny_artifact("unet")))
    with private_workdir() as private:
        with pytest.raises(Exception, match="Incomplete symbolic shape inference"):
            SymbolicShapeInference.infer_shapes(graph)
        assert (private / "sym_shape_infer_temp.onnx").exists()  # what used to land in the user's folder
    assert not private.exists() and list(work.iterdir()) == []

    model = save_artifact(tiny_artifact("unet"), tmp_path / "model.masksmith")
    data = photos(tmp_path / "calib", 10)
    report = export_onnx(model, int8=True, calibrate=data, calibration_images=6)
    assert report.ok and list(work.iterdir()) == []
