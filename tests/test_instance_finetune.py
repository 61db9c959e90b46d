"""Continue training an instance (Mask R-CNN) model: `train --from` and the web's "continue training" start
from the model's network and weights at the model's own size, and score the model it started from."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import TrainedRun, run_cli
from masksmith import service
from masksmith.core import runfolder
from masksmith.models.artifact import load_artifact


def test_fine_tuning_an_instance_model_starts_from_its_weights(instance_run: TrainedRun, tmp_path: Path) -> None:
    import lightning as L

    from masksmith.train.instance import train_instance

    start = instance_run.run / "model.masksmith"
    before = load_artifact(start)
    seen: dict[str, dict] = {}

    class FirstStep(L.Callback):
        def on_train_start(self, trainer, module) -> None:
            seen["weights"] = {k: v.detach().clone() for k, v in module.net.state_dict().items()}

    config = service.training_config(instance_run.data, from_model=str(start), epochs=1, batch_size=4, val_fraction=0.2,
                                     runs_dir=str(tmp_path / "runs"), name="more")
    assert config.task == "instance" and config.arch == before.model["arch"] and config.size == 128
    run = train_instance(config, extra_callbacks=[FirstStep()])
    assert seen["weights"].keys() == before.state_dict.keys()
    assert all(torch.equal(seen["weights"][k].float(), v.float()) for k, v in before.state_dict.items())
    after = load_artifact(run / "model.masksmith")
    assert after.task == "instance" and after.classes == before.classes and after.model == before.model
    assert after.preprocessing["max_size"] == 128  # the model's own size
    assert "from_model" in (run / "config.yaml").read_text()
    # the fine-tune rule (masksmith.train.finetune): a tenth of SGD's rate, the starting model scored as epoch 0
    from masksmith.train.instance import INSTANCE_LR

    assert after.training["lr"] == pytest.approx(INSTANCE_LR * config.finetune_lr_factor)
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[1].startswith("0,0,") and "val_mask_ap" in rows[0]
    # the model it started from, scored on the same held-out photos
    assert (run / "evaluation" / runfolder.STARTED_FROM).is_dir()
    card = service.model_card(run, "instance")  # the model page's "before and after"
    assert card["before"] is not None and card["before"]["name"] == card["headline"]["name"]


def test_an_instance_fine_tune_keeps_the_models_size(instance_run: TrainedRun, tmp_path: Path, monkeypatch,
                                                      capsys) -> None:
    start = instance_run.run / "model.masksmith"
    config = service.finetune_config(instance_run.run, instance_run.data, time_budget=30)
    assert config.task == "instance" and config.size == 128 and "size" in config.fixed
    result = run_cli(monkeypatch, capsys, "train", instance_run.data, "--from", start, "--size", "256",
                     "--runs", tmp_path / "runs")
    assert result.code == 2 and "differs from the model's own (128)" in result.err
    assert len(result.err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()
