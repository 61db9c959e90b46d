"""A training plan from the data set's fingerprint, this machine's measured speed and the person's time budget:
a pure function of (fingerprint, machine, rate, budget, the values the user fixed) to a Plan that says what to
train at and why, each choice with its reason. The plan returns a plan; applying it to a TrainConfig is the
caller's (`TrainConfig.with_plan`).

The geometry (semantic models; constants below):
- Scale. The strongest shrink that keeps the thinnest class (its 10th-percentile thickness) at MIN_THIN px and
  the smallest class (its median object size) at MIN_OBJECT px: thin structures keep the photo's own scale,
  chunky objects let it shrink. Never below 1 (no enlarging). In a binary set the background is measured too
  (membranes or cracks drawn as the background are the thin side).
- Input mode. Resize the whole photo when photos are near-square (aspect within SQUARE of 1), alike in size,
  and the whole shrunk photo fits RESIZE_MAX px: one step sees the whole scene, and the size is at least
  BASE px (the tuned default: below it the model loses context faster than the step gets cheaper). Otherwise
  keep the scale: train on crops of the shrunk photos (CROP px, or smaller when the photos are) and predict
  with a sliding window at the same scale (the predictor's `input_mode: scale`).
- Crops per image: about one per crop-sized area of the shrunk photo (up to MAX_CROPS). A third of the crops
  are centred on a labelled pixel of a class present in the image (nnU-Net's foreground oversampling).
- Batch: the default's pixels per step (8 x 256 x 256), within the memory this machine has free.
- Class weights: none (no benchmark has shown that weighting rare classes helps here).
- Mask R-CNN: the longer side (default 512) raised so the smallest class's typical object keeps >= 16 px,
  up to the photo's own size and MAX_RCNN_SIDE.

The budget (semantic models, when a time budget is given; `plan_budget`): the budget is the whole wait. From
it come the seconds already spent (reading the data, measuring the machine), the setup still to come
(decoding the photos), the final full-size evaluation of the validation photos (estimated from the measured
prediction rate) and the report, a SAFETY share, and the validation during training (INTERVALS validations of
a fixed subset at the training scale, VAL_SHARE of the time at most); the rest trains. With the measured
training rate, each candidate below buys a number of passes over the training photos (a pass: every photo's
area seen once at the training scale), and the plan takes the first that reaches MIN_PASSES:
  1. the geometry's scale, progressive resizing at LOW_RES (the tuned default);
  2. the same scale, a cheaper first half at FAST_LOW_RES;
  3. coarser scales (x COARSER of the shrink, or the size divided by them), first half at FAST_LOW_RES, never
     leaving the smallest class's typical object under MIN_OBJECT_FLOOR px.
When none reaches MIN_PASSES the plan says so and takes the one with the most passes: the evidence (issue 23)
is that 25 passes at a coarser scale beat 8 at full scale. An epoch becomes a validation interval: the
predicted crops divided into INTERVALS epochs, so the best checkpoint is chosen among several whatever the
data size.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from masksmith.core.durations import format_duration
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
# -- the budget
MIN_PASSES = 20  # passes over the training photos a run should make to converge (docs/benchmarks.md)
INTERVALS = 10  # validation intervals ("epochs") in a budgeted run ...
MIN_INTERVAL_STEPS = 4  # ... of this many optimizer steps at least (fewer intervals in a very short run)
VAL_SHARE = 0.08  # of the training time, at most, for validating during training
MIN_VAL_ITEMS = 4  # validation windows at least (when there are that many)
VAL_TILES = 512  # validation windows at most
LOW_RES, FAST_LOW_RES, LOW_RES_UNTIL = 0.75, 0.5, 0.5  # progressive resizing: factor, for this share of the time
LOW_RES_MIN_SIDE = 96  # no low-resolution phase below this side
COARSER = (1.25, 1.5, 2.0)
MIN_OBJECT_FLOOR = 4.0  # px: no coarser scale leaves the smallest class's typical object under this
SAFETY = 0.03  # of the budget kept back for the machine's noise
SETUP_SECONDS = 3.0  # building the model and the data loaders
DECODE_SECONDS_PER_MPIX = 0.03  # decoding and resizing a photo and its mask, per million pixels
EVAL_IMAGE_SECONDS = 0.04  # per validation photo in the final evaluation, beyond the network: read, score
EVAL_SECONDS_PER_MPIX = 0.06  # ... and per million pixels of it (upsampling, argmax, confusion)
REPORT_SECONDS = 6.0  # the evaluation's pictures, report.html and the last checkpoint (a quiet 2-core machine)
GALLERY_PHOTOS = 8  # the final evaluation's worst and best galleries (4 each), predicted once more
WINDOW_OVERLAP = 0.25  # the predictor's sliding-window overlap
PLANNED = ("input_mode", "shrink", "size", "crop", "crops_per_image", "foreground_crops", "batch_size",
           "class_weights")
BUDGETED = ("low_res_factor", "crops_per_epoch", "val_items")  # config fields the budget part sets


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
class Budget:
    """What the plan knows of the wait: the whole budget, the seconds already gone when planning, and the
    numbers of training and validation photos."""

    seconds: float
    spent: float = 0.0
    train_images: int = 0
    val_images: int = 0


@dataclass
class Plan:
    task: str
    choices: dict[str, Choice] = field(default_factory=dict)
    # the budget's numbers (train_seconds, passes, reserve_seconds, ...) and its reasoning, when planned
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    finetune: list[str] = field(default_factory=list)  # a fine-tune: what its rule sets (masksmith.train.finetune)

    def value(self, name: str) -> Any:
        return self.choices[name].value

    def settings(self) -> dict[str, Any]:
        """The config fields this plan sets, with their values (input_mode is implied by shrink)."""
        return {name: c.value for name, c in self.choices.items() if name != "input_mode"}

    def to_dict(self) -> dict[str, Any]:
        """The record config.yaml keeps: each choice {value, source, reason}, and the budget's figures."""
        out = {name: asdict(c) for name, c in self.choices.items()}
        if self.figures:
            out["budget"] = {"value": dict(self.figures), "source": "plan", "reason": " ".join(self.notes),
                             "notes": list(self.notes)}
        if self.finetune:
            out["finetune"] = {"value": True, "source": "rule", "reason": " ".join(self.finetune)}
        return out

    def lines(self) -> list[str]:
        out = ["plan (any flag overrides it):"]
        for name, c in self.choices.items():
            out.append(f"  {name}: {c.value!r} [{c.source}] {c.reason}")
        if self.notes:
            out.append("budget:")
            out += [f"  {note}" for note in self.notes]
        if self.finetune:
            out.append("fine-tune:")
            out += [f"  {line}" for line in self.finetune]
        return out


def _round_up(x: float, d: int) -> int:
    return max(d, math.ceil(x / d) * d)


def plan_training(fp: Fingerprint, machine: Machine, *, task: str = "semantic", budget: Budget | None = None,
                  rate: Any = None, user: dict[str, Any] | None = None, divisor: int = 32,
                  start: dict[str, Any] | None = None) -> Plan:
    """The plan for this data set on this machine: the task's planner (`masksmith.tasks`). `user`: the values
    the user fixed (they win, and the rest is planned around them); `rate`: the measured RateCurve
    (masksmith.train.speed) that turns the `budget` into passes; `start`: a fine-tune's starting model's
    input geometry (masksmith.train.finetune.start_geometry), which the plan keeps."""
    from masksmith.tasks import get_task

    planner = get_task(task).load("planner")
    return planner(fp, machine, user=dict(user or {}), divisor=divisor, budget=budget, rate=rate,
                   **({"start": start} if start else {}))


def plan_semantic(fp: Fingerprint, machine: Machine, *, user: dict[str, Any], divisor: int = 32,
                  budget: Budget | None = None, rate: Any = None, start: dict[str, Any] | None = None) -> Plan:
    """With `start` (a fine-tune) and no size or shrink fixed by the user, the starting model's own input
    (scale, window) instead of a new geometry, and no low-resolution phase: the model knows that scale."""
    if start and not (user.get("size") or user.get("shrink")):
        plan = _start_geometry(fp, machine, user, divisor, start)
    else:
        plan = _semantic_geometry(fp, machine, user, divisor)
        start = None  # the person chose the geometry: their values, planned as usual
    if start and "low_res_factor" not in user:
        plan.choices["low_res_factor"] = Choice(None, "plan", "no low-resolution phase: a fine-tune starts from a "
                                                "model that already knows the full scale")
    if budget is not None and rate is not None:
        plan_budget(plan, fp, machine, user, divisor, budget, rate, fixed_scale=start is not None)
    return plan


def _start_geometry(fp: Fingerprint, machine: Machine, user: dict[str, Any], d: int, start: dict[str, Any]) -> Plan:
    plan = Plan("semantic")
    why = "the model to fine-tune was trained at this input; a new scale would unteach it"
    plan.choices["input_mode"] = Choice(start["input_mode"], "model", why)
    plan.choices["shrink"] = Choice(start["shrink"], "model", why)
    if start["input_mode"] == "resize":
        plan.choices["size"] = Choice(int(start["size"]), "model", why)
        _resize_layout(plan, int(start["size"]))
    else:
        crop = start["crop"]
        side = crop if isinstance(crop, int) else max(crop)
        _scale_layout(plan, fp, float(start["shrink"]), side, "model", why, d)
        plan.choices["crop"] = Choice(crop, "model", why)  # the model's own window, whatever the photos
    _batch(plan, machine, user)
    plan.choices["class_weights"] = Choice(user.get("class_weights"), "user" if user.get("class_weights") else
                                           "plan", "set by you" if user.get("class_weights") else
                                           "none: no benchmark has shown loss weights help here")
    return plan


def _scale_limit(fp: Fingerprint, binary: bool) -> tuple[float, str, float, float]:
    """(strongest shrink, what limits it, its full-size px, the px it must keep)."""
    limits = []
    thin = fp.thinnest(with_background=binary)
    small = fp.smallest()
    if thin is not None:
        side = " (the background of a binary set: its thin side)" if thin.name == fp.background_name() else ""
        limits.append((thin.thickness_low / MIN_THIN, f"{thin.name}{side} (the thinnest class, "  # type: ignore[operator]
                       "10th-percentile thickness)", thin.thickness_low, MIN_THIN))
    if small is not None:
        typical = min((c for c in fp.classes if c.size_median is not None), key=lambda c: c.size_median)
        limits.append((typical.size_median / MIN_OBJECT, f"{typical.name} (the smallest class, median "  # type: ignore[operator]
                       "object size)", typical.size_median, MIN_OBJECT))
    if not limits:
        return max(fp.median_size) / BASE, "", 0.0, 0.0
    return min(limits, key=lambda x: x[0])


def _semantic_geometry(fp: Fingerprint, machine: Machine, user: dict[str, Any], d: int) -> Plan:
    plan = Plan("semantic")
    h, w = fp.median_size
    longer = max(h, w)
    most, what, px, keep = _scale_limit(fp, fp.binary)
    why = f"{what} is {px:.1f} px and should keep {keep:.0f} px" if what else \
        "nothing is labelled in the measured images"
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
        _resize_layout(plan, plan.value("size"))
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
        if "size" in user and user["size"]:
            crop, crop_src, crop_why = int(user["size"]), "user", "set by you (the crop side)"
        else:
            crop, crop_src, crop_why = CROP, "plan", f"{CROP} px crops, the default's pixels per step"
        _scale_layout(plan, fp, shrink, crop, crop_src, crop_why, d)
    _batch(plan, machine, user)
    if "class_weights" in user and user["class_weights"]:
        plan.choices["class_weights"] = Choice(user["class_weights"], "user", "class_weights were given")
    else:
        rare = [c.name for c in fp.classes if c.pieces and c.pixel_share < 0.01]
        plan.choices["class_weights"] = Choice(
            None, "plan", "none: no benchmark has shown loss weights help here" +
            (f"; rare classes ({', '.join(rare[:4])}{' ...' if len(rare) > 4 else ''}) get foreground crops "
             "instead" if rare and mode == "scale" else ""))
    return plan


def _resize_layout(plan: Plan, size: int) -> None:
    plan.choices["crop"] = Choice(None, "plan", "whole photos, no crops")
    plan.choices["crops_per_image"] = Choice(1, "plan", "one whole photo per step item")
    plan.choices["foreground_crops"] = Choice(0.0, "plan", "whole photos contain every class they have")


def _scale_layout(plan: Plan, fp: Fingerprint, shrink: float, crop: int, crop_src: str, crop_why: str,
                  d: int) -> None:
    """crop, crops_per_image and foreground_crops for photos shrunk by `shrink`, crops of side `crop`."""
    h, w = fp.median_size
    sh, sw = h / shrink, w / shrink
    if crop_src == "plan" and min(sh, sw) < crop:
        crop = _round_up(min(sh, sw), d)
        crop_why = f"the shrunk photos are only {min(sh, sw):.0f} px on their short side"
    crop_h, crop_w = min(crop, _round_up(sh, d)), min(crop, _round_up(sw, d))
    crop_hw: int | list[int] = crop_h if crop_h == crop_w else [crop_h, crop_w]
    plan.choices["size"] = Choice(crop, crop_src, "the network's input: the crop side")
    plan.choices["crop"] = Choice(crop_hw, crop_src, crop_why)
    per = max(1, min(MAX_CROPS, round(sh * sw / (crop_h * crop_w))))
    plan.choices["crops_per_image"] = Choice(
        per, "plan", f"a shrunk photo ({sw:.0f}x{sh:.0f}) covers about {sh * sw / (crop_h * crop_w):.1f} "
                     f"crops (at most {MAX_CROPS} per epoch)")
    plan.choices["foreground_crops"] = Choice(
        round(FOREGROUND, 3), "plan", "a third of the crops centred on a labelled pixel of a class the photo "
                                      "has (nnU-Net), so rare and thin classes are seen often")


def _step_area(plan: Plan) -> int:
    crop = plan.value("crop")
    if crop is None:
        return plan.value("size") ** 2
    ch, cw = (crop, crop) if isinstance(crop, int) else crop
    return ch * cw


def _batch(plan: Plan, machine: Machine, user: dict[str, Any]) -> None:
    if "batch_size" in user and user["batch_size"]:
        plan.choices["batch_size"] = Choice(int(user["batch_size"]), "user", "set by you")
        return
    area = _step_area(plan)
    batch = max(2, min(16, round(STEP_PIXELS / area)))
    fits = max(1, int(MEMORY_SHARE * machine.memory_free / (BYTES_PER_PIXEL * area)))
    reason = f"the default's {STEP_PIXELS // 65536} x 256^2 pixels per step"
    if fits < batch:
        batch, reason = fits, f"what fits in {MEMORY_SHARE:.0%} of the {machine.memory_free / 2**30:.1f} GiB free"
    plan.choices["batch_size"] = Choice(batch, "plan", reason)


# ------------------------------------------------------------------------------------------------ the budget
@dataclass
class Candidate:
    """One way to spend the budget: a scale (shrink, or whole-photo size) and a low-resolution first half."""

    scale: float  # the photo's longer side at full size / at the network's input
    shrink: float | None
    size: int
    low_res: float | None
    item_pixels: int = 0  # pixels per training item at full resolution
    items_per_pass: float = 1.0  # items per photo for a pass over its area
    passes: float = 0.0
    items: float = 0.0  # training items in the budget
    label: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


def _items_per_second(rate: Any, pixels: float, low: float | None) -> tuple[float, float]:
    """(items/s at full resolution, items/s during the low-resolution phase)."""
    full = 1 / rate.train_seconds(pixels)
    return full, (1 / rate.train_seconds(pixels * low * low) if low else full)


def _count(c: Candidate, rate: Any, seconds: float, photos: int) -> Candidate:
    full, low = _items_per_second(rate, c.item_pixels, c.low_res)
    until = LOW_RES_UNTIL if c.low_res else 0.0
    c.items = seconds * (until * low + (1 - until) * full)
    c.passes = c.items / max(1.0, photos * c.items_per_pass)
    return c


def _low_res_ok(side: int, factor: float) -> float | None:
    return factor if side * factor >= LOW_RES_MIN_SIDE else None


def _candidates(plan: Plan, fp: Fingerprint, user: dict[str, Any], d: int, fixed_scale: bool = False
                ) -> list[Candidate]:
    """The ladder, finest first (see the module's docstring); a low_res_factor the user fixed is kept. With
    `fixed_scale` (a fine-tune) one rung: the plan's scale, no low-resolution phase."""
    fixed_low = "low_res_factor" in user

    def fast(side: int) -> float | None:
        return user["low_res_factor"] if fixed_low else _low_res_ok(side, FAST_LOW_RES)

    h, w = fp.median_size
    longer = max(h, w)
    area = _step_area(plan)
    side = int(math.sqrt(area))
    out: list[Candidate] = []
    mode = plan.value("input_mode")
    lows = [user["low_res_factor"]] if fixed_low else [_low_res_ok(side, LOW_RES), _low_res_ok(side, FAST_LOW_RES)]
    if fixed_scale:
        lows = [user["low_res_factor"]] if fixed_low else [None]
    if mode == "resize":
        size = plan.value("size")
        for low in dict.fromkeys(lows):
            out.append(Candidate(longer / size, None, size, low, size * size, 1.0))
        if not user.get("size") and not fixed_scale:
            typical = min((c.size_median for c in fp.classes if c.size_median), default=None)
            for k in COARSER:
                s = _round_up(size / k, d)
                if s >= size or (typical and typical * s / longer < MIN_OBJECT_FLOOR):
                    continue
                if all(c.size != s for c in out):
                    out.append(Candidate(longer / s, None, s, fast(s), s * s, 1.0))
    else:
        shrink = plan.value("shrink")
        per_pass = max(1.0, h * w / shrink**2 / area)
        for low in dict.fromkeys(lows):
            out.append(Candidate(shrink, shrink, side, low, area, per_pass))
        if not user.get("shrink") and not fixed_scale:
            typical = min((c.size_median for c in fp.classes if c.size_median), default=None)
            for k in COARSER:
                s = round(shrink * k, 2)
                if typical and typical / s < MIN_OBJECT_FLOOR:
                    continue
                crop_side = min(side, _round_up(min(h, w) / s, d))
                a = min(area, crop_side * _round_up(max(h, w) / s, d))
                out.append(Candidate(s, s, crop_side, fast(crop_side), a, max(1.0, h * w / s**2 / a)))
    for c in out:
        at = f"1/{c.shrink:g} scale" if c.shrink else f"{c.size} px"
        c.label = at + (f", first half at {c.low_res:g}x resolution" if c.low_res else "")
    return out


def reserve_seconds(rate: Any, photo: tuple[float, float], val_images: int, shrink: float | None, size: int,
                    window_pixels: int) -> float:
    """Seconds the end of a run takes: the final full-size evaluation of `val_images` photos (the network on
    each photo's windows at the training scale, or once at `size`, plus reading and scoring each photo) and
    the report."""
    return end_network_seconds(rate, photo, val_images, shrink, size, window_pixels) + \
        _end_fixed(rate, photo, val_images)


def _gallery_share(val_images: int) -> float:
    """The final evaluation's predictions against the validation photos: each once, and the galleries' again."""
    return 1 + min(GALLERY_PHOTOS, val_images) / max(1, val_images)


def _end_fixed(rate: Any, photo: tuple[float, float], val_images: int) -> float:
    h, w = photo
    return (val_images * _gallery_share(val_images) * (EVAL_IMAGE_SECONDS + EVAL_SECONDS_PER_MPIX * h * w / 1e6) +
            REPORT_SECONDS) * rate.load


def end_network_seconds(rate: Any, photo: tuple[float, float], val_images: int, shrink: float | None, size: int,
                        window_pixels: int) -> float:
    """The network's share of the final evaluation: every validation photo's windows at the training scale,
    or the photo once at `size`."""
    if not val_images:
        return 0.0
    h, w = photo  # the typical validation photo, (height, width)
    if shrink:
        step = 1 - WINDOW_OVERLAP
        side = math.sqrt(window_pixels)
        windows = _windows(h / shrink, side, step) * _windows(w / shrink, side, step)
        network = windows * rate.infer_seconds(window_pixels)
    else:
        network = rate.infer_seconds(size * size)
    return val_images * _gallery_share(val_images) * network


def _windows(length: float, side: float, step: float) -> int:
    return 1 if length <= side else math.ceil((length - side) / (side * step)) + 1


def plan_budget(plan: Plan, fp: Fingerprint, machine: Machine, user: dict[str, Any], d: int, budget: Budget,
                rate: Any, fixed_scale: bool = False) -> Plan:
    """Choose the scale and the low-resolution phase the budget buys, the epoch length (validation
    intervals) and the validation subset; record the arithmetic in plan.figures and plan.notes. With
    `fixed_scale` (a fine-tune: the model's scale) only the epochs and the validation are planned."""
    h, w = fp.median_size
    photos = max(1, budget.train_images)
    fixed_low = "low_res_factor" in user
    ladder = _candidates(plan, fp, user, d, fixed_scale)
    decode = DECODE_SECONDS_PER_MPIX * (budget.train_images + budget.val_images) * h * w / 1e6 * rate.load
    setup = SETUP_SECONDS * rate.load + decode
    chosen: Candidate | None = None
    for c in ladder:
        reserve = reserve_seconds(rate, fp.median_size, budget.val_images, c.shrink, c.size, c.item_pixels)
        left = budget.seconds * (1 - SAFETY) - budget.spent - setup - reserve
        val_items, val_seconds = _validation(rate, c, left, budget.val_images)
        train = max(left - val_seconds, 0.2 * max(0.0, budget.seconds - budget.spent))
        _count(c, rate, train, photos)
        c.figures = dict(train_seconds=round(train, 1), reserve_seconds=round(reserve, 1),
                         validation_seconds=round(val_seconds, 1), setup_seconds=round(setup, 1), val_items=val_items)
        if chosen is None and c.passes >= MIN_PASSES:
            chosen = c
    enough = chosen is not None
    if chosen is None:
        chosen = max(ladder, key=lambda c: c.passes)
    figures = chosen.figures
    full = ladder[0]
    # -- apply the chosen candidate
    if chosen.shrink is None and chosen.size != plan.value("size"):
        plan.choices["size"] = Choice(chosen.size, "plan", f"{chosen.size} px: the budget buys {chosen.passes:.0f} "
                                      f"passes here, {full.passes:.1f} at {full.size} px (want >= {MIN_PASSES})")
    elif chosen.shrink is not None and chosen.shrink != plan.value("shrink"):
        plan.choices["shrink"] = Choice(chosen.shrink, "plan", f"shrink {chosen.shrink:g}x: the budget buys "
                                        f"{chosen.passes:.0f} passes here, {full.passes:.1f} at 1/{full.shrink:g} "
                                        f"scale (want >= {MIN_PASSES})")
        _scale_layout(plan, fp, chosen.shrink, plan.value("size"), plan.choices["size"].source,
                      plan.choices["crop"].reason, d)
        _batch(plan, machine, user)
    if chosen.shrink is None and chosen.size != full.size:
        _batch(plan, machine, user)
    if not fixed_low and not fixed_scale:
        plan.choices["low_res_factor"] = Choice(
            chosen.low_res, "plan", f"the first {LOW_RES_UNTIL:.0%} of the time at {chosen.low_res:g}x resolution "
                                    "(cheaper steps, more passes)" if chosen.low_res else
            "no low-resolution phase (the input is already small)")
    batch = plan.value("batch_size")
    intervals = max(1, min(INTERVALS, int(chosen.items / (MIN_INTERVAL_STEPS * batch))))
    if intervals < INTERVALS:  # fewer validations than planned: their time trains instead
        per_val = figures["validation_seconds"] / INTERVALS
        figures["train_seconds"] = round(figures["train_seconds"] + (INTERVALS - intervals) * per_val, 1)
        figures["validation_seconds"] = round(intervals * per_val, 1)
        _count(chosen, rate, figures["train_seconds"], photos)
    total = chosen.items
    per_epoch = max(batch, round(total / intervals))
    plan.choices["crops_per_epoch"] = Choice(
        per_epoch, "plan", f"about {total:.0f} items in {format_duration(figures['train_seconds'])} of training, "
                           f"in {intervals} validation intervals" +
                           ("" if intervals == INTERVALS else f" (of {MIN_INTERVAL_STEPS} steps at least)"))
    plan.choices["val_items"] = Choice(
        figures["val_items"], "plan", f"validation windows (or photos) at the training scale each interval: at most "
                                      f"{VAL_SHARE:.0%} of the training time")
    figures.update(passes=round(chosen.passes, 1), items=round(total), budget_seconds=budget.seconds,
                   spent_seconds=round(budget.spent, 1), min_passes=MIN_PASSES, intervals=intervals,
                   full_scale_passes=round(full.passes, 1), enough=enough, rate=rate.text())
    plan.figures = figures
    plan.notes = [
        f"machine: {rate.text()}",
        f"{format_duration(budget.seconds)} in all: {format_duration(budget.spent)} spent reading the data and "
        f"measuring, ~{format_duration(figures['setup_seconds'])} preparing, "
        f"~{format_duration(figures['reserve_seconds'])} for the final evaluation of {budget.val_images} validation "
        "photos and the report, "
        f"~{format_duration(figures['validation_seconds'])} validating, {SAFETY:.0%} kept back: "
        f"{format_duration(figures['train_seconds'])} of training",
        f"rule: at least {MIN_PASSES} passes over the {photos} training photos; {chosen.label}: "
        f"{chosen.passes:.1f} passes" + ("" if chosen is full else f" (at full scale: {full.passes:.1f})"),
    ]
    if not enough and fixed_scale:
        plan.notes.append(f"fewer than {MIN_PASSES} passes: a fine-tune keeps the model's scale, and starts from "
                          "what it knows")
    elif not enough:
        need = budget.seconds * MIN_PASSES / max(0.1, full.passes)
        plan.notes.append(f"the budget cannot buy {MIN_PASSES} passes even at the coarsest scale tried; "
                          f"took the most passes ({chosen.label}); about {format_duration(need)} would give "
                          f"{MIN_PASSES} passes at full scale")
    elif chosen is not full:
        plan.notes.append(f"the budget cannot buy {MIN_PASSES} passes at full scale with the tuned default "
                          f"({full.label}: {full.passes:.1f}), so it trains at {chosen.label}")
    return plan


def _validation(rate: Any, c: Candidate, seconds: float, val_images: int) -> tuple[int, float]:
    """(validation windows per interval, seconds all validations take)."""
    if not val_images:
        return 0, 0.0
    available = val_images if c.shrink is None else min(VAL_TILES, math.ceil(val_images * c.items_per_pass))
    per = rate.infer_seconds(c.item_pixels)
    share = VAL_SHARE * max(0.0, seconds)
    n = int(share / INTERVALS / per)
    if INTERVALS * min(MIN_VAL_ITEMS, available) * per <= 2 * share:  # a few windows, unless far too dear
        n = max(min(MIN_VAL_ITEMS, available), n)
    n = max(1, min(available, n))
    return n, INTERVALS * n * per


# ---------------------------------------------------------------------------------------------- instance
def plan_instance(fp: Fingerprint, machine: Machine, *, user: dict[str, Any], divisor: int = 32,
                  budget: Budget | None = None, rate: Any = None, start: dict[str, Any] | None = None) -> Plan:
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


def plan_config(config: Any, dataset: Any, *, images: tuple[int, int] | None = None, started: float | None = None,
                machine: Machine | None = None, rate: Any = None, announce: Any = None) -> tuple[Fingerprint, Plan]:
    """Fingerprint the data set (cached); with a time budget, measure the machine (when the task plans by
    speed and no `rate` is given) and spend the budget, `images` = (training, validation) photos and the
    wait begun at `started` (time.monotonic()); plan, and announce the fingerprint and the plan. The config
    is not changed: applying the plan is the caller's (`TrainConfig.with_plan`)."""
    import time

    from masksmith.data.fingerprint import dataset_fingerprint
    from masksmith.models.registry import get_model
    from masksmith.tasks import get_task

    fp = dataset_fingerprint(dataset)
    task = get_task(config.task)
    budget = None
    if config.time_budget and task.speed:
        if rate is None:
            rate = task.load("speed")(config, dataset.class_map)
        train, val = images if images is not None else (len(dataset.samples), 0)
        spent = time.monotonic() - started if started is not None else 0.0
        budget = Budget(float(config.time_budget), spent=spent, train_images=train, val_images=val)
    start = None
    if getattr(config, "from_model", None) and task.name == "semantic":  # instance fine-tunes keep their size
        from masksmith.train.finetune import recipe_lines, start_geometry

        start = start_geometry(config.from_model)
    plan = plan_training(fp, machine or Machine.here(), task=task.name, budget=budget, rate=rate,
                         user=user_values(config), divisor=get_model(config.arch).divisor, start=start)
    if start is not None:
        plan.finetune = recipe_lines(config)
    if announce is not None:
        announce("\n".join([*fp.lines(), *plan.lines()]))
    return fp, plan


def unplanned_record(config: Any) -> dict[str, Any]:
    """Without planning, the record still says where each value came from: the user or the default."""
    from masksmith.tasks import get_task

    return {n: {"value": getattr(config, n), "source": "user" if n in config.fixed else "default",
                "reason": "planning is off"} for n in get_task(config.task).planned}
