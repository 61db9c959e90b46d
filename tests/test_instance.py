"""Instance segmentation (Mask R-CNN): training run folder, COCO AP on cases with known answers, the label-swapping
flip, and the ResNet-50 builder's COCO-weights loading."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from conftest import TrainedRun, copy_run, run_cli
from masksmith.core.errors import ModelError
from masksmith.core.labels import ClassMap
from masksmith.core.objects import Instance, union_mask
from masksmith.data.instance_data import (
    InstanceFlip,
    InstanceTensors,
    ScaleJitter,
    boxes_from_masks,
    finish,
    flip_permutation,
)
from masksmith.data.rasterize import encode_masks as masks_to_rles
from masksmith.data.schema import Dataset, Region, Sample, make_classes
from masksmith.evaluate.instance import CocoAccumulator
from masksmith.infer import open_predictor
from masksmith.infer.batch import predict_to_folder
from masksmith.models.instance import build_instance_model, instance_model_config


# ------------------------------------------------------------------------------------------ hand-made data
def rect_mask(h: int, w: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def png_bytes(h: int, w: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------- COCO AP
def add_image(acc: CocoAccumulator, truth: list[tuple[int, np.ndarray]], preds: list[tuple[int, float, np.ndarray]],
              crowd: list[bool] | None = None) -> None:
    h, w = truth[0][1].shape
    boxes = boxes_from_masks(torch.from_numpy(np.stack([m for _, _, m in preds]))).tolist() if preds else []
    acc.add(h, w, [c for c, _ in truth], masks_to_rles(np.stack([m for _, m in truth])),
            [c for c, _, _ in preds], [s for _, s, _ in preds],
            masks_to_rles(np.stack([m for _, _, m in preds])) if preds else [], boxes, gt_crowd=crowd)


def two_images() -> list[list[tuple[int, np.ndarray]]]:
    """Two 64x64 images with 20x20 squares of class 1 and 2."""
    return [
        [(1, rect_mask(64, 64, 5, 5, 25, 25)), (2, rect_mask(64, 64, 35, 30, 55, 50))],
        [(2, rect_mask(64, 64, 10, 40, 30, 60)), (1, rect_mask(64, 64, 40, 2, 60, 22))],
    ]


def test_perfect_predictions_score_ap_one() -> None:
    acc = CocoAccumulator(["a", "b"])
    for truth in two_images():
        add_image(acc, truth, [(c, 1.0, m) for c, m in truth])
    result = acc.summary()
    for kind in ("mask", "box"):
        assert result[kind]["ap"] == pytest.approx(1.0)
        assert result[kind]["ap50"] == pytest.approx(1.0) and result[kind]["ap75"] == pytest.approx(1.0)
        assert result[kind]["per_class"] == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}


def test_shifted_predictions_score_less_and_by_the_known_amount() -> None:
    # a 20x20 square moved 4 px sideways overlaps its truth with IoU 16/24 = 0.667: a match at the IoU
    # thresholds 0.50, 0.55, 0.60, 0.65 and a miss at the six above, so AP = 4/10
    acc = CocoAccumulator(["a", "b"])
    for truth in two_images():
        add_image(acc, truth, [(c, 1.0, np.roll(m, 4, axis=1)) for c, m in truth])
    result = acc.summary()
    for kind in ("mask", "box"):
        assert result[kind]["ap"] == pytest.approx(0.4)
        assert result[kind]["ap50"] == pytest.approx(1.0) and result[kind]["ap75"] == pytest.approx(0.0)


def test_wrong_class_missed_objects_and_crowd() -> None:
    truth = two_images()[0]
    wrong = CocoAccumulator(["a", "b"])
    add_image(wrong, truth, [(3 - c, 1.0, m) for c, m in truth])  # right masks, swapped classes
    assert wrong.summary()["mask"]["ap"] == pytest.approx(0.0)

    missed = CocoAccumulator(["a", "b"])
    add_image(missed, truth, [(truth[0][0], 1.0, truth[0][1])])
    per_class = missed.summary()["mask"]["per_class"]
    assert per_class == {"a": pytest.approx(1.0), "b": pytest.approx(0.0)}

    nothing = CocoAccumulator(["a", "b"])
    add_image(nothing, truth, [])
    assert nothing.summary()["mask"]["ap"] == pytest.approx(0.0)

    # a prediction lying on a crowd region is neither a hit nor a false positive
    crowd_truth = [*truth, (1, rect_mask(64, 64, 0, 55, 64, 64))]
    crowd = CocoAccumulator(["a", "b"])
    add_image(crowd, crowd_truth, [(c, 1.0, m) for c, m in crowd_truth], crowd=[False, False, True])
    assert crowd.summary()["mask"]["ap"] == pytest.approx(1.0)


def test_union_mask_takes_the_best_object_per_pixel() -> None:
    a = Instance("a", 0.9, rect_mask(10, 10, 0, 0, 6, 6), (0, 0, 6, 6))
    b = Instance("b", 0.5, rect_mask(10, 10, 3, 3, 10, 10), (3, 3, 10, 10))
    u = union_mask([b, a], ClassMap.from_names(["a", "b"]), (10, 10))
    assert u[4, 4] == 1 and u[8, 8] == 2 and u[0, 9] == 0


# --------------------------------------------------------------------------------------------------- flip
def sided_dataset() -> Dataset:
    """A 40x20 image: a left light near the left edge, a right light and a wheel near the right."""
    regions = [Region("left_light", [rect(2, 4, 8, 10)]), Region("right_light", [rect(30, 4, 38, 12)]),
               Region("wheel", [rect(20, 12, 26, 18)]), Region("wheel", [rect(0, 0, 40, 3)], iscrowd=True)]
    sample = Sample("car.png", None, 40, 20, regions, image_data=png_bytes(20, 40))
    return Dataset(make_classes(["left_light", "right_light", "wheel"]), [sample])


def test_flip_swaps_left_and_right_labels() -> None:
    ds = sided_dataset()
    perm = flip_permutation(ds.class_map)
    assert perm.tolist() == [0, 2, 1, 3]
    data = InstanceTensors(ds, max_size=None)
    assert len(data.items[0].rles) == 3 and len(data.items[0].crowd_rles) == 1  # crowd kept apart
    image, target = data.raw(0)
    flipped_image, flipped = InstanceFlip(perm, p=1.0)(image, target)
    pixels, out = finish(flipped_image, flipped)
    assert torch.equal(pixels, image.flip(-1).float() / 255)
    assert out["labels"].tolist() == [2, 1, 3]  # left light is now a right light, and the other way round
    assert torch.equal(out["masks"], target["masks"].flip(-1))
    # the object that was at x 2..8 now spans 32..38, and boxes still hug the masks
    assert out["boxes"][0].tolist() == [32.0, 4.0, 38.0, 10.0]
    assert torch.equal(out["boxes"], boxes_from_masks(out["masks"]))
    assert torch.allclose(flipped["boxes"].as_subclass(torch.Tensor), out["boxes"])


def test_scale_jitter_keeps_the_canvas_and_drops_objects_cut_away() -> None:
    data = InstanceTensors(sided_dataset(), max_size=None)
    torch.manual_seed(0)
    for _ in range(5):
        pixels, out = finish(*ScaleJitter((2.0, 2.0))(*data.raw(0)))
        assert pixels.shape == (3, 20, 40) and out["masks"].shape[1:] == (20, 40)
        assert len(out["labels"]) == len(out["masks"]) == len(out["boxes"]) <= 3
        assert bool(out["masks"].flatten(1).any(1).all())  # no empty objects remain
        assert torch.equal(out["boxes"], boxes_from_masks(out["masks"]))


def test_cache_shrinks_to_max_size_with_nearest_masks() -> None:
    data = InstanceTensors(sided_dataset(), max_size=20)
    item = data.items[0]
    assert item.size == (10, 20) and item.scale == pytest.approx(0.5)
    masks = item.masks()
    assert masks.shape == (3, 10, 20) and set(np.unique(masks)) <= {0, 1}


# --------------------------------------------------------------------------------------------- ResNet-50
def test_resnet50_loads_coco_style_weights_and_reinitialises_heads(tmp_path: Path) -> None:
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    coco = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict()
    path = tmp_path / "coco.pth"
    torch.save(coco, path)
    config = instance_model_config("maskrcnn_resnet50_fpn", 128, weights=str(path))
    model = build_instance_model(config, 3, pretrained=True)
    state = model.state_dict()
    heads = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits.")
    shared = [k for k in state if not k.startswith(heads)]
    assert any(k.startswith("backbone.body.layer4") for k in shared)
    assert all(torch.equal(state[k], coco[k]) for k in shared)  # backbone, FPN, RPN, box and mask heads
    assert state["roi_heads.box_predictor.cls_score.weight"].shape == (4, 1024)
    assert state["roi_heads.box_predictor.bbox_pred.weight"].shape == (16, 1024)
    assert state["roi_heads.mask_predictor.mask_fcn_logits.weight"].shape[0] == 4
    # fine-tuning recipe: BatchNorm frozen, stem and layer1 fixed
    body = model.backbone.body
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())
    assert not body.conv1.weight.requires_grad and body.layer2[0].conv1.weight.requires_grad
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 60, 90)])[0]
    assert set(out) == {"boxes", "labels", "scores", "masks"} and out["masks"].shape[-2:] == (60, 90)

    # the file torchvision publishes (2019) uses older module names and FrozenBatchNorm keys: accepted too
    old_names = {}
    for k, v in coco.items():
        if k.endswith("num_batches_tracked"):
            continue
        k = re.sub(r"^roi_heads\.mask_head\.(\d)\.0\.", lambda m: f"roi_heads.mask_head.mask_fcn{int(m[1]) + 1}.", k)
        k = re.sub(r"^rpn\.head\.conv\.0\.0\.", "rpn.head.conv.", k)
        k = re.sub(r"^backbone\.fpn\.(inner|layer)_blocks\.(\d)\.0\.", r"backbone.fpn.\1_blocks.\2.", k)
        old_names[k] = v
    assert "rpn.head.conv.weight" in old_names and "roi_heads.mask_head.mask_fcn4.bias" in old_names
    torch.save(old_names, tmp_path / "published.pth")
    again = build_instance_model(config | {"weights": str(tmp_path / "published.pth")}, 3, pretrained=True)
    assert all(torch.equal(again.state_dict()[k], coco[k]) for k in shared)

    # a file from another model says so, naming the file and doing nothing
    broken = {k: v for k, v in coco.items() if not k.startswith("backbone.body.layer3")}
    bad = tmp_path / "other.pth"
    torch.save(broken, bad)
    with pytest.raises(ModelError, match="other.pth.*does not fit maskrcnn_resnet50_fpn.*missing"):
        build_instance_model(config | {"weights": str(bad)}, 3, pretrained=True)


def test_weights_that_cannot_be_had_are_refused_before_building(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="imagenet-offline"):
        build_instance_model({"arch": "maskrcnn_lite0", "weights": "imagenet"}, 2, pretrained=True)
    with pytest.raises(ModelError, match="missing.pth: the weights file does not exist"):
        build_instance_model({"arch": "maskrcnn_resnet50_fpn", "weights": str(tmp_path / "missing.pth")}, 2, True)
    with pytest.raises(ModelError, match="unknown model .maskrcnn_vit.. Fix: use one of: maskrcnn_lite0"):
        build_instance_model({"arch": "maskrcnn_vit"}, 2, pretrained=False)


# ---------------------------------------------------------------------------------------- Lite0 training
@pytest.fixture(scope="module")
def cars(instance_cars: Path) -> Path:
    return instance_cars


@pytest.fixture(scope="module")
def trained(instance_run: TrainedRun) -> Path:
    """The session's shared instance run (tests/conftest.py): `masksmith train --model maskrcnn_lite0 --size 128
    --epochs 2 --batch-size 4 --val 0.2` on 10 sample cars."""
    return instance_run.run


def test_lite0_backbone_is_pretrained_and_frozen() -> None:
    from masksmith.models.encoders import lite0_timm_state_dict

    model = build_instance_model(instance_model_config("maskrcnn_lite0", 128), 4, pretrained=True)
    body = model.backbone.body
    assert torch.equal(body.conv_stem.weight, lite0_timm_state_dict()["conv_stem.weight"])
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())
    assert not body.conv_stem.weight.requires_grad and not any(p.requires_grad for p in body.blocks[1].parameters())
    assert all(p.requires_grad for p in body.blocks[2].parameters())
    assert model.backbone.out_channels == 128 and len(model.roi_heads.mask_head) == 4
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 128
    assert model.transform.image_mean == [0.5] * 3 and model.transform.image_std == [0.5] * 3


def test_training_writes_a_run_folder_with_a_usable_model(trained: Path, tmp_path: Path) -> None:
    from masksmith.models.artifact import load_artifact

    for name in ("config.yaml", "metrics.csv", "curves.png", "model.masksmith", "checkpoints/last.ckpt",
                 "checkpoints/best.ckpt", "previews/epoch_001.png", "previews/epoch_002.png"):
        assert (trained / name).exists(), name
    rows = list(csv.DictReader((trained / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(0 <= float(r["val_mask_ap"]) <= 1 and 0 <= float(r["val_box_ap"]) <= 1 for r in rows)
    assert all(float(r["train_loss"]) > 0 and float(r["loss_mask"]) > 0 for r in rows)
    artifact = load_artifact(trained / "model.masksmith")
    assert artifact.task == "instance" and artifact.model["arch"] == "maskrcnn_lite0"
    assert artifact.model["max_size"] == 128 and artifact.classes == ["body", "wheel", "window", "light"]
    assert artifact.preprocessing["mean"] == [0.5] * 3 and artifact.preprocessing["input_mode"] == "instance"

    predictor = open_predictor(trained, score_threshold=0.0)
    image = np.random.default_rng(1).integers(0, 255, (90, 250, 3), dtype=np.uint8)  # larger than max_size
    found = predictor.predict(image)
    assert isinstance(found, list)
    for inst in found:
        assert inst.mask.shape == (90, 250) and inst.mask.dtype == bool and inst.label in artifact.classes
        x0, y0, x1, y1 = inst.box
        assert -1 <= x0 <= x1 <= 251 and -1 <= y0 <= y1 <= 91
    assert [i.score for i in found] == sorted((i.score for i in found), reverse=True)

    Image.fromarray(image).save(tmp_path / "wide.png")
    written = predict_to_folder(predictor, [tmp_path / "wide.png"], tmp_path / "out")
    record = json.loads(Path(written[0]["json"]).read_text())
    assert (record["width"], record["height"]) == (250, 90) and len(record["instances"]) == len(found)
    for obj in record["instances"]:
        assert isinstance(obj["mask"]["counts"], str) and len(obj["box"]) == 4
        assert mask_utils.decode(obj["mask"]).shape == (90, 250)
    assert Image.open(written[0]["overlay"]).size == (250, 90)


def test_previews_tag_each_object_and_say_what_they_show(trained: Path) -> None:
    from masksmith.draw import COLUMNS, read_picture_info

    info = read_picture_info(trained / "previews" / "epoch_002.png")
    assert info["title"].startswith("epoch 2/2 \u00b7 validation mask AP ")
    assert [t["text"] for t in info["texts"] if t["role"] == "column"] == list(COLUMNS)
    assert [e["name"] for e in info["legend"]] == ["body", "wheel", "window", "light"]
    tags = [t["text"] for t in info["texts"] if t["role"] == "object"]
    truth = [t for t in tags if t in ("body", "wheel", "window", "light")]
    assert truth, "the truth panel tags each object with its class"
    for tag in set(tags) - set(truth):  # predictions: "class score"
        label, score = tag.rsplit(" ", 1)
        assert label in ("body", "wheel", "window", "light") and 0.5 <= float(score) <= 1
    captions = [t["text"] for t in info["texts"] if t["role"] == "caption"]
    assert len(captions) == 2 and all(" \u00b7 mask AP " in c for c in captions)


def test_evaluate_reports_coco_ap_and_union_scores(trained: Path, cars: Path, tmp_path: Path) -> None:
    from masksmith import service
    from masksmith.draw import read_picture_info

    evaluation = service.evaluate(trained, cars, tmp_path / "eval", worst=3)
    report = {**evaluation.to_dict(), "files": evaluation.files}
    assert report["images"] == 10 and Path(report["files"]["metrics"]).exists()
    scores = [i["score"] for i in report["worst_images"]]
    assert scores == sorted(scores) and all(0 <= s <= 1 for s in scores) and report["image_score"] == "mask AP"
    gallery = read_picture_info(report["files"]["worst_gallery"])
    captions = [t["text"] for t in gallery["texts"] if t["role"] == "caption"]
    assert [c.split(" \u00b7 ")[0] for c in captions] == [i["image"] for i in report["worst_images"][:3]]
    assert all(" \u00b7 mask AP " in c for c in captions)
    assert Path(report["files"]["confusion_matrix"]).exists() and Path(report["files"]["best_gallery"]).exists()
    assert (trained / "evaluation" / "validation" / "metrics.json").exists()  # written when training ended
    for kind in ("mask", "box"):
        for key in ("ap", "ap50", "ap75"):
            assert report[kind][key] is None or 0 <= report[kind][key] <= 1
    assert [c["class"] for c in report["per_class"]] == ["body", "wheel", "window", "light"]
    assert 0 <= report["semantic"]["pixel_accuracy"] <= 1


def test_cli_trains_resumes_evaluates_predicts_and_extracts(instance_run: TrainedRun, tmp_path: Path, monkeypatch,
                                                            capsys) -> None:
    def cli(*args: str) -> str:
        code, out, err = run_cli(monkeypatch, capsys, *args)
        assert code == 0, err[-3000:]
        return out

    cars = instance_run.data
    assert "run folder: runs/inst" in instance_run.out  # the shared run was trained by this command
    config = (instance_run.run / "config.yaml").read_text()
    assert "task: instance" in config and "batch_size: 4" in config and "size: 128" in config
    monkeypatch.chdir(tmp_path)
    copy_run(instance_run, tmp_path / "runs")
    run = tmp_path / "runs" / "inst"
    cli("train", "--resume", "runs/inst", "--epochs", "3")
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]

    out = cli("evaluate", "runs/inst", str(cars), "--out", "eval")
    assert "mask AP " in out and "box AP " in out and "wheel" in out
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["images"] == 10 and {"mask", "box", "per_class", "semantic"} <= set(metrics)

    out = cli("predict", "runs/inst", str(cars / "images"), "--out", "preds", "--score", "0")
    assert "predicted 10 image(s)" in out
    assert len(list((tmp_path / "preds").glob("*_instances.json"))) == 10
    assert len(list((tmp_path / "preds").glob("*_overlay.jpg"))) == 10

    out = cli("extract", "runs/inst", str(cars / "images"), "--classes", "body,wheel", "--score", "0",
              "--background", "transparent", "--min-pixels", "1")
    rows = list(csv.DictReader((tmp_path / "cutouts" / "index.csv").open()))
    assert {r["class"] for r in rows} <= {"body", "wheel"}
    for r in rows[:5]:
        picture = Image.open(tmp_path / "cutouts" / r["file"])
        assert picture.mode == "RGBA" and picture.size == (int(r["width"]), int(r["height"]))


def test_cli_refuses_a_task_the_model_does_not_do(cars: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "masksmith.cli", "train", str(cars), "--model", "unet",
                           "--task", "instance"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and "does semantic segmentation, not instance" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()


def via_project_from(cars: Path, out: Path) -> Path:
    """The sample cars as a VGG Image Annotator 2 project (polygons, class in region attribute "name"), the
    classic layout of the tops/boots/bags tutorials."""
    import shutil

    from masksmith.data import load_dataset

    out.mkdir(parents=True)
    project = {}
    for sample in load_dataset(cars).samples:
        shutil.copy(sample.image_path, out / sample.image_path.name)
        regions = [{"shape_attributes": {"name": "polygon", "all_points_x": [round(x, 1) for x in poly[:, 0]],
                                         "all_points_y": [round(y, 1) for y in poly[:, 1]]},
                    "region_attributes": {"name": r.label}}
                   for r in sample.regions for poly in r.polygons]
        size = (out / sample.image_path.name).stat().st_size
        project[f"{sample.image_path.name}{size}"] = {"filename": sample.image_path.name, "size": size,
                                                      "regions": regions, "file_attributes": {}}
    (out / "via_region_data.json").write_text(json.dumps(project))
    return out


@pytest.mark.parametrize("layout", ["via", "voc"])
def test_trains_from_via_and_voc_segmentation_object(cars: Path, tmp_path: Path, layout: str) -> None:
    """Mask R-CNN takes any instance-capable format: a VIA project and VOC's SegmentationObject folders."""
    from masksmith import service
    from masksmith.data import load_dataset
    from masksmith.data.convert import convert
    from masksmith.models.artifact import load_artifact
    from masksmith.train.config import TrainConfig

    if layout == "via":
        data = via_project_from(cars, tmp_path / "via")
    else:
        data = tmp_path / "voc"
        convert(load_dataset(cars), "voc", data)
    dataset = load_dataset(data)
    assert dataset.format == layout and len(dataset.samples) == 10
    config = TrainConfig(data=str(data), task="instance", arch="maskrcnn_lite0", size=96, epochs=1, batch_size=4,
                         val_fraction=0.0, runs_dir=str(tmp_path / "runs"), name=layout, preview_images=1)
    run = service.train(config)
    artifact = load_artifact(run)
    assert artifact.task == "instance" and sorted(artifact.classes) == ["body", "light", "wheel", "window"]
    assert (run / "previews" / "epoch_001.png").exists()
