"""How fast this machine trains and predicts a model: measured, not assumed (the training plan's budget reasoning
reads it, masksmith.train.plan).

`measure_rate(config, num_outputs)` times a few real training steps of the run's own model (its architecture,
encoder, frozen stages, precision and loss; AdamW; random pixels) at two input sizes, SMALL and LARGE px
square, and a few forward passes for prediction, and fits seconds per image as `a + b x pixels` through them.
The curve is cached per machine (CPU flags, torch threads, torch version) and model under the user cache
(speed/), because it costs seconds. The machine's load changes from minute to minute, so a cached curve is
never trusted as it is: one quick probe (a step at SMALL px) is timed every time, and the whole curve is scaled
by probe / cached (`RateCurve.load`); a probe faster than the cache by a wide margin means the cache was
measured under load, and the curve is measured again.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

VERSION = 1
SMALL, LARGE = 128, 256  # the two square sides measured
BATCH = 4  # images per measured step
STEPS = 2  # timed steps per size (after one untimed warm-up step)
REMEASURE = 0.7  # a probe this much faster than the cached curve: the cache was measured under load
RECENT = 300.0  # seconds a rate measured or probed in this process is used again without a probe
_recent: dict[str, tuple[float, RateCurve]] = {}


@dataclass
class RateCurve:
    """Seconds per image for a training step (forward, backward, optimizer, augmentation) and for prediction
    (forward only), as a + b x pixels per image, measured at SMALL and LARGE px; `load`: how much slower the
    machine is now than when the curve was measured (1 = as then)."""

    train_small: float
    train_large: float
    infer_small: float
    infer_large: float
    key: str = ""
    measured_at: float = 0.0  # time.time()
    load: float = 1.0
    source: str = "measured"  # "measured", or "cached" (scaled by a probe)

    def _at(self, small: float, large: float, pixels: float) -> float:
        p0, p1 = SMALL * SMALL, LARGE * LARGE
        slope = max(0.0, (large - small) / (p1 - p0))
        return max(1e-6, small + slope * (pixels - p0)) * self.load

    def train_seconds(self, pixels: float) -> float:
        """Seconds per training image of `pixels` (height x width at the network's input)."""
        return self._at(self.train_small, self.train_large, pixels)

    def infer_seconds(self, pixels: float) -> float:
        """Seconds per predicted window of `pixels`."""
        return self._at(self.infer_small, self.infer_large, pixels)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RateCurve:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def text(self) -> str:
        how = "measured now" if self.source == "measured" else f"cached, x{self.load:.2f} by a probe now"
        return (f"{1 / self.train_seconds(LARGE * LARGE):.1f} training images/s and "
                f"{1 / self.infer_seconds(LARGE * LARGE):.1f} predicted windows/s at {LARGE} px ({how})")


def cpu_flags() -> str:
    """The vector extensions of this CPU that decide torch's speed (from /proc/cpuinfo)."""
    try:
        line = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    have = set(line.split(":", 1)[1].split())
    return " ".join(f for f in ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16",
                                "amx_tile") if f in have) or "none"


def rate_key(config: Any, precision: str, loss: str = "ce+dice") -> str:
    """A digest of what the curve depends on: the machine (CPU flags, threads, torch) and the model."""
    import torch

    parts = [VERSION, cpu_flags(), torch.get_num_threads(), torch.__version__, config.arch, config.encoder,
             config.decoder_channels, config.freeze_encoder_levels if config.encoder_weights else 0,
             config.side_head, precision, config.channels_last, loss]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:20]


def rate_cache() -> Path:
    from masksmith.data.archive import cache_dir

    return cache_dir() / "speed"


class _Stepper:
    """The run's model, loss and optimizer on random pixels: times training steps and predictions."""

    def __init__(self, config: Any, num_outputs: int, precision: str, loss: str) -> None:
        import torch

        from masksmith.models.encoders import early_encoder_modules, freeze_modules
        from masksmith.models.semantic import ModelConfig, SegmentationNet, build_model, default_normalisation
        from masksmith.train.losses import SegmentationLoss

        model_config = ModelConfig(arch=config.arch, num_outputs=num_outputs, encoder=config.encoder,
                                   encoder_weights=None, decoder_channels=config.decoder_channels)
        mean, std = default_normalisation(model_config)
        self.net = SegmentationNet(build_model(model_config, pretrained=False), mean, std)
        self.channels_last = config.channels_last
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.net.train()
        encoder = getattr(self.net.model, "encoder", None)
        if config.encoder_weights and encoder is not None and config.freeze_encoder_levels > 0:
            freeze_modules(early_encoder_modules(encoder, config.freeze_encoder_levels) or [])  # as training does
        self.loss = SegmentationLoss(loss, num_outputs)
        self.optimizer = torch.optim.AdamW([p for p in self.net.parameters() if p.requires_grad], lr=1e-4)
        self.bf16 = precision == "bf16-mixed"
        self.classes = max(2, num_outputs)

    def forward(self, images):
        import torch

        x = images.float()
        return self.net(x.contiguous(memory_format=torch.channels_last) if self.channels_last else x)

    def _batch(self, side: int):
        import torch

        g = torch.Generator().manual_seed(side)
        images = torch.randint(0, 256, (BATCH, 3, side, side), dtype=torch.uint8, generator=g)
        masks = torch.randint(0, self.classes if self.classes > 2 else 2, (BATCH, side, side), generator=g)
        return images, masks

    def train_step(self, side: int) -> float:
        import torch

        from masksmith.data.torchdata import AugmentConfig, train_transform

        images, masks = self._batch(side)
        augment = train_transform((side, side), AugmentConfig(), torch.arange(256, dtype=torch.uint8))
        t0 = time.perf_counter()
        for k in range(BATCH):  # the data path's cost: augmentation runs on the same cores
            augment(images[k], masks[k])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.loss(self.forward(images), masks)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return (time.perf_counter() - t0) / BATCH

    def infer_step(self, side: int) -> float:
        import torch

        images, _ = self._batch(side)
        self.net.eval()
        t0 = time.perf_counter()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            self.forward(images)
        self.net.train()
        return (time.perf_counter() - t0) / BATCH

    def timed(self, step, side: int, repeats: int = STEPS) -> float:
        step(side)  # warm-up: first calls allocate
        return min(step(side) for _ in range(repeats))


def measure_rate(config: Any, num_outputs: int, precision: str, loss: str = "ce+dice",
                 use_cache: bool = True) -> RateCurve:
    """This machine's rate for the run's model now (`num_outputs` scores per pixel, `precision` as Lightning
    names it, the loss by name): the cached curve scaled by a probe, or measured afresh (and cached) when
    there is none or the probe says the cache was measured under load."""
    key = rate_key(config, precision, loss)
    if use_cache and key in _recent and time.monotonic() - _recent[key][0] < RECENT:
        return _recent[key][1]
    curve = _measure(config, num_outputs, precision, loss, key, use_cache)
    _recent[key] = (time.monotonic(), curve)
    return curve


def _measure(config: Any, num_outputs: int, precision: str, loss: str, key: str, use_cache: bool) -> RateCurve:
    path = rate_cache() / f"{key}.json"
    stepper = _Stepper(config, num_outputs, precision, loss)
    cached = None
    if use_cache and path.is_file():
        try:
            cached = RateCurve.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            cached = None
    if cached is not None:
        probe = stepper.timed(stepper.train_step, SMALL, 1)
        load = probe / max(1e-9, cached.train_small)
        if load >= REMEASURE:
            return replace(cached, load=max(load, 0.5), source="cached")
    train = stepper.timed(stepper.train_step, SMALL), stepper.timed(stepper.train_step, LARGE)
    infer = stepper.timed(stepper.infer_step, SMALL, 3), stepper.timed(stepper.infer_step, LARGE, 3)
    # a larger input never costs less: a busy machine's noise can make one measurement say so
    curve = RateCurve(train_small=train[0], train_large=max(train), infer_small=infer[0], infer_large=max(infer),
                      key=key, measured_at=time.time())
    if use_cache:
        from masksmith.core.outputs import atomic_write_text

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(curve.to_dict(), indent=1))
        except Exception:  # noqa: BLE001 - a cache that cannot be written only costs the next run a measurement
            pass
    return curve
