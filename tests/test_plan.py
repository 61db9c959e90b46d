"""The fingerprint of a data set, the training plan made from it, and training and predicting by the plan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pycocotools import mask as mask_utils

from conftest import run_cli
from masksmith.data import fingerprint as fpmod
from masksmith.data import load_dataset
from masksmith.data.fingerprint import ClassPrint, Fingerprint, compute_fingerprint, dataset_fingerprint
from masksmith.data.schema import Dataset, Region, Sample, make_classes
from masksmith.data.synthetic import kind_dataset, make_sample_dataset
from masksmith.data.torchdata import CropTensors, ScaledSamples
from masksmith.infer.predictor import Predictor, resize_pixels
from masksmith.models.artifact import load_artifact
from masksmith.train.config import TrainConfig
from masksmith.train.plan import Machine, plan_training
from masksmith.train.semantic import train_semantic

MACHINE = Machine(cpus=2, memory_free=8 << 30)


def _rle(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def drawn_dataset(width: int = 240, height: int = 120, n: int = 3) -> Dataset:
    """Photos with known shapes: a horizontal line exactly 3 px wide and 200 px long ('line'), and a 31x31
    square ('box')."""
    samples = []
    for k in range(n):
        line = np.zeros((height, width), bool)
        line[20 + k:23 + k, 10:210] = True
        box = np.zeros((height, width), bool)
        box[60:91, 100:131] = True
        samples.append(Sample(name=f"p{k}.png", image_path=None, width=width, height=height,
                              regions=[Region("line", rle=_rle(line)), Region("box", rle=_rle(box))]))
    return Dataset(classes=make_classes(["line", "box"]), samples=samples, format="test")


def test_fingerprint_measures_known_sizes_and_thicknesses() -> None:
    fp = compute_fingerprint(drawn_dataset())
    assert fp.width == {"median": 240, "min": 240, "max": 240} and fp.height["median"] == 120
    assert fp.aspect["median"] == pytest.approx(2.0) and not fp.sizes_vary
    line, box = fp.classes
    assert line.thickness_median == pytest.approx(3, abs=0.01) and line.thickness_low == pytest.approx(3, abs=0.01)
    assert line.size_median == pytest.approx(np.sqrt(600), rel=0.01)
    assert line.instances_per_image == 1 and line.images == 3
    assert 25 <= box.thickness_median <= 31 and box.size_median == pytest.approx(31, rel=0.01)
    assert fp.thinnest().name == "line"
    assert sum(c.pixel_share for c in fp.classes) == pytest.approx((600 + 961) / (240 * 120))


def test_fingerprint_at_bounded_resolution_scales_lengths_back(monkeypatch) -> None:
    """A mask larger than MAX_PIXELS is measured reduced, and its lengths are given at full size."""
    full = compute_fingerprint(drawn_dataset(480, 240, 1))
    monkeypatch.setattr(fpmod, "MAX_PIXELS", 240 * 120)
    half = compute_fingerprint(drawn_dataset(480, 240, 1))
    assert half.classes[1].size_median == pytest.approx(full.classes[1].size_median, rel=0.05)
    assert half.classes[0].thickness_median == pytest.approx(full.classes[0].thickness_median, abs=1.1)


def test_fingerprint_of_the_thin_sample_kind() -> None:
    fp = compute_fingerprint(kind_dataset("thin", 3, seed=0, size=(300, 200)))
    wire, grid, blob = fp.classes
    assert wire.thickness_median <= 2 and grid.thickness_median <= 3.5 and blob.thickness_median > 15
    assert 270 <= fp.width["median"] <= 330 and fp.aspect["min"] > 1.3  # non-square photos


def test_fingerprint_is_cached_by_content(tmp_path: Path) -> None:
    ds = drawn_dataset()
    first = dataset_fingerprint(ds)
    entry = fpmod.fingerprint_cache() / f"{first.key}.json"
    assert entry.is_file()
    data = json.loads(entry.read_text())
    data["images"] = 999  # the cache is what is read back while the data set is unchanged
    entry.write_text(json.dumps(data))
    assert dataset_fingerprint(ds).images == 999
    changed = drawn_dataset()
    changed.samples[0].regions.pop()
    assert dataset_fingerprint(changed).images == 3 and fpmod.fingerprint_key(changed) != first.key


def _print(w: float, h: float, thin: float, size: float, vary: bool = False) -> Fingerprint:
    c = ClassPrint("part", pixel_share=0.2, images=10, pieces=10, size_median=size, size_low=size / 2,
                   thickness_median=thin * 2, thickness_low=thin)
    return Fingerprint(images=100, measured_images=48, width={"median": w, "min": w * (0.8 if vary else 1),
                                                              "max": w}, height={"median": h, "min": h, "max": h},
                       aspect={"median": w / h, "min": w / h * (0.8 if vary else 1), "max": w / h},
                       sizes_vary=vary, void_share=0.0, classes=[c])


def test_plan_crops_large_photos_with_thin_classes() -> None:
    plan = plan_training(_print(2000, 1500, thin=2, size=300), MACHINE)
    assert plan.value("input_mode") == "scale" and plan.value("shrink") == 1.0
    assert plan.value("crop") == 256 and plan.value("crops_per_image") == 8
    assert plan.value("foreground_crops") == pytest.approx(1 / 3, abs=0.01) and plan.value("batch_size") == 8
    assert "thinnest" in plan.choices["shrink"].reason
    # chunky objects on large square photos survive the squash: the whole photo, resized
    chunky = plan_training(_print(2000, 2000, thin=60, size=400), MACHINE)
    assert chunky.value("input_mode") == "resize" and chunky.value("size") == 256
    # small objects on large square photos: keep a scale where they stay visible, on crops
    small = plan_training(_print(2000, 2000, thin=12, size=30), MACHINE)
    assert small.value("input_mode") == "scale" and small.value("shrink") == pytest.approx(3.75)


def test_plan_resizes_small_square_photos_with_chunky_objects() -> None:
    plan = plan_training(_print(512, 512, thin=12, size=40), MACHINE)
    assert plan.value("input_mode") == "resize" and plan.value("size") == 256 and plan.value("shrink") is None
    assert plan.value("crop") is None and plan.value("batch_size") == 8
    small = plan_training(_print(128, 128, thin=10, size=30), MACHINE)
    assert small.value("size") == 128  # never enlarged past the photo's own size
    # thin parts on a square photo: a larger whole-photo input, up to what still fits one step
    finer = plan_training(_print(512, 512, thin=4, size=40), MACHINE)
    assert finer.value("input_mode") == "resize" and finer.value("size") == 384


def test_plan_keeps_scale_for_non_square_photos_and_memory_bounds_batch() -> None:
    plan = plan_training(_print(600, 400, thin=12, size=60), Machine(cpus=2, memory_free=1 << 30))
    assert plan.value("input_mode") == "scale"
    assert "not square" in plan.choices["input_mode"].reason
    assert plan.value("batch_size") < 8 and "free" in plan.choices["batch_size"].reason


def test_user_values_win_and_are_marked() -> None:
    plan = plan_training(_print(2000, 1500, thin=2, size=300), MACHINE, user={"batch_size": 3, "shrink": 2.5})
    assert plan.choices["batch_size"].value == 3 and plan.choices["batch_size"].source == "user"
    assert plan.choices["shrink"].value == 2.5 and plan.choices["shrink"].source == "user"
    assert plan.choices["crop"].source == "plan"
    sized = plan_training(_print(600, 400, thin=2, size=300), MACHINE, user={"size": 160})
    assert sized.value("input_mode") == "resize" and sized.choices["size"].source == "user"


def test_instance_plan_keeps_small_objects_at_16_px() -> None:
    plan = plan_training(_print(2000, 1500, thin=10, size=30), MACHINE, task="instance")
    side = plan.value("size")
    assert 30 * side / 2000 >= 16 and side <= 1333
    assert plan_training(_print(512, 512, thin=10, size=60), MACHINE, task="instance").value("size") == 512


# ----------------------------------------------------------------------------------- training by the plan


@pytest.fixture(scope="module")
def thin_data(tmp_path_factory) -> Path:
    return make_sample_dataset(tmp_path_factory.mktemp("thin") / "thin", n_images=6, size=(200, 120), seed=0,
                               kind="thin")


def test_crops_keep_the_training_scale_and_oversample_foreground(thin_data: Path) -> None:
    ds = load_dataset(thin_data)
    samples = ScaledSamples.build(ds, 0.5, ds.samples[:2])
    assert tuple(samples.images[0].shape[1:]) == (round(ds.samples[0].height / 2), round(ds.samples[0].width / 2))
    crops = CropTensors(samples, (32, 32), per_image=3, foreground=1.0)
    assert len(crops) == 6
    torch.manual_seed(0)
    for i in range(6):
        image, mask = crops[i]
        assert image.shape == (3, 32, 32) and mask.shape == (32, 32)
        assert ((mask > 0) & (mask < 255)).any()  # a foreground crop always holds a labelled pixel
    tiles = samples.tiles((32, 48))
    assert tiles.images.shape[1:] == (3, 32, 48) and len(tiles) > 4


def test_model_trained_on_crops_predicts_a_full_photo_at_the_same_scale(thin_data: Path, tmp_path: Path) -> None:
    config = TrainConfig(data=str(thin_data), arch="baseline", encoder_weights=None, epochs=1, shrink=2.0,
                         val_fraction=0.34, runs_dir=str(tmp_path), name="crops", preview_images=2,
                         auto_plan=True, fixed=["shrink"], low_res_factor=None)
    run = train_semantic(config)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["plan"]["shrink"]["source"] == "user" and saved["plan"]["crop"]["source"] == "plan"
    assert saved["shrink"] == 2.0 and saved["crop"] == saved["plan"]["crop"]["value"]
    report = (run / "report.html").read_text()  # the report's configuration section shows the plan
    assert "Training plan" in report and "crops_per_image" in report and "nnU-Net" in report
    artifact = load_artifact(run / "model.masksmith")
    assert artifact.preprocessing["input_mode"] == "scale" and artifact.preprocessing["scale"] == 0.5
    crop = saved["crop"] if isinstance(saved["crop"], list) else [saved["crop"]] * 2
    assert artifact.preprocessing["size"] == crop
    predictor = Predictor(artifact)
    ds = load_dataset(thin_data)
    image = ds.samples[0].load_image()
    h, w = image.shape[:2]
    small = predictor.predict_proba(image, own_size=False)
    assert small.shape[1:] == (round(h * 0.5), round(w * 0.5))  # the scale training used
    full = predictor.predict(image)
    assert full.shape == (h, w)
    # one window at the training scale: the predictor's scores are the network's on the shrunk photo
    shrunk = resize_pixels(image, (round(h * 0.5), round(w * 0.5)))
    direct = predictor._probabilities(shrunk[..., :crop[0], :crop[1]])[0]
    assert small.shape[2] > crop[1]  # wider than one window: the sliding window ran
    # the top-left corner is covered by the first window alone: its scores are that window's
    assert np.allclose(small[:, :4, :4], direct[:, :4, :4], atol=1e-4)


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    return run_cli(monkeypatch, capsys, *args)[:2]


def test_dry_run_prints_fingerprint_and_plan_and_writes_nothing(thin_data: Path, tmp_path: Path, monkeypatch,
                                                                 capsys) -> None:
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.rglob("*")) | set(thin_data.rglob("*"))
    code, out = _cli(monkeypatch, capsys, "train", str(thin_data), "--dry-run", "--batch-size", "3")
    assert code == 0, out
    assert "fingerprint" in out and "thickness" in out and "plan" in out
    assert "input_mode: 'scale' [plan]" in out and "batch_size: 3 [user]" in out
    assert "nothing written" in out
    # no run folder (runs/ would be in the working folder), nothing beside the data: only the cache entry
    assert set(tmp_path.rglob("*")) | set(thin_data.rglob("*")) == before
    assert list(fpmod.fingerprint_cache().glob("*.json"))


def test_inspect_shows_the_fingerprint(thin_data: Path, monkeypatch, capsys) -> None:
    code, out = _cli(monkeypatch, capsys, "dataset", "inspect", str(thin_data))
    assert code == 0, out
    assert "fingerprint" in out and "wire" in out and "thinnest" in out
    code, out = _cli(monkeypatch, capsys, "dataset", "inspect", str(thin_data), "--json")
    assert json.loads(out)["fingerprint"]["classes"][0]["name"] == "wire"


def test_without_planning_the_config_still_records_sources() -> None:
    from masksmith.train.samples import planned

    config = planned(TrainConfig(size=192, fixed=["size"]), None)
    assert config.plan["size"] == {"value": 192, "source": "user", "reason": "planning is off"}
    assert config.plan["batch_size"]["source"] == "default" and config.plan["crop"]["value"] is None
    assert TrainConfig(**yaml.safe_load(config.to_yaml())).plan == config.plan  # config.yaml reads back
