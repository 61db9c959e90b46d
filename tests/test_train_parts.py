"""The pieces of training that are easy to get subtly wrong: left/right swaps, the schedule, the metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from masksmith.core.labels import ClassMap
from masksmith.data.torchdata import AugmentConfig, HorizontalFlipSwap, detect_flip_pairs, flip_lut, train_transform
from masksmith.evaluate.metrics import ConfusionMatrix
from masksmith.train.callbacks import ClockSchedule
from masksmith.train.losses import SegmentationLoss

CAR_PARTS = ["back_bumper", "back_glass", "back_left_door", "back_left_light", "back_right_door",
             "back_right_light", "front_bumper", "front_glass", "front_left_door", "front_left_light",
             "front_right_door", "front_right_light", "hood", "left_mirror", "right_mirror", "tailgate", "trunk",
             "wheel"]


def test_flip_pairs_detected_from_car_parts_names() -> None:
    pairs = detect_flip_pairs(CAR_PARTS)
    assert pairs == [("back_left_door", "back_right_door"), ("back_left_light", "back_right_light"),
                     ("front_left_door", "front_right_door"), ("front_left_light", "front_right_light"),
                     ("left_mirror", "right_mirror")]
    assert detect_flip_pairs(["Left Hand", "Right Hand", "leftover", "bright"]) == [("Left Hand", "Right Hand")]


def test_flip_mirrors_pixels_and_swaps_classes() -> None:
    names = ["left_door", "right_door", "hood"]
    lut = flip_lut(ClassMap.from_names(names), detect_flip_pairs(names))
    image = torch.arange(2 * 3 * 4, dtype=torch.uint8).reshape(2, 3, 4)[:1].expand(3, 3, 4).clone()
    mask = torch.tensor([[1, 1, 0, 3], [2, 0, 0, 3], [0, 0, 0, 0]], dtype=torch.uint8)
    flip = HorizontalFlipSwap(lut, p=1.0)
    im2, m2 = flip(tv_tensors.Image(image), tv_tensors.Mask(mask))
    assert torch.equal(im2, image.flip(-1))
    assert m2.tolist() == [[3, 0, 2, 2], [3, 0, 0, 1], [0, 0, 0, 0]]  # left door (1) became right door (2)


def test_augment_keeps_mask_values_and_resizes_on_request() -> None:
    lut = torch.arange(256, dtype=torch.uint8)
    t = train_transform((32, 32), AugmentConfig(scale=(0.3, 1.0), color_jitter=0.3), lut)
    mask = torch.randint(0, 4, (64, 64), dtype=torch.uint8)
    mask[0, 0] = 255
    for side in (32, 24):
        t.size = (side, side)
        im, m = t(tv_tensors.Image(torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)), tv_tensors.Mask(mask))
        assert im.shape == (3, side, side) and m.shape == (side, side)
        assert set(m.unique().tolist()) <= {0, 1, 2, 3, 255}  # nearest neighbour: no invented classes


def test_schedule_warms_up_then_decays_to_the_floor() -> None:
    clock = ClockSchedule([1.0], epochs=10, time_budget=None, warmup=0.1, floor=0.01)
    assert clock.factor(0.0) == pytest.approx(0.02)
    assert clock.factor(0.05) == pytest.approx(0.5)
    assert clock.factor(0.1) == pytest.approx(1.0)
    assert clock.factor(0.55) == pytest.approx(0.505, abs=1e-3)
    assert clock.factor(1.0) == pytest.approx(0.01)
    values = [clock.factor(p) for p in np.linspace(0.1, 1, 50)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_metrics_on_a_hand_made_case() -> None:
    truth = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 0], [2, 0, 2, 2]])
    cm = ConfusionMatrix(3)
    cm.update(pred, truth)
    s = cm.scores()
    # class 0: TP 3, FP 2 (a 1 and a 2 predicted as 0), FN 1 -> IoU 3/6; class 1: TP 3, FP 1, FN 1 -> 3/5
    # class 2: TP 1, FP 0, FN 1 -> 1/2
    assert s.iou.tolist() == pytest.approx([0.5, 0.6, 0.5])
    assert s.dice.tolist() == pytest.approx([6 / 9, 6 / 8, 2 / 3])
    assert s.pixel_accuracy == pytest.approx(7 / 10)
    assert s.miou(True) == pytest.approx(1.6 / 3) and s.miou(False) == pytest.approx(0.55)


def test_absent_class_is_left_out_of_the_mean() -> None:
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 1]))
    s = cm.scores()
    assert np.isnan(s.iou[2]) and s.miou() == pytest.approx(1.0)


def test_losses_ignore_void_pixels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 4, 4)
    target = torch.randint(0, 3, (1, 4, 4))
    target[0, 0, 0] = 255
    other = logits.clone()
    other[0, :, 0, 0] = torch.tensor([9.0, -9.0, 3.0])  # whatever the model says at a void pixel ...
    for name in ("ce", "ce+dice", "focal", "dice"):
        loss = SegmentationLoss(name, 3)
        assert torch.isclose(loss(logits, target), loss(other, target)), name  # ... costs nothing
        changed = logits.clone()
        changed[0, :, 1, 1] += torch.tensor([5.0, -5.0, 0.0])
        assert not torch.isclose(loss(logits, target), loss(changed, target)), name


@pytest.mark.parametrize("void", [False, True])
def test_multiclass_dice_matches_smp_value_and_gradient(void: bool) -> None:
    from segmentation_models_pytorch.losses import DiceLoss

    from masksmith.train.losses import multiclass_dice_loss

    torch.manual_seed(0)
    logits = torch.randn(3, 6, 17, 19, requires_grad=True)
    target = torch.randint(0, 6, (3, 17, 19))
    target[target == 4] = 2  # class 4 absent: it must count zero, as in smp
    if void:
        target[:, :3] = 255
    expected = DiceLoss("multiclass", from_logits=True, ignore_index=255)(logits, target)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    ours = multiclass_dice_loss(logits.log_softmax(1), target)
    (grad,) = torch.autograd.grad(ours, logits)
    assert torch.isclose(ours, expected, atol=1e-6)
    assert torch.allclose(grad, expected_grad, atol=1e-8)
    perfect = torch.nn.functional.one_hot(torch.where(target == 255, 0, target), 6).permute(0, 3, 1, 2) * 40.0
    assert multiclass_dice_loss(perfect.log_softmax(1), target) < 1e-4


def test_config_file_values_of_the_wrong_type_name_the_key_and_file(tmp_path) -> None:
    from masksmith.core.errors import MasksmithError
    from masksmith.train.config import TrainConfig

    good = tmp_path / "good.yaml"
    good.write_text(TrainConfig(data="d", time_budget=60, class_weights=[1.0, 2], flip_pairs=[["a", "b"]]).to_yaml())
    assert TrainConfig.from_yaml(good).class_weights == [1.0, 2]  # every field as saved reads back
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: fast\n")
    with pytest.raises(MasksmithError, match=r"bad\.yaml.*lr: 'fast' is not of type float"):
        TrainConfig.from_yaml(bad)
    bad.write_text("freeze_encoder_levels: true\n")
    with pytest.raises(MasksmithError, match="freeze_encoder_levels: True is not of type int"):
        TrainConfig.from_yaml(bad)


@pytest.mark.parametrize(("pairs", "message"), [
    ([["left_door", "right_door"], ["left_door", "hood"]], "name left_door more than once"),
    ([["hood", "hood"]], "name hood more than once"),
    ([["left_door", "wing"]], "lacks: \\['wing'\\]"),
])
def test_configured_flip_pairs_must_pair_known_classes_once(pairs: list[list[str]], message: str) -> None:
    from masksmith.core.errors import MasksmithError
    from masksmith.train.config import TrainConfig
    from masksmith.train.samples import flip_pairs

    names = ["left_door", "right_door", "hood"]
    assert flip_pairs(TrainConfig(flip_pairs=[["right_door", "left_door"]]), names) == [["right_door", "left_door"]]
    with pytest.raises(MasksmithError, match=message):
        flip_pairs(TrainConfig(flip_pairs=pairs), names)
