"""Which photos to label next: unlabelled photos ordered by how unsure the model is about them.

- Semantic models: the class probabilities at the size the network sees (cheap, and what the model decided
  on), then per pixel the entropy (normalised by log C, so 0 = certain, 1 = uniform) or the margin
  uncertainty (1 - (p_top1 - p_top2)); the photo's score is the mean over its pixels.
- Instance models: every object the network proposes above a low floor (`floor`, 0.05), each scored
  1 - |2 s - 1| (1 at s = 0.5: the model cannot tell whether it is an object; 0 when sure either way); the
  photo's score is the sum over its objects divided by (1 + the number of confident ones), so a photo full
  of doubtful objects comes before one with a single doubtful object among many sure ones.
Photos are listed most uncertain first; the list is written as CSV (rank, image, score, measure) atomically.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from masksmith.core.errors import MasksmithError

MEASURES = ("entropy", "margin")


@dataclass
class Ranked:
    image: str
    score: float
    measure: str
    objects: int | None = None  # instance models: objects proposed above the floor


def pixel_uncertainty(probs, measure: str = "entropy") -> float:
    """Mean per-pixel uncertainty in [0, 1] of (C, H, W) class probabilities (a torch tensor or array)."""
    import torch

    p = torch.as_tensor(probs).float()
    c = p.shape[0]
    if measure == "entropy":
        h = -(p * torch.log(p.clamp_min(1e-12))).sum(0)
        return float(h.mean() / math.log(max(c, 2)))
    if measure == "margin":
        top = torch.topk(p, k=min(2, c), dim=0).values
        margin = top[0] - (top[1] if c > 1 else 0.0)
        return float((1.0 - margin).mean())
    raise MasksmithError(f"unknown measure {measure!r}.", fix=f"use one of: {', '.join(MEASURES)}.")


def object_uncertainty(scores: Iterable[float], confident: float = 0.5) -> float:
    """The instance score of one photo from its objects' scores (see the module docstring)."""
    s = np.asarray(list(scores), np.float64)
    if s.size == 0:
        return 0.0
    doubt = 1.0 - np.abs(2.0 * s - 1.0)
    return float(doubt.sum() / (1.0 + (s > confident).sum()))


def semantic_score(predictor, image: np.ndarray, measure: str = "entropy") -> float:
    return pixel_uncertainty(predictor.predict_proba(image, own_size=False), measure)


def instance_score(predictor, image: np.ndarray, floor: float = 0.05) -> tuple[float, int]:
    """(score, objects) with the predictor's threshold lowered to `floor` for this photo."""
    kept = predictor.score_threshold
    predictor.score_threshold = floor
    try:
        objects = predictor.predict(image)
    finally:
        predictor.score_threshold = kept
    return object_uncertainty([o.score for o in objects], max(kept, floor)), len(objects)


def check_measure(measure: str) -> str:
    if measure not in MEASURES:
        raise MasksmithError(f"unknown measure {measure!r}.", fix=f"use one of: {', '.join(MEASURES)}.")
    return measure


def rank_images(predictor, images: Iterable[tuple[str, np.ndarray]], measure: str = "entropy",
                floor: float = 0.05) -> list[Ranked]:
    """(name, image) pairs ranked most uncertain first (ties in name order)."""
    check_measure(measure)
    instance = getattr(predictor.artifact, "task", "semantic") == "instance"
    rows = []
    for name, image in images:
        if instance:
            score, n = instance_score(predictor, image, floor)
            rows.append(Ranked(name, round(score, 6), "objects", n))
        else:
            rows.append(Ranked(name, round(semantic_score(predictor, image, measure), 6), measure))
    rows.sort(key=lambda r: (-r.score, r.image))
    return rows


def write_ranking(rows: Iterable[Ranked], out, name: str = "ranking.csv") -> Path:
    """rank, image, score, measure (and objects) as CSV, written atomically through an OutputFolder."""
    from masksmith.core.outputs import as_output_folder

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["rank", "image", "score", "measure", "objects"])
    for k, r in enumerate(rows, start=1):
        writer.writerow([k, r.image, f"{r.score:.6f}", r.measure, "" if r.objects is None else r.objects])
    return as_output_folder(out).write_text(name, buf.getvalue())
