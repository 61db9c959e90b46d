"""Left/right classes as a part and a shared side map: the layout, the probabilities, training and the model
file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from masksmith.core.errors import ModelError
from masksmith.core.labels import ClassMap
from masksmith.models.artifact import ModelArtifact, build_network, load_artifact, save_artifact
from masksmith.models.semantic import ModelConfig, SegmentationNet, build_model
from masksmith.models.sides import FIRST_SIDE, NO_SIDE, SECOND_SIDE, SideFactoredHead, side_layout, side_pairs_for
from masksmith.train.losses import SegmentationLoss

# background, left_door, hood, right_door, right_mirror, left_mirror
NAMES = ["left_door", "hood", "right_door", "right_mirror", "left_mirror"]
PAIRS = [[1, 3], [5, 4]]


def test_layout_shares_a_part_per_pair_and_keeps_class_order() -> None:
    part, side = side_layout(6, PAIRS)
    assert part == [0, 1, 2, 1, 3, 3]
    assert side == [NO_SIDE, FIRST_SIDE, NO_SIDE, SECOND_SIDE, SECOND_SIDE, FIRST_SIDE]


def test_pairs_put_left_first_whatever_the_order_given() -> None:
    pairs = [["left_door", "right_door"], ["right_mirror", "left_mirror"]]
    assert side_pairs_for(ClassMap.from_names(NAMES), pairs) == PAIRS
    # no left/right in the names: as given
    assert side_pairs_for(ClassMap.from_names(["port", "starboard"]), [["starboard", "port"]]) == [[2, 1]]


@pytest.mark.parametrize("pairs", [[[1, 1]], [[1, 3], [3, 2]], [[0, 1]], [[1, 9]], [[1, 2, 3]]])
def test_bad_pairs_are_refused(pairs: list[list[int]]) -> None:
    with pytest.raises(ModelError, match="side pair"):
        side_layout(6, pairs)


class Fixed(torch.nn.Module):
    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out


def test_outputs_are_log_probabilities_of_part_times_side() -> None:
    inner = torch.randn(2, 5, 4, 4)  # parts: background, door, hood, mirror; then the side map
    head = SideFactoredHead(Fixed(inner), 6, PAIRS)
    out = head(torch.zeros(1))
    probs = out.exp()
    assert torch.allclose(probs.sum(1), torch.ones(2, 4, 4), atol=1e-5)
    assert torch.allclose(out.softmax(1), probs, atol=1e-6)  # softmax and cross-entropy see them unchanged
    parts, left = inner[:, :4].softmax(1), torch.sigmoid(inner[:, 4])
    assert torch.allclose(probs[:, 1], parts[:, 1] * left, atol=1e-6)  # left door
    assert torch.allclose(probs[:, 3], parts[:, 1] * (1 - left), atol=1e-6)  # right door
    assert torch.allclose(probs[:, 5], parts[:, 3] * left, atol=1e-6)  # left mirror: the same side map
    assert torch.allclose(probs[:, 2], parts[:, 2], atol=1e-6)  # hood has no side


def small(pairs: list[list[int]] | None) -> tuple[ModelConfig, SegmentationNet]:
    config = ModelConfig(arch="unet", num_outputs=6, encoder_weights=None, decoder_channels=[32, 16, 16, 8, 8],
                         side_pairs=pairs)
    return config, SegmentationNet(build_model(config, pretrained=False), (0.5,) * 3, (0.5,) * 3)


def test_side_model_learns_which_side_from_the_whole_picture() -> None:
    """A door in a picture whose band says "left side" is a left door, else a right door:
    the side needs context beyond the door itself, and the model learns it."""
    torch.manual_seed(0)
    _, net = small(PAIRS)
    x = torch.full((8, 3, 64, 64), 60.0)
    y = torch.zeros(8, 64, 64, dtype=torch.long)
    x[:, :, 24:40, 8:56] = 200  # a door
    for i in range(8):
        left = i % 2 == 0
        x[i, 0 if left else 2, :12, :] = 255  # the cue: a red or blue band, away from the door
        y[i, 24:40, 8:56] = 1 if left else 3
    loss_fn = SegmentationLoss("ce+dice", 6)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    net.train()
    for _ in range(60):
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        pred = net(x).argmax(1)
    door = pred[:, 24:40, 8:56]
    assert (door[0::2] == 1).float().mean() > 0.9
    assert (door[1::2] == 3).float().mean() > 0.9


def test_side_model_file_round_trip(tmp_path: Path) -> None:
    config, net = small(PAIRS)
    net.eval()
    artifact = ModelArtifact(task="semantic", model=config.to_dict(), classes=NAMES,
                             colors=[[0, 0, 0]] * 6, preprocessing={"mean": [0.5] * 3, "std": [0.5] * 3,
                                                                    "size": [64, 64], "input_mode": "resize"},
                             state_dict=net.state_dict())
    loaded = build_network(load_artifact(save_artifact(artifact, tmp_path / "m.masksmith")))
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-5)
    assert loaded.model.encoder is loaded.model.model.encoder  # freezing and lr groups find the encoder
