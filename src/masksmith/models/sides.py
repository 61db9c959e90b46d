"""Left/right classes predicted as a part and a side.

A front-left door and a front-right door look the same; which one a pixel shows depends on which way the car
faces, a decision for the whole picture. With one output per class, every left/right pair learns that
decision on its own, from its own few pixels (mirrors are 0.2 % of car-parts' pixels), and a run can settle
on the wrong side for the rare pairs. Here the network predicts the part (a door, a mirror, a light) with one
output per pair, plus one shared *side* map learned from every left/right pixel of every pair:

    log p(front_left_door)  = log p(front door) + log sigmoid(side)
    log p(front_right_door) = log p(front door) + log sigmoid(-side)
    log p(hood)             = log p(hood)

The result is a normalised log-probability per class, so everything downstream (cross-entropy, Dice,
argmax, softmax, the model file) sees ordinary logits in the usual class order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from masksmith.core.errors import ModelError
from masksmith.core.labels import ClassMap
from masksmith.data.torchdata import names_left_side

NO_SIDE, FIRST_SIDE, SECOND_SIDE = 0, 1, 2


def side_layout(num_outputs: int, side_pairs: Sequence[Sequence[int]]) -> tuple[list[int], list[int]]:
    """For each output class: the part it belongs to and its side (NO_SIDE, FIRST_SIDE, SECOND_SIDE).

    `side_pairs` are output indices, every pair in the same order (left first): the side map means the
    same thing for every pair. Parts keep the class order, a pair taking the place of its first member."""
    side = [NO_SIDE] * num_outputs
    partner: dict[int, int] = {}
    for pair in side_pairs:
        if len(pair) != 2:
            raise ModelError(f"side pair {list(pair)} does not have two classes.")
        a, b = int(pair[0]), int(pair[1])
        if not (0 < a < num_outputs and 0 < b < num_outputs) or a == b or a in partner or b in partner:
            raise ModelError(f"side pair {list(pair)} does not name two distinct classes of {num_outputs - 1}, "
                             "each in one pair only.")
        side[a], side[b] = FIRST_SIDE, SECOND_SIDE
        partner[a], partner[b] = b, a
    part: list[int] = []
    parts = 0
    for c in range(num_outputs):
        if c in partner and partner[c] < c:
            part.append(part[partner[c]])  # the pair's part opened at its earlier member
        else:
            part.append(parts)
            parts += 1
    return part, side


class SideFactoredHead(nn.Module):
    """Wraps a model that outputs (parts + 1) channels, the last being the side map, into one that outputs
    normalised log-probabilities for `num_outputs` classes."""

    def __init__(self, model: nn.Module, num_outputs: int, side_pairs: Sequence[Sequence[int]]) -> None:
        super().__init__()
        self.model = model
        part, side = side_layout(num_outputs, side_pairs)
        self.register_buffer("part_index", torch.tensor(part, dtype=torch.long), persistent=False)
        self.register_buffer("side_index", torch.tensor(side, dtype=torch.long), persistent=False)

    @staticmethod
    def inner_outputs(num_outputs: int, side_pairs: Sequence[Sequence[int]]) -> int:
        """Channels the wrapped model must produce: one per part, and the side map."""
        return num_outputs - len(side_pairs) + 1

    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder  # freezing and learning-rate groups look for the encoder here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x).float()  # log-probabilities in fp32 even under bf16 autocast
        log_parts = out[:, :-1].log_softmax(1)
        side = out[:, -1:]
        side_terms = torch.cat([torch.zeros_like(side), log_sigmoid(side), log_sigmoid(-side)], 1)
        return log_parts.index_select(1, self.part_index) + side_terms.index_select(1, self.side_index)


def log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """log(sigmoid(x)) without overflow, written out: F.logsigmoid exports to ONNX as Log(Sigmoid(x)), which
    is -inf once sigmoid underflows (x below about -88), and a -inf in the calibration data gives INT8 an
    infinite quantisation scale (every output -inf)."""
    return torch.minimum(x, torch.zeros_like(x)) - torch.log1p(torch.exp(-x.abs()))


def side_pairs_for(classes: ClassMap, pairs: Sequence[Sequence[str]]) -> list[list[int]]:
    """Output indices (background is 0) of left/right class pairs, the member named `left` first, so the side
    map means the same for every pair; pairs named otherwise (port/starboard) keep the order given."""
    index = classes.index()
    ordered = []
    for a, b in pairs:
        if names_left_side(b):
            a, b = b, a
        ordered.append([index[a], index[b]])
    return ordered
