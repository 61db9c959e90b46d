"""One suite over every registered semantic model: any input size (or a clear padding hint), a training step
lowers the loss, and the model file round-trips. Adding a model adds no test code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from masksmith.core.errors import ModelError
from masksmith.models.artifact import ModelArtifact, build_network, load_artifact, save_artifact
from masksmith.models.registry import get_model, models_for
from masksmith.models.semantic import ModelConfig, SegmentationNet, build_model, check_input_size
from masksmith.train.losses import SegmentationLoss

ARCHS = sorted(models_for("semantic"))


def make(arch: str, outputs: int = 3, pretrained: bool = False) -> SegmentationNet:
    config = ModelConfig(arch=arch, num_outputs=outputs, decoder_channels=[32, 16, 16, 8, 8])
    return SegmentationNet(build_model(config, pretrained=pretrained), (0.5,) * 3, (0.5,) * 3)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("h", "w"), [(64, 64), (96, 160)])
def test_output_matches_any_fitting_input_size(arch: str, h: int, w: int) -> None:
    net = make(arch).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, h, w) * 255)
    assert out.shape == (2, 3, h, w)


@pytest.mark.parametrize("arch", [a for a in ARCHS if get_model(a).divisor > 1])
def test_unfitting_size_says_how_to_pad(arch: str) -> None:
    with pytest.raises(ModelError, match=r"pad your images to 96x64"):
        check_input_size(arch, 50, 90)


@pytest.mark.parametrize("arch", ARCHS)
def test_training_steps_lower_the_loss(arch: str) -> None:
    torch.manual_seed(0)
    net = make(arch, outputs=2).train()
    x = torch.rand(4, 3, 64, 64) * 255
    y = torch.zeros(4, 64, 64, dtype=torch.long)
    y[:, 16:48, 16:48] = 1
    x[:, :, 16:48, 16:48] = 255  # learnable: the bright square is the class
    loss_fn = SegmentationLoss("ce+dice", 2)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    losses = []
    for _ in range(8):
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9


@pytest.mark.parametrize("arch", ARCHS)
def test_model_file_round_trip(arch: str, tmp_path: Path) -> None:
    net = make(arch).eval()
    config = ModelConfig(arch=arch, num_outputs=3, decoder_channels=[32, 16, 16, 8, 8], encoder_weights=None)
    artifact = ModelArtifact(task="semantic", model=config.to_dict(), classes=["a", "b"],
                             colors=[[0, 0, 0], [255, 0, 0], [0, 255, 0]],
                             preprocessing={"mean": [0.5] * 3, "std": [0.5] * 3, "input_mode": "resize",
                                            "size": [64, 64]}, state_dict=net.state_dict())
    path = save_artifact(artifact, tmp_path / "m.masksmith")
    again = build_network(load_artifact(path))
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        assert torch.allclose(net(x), again(x), atol=1e-5)


def test_pretrained_unet_loads_offline_weights() -> None:
    net = make("unet", pretrained=True)
    from masksmith.models.encoders import lite0_timm_state_dict

    stem = lite0_timm_state_dict()["conv_stem.weight"]
    assert torch.equal(net.model.encoder.model.conv_stem.weight, stem)


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
