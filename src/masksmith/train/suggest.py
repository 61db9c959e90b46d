"""How long to train: a suggested budget from the data set and this machine's measured speed, and the quality to
expect from a budget, in words.

- Speed: training images per second of the chosen model at the planned input size, from the task table's speed
  measure (masksmith.train.speed: timed on this machine, cached per machine and model, probed again when the
  machine is busier); Mask R-CNN, which has none yet, from its documented rate (INSTANCE_RATE_512).
- Need: images seen. Measured on car-parts (docs/benchmarks.md; 400 photos, 18 parts, U-Net): about 2,000
  images seen gave test mIoU 0.22 (big parts only), 6,800 gave 0.53, 18,000 gave 0.66. A small data set
  needs more passes over each photo, so the need is counted in epochs too (EPOCHS_GOOD), between the bounds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

ROUGH, USABLE, GOOD = 3_000, 8_000, 18_000  # images seen (car-parts, docs/benchmarks.md)
EPOCHS_GOOD = 60  # passes over a small data set for a good model
LEAST = 3_000  # images seen for a good model, however small the data set
INSTANCE_RATE_512 = 1.2  # images/s of Mask R-CNN Lite0 at a 512 px side on 2 cores (docs/benchmarks.md)
TIERS = (  # (images seen at least, level, words)
    (GOOD, "good", "good masks for most parts; small and rare parts improve last"),
    (USABLE, "usable", "usable masks for the large parts; small and rare parts stay rough"),
    (ROUGH, "rough", "rough masks: the large parts only, not yet worth using"),
    (0, "poor", "too short to learn much: expect the whole object painted as one or two parts"),
)


@dataclass
class Budget:
    """A suggested budget and what to expect: minutes for a good and for a usable model, the measured speed,
    and the epochs they are."""

    good_minutes: float
    usable_minutes: float
    images_per_second: float
    train_images: int
    size: int
    batch: int
    measured: bool  # False: the speed is a documented estimate, not measured here

    def expect(self, minutes: float) -> dict[str, Any]:
        """What `minutes` of training gives: the level, the words, the images seen and epochs."""
        seen = minutes * 60 * self.images_per_second
        need = _need(self.train_images)
        level, words = next((lv, w) for at, lv, w in TIERS if seen >= 0.95 * at * need / GOOD or at == 0)
        return {"level": level, "words": words, "images_seen": round(seen),
                "epochs": round(seen / max(1, self.train_images), 1)}

    def tiers(self) -> list[dict[str, Any]]:
        """From how many minutes each level of quality is reached (best first), for a page to word any budget."""
        need, per_minute = _need(self.train_images), 60 * max(self.images_per_second, 1e-3)
        return [{"level": lv, "words": w, "minutes": round(0.95 * at * need / GOOD / per_minute, 2)}
                for at, lv, w in TIERS]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tiers": self.tiers()}


def _need(train_images: int) -> float:
    """Images seen for a good model: EPOCHS_GOOD passes, within [LEAST, GOOD]."""
    return min(GOOD, max(LEAST, EPOCHS_GOOD * train_images))


def suggest_budget(train_images: int, images_per_second: float, size: int, batch: int,
                   measured: bool = True) -> Budget:
    need = _need(train_images)
    per_minute = 60 * max(images_per_second, 1e-3)
    good = need / per_minute
    usable = need * USABLE / GOOD / per_minute
    return Budget(_round_minutes(good), _round_minutes(usable), round(images_per_second, 2), train_images, size,
                  batch, measured)


def _round_minutes(minutes: float) -> float:
    """Up to a half minute (five above 20): rounded down, a suggested budget could fall below the level it
    promises (the page's tiers start at 0.95 of the exact figure, 1.7 min rounded to 1.5 did)."""
    return max(1.0, math.ceil(minutes * 2) / 2 if minutes < 20 else math.ceil(minutes / 5) * 5)


def instance_rate(size: int) -> float:
    """Mask R-CNN's training images per second at a `size` px side (the documented rate, scaled by pixels)."""
    return INSTANCE_RATE_512 * (512 / max(64, size)) ** 2
