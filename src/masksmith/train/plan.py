"""A training plan from the data set's fingerprint: a pure function of (fingerprint, machine, budget, the
values the user fixed) to a Plan that says what to train at and why, each choice with its reason.

The rules (semantic models; constants below):
- Scale. The strongest shrink that keeps the thinnest class (its 10th-percentile thickness) at MIN_THIN px and
  the smallest class (its median object size) at MIN_OBJECT px: thin structures keep the photo's own scale,
  chunky objects let it shrink. Never below 1 (no enlarging).
- Input mode. Resize the whole photo when photos are near-square (aspect within SQUARE of 1), alike in size,
  and the whole shrunk photo fits RESIZE_MAX px: one step sees the whole scene, and the size is at least
  BASE px (the tuned default: below it the model loses context faster than the step gets cheaper). Otherwise
  keep the scale: train on crops of the shrunk photos (CROP px, or smaller when the photos are) and predict
  with a sliding window at the same scale (the predictor's `input_mode: scale`).
- Crops per image: about one per crop-sized area of the shrunk photo (up to MAX_CROPS), so an epoch of large
  photos covers them. A third of the crops are centred on a labelled pixel of a class present in the image
  (nnU-Net's foreground oversampling), so rare and thin classes are seen often.
- Batch: the default's pixels per step (8 x 256 x 256, what the CPU step cost was tuned at), within the
  memory this machine has free (BYTES_PER_PIXEL per training input pixel, measured for the default U-Net).
- Class weights: none (no benchmark has shown that weighting rare classes helps here; the crop sampling does
  that job).
- Mask R-CNN: the longer side (default 512) raised so the smallest class's typical object keeps >= 16 px,
  up to the photo's own size and MAX_RCNN_SIDE.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from masksmith.data.fingerprint import Fingerprint

MIN_THIN = 3.0  # px at the network's input for the thinnest class's thin end
MIN_OBJECT = 8.0  # px at the network's input for the smallest class's typical object
BASE = 256  # the default square input (docs/benchmarks.md, issue 3)
RESIZE_MAX = 384  # a whole photo larger than this after the shrink is trained on crops
SQUARE = 1.25  # aspect ratios within [1/SQUARE, SQUARE] count as square
ALIKE = 1.25  # largest / smallest side within this count as alike
CROP = 256
MAX_CROPS = 8
FOREGROUND = 1 / 3
STEP_PIXELS = 8 * 256 * 256
BYTES_PER_PIXEL = 6_000  # training memory per input pixel (U-Net + EfficientNet-Lite0, fp32, ~0.4 GB / 256^2)
MEMORY_SHARE = 0.4  # of the free memory a training batch may take
CACHE_SHARE = 0.25  # of the free memory the decoded image cache may take
RCNN_BASE, RCNN_MIN_OBJECT, MAX_RCNN_SIDE = 512, 16.0, 1333
PLANNED = ("input_mode", "shrink", "size", "crop", "crops_per_image", "foreground_crops", "batch_size",
           "class_weights")


@dataclass
class Machine:
    cpus: int
    memory_free: int  # bytes
    gpu: bool = False

    @classmethod
    def here(cls) -> Machine:
        import torch

        return cls(cpus=os.cpu_count() or 1, memory_free=free_memory(), gpu=torch.cuda.is_available())


def free_memory() -> int:
    """Bytes of memory available now (`core.memory.available_memory`), or 4 GiB when the system does not say."""
    from masksmith.core.memory import available_memory

    free = available_memory()
    return free if free is not None else 4 << 30


@dataclass
class Choice:
    value: Any
    source: str  # "plan", "user" or "default"
    reason: str


@dataclass
class Plan:
    task: str
    choices: dict[str, Choice] = field(default_factory=dict)

    def value(self, name: str) -> Any:
        return self.choices[name].value

    def to_dict(self) -> dict[str, Any]:
        return {name: asdict(c) for name, c in self.choices.items()}

    def lines(self) -> list[str]:
        out = ["plan (any flag overrides it):"]
        for name, c in self.choices.items():
            out.append(f"  {name}: {c.value!r} [{c.source}] {c.reason}")
        return out

    def apply(self, config: Any) -> Any:
        """Write every choice into the config (a TrainConfig) and record the plan in config.plan."""
        for name, c in self.choices.items():
            if name != "input_mode":
                setattr(config, name, c.value)
        config.plan = self.to_dict()
        return config


def _round_up(x: float, d: int) -> int:
    return max(d, math.ceil(x / d) * d)


def plan_training(fp: Fingerprint, machine: Machine, *, task: str = "semantic", time_budget: float | None = None,
                  user: dict[str, Any] | None = None, divisor: int = 32,
                  defaults: dict[str, Any] | None = None) -> Plan:
    """The plan for this data set on this machine. `user`: the values the user fixed (they win, and the rest
    is planned around them); `defaults`: the config's values for the choices the plan does not make."""
    user = dict(user or {})
    if task == "instance":
        return _plan_instance(fp, user, defaults or {})
    return _plan_semantic(fp, machine, user, divisor, time_budget)


def _plan_semantic(fp: Fingerprint, machine: Machine, user: dict[str, Any], d: int,
                   time_budget: float | None) -> Plan:
    plan = Plan("semantic")
    h, w = fp.median_size
    longer = max(h, w)
    thin, small = fp.thinnest(), fp.smallest()
    # -- scale: (strongest shrink, what limits it, its full-size px, the px it must keep)
    limits = []
    if thin is not None:
        limits.append((thin.thickness_low / MIN_THIN, f"{thin.name} (the thinnest class, 10th-percentile "  # type: ignore[operator]
                       "thickness)", thin.thickness_low, MIN_THIN))
    if small is not None:
        typical = min((c for c in fp.classes if c.size_median is not None), key=lambda c: c.size_median)
        limits.append((typical.size_median / MIN_OBJECT, f"{typical.name} (the smallest class, median "  # type: ignore[operator]
                       "object size)", typical.size_median, MIN_OBJECT))
    if limits:
        most, what, px, keep = min(limits, key=lambda x: x[0])
        why = f"{what} is {px:.1f} px and should keep {keep:.0f} px"
    else:
        most, what, px, keep = longer / BASE, "", 0.0, 0.0
        why = "nothing is labelled in the measured images"
    most = max(1.0, most)
    square = fp.aspect["min"] >= 1 / SQUARE and fp.aspect["max"] <= SQUARE
    alike = (fp.width["max"] <= ALIKE * fp.width["min"]) and (fp.height["max"] <= ALIKE * fp.height["min"])
    whole = longer / most  # the longer side of the typical photo at the strongest shrink
    # -- input mode
    if "shrink" in user and user["shrink"]:
        mode, mode_why, mode_src = "scale", "set by you", "user"
    elif "size" in user and user["size"]:
        mode, mode_why, mode_src = "resize", "set by you", "user"
    elif not square:
        mode, mode_why, mode_src = "scale", (f"photos are not square (aspect w/h {fp.aspect['min']:.2f}-"
                                             f"{fp.aspect['max']:.2f}): resizing them to a square would distort "
                                             "them"), "plan"
    elif not alike:
        mode, mode_why, mode_src = "scale", "photo sizes vary: one resize would give each a different scale", "plan"
    elif whole > RESIZE_MAX:
        mode, mode_why, mode_src = "scale", (f"the whole photo would need {whole:.0f} px ({why}), more than "
                                             f"{RESIZE_MAX} px per step"), "plan"
    else:
        mode, mode_src = "resize", "plan"
        mode_why = f"photos are square and alike, and a whole photo fits in {max(BASE, _round_up(whole, d))} px"
    plan.choices["input_mode"] = Choice(mode, mode_src, mode_why)
    # -- scale / size
    if mode == "resize":
        plan.choices["shrink"] = Choice(None, "plan" if mode_src == "plan" else "user", "whole photos are resized")
        if "size" in user and user["size"]:
            plan.choices["size"] = Choice(int(user["size"]), "user", "set by you")
        else:
            own = _round_up(longer, d)
            size = min(own, max(BASE, _round_up(whole, d)))
            kept = f"{what} keeps {px * size / longer:.1f} px" if what else "nothing labelled to keep"
            reason = (f"the photo's own {own} px: no enlarging" if size == own else
                      f"{BASE} px, the tuned default ({longer / size:.1f}x smaller: {kept}, >= {keep:.0f})"
                      if size == BASE else f"{why}: {longer / size:.1f}x smaller keeps it")
            plan.choices["size"] = Choice(size, "plan", reason)
        crop_side = plan.value("size")
        plan.choices["crop"] = Choice(None, "plan", "whole photos, no crops")
        plan.choices["crops_per_image"] = Choice(1, "plan", "one whole photo per step item")
        plan.choices["foreground_crops"] = Choice(0.0, "plan", "whole photos contain every class they have")
        step_area = crop_side * crop_side
    else:
        if "shrink" in user and user["shrink"]:
            shrink, src, reason = float(user["shrink"]), "user", "set by you"
        else:
            shrink, src = round(most, 2), "plan"
            reason = f"{why}: shrink {shrink:g}x" if shrink > 1 else f"{why}: keep the photo's own scale"
        # the decoded cache of every shrunk photo must fit in memory
        cache = fp.images * h * w * 3 / shrink**2
        if src == "plan" and cache > CACHE_SHARE * machine.memory_free:
            shrink = round(math.sqrt(fp.images * h * w * 3 / (CACHE_SHARE * machine.memory_free)), 2)
            reason += f"; raised to {shrink:g}x so the decoded photos fit in {CACHE_SHARE:.0%} of free memory"
        plan.choices["shrink"] = Choice(shrink, src, reason)
        sh, sw = h / shrink, w / shrink
        if "size" in user and user["size"]:
            crop, crop_src, crop_why = int(user["size"]), "user", "set by you (the crop side)"
        else:
            crop = min(CROP, _round_up(min(sh, sw), d)) if min(sh, sw) < CROP else CROP
            crop_src = "plan"
            crop_why = (f"{CROP} px crops, the default's pixels per step" if crop == CROP else
                        f"the shrunk photos are only {min(sh, sw):.0f} px on their short side")
        crop_h, crop_w = min(crop, _round_up(sh, d)), min(crop, _round_up(sw, d))
        if crop_h == crop_w:
            crop_hw: int | list[int] = crop_h
        else:
            crop_hw = [crop_h, crop_w]
        plan.choices["size"] = Choice(crop, crop_src, "the network's input: the crop side")
        plan.choices["crop"] = Choice(crop_hw, crop_src, crop_why)
        per = max(1, min(MAX_CROPS, round(sh * sw / (crop_h * crop_w))))
        plan.choices["crops_per_image"] = Choice(
            per, "plan", f"a shrunk photo ({sw:.0f}x{sh:.0f}) covers about {sh * sw / (crop_h * crop_w):.1f} "
                         f"crops (at most {MAX_CROPS} per epoch)")
        plan.choices["foreground_crops"] = Choice(
            round(FOREGROUND, 3), "plan", "a third of the crops centred on a labelled pixel of a class the photo "
                                          "has (nnU-Net), so rare and thin classes are seen often")
        step_area = crop_h * crop_w
    # -- batch
    if "batch_size" in user and user["batch_size"]:
        plan.choices["batch_size"] = Choice(int(user["batch_size"]), "user", "set by you")
    else:
        batch = max(2, min(16, round(STEP_PIXELS / step_area)))
        fits = max(1, int(MEMORY_SHARE * machine.memory_free / (BYTES_PER_PIXEL * step_area)))
        reason = f"the default's {STEP_PIXELS // 65536} x 256^2 pixels per step"
        if fits < batch:
            batch, reason = fits, f"what fits in {MEMORY_SHARE:.0%} of the {machine.memory_free / 2**30:.1f} GiB free"
        plan.choices["batch_size"] = Choice(batch, "plan", reason)
    if "class_weights" in user and user["class_weights"]:
        plan.choices["class_weights"] = Choice(user["class_weights"], "user", "class_weights were given")
    else:
        rare = [c.name for c in fp.classes if c.pieces and c.pixel_share < 0.01]
        plan.choices["class_weights"] = Choice(
            None, "plan", "none: no benchmark has shown loss weights help here" +
            (f"; rare classes ({', '.join(rare[:4])}{' ...' if len(rare) > 4 else ''}) get foreground crops "
             "instead" if rare and mode == "scale" else ""))
    return plan


def _plan_instance(fp: Fingerprint, user: dict[str, Any], defaults: dict[str, Any]) -> Plan:
    plan = Plan("instance")
    longer = max(fp.median_size)
    if "size" in user and user["size"]:
        plan.choices["size"] = Choice(int(user["size"]), "user", "set by you")
    else:
        known = [c for c in fp.classes if c.size_median is not None]
        if not known:
            plan.choices["size"] = Choice(RCNN_BASE, "plan", "nothing labelled in the measured images: the default")
        else:
            c = min(known, key=lambda c: c.size_median)  # type: ignore[arg-type, return-value]
            need = longer * RCNN_MIN_OBJECT / c.size_median  # type: ignore[operator]
            side = int(min(MAX_RCNN_SIDE, max(RCNN_BASE, math.ceil(need / 32) * 32)))
            side = min(side, max(RCNN_BASE, int(math.ceil(longer / 32) * 32)))
            at = c.size_median * side / longer  # type: ignore[operator]
            plan.choices["size"] = Choice(side, "plan", f"the smallest class, {c.name}, has objects of "
                                          f"{c.size_median:.0f} px (median) at full size: {at:.0f} px at a "
                                          f"{side} px longer side (want >= {RCNN_MIN_OBJECT:.0f})")
    if "batch_size" in user and user["batch_size"]:
        plan.choices["batch_size"] = Choice(int(user["batch_size"]), "user", "set by you")
    else:
        side = plan.value("size")
        batch = max(1, round(2 * (RCNN_BASE / side) ** 2))
        plan.choices["batch_size"] = Choice(batch, "plan", f"2 photos at {RCNN_BASE} px per step, scaled by area")
    return plan


# ---------------------------------------------------------------- the plan for a TrainConfig (reads the data)


def user_values(config: Any) -> dict[str, Any]:
    """The planned fields the user fixed (config.fixed), with their values."""
    return {name: getattr(config, name) for name in config.fixed if hasattr(config, name)}


def plan_config(config: Any, dataset: Any, machine: Machine | None = None,
                announce: Any = None) -> tuple[Fingerprint, Plan]:
    """Fingerprint the data set (cached), plan, write the plan into `config` (config.plan records it) and
    announce the fingerprint and the plan."""
    from masksmith.data.fingerprint import dataset_fingerprint
    from masksmith.models.registry import get_model

    fp = dataset_fingerprint(dataset)
    divisor = 32 if config.task == "instance" else get_model(config.arch).divisor
    plan = plan_training(fp, machine or Machine.here(), task=config.task, time_budget=config.time_budget,
                         user=user_values(config), divisor=divisor)
    plan.apply(config)
    if announce is not None:
        announce("\n".join([*fp.lines(), *plan.lines()]))
    return fp, plan


def record_unplanned(config: Any) -> None:
    """Without planning, config.plan still says where each value came from: the user or the default."""
    names = ("size", "batch_size") if config.task == "instance" else PLANNED[1:]
    config.plan = {n: {"value": getattr(config, n), "source": "user" if n in config.fixed else "default",
                       "reason": "planning is off"} for n in names}
