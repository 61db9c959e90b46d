"""Fine-tuning from a trained model (`from_model`, issue 27) keeps what the model knew: a tenth of the peak learning
rate with a longer warm-up, the model's own input scale and no low-resolution phase, the starting model scored
before the first step (epoch 0) on the photos it validated on, and never a worse model file than it started
from."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from masksmith import service
from masksmith.core import runfolder
from masksmith.data.synthetic import make_sample_dataset
from masksmith.models.artifact import load_artifact
from masksmith.train.callbacks import ClockSchedule
from masksmith.train.finetune import FINETUNE_WARMUP, peak_lr, start_geometry
from masksmith.train.plan import Budget, Machine, plan_training
from masksmith.train.semantic import train_semantic
from test_budget import fingerprint, rate

MACHINE = Machine(cpus=2, memory_free=8 << 30)


@pytest.fixture(scope="module")
def cars(tmp_path_factory) -> Path:
    return make_sample_dataset(tmp_path_factory.mktemp("cars") / "cars", n_images=12, size=(72, 54), seed=3)


@pytest.fixture(scope="module")
def start(cars: Path, tmp_path_factory) -> Path:
    """A small trained model (its run folder): three epochs from scratch."""
    config = service.training_config(cars, model="baseline", size=32, epochs=3, batch_size=4, name="start",
                                     runs_dir=str(tmp_path_factory.mktemp("runs")), plan=False)
    return service.train(config)


def finetune(data: Path, start: Path, tmp_path: Path, callbacks: list | None = None, **given) -> Path:
    config = service.training_config(data, from_model=str(start / "model.masksmith"), batch_size=4,
                                     runs_dir=str(tmp_path / "runs"), name="ft", plan=False,
                                     **{"epochs": 2, **given})
    return train_semantic(config, extra_callbacks=callbacks)


def metrics(run: Path) -> list[dict[str, float]]:
    return runfolder.read_metrics(run / runfolder.METRICS)


def validation_names(run: Path) -> list[str]:
    return [Path(n).name for n in json.loads((run / runfolder.DATA).read_text())["validation_images"]]


def test_the_starting_model_is_epoch_0_on_its_own_validation_photos_and_the_bar_to_beat(
        cars: Path, start: Path, tmp_path: Path) -> None:
    lab = service.start_labelling(cars, tmp_path / "lab")  # the same photos in another layout, as the web app has
    run = finetune(lab, start, tmp_path, val_fraction=0.5)  # a fresh split would validate on 6 photos
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == [0, 1, 2] and "train_loss" not in rows[0]
    # epoch 0 scores the starting weights on the photos the starting model validated on: its own last score
    assert validation_names(run) == validation_names(start)
    images = json.loads((run / runfolder.DATA).read_text())["images"]
    assert (images["train"], images["validation"]) == (10, 2)  # never trained on
    before = load_artifact(start / "model.masksmith").training["metrics"]["val_miou"]
    assert rows[0]["val_miou"] == pytest.approx(before, abs=1e-3)
    # the model's own input size (32 px), not the default a new run would take (no plan here)
    assert load_artifact(run / "model.masksmith").input_size == load_artifact(start / "model.masksmith").input_size
    # the model file is the best of the start and every epoch, never worse than the start
    kept = load_artifact(run / "model.masksmith").training
    best = max(rows, key=lambda r: r["val_miou"])
    assert kept["metrics"]["val_miou"] == pytest.approx(best["val_miou"])
    assert kept["metrics"]["val_miou"] >= rows[0]["val_miou"]
    assert (run / "checkpoints" / "best.ckpt").is_file()


class Wreck(L.Callback):
    """Zeroes every trained weight after each step: no epoch can beat the starting model."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        with torch.no_grad():
            for p in module.net.parameters():
                if p.requires_grad:
                    p.zero_()


def test_when_no_epoch_beats_the_start_the_run_keeps_the_starting_model(cars: Path, start: Path, tmp_path: Path,
                                                                        capsys) -> None:
    run = finetune(cars, start, tmp_path, [Wreck()])
    rows = metrics(run)
    assert all(r["val_miou"] < rows[0]["val_miou"] for r in rows[1:])  # the wreck worked: every epoch is worse
    kept, first = load_artifact(run / "model.masksmith"), load_artifact(start / "model.masksmith")
    assert kept.training["reason"] == "start" and kept.training["epoch"] == 0
    assert kept.state_dict.keys() == first.state_dict.keys()
    assert all(torch.equal(kept.state_dict[k], v) for k, v in first.state_dict.items())
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert best["global_step"] == 0  # best.ckpt holds the starting weights too
    assert "no epoch beat the starting model's val_miou" in capsys.readouterr().out
    assert "no epoch of this fine-tune beat" in (run / "report.html").read_text(encoding="utf-8")


class Rates(L.Callback):
    """The schedule's peak learning rates and warm-up, and the largest rate a step used."""

    def __init__(self) -> None:
        self.base: list[float] = []
        self.warmup = 0.0
        self.highest = 0.0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        clock = next(c for c in trainer.callbacks if isinstance(c, ClockSchedule))
        self.base, self.warmup = clock.base_lrs, clock.warmup
        self.highest = max(self.highest, *(g["lr"] for g in trainer.optimizers[0].param_groups))


def test_a_fine_tune_peaks_at_a_tenth_of_the_learning_rate_after_a_longer_warm_up(cars: Path, start: Path,
                                                                                   tmp_path: Path) -> None:
    seen = Rates()
    run = finetune(cars, start, tmp_path, [seen], epochs=1)
    config = service.resume_config(run)
    assert config.lr == 4e-3 and config.finetune_lr_factor == 0.1  # the rule, recorded in config.yaml
    assert seen.base and all(b == pytest.approx(4e-4) for b in seen.base)
    assert 0 < seen.highest <= 4e-4 + 1e-12 and seen.warmup == FINETUNE_WARMUP
    scratch = service.training_config(cars, model="baseline", epochs=1)
    assert peak_lr(scratch) == scratch.lr  # from scratch: the full rate
    config.finetune_lr_factor = 0.5
    assert peak_lr(config) == pytest.approx(2e-3)


def test_a_fine_tune_keeps_the_models_input_scale_and_skips_the_low_resolution_phase(start: Path) -> None:
    geometry = start_geometry(start / "model.masksmith")
    assert geometry == {"input_mode": "resize", "shrink": None, "size": 32, "crop": None}
    start_at = {"input_mode": "resize", "shrink": None, "size": 256, "crop": None}
    # square photos: from scratch the first half trains at low resolution; a fine-tune never does
    square, long = fingerprint(256, 256, thin=20, size=60), Budget(3600, spent=5, train_images=40, val_images=8)
    assert plan_training(square, MACHINE, budget=long, rate=rate(2.0)).value("low_res_factor")
    assert plan_training(square, MACHINE, budget=long, rate=rate(2.0), start=start_at).value("low_res_factor") is None
    # wide photos: from scratch the plan trains on crops at a scale of its own; a fine-tune of a model trained on
    # whole photos at 256 px keeps exactly that
    fp = fingerprint(1600, 1200, thin=20, size=60)
    budget = Budget(120, spent=5, train_images=40, val_images=8)
    assert plan_training(fp, MACHINE, budget=budget, rate=rate(2.0)).value("input_mode") == "scale"
    plan = plan_training(fp, MACHINE, budget=budget, rate=rate(2.0), start=start_at)
    assert plan.value("input_mode") == "resize" and plan.value("size") == 256 and plan.value("shrink") is None
    assert plan.choices["size"].source == "model" and plan.value("low_res_factor") is None
    assert plan.value("crops_per_epoch") > 0 and plan.figures["passes"] > 0
    # a model trained on crops of shrunk photos: its scale and window
    crops = {"input_mode": "scale", "shrink": 2.5, "size": 256, "crop": 256}
    plan = plan_training(fp, MACHINE, budget=budget, rate=rate(2.0), start=crops)
    assert (plan.value("shrink"), plan.value("crop"), plan.value("low_res_factor")) == (2.5, 256, None)
    # the person's own size wins, planned as usual
    own = plan_training(fp, MACHINE, budget=budget, rate=rate(2.0), start=start_at, user={"size": 384})
    assert own.value("size") == 384 and own.choices["size"].source == "user"
