"""RoIAlign as one weighted gather (``embedding_bag``), for training Mask R-CNN on CPUs.

torchvision's CPU ``roi_align`` backward runs on one thread and recomputes the bilinear weights for every channel
of every output cell; on a 2-core machine it took about a quarter of a Mask R-CNN training step. RoIAlign is
linear in the features: each output cell is a weighted sum of ``sampling_ratio² × 4`` feature-map pixels, with
the same weights for every channel. So the indices and weights are computed once per cell and handed to
``embedding_bag`` (mode "sum", ``per_sample_weights``) with the feature maps as its table (one row of channels
per pixel, all FPN levels stacked): the same numbers as torchvision (tests compare both), and a backward pass that
adds whole channel rows. :class:`GatherMultiScaleRoIAlign` is a drop-in for torchvision's ``MultiScaleRoIAlign``
(same level mapping and scales); it uses torchvision's kernel on GPUs and for adaptive sampling ratios.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.poolers import _convert_to_roi_format, _filter_input, _setup_scales


def roi_align_levels(features: list[Tensor], rois: Tensor, levels: Tensor, scales: list[float],
                     output_size: tuple[int, int], sampling_ratio: int, aligned: bool = False) -> Tensor:
    """torchvision.ops.roi_align over several feature maps at once.

    features: per level (N, C, H_l, W_l); rois: (K, 5) rows of (image index, x1, y1, x2, y2) in image
    coordinates; levels: (K,) which feature map each RoI reads, scaled by scales[level]. Returns (K, C, ph, pw).
    """
    n, c = features[0].shape[:2]
    ph, pw = output_size
    table = torch.cat([f.permute(0, 2, 3, 1).reshape(-1, c) for f in features])
    sizes = [(f.shape[2], f.shape[3]) for f in features]
    device = rois.device
    heights = torch.tensor([h for h, _ in sizes], device=device)[levels]
    widths = torch.tensor([w for _, w in sizes], device=device)[levels]
    starts = torch.tensor([0] + [n * h * w for h, w in sizes[:-1]], device=device).cumsum(0)[levels]
    scale = torch.tensor(scales, dtype=rois.dtype, device=device)[levels]

    offset = 0.5 if aligned else 0.0
    x1, y1 = rois[:, 1] * scale - offset, rois[:, 2] * scale - offset
    roi_w, roi_h = rois[:, 3] * scale - offset - x1, rois[:, 4] * scale - offset - y1
    if not aligned:  # torchvision's legacy behaviour: RoIs at least one pixel
        roi_w, roi_h = roi_w.clamp_min(1.0), roi_h.clamp_min(1.0)
    s = sampling_ratio
    # sample positions inside each bin, per axis: (K, bins, s)
    steps_y = (torch.arange(ph, device=device)[:, None] + (torch.arange(s, device=device)[None] + 0.5) / s)
    steps_x = (torch.arange(pw, device=device)[:, None] + (torch.arange(s, device=device)[None] + 0.5) / s)
    ys = y1[:, None, None] + steps_y[None] * (roi_h / ph)[:, None, None]
    xs = x1[:, None, None] + steps_x[None] * (roi_w / pw)[:, None, None]
    y_lo, y_hi, wy_lo, wy_hi = _axis_weights(ys, heights[:, None, None])
    x_lo, x_hi, wx_lo, wx_hi = _axis_weights(xs, widths[:, None, None])

    # index and weight of every (cell, sample, corner): dims (K, ph, pw, sy, sx, corner_y, corner_x)
    row_y = torch.stack([y_lo, y_hi], -1)[:, :, None, :, None, :, None]
    col_x = torch.stack([x_lo, x_hi], -1)[:, None, :, None, :, None, :]
    w_y = torch.stack([wy_lo, wy_hi], -1)[:, :, None, :, None, :, None]
    w_x = torch.stack([wx_lo, wx_hi], -1)[:, None, :, None, :, None, :]
    base = (starts + rois[:, 0].long() * heights * widths)[:, None, None, None, None, None, None]
    index = base + row_y * widths[:, None, None, None, None, None, None] + col_x
    weight = w_y * w_x / (s * s)
    k, taps = rois.shape[0], 4 * s * s
    out = F.embedding_bag(index.reshape(k * ph * pw, taps), table, mode="sum",
                          per_sample_weights=weight.reshape(k * ph * pw, taps).to(table.dtype))
    return out.view(k, ph, pw, c).permute(0, 3, 1, 2)


def _axis_weights(v: Tensor, size: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Bilinear interpolation along one axis exactly as torchvision's kernel does it: samples beyond one pixel
    outside the map weigh nothing, samples in [-1, 0] read the first pixel, the last pixel is clamped."""
    inside = ((v >= -1.0) & (v <= size)).to(v.dtype)
    v = v.clamp_min(0.0)
    lo = v.floor().long()
    edge = lo >= size - 1
    lo = torch.where(edge, size - 1, lo)
    hi = torch.where(edge, lo, lo + 1)
    frac = torch.where(edge, torch.zeros_like(v), v - lo)
    return lo, hi, (1 - frac) * inside, frac * inside


class GatherMultiScaleRoIAlign(MultiScaleRoIAlign):
    """torchvision's MultiScaleRoIAlign computed by :func:`roi_align_levels` on CPU."""

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        x_filtered = _filter_input(x, self.featmap_names)
        exporting = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
        if x_filtered[0].is_cuda or self.sampling_ratio <= 0 or exporting:
            return super().forward(x, boxes, image_shapes)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(x_filtered, image_shapes, self.canonical_scale,
                                                         self.canonical_level)
        rois = _convert_to_roi_format(boxes)
        if len(x_filtered) == 1:
            levels = torch.zeros(len(rois), dtype=torch.long, device=rois.device)
        else:
            levels = self.map_levels(boxes).long()
        dtype = x_filtered[0].dtype
        return roi_align_levels([f.to(dtype) for f in x_filtered], rois.to(dtype), levels, self.scales,
                                tuple(self.output_size), self.sampling_ratio)


def use_gather_roi_align(model: torch.nn.Module) -> torch.nn.Module:
    """Swap a torchvision Mask R-CNN's box and mask RoI pools for :class:`GatherMultiScaleRoIAlign` (same
    feature maps, output sizes and sampling ratios; no parameters, so model files are unchanged)."""
    heads = model.roi_heads
    for attr in ("box_roi_pool", "mask_roi_pool"):
        pool = getattr(heads, attr, None)
        if isinstance(pool, MultiScaleRoIAlign) and not isinstance(pool, GatherMultiScaleRoIAlign):
            setattr(heads, attr, GatherMultiScaleRoIAlign(pool.featmap_names, pool.output_size, pool.sampling_ratio,
                                                          canonical_scale=pool.canonical_scale,
                                                          canonical_level=pool.canonical_level))
    return model
