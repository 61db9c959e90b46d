"""Instance segmentation training (Mask R-CNN) with PyTorch Lightning: `train_instance(config)` makes a run folder
laid out like the semantic one:

runs/<name>/
  config.yaml        the TrainConfig, reusable with --resume
  metrics.csv        one row per epoch (losses, val_mask_ap, val_box_ap); curves.png draws it
  previews/          epoch_NNN.png: fixed validation images, photo | truth | prediction (class and score
                     tags) | difference
  checkpoints/       last.ckpt (resume point), best.ckpt (best val_mask_ap), interrupted.ckpt (on Ctrl-C)
  model.masksmith    the self-describing model file (task "instance")

TrainConfig fields keep their meaning: `arch` is "maskrcnn_lite0" or "maskrcnn_resnet50_fpn", `size` is the
longer image side the network works at, `encoder_weights` the backbone's starting weights ("imagenet-offline"
for Lite0, or a COCO Mask R-CNN .pth for ResNet-50), `scale` the crop-area range of the semantic recipe, turned
here into an equivalent zoom range (see `scale_range`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from masksmith.core.errors import MasksmithError
from masksmith.core.labels import ClassMap
from masksmith.core.objects import Instance, truth_instances
from masksmith.data.instance_data import (
    InstanceAugment,
    InstanceTensors,
    collate_fn,
    flip_permutation,
)
from masksmith.data.rasterize import encode_masks as masks_to_rles
from masksmith.draw.charts import plot_curves
from masksmith.evaluate.instance import CocoAccumulator
from masksmith.models.artifact import class_map_fields
from masksmith.models.instance import (
    build_instance_model,
    instance_model_config,
    instance_normalisation,
    trainable_parameters,
)
from masksmith.train.budget import Deadline, RunBudget, session_seconds
from masksmith.train.callbacks import History
from masksmith.train.config import TrainConfig
from masksmith.train.finetune import peak_lr
from masksmith.train.run import claimed_run, fit_run, model_saver
from masksmith.train.samples import SampleSplit, planned_split

INSTANCE_LR = 0.01  # SGD for Mask R-CNN (torchvision's reference: 0.02 for 16 images; ours see fewer, warmed up)
LOSS_NAMES = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")
PRECISION = "32-true"  # for Lightning; bf16 autocast, where it pays, covers the backbone only (bf16_backbone)


def instance_lr(config: TrainConfig) -> float:
    """config.lr, except that the semantic default (AdamW's 4e-3) becomes SGD's 0.01."""
    return INSTANCE_LR if config.lr == TrainConfig.lr else config.lr


def bf16_backbone(net: torch.nn.Module, config: TrainConfig) -> bool:
    """Run the backbone and FPN under bf16 autocast when the config's precision resolves to bf16 (on this kind
    of CPU, AMX units make those convolutions far cheaper). Returns whether it did."""
    from masksmith.train.semantic import resolve_precision

    backbone = getattr(net, "backbone", None)
    if not hasattr(backbone, "autocast_dtype") or not resolve_precision(config).startswith("bf16"):
        return False
    backbone.autocast_dtype = torch.bfloat16
    return True


def scale_range(config: TrainConfig) -> tuple[float, float] | None:
    """Zoom range for scale jitter from config.scale, the semantic crop-area range [a, 1]: a crop keeping
    area a is a zoom by 1/sqrt(a), so zoom in and out symmetrically by that much."""
    if not config.scale or min(config.scale) >= 1.0:
        return None
    z = 1.0 / math.sqrt(max(1e-3, min(config.scale)))
    return (1.0 / z, z)


class RCNNInputSize:
    """The `size` knob ProgressiveResize turns, for Mask R-CNN: the network resizes every image itself (its
    GeneralizedRCNNTransform), so the low-resolution phase changes that transform's target size rather than
    the data. Setting (h, w) makes the longer image side max(h, w)."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.transform = net.transform

    @property
    def size(self) -> tuple[int, int]:
        s = int(self.transform.max_size)
        return s, s

    @size.setter
    def size(self, value: tuple[int, int]) -> None:
        s = int(max(value))
        self.transform.min_size, self.transform.max_size = (s,), s


class InstanceModule(L.LightningModule):
    """Mask R-CNN in Lightning: the loss is the sum of torchvision's five losses; validation runs COCOeval."""

    def __init__(self, net: torch.nn.Module, class_names: list[str], lr: float, weight_decay: float,
                 momentum: float = 0.9, val_data: InstanceTensors | None = None) -> None:
        super().__init__()
        self.net = net
        self.class_names = class_names
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.val_data = val_data
        self.coco = CocoAccumulator(class_names)

    def forward(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None):
        return self.net(images, targets)

    def training_step(self, batch: tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]],
                      batch_idx: int) -> torch.Tensor:
        images, targets = batch
        losses = self.net(images, [{k: v for k, v in t.items() if k != "image_id"} for t in targets])
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise MasksmithError(f"training diverged at step {self.global_step} (loss {float(loss)}).",
                                 fix="lower `lr` (for example to `lr=0.005`) or lengthen `warmup_fraction`.")
        n = len(images)
        for name, value in losses.items():
            self.log(name, value, on_step=False, on_epoch=True, batch_size=n)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        return loss

    @torch.no_grad()
    def predict_instances(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        was_training = self.net.training
        self.net.eval()
        out = self.net([im.to(self.device) for im in images])
        self.net.train(was_training)
        return [{k: v.cpu() for k, v in o.items()} for o in out]

    def on_validation_epoch_start(self) -> None:
        self.coco = CocoAccumulator(self.class_names)

    def validation_step(self, batch: tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]],
                        batch_idx: int) -> None:
        images, targets = batch
        outputs = self.net(images)
        for image, target, out in zip(images, targets, outputs, strict=True):
            item = self.val_data.items[int(target["image_id"])] if self.val_data is not None else None
            h, w = image.shape[-2:]
            if item is not None:  # the cached truth, crowd regions included (COCOeval ignores them)
                gt_labels = [*item.labels.tolist(), *item.crowd_labels.tolist()]
                gt_rles = [*item.rles, *item.crowd_rles]
                crowd = [False] * len(item.rles) + [True] * len(item.crowd_rles)
            else:
                gt_labels, crowd = target["labels"].tolist(), None
                gt_rles = masks_to_rles(target["masks"].cpu().numpy().astype(bool))
            masks = (out["masks"][:, 0] > 0.5).cpu().numpy()
            self.coco.add(h, w, gt_labels, gt_rles, out["labels"].tolist(), out["scores"].tolist(),
                          masks_to_rles(masks), out["boxes"].tolist(), gt_crowd=crowd)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self._metrics(), prog_bar=True, sync_dist=False)

    def _metrics(self) -> dict[str, float]:
        """The validation epoch's APs; undefined AP (no ground-truth objects at all) is 0, so checkpointing
        stays well defined."""
        summary = self.coco.summary()
        return {"val_mask_ap": summary["mask"]["ap"] or 0.0, "val_box_ap": summary["box"]["ap"] or 0.0,
                "val_mask_ap50": summary["mask"]["ap50"] or 0.0}

    @torch.no_grad()
    def score(self, loader: DataLoader) -> dict[str, float]:
        """The validation metrics of the current weights on `loader`, as a validation epoch logs them (a
        fine-tune's epoch 0: masksmith.train.finetune)."""
        was_training = self.training
        self.eval()
        self.on_validation_epoch_start()
        for k, batch in enumerate(loader):
            self.validation_step(batch, k)
        self.train(was_training)
        return self._metrics()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(trainable_parameters(self.net), lr=self.lr, momentum=self.momentum,
                               weight_decay=self.weight_decay)

    def base_lrs(self) -> list[float]:
        return [self.lr]


# -------------------------------------------------------------------------------------------- callbacks
class InstanceHistory(History):
    """metrics.csv with the detection losses and AP; curves.png redrawn with them."""

    COLUMNS = ["epoch", "step", "seconds", "lr", "train_loss", *LOSS_NAMES, "val_mask_ap", "val_box_ap",
               "val_mask_ap50"]

    def plot(self) -> None:
        plot_curves(self.csv, self.png, ("train_loss", *LOSS_NAMES), ("val_mask_ap", "val_box_ap", "val_mask_ap50"),
                    "validation (COCO AP)")


class InstancePreviews(L.Callback):
    """After every epoch, previews/epoch_NNN.png: fixed images as photo | truth | the model's objects |
    difference of the class masks, each object tagged with its class (and score), each row with the image's
    name and mask AP, titled with the epoch and its validation mask AP, with the class legend."""

    CELL = 256

    def __init__(self, run_dir: Path, data: InstanceTensors, count: int, classes: ClassMap,
                 score_threshold: float = 0.5) -> None:
        self.dir = run_dir / "previews"
        self.data = data
        self.indices = list(range(min(count, len(data))))
        self.classes = classes
        self.score_threshold = score_threshold

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not self.indices:
            return
        from masksmith.core.objects import union_mask
        from masksmith.draw import comparison_sheet, instance_row
        from masksmith.evaluate.instance import image_mask_ap
        from masksmith.train.callbacks import preview_title, save_preview

        classes = self.classes
        names, index, colors = list(classes.names), classes.index(), classes.colors_by_name()
        items = [self.data.items[i] for i in self.indices]
        outputs = pl_module.predict_instances([it.image.float() / 255.0 for it in items])
        rows, texts, captions = [], [], []
        for item, out in zip(items, outputs, strict=True):
            image = item.image.permute(1, 2, 0).numpy()
            shape = image.shape[:2]
            truth = truth_instances(item.masks(), item.labels.tolist(), classes)
            found = [Instance(classes.name(int(lab)), float(s), (m[0] > 0.5).numpy(), tuple(b.tolist()))
                     for b, lab, s, m in zip(out["boxes"], out["labels"], out["scores"], out["masks"], strict=True)]
            shown = [f for f in found if f.score >= self.score_threshold]
            panels, written = instance_row(image, truth, shown, union_mask(truth, classes, shape),
                                           union_mask(shown, classes, shape), colors, self.CELL)
            rows.append(panels)
            texts.append(written)
            ap = image_mask_ap(*shape, names, item.labels.tolist(), list(item.rles), [False] * len(item.rles),
                               [index[f.label] for f in found], [f.score for f in found],
                               masks_to_rles(np.stack([f.mask for f in found])) if found else [],
                               [f.box for f in found])
            captions.append(f"{item.name} \u00b7 mask AP {'-' if ap is None else f'{ap:.3f}'}")
        picture = comparison_sheet(rows, title=preview_title(trainer, "val_mask_ap", "validation mask AP"),
                                   captions=captions, classes=classes,
                                   cell=self.CELL, panel_texts=texts)
        save_preview(picture, self.dir, trainer.current_epoch + 1)


# ---------------------------------------------------------------------------------------------------- data
def split_instance_data(config: TrainConfig, announce: Callable[[str], None] | None = None,
                        started: float | None = None) -> tuple[SampleSplit, TrainConfig]:
    """The shared train/validation choice and the config with its plan applied (`planned_split`), plus the one
    thing detection needs: classes."""
    split, config = planned_split(config, announce, started)
    if not split.dataset.classes:
        raise MasksmithError("has no classes to detect.", path=config.data, fix="annotate objects with labels.")
    return split, config


def start_instance_network(model: str | Path, class_names: list[str]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The Mask R-CNN of a model file with its weights (`build_network`, as prediction opens it) and its
    architecture dict, to fine-tune on a data set that must have the model's classes in the model's order.
    The run keeps the model's size (`service.training_config` sets it): its anchors were chosen for it."""
    from masksmith.models.artifact import build_network, load_artifact

    artifact = load_artifact(model)
    if artifact.task != "instance" or list(artifact.classes) != list(class_names):
        raise MasksmithError(f"the model to start from is a {artifact.task} model of the classes "
                             f"{', '.join(artifact.classes)}; the data set has {', '.join(class_names)}.", path=model,
                             fix="fine-tune on a data set with the model's classes, or leave out `from_model`.")
    return build_network(artifact).train(), dict(artifact.model)


def model_config_for(config: TrainConfig) -> dict[str, Any]:
    """The architecture dict for a training config (config.size is the longer side)."""
    return instance_model_config(config.arch, max_size=config.size, weights=config.encoder_weights,
                                 **config.model_options)


# ---------------------------------------------------------------------------------------------------- train
def train_instance(config: TrainConfig, run_dir: Path | None = None, resume: bool = False,
                   extra_callbacks: list[L.Callback] | None = None,
                   announce: Callable[[str], None] | None = None, started: float | None = None) -> Path:
    """Train Mask R-CNN and return the run folder. With `resume`, continue `run_dir` from its last checkpoint.
    `started`: time.monotonic() when the wait began (default: now); a time budget counts from it (the end of
    the run is estimated from the measured validations)."""
    started = time.monotonic() if started is None else started
    with claimed_run(config, run_dir, resume, announce) as (run_dir, resume_from):
        fit_instance(config, run_dir, resume_from, extra_callbacks, announce, started)
    return run_dir


def fit_instance(config: TrainConfig, run_dir: Path, resume_from: Path | None,
                 extra_callbacks: list[L.Callback] | None = None,
                 announce: Callable[[str], None] | None = None, started: float | None = None) -> None:
    """Read the data, build Mask R-CNN and fit it into the claimed `run_dir` (from `resume_from`)."""
    started = time.monotonic() if started is None else started
    split, config = split_instance_data(config, announce, started)
    names = split.dataset.class_names
    if config.from_model:  # fine-tune: the model file's network and weights (resume loads its checkpoint)
        net, model_config = start_instance_network(config.from_model, names)
    else:
        model_config = model_config_for(config)
        net = build_instance_model(model_config, len(names), pretrained=resume_from is None)

    bf16_backbone(net, config)
    perm = flip_permutation(split.dataset.class_map, split.flip_pairs) if config.flip else None
    augment = InstanceAugment(perm, scale_range(config), config.color_jitter)
    train_data = InstanceTensors(split.dataset, split.train, config.size, augment)
    val_data = InstanceTensors(split.dataset, split.val, config.size) if split.val else None
    lr = peak_lr(config, instance_lr(config))
    module = InstanceModule(net, names, lr, config.weight_decay, val_data=val_data)

    batch = max(1, min(config.batch_size, len(train_data)))
    train_loader = DataLoader(train_data, batch_size=batch, shuffle=True, num_workers=config.num_workers,
                              collate_fn=collate_fn, drop_last=len(train_data) > batch,
                              persistent_workers=config.num_workers > 0)
    val_loader = DataLoader(val_data, batch_size=batch, collate_fn=collate_fn) if val_data else None

    mean, std = instance_normalisation(model_config)
    artifact_base = dict(task="instance", model=model_config, **class_map_fields(split.dataset.class_map),
                         preprocessing={"mean": list(mean), "std": list(std), "input_mode": "instance",
                                        "input_range": [0.0, 1.0], "size": [config.size, config.size],
                                        "max_size": config.size},
                         flip_pairs=split.flip_pairs)

    save = model_saver(run_dir, config, artifact_base, len(train_data), lr=lr, data_format=split.dataset.format,
                       data_options=dict(config.data_options))
    fit_run(config, run_dir, module, train_loader, val_loader, save=save,
            monitor="val_mask_ap" if val_data else None, history=InstanceHistory(run_dir),
            previews=InstancePreviews(run_dir, val_data or train_data, config.preview_images,
                                      split.dataset.class_map),
            precision=PRECISION, resume_from=resume_from,
            resize=(RCNNInputSize(net), (config.size, config.size), 32), split=split,
            extra_callbacks=extra_callbacks,
            budget=RunBudget(Deadline(session_seconds(float(config.time_budget), run_dir, resume_from is not None),
                                      started))
            if config.time_budget else None,
            baseline=(lambda m: m.score(val_loader)) if config.from_model and val_loader is not None else None,
            # a safety net for SGD at 0.01 on small batches: the first steps on fresh heads can spike
            gradient_clip_val=10.0)
