"""The `masksmith` command. Thin: every command calls the same library functions the Python API offers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from masksmith.core.durations import parse_duration
from masksmith.core.errors import MasksmithError, TrainingInterrupted

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
            _say(f"  - {p}")
        if len(problems) > 50:
            console.print(f"  ... and {len(problems) - 50} more")


def _print_notes(notes) -> None:
    for note in notes:
        _say(f"{'skipped' if note.skipped else 'note'}: {note}")


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
    found = _fingerprint(ds) if pixels else None
    if as_json:
        print(json.dumps({**stats.to_dict(), "fingerprint": found.to_dict() if found else None}, indent=2))
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
        _say(f"hint: {hint}")
    if stats.unannotated:
        console.print(f"{len(stats.unannotated)} image(s) without annotations: "
                      f"{', '.join(stats.unannotated[:10])}{' ...' if len(stats.unannotated) > 10 else ''}",
                      markup=False, highlight=False)
    if found is not None:
        console.print("\n".join(found.lines()), markup=False, highlight=False)
    _print_notes(stats.notes)
    _print_problems(stats.problems)
    if not stats.problems and not stats.skipped_notes:
        console.print("no problems found")


def _fingerprint(ds):
    """The data set's fingerprint (what `train` plans from), or None when its masks cannot be read here."""
    from masksmith.data.fingerprint import dataset_fingerprint

    try:
        return dataset_fingerprint(ds)
    except MasksmithError as exc:
        console.print(f"no fingerprint: {exc}", markup=False, highlight=False)
        return None


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
    to: Annotated[str, typer.Option("--to", help="Target format: coco, voc, masks, via, labelme or cvat.")],
    format: FormatOpt = None, lenient: LenientOpt = False, option: OptionOpt = None,
    write_option: Annotated[list[str] | None, typer.Option(
        "--write-option", "-w", help="Writer option KEY=VALUE, e.g. kind=color for masks.")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Convert a data set to COCO JSON, Pascal VOC folders, mask images, a VIA 2 project, LabelMe JSON or CVAT
    1.1 XML (masks become polygons for the last three)."""
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
    from masksmith.core.outputs import OutputFolder
    from masksmith.data.convert import convert
    from masksmith.data.split import split_dataset, write_split_lists

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
    from masksmith.core.outputs import OutputFolder
    from masksmith.data.convert import convert
    from masksmith.data.tiles import tile_dataset, write_manifest

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
    from masksmith.core.outputs import OutputFolder
    from masksmith.data.tiles import stitch_folder

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
    from masksmith.data.preview import check_preview_name, write_preview

    check_preview_name(out)  # before the data set is read
    ds = _load(path, format, lenient, parse_options(option))
    write_preview(ds, out, count, overwrite=overwrite)
    console.print(f"wrote {out}")


@dataset_app.command("sample")
def dataset_sample(
    out: Annotated[Path, typer.Argument(help="Folder to write the sample data set to.")],
    images: Annotated[int, typer.Option(help="Number of images.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    kind: Annotated[str, typer.Option(help="cars (small side views), thin (wires and grids 1-3 px wide on "
                                      "~600x400 photos) or large (small objects on ~2000x1500 photos).")] = "cars",
) -> None:
    """Write a built-in sample data set (procedurally drawn, COCO format)."""
    from masksmith.data.synthetic import make_sample_dataset

    make_sample_dataset(out, n_images=images, seed=seed, kind=kind)
    console.print(f"wrote {images} sample images ({kind}) with COCO annotations to {out}")


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
    plan: Annotated[bool, typer.Option(help="Plan input mode, scale, crops and batch from the data set's "
                                       "fingerprint (any flag given overrides its part of the plan).")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the data summary, the fingerprint and the "
                                          "plan, and stop (writes nothing).")] = False,
) -> None:
    """Train a semantic or instance segmentation model; writes a run folder and prints where everything went.
    Before training it prints the plan made from the data (what input size, scale, crops and batch, and why)."""
    from masksmith import service

    if resume is not None:
        if dry_run:
            raise MasksmithError("--dry-run plans a new run; a resumed run keeps its plan.",
                                 fix="leave out --dry-run, or --resume.")
        cfg = service.resume_config(resume, epochs=epochs,
                                    time_budget=parse_duration(time_budget) if time_budget else None)
        run_dir = service.train(cfg, resume, resume=True, announce=_announce, started=service.command_started())
    else:
        cfg = service.training_config(
            data, task=task, model=model, start_from=config, plan=plan, format=format,
            data_options=parse_options(option), strict_data=not lenient, size=size, shrink=shrink,
            batch_size=batch_size, lr=lr, encoder=encoder, loss=loss, epochs=epochs,
            time_budget=parse_duration(time_budget) if time_budget else None,
            encoder_weights=weights, val_fraction=val, val_data=val_data,
            flip=flip, seed=seed, name=name, runs_dir=runs, devices=int(devices) if devices.isdigit() else devices,
            strategy=strategy, accelerator=accelerator)
        if dry_run:
            service.dry_run(cfg, announce=_announce)
            console.print("dry run: nothing trained, nothing written.")
            return
        run_dir = service.train(cfg, announce=_announce, started=service.command_started())
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
    """The data summary train prints before it starts (masksmith.data.summary.training_summary)."""
    _say(summary)


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
    from masksmith import service

    evaluation = service.evaluate(model, data, out, format=format, options=parse_options(option) if option else None,
                                  strict=not lenient, worst=worst, tta=tta, announce=_say)
    print_evaluation(evaluation)


def _say(text: str) -> None:
    """A line from the library, with the settings it names spelled as this command line's flags."""
    from masksmith.core.errors import spell_settings

    console.print(spell_settings(text, spell_flag), markup=False, highlight=False)


def print_evaluation(evaluation) -> None:
    """Which images were scored, the per-class table, the figures (the headline first) and the files."""
    from masksmith.evaluate.result import format_value

    _say(evaluation.samples_used)
    table = Table("class", *(c.name for c in evaluation.columns))
    for row in evaluation.per_class:
        table.add_row(row.name, *(format_value(v, c.kind) for v, c in zip(row.values, evaluation.columns,
                                                                          strict=True)))
    console.print(table)
    _say(", ".join(f"{f.name} {f.text()}" for f in evaluation.figures))
    for key, path in evaluation.files.items():
        _say(f"{key}: {path}")


@app.command("report")
def report(
    run: Annotated[Path, typer.Argument(help="Run folder (or its model.masksmith).")],
    out: Annotated[Path | None, typer.Option(help="HTML file to write (default: RUN/report.html).")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """One self-contained HTML page for a run: data, configuration, curves, per-class scores, confusion
    matrix, worst and best images, and every evaluation so far. Opens offline in any browser."""
    from masksmith.html_report import write_report

    console.print(f"wrote {write_report(run, out, overwrite=overwrite)}")


@app.command("predict")
def predict(
    model: Annotated[Path, typer.Argument(help="model.masksmith file, run folder, or an exported .onnx.")],
    images: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("predictions"),
    opacity: Annotated[float, typer.Option(help="Overlay opacity: 1 opaque, 0.5 see-through.")] = 0.5,
    tta: Annotated[bool, typer.Option(help="Average with the mirrored prediction.")] = False,
    score: Annotated[float, typer.Option(help="Instance models: keep objects scoring at least this.")] = 0.5,
    backend: Annotated[str | None, typer.Option(help="torch or onnx (default: the model file's own; a "
                                                ".masksmith semantic model is exported in memory for onnx).")
                       ] = None,
    summary: Annotated[Path | None, typer.Option(help="Also write a CSV: per photo, pixels per class (or "
                                                 "objects per class).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Predict again photos whose outputs are there "
                                            "from an earlier run (skipped otherwise), and replace files masksmith "
                                            "did not write.")] = False,
    lenient: Annotated[bool, typer.Option("--lenient", help="Skip photos that cannot be read and list them.")
                       ] = False,
    to: Annotated[str | None, typer.Option("--to", help="Also write pre-annotations for a labelling tool: coco, "
                                           "via, labelme or cvat (into OUT/<format>/).")] = None,
) -> None:
    """Masks (palette PNGs), overlays and colour masks for new photos, each at its own size; for instance
    models a JSON per image (class, score, box, RLE mask) and an overlay with each object in its own colour.
    Streams over any number of photos with a progress bar; a re-run skips photos already done."""
    from masksmith.infer import open_predictor
    from masksmith.infer.batch import Skipped, predict_batch

    if to is not None:
        from masksmith.apps.annotate import FORMATS

        if to not in FORMATS:
            raise MasksmithError(f"cannot write pre-annotations as {to!r}.", fix=f"use one of: {', '.join(FORMATS)}.")
    predictor = open_predictor(model, backend=backend, tta=tta, score_threshold=score)
    skipped = Skipped()
    counts = {"predicted": 0, "existing": 0}
    written: list[dict] = []  # kept only for --to, which reads every photo's outputs back at the end
    with _photo_progress() as progress:
        for row in predict_batch(predictor, images, out, opacity=opacity, overwrite=overwrite, lenient=lenient,
                                 skipped=skipped, progress=progress, summary=summary):
            counts[row["status"]] += 1
            if to is not None:
                written.append(row)
    from masksmith.tasks import get_task

    files = get_task(predictor.artifact.task).outputs
    kept = f"; {counts['existing']} already there, kept (--overwrite redoes them)" if counts["existing"] else ""
    console.print(f"predicted {counts['predicted']} image(s) into {out} ({files}){kept}", markup=False,
                  highlight=False)
    if summary is not None:
        console.print(f"summary: {summary}", markup=False, highlight=False)
    if to is not None:
        _write_preannotations(to, written, predictor, out, images, overwrite)
    _print_problems(skipped.items)


class _photo_progress:
    """A progress bar for photo batches: done / total, photos per second and time left (stderr, drawn only on
    a terminal; the rate counts predicted photos, not skipped ones)."""

    def __enter__(self):
        self.bar = self.task = None  # drawn at the first photo: an error before it prints alone, on its line
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("predicting"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TextColumn("left"), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("predict", total=total, rate="")
        speed = self.bar.tasks[0].speed
        self.bar.update(self.task, completed=done, rate=f"{speed:.2f} images/s" if speed else "")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


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
    from masksmith.apps.extract import check_wanted, objects_of_classes, write_cutouts, write_index
    from masksmith.apps.photo import predict_photo
    from masksmith.core.outputs import OutputFolder
    from masksmith.infer import open_predictor
    from masksmith.infer.batch import Skipped, plan_outputs, readable

    predictor = open_predictor(model, score_threshold=score)
    wanted = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    check_wanted(wanted, predictor.classes.names, model)  # before any photo is read
    folder = OutputFolder(out, inputs=images, overwrite=overwrite)
    rows = []
    for job, image in readable(plan_outputs(images, folder), False, Skipped()):
        objects = objects_of_classes(predict_photo(predictor, image, min_pixels).objects, wanted, min_pixels)
        rows += write_cutouts(job.path, image, objects, folder, background, pad, stem=job.stem)
    csv_path, _ = write_index(rows, folder)
    console.print(f"cut out {len(rows)} object(s) into {out}; index: {csv_path}")


# ---------------------------------------------------------------------------------------- export (issue 17)
@app.command("export")
def export(
    model: Annotated[Path, typer.Argument(help="model.masksmith file or run folder.")],
    to: Annotated[str, typer.Option("--to", help="Export format: onnx.")] = "onnx",
    out: Annotated[Path | None, typer.Option(help="Output file (default: the model's name with .onnx).")] = None,
    int8: Annotated[bool, typer.Option("--int8", help="Also write an INT8 copy (<name>.int8.onnx), statically "
                                       "quantised (QDQ, per-channel weights).")] = False,
    calibrate: Annotated[Path | None, typer.Option(help="Photos to calibrate INT8 on: a folder of training "
                                                   "images or the training data set.")] = None,
    calibration_images: Annotated[int, typer.Option(help="Photos used for INT8 calibration.")] = 32,
    overwrite: OverwriteOpt = False,
) -> None:
    """Export a semantic model to ONNX (classes, colours and preprocessing kept in its metadata; dynamic height
    and width); parity against PyTorch is checked and printed before success is reported."""
    from masksmith.infer.export import export_onnx

    if to.lower() != "onnx":
        raise MasksmithError(f"unknown export format {to!r}.", fix="use --to onnx.")
    report = export_onnx(model, out, int8=int8, calibrate=calibrate, calibration_images=calibration_images,
                         overwrite=overwrite)
    console.print(f"parity ONNX float vs PyTorch: {report.parity.describe()}", markup=False, highlight=False)
    if not report.ok:
        raise MasksmithError("ONNX parity check failed; nothing was written.", path=model,
                             fix="report this with the model's architecture (masksmith export checks "
                                 "99.9 % equal pixels and logits within 0.1 %).")
    console.print(f"wrote {report.path}", markup=False, highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    if int8 and report.int8_parity is not None:
        console.print(f"parity ONNX INT8 vs float ({report.calibrated_on} calibration photo(s)): "
                      f"{report.int8_parity.describe()}", markup=False, highlight=False)
        if not report.int8_ok:
            raise MasksmithError("INT8 parity check failed (fewer than 95 % equal mask pixels against float); "
                                 "the INT8 file was not written.", path=model,
                                 fix="calibrate on more photos like those you predict, or use the float model.")
        console.print(f"wrote {report.int8_path}", markup=False, highlight=False)


# ------------------------------------------------------------------------------------------ apps (issue 15)
# recolor, paste, cluster, colors, rank: each takes its masks from a semantic model, an instance model or a
# mask file the user has (--mask); the logic lives in masksmith.apps.*, shared with the web app.
MaskOpt = Annotated[Path | None, typer.Option(
    "--mask", help="A mask file of your own (non-zero or non-transparent pixels are the part) instead of a "
                   "model; then every argument is a photo.")]
ClassesOpt = Annotated[list[str] | None, typer.Option(
    "--classes", "--class", help="Classes to work on (repeatable, or comma-separated); a name from --group "
                                 "stands for its classes.")]
GroupOpt = Annotated[Path | None, typer.Option(
    "--group", help="YAML file of class groups, one line each, e.g. paint: \\[hood, front_door, back_door].")]
ScoreOpt = Annotated[float, typer.Option(help="Instance models: keep objects scoring at least this.")]


class _Source:
    """Where an app's masks come from: a model (its predictions of the wanted classes) or the user's mask."""

    def __init__(self, inputs: list[Path], mask: Path | None, classes: list[str] | None, group: Path | None,
                 score: float = 0.5, need_classes: bool = True) -> None:
        from masksmith.apps.selection import read_groups, resolve_classes

        self.mask_file = mask
        self.predictor = None
        if mask is not None:
            if classes:
                raise MasksmithError("--classes names a model's classes; with --mask there is no model.",
                                     fix="leave out --classes (the mask file says which pixels).")
            self.photos, self.wanted = inputs, []
        else:
            if len(inputs) < 2:
                raise MasksmithError("give a model and at least one photo (or --mask FILE and photos).",
                                     fix="e.g. masksmith recolor runs/demo/model.masksmith car.jpg --classes body")
            from masksmith.infer import open_predictor

            model, self.photos = inputs[0], inputs[1:]
            self.predictor = open_predictor(model, score_threshold=score)
            self.classes = self.predictor.classes
            self.wanted = resolve_classes(classes, self.classes.names, read_groups(group), model,
                                          default_all=not need_classes)
        if not self.photos:
            raise MasksmithError("no photo given.", fix="pass one or more photos after the model.")

    def jobs(self, folder):
        from masksmith.infer.batch import plan_outputs

        return plan_outputs(self.photos, folder)

    def masks(self, image: np.ndarray, split_regions: bool, min_pixels: int = 16) -> list[np.ndarray]:
        """The wanted objects' masks in a photo (one per object / region, or one for all with split=False)."""
        from masksmith.apps.selection import object_masks, read_mask_file

        if self.predictor is None:
            mask = read_mask_file(self.mask_file, image.shape[:2])
            if not split_regions:
                return [mask]
            from masksmith.apps.paste import regions

            return regions(mask, min_pixels)
        return object_masks(self.predictor.predict(image), self.classes, self.wanted, min_pixels, split_regions)


def _color_label(text: str) -> str:
    from masksmith.core.paths import safe_filename

    return safe_filename(text.strip().lstrip("#").lower(), "color")


@app.command("recolor")
def recolor_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="MODEL PHOTO... (or, with --mask, PHOTO...).")],
    color: Annotated[list[str] | None, typer.Option(
        "--color", help="Target colour: a CSS name (red, navy) or #rrggbb; repeat for one output each.")] = None,
    hue_shift: Annotated[float | None, typer.Option("--hue-shift", help="Turn the hue by DEG degrees instead.")
                         ] = None,
    classes: ClassesOpt = None, group: GroupOpt = None, mask: MaskOpt = None,
    feather: Annotated[int, typer.Option(min=0, help="Pixels of soft edge inside the mask.")] = 3,
    lightness: Annotated[float, typer.Option(min=0.0, max=1.0, help="How far the part's mean lightness moves "
                                             "towards the target colour's (0 keeps the photo's).")] = 0.5,
    out: Annotated[Path, typer.Option(help="Output folder (not the photos' folder).")] = Path("recolored"),
    score: ScoreOpt = 0.5, overwrite: OverwriteOpt = False,
) -> None:
    """Recolour a part (a car's paint) keeping its shading, reflections and highlights: <stem>_<colour>.png
    at the photo's full size and <stem>_<colour>_before_after.png. Other pixels stay byte-identical."""
    from masksmith.apps.recolor import before_after, parse_color, recolor
    from masksmith.apps.selection import union_of
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder

    if not color and hue_shift is None:
        raise MasksmithError("no colour given.", fix="pass --color '#c0392b' (or a CSS name) or --hue-shift 40.")
    if color and hue_shift is not None:
        raise MasksmithError("--color and --hue-shift cannot be used together.", fix="pass one of them.")
    targets = [(_color_label(c), parse_color(c)) for c in color] if color else \
        [(f"hue{hue_shift:+g}", None)]  # every colour checked before any work
    source = _Source(inputs, mask, classes, group, score)
    folder = OutputFolder(out, inputs=source.photos, overwrite=overwrite)
    written = 0
    for job in source.jobs(folder):
        image = read_image(job.path)
        part = union_of(source.masks(image, split_regions=False), image.shape[:2])
        if not part.any():
            console.print(f"{job.path}: none of {', '.join(source.wanted) or 'the mask'} found; nothing recoloured",
                          markup=False, highlight=False)
        for label, rgb in targets:
            result = recolor(image, part, rgb, None if rgb else hue_shift, feather, lightness=lightness)
            file = folder.save_image(f"{job.stem}_{label}.png", result)
            picture = before_after(image, result, title=f"{job.path.name}: {label}")
            folder.save_image(f"{job.stem}_{label}_before_after.png", picture.pixels, **picture.save_options())
            console.print(f"wrote {file} (and {file.stem}_before_after.png)", markup=False, highlight=False)
            written += 1
    console.print(f"recoloured {written} picture(s) into {out}")


def _read_sprite(path: Path | None) -> np.ndarray:
    from masksmith.apps.paste import check_sprite, demo_rim
    from masksmith.core.images import open_image

    if path is None:
        return demo_rim()
    im = open_image(path)
    if not (im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)):
        raise MasksmithError(f"the sprite has no alpha channel (mode {im.mode}).", path=path,
                             fix="save it as a PNG with transparency around the part to paste.")
    return check_sprite(np.asarray(im.convert("RGBA")), str(path))


@app.command("paste")
def paste_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="MODEL PHOTO... (or, with --mask, PHOTO...).")],
    classes: ClassesOpt = None, group: GroupOpt = None, mask: MaskOpt = None,
    sprite: Annotated[Path | None, typer.Option(help="PNG with alpha to paste (default: the built-in rim).")
                      ] = None,
    fit: Annotated[str, typer.Option(help="box (the region's box) or ellipse (its fitted ellipse).")] = "box",
    min_pixels: Annotated[int, typer.Option(help="Ignore regions smaller than this.")] = 64,
    out: Annotated[Path, typer.Option(help="Output folder (not the photos' folder).")] = Path("pasted"),
    score: ScoreOpt = 0.5, overwrite: OverwriteOpt = False,
) -> None:
    """Try new wheels: the sprite fitted to each detected region (each instance, or each connected region
    of a semantic class) and composited inside its mask only: <stem>_pasted.png and a before | after."""
    from masksmith.apps.paste import FITS, paste_all
    from masksmith.apps.recolor import before_after
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder

    if fit not in FITS:
        raise MasksmithError(f"unknown fit {fit!r}.", fix=f"use one of: {', '.join(FITS)}.")
    picture = _read_sprite(sprite)
    source = _Source(inputs, mask, classes, group, score)
    folder = OutputFolder(out, inputs=[*source.photos, sprite], overwrite=overwrite)
    for job in source.jobs(folder):
        image = read_image(job.path)
        masks = source.masks(image, split_regions=True, min_pixels=min_pixels)
        result = paste_all(image, masks, picture, fit)
        file = folder.save_image(f"{job.stem}_pasted.png", result)
        sheet = before_after(image, result, title=f"{job.path.name}: {len(masks)} region(s)")
        folder.save_image(f"{job.stem}_before_after.png", sheet.pixels, **sheet.save_options())
        console.print(f"{job.path}: pasted onto {len(masks)} region(s) -> {file}", markup=False, highlight=False)


@app.command("cluster")
def cluster_cmd(
    photos: Annotated[list[Path], typer.Argument(help="Photos or folders of photos.")],
    k: Annotated[int, typer.Option("--k", min=1, max=64, help="Number of colours.")] = 5,
    position_weight: Annotated[float, typer.Option(min=0.0, help="Weight of pixel position (0: colour only).")
                               ] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same clusters).")] = 0,
    out: Annotated[Path, typer.Option(help="Output folder (not the photos' folder).")] = Path("clusters"),
    overwrite: OverwriteOpt = False,
) -> None:
    """K-means colour clustering, no training: <stem>_labels.png (cluster index per pixel, drawn in the
    cluster colours), <stem>_clustered.png, <stem>_palette.png (each colour's share) and <stem>_palette.json."""
    from masksmith.apps.cluster import cluster_image, hex_color, palette_strip
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder
    from masksmith.infer.batch import plan_outputs, save_index_mask

    folder = OutputFolder(out, inputs=photos, overwrite=overwrite)
    for job in plan_outputs(photos, folder):
        result = cluster_image(read_image(job.path), k, seed, position_weight)
        colors = [tuple(int(v) for v in c) for c in result.colors]
        save_index_mask(result.labels, colors, folder, f"{job.stem}_labels.png")
        folder.save_image(f"{job.stem}_clustered.png", result.image())
        folder.save_image(f"{job.stem}_palette.png", palette_strip(result.colors, result.shares))
        palette = [{"label": i, "hex": hex_color(c), "rgb": list(c), "share": round(float(s), 4)}
                   for i, (c, s) in enumerate(zip(colors, result.shares, strict=True))]
        folder.write_text(f"{job.stem}_palette.json", json.dumps({"image": str(job.path), "k": k, "seed": seed,
                                                                  "colors": palette}, indent=1))
        shares = ", ".join(f"{p['hex']} {100 * p['share']:.1f} %" for p in palette)
        console.print(f"{job.path}: {shares}", markup=False, highlight=False)
    console.print(f"wrote label maps, clustered images and palettes to {out}")


@app.command("colors")
def colors_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="MODEL PHOTO... (or, with --mask, PHOTO...).")],
    classes: ClassesOpt = None, group: GroupOpt = None, mask: MaskOpt = None,
    k: Annotated[int, typer.Option("--k", min=1, max=16, help="Number of colours.")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    score: ScoreOpt = 0.5,
) -> None:
    """The dominant colours inside a predicted class ("what colour is this car?"): shares and the nearest
    CSS colour name, as a table or JSON."""
    from masksmith.apps.colors import dominant_colors
    from masksmith.apps.selection import union_of
    from masksmith.core.images import read_image
    from masksmith.infer.batch import expand_inputs

    source = _Source(inputs, mask, classes, group, score)
    report = []
    for path in expand_inputs(source.photos):
        image = read_image(path)
        part = union_of(source.masks(image, split_regions=False), image.shape[:2])
        found = dominant_colors(image, part, k, seed) if part.any() else []
        report.append({"image": str(path), "classes": source.wanted, "pixels": int(part.sum()),
                       "colors": [c.to_dict() for c in found]})
    if as_json:
        print(json.dumps(report, indent=1))
        return
    for entry in report:
        what = ", ".join(entry["classes"]) or "the mask"
        if not entry["colors"]:
            console.print(f"{entry['image']}: none of {what} found", markup=False, highlight=False)
            continue
        table = Table("colour", "name", "share", title=f"{entry['image']} ({what}, {entry['pixels']} pixels)")
        for c in entry["colors"]:
            table.add_row(f"[on {c['hex']}]      [/] {c['hex']}", c["name"], f"{100 * c['share']:.1f} %")
        console.print(table)


@app.command("rank")
def rank_cmd(
    model: Annotated[Path, typer.Argument(help="model.masksmith file or run folder.")],
    photos: Annotated[list[Path], typer.Argument(help="Unlabelled photos or folders of photos.")],
    out: Annotated[Path, typer.Option(help="CSV file to write (beside the photos is fine).")] = Path("ranking.csv"),
    measure: Annotated[str, typer.Option(help="Semantic models: entropy or margin.")] = "entropy",
    overwrite: OverwriteOpt = False,
) -> None:
    """Order unlabelled photos by how unsure the model is about them (most unsure first), so you label the
    ones that teach it most first; writes rank, image, score as CSV."""
    from masksmith.apps.rank import MEASURES, rank_images, write_ranking
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder
    from masksmith.infer import open_predictor
    from masksmith.infer.batch import expand_inputs

    if measure not in MEASURES:
        raise MasksmithError(f"unknown measure {measure!r}.", fix=f"use one of: {', '.join(MEASURES)}.")
    predictor = open_predictor(model)
    folder, name = OutputFolder.for_file(out, inputs=photos, overwrite=overwrite)
    files = expand_inputs(photos, skip=folder)
    rows = rank_images(predictor, ((str(f), read_image(f)) for f in files), measure)
    csv_path = write_ranking(rows, folder, name)
    for r in rows[:10]:
        console.print(f"  {r.score:.4f}  {r.image}", markup=False, highlight=False)
    console.print(f"ranked {len(rows)} photo(s), most uncertain first: {csv_path}")


def _write_preannotations(to: str, written: list[dict], predictor, out: Path, images: list[Path],
                          overwrite: bool) -> None:
    """predict --to FMT: the masks predict just wrote, as polygons in the labelling tool's format."""
    from masksmith.apps.annotate import predictions_from_outputs, write_preannotations
    from masksmith.core.outputs import OutputFolder

    classes = predictor.classes
    folder = OutputFolder(out / to, inputs=images, overwrite=overwrite)
    write_preannotations(predictions_from_outputs(written), classes, to, folder)
    console.print(f"pre-annotations for {to} in {out / to} (open them in your labelling tool and correct)")


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


# how the CLI spells the settings library messages name in backticks (`size`, `ignore_value=11`)
FLAG_NAMES = {"time_budget": "--time", "val_fraction": "--val", "strict_data": "--lenient", "lenient": "--lenient",
              "data_options": "--option", "arch": "--model", "encoder_weights": "--weights", "runs_dir": "--runs"}


def spell_flag(name: str, value: str | None) -> str:
    """A setting as the command line writes it: a reading option as -o NAME=VALUE, `resume=DIR` as the
    command that resumes, any other as its --flag (and value)."""
    import shlex

    if name == "resume" and value:
        return f"masksmith train --resume {value}"
    if value is not None and name in reading_option_names():
        return f"-o {shlex.quote(f'{name}={value}')}"
    flag = FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
    return flag if value is None else f"{flag} {shlex.quote(value)}"


def reading_option_names() -> set[str]:
    from masksmith.data.formats import all_formats

    return {o.name for module in all_formats() for o in getattr(module, "OPTIONS", ())}


def cli_message(exc: BaseException) -> str:
    from masksmith.core.errors import spell_settings

    return spell_settings(str(exc), spell_flag)


def main() -> None:
    try:
        app(standalone_mode=False)
    except TrainingInterrupted as exc:  # Ctrl-C during training: what was kept and how to resume
        print(f"interrupted: {cli_message(exc)}", file=sys.stderr)
        sys.exit(130)
    except MasksmithError as exc:
        print(f"error: {cli_message(exc)}", file=sys.stderr)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as exc:  # a full disk, a read-only folder: one line with the path and errno, no traceback
        from masksmith.core.outputs import os_error

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
