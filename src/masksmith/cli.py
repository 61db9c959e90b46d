"""The `masksmith` command. Thin: every command calls the same library functions the Python API offers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from masksmith.errors import MasksmithError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="masksmith: from annotated photos to a trained segmentation model and usable results.")
dataset_app = typer.Typer(no_args_is_help=True, help="Read, check, convert, split, tile and preview data sets.")
app.add_typer(dataset_app, name="dataset")
console = Console(soft_wrap=True)  # long paths stay on one line, so they can be copied

FormatOpt = Annotated[str | None, typer.Option("--format", "-f", help="Annotation format; detected when omitted.")]
LenientOpt = Annotated[bool, typer.Option("--lenient", help="Skip bad items and list them instead of stopping.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace files in the output folder that "
                                            "masksmith did not write (its own are always replaced).")]
OptionOpt = Annotated[list[str] | None, typer.Option(
    "--option", "-o", help="Reading option KEY=VALUE, e.g. label_attribute=type, ignore_value=11, masks=mask "
                           "(repeatable; VALUE may be JSON). `masksmith dataset formats` lists each format's.")]


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise MasksmithError(f"option {pair!r} is not KEY=VALUE.", fix="write it as -o label_attribute=type.")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def _load(path: Path, format: str | None, lenient: bool, options: dict[str, Any], need_pixels: bool = True):
    from masksmith.data import load_dataset

    return load_dataset(path, format, strict=not lenient, need_pixels=need_pixels, **options)


def _problem_header(problems) -> str:
    """'3 problem(s): 2 region(s) dropped (the rest of their images kept), 1 image(s) dropped'."""
    from masksmith.data.schema import Problem

    dropped: dict[str, int] = {}
    for p in problems:  # data set Problems; predict lists the photos it skipped as plain text
        kind, count = (p.dropped, p.count) if isinstance(p, Problem) else ("photo", 1)
        dropped[kind] = dropped.get(kind, 0) + count
    words = {"region": "region(s) dropped (the rest of their images kept)", "image": "image(s) dropped",
             "file": "annotation file(s) dropped", "": "reported (nothing dropped)", "photo": "photo(s) skipped"}
    parts = [f"{n} {words.get(k, k)}" for k, n in dropped.items()]
    return f"{len(problems)} problem(s): {', '.join(parts)}"


def _print_problems(problems) -> None:
    if problems:
        console.print(f"[yellow]{_problem_header(problems)}:[/yellow]")
        for p in problems[:50]:
            console.print(f"  - {p}", markup=False, highlight=False)
        if len(problems) > 50:
            console.print(f"  ... and {len(problems) - 50} more")


def _print_notes(notes) -> None:
    for note in notes:
        console.print(f"{'skipped' if note.skipped else 'note'}: {note}", markup=False, highlight=False)


@dataset_app.command("inspect")
def dataset_inspect(
    path: Annotated[Path, typer.Argument(help="Annotation file, folder or zip.")],
    format: FormatOpt = None, lenient: LenientOpt = False, option: OptionOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    pixels: Annotated[bool, typer.Option(help="Count pixel shares (rasterises every annotation).")] = True,
) -> None:
    """Report format, images, classes, instances and pixel share per class, splits, unannotated images, what was
    skipped and problems. Reads the annotation file alone: missing images are one problem, not a stop."""
    from masksmith.data.stats import dataset_stats

    ds = _load(path, format, lenient, parse_options(option), need_pixels=False)
    stats = dataset_stats(ds, pixels=pixels)
    if as_json:
        print(json.dumps(stats.to_dict(), indent=2))
        return
    console.print(f"[bold]{path}[/bold]: format [cyan]{ds.format}[/cyan], {stats.images} images, "
                  f"{len(stats.classes)} classes, {stats.instances} instances", highlight=False)
    if stats.splits:
        console.print("splits: " + ", ".join(f"{k} {n}" for k, n in sorted(stats.splits.items())))
    for images, masks in stats.folders:
        console.print(f"folders: images {images}/ with masks {masks}/", markup=False, highlight=False)
    sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sorted(stats.sizes.items(), key=lambda kv: -kv[1])[:5])
    console.print(f"image sizes: {sizes or 'unknown'}{' ...' if len(stats.sizes) > 5 else ''}")
    table = Table("class", "instances", "images", "pixel share")
    counted = pixels and stats.counted_pixels > 0
    rows = [stats.background, *stats.classes] if counted else stats.classes
    for c in rows:
        share = f"{100 * c.pixel_share:.2f} %" if counted else "-"
        table.add_row(c.name, str(c.instances) if c is not stats.background else "-", str(c.images)
                      if c is not stats.background else "-", share)
    console.print(table)
    if counted:
        fg = 1.0 - stats.background.pixel_share
        console.print(f"labelled pixels: {100 * fg:.1f} % objects / {100 * (1 - fg):.1f} % background "
                      f"(over {stats.pixel_images} of {stats.images} images)")
    elif pixels:
        console.print("no pixels counted: no image size is known (the images are missing and the annotations "
                      "do not state their sizes)")
    if stats.mask_values:
        console.print("mask values: " + ", ".join(f"{v} {m} {100 * sh:.2f} %" for v, m, sh in stats.mask_values),
                      markup=False, highlight=False)
    for hint in stats.hints:
        console.print(f"hint: {hint}", markup=False, highlight=False)
    if stats.unannotated:
        console.print(f"{len(stats.unannotated)} image(s) without annotations: "
                      f"{', '.join(stats.unannotated[:10])}{' ...' if len(stats.unannotated) > 10 else ''}",
                      markup=False, highlight=False)
    _print_notes(stats.notes)
    _print_problems(stats.problems)
    if not stats.problems and not stats.skipped_notes:
        console.print("no problems found")


@dataset_app.command("formats")
def dataset_formats() -> None:
    """The annotation formats masksmith reads (and writes), with each one's reading options (-o KEY=VALUE)."""
    from masksmith.data.formats import all_formats

    for module in all_formats():
        writes = " (read and write)" if hasattr(module, "write") else " (read)"
        console.print(f"[bold]{module.NAME}[/bold]: {module.DESCRIPTION}{writes}")
        options = getattr(module, "OPTIONS", ())
        if not options:
            console.print("  no options")
        for o in options:
            console.print(f"  -o {o.name}=...  {o.meaning} (default: {o.default!r})", markup=False,
                          highlight=False)


@dataset_app.command("convert")
def dataset_convert(
    path: Annotated[Path, typer.Argument(help="Annotation file, folder or zip.")],
    out: Annotated[Path, typer.Argument(help="Output folder (must not be the source).")],
    to: Annotated[str, typer.Option("--to", help="Target format: coco, voc or masks.")],
    format: FormatOpt = None, lenient: LenientOpt = False, option: OptionOpt = None,
    write_option: Annotated[list[str] | None, typer.Option(
        "--write-option", "-w", help="Writer option KEY=VALUE, e.g. kind=color for masks.")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Convert a data set to COCO JSON, Pascal VOC folders or mask images."""
    from masksmith.data.convert import convert

    ds = _load(path, format, lenient, parse_options(option))
    convert(ds, to, out, overwrite=overwrite, **parse_options(write_option))
    console.print(f"wrote {len(ds.samples)} images as {to} to {out}")
    _print_problems(ds.problems)


@dataset_app.command("split")
def dataset_split(
    path: Annotated[Path, typer.Argument(help="Annotation file, folder or zip.")],
    out: Annotated[Path, typer.Argument(help="Folder for train.txt / val.txt / test.txt.")],
    val: Annotated[float, typer.Option(help="Validation: a fraction (0.2) or a number of images (5).")] = 0.2,
    test: Annotated[float, typer.Option(help="Testing: a fraction (0.1) or a number of images (5).")] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    to: Annotated[str | None, typer.Option("--to", help="Also write each part as a data set.")] = None,
    format: FormatOpt = None, lenient: LenientOpt = False, option: OptionOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Split at random (seeded) into train/val/test lists, optionally writing each part as a data set."""
    from masksmith.data.convert import convert
    from masksmith.data.split import split_dataset, write_split_lists
    from masksmith.outputs import OutputFolder

    ds = _load(path, format, lenient, parse_options(option))
    sizes: dict[str, float | None] = {"train": None, **{k: v for k, v in (("val", val), ("test", test)) if v}}
    parts = split_dataset(ds, sizes, seed=seed)
    folder = OutputFolder(out, inputs=[ds.root], overwrite=overwrite)
    for file in write_split_lists(parts, folder):
        console.print(f"{file}: {len(file.read_text().splitlines())} images")
    if to:
        for name, part in parts.items():
            convert(part, to, out / name, overwrite=overwrite)
            console.print(f"wrote {name} as {to} to {out / name}")


@dataset_app.command("tile")
def dataset_tile(
    path: Annotated[Path, typer.Argument(help="Annotation file, folder or zip.")],
    out: Annotated[Path, typer.Argument(help="Output folder for the tiles data set and tiles.json.")],
    size: Annotated[int, typer.Option(help="Tile side in pixels.")] = 256,
    remainder: Annotated[str, typer.Option(help="pad | shift | drop: what to do with the edge remainder.")] = "pad",
    to: Annotated[str, typer.Option("--to", help="Format of the tiles data set.")] = "masks",
    format: FormatOpt = None, lenient: LenientOpt = False, option: OptionOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Cut images and masks into square patches; tiles.json lets `dataset stitch` put predictions back."""
    from masksmith.data.convert import convert
    from masksmith.data.tiles import tile_dataset, write_manifest
    from masksmith.outputs import OutputFolder

    ds = _load(path, format, lenient, parse_options(option))
    folder = OutputFolder(out, inputs=[ds.root], overwrite=overwrite)  # checked before the tiles are cut
    tiles, manifest = tile_dataset(ds, size, remainder)
    convert(tiles, to, folder)
    write_manifest(manifest, folder)
    console.print(f"cut {len(ds.samples)} images into {len(tiles.samples)} tiles of {size}x{size} "
                  f"({remainder}) in {out}; stitch predictions with: masksmith dataset stitch {out / 'tiles.json'}")


@dataset_app.command("stitch")
def dataset_stitch(
    manifest: Annotated[Path, typer.Argument(help="tiles.json written by `dataset tile`.")],
    predictions: Annotated[Path, typer.Argument(help="Folder of per-tile mask PNGs named like the tiles.")],
    out: Annotated[Path, typer.Argument(help="Folder for the full-size masks.")],
    overwrite: OverwriteOpt = False,
) -> None:
    """Put per-tile masks back together into full-size masks."""
    from masksmith.data.tiles import stitch_folder
    from masksmith.outputs import OutputFolder

    written = stitch_folder(manifest, predictions, OutputFolder(out, inputs=[predictions], overwrite=overwrite))
    console.print(f"stitched {len(written)} full-size masks into {out}")


@dataset_app.command("preview")
def dataset_preview(
    path: Annotated[Path, typer.Argument(help="Annotation file, folder or zip.")],
    out: Annotated[Path, typer.Option("--out", help="PNG to write.")] = Path("preview.png"),
    count: Annotated[int, typer.Option(min=1, help="Number of images.")] = 8,
    format: FormatOpt = None, lenient: LenientOpt = False, option: OptionOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """A PNG grid: each image, its mask over it, and the mask alone, in the class colours."""
    from masksmith.data.preview import write_preview

    ds = _load(path, format, lenient, parse_options(option))
    write_preview(ds, out, count, overwrite=overwrite)
    console.print(f"wrote {out}")


@dataset_app.command("sample")
def dataset_sample(
    out: Annotated[Path, typer.Argument(help="Folder to write the sample data set to.")],
    images: Annotated[int, typer.Option(help="Number of images.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write the built-in sample data set (procedurally drawn cars, COCO format)."""
    from masksmith.data.sample import make_sample_dataset

    make_sample_dataset(out, n_images=images, seed=seed)
    console.print(f"wrote {images} sample images with COCO annotations to {out}")


@app.command("train")
def train(
    data: Annotated[str | None, typer.Argument(help="Annotated data set: file, folder or zip.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Semantic: baseline, unet (default), fcn, fpn or "
                     "deeplabv3plus. Instance: maskrcnn_lite0 (default) or maskrcnn_resnet50_fpn.")] = None,
    task: Annotated[str, typer.Option(help="semantic, instance (Mask R-CNN) or auto (from --model).")] = "auto",
    encoder: Annotated[str | None, typer.Option(help="Encoder: any smp or timm name (default "
                                                "tf_efficientnet_lite0).")] = None,
    weights: Annotated[str, typer.Option(help="Encoder weights: imagenet-offline, imagenet, none or a file "
                                         "(for maskrcnn_resnet50_fpn: a COCO Mask R-CNN .pth).")
                       ] = "imagenet-offline",
    size: Annotated[int | None, typer.Option(help="Semantic: images are resized to SIZE x SIZE (256) ... "
                                             "Instance: the longer side the network sees (512).")] = None,
    shrink: Annotated[float | None, typer.Option(help="... or shrunk by this factor, keeping their aspect; "
                                                 "larger photos are then predicted with a sliding window.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs to train (the total, also when resuming).")] = None,
    time_budget: Annotated[str | None, typer.Option("--time", help="Wall-clock budget, e.g. 12m or 90s; the "
                                                    "learning-rate schedule follows the clock.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per step (semantic 8, instance 2).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (semantic: AdamW 4e-3; instance: "
                                             "SGD 0.01).")] = None,
    loss: Annotated[str | None, typer.Option(help="auto, ce, dice, ce+dice, focal, bce, bce+dice (default: "
                                             "ce+dice, or bce+dice for one class).")] = None,
    val: Annotated[float, typer.Option(help="Fraction held out for validation.")] = 0.15,
    val_data: Annotated[str | None, typer.Option(help="A separate validation data set.")] = None,
    flip: Annotated[bool, typer.Option(help="Random horizontal flips (left/right classes swapped).")] = True,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    name: Annotated[str | None, typer.Option(help="Run name (folder under --runs).")] = None,
    runs: Annotated[str, typer.Option(help="Folder for run folders.")] = "runs",
    resume: Annotated[Path | None, typer.Option(help="Continue this run folder from its last checkpoint.")
                      ] = None,
    config: Annotated[Path | None, typer.Option(help="A config.yaml to start from (flags override it).")] = None,
    devices: Annotated[str, typer.Option(help="Lightning devices, e.g. 1, 2 or auto.")] = "1",
    strategy: Annotated[str, typer.Option(help="Lightning strategy, e.g. auto or ddp.")] = "auto",
    accelerator: Annotated[str, typer.Option(help="Lightning accelerator: auto, cpu or gpu.")] = "auto",
    format: FormatOpt = None, lenient: LenientOpt = False, option: OptionOpt = None,
) -> None:
    """Train a semantic or instance segmentation model; writes a run folder and prints where everything went."""
    from masksmith.train import run_training
    from masksmith.train.config import TrainConfig

    if resume is not None:
        cfg = TrainConfig.from_yaml(resume / "config.yaml") if (resume / "config.yaml").exists() else None
        if cfg is None:
            raise MasksmithError("is not a run folder (no config.yaml).", path=resume,
                                 fix="pass the folder that `masksmith train` printed.")
        if epochs is not None:
            cfg.epochs = epochs
        if time_budget is not None:
            cfg.time_budget = parse_duration(time_budget)
        run_dir = run_training(cfg, resume, resume=True, announce=_announce)
    else:
        cfg = TrainConfig.from_yaml(config) if config else TrainConfig()
        if data is None and not cfg.data:
            raise MasksmithError("no data set given.", fix="run `masksmith train DATA` with your annotations.")
        cfg.data = data or cfg.data
        cfg.format, cfg.data_options, cfg.strict_data = format, parse_options(option), not lenient
        cfg.task = choose_task(task, model or (cfg.arch if config else None))
        instance = cfg.task == "instance"
        cfg.arch = model or (cfg.arch if config else ("maskrcnn_lite0" if instance else "unet"))
        cfg.size = size or (cfg.size if config else (512 if instance else 256))
        cfg.batch_size = batch_size or (cfg.batch_size if config else (2 if instance else 8))
        cfg.lr = lr if lr is not None else cfg.lr
        cfg.encoder, cfg.loss = encoder or cfg.encoder, loss or cfg.loss
        cfg.shrink = shrink
        cfg.encoder_weights = None if weights.lower() == "none" else weights
        cfg.val_fraction, cfg.val_data, cfg.flip, cfg.seed = val, val_data, flip, seed
        cfg.name, cfg.runs_dir = name, runs
        cfg.devices = int(devices) if devices.isdigit() else devices
        cfg.strategy, cfg.accelerator = strategy, accelerator
        cfg.time_budget = parse_duration(time_budget) if time_budget else None
        cfg.epochs = epochs if epochs is not None else (None if cfg.time_budget else cfg.epochs)
        run_dir = run_training(cfg, announce=_announce)
    console.print(f"run folder: {run_dir}")
    console.print(f"  model:    {run_dir / 'model.masksmith'}")
    console.print(f"  curves:   {run_dir / 'curves.png'}   metrics: {run_dir / 'metrics.csv'}")
    console.print(f"  previews: {run_dir / 'previews'}   checkpoints: {run_dir / 'checkpoints'}")
    if (run_dir / "evaluation" / "validation").is_dir():
        console.print(f"  validation: {run_dir / 'evaluation' / 'validation'} (scores, confusion.png, worst.png)")
    console.print(f"  report:   {run_dir / 'report.html'} (one page to open or send)")
    console.print(f"next: masksmith evaluate {run_dir / 'model.masksmith'} DATA; "
                  f"masksmith predict {run_dir / 'model.masksmith'} IMAGES...")


def _announce(summary: str) -> None:
    """The data summary train prints before it starts (masksmith.data.report.training_summary)."""
    console.print(summary, markup=False, highlight=False)


def choose_task(task: str, model: str | None) -> str:
    """semantic or instance: as asked, or from the model name (Mask R-CNN models are instance models)."""
    from masksmith.train import TASKS

    implied = "instance" if model and model.lower().replace("-", "_").startswith("maskrcnn") else None
    if task == "auto":
        return implied or "semantic"
    if task not in TASKS:
        raise MasksmithError(f"unknown task {task!r}.", fix=f"use one of: auto, {', '.join(TASKS)}.")
    if model and (implied == "instance") != (task == "instance"):
        raise MasksmithError(f"model {model!r} does not do {task} segmentation.",
                             fix="leave out --task, or pick a model of that task (see `masksmith train --help`).")
    return task


def parse_duration(text: str) -> float:
    """'12m', '90s', '1.5h' or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    t = text.strip().lower()
    try:
        return float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise MasksmithError(f"time {text!r} is not a duration.", fix="write it like 12m, 90s or 1.5h.") from None


@app.command("evaluate")
def evaluate(
    model: Annotated[Path, typer.Argument(help="model.masksmith file or run folder.")],
    data: Annotated[str, typer.Argument(help="Annotated data set to score on.")],
    out: Annotated[Path | None, typer.Option(help="Folder for metrics.json, confusion.png, worst.png and "
                                             "best.png (default: the run folder's evaluation/<data name>/).")
                   ] = None,
    worst: Annotated[int, typer.Option(help="Images in the gallery of worst predictions.")] = 8,
    tta: Annotated[bool, typer.Option(help="Average with the mirrored prediction.")] = False,
    format: FormatOpt = None, lenient: LenientOpt = False, option: OptionOpt = None,
) -> None:
    """Per-class IoU and Dice, mIoU, pixel accuracy, a confusion matrix and the worst and best images (each
    with its name, score and the classes it confuses most); for instance models COCO box and mask AP (AP50,
    AP75, per class) and the same semantic scores of the union masks. Written into the run's
    evaluation/<data name>/, and the run's report.html is brought up to date. The data is read with the
    options the model was trained with unless -o gives others; a data set with a test split is scored on it."""
    from masksmith.data.load import reading_options
    from masksmith.infer import open_predictor
    from masksmith.runfolder import evaluation_folder, run_folder_of

    run = run_folder_of(model)
    out = out or evaluation_folder(run or (model.parent if model.is_file() else model), data)
    predictor = open_predictor(model, tta=tta)
    format, options, said = reading_options(data, format, parse_options(option) if option else None,
                                            predictor.artifact.training)
    if said:
        console.print(said, markup=False, highlight=False)
    if predictor.artifact.task == "instance":
        _evaluate_instances(predictor, data, out, format, not lenient, options, worst)
    else:
        _evaluate_semantic(predictor, data, out, format, not lenient, options, worst)


def _evaluate_semantic(predictor, data: str, out: Path, format: str | None, strict: bool, options: dict,
                       worst: int) -> None:
    from masksmith.infer.evaluate import evaluate_semantic

    report = evaluate_semantic(predictor, data, out, worst=worst, format=format, strict=strict, **options)
    console.print(report.samples_used, markup=False, highlight=False)
    table = Table("class", "IoU", "Dice", "IoU (input size)", "pixels")
    for k, name in enumerate(report.classes):
        f = report.at_full
        table.add_row(name, _fmt(f.iou[k]), _fmt(f.dice[k]), _fmt(report.at_input.iou[k]), str(int(f.support[k])))
    console.print(table)
    for label, s in (("full size", report.at_full), ("input size", report.at_input)):
        console.print(f"{label}: mIoU {s.miou(True):.4f} (without background {s.miou(False):.4f}), mean Dice "
                      f"{s.mean_dice(True):.4f}, pixel accuracy {s.pixel_accuracy:.4f}")
    for key, path in report.files.items():
        console.print(f"{key}: {path}")


def _evaluate_instances(predictor, data: str, out: Path, format: str | None, strict: bool, options: dict,
                        worst: int) -> None:
    from masksmith.infer.instance import evaluate_instances

    report = evaluate_instances(predictor, data, out, format=format, strict=strict, worst=worst, **options)
    console.print(report.get("samples_used", ""), markup=False, highlight=False)
    table = Table("class", "mask AP", "box AP", "IoU (union masks)")
    ious = {r["class"]: r["iou"] for r in report["semantic"]["per_class"]}
    for row in report["per_class"]:
        iou = ious.get(row["class"])
        table.add_row(row["class"], _pct(row["mask_ap"]), _pct(row["box_ap"]), "-" if iou is None else f"{iou:.4f}")
    console.print(table)
    for kind in ("mask", "box"):
        r = report[kind]
        console.print(f"{kind}: AP {_pct(r['ap'])}  AP50 {_pct(r['ap50'])}  AP75 {_pct(r['ap75'])}")
    console.print(f"{report['images']} images; metrics: {report['files'].get('metrics')}")
    for key in ("confusion_matrix", "worst_gallery", "best_gallery", "report"):
        if key in report["files"]:
            console.print(f"{key}: {report['files'][key]}")


@app.command("report")
def report(
    run: Annotated[Path, typer.Argument(help="Run folder (or its model.masksmith).")],
    out: Annotated[Path | None, typer.Option(help="HTML file to write (default: RUN/report.html).")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """One self-contained HTML page for a run: data, configuration, curves, per-class scores, confusion
    matrix, worst and best images, and every evaluation so far. Opens offline in any browser."""
    from masksmith.report import write_report

    console.print(f"wrote {write_report(run, out, overwrite=overwrite)}")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x:.4f}"


@app.command("predict")
def predict(
    model: Annotated[Path, typer.Argument(help="model.masksmith file or run folder.")],
    images: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("predictions"),
    opacity: Annotated[float, typer.Option(help="Overlay opacity: 1 opaque, 0.5 see-through.")] = 0.5,
    tta: Annotated[bool, typer.Option(help="Average with the mirrored prediction.")] = False,
    score: Annotated[float, typer.Option(help="Instance models: keep objects scoring at least this.")] = 0.5,
    overwrite: OverwriteOpt = False,
    lenient: Annotated[bool, typer.Option("--lenient", help="Skip photos that cannot be read and list them.")
                       ] = False,
) -> None:
    """Masks (palette PNGs), overlays and colour masks for new photos, each at its own size; for instance
    models a JSON per image (class, score, box, RLE mask) and an overlay with each object in its own colour."""
    from masksmith.infer import open_predictor
    from masksmith.infer.write import Skipped

    predictor = open_predictor(model, tta=tta, score_threshold=score)
    skipped = Skipped()
    if predictor.artifact.task == "instance":
        from masksmith.infer.instance import predict_instances_to_folder

        written = predict_instances_to_folder(predictor, images, out, opacity, overwrite=overwrite,
                                              lenient=lenient, skipped=skipped)
        console.print(f"predicted {len(written)} image(s) into {out} (*_instances.json, *_overlay.png)")
    else:
        from masksmith.infer.write import predict_to_folder

        written = predict_to_folder(predictor, images, out, opacity, overwrite=overwrite, lenient=lenient,
                                    skipped=skipped)
        console.print(f"predicted {len(written)} image(s) into {out} (*_mask.png, *_overlay.png, *_color.png)")
    _print_problems(skipped.items)


@app.command("extract")
def extract(
    model: Annotated[Path, typer.Argument(help="model.masksmith file or run folder.")],
    images: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    out: Annotated[Path, typer.Option(help="Folder for the cut-outs and index.csv / index.json.")] = Path("cutouts"),
    classes: Annotated[str | None, typer.Option(help="Comma-separated classes to cut out (default: all).")] = None,
    background: Annotated[str, typer.Option(help="white, black or transparent.")] = "white",
    pad: Annotated[int, typer.Option(help="Pixels of margin around each object's box.")] = 0,
    min_pixels: Annotated[int, typer.Option(help="Ignore regions smaller than this.")] = 16,
    score: Annotated[float, typer.Option(help="Instance models: keep objects scoring at least this.")] = 0.5,
    overwrite: OverwriteOpt = False,
) -> None:
    """Cut each detected object out (each Mask R-CNN object, or each connected region of a class for semantic
    models), on a white, black or transparent background, with an index of source image, class, score and box."""
    from masksmith.apps.extract import check_wanted, objects_of_classes, regions_of_classes, write_cutouts, write_index
    from masksmith.infer import open_predictor
    from masksmith.infer.write import Skipped, plan_outputs, readable
    from masksmith.outputs import OutputFolder

    predictor = open_predictor(model, score_threshold=score)
    names = predictor.artifact.classes
    wanted = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    check_wanted(wanted, names, model)  # before any photo is read
    folder = OutputFolder(out, inputs=images, overwrite=overwrite)
    instance = predictor.artifact.task == "instance"
    rows = []
    for job, image, found in readable(predictor, plan_outputs(images, folder), False, Skipped()):
        objects = objects_of_classes(found, wanted, min_pixels) if instance else \
            regions_of_classes(found, names, wanted, min_pixels)
        rows += write_cutouts(job.path, image, objects, folder, background, pad, stem=job.stem)
    csv_path, _ = write_index(rows, folder)
    console.print(f"cut out {len(rows)} object(s) into {out}; index: {csv_path}")


@app.command("demo")
def demo(out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path("demo_output"),
         ) -> None:
    """The whole path on the built-in sample set: build it, inspect it, write its masks and a preview."""
    from masksmith.demo import run_demo

    run_demo(out, console)


# ---------------------------------------------------------------------------------------------- the web app
@app.command("serve")
def serve(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Folder for the app's data sets, runs and database."
                                           )] = Path("~/.local/share/masksmith/web"),
    host: Annotated[str, typer.Option(help="Address to serve on. 127.0.0.1 keeps it on this machine; any other "
                                           "needs the access token printed at start.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8765,
    no_sample: Annotated[bool, typer.Option("--no-sample", help="Do not add the built-in sample data set on "
                                             "the first start.")] = False,
) -> None:
    """The local web app: upload a zip, check it, train with a time budget and watch it learn, then try the
    model on your own photos. Opens at http://127.0.0.1:8765/."""
    from masksmith.web.serve import serve_app

    serve_app(data_dir.expanduser(), host=host, port=port, load_sample=not no_sample, echo=console.print)


def main() -> None:
    try:
        app(standalone_mode=False)
    except MasksmithError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as exc:  # a full disk, a read-only folder: one line with the path and errno, no traceback
        from masksmith.outputs import os_error

        print(f"error: {os_error(exc, action='read or write')}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # click's usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
