"""The time budget: the plan spends it by this machine's measured speed, the run keeps to it as the whole wait
(its final evaluation and report included), and binary sets whose background is the thin side keep their scale."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils

from masksmith import service
from masksmith.data.fingerprint import ClassPrint, Fingerprint, compute_fingerprint
from masksmith.data.schema import Dataset, Region, Sample, make_classes
from masksmith.data.synthetic import make_sample_dataset
from masksmith.train import plan as planmod
from masksmith.train.budget import allowed_seconds
from masksmith.train.config import TrainConfig
from masksmith.train.plan import Budget, Machine, plan_training
from masksmith.train.speed import LARGE, SMALL, RateCurve, measure_rate

MACHINE = Machine(cpus=2, memory_free=8 << 30)


def rate(images_per_second_at_256: float) -> RateCurve:
    """A machine that trains this many 256 px images a second (and predicts five times as many): the cost of
    an image grows with its pixels, as measured on the development machine (128 px costs ~0.3 of 256 px)."""
    large = 1 / images_per_second_at_256
    return RateCurve(train_small=0.3 * large, train_large=large, infer_small=0.06 * large, infer_large=0.2 * large)


def fingerprint(w: float, h: float, thin: float, size: float, images: int = 400) -> Fingerprint:
    c = ClassPrint("part", pixel_share=0.2, images=10, pieces=10, size_median=size, size_low=size / 2,
                   thickness_median=thin * 2, thickness_low=thin)
    return Fingerprint(images=images, measured_images=48, width={"median": w, "min": w, "max": w},
                       height={"median": h, "min": h, "max": h}, aspect={"median": w / h, "min": w / h, "max": w / h},
                       sizes_vary=False, void_share=0.0, classes=[c])


def budgeted(fp: Fingerprint, per_second: float, seconds: float, train: int = 340, val: int = 60):
    return plan_training(fp, MACHINE, budget=Budget(seconds, spent=5, train_images=train, val_images=val),
                         rate=rate(per_second))


def epoch_seconds(plan, r: RateCurve) -> float:
    """Seconds one epoch (validation interval) of the plan trains, at full resolution (the dearer phase)."""
    crop = plan.value("crop")
    pixels = plan.value("size") ** 2 if crop is None else (crop * crop if isinstance(crop, int) else crop[0] * crop[1])
    return plan.value("crops_per_epoch") * r.train_seconds(pixels)


@pytest.mark.parametrize("shape", [(512, 512, 12, 40), (600, 400, 3, 60), (2000, 1500, 24, 300)])
def test_a_slow_machine_gets_a_coarser_scale_or_low_resolution_first_and_short_epochs(shape) -> None:
    fp = fingerprint(*shape)
    fast = budgeted(fp, per_second=200.0, seconds=1800)
    slow = budgeted(fp, per_second=2.0, seconds=600)
    assert fast.figures["enough"] and fast.figures["passes"] >= planmod.MIN_PASSES
    # a fast machine trains at the geometry's scale with the tuned default
    assert fast.value("low_res_factor") == planmod.LOW_RES
    geometry = plan_training(fp, MACHINE)
    for name in ("size", "shrink"):
        assert fast.value(name) == geometry.value(name)
    # a slow one: coarser (a smaller input or a stronger shrink) or a cheaper low-resolution first half
    coarser = (slow.value("shrink") or 0) > (geometry.value("shrink") or 0) or \
        slow.value("size") < geometry.value("size")
    assert coarser or slow.value("low_res_factor") == planmod.FAST_LOW_RES
    assert slow.figures["passes"] > slow.figures["full_scale_passes"]
    for plan, per_second in ((fast, 200.0), (slow, 2.0)):
        # never an epoch longer than the training time: several validation intervals, each well inside it
        assert epoch_seconds(plan, rate(per_second)) <= plan.figures["train_seconds"] / 2
        f = plan.figures
        assert f["train_seconds"] + f["reserve_seconds"] + f["validation_seconds"] + f["setup_seconds"] + \
            f["spent_seconds"] <= 1800 if plan is fast else 600
    assert "passes" in "\n".join(slow.lines()) and "rule: at least" in "\n".join(slow.lines())


def test_a_budget_too_short_for_the_rule_says_so_and_takes_the_most_passes() -> None:
    plan = budgeted(fingerprint(600, 400, 3, 60), per_second=0.5, seconds=120)
    assert not plan.figures["enough"] and plan.figures["passes"] < planmod.MIN_PASSES
    assert "cannot buy" in " ".join(plan.notes) and "would give" in " ".join(plan.notes)
    assert plan.value("crops_per_epoch") >= plan.value("batch_size")  # not one-step epochs
    record = plan.to_dict()["budget"]
    assert record["source"] == "plan" and record["value"]["passes"] == plan.figures["passes"]


def test_what_the_user_fixed_is_kept_by_the_budget() -> None:
    fp = fingerprint(512, 512, 12, 40)
    plan = plan_training(fp, MACHINE, budget=Budget(300, train_images=340, val_images=60), rate=rate(2.0),
                         user={"size": 256})
    assert plan.value("size") == 256 and plan.choices["size"].source == "user"


# ------------------------------------------------------------------------------ both sides of a binary mask
def _rle(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def membranes(n: int = 3, side: int = 512, cell: int = 64, wall: int = 2) -> Dataset:
    """EM-like binary masks: square cells (the class) separated by `wall`-px membranes (the background)."""
    samples = []
    for k in range(n):
        cells = np.ones((side, side), bool)
        for start in range(k % 7 + 20, side, cell):
            cells[start:start + wall, :] = False
            cells[:, start:start + wall] = False
        samples.append(Sample(name=f"em{k}.png", image_path=None, width=side, height=side,
                              regions=[Region("cell", rle=_rle(cells))]))
    return Dataset(classes=make_classes(["cell"]), samples=samples, format="test")


def test_a_binary_set_whose_background_is_thin_keeps_its_scale() -> None:
    fp = compute_fingerprint(membranes())
    assert fp.binary and fp.background is not None
    assert fp.background.thickness_low <= 2.5 and fp.classes[0].thickness_low > 30
    assert fp.thinnest(with_background=True).name == fp.background.name
    plan = plan_training(fp, MACHINE)
    assert plan.value("shrink") == 1.0 and plan.value("input_mode") == "scale"  # the membranes keep 2 px
    assert "background" in plan.choices["shrink"].reason
    # measured on the cells alone (as before), the plan halved the resolution
    fp.background = None
    blind = plan_training(fp, MACHINE)
    assert blind.value("input_mode") == "resize" and blind.value("size") < 512
    assert Fingerprint.from_dict(compute_fingerprint(membranes()).to_dict()).background is not None


def test_a_multi_class_set_does_not_measure_its_background() -> None:
    from test_plan import drawn_dataset

    fp = compute_fingerprint(drawn_dataset())
    assert not fp.binary and fp.background is None


# --------------------------------------------------------------------------------------- measuring the machine
def test_the_rate_is_measured_once_then_probed(monkeypatch) -> None:
    from masksmith.train import speed

    config = TrainConfig(arch="baseline", encoder_weights=None)
    first = measure_rate(config, 3, "32-true")
    assert first.source == "measured" and first.load == 1.0
    assert 0 < first.train_small <= first.train_large and 0 < first.infer_small <= first.infer_large
    assert first.train_seconds(LARGE * LARGE) == pytest.approx(first.train_large)
    assert first.train_seconds(SMALL * SMALL) < first.train_seconds(LARGE * LARGE)
    assert (speed.rate_cache() / f"{first.key}.json").is_file()
    speed._recent.clear()  # a new process: the cached curve is scaled by a probe of the machine now
    again = measure_rate(config, 3, "32-true")
    assert again.key == first.key
    if again.source == "cached":  # the same curve, scaled by how busy the machine is now
        assert again.train_large == first.train_large and again.train_seconds(LARGE * LARGE) == \
            pytest.approx(first.train_large * again.load)
    else:  # the probe ran much faster than the cache: it was measured under load, so measured anew
        assert again.measured_at > first.measured_at
    assert speed.rate_key(config, "32-true") != speed.rate_key(TrainConfig(arch="unet"), "32-true")


@pytest.fixture(scope="module")
def small_cars(tmp_path_factory) -> Path:
    return make_sample_dataset(tmp_path_factory.mktemp("budget") / "cars", n_images=12, seed=3)


def test_the_plan_summary_predicts_passes_and_the_finish(small_cars: Path) -> None:
    before = time.time()
    summary = service.plan_summary(small_cars, 600, model="baseline")
    assert summary.passes is not None and summary.passes > 0 and summary.train_seconds < 600
    assert before + 600 <= summary.finish <= time.time() + 600
    text = "\n".join(summary.lines)
    assert "crops_per_epoch" in text and "rule: at least" in text and "training images/s" in text
    assert summary.to_dict()["record"]["budget"]["value"]["passes"] == summary.passes
    by_epochs = service.plan_summary(small_cars, None, epochs=3, model="baseline")
    assert by_epochs.passes is None and by_epochs.finish is None and "crops_per_epoch" not in "\n".join(by_epochs.lines)


@pytest.mark.slow
def test_train_for_one_minute_ends_within_the_margin_with_its_evaluation_and_report(small_cars: Path,
                                                                                     tmp_path: Path) -> None:
    """`masksmith train DATA --time 1m`, timed from outside as a person waits for it."""
    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1):
        pytest.skip(f"the load average ({load:.1f}) is above the {os.cpu_count()} cores: other jobs would take "
                    "the time this test measures")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(service.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "masksmith.cli", "train", str(small_cars), "--time", "1m",
                           "--model", "unet", "--runs", str(tmp_path), "--name", "minute"],
                          capture_output=True, text=True, env=env, timeout=600)
    wall = time.monotonic() - t0
    assert done.returncode == 0, done.stdout + done.stderr
    run = tmp_path / "minute"
    assert (run / "evaluation" / "validation" / "metrics.json").is_file() and (run / "report.html").is_file()
    assert wall <= allowed_seconds(60), f"{wall:.1f} s for a 1-minute budget\n{done.stdout}"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["plan"]["budget"]["value"]["budget_seconds"] == 60 and saved["crops_per_epoch"]


def test_the_end_of_training_moves_so_the_end_of_the_run_fits_the_deadline() -> None:
    """KeepToBudget sets the clock schedule's end to the deadline less one last validation, the planned end
    (final evaluation and report) and the last epoch's writes; a validation slower than planned moves it
    earlier, by the network's share of the end running slower too."""
    from masksmith.train.budget import EPOCH_END_SECONDS, VALIDATION_FIXED, Deadline, KeepToBudget, RunBudget
    from masksmith.train.callbacks import ClockSchedule

    clock = ClockSchedule([1.0], epochs=None, time_budget=100.0)
    deadline = Deadline(100.0, time.monotonic())
    keep = KeepToBudget(RunBudget(deadline, end_seconds=20.0, validation_seconds=2.0, end_network=10.0), clock)
    keep._move_end()
    planned = clock.time_budget
    expected = clock.elapsed() + deadline.left() - (20.0 + 2.0 + VALIDATION_FIXED + EPOCH_END_SECONDS)
    assert planned == pytest.approx(expected, abs=0.05) and planned < 100 - 20
    keep.measured = 2 * (2.0 + VALIDATION_FIXED)  # validating took twice as long as planned
    keep._move_end()
    assert keep.load() == pytest.approx(2.0)
    assert clock.time_budget == pytest.approx(planned - 10.0 - (keep.measured - 3.0), abs=0.1)
    # nothing estimated (an instance model): a share of the budget is kept until a validation is measured
    blind = KeepToBudget(RunBudget(Deadline(100.0, time.monotonic())), ClockSchedule([1.0], None, 100.0))
    assert blind.end_reserve() == pytest.approx(0.1 * 100 + VALIDATION_FIXED + EPOCH_END_SECONDS)
    assert allowed_seconds(60) == 65 and allowed_seconds(1000) == 1050


def test_a_suggested_budget_reaches_the_level_it_promises() -> None:
    """The rounded good and usable minutes are never below the tiers a page words them by."""
    from masksmith.train.suggest import suggest_budget

    for speed in np.linspace(0.5, 40, 200):
        budget = suggest_budget(300, float(speed), 256, 8)
        tiers = {t["level"]: t["minutes"] for t in budget.tiers()}
        assert budget.good_minutes >= tiers["good"] and budget.usable_minutes >= tiers["usable"], speed
