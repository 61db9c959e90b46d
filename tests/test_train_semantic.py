"""Semantic training end to end on generated cars: the run folder, evaluate and predict keep their promises.
The run they look at is the session's shared semantic run (tests/conftest.py); the tests of shrinking, resuming
and Ctrl-C train (or resume a copy) themselves."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TrainedRun, copy_run, run_cli
from masksmith import service
from masksmith.core.errors import TrainingInterrupted
from masksmith.data import load_dataset
from masksmith.draw import COLUMNS, read_picture_info
from masksmith.draw.overlay import DARK, outline_width, region_outline
from masksmith.infer import open_predictor
from masksmith.infer.batch import predict_to_folder
from masksmith.models.artifact import load_artifact
from masksmith.train.config import TrainConfig
from masksmith.train.semantic import train_semantic


@pytest.fixture(scope="module")
def trained(semantic_run: TrainedRun) -> Path:
    return semantic_run.run


@pytest.fixture(scope="module")
def cars(semantic_cars: Path) -> Path:
    return semantic_cars


def tiny_config(data: Path, runs: Path, **kw) -> TrainConfig:
    """Small settings (the shared run's size and decoder, tests/conftest.py) for the tests that train themselves."""
    base = dict(data=str(data), size=64, epochs=2, batch_size=4, decoder_channels=[32, 16, 16, 8, 8],
                runs_dir=str(runs), name="tiny", preview_images=2, val_fraction=0.25)
    base.update(kw)
    return TrainConfig(**base)


def test_run_folder_has_everything(trained: Path) -> None:
    for name in ("config.yaml", "metrics.csv", "curves.png", "model.masksmith", "checkpoints/last.ckpt",
                 "checkpoints/best.ckpt", "previews/epoch_001.png", "previews/epoch_003.png"):
        assert (trained / name).exists(), name
    rows = list(csv.DictReader((trained / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(0 <= float(r["val_miou"]) <= 1 for r in rows)
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    artifact = load_artifact(trained / "model.masksmith")
    assert artifact.classes == ["body", "wheel", "window", "light"]
    assert artifact.preprocessing["size"] == [64, 64] and artifact.preprocessing["mean"] == [0.5, 0.5, 0.5]
    assert artifact.class_map.colors[0] == (0, 0, 255)


def test_previews_say_what_they_show(trained: Path) -> None:
    info = read_picture_info(trained / "previews" / "epoch_003.png")
    rows = list(csv.DictReader((trained / "metrics.csv").open()))
    assert info["title"] == f"epoch 3/3 \u00b7 validation mIoU {float(rows[2]['val_miou']):.3f}"
    assert [t["text"] for t in info["texts"] if t["role"] == "column"] == list(COLUMNS)
    validation = json.loads((trained / "data.json").read_text())["validation_images"]
    captions = [t["text"] for t in info["texts"] if t["role"] == "caption"]
    assert [c.split(" \u00b7 ")[0] for c in captions] == validation[:2] and all("mIoU 0." in c for c in captions)
    artifact = load_artifact(trained / "model.masksmith")
    assert [e["name"] for e in info["legend"]] == artifact.classes
    assert [tuple(e["color"]) for e in info["legend"]] == list(artifact.class_map.colors)
    for row in (0, 1):  # truth and prediction side by side at the same size
        boxes = {p["column"]: p["box"] for p in info["panels"] if p["row"] == row}
        sizes = {(b[2] - b[0], b[3] - b[1]) for b in boxes.values()}
        assert len(boxes) == 4 and len(sizes) == 1


def test_training_ends_with_the_validation_scores_and_the_report(trained: Path) -> None:
    data = json.loads((trained / "data.json").read_text())
    assert data["images"] == {"total": 16, "train": 12, "validation": 4}
    assert [c["name"] for c in data["classes"]] == ["body", "wheel", "window", "light"]
    metrics = json.loads((trained / "evaluation" / "validation" / "metrics.json").read_text())
    assert metrics["data"] == "validation" and metrics["images"] == 4 and metrics["image_score"] == "mIoU"
    assert sorted(i["image"] for i in metrics["worst_images"]) == sorted(data["validation_images"])
    for name in ("confusion.png", "worst.png", "best.png"):
        assert (trained / "evaluation" / "validation" / name).exists()
    html = (trained / "report.html").read_text()
    assert 'id="evaluation-validation"' in html and "data:image/png;base64," in html


def test_pretrained_stem_and_early_stages_stay_as_loaded(trained: Path) -> None:
    from masksmith.models.semantic import ModelConfig, build_model

    state = load_artifact(trained / "model.masksmith").state_dict
    start = build_model(ModelConfig(arch="unet", num_outputs=state["model.segmentation_head.0.weight"].shape[0],
                                    encoder="tf_efficientnet_lite0", encoder_weights="imagenet-offline",
                                    decoder_channels=[32, 16, 16, 8, 8]), pretrained=True).state_dict()
    prefix = "model.encoder.model."
    for name in ("conv_stem.weight", "bn1.running_mean", "blocks.1.1.conv_dw.weight", "blocks.1.1.bn2.running_var"):
        assert torch.equal(state["model." + "encoder.model." + name], start["encoder.model." + name]), name
    for name in ("blocks.2.0.conv_dw.weight", "blocks.2.0.bn2.running_mean"):  # stride 8 on: fine-tuned
        assert not torch.equal(state[prefix + name], start["encoder.model." + name]), name


def test_evaluate_writes_report_with_consistent_numbers(trained: Path, cars: Path, tmp_path: Path) -> None:
    report = service.evaluate(trained / "model.masksmith", cars, tmp_path / "eval", worst=3)
    for key in ("metrics", "confusion_matrix", "worst_gallery"):
        assert Path(report.files[key]).exists()
    ds = load_dataset(cars)
    assert report.scores["full"].matrix.sum() == sum(s.width * s.height for s in ds.samples)
    assert report.scores["input"].matrix.sum() == len(ds.samples) * 64 * 64
    f = report.scores["full"]
    tp = np.diag(f.matrix)
    assert f.pixel_accuracy == pytest.approx(tp.sum() / f.matrix.sum())
    assert np.allclose(f.dice, 2 * f.iou / (1 + f.iou), equal_nan=True)  # Dice and IoU agree per class
    assert 0.3 < f.pixel_accuracy <= 1 and 0 < f.miou() < 1
    per_image = [(i.image, i.score) for i in report.image_scores]
    worst = [m for _, m in per_image]
    assert worst == sorted(worst) and len(worst) == len(ds.samples)
    gallery = read_picture_info(report.files["worst_gallery"])
    captions = [t["text"] for t in gallery["texts"] if t["role"] == "caption"]
    assert [c.split(" \u00b7 ")[0] for c in captions] == [n for n, _ in per_image[:3]]
    assert all(f"mIoU {m:.3f}" in c for c, (_, m) in zip(captions, per_image, strict=False))
    best = read_picture_info(report.files["best_gallery"])
    assert [t["text"].split(" \u00b7 ")[0] for t in best["texts"] if t["role"] == "caption"] == \
        [n for n, _ in per_image[::-1][:3]]
    saved = json.loads(Path(report.files["metrics"]).read_text())
    assert [i["image"] for i in saved["worst_images"]] == [n for n, _ in per_image]
    for item in saved["worst_images"]:  # the classes each image confuses most, largest first
        shares = [c["pixels"] for c in item["confusions"]]
        assert shares == sorted(shares, reverse=True) and len(shares) <= 2


def test_predict_outputs_at_each_images_own_size(trained: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, (w, h) in {"wide.jpg": (150, 40), "tall.png": (33, 90)}.items():
        # smooth photos with a little noise: the overlay is a JPEG, so it is compared within JPEG's error
        ramp = np.linspace(40, 210, w)[None, :, None] + np.linspace(0, 30, h)[:, None, None]
        photo = ramp + np.array([0, 10, -10]) + rng.normal(0, 2, (h, w, 3))
        Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(photos / name, quality=95)
    predictor = open_predictor(trained)
    written = predict_to_folder(predictor, [photos], tmp_path / "out", opacity=1.0)
    assert len(written) == 2
    checked = 0
    for row in written:
        src = Image.open(row["image"])
        mask = Image.open(row["mask"])
        assert mask.size == src.size and mask.mode == "P"
        assert np.asarray(mask).max() <= 4
        assert Path(row["overlay"]).suffix == ".jpg" and Image.open(row["overlay"]).format == "JPEG"
        over = np.asarray(Image.open(row["overlay"])).astype(int)
        color = np.asarray(Image.open(row["color"]))
        m = np.asarray(mask)
        assert color.shape == (*m.shape, 3)  # the colour mask opens as RGB
        # opacity 1: painted pixels are the class colour inside each region's dark outline, and background
        # pixels keep the photo (within JPEG's error: quality 90, no chroma subsampling)
        dark, _ = region_outline(m, outline_width(m.shape))
        painted = (m > 0) & ~dark
        photo = np.asarray(src.convert("RGB")).astype(int)
        for got, want in ((over[painted], color[painted]), (over[dark], np.broadcast_to(DARK, over[dark].shape)),
                          (over[m == 0], photo[m == 0])):
            if len(got):
                checked += len(got)
                assert np.median(np.abs(got - want)) <= 4
    assert checked == sum(np.asarray(Image.open(r["mask"])).size for r in written)  # every pixel in one group


def test_scale_mode_slides_a_window_over_large_images(trained: Path) -> None:
    predictor = open_predictor(trained)
    predictor.artifact.preprocessing.update(input_mode="scale", scale=1.0)
    image = np.random.default_rng(1).integers(0, 255, (150, 200, 3), dtype=np.uint8)
    calls = []
    original = predictor._probabilities
    predictor._probabilities = lambda x: calls.append(tuple(x.shape)) or original(x)
    probs = predictor.predict_proba(image)
    assert probs.shape == (5, 150, 200)
    assert torch_allclose_one(probs.sum(0))
    assert all(shape[-2:] == (64, 64) for shape in calls) and sum(s[0] for s in calls) >= 12


def torch_allclose_one(t) -> bool:
    return bool(np.allclose(t, 1.0, atol=1e-4))


def test_shrink_factor_keeps_aspect_and_predicts_large_images_by_sliding(cars: Path, tmp_path: Path) -> None:
    run = train_semantic(tiny_config(cars, tmp_path, epochs=1, shrink=2.0, val_fraction=0.0))
    artifact = load_artifact(run)
    # the sample photos are about 96x72: halved and rounded up to multiples of 32 -> 64 high, 64 wide
    assert artifact.preprocessing["input_mode"] == "scale" and artifact.preprocessing["scale"] == 0.5
    h, w = artifact.input_size
    assert h % 32 == 0 and w % 32 == 0 and h <= 64 and w <= 64
    predictor = open_predictor(run)
    shapes = []
    original = predictor._probabilities
    predictor._probabilities = lambda x: shapes.append(tuple(x.shape)) or original(x)
    mask = predictor.predict(np.zeros((300, 400, 3), np.uint8))  # 150x200 after shrinking: several windows
    assert mask.shape == (300, 400)
    assert sum(s[0] for s in shapes) > 4 and all(s[-2:] == (h, w) for s in shapes)


def test_resume_trains_more_epochs(semantic_run: TrainedRun, tmp_path: Path) -> None:
    run = copy_run(semantic_run, tmp_path)  # three epochs done
    assert (run / "model.masksmith").exists()
    config = TrainConfig.from_yaml(run / "config.yaml")
    config.epochs = 4
    train_semantic(config, run, resume=True)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    # the model file holds the best epoch of all four (a worse fourth epoch never replaces it)
    best = max(rows, key=lambda r: float(r["val_miou"]))
    assert load_artifact(run).training["epoch"] == int(best["epoch"])


class _Interrupt(L.Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == 1 and batch_idx == 1:
            raise KeyboardInterrupt


def test_ctrl_c_leaves_a_usable_checkpoint_and_model(cars: Path, tmp_path: Path) -> None:
    config = tiny_config(cars, tmp_path, epochs=3, val_fraction=0.0)
    with pytest.raises(TrainingInterrupted, match="stopped by Ctrl-C in epoch 2"):
        train_semantic(config, extra_callbacks=[_Interrupt()])
    run = tmp_path / "tiny"
    assert (run / "checkpoints" / "interrupted.ckpt").exists()
    open_predictor(run / "model.masksmith").predict(np.zeros((40, 50, 3), np.uint8))
    train_semantic(TrainConfig.from_yaml(run / "config.yaml"), run, resume=True)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert int(rows[-1]["epoch"]) == 3


def test_cli_evaluate_predict_extract(semantic_run: TrainedRun, tmp_path: Path, monkeypatch, capsys) -> None:
    """On a copy of the shared run (`masksmith train` itself prints its run folder in test_data_journey.py)."""
    cars = semantic_run.data

    def cli(*args: str) -> str:
        code, out, err = run_cli(monkeypatch, capsys, *args)
        assert code == 0, err[-2000:]
        return out

    monkeypatch.chdir(tmp_path)
    copy_run(semantic_run.run, tmp_path / "runs").rename(tmp_path / "runs" / "cli")
    out = cli("evaluate", "runs/cli", str(cars))
    assert "mIoU" in out and "confusion_matrix" in out and "report:" in out
    assert (tmp_path / "runs" / "cli" / "evaluation" / "cars" / "metrics.json").exists()
    assert 'id="evaluation-cars"' in (tmp_path / "runs" / "cli" / "report.html").read_text()
    out = cli("predict", "runs/cli/model.masksmith", str(cars / "images"), "--out", "preds")
    assert "predicted 16 image(s)" in out
    assert len(list((tmp_path / "preds").glob("*_overlay.jpg"))) == 16
    out = cli("extract", "runs/cli", str(cars / "images"), "--classes", "body,wheel", "--background",
              "transparent", "--min-pixels", "1")
    assert "index:" in out and (tmp_path / "cutouts" / "index.csv").exists()


@pytest.mark.slow
def test_ddp_two_cpu_processes(cars: Path, tmp_path: Path) -> None:
    """Lightning's DDP with gloo on two CPU processes, launched the way a user would."""
    proc = subprocess.run([sys.executable, "-m", "masksmith.cli", "train", str(cars), "--model", "baseline",
                           "--size", "64", "--epochs", "1", "--name", "ddp", "--batch-size", "2",
                           "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "runs" / "ddp" / "model.masksmith").exists()
    rows = list(csv.DictReader((tmp_path / "runs" / "ddp" / "metrics.csv").open()))
    assert len(rows) == 1 and float(rows[0]["val_miou"]) >= 0


def test_the_final_evaluation_keeps_to_the_deadline(trained: Path, cars: Path) -> None:
    """With the time budget nearly spent, the final evaluation scores the validation photos that fit (at
    least one, evenly spread) and says so; with time to spare, all of them."""
    import time

    from masksmith.data import load_dataset
    from masksmith.infer import open_predictor
    from masksmith.train.budget import Deadline
    from masksmith.train.run import fitting_samples

    predictor = open_predictor(trained / "model.masksmith")
    samples = load_dataset(cars).samples
    late, words = fitting_samples(predictor, samples, Deadline(1.0, time.monotonic() - 5))
    assert len(late) == 1 and f"of the {len(samples)} validation images" in words and "did not fit" in words
    ample, words = fitting_samples(predictor, samples, Deadline(3600.0, time.monotonic()))
    assert ample == samples and words == f"evaluating on the {len(samples)} validation images"
