"""One suite over every model in the registry, semantic and instance (smp's tests/models/base.py habit): built
from a tiny model file, it takes any input size (or says how to pad), a few training steps lower its loss, the
model file round-trips, `open_predictor` predicts at a photo's own size, and it exports to ONNX where its task
has an export (instance models say in one line that they are not exported). Each task brings a harness (how to
make a tiny model file, feed the network and read what it gives); adding a model to the registry adds no test
code, adding a task adds a harness."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import run_cli
from masksmith.core.errors import ModelError
from masksmith.infer import open_predictor
from masksmith.infer.export import FLOAT_EQUAL_SHARE, FLOAT_LOGIT_TOLERANCE, export_network, parity, sample_inputs
from masksmith.infer.runtime import OnnxNetwork
from masksmith.models.artifact import ModelArtifact, build_network, load_artifact, save_artifact
from masksmith.models.registry import MODELS, get_model
from masksmith.models.semantic import ModelConfig, build_model, check_input_size
from masksmith.tasks import TASKS
from test_onnx import CLASSES, tiny_artifact

COLORS = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]


# --------------------------------------------------------------------------------------------- harnesses
class Semantic:
    """A class for every pixel: logits at the input's size; sizes the encoder cannot divide are refused with
    the padding that fits."""

    pads_itself = False
    loss_drop = 0.9  # eight steps take the loss below this share of the first

    def artifact(self, name: str) -> ModelArtifact:
        return tiny_artifact(name)

    def output_sizes(self, net: torch.nn.Module, h: int, w: int) -> list[tuple[int, ...]]:
        with torch.no_grad():
            out = net(torch.rand(2, 3, h, w) * 255)
        assert out.shape[:2] == (2, len(CLASSES) + 1)
        return [tuple(o.shape[-2:]) for o in out]

    def trainable(self, name: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        net = build_network(tiny(name)).train()
        return net, torch.optim.Adam(net.parameters(), 3e-3)

    def batch(self) -> Any:
        x = torch.rand(4, 3, 64, 64) * 255
        y = torch.zeros(4, 64, 64, dtype=torch.long)
        y[:, 16:48, 16:48] = 1
        x[:, :, 16:48, 16:48] = 255  # learnable: the bright square is the class
        return x, y

    def loss(self, net: torch.nn.Module, batch: Any) -> torch.Tensor:
        from masksmith.train.losses import SegmentationLoss

        x, y = batch
        return SegmentationLoss("ce+dice", len(CLASSES) + 1)(net(x), y)

    def same_outputs(self, a: torch.nn.Module, b: torch.nn.Module) -> None:
        x = torch.rand(1, 3, 64, 64) * 255
        with torch.no_grad():
            assert torch.allclose(a(x), b(x), atol=1e-5)

    def check_prediction(self, predictor: Any, image: np.ndarray) -> None:
        mask = predictor.predict(image)
        assert mask.shape == image.shape[:2] and int(mask.max()) <= len(CLASSES)
        assert predictor.predict_proba(image).shape == (len(CLASSES) + 1, *image.shape[:2])

    def check_export(self, model: Path, monkeypatch, capsys) -> None:
        artifact = load_artifact(model)
        net = build_network(artifact)
        onnx_net = OnnxNetwork(export_network(net, artifact))
        inputs = sample_inputs(artifact)
        assert {x.shape[-2:] for x in inputs} == {(64, 64), (96, 128)}  # the training size and a wider one
        result = parity(net, onnx_net, inputs)
        assert result.ok(FLOAT_EQUAL_SHARE, FLOAT_LOGIT_TOLERANCE), result.describe()
        assert result.max_abs < 1e-3 and result.pixels == 64 * 64 + 96 * 128


class Instance:
    """Objects (Mask R-CNN): takes images of any size (it pads them itself) and gives boxes, labels, scores and
    masks at the input's size. Kept to 64 pixels so that the suite stays fast."""

    pads_itself = True
    loss_drop = 0.7

    def artifact(self, name: str) -> ModelArtifact:
        from masksmith.models.instance import build_instance_model, instance_model_config, instance_normalisation

        # a tiny network's worth of proposals and objects: the heads run on a few, not hundreds
        config = instance_model_config(name, 64, weights=None, rpn_pre_nms_top_n_test=100,
                                       rpn_post_nms_top_n_test=50, detections_per_image=10)
        torch.manual_seed(0)
        net = build_instance_model(config, len(CLASSES), pretrained=False)
        mean, std = instance_normalisation(config)
        return ModelArtifact("instance", config, list(CLASSES), COLORS,
                             {"mean": list(mean), "std": list(std), "input_mode": "instance",
                              "input_range": [0.0, 1.0], "size": [64, 64], "max_size": 64},
                             state_dict=net.state_dict())

    def output_sizes(self, net: torch.nn.Module, h: int, w: int) -> list[tuple[int, ...]]:
        net.roi_heads.score_thresh = 0.0  # a random network's objects, however unsure
        with torch.no_grad():
            out = net([torch.rand(3, h, w), torch.rand(3, h, w)])
        assert all(set(o) == {"boxes", "labels", "scores", "masks"} for o in out)
        return [tuple(o["masks"].shape[-2:]) for o in out]

    def trainable(self, name: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        """As training builds it: from the weights it starts from (offline ImageNet for Lite0), frozen parts kept."""
        from masksmith.models.instance import build_instance_model, instance_model_config

        torch.manual_seed(0)
        net = build_instance_model(instance_model_config(name, 64), len(CLASSES), pretrained=True).train()
        return net, torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.01, momentum=0.9)

    def batch(self) -> Any:
        """Two sample cars through the data pipeline training uses (InstanceTensors), at most 64 pixels."""
        return instance_batch()

    def loss(self, net: torch.nn.Module, batch: Any) -> torch.Tensor:
        images, targets = batch
        return sum(net(list(images), targets).values())

    def same_outputs(self, a: torch.nn.Module, b: torch.nn.Module) -> None:
        x = [torch.rand(3, 50, 70)]
        for net in (a, b):
            net.roi_heads.score_thresh = 0.0
        with torch.no_grad():
            first, second = a(x)[0], b(x)[0]
        assert len(first["scores"]) > 0
        for key in ("boxes", "labels", "scores", "masks"):
            assert torch.allclose(first[key].float(), second[key].float(), atol=1e-5), key

    def check_prediction(self, predictor: Any, image: np.ndarray) -> None:
        predictor.score_threshold = 0.0
        found = predictor.predict(image)
        h, w = image.shape[:2]
        assert isinstance(found, list) and found  # a random network, no threshold: objects, however unsure
        for inst in found:
            assert inst.mask.shape == (h, w) and inst.mask.dtype == bool and inst.label in CLASSES
            x0, y0, x1, y1 = inst.box
            assert -1 <= x0 <= x1 <= w + 1 and -1 <= y0 <= y1 <= h + 1
        assert [i.score for i in found] == sorted((i.score for i in found), reverse=True)

    def check_export(self, model: Path, monkeypatch, capsys) -> None:
        """Exported with its detection parity checked (tests/test_instance_onnx.py goes further), and the ONNX
        backend predicts objects."""
        code, out, err = run_cli(monkeypatch, capsys, "export", str(model), "--to", "onnx")
        assert code == 0, err
        assert out.startswith("parity ONNX float vs PyTorch:") and model.with_suffix(".onnx").exists()
        # the ONNX-backed predictor gives objects as the PyTorch one does (the export matched them one by one)
        image = (np.random.default_rng(0).random((48, 80, 3)) * 255).astype(np.uint8)
        self.check_prediction(open_predictor(model, backend="onnx"), image)


HARNESS = {"semantic": Semantic(), "instance": Instance()}
NAMES = list(MODELS)


@functools.cache
def instance_batch() -> tuple[tuple[torch.Tensor, ...], list[dict[str, torch.Tensor]]]:
    import tempfile

    from masksmith.data import load_dataset
    from masksmith.data.instance_data import InstanceTensors
    from masksmith.data.synthetic import make_sample_dataset

    with tempfile.TemporaryDirectory() as tmp:
        dataset = load_dataset(make_sample_dataset(Path(tmp) / "cars", n_images=2, size=(96, 72), seed=3))
        data = InstanceTensors(dataset, dataset.samples, max_size=64)
        images, targets = zip(*(data[i] for i in range(2)), strict=True)
    # the sample cars have four classes; the tiny models know three: the fourth's objects are left out
    targets = [{k: v[t["labels"] <= len(CLASSES)] for k, v in t.items() if k != "image_id"} for t in targets]
    return images, targets


def harness(name: str) -> Semantic | Instance:
    return HARNESS[get_model(name).task]


@functools.cache
def tiny(name: str) -> ModelArtifact:
    """Model `name`'s tiny model file (in memory; random weights, seeded), made once."""
    return harness(name).artifact(name)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, Path]:
    """Each model's tiny model file, written once."""
    folder = tmp_path_factory.mktemp("models")
    return {name: save_artifact(tiny(name), folder / name / "model.masksmith") for name in NAMES}


def test_every_task_has_a_harness_and_every_model_a_task() -> None:
    assert set(HARNESS) == set(TASKS)
    assert {m.task for m in MODELS.values()} <= set(TASKS) and all(TASKS[t].models for t in TASKS)


# ------------------------------------------------------------------------------------------------ the suite
@pytest.mark.parametrize("name", NAMES)
def test_built_from_a_tiny_model_file_it_takes_any_size_or_says_how_to_pad(name: str, model_files) -> None:
    net = build_network(load_artifact(model_files[name]))
    spec, task = get_model(name), harness(name)
    for h, w in [(64, 64), (96, 160), (50, 90)]:
        if task.pads_itself or (h % spec.divisor == 0 and w % spec.divisor == 0):
            assert task.output_sizes(net, h, w) == [(h, w), (h, w)]
        else:
            with pytest.raises(ModelError, match=r"pad your images to 96x64"):
                check_input_size(name, h, w)


@pytest.mark.parametrize("name", NAMES)
def test_training_steps_lower_the_loss(name: str) -> None:
    task = harness(name)
    net, opt = task.trainable(name)
    batch = task.batch()
    losses = []
    for _ in range(8):
        loss = task.loss(net, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] * task.loss_drop, losses


@pytest.mark.parametrize("name", NAMES)
def test_model_file_round_trip(name: str, model_files, tmp_path: Path) -> None:
    artifact = tiny(name)
    again = load_artifact(save_artifact(artifact, tmp_path / "m.masksmith"))
    assert (again.task, again.model, again.classes, again.colors) == (artifact.task, artifact.model,
                                                                      artifact.classes, artifact.colors)
    assert again.preprocessing == artifact.preprocessing
    harness(name).same_outputs(build_network(artifact), build_network(again))


@pytest.mark.parametrize("name", NAMES)
def test_open_predictor_predicts_at_each_photos_own_size(name: str, model_files) -> None:
    predictor = open_predictor(model_files[name])
    assert list(predictor.classes.names) == CLASSES
    rng = np.random.default_rng(1)
    for h, w in [(50, 70), (150, 210), (90, 250)]:  # smaller and larger than the model's size, odd shapes
        harness(name).check_prediction(predictor, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("name", NAMES)
def test_onnx_export_where_the_task_has_one(name: str, model_files, tmp_path: Path, monkeypatch, capsys) -> None:
    model = save_artifact(load_artifact(model_files[name]), tmp_path / "model.masksmith")
    harness(name).check_export(model, monkeypatch, capsys)


# ------------------------------------------------------------------------------------------- model files
def test_pretrained_unet_loads_offline_weights() -> None:
    net = build_model(ModelConfig(arch="unet", num_outputs=3, decoder_channels=[32, 16, 16, 8, 8]), pretrained=True)
    from masksmith.models.encoders import lite0_timm_state_dict

    stem = lite0_timm_state_dict()["conv_stem.weight"]
    assert torch.equal(net.encoder.model.conv_stem.weight, stem)


def test_bad_model_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_artifact(tmp_path / "none.masksmith")
    junk = tmp_path / "junk.masksmith"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot be read as a masksmith model"):
        load_artifact(junk)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not a masksmith model"):
        load_artifact(tmp_path / "other.pt")


def test_unknown_architecture_lists_known_ones() -> None:
    with pytest.raises(ModelError, match="unet, fpn, deeplabv3plus, fcn, baseline, maskrcnn_lite0"):
        get_model("segformer")


def test_early_encoder_modules_stop_at_the_asked_stride() -> None:
    from masksmith.models.encoders import early_encoder_modules

    lite0 = build_model(ModelConfig(arch="unet", num_outputs=3, encoder="tf_efficientnet_lite0",
                                    encoder_weights=None), pretrained=False).encoder
    body = lite0.model
    assert early_encoder_modules(lite0, 2) == [body.conv_stem, body.bn1, body.blocks[0], body.blocks[1]]
    assert early_encoder_modules(lite0, 1) == [body.conv_stem, body.bn1, body.blocks[0]]
    assert early_encoder_modules(lite0, 0) == []
    resnet = build_model(ModelConfig(arch="fpn", num_outputs=3, encoder="resnet18", encoder_weights=None),
                         pretrained=False).encoder
    assert early_encoder_modules(resnet, 2) == [resnet.conv1, resnet.bn1, resnet.layer1]
    assert early_encoder_modules(torch.nn.Linear(2, 2), 2) is None
