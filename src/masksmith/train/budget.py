"""How long to train: a suggested budget from the data set and this machine's measured speed, and the quality to
expect from a budget, in words. One small module, meant to be replaced by a finer measurement (issue 23).

- Speed: images per second of a training step of the chosen model at the planned input size and batch, timed
  on this machine (one warm-up and STEPS timed forward/backward/update steps on random tensors, random
  weights), cached per machine, model, size and batch under the user cache.
- Need: images seen. Measured on car-parts (docs/benchmarks.md; 400 photos, 18 parts, U-Net): about 2,000
  images seen gave test mIoU 0.22 (big parts only), 6,800 gave 0.53, 18,000 gave 0.66. A small data set
  needs more passes over each photo, so the need is counted in epochs too (EPOCHS_GOOD), between the bounds.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STEPS = 2
MEASURED_BATCH = 2  # images per timed step (the rate per image hardly depends on the batch on a CPU)
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
    return max(1.0, round(minutes * 2) / 2 if minutes < 20 else round(minutes / 5) * 5)


# ------------------------------------------------------------------------------------ this machine's speed
def _cache_file() -> Path:
    root = Path(os.environ.get("MASKSMITH_CACHE", Path.home() / ".cache" / "masksmith"))
    return root / "speed.json"


def machine_key() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return f"{platform.node()}|{cpu}|{os.cpu_count()}|torch {torch.__version__}|threads {torch.get_num_threads()}"


def step_rate(arch: str, task: str, size: int, batch: int, classes: int, use_cache: bool = True
              ) -> tuple[float, bool]:
    """(training images per second, measured) of `arch` at `size` x `size` and `batch` on this machine."""
    if task == "instance":
        return INSTANCE_RATE_512 * (512 / max(64, size)) ** 2, False
    key = f"{machine_key()}|{arch}|{size}|{batch}"
    path = _cache_file()
    try:
        cached = json.loads(path.read_text(encoding="utf-8")) if use_cache and path.is_file() else {}
    except (OSError, ValueError):
        cached = {}
    if key in cached:
        return float(cached[key]), True
    rate = _time_steps(arch, size, min(batch, MEASURED_BATCH), classes)
    if use_cache:
        from masksmith.core.outputs import atomic_write_text

        atomic_write_text(path, json.dumps({**cached, key: rate}, indent=1))
    return rate, True


def _time_steps(arch: str, size: int, batch: int, classes: int) -> float:
    import torch

    from masksmith.models.semantic import ModelConfig, SegmentationNet, build_model

    torch.manual_seed(0)
    net = SegmentationNet(build_model(ModelConfig(arch=arch, num_outputs=classes + 1, encoder_weights=None),
                                      pretrained=False), (0.5,) * 3, (0.5,) * 3)
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, size, size) * 255
    y = torch.randint(0, classes + 1, (batch, size, size))
    net.train()

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimiser.step()

    step()  # warm-up: allocations, kernel choices
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    return batch * STEPS / (time.perf_counter() - start)
