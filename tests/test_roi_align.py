"""The gather-based RoIAlign gives torchvision's numbers, forward and backward, on every FPN level."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign

from masksmith.models.roi_align import GatherMultiScaleRoIAlign


def random_case(seed: int) -> tuple[OrderedDict, list[torch.Tensor], list[tuple[int, int]]]:
    torch.manual_seed(seed)
    height, width = 640, 512  # the whole image maps to the coarsest level
    feats = OrderedDict((str(i), torch.randn(2, 8, height // 4 // 2**i, width // 4 // 2**i, requires_grad=True))
                        for i in range(4))
    boxes = []
    for _ in range(2):
        corner = torch.rand(30, 2) * torch.tensor([width + 10.0, height + 10.0]) - 10  # some start outside
        size = torch.rand(30, 2) ** 2 * torch.tensor([width, height]) + 0.2  # tiny to whole-image boxes
        b = torch.cat([corner, corner + size], 1)
        b[0] = torch.tensor([0.0, 0.0, width, height])  # the whole image: the coarsest level
        b[1] = torch.tensor([width - 3.0, height - 2.0, width + 4.0, height + 6.0])  # past the last pixel
        boxes.append(b)
    return feats, boxes, [(height, width)] * 2


@pytest.mark.parametrize("output_size", [7, 14])
def test_matches_torchvision_forward_and_backward(output_size: int) -> None:
    feats, boxes, shapes = random_case(output_size)
    names = list(feats)
    expected = MultiScaleRoIAlign(names, output_size, 2)(feats, boxes, shapes)
    ours = GatherMultiScaleRoIAlign(names, output_size, 2)(feats, boxes, shapes)
    assert ours.shape == expected.shape == (60, 8, output_size, output_size)
    assert torch.allclose(ours, expected, atol=1e-4)
    upstream = torch.randn_like(expected)
    grads_expected = torch.autograd.grad((expected * upstream).sum(), list(feats.values()))
    grads = torch.autograd.grad((ours * upstream).sum(), list(feats.values()))
    for level, (g, e) in enumerate(zip(grads, grads_expected, strict=True)):
        assert e.abs().sum() > 0, f"level {level} was not exercised"
        assert torch.allclose(g, e, atol=1e-4), level


def test_no_boxes_gives_an_empty_batch() -> None:
    feats, _, shapes = random_case(0)
    out = GatherMultiScaleRoIAlign(list(feats), 7, 2)(feats, [torch.zeros(0, 4), torch.zeros(0, 4)], shapes)
    assert out.shape == (0, 8, 7, 7)
