"""Model files as untrusted input (issue 24): every field of a `.masksmith` file and of an exported ONNX file's
metadata is type- and range-checked by one checker before anything is built; the network's weights and the
memory one image would need are measured on the meta device before it is allocated; each refusal is one line
naming the field, from the library and from the CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli
from masksmith.core.errors import MasksmithError, ModelError
from masksmith.models.artifact import ModelArtifact, load_artifact, save_artifact
from masksmith.models.semantic import ModelConfig, SegmentationNet, build_model

CLASSES = ["box", "left_flag", "right_flag"]
COLORS = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]
GiB = 1 << 30


def semantic_artifact(arch: str = "baseline", size: int = 32, **model) -> ModelArtifact:
    config = ModelConfig(arch=arch, num_outputs=len(CLASSES) + 1, decoder_channels=[16, 8, 8, 8, 8],
                         extra={"width": 8})
    torch.manual_seed(0)
    net = SegmentationNet(build_model(config, pretrained=False), (0.5,) * 3, (0.5,) * 3)
    return ModelArtifact("semantic", {**config.to_dict(), **model}, list(CLASSES), copy.deepcopy(COLORS),
                         {"mean": [0.5] * 3, "std": [0.5] * 3, "input_mode": "resize", "size": [size, size]},
                         flip_pairs=[["left_flag", "right_flag"]], training={"epoch": 1},
                         state_dict=net.state_dict())


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return save_artifact(semantic_artifact(), tmp_path_factory.mktemp("model") / "model.masksmith")


@pytest.fixture(scope="module")
def unet_file(tmp_path_factory) -> Path:
    return save_artifact(semantic_artifact("unet", 64), tmp_path_factory.mktemp("unet") / "model.masksmith")


def changed(source: Path, folder: Path, change) -> Path:
    payload = torch.load(source, weights_only=True)
    change(payload)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(payload, folder / "model.masksmith")
    return folder / "model.masksmith"


def photo_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(folder / "a.png")
    return folder


def assert_one_line_refusal(monkeypatch, capsys, tmp_path: Path, model: Path, words: str) -> None:
    """`predict` with the model: exit 2, one line naming the file and `words`, no traceback, nothing written."""
    out = tmp_path / "preds"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "predict", model, photo_folder(tmp_path / "photos"),
                                   "--out", out)
    text = stdout + stderr
    assert code == 2, text
    assert words in text and str(model) in text and "Traceback" not in text
    assert len(text.strip().splitlines()) == 1 and not out.exists()


# ------------------------------------------------------------------------------------------- every field
def _model(**values):
    return lambda p: p["model"].update(values)


FIELDS = [
    (lambda p: p.update(version=None), "version is None, not a model format number"),
    (lambda p: p.update(version="1"), "version is '1', not a model format number"),
    (lambda p: p.update(version=1.0), "version is 1.0, not a model format number"),
    (lambda p: p.update(version=99), "was written by a newer masksmith (format 99)"),
    (lambda p: p.pop("classes"), "is incomplete (no classes)"),
    (_model(decoder_channels=[100000, 8, 8, 8, 8]), "model decoder_channels is [100000, 8, 8, 8, 8]; it must be 5"),
    (_model(decoder_channels=[16, 8]), "model decoder_channels is [16, 8]"),
    (_model(num_outputs=3), "model num_outputs is 3; with 3 classes it must be 4"),
    (_model(num_outputs=None), "model num_outputs is None"),
    (_model(encoder="../../etc/passwd"), "model encoder '../../etc/passwd' is not an encoder name"),
    (_model(encoder=["resnet18"]), "model encoder ['resnet18'] is not an encoder name"),
    (_model(side_pairs=[[0, 9]]), "model side_pairs holds [0, 9]; each pair must be two distinct outputs of 1 to 3"),
    (_model(side_pairs=[[1, 2], [2, 3]]), "model side_pairs holds [2, 3]"),
    (_model(side_pairs="1,2"), "model side_pairs '1,2' must be a list"),
    (_model(extra={"width": 10**6}), "model extra width is 1000000; it must be a whole number of 2 to 512"),
    (_model(arch="resnet"), "model arch 'resnet' is not one of unet"),
    (_model(arch="maskrcnn_lite0"), "model arch 'maskrcnn_lite0' is not one of unet"),
    (lambda p: p["preprocessing"].update(mean=[float("nan"), 0.5, 0.5]), "preprocessing mean must be three numbers"),
    (lambda p: p["preprocessing"].update(std=[1e9, 1, 1]), "preprocessing std [1000000000.0, 1, 1] must be above 0"),
    (lambda p: p["preprocessing"].update(input_mode="instance"), "is not one of resize, scale (a semantic model)"),
    (lambda p: p["preprocessing"].update(size=[100000, 100000]), "asks for 100000x100000 inputs, more than the 8192"),
    (lambda p: p.update(classes=[f"c{k}" for k in range(300)]), "classes must be a list of 1 to 254 names"),
    (lambda p: p.update(flip_pairs=[["box", "box"]]), "flip pair ['box', 'box'] names one class twice"),
    (lambda p: p.update(flip_pairs=[[1, 2]]), "flip pair [1, 2] names 1, which is not one of its classes"),
    (lambda p: p.update(training={"data_options": {"strict": False}}), "training data_options has 'strict'"),
    (lambda p: p.update(training={"data_options": {"masks": [[[[["deep"]]]]]}}), "training data_options masks is"),
    (lambda p: p.update(training={"epoch": "3"}), "training epoch is '3'; it must be a whole number"),
    (lambda p: p.update(training=[1]), "training is a list, not a mapping"),
]


@pytest.mark.parametrize(("change", "words"), FIELDS)
def test_every_model_file_field_is_checked_when_it_is_opened(model_file: Path, tmp_path: Path, change,
                                                              words: str) -> None:
    bad = changed(model_file, tmp_path / "bad", change)
    with pytest.raises(ModelError) as err:
        load_artifact(bad)
    text = str(err.value)
    assert text.startswith(f"{bad}: ") and words in text and "Fix: " in text and "\n" not in text


@pytest.mark.parametrize(("change", "words"), [FIELDS[0], FIELDS[5], FIELDS[7], FIELDS[20]])
def test_a_broken_model_file_is_one_line_from_predict(model_file: Path, tmp_path: Path, monkeypatch, capsys,
                                                     change, words: str) -> None:
    assert_one_line_refusal(monkeypatch, capsys, tmp_path, changed(model_file, tmp_path / "bad", change), words)


@pytest.mark.parametrize("command", ["evaluate", "rank", "export"])
def test_a_version_of_none_is_one_line_in_every_command_that_opens_a_model(model_file: Path, tmp_path: Path,
                                                                          monkeypatch, capsys, command: str) -> None:
    bad = changed(model_file, tmp_path / "bad", lambda p: p.update(version=None))
    photos = photo_folder(tmp_path / "photos")
    args = {"evaluate": [photos], "rank": [photos, "--out", tmp_path / "rank.csv"], "export": []}[command]
    code, out, err = run_cli(monkeypatch, capsys, command, bad, *args)
    assert code == 2 and "version is None" in out + err and "Traceback" not in out + err
    assert len((out + err).strip().splitlines()) == 1


def test_the_untouched_file_opens_and_predicts(model_file: Path) -> None:
    from masksmith.infer import open_predictor

    predictor = open_predictor(model_file)
    assert predictor.predict(np.zeros((20, 30, 3), np.uint8)).shape == (20, 30)


# --------------------------------------------------------------------------- the network before it is built
def test_an_encoder_no_library_knows_is_refused_before_building(model_file: Path, tmp_path: Path, monkeypatch,
                                                                capsys) -> None:
    bad = changed(model_file, tmp_path / "bad", _model(arch="unet", encoder="no_such_net"))
    assert_one_line_refusal(monkeypatch, capsys, tmp_path, bad, "model encoder 'no_such_net' is not an encoder")


def test_weights_that_do_not_fit_the_description_are_found_on_the_meta_device(unet_file: Path, tmp_path: Path,
                                                                              monkeypatch, capsys) -> None:
    from masksmith.infer import open_predictor

    bad = changed(unet_file, tmp_path / "bad", _model(decoder_channels=[1024, 1024, 1024, 1024, 1024]))
    with pytest.raises(ModelError) as err:
        open_predictor(bad)
    text = str(err.value)
    assert text.startswith(f"{bad}: weights do not fit the described architecture: ") and "in the file" in text
    assert_one_line_refusal(monkeypatch, capsys, tmp_path, bad, "weights do not fit the described architecture")


def test_an_input_size_this_machine_cannot_hold_is_refused_naming_the_field(model_file: Path, tmp_path: Path,
                                                                           monkeypatch, capsys) -> None:
    """8192 x 8192 is within the fixed cap, but one image through even the three-layer baseline needs tens of
    GB: refused against the memory free (8 GiB here, whatever this machine has)."""
    from masksmith.core import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 8 * GiB)
    bad = changed(model_file, tmp_path / "bad", lambda p: p["preprocessing"].update(size=[8192, 8192]))
    load_artifact(bad)  # every field is in range
    assert_one_line_refusal(monkeypatch, capsys, tmp_path, bad,
                            "one image through this network at its input size (preprocessing size: 8192x8192) "
                            "needs about")
    code, out, err = run_cli(monkeypatch, capsys, "predict", bad, tmp_path / "photos", "--out", tmp_path / "p")
    assert "more than the 8.6 GB this machine has free" in out + err and "--size" in out + err


def test_the_estimate_grows_with_the_input_size_and_the_decoder(unet_file: Path) -> None:
    from masksmith.models.footprint import ACTIVATION_FACTOR, footprint_problem, network_footprint

    small = network_footprint(semantic_artifact("unet", 128))
    large = network_footprint(semantic_artifact("unet", 256))
    assert small.weights == large.weights > 0
    assert 3.5 < large.activation / small.activation < 4.5  # activations scale with the pixels
    wide = network_footprint(semantic_artifact("unet", 256, decoder_channels=[256, 128, 64, 64, 64]))
    assert wide.activation > large.activation and wide.weights > large.weights
    assert large.total == large.weights + ACTIVATION_FACTOR * large.activation
    artifact = load_artifact(unet_file)
    need = network_footprint(artifact).total
    assert footprint_problem(artifact, available=need) is None
    assert "needs about" in footprint_problem(artifact, available=need - 1)


def test_a_network_giving_another_number_of_scores_is_refused() -> None:
    from masksmith.infer.predictor import Predictor

    predictor = Predictor(semantic_artifact(), net=torch.nn.Conv2d(3, 2, 1))  # two scores for four outputs
    with pytest.raises(MasksmithError, match=r"gives \(1, 2, 32, 32\) scores, not 4 per pixel for the 3 classes"):
        predictor.predict(np.zeros((20, 30, 3), np.uint8))


# ------------------------------------------------------------------------------------------------ instance
def instance_payload(**model) -> dict:
    from masksmith.models.artifact import FORMAT, VERSION
    from masksmith.models.instance import instance_model_config

    config = instance_model_config("maskrcnn_lite0", 256, weights=None) | model
    return {"format": FORMAT, "version": VERSION, "task": "instance", "model": config, "classes": ["dent"],
            "colors": [[0, 0, 0], [200, 30, 30]], "flip_pairs": [], "training": {},
            "preprocessing": {"mean": [0.5] * 3, "std": [0.5] * 3, "input_mode": "instance", "size": [256, 256],
                              "max_size": 256}, "state_dict": {}}


INSTANCE_FIELDS = [
    ({"max_size": 10**6}, "model max_size is 1000000; it must be a whole number of 16 to 8192"),
    ({"min_size": 512}, "model min_size 512 is above max_size 256"),
    ({"anchor_sizes": [16, 32]}, "model anchor_sizes is [16, 32]; it must be 5 whole numbers"),
    ({"anchor_sizes": [16, 32, 64, 128, 1e9]}, "model anchor_sizes is [16, 32, 64, 128, 1000000000.0]"),
    ({"fpn_channels": 0}, "model fpn_channels is 0; it must be a whole number of 8 to 1024"),
    ({"mask_head_channels": 100000}, "model mask_head_channels is 100000"),
    ({"mask_head_layers": 1000}, "model mask_head_layers is 1000"),
    ({"box_representation": "512"}, "model box_representation is '512'"),
    ({"detections_per_image": 10**9}, "model detections_per_image is 1000000000"),
    ({"rpn_post_nms_top_n_test": -1}, "model rpn_post_nms_top_n_test is -1"),
    ({"frozen_bn": "yes"}, "model frozen_bn is 'yes'; it must be true or false"),
    ({"arch": "unet"}, "model arch 'unet' is not one of maskrcnn_lite0"),
]


@pytest.mark.parametrize(("model", "words"), INSTANCE_FIELDS)
def test_the_instance_model_dict_is_checked_in_the_file_and_by_the_builder(tmp_path: Path, model: dict,
                                                                          words: str) -> None:
    from masksmith.models.instance import build_instance_model

    path = tmp_path / "model.masksmith"
    torch.save(instance_payload(**model), path)
    with pytest.raises(ModelError) as err:
        load_artifact(path)
    assert str(err.value).startswith(f"{path}: {words}")
    expected = "does semantic segmentation, not instance" if "arch" in model else words
    with pytest.raises(ModelError) as built:  # the same check when training builds the model
        build_instance_model(instance_payload(**model)["model"], 1, pretrained=False)
    assert expected in str(built.value)


def test_an_instance_file_without_its_weights_is_refused_before_building(tmp_path: Path, monkeypatch,
                                                                        capsys) -> None:
    path = tmp_path / "model.masksmith"
    torch.save(instance_payload(), path)
    load_artifact(path)  # every field is in range; the weights are what is missing
    assert_one_line_refusal(monkeypatch, capsys, tmp_path, path, "tensor(s) of the described network are missing")


def test_an_instance_input_this_machine_cannot_hold_is_refused(tmp_path: Path) -> None:
    from masksmith.models.artifact import artifact_from_payload
    from masksmith.models.footprint import footprint_problem

    artifact = artifact_from_payload(instance_payload(max_size=8192, min_size=8192), weights=False)
    problem = footprint_problem(artifact, available=8 * GiB, weights=False)
    assert problem.startswith("one image through this network at its input size (model max_size: 8192x8192)")
    assert "heads and masks" in problem
    assert footprint_problem(artifact_from_payload(instance_payload(), weights=False), available=8 * GiB,
                             weights=False) is None


# ---------------------------------------------------------------------------------------------- ONNX files
@pytest.fixture(scope="module")
def onnx_file(model_file: Path) -> Path:
    from masksmith.infer.export import export_onnx

    report = export_onnx(model_file)
    assert report.ok
    return report.path


def with_metadata(source: Path, target: Path, change) -> Path:
    import onnx

    from masksmith.infer.runtime import METADATA_KEY

    model = onnx.load(str(source))
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            if callable(change):
                data = json.loads(entry.value)
                change(data)
                entry.value = json.dumps(data)
            else:
                entry.value = change
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


def _fewer_classes(data: dict) -> None:
    """Two classes where the graph scores three, with everything else made consistent."""
    data.update(classes=["box", "left_flag"], colors=COLORS[:3], flip_pairs=[])
    data["model"]["num_outputs"] = 3


ONNX_FIELDS = [
    (lambda d: d["preprocessing"].update(size=[100000, 100000]), "asks for 100000x100000 inputs, more than the 8192"),
    (lambda d: d.update(version=None), "version is None, not a model format number"),
    (lambda d: d.update(classes=["box", "left_flag"], colors=COLORS[:3], flip_pairs=[]),
     "model num_outputs is 4; with 2 classes it must be 3"),
    (_fewer_classes, "the graph gives 4 outputs a pixel, the metadata 3"),
    (lambda d: d.update(task="instance"), "model arch 'baseline' is not one of maskrcnn_lite0"),
    (lambda d: d["model"].update(decoder_channels=[10**6] * 5), "model decoder_channels is [1000000"),
    ("{not json", "has broken masksmith metadata (JSONDecodeError"),
]


@pytest.mark.parametrize(("change", "words"), ONNX_FIELDS)
def test_onnx_metadata_goes_through_the_model_files_checks(onnx_file: Path, tmp_path: Path, monkeypatch, capsys,
                                                           change, words: str) -> None:
    from masksmith.infer.runtime import OnnxError, read_onnx_artifact

    bad = with_metadata(onnx_file, tmp_path / "bad" / "model.onnx", change)
    with pytest.raises(OnnxError) as err:
        read_onnx_artifact(bad)
    assert str(err.value).startswith(f"{bad}: ") and words in str(err.value) and "masksmith export" in str(err.value)
    assert_one_line_refusal(monkeypatch, capsys, tmp_path, bad, words)


def test_onnx_metadata_asking_for_more_memory_than_free_is_refused_before_the_first_run(
        onnx_file: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from masksmith.core import memory
    from masksmith.infer.runtime import read_onnx_artifact

    monkeypatch.setattr(memory, "available_memory", lambda: 8 * GiB)
    bad = with_metadata(onnx_file, tmp_path / "bad" / "model.onnx",
                        lambda d: d["preprocessing"].update(size=[8192, 8192]))
    read_onnx_artifact(bad)  # in range as a field
    assert_one_line_refusal(monkeypatch, capsys, tmp_path, bad, "(preprocessing size: 8192x8192) needs about")


def test_the_exported_file_itself_opens(onnx_file: Path) -> None:
    from masksmith.infer import open_predictor

    assert open_predictor(onnx_file).predict(np.zeros((20, 30, 3), np.uint8)).shape == (20, 30)
