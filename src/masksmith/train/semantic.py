"""Semantic segmentation training with PyTorch Lightning: `train_semantic(config)` makes a run folder.

runs/<name>/
  config.yaml        the TrainConfig, reusable with --resume
  metrics.csv        one row per epoch; curves.png draws it
  previews/          epoch_NNN.png: fixed images: photo | truth | prediction | difference
  evaluation/        validation/: the model file scored on the validation split when training ends
  report.html        everything in one page (masksmith.html_report)
  checkpoints/       last.ckpt (resume point) and best.ckpt (when there is a validation set)
  model.masksmith    the self-describing model file (best validation weights, or the last ones)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from masksmith.core.errors import MasksmithError
from masksmith.data.schema import Dataset
from masksmith.data.torchdata import (
    AugmentConfig,
    CachedSamples,
    CropTensors,
    ScaledSamples,
    SegmentationTensors,
    flip_lut,
    train_transform,
)
from masksmith.evaluate.metrics import ConfusionMatrix
from masksmith.models.artifact import class_map_fields
from masksmith.models.encoders import early_encoder_modules, freeze_modules
from masksmith.models.registry import get_model
from masksmith.models.semantic import ModelConfig, SegmentationNet, build_model, default_normalisation
from masksmith.models.sides import side_pairs_for
from masksmith.train.budget import Deadline, RunBudget, session_seconds
from masksmith.train.callbacks import History, Previews
from masksmith.train.config import TrainConfig
from masksmith.train.finetune import peak_lr
from masksmith.train.losses import SegmentationLoss
from masksmith.train.run import claimed_run, fit_run, model_saver
from masksmith.train.samples import SampleSplit, planned_split


def bf16_supported() -> bool:
    """True where the CPU has native bf16 dot products (AVX512-BF16 or AMX), which make autocast pay."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, c, lambda: False)() for c in checks)


def resolve_precision(config: TrainConfig) -> str:
    if config.precision != "auto":
        return config.precision
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if bf16_supported() else "32-true"


def is_binary(config: TrainConfig, num_classes: int) -> bool:
    return num_classes == 1 and config.loss in ("auto", "bce", "bce+dice")


def loss_name(config: TrainConfig, binary: bool) -> str:
    if config.loss != "auto":
        return config.loss
    return "bce+dice" if binary else "ce+dice"


def validation_scores(confusion: ConfusionMatrix) -> dict[str, float]:
    """What a validation epoch logs from its confusion matrix (val_miou is the monitor that picks the model)."""
    scores = confusion.scores()
    return {"val_miou": float(scores.miou(True)), "val_mean_dice": float(scores.mean_dice(True)),
            "val_pixel_accuracy": float(scores.pixel_accuracy)}


class SemanticModule(L.LightningModule):
    def __init__(self, net: SegmentationNet, loss: SegmentationLoss, num_classes: int, lr: float,
                 weight_decay: float, channels_last: bool, encoder_lr_factor: float = 1.0,
                 frozen: list[torch.nn.Module] | None = None) -> None:
        super().__init__()
        self.net = net
        self.frozen = frozen or []  # kept in eval mode (see train()): their BatchNorm statistics stay as pretrained
        freeze_modules(self.frozen)  # also eval now: Lightning starts training without calling train()
        self.loss_fn = loss
        self.num_classes = num_classes  # including background
        self.binary = loss.binary
        self.lr = lr
        self.weight_decay = weight_decay
        self.encoder_lr_factor = encoder_lr_factor
        self.channels_last = channels_last
        self.confusion = ConfusionMatrix(num_classes)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> SemanticModule:
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def to_mask(self, logits: torch.Tensor) -> torch.Tensor:
        if self.binary:
            return (logits[:, 0] > 0).to(torch.uint8)
        return logits.argmax(1).to(torch.uint8)

    @torch.no_grad()
    def predict_masks(self, images: torch.Tensor) -> torch.Tensor:
        was_training = self.training
        self.eval()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.trainer.precision == "bf16-mixed"
                            if self._trainer is not None else False):
            masks = self.to_mask(self(images.to(self.device)).float()).cpu()
        self.train(was_training)
        return masks

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, masks = batch
        loss = self.loss_fn(self(images), masks)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(images))
        return loss

    def on_validation_epoch_start(self) -> None:
        self.confusion = ConfusionMatrix(self.num_classes)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, masks = batch
        logits = self(images)
        self.log("val_loss", self.loss_fn(logits, masks), on_epoch=True, prog_bar=True, batch_size=len(images),
                 sync_dist=True)
        self.confusion.update(self.to_mask(logits.float()), masks)

    def on_validation_epoch_end(self) -> None:
        matrix = self.confusion.matrix.to(self.device)
        if self.trainer.world_size > 1:
            matrix = self.all_gather(matrix).sum(0)
        self.confusion.matrix = matrix.cpu()
        self.log_dict(validation_scores(self.confusion), prog_bar=True, sync_dist=False)

    @torch.no_grad()
    def score(self, loader: DataLoader) -> dict[str, float]:
        """The validation metrics of the current weights on `loader`, as a validation epoch logs them (a
        fine-tune's epoch 0)."""
        was_training = self.training
        self.eval()
        confusion, loss, count = ConfusionMatrix(self.num_classes), 0.0, 0
        bf16 = self._trainer is not None and self.trainer.precision == "bf16-mixed"
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for images, masks in loader:
                logits = self(images.to(self.device)).float()
                loss += float(self.loss_fn(logits, masks.to(self.device))) * len(images)
                count += len(images)
                confusion.update(self.to_mask(logits).cpu(), masks)
        self.train(was_training)
        return {"val_loss": loss / max(1, count), **validation_scores(confusion)}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.param_groups(), lr=self.lr, weight_decay=self.weight_decay)

    def param_groups(self) -> list[dict[str, Any]]:
        """The decoder starts from scratch and learns at the full rate; a pretrained encoder may go slower."""
        encoder = [p for p in getattr(self.net.model, "encoder", torch.nn.Module()).parameters() if p.requires_grad]
        ids = {id(p) for p in encoder}
        groups = [{"params": [p for p in self.net.parameters() if id(p) not in ids and p.requires_grad],
                   "lr": self.lr}]
        if encoder:
            groups.append({"params": encoder, "lr": self.lr * self.encoder_lr_factor})
        return groups

    def base_lrs(self) -> list[float]:
        return [g["lr"] for g in self.param_groups()]


@dataclass
class PreparedData:
    dataset: Dataset
    train: CachedSamples | ScaledSamples
    val: CachedSamples | None
    flip_pairs: list[list[str]]
    size: tuple[int, int]  # (height, width) the network trains on
    scale: float | None = None  # set with --shrink: images were scaled by this, keeping their aspect
    split: SampleSplit | None = None  # the samples behind train and val (data.json, the final evaluation)


VAL_TILES = 512  # at most this many validation windows in a crop-trained run (about 100 MB)


def input_geometry(config: TrainConfig, dataset: Dataset) -> tuple[tuple[int, int], float | None]:
    """(height, width) for training, and the scale factor when a shrink factor is given.

    With `shrink`, images keep their aspect: the training window is `crop` when given (random crops of the
    shrunk photos), else the typical (median) image shrunk by that factor, rounded up to what the architecture
    needs; larger photos are later predicted with a sliding window at the same scale.
    """
    if not config.shrink:
        return (config.size, config.size), None
    from masksmith.models.registry import get_model

    d = get_model(config.arch).divisor
    if config.crop:
        h, w = (config.crop, config.crop) if isinstance(config.crop, int) else config.crop
        return (max(d, math.ceil(h / d) * d), max(d, math.ceil(w / d) * d)), 1.0 / config.shrink
    h = float(np.median([s.height for s in dataset.samples])) / config.shrink
    w = float(np.median([s.width for s in dataset.samples])) / config.shrink
    return (max(d, math.ceil(h / d) * d), max(d, math.ceil(w / d) * d)), 1.0 / config.shrink


def prepare_data(config: TrainConfig, split: SampleSplit) -> PreparedData:
    """The training photos decoded at the training scale, and the fixed validation subset scored each epoch
    (config.val_items windows or photos, spread evenly; all of them, up to VAL_TILES windows, when None)."""
    dataset, train_samples, val_samples, pairs = split.dataset, split.train, split.val, split.flip_pairs
    size, scale = input_geometry(config, dataset)
    limit = config.val_items
    if config.crop and scale:
        train: CachedSamples | ScaledSamples = ScaledSamples.build(dataset, scale, train_samples, config.seed)
        val = ScaledSamples.build(dataset, scale, val_samples).tiles(size, min(limit or VAL_TILES, VAL_TILES)) \
            if val_samples else None
        return PreparedData(dataset, train, val, pairs, size, scale, split)
    train = CachedSamples.build(dataset, size, train_samples, scale)
    if limit is not None and len(val_samples) > limit:
        val_samples = [val_samples[i] for i in np.linspace(0, len(val_samples) - 1, limit).round().astype(int)]
    val = CachedSamples.build(dataset, size, val_samples, scale) if val_samples else None
    return PreparedData(dataset, train, val, pairs, size, scale, split)


def frozen_encoder_part(net: SegmentationNet, config: TrainConfig) -> list[torch.nn.Module]:
    """The early encoder modules to keep fixed (config.freeze_encoder_levels); none when the encoder starts
    from random weights or the architecture has no encoder."""
    encoder = getattr(net.model, "encoder", None)
    if not config.encoder_weights or encoder is None or config.freeze_encoder_levels <= 0:
        return []
    modules = early_encoder_modules(encoder, config.freeze_encoder_levels)
    if modules is None:
        logging.getLogger(__name__).warning(
            "encoder %s: its layout is not known, so all of it trains (freeze_encoder_levels ignored).",
            config.encoder)
        return []
    return modules


def start_network(model: str | Path, class_names: tuple[str, ...], binary: bool
                  ) -> tuple[SegmentationNet, ModelConfig, tuple[tuple[float, ...], tuple[float, ...]]]:
    """The network of a model file with its weights (`build_network`, as prediction opens it), to fine-tune on
    a data set that must have the model's classes in the model's order."""
    from masksmith.models.artifact import build_network, load_artifact

    artifact = load_artifact(model)
    if artifact.task != "semantic" or list(artifact.classes) != list(class_names):
        raise MasksmithError(f"the model to start from has the classes {', '.join(artifact.classes)}; the data set "
                             f"has {', '.join(class_names)}.", path=model,
                             fix="fine-tune on a data set with the model's classes, or leave out `from_model`.")
    model_config = ModelConfig.from_dict(artifact.model)
    if (model_config.num_outputs == 1) != binary:
        raise MasksmithError("the model to start from and this run differ in their output (one sigmoid or one "
                             "channel per class).", path=model, fix="leave out `from_model` or `loss`.")
    net = build_network(artifact).train()
    pre = artifact.preprocessing
    return net, model_config, (tuple(pre["mean"]), tuple(pre["std"]))


def train_semantic(config: TrainConfig, run_dir: Path | None = None, resume: bool = False,
                   extra_callbacks: list[L.Callback] | None = None,
                   announce: Callable[[str], None] | None = None, started: float | None = None) -> Path:
    """Train and return the run folder. With `resume`, continue `run_dir` from checkpoints/last.ckpt.
    `started`: time.monotonic() when the wait began (default: now); a time budget counts from it."""
    started = time.monotonic() if started is None else started
    with claimed_run(config, run_dir, resume, announce) as (run_dir, resume_from):
        fit_semantic(config, run_dir, resume_from, extra_callbacks, announce, started)
    return run_dir


def fit_semantic(config: TrainConfig, run_dir: Path, resume_from: Path | None,
                 extra_callbacks: list[L.Callback] | None = None,
                 announce: Callable[[str], None] | None = None, started: float | None = None) -> None:
    """Read the data, build the network and fit it into the claimed `run_dir` (from `resume_from`)."""
    started = time.monotonic() if started is None else started
    if config.model_options:
        raise MasksmithError(f"model_options {sorted(config.model_options)} apply to instance models only.",
                             fix="remove model_options from the config.")
    split, config = planned_split(config, announce, started)
    data = prepare_data(config, split)
    classes = data.dataset.class_map
    binary = is_binary(config, len(classes))
    model_config = ModelConfig(arch=config.arch, num_outputs=1 if binary else classes.num_values,
                               encoder=config.encoder, encoder_weights=config.encoder_weights,
                               decoder_channels=config.decoder_channels,
                               side_pairs=side_pairs_for(classes, data.flip_pairs)
                               if config.side_head and not binary else None)
    mean, std = default_normalisation(model_config)
    if config.from_model:  # fine-tune: the model file's network and weights (resume loads its checkpoint)
        net, model_config, (mean, std) = start_network(config.from_model, classes.names, binary)
    else:
        net = SegmentationNet(build_model(model_config, pretrained=resume_from is None), mean, std)
    loss = SegmentationLoss(loss_name(config, binary), model_config.num_outputs, config.class_weights)
    module = SemanticModule(net, loss, classes.num_values, peak_lr(config), config.weight_decay, config.channels_last,
                            config.encoder_lr_factor if config.encoder_weights else 1.0,
                            frozen=frozen_encoder_part(net, config))

    size = data.size
    aug = AugmentConfig(flip=config.flip, scale=tuple(config.scale), color_jitter=config.color_jitter)
    lut = flip_lut(classes, data.flip_pairs)
    augment = train_transform(size, aug, lut)
    if isinstance(data.train, ScaledSamples):
        train_set: Any = CropTensors(data.train, size, config.crops_per_image, config.foreground_crops, augment)
    else:
        train_set = SegmentationTensors(data.train, augment)
    per_epoch = config.crops_per_epoch or len(train_set)
    sampler = RandomSampler(train_set, num_samples=per_epoch) if config.crops_per_epoch else None
    train_loader = DataLoader(train_set,
                              batch_size=config.batch_size, shuffle=sampler is None, sampler=sampler,
                              num_workers=config.num_workers, drop_last=per_epoch > config.batch_size,
                              persistent_workers=config.num_workers > 0)
    val_loader = DataLoader(SegmentationTensors(data.val), batch_size=config.batch_size) if data.val else None

    artifact_base = dict(task="semantic", model=model_config.to_dict(), **class_map_fields(classes),
                         preprocessing={"mean": list(mean), "std": list(std), "size": list(size),
                                        **({"input_mode": "scale", "scale": data.scale} if data.scale
                                           else {"input_mode": "resize"})},
                         flip_pairs=data.flip_pairs)

    save = model_saver(run_dir, config, artifact_base, len(data.train), data_format=data.dataset.format,
                       data_options=dict(config.data_options))
    preview_source = data.val or data.train
    if isinstance(preview_source, ScaledSamples):
        preview_source = preview_source.tiles(size, config.preview_images)
    k = min(config.preview_images, len(preview_source))
    pick = list(range(k))
    if data.scale and config.crop:  # windows of a few photos: spread them over the photos
        pick = np.linspace(0, len(preview_source) - 1, k).round().astype(int).tolist() if k else []
    fit_run(config, run_dir, module, train_loader, val_loader, save=save,
            monitor="val_miou" if data.val else None, history=History(run_dir),
            previews=Previews(run_dir, preview_source.images[pick], preview_source.masks[pick],
                              classes, [preview_source.names[i] for i in pick]),
            precision=resolve_precision(config), resume_from=resume_from,
            resize=(augment, size, get_model(config.arch).divisor), split=data.split,
            extra_callbacks=extra_callbacks,
            budget=run_budget(config, data, classes, started, run_dir, resume_from is not None),
            baseline=(lambda m: m.score(val_loader)) if config.from_model and val_loader is not None else None)


def measured_rate(config: TrainConfig, classes: Any) -> Any:
    """This machine's measured speed for the model `config` trains on these classes (masksmith.train.speed;
    the task table's `speed`)."""
    from masksmith.train.speed import measure_rate

    binary = is_binary(config, len(classes))
    return measure_rate(config, 1 if binary else classes.num_values, resolve_precision(config),
                        loss_name(config, binary))


def run_budget(config: TrainConfig, data: PreparedData, classes: Any, started: float, run_dir: Path,
               resume: bool = False) -> RunBudget | None:
    """The deadline of a run with a time budget, and the planned seconds of the end and of one validation
    from this machine's measured rate (a budgeted plan measured it; it is cached, so measuring again costs a
    probe)."""
    if not config.time_budget:
        return None
    from masksmith.train.plan import end_network_seconds, reserve_seconds

    deadline = Deadline(session_seconds(float(config.time_budget), run_dir, resume), started)
    if data.split is None:
        return RunBudget(deadline)
    rate = measured_rate(config, classes)
    h = float(np.median([s.height for s in data.split.val or data.split.train]))
    w = float(np.median([s.width for s in data.split.val or data.split.train]))
    window = data.size[0] * data.size[1]
    end = reserve_seconds(rate, (h, w), len(data.split.val), config.shrink, config.size, window)
    network = end_network_seconds(rate, (h, w), len(data.split.val), config.shrink, config.size, window)
    one = len(data.val) * rate.infer_seconds(window) if data.val is not None else 0.0
    return RunBudget(deadline, end, one, network)
