"""The library side of the web app for a newcomer (issue 25): the data set health check, parts counted only
above an area and a confidence, the colour layer that leaves the background alone, the suggested budget and
its words, the one clock of a training job over its sessions, the model card, and the page's wording of
unreadable fields and unknown layouts."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from masksmith.apps.photo import MIN_SHARE, PhotoPrediction
from masksmith.core.labels import ClassMap
from masksmith.core.objects import DetectedObject


# ------------------------------------------------------------------------------------------------- health
def test_health_counts_usable_images_and_names_rare_and_unscored_classes(tmp_path: Path) -> None:
    from masksmith import service
    from masksmith.data.synthetic import make_sample_dataset

    folder = make_sample_dataset(tmp_path / "cars", n_images=20, size=(96, 72))
    coco = json.loads((folder / "annotations.json").read_text())
    light = next(c["id"] for c in coco["categories"] if c["name"] == "light")
    first = coco["images"][0]["id"]
    coco["annotations"] = [a for a in coco["annotations"] if a["category_id"] != light or a["image_id"] == first]
    (folder / "annotations.json").write_text(json.dumps(coco))
    for image in sorted((folder / "images").glob("*.jpg"))[15:]:
        image.unlink()
    summary = service.inspect_dataset(folder)
    health = summary["health"]
    assert (health["usable_images"], health["listed_images"]) == (15, 20) and len(health["skipped"]) == 5
    titles = {f["title"]: f for f in health["findings"]}
    assert "5 of the 20 images" in titles["Images missing"]["text"] and titles["Images missing"]["level"] == "warn"
    assert "light (" in titles["Classes with few examples"]["text"]
    assert health["level"] == "warn"
    assert str(tmp_path) not in json.dumps(summary["problems"])  # files named inside the data set


def test_health_says_ready_when_nothing_is_wrong(tmp_path: Path) -> None:
    from masksmith.data import load_dataset
    from masksmith.data.health import dataset_health
    from masksmith.data.stats import dataset_stats
    from masksmith.data.synthetic import make_sample_dataset

    cars = make_sample_dataset(tmp_path / "cars", n_images=60, size=(200, 150), vary_size=False)
    dataset = load_dataset(cars, strict=False)
    health = dataset_health(dataset, dataset_stats(dataset))
    assert health.level == "ok" and [f.title for f in health.findings] == ["Ready to train"]
    few = dataset_health(replace(dataset, samples=dataset.samples[:3]), dataset_stats(dataset))
    assert few.level == "bad" and any(f.title == "Few images" for f in few.findings)


# --------------------------------------------------------------------------------------------- parts found
def test_parts_have_an_area_a_confidence_and_their_objects() -> None:
    classes = ClassMap.from_names(["body", "wheel", "hood"])
    mask = np.zeros((100, 100), np.uint8)
    mask[:50] = 1
    mask[60:70, 10:20] = 2
    mask[60:70, 80:90] = 2
    mask[99, 99] = 3  # one pixel of hood
    mask[90:92, 50:52] = 1  # a fragment of body: not an object of its own
    confidence = np.full(mask.shape, 0.9, np.float32)
    confidence[mask == 2] = 0.3
    from masksmith.apps.extract import regions_of_classes

    prediction = PhotoPrediction(mask, regions_of_classes(mask, classes, None, 1), classes, confidence)
    parts = {p.name: p for p in prediction.parts()}
    assert parts["body"].objects == 1 and parts["wheel"].objects == 2 and parts["hood"].objects == 1
    assert parts["body"].pixels == 5004 and parts["hood"].pixels == 1
    assert parts["wheel"].confidence == pytest.approx(0.3)
    assert prediction.usable_parts() == ["body"]
    assert "too small" in parts["hood"].reason() and parts["hood"].share < MIN_SHARE
    assert "30 % confidence" in parts["wheel"].reason()
    assert prediction.usable_parts(min_confidence=0.2) == ["body", "wheel"]


def test_instance_parts_take_the_best_score() -> None:
    classes = ClassMap.from_names(["car"])
    a, b = np.zeros((20, 20), bool), np.zeros((20, 20), bool)
    a[:10], b[12:] = True, True
    objects = [DetectedObject("car", 0.4, a), DetectedObject("car", 0.8, b)]
    prediction = PhotoPrediction((a | b).astype(np.uint8), objects, classes)
    (part,) = prediction.parts()
    assert part.objects == 2 and part.confidence == pytest.approx(0.8)


def test_the_colour_layer_draws_nothing_on_background_and_void() -> None:
    from masksmith.draw import colorize_layer

    mask = np.array([[0, 1], [255, 2]], np.uint8)
    layer = colorize_layer(mask, [(0, 0, 0), (255, 0, 0), (0, 0, 255)])
    assert layer.shape == (2, 2, 4)
    assert layer[0, 0, 3] == 0 and layer[1, 0, 3] == 0  # background and void: transparent
    assert tuple(layer[0, 1]) == (255, 0, 0, 255) and tuple(layer[1, 1]) == (0, 0, 255, 255)


# ---------------------------------------------------------------------------------------------- the budget
def test_a_budget_is_suggested_from_the_need_and_the_speed() -> None:
    from masksmith.train.suggest import suggest_budget

    small = suggest_budget(50, images_per_second=5.0, size=256, batch=8)
    large = suggest_budget(400, images_per_second=5.0, size=256, batch=8)
    slow = suggest_budget(400, images_per_second=2.5, size=256, batch=8)
    assert small.good_minutes < large.good_minutes < slow.good_minutes
    assert small.usable_minutes < small.good_minutes
    levels = [small.expect(m)["level"] for m in (0.2, small.usable_minutes, small.good_minutes)]
    assert levels == ["poor", "usable", "good"]
    tiers = small.tiers()
    assert [t["level"] for t in tiers] == ["good", "usable", "rough", "poor"]
    assert tiers[0]["minutes"] <= small.good_minutes and tiers[1]["minutes"] <= small.usable_minutes


# ----------------------------------------------------------------------------------------------- the clock
def _run_folder(tmp_path: Path, rows: list[float], status: dict, budget: float = 100.0) -> Path:
    from masksmith.core import runfolder
    from masksmith.train.config import TrainConfig

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / runfolder.CONFIG).write_text(TrainConfig(data="x", time_budget=budget, epochs=None).to_yaml())
    for k, seconds in enumerate(rows):
        runfolder.append_csv_row(folder / runfolder.METRICS, ["epoch", "seconds"], {"epoch": k + 1, "seconds": seconds})
    runfolder.write_status(folder, **status)
    return folder


def test_one_clock_over_every_session(tmp_path: Path) -> None:
    from masksmith import service

    now = time.time()
    folder = _run_folder(tmp_path, [20.0, 40.0], {"started": now - 30, "wall_before": 50.0, "resumed": True,
                                                  "resumed_at": 1})
    os.utime(folder / "metrics.csv", (now - 5, now - 5))
    clock = service.run_clock(folder, "running", now=now)
    assert clock["elapsed"] == pytest.approx(80.0)  # 50 s of the first session and 30 of this one
    assert clock["trained"] == pytest.approx(45.0)  # the last epoch's cumulative seconds and 5 since
    assert clock["left"] > 55.0 and 0 < clock["fraction"] < 1 and clock["phase"] == "training"
    stopped = service.run_clock(folder, "stopped", now=now + 100)
    assert stopped["elapsed"] == pytest.approx(50.0 + 100 + 30)  # no `ended`: until now
    done = service.run_clock(folder, "finished", now=now)
    assert done["fraction"] == 1.0 and done["left"] == 0.0


def test_the_clock_says_preparing_with_an_estimate(tmp_path: Path) -> None:
    from masksmith import service

    now = time.time()
    folder = _run_folder(tmp_path, [], {"started": now - 2})
    clock = service.run_clock(folder, "running", now=now, images=40)
    assert clock["phase"].startswith("preparing the data and the model: about ")
    assert clock["left"] > 100.0  # the whole budget is still ahead, with the preparing and the scoring


# -------------------------------------------------------------------------------------------- the model card
def test_the_model_card_says_in_words_what_the_model_is_good_at(tmp_path: Path) -> None:
    from masksmith import service
    from masksmith.core import runfolder

    folder = tmp_path / "run" / runfolder.EVALUATION / runfolder.VALIDATION
    folder.mkdir(parents=True)
    (folder / runfolder.EVALUATION_METRICS).write_text(json.dumps({
        "task": "semantic", "images": 9, "figures": [{"name": "mIoU", "value": 0.55, "kind": "score"}],
        "columns": [{"name": "IoU", "kind": "score"}],
        "class_table": [{"class": "background", "values": [0.9]}, {"class": "wheel", "values": [0.8]},
                        {"class": "glass", "values": [0.75]}, {"class": "door", "values": [0.2]},
                        {"class": "body", "values": [0.5]},
                        {"class": "mirror", "values": [None]}]}))
    card = service.model_card(tmp_path / "run", "semantic")
    assert card["usable"]
    assert card["verdict"] == "Usable: good at wheel and glass; fair at body; not yet at door; mirror not scored " \
                              "(no validation photo has them)."
    assert [c["name"] for c in card["classes"]] == ["wheel", "glass", "body", "door", "mirror"]
    assert [c["level"] for c in card["classes"]] == ["good", "good", "fair", "not yet", "not scored"]
    assert "9 validation photos" in card["explained"] and "55 %" in card["explained"]
    assert service.model_card(tmp_path / "nothing", "semantic") is None


# ------------------------------------------------------------------------------------------- the page's words
def test_pages_name_fields_by_their_labels(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from masksmith.web.app import create_app

    app = create_app(tmp_path / "data", load_sample=False, watch=False)
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:
        r = c.post("/api/runs", json={"dataset": 1, "minutes": "soon"})
        assert r.status_code == 400 and r.json()["error"] == "“Minutes” must be a number, not 'soon'."
        r = c.post("/api/runs", content=b"{not json", headers={"content-type": "application/json"})
        assert r.json()["error"] == "the request is not JSON."
        (tmp_path / "empty").mkdir()
        r = c.post("/api/datasets/folder", json={"path": str(tmp_path / "empty")})
        assert r.status_code == 400 and r.json().get("help") == "layout"
        assert "`" not in r.json()["error"] and "--" not in r.json()["error"]
