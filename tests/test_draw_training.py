"""What training shows while it runs: the progress bar's epoch counts and time left, the per-epoch line, and
the data set preview's titles and legend."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from masksmith.core.durations import format_duration
from masksmith.data.preview import COLUMNS, preview_picture, write_preview
from masksmith.draw import read_picture_info
from masksmith.train.callbacks import ClockSchedule, TrainingProgress, epoch_label


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def base_lrs(self):
        return [0.01]


class _Recording(TrainingProgress):
    """The real bar, remembering every description it showed."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[str] = []

    def _get_train_description(self, current_epoch: int) -> str:
        text = super()._get_train_description(current_epoch)
        self.shown.append(text.strip())
        return text


def _fit(epochs: int | None, budget: float | None, tmp_path: Path) -> _Recording:
    data = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
    bar = _Recording()
    clock = ClockSchedule([0.01], epochs, budget)
    trainer = L.Trainer(max_epochs=epochs or 2, callbacks=[clock, bar], logger=False, enable_checkpointing=False,
                        enable_model_summary=False, default_root_dir=str(tmp_path), accelerator="cpu")
    if budget:  # a time-budget run: Lightning is told no epoch count, as fit_run does
        trainer.fit_loop.max_epochs = -1
        trainer.fit_loop.epoch_loop.max_steps = 6
    trainer.fit(_Tiny(), data)
    return bar


def test_one_epoch_is_shown_as_epoch_1_of_1(tmp_path: Path) -> None:
    bar = _fit(1, None, tmp_path)
    assert bar.shown and set(bar.shown) == {"Epoch 1/1"}  # Lightning's own bar says "Epoch 0/0"


def test_epochs_count_from_one_to_the_total(tmp_path: Path) -> None:
    assert {"Epoch 1/3", "Epoch 3/3"} <= set(_fit(3, None, tmp_path).shown)


def test_a_time_budget_shows_the_time_left(tmp_path: Path) -> None:
    shown = _fit(None, 600.0, tmp_path).shown
    assert shown and all(s.startswith("Epoch ") and "/" not in s and s.endswith(" left") for s in shown), shown
    minutes = [int(s.split("\u00b7")[1].split("m")[0]) for s in shown]
    assert all(9 <= m <= 10 for m in minutes)  # ~600 s budget, a few seconds used


def test_epoch_label_for_the_printed_lines() -> None:
    clock = ClockSchedule([1.0], None, 120.0)
    clock.started = time.monotonic() - 30  # 30 s into a 2-minute budget
    trainer = type("T", (), {"max_epochs": -1, "callbacks": [clock]})()
    assert epoch_label(4, trainer) in ("epoch 4 \u00b7 1m 30s left", "epoch 4 \u00b7 1m 29s left")
    trainer.max_epochs, clock.time_budget = 10, None
    assert epoch_label(4, trainer) == "epoch 4/10"


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (250, "4m 10s"), (3900, "1h 05m"), (-3, "0s")])
def test_durations_read_as_people_write_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_dataset_preview_names_its_columns_images_and_classes(small_coco: Path, tmp_path: Path) -> None:
    from masksmith.data import load_dataset

    ds = load_dataset(small_coco)
    picture = preview_picture(ds, count=2, cell=96)
    assert [t.text for t in picture.texts if t.role == "column"] == list(COLUMNS)
    captions = [t.text for t in picture.texts if t.role == "caption"]
    assert len(captions) == 2 and all(c.startswith(s.name) for c, s in zip(captions, ds.samples, strict=False))
    assert [e.name for e in picture.legend] == ds.class_names
    assert [tuple(e.color) for e in picture.legend] == [c.color for c in ds.classes]
    info = read_picture_info(write_preview(ds, tmp_path / "preview.png", count=2, cell=96))
    assert info is not None and [e["name"] for e in info["legend"]] == ds.class_names
    assert info["title"].startswith("coco data set: 2 of 3 images")
