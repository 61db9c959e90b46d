"""Which photos to label next: unlabelled photos ordered by how unsure the model is about them.

- Semantic models: the class probabilities at the size the network sees (cheap, and what the model decided
  on), then per pixel the entropy (normalised by log C, so 0 = certain, 1 = uniform) or the margin
  uncertainty (1 - (p_top1 - p_top2)); the photo's score is the mean over its pixels.
- Instance models: every object the network proposes above a low floor (`floor`, 0.05), each scored
  1 - |2 s - 1| (1 at s = 0.5: the model cannot tell whether it is an object; 0 when sure either way); the
  photo's score is the sum over its objects divided by (1 + the number of confident ones), so a photo full
  of doubtful objects comes before one with a single doubtful object among many sure ones.
Order (`strategy`):
- "diverse" (the default): a batch of the most unsure photos alone is often redundant (the model's doubtful
  photos tend to be one kind, e.g. unusual views, all alike), so photos are picked one at a time: the next one
  is the photo with the highest uncertainty x min(1, d / r)^2, d the distance of its description to the nearest
  photo already picked (or `covered`: photos labelled since this model ranked them), r the median distance
  between two photos (of the pool and the covered ones). A photo unlike every one picked (d >= r) counts with
  its full uncertainty; a near-duplicate of a picked one counts for almost nothing (the square: a photo half as
  far as usual from a picked one must be four times as unsure to come first). The first pick is the most
  unsure photo; every top N of the list is a diverse batch, whatever N, so no batch size is needed, and
  labelling the list from the top leaves the rest of it as it was (the labelled photos become `covered`).
  A photo's description is what the model saw: semantic models, its mean class probabilities in each cell of a
  3 x 3 grid (which parts, where: the kind of view); instance models, per class its objects' summed scores and
  doubts. Small pools need nothing special (one photo is itself; two come most unsure first); a pool whose
  photos are all described alike (r = 0) comes out most unsure first. The rule picks the first `DIVERSE_MOST`
  (1000) photos of the list (it costs photos x picks distances); any after them come most unsure first.
- "uncertain": most unsure first, nothing else.
Ties in name order; the same photos and model give the same list. The list is written as CSV (rank, image,
score, measure, objects, distinct: the factor min(1, d / r)^2 the photo was picked with) atomically.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from masksmith.core.errors import MasksmithError

MEASURES = ("entropy", "margin")
STRATEGIES = ("diverse", "uncertain")
GRID = 3  # semantic descriptions: mean class probabilities in GRID x GRID cells
DIVERSE_MOST = 1000  # photos ordered by the diverse rule; those after, by uncertainty alone


@dataclass
class Ranked:
    image: str
    score: float
    measure: str
    objects: int | None = None  # instance models: objects proposed above the floor
    distinct: float | None = None  # diverse order: min(1, d / r)^2 when the photo was picked (module docstring)
    feature: np.ndarray | None = field(default=None, repr=False, compare=False)  # the photo's description


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


def layout(probs, grid: int = GRID) -> np.ndarray:
    """A photo's description from its (C, H, W) class probabilities: the mean probability of each class in each
    cell of a grid x grid split (C * grid * grid values; which parts the model sees, and where)."""
    import torch

    p = torch.as_tensor(probs).float()[None]
    return torch.nn.functional.adaptive_avg_pool2d(p, grid)[0].flatten().numpy().astype(np.float64)


def semantic_row(predictor, name: str, image: np.ndarray, measure: str = "entropy") -> Ranked:
    """The photo's uncertainty and description from one pass of the network."""
    probs = predictor.predict_proba(image, own_size=False)
    return Ranked(name, round(pixel_uncertainty(probs, measure), 6), measure, feature=layout(probs))


def instance_score(predictor, image: np.ndarray, floor: float = 0.05) -> tuple[float, int]:
    """(score, objects) with the predictor's threshold lowered to `floor` for this photo."""
    row = instance_row(predictor, "", image, floor)
    return row.score, int(row.objects or 0)


def instance_row(predictor, name: str, image: np.ndarray, floor: float = 0.05) -> Ranked:
    """The photo's score (module docstring) and description: per class, its objects' summed scores and doubts."""
    kept = predictor.score_threshold
    predictor.score_threshold = floor
    try:
        objects = predictor.predict(image)
    finally:
        predictor.score_threshold = kept
    names = list(predictor.classes.names)
    feature = np.zeros(2 * len(names), np.float64)
    for o in objects:
        if o.label in names:
            k = names.index(o.label)
            feature[2 * k] += o.score
            feature[2 * k + 1] += 1.0 - abs(2.0 * o.score - 1.0)
    score = object_uncertainty([o.score for o in objects], max(kept, floor))
    return Ranked(name, round(score, 6), "objects", len(objects), feature=feature)


def check_measure(measure: str) -> str:
    if measure not in MEASURES:
        raise MasksmithError(f"unknown measure {measure!r}.", fix=f"use one of: {', '.join(MEASURES)}.")
    return measure


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise MasksmithError(f"unknown ranking strategy {strategy!r}.", fix=f"use one of: {', '.join(STRATEGIES)}.")
    return strategy


def score_images(predictor, images: Iterable[tuple[str, np.ndarray]], measure: str = "entropy",
                 floor: float = 0.05) -> list[Ranked]:
    """Every (name, image) pair's uncertainty and description, in the order given."""
    check_measure(measure)
    instance = getattr(predictor.artifact, "task", "semantic") == "instance"
    return [instance_row(predictor, name, image, floor) if instance else semantic_row(predictor, name, image, measure)
            for name, image in images]


def rank_images(predictor, images: Iterable[tuple[str, np.ndarray]], measure: str = "entropy",
                floor: float = 0.05, strategy: str = "diverse") -> list[Ranked]:
    """(name, image) pairs in the order to label them (`strategy`, module docstring)."""
    check_strategy(strategy)
    return order(score_images(predictor, images, measure, floor), strategy)


def order(rows: Iterable[Ranked], strategy: str = "diverse", covered: Iterable[np.ndarray] = (),
          most: int = DIVERSE_MOST) -> list[Ranked]:
    """Scored rows in the order to label them: most unsure first ("uncertain"), or by the diverse rule of the
    module docstring ("diverse"): `most` photos picked by it from the whole pool, then the others most unsure
    first; `covered`: descriptions of photos labelled since this model ranked them, which count as picked.
    Returns new rows (with `distinct` set on those the rule picked)."""
    from dataclasses import replace

    check_strategy(strategy)
    rows = sorted(rows, key=lambda r: (-r.score, r.image))
    if strategy == "uncertain" or len(rows) < 2:
        return [replace(r, distinct=None) for r in rows]
    if any(r.feature is None for r in rows):
        raise MasksmithError("a photo was scored without a description, so it cannot be ranked for diversity.",
                             fix="score photos with rank.score_images, or use strategy 'uncertain'.")
    features = np.stack([np.asarray(r.feature, np.float64).ravel() for r in rows])
    covered = [np.asarray(c, np.float64).ravel() for c in covered]
    covered = [c for c in covered if c.shape == features.shape[1:]]
    scale = median_distance(np.vstack([features, *covered]) if covered else features)  # one set as photos go
    nearest = np.full(len(rows), np.inf)
    for c in covered:
        nearest = np.minimum(nearest, np.linalg.norm(features - c, axis=1))
    uncertainty = np.array([r.score for r in rows], np.float64)
    left = np.ones(len(rows), bool)
    picked = []
    for _ in range(min(max(0, most), len(rows))):
        distinct = np.ones(len(rows)) if scale <= 0 else np.minimum(1.0, nearest / scale) ** 2
        value = np.where(left, uncertainty * distinct, -np.inf)
        k = int(np.argmax(value))  # the first of equals: most unsure, then name order (rows are sorted so)
        picked.append(replace(rows[k], distinct=round(float(distinct[k]), 6)))
        left[k] = False
        nearest = np.minimum(nearest, np.linalg.norm(features - features[k], axis=1))
    return picked + [replace(r, distinct=None) for r, free in zip(rows, left, strict=True) if free]


def median_distance(features: np.ndarray, most: int = 500) -> float:
    """The median Euclidean distance between two of the rows (on at most `most` rows evenly spread)."""
    if len(features) > most:
        features = features[np.linspace(0, len(features) - 1, most).round().astype(int)]
    if len(features) < 2:
        return 0.0
    from scipy.spatial.distance import pdist

    return float(np.median(pdist(features)))


def write_ranking(rows: Iterable[Ranked], out, name: str = "ranking.csv") -> Path:
    """rank, image, score, measure (and objects) as CSV, written atomically through an OutputFolder."""
    from masksmith.core.outputs import as_output_folder

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["rank", "image", "score", "measure", "objects", "distinct"])
    for k, r in enumerate(rows, start=1):
        writer.writerow([k, r.image, f"{r.score:.6f}", r.measure, "" if r.objects is None else r.objects,
                         "" if r.distinct is None else f"{r.distinct:.6f}"])
    return as_output_folder(out).write_text(name, buf.getvalue())
