"""`masksmith train`, `evaluate` and `report`: a run folder from a data set, its scores, its page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from masksmith.cli.options import (
    FormatOpt,
    LenientOpt,
    ModelArg,
    OptionOpt,
    OverwriteOpt,
    SeedOpt,
    batch_help,
    model_help,
    parse_options,
    size_help,
    task_help,
)
from masksmith.cli.render import console, print_evaluation, print_run_folder, say
from masksmith.cli.stops import NOTHING_WRITTEN, on_stop
from masksmith.core.durations import parse_duration
from masksmith.core.errors import MasksmithError
from masksmith.train.config import MAX_EPOCHS, TrainConfig

commands = typer.Typer()

# train's options, grouped as the help lists them: what to train, how long and how, where, and the machine
DataOpt = Annotated[str | None, typer.Argument(help="Annotated data set: file, folder or zip.")]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help=model_help())]
TaskOpt = Annotated[str, typer.Option(help=task_help())]
EncoderOpt = Annotated[str | None, typer.Option(help="Encoder: any smp or timm name (default "
                                                f"{TrainConfig.encoder}).")]
WeightsOpt = Annotated[str, typer.Option(help="Encoder weights: imagenet-offline, imagenet, none or a file "
                                         "(for maskrcnn_resnet50_fpn: a COCO Mask R-CNN .pth).")]
SizeOpt = Annotated[int | None, typer.Option(min=16, max=8192, help=size_help())]
ShrinkOpt = Annotated[float | None, typer.Option(min=1.0, max=64.0, help="... or shrunk by this factor, keeping "
                                                 "their aspect; larger photos are then predicted with a sliding "
                                                 "window.")]
EpochsOpt = Annotated[int | None, typer.Option(min=1, max=MAX_EPOCHS, help="Epochs to train (the total, also when "
                                               "resuming).")]
TimeOpt = Annotated[str | None, typer.Option("--time", help="Wall-clock budget, e.g. 12m or 90s: the whole wait, "
                                             "evaluation and report included; the learning-rate schedule follows "
                                             "the clock. With --resume, the run's total (a resumed run trains what "
                                             "is left of it).")]
BatchOpt = Annotated[int | None, typer.Option(min=1, max=4096, help=batch_help())]
LrOpt = Annotated[float | None, typer.Option(min=0.0, max=10.0, help="Peak learning rate (semantic: AdamW 4e-3; "
                                             "instance: SGD 0.01).")]
LossOpt = Annotated[str | None, typer.Option(help="auto, ce, dice, ce+dice, focal, bce, bce+dice (default: "
                                             "ce+dice, or bce+dice for one class).")]
ValOpt = Annotated[float, typer.Option(min=0.0, max=0.95, help="Fraction held out for validation.")]
ValDataOpt = Annotated[str | None, typer.Option(help="A separate validation data set.")]
FlipOpt = Annotated[bool, typer.Option(help="Random horizontal flips (left/right classes swapped).")]
NameOpt = Annotated[str | None, typer.Option(help="Run name (folder under --runs).")]
RunsOpt = Annotated[str, typer.Option(help="Folder for run folders.")]
ResumeOpt = Annotated[Path | None, typer.Option(help="Continue this run folder from its last checkpoint.")]
FromOpt = Annotated[Path | None, typer.Option("--from", "--from-model", help="Fine-tune this model file (or run "
                                              "folder): start from its network and weights; the data set must "
                                              "have its classes.")]
ConfigOpt = Annotated[Path | None, typer.Option(help="A config.yaml to start from (flags override it).")]
DevicesOpt = Annotated[str, typer.Option(help="Lightning devices, e.g. 1, 2 or auto.")]
StrategyOpt = Annotated[str, typer.Option(help="Lightning strategy, e.g. auto or ddp.")]
AcceleratorOpt = Annotated[str, typer.Option(help="Lightning accelerator: auto, cpu or gpu.")]
PlanOpt = Annotated[bool, typer.Option(help="Plan input mode, scale, crops and batch from the data set's "
                                       "fingerprint (any flag given overrides its part of the plan).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the data summary, the fingerprint and the "
                                         "plan, and stop (writes nothing).")]


@commands.command("train")
def train(
    ctx: typer.Context, data: DataOpt = None, model: ModelOpt = None, task: TaskOpt = "auto",
    encoder: EncoderOpt = None, weights: WeightsOpt = "imagenet-offline", size: SizeOpt = None,
    shrink: ShrinkOpt = None, epochs: EpochsOpt = None, time_budget: TimeOpt = None, batch_size: BatchOpt = None,
    lr: LrOpt = None, loss: LossOpt = None, val: ValOpt = 0.15, val_data: ValDataOpt = None, flip: FlipOpt = True,
    seed: SeedOpt = 0, name: NameOpt = None, runs: RunsOpt = "runs", resume: ResumeOpt = None,
    config: ConfigOpt = None, devices: DevicesOpt = "1", strategy: StrategyOpt = "auto",
    accelerator: AcceleratorOpt = "auto", format: FormatOpt = None, lenient: LenientOpt = False,
    option: OptionOpt = None, plan: PlanOpt = True, dry_run: DryRunOpt = False, from_model: FromOpt = None,
) -> None:
    """Train a semantic or instance segmentation model; writes a run folder and prints where everything went.
    Before training it prints the plan made from the data (what input size, scale, crops and batch, and why)."""
    from masksmith import service

    on_stop(NOTHING_WRITTEN)  # from the moment a run folder is claimed, the library says what it kept
    if data is None and resume is None and config is None:
        raise typer.BadParameter("give the data set to train on (or --resume RUN, or --config FILE).", ctx=ctx)
    budget = parse_duration(time_budget) if time_budget else None
    if resume is not None:
        if dry_run:
            raise MasksmithError("--dry-run plans a new run; a resumed run keeps its plan.",
                                 fix="leave out --dry-run, or --resume.")
        cfg = service.resume_config(resume, epochs=epochs, time_budget=budget)
        print_run_folder(service.train(cfg, resume, resume=True, announce=say, started=service.command_started()))
        return
    cfg = service.training_config(
        data, task=task, model=model, start_from=config, plan=plan, format=format,
        data_options=parse_options(option), strict_data=not lenient, size=size, shrink=shrink,
        batch_size=batch_size, lr=lr, encoder=encoder, loss=loss, epochs=epochs, time_budget=budget,
        encoder_weights=weights, val_fraction=val, val_data=val_data, flip=flip, seed=seed, name=name,
        runs_dir=runs, devices=int(devices) if devices.isdigit() else devices, strategy=strategy,
        accelerator=accelerator, from_model=str(from_model) if from_model else None)
    if dry_run:
        service.dry_run(cfg, announce=say, started=service.command_started())
        console.print("dry run: nothing trained, nothing written.")
        return
    print_run_folder(service.train(cfg, announce=say, started=service.command_started()))


@commands.command("evaluate")
def evaluate(
    model: ModelArg,
    data: Annotated[str, typer.Argument(help="Annotated data set to score on.")],
    out: Annotated[Path | None, typer.Option(help="Folder for metrics.json, confusion.png, worst.png and "
                                             "best.png (default: the run folder's evaluation/<data name>/).")
                   ] = None,
    worst: Annotated[int, typer.Option(min=0, max=1000, help="Images in the gallery of worst predictions.")] = 8,
    tta: Annotated[bool, typer.Option(help="Average with the mirrored prediction.")] = False,
    format: FormatOpt = None, lenient: LenientOpt = False, option: OptionOpt = None,
) -> None:
    """Per-class IoU and Dice, mIoU, pixel accuracy, a confusion matrix and the worst and best images (each
    with its name, score and the classes it confuses most); for instance models COCO box and mask AP (AP50,
    AP75, per class) and the same semantic scores of the union masks. Written into the run's
    evaluation/<data name>/, and the run's report.html is brought up to date. The data is read with the
    options the model was trained with unless -o gives others; a data set with a test split is scored on it."""
    from masksmith import service

    on_stop("the evaluation did not finish (its scores are written at the end); run the same command again.")
    evaluation = service.evaluate(model, data, out, format=format, options=parse_options(option) if option else None,
                                  strict=not lenient, worst=worst, tta=tta, announce=say)
    print_evaluation(evaluation)


@commands.command("report")
def report(
    run: Annotated[Path, typer.Argument(help="Run folder (or its model.masksmith).")],
    out: Annotated[Path | None, typer.Option(help="HTML file to write (default: RUN/report.html).")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """One self-contained HTML page for a run: data, configuration, curves, per-class scores, confusion
    matrix, worst and best images, and every evaluation so far. Opens offline in any browser."""
    from masksmith.html_report import write_report

    on_stop(NOTHING_WRITTEN)
    console.print(f"wrote {write_report(run, out, overwrite=overwrite)}")
