"""`masksmith predict`, `extract` and `export`: a model put to work on new photos, or written for other runtimes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from masksmith.cli.options import ImagesArg, MinPixelsOpt, ModelArg, OverwriteOpt, ScoreOpt
from masksmith.cli.render import PhotoProgress, console, plain, print_problems
from masksmith.cli.stops import Tally, on_stop

commands = typer.Typer()

BackendOpt = Annotated[str, typer.Option(help="auto, torch or onnx. auto: the .onnx that `masksmith export` wrote "
                                         "beside the model when it measured it faster, else torch.")]
SaveOpt = Annotated[str | None, typer.Option(help="Outputs to write, comma-separated: mask,overlay,color (instance "
                                             "models: json,overlay). Default: all.")]
ProfileOpt = Annotated[bool, typer.Option("--profile", help="Print the seconds spent per stage: read, preprocess, "
                                          "network, postprocess, write.")]
EngineOpt = Annotated[str, typer.Option(help="local (this process) or ray (a Ray Data pipeline: pip install "
                                        "'masksmith[ray]'; IMAGES may then also be list files, one path or s3:// "
                                        "URI a line).")]
AddressOpt = Annotated[str | None, typer.Option(help="--engine ray: a Ray cluster to join (e.g. auto or "
                                                "ray://head:10001); default: a local Ray.")]
WorkersOpt = Annotated[int, typer.Option(min=1, max=1024, help="--engine ray: model workers (one model each).")]
SummaryOpt = Annotated[Path | None, typer.Option(help="Also write a CSV: per photo, pixels per class (or objects "
                                                 "per class).")]
PredictOverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Predict again photos whose outputs are "
                                                   "there from an earlier run (skipped otherwise), and replace "
                                                   "files masksmith did not write.")]
ToolOpt = Annotated[str | None, typer.Option("--to", help="Also write pre-annotations for a labelling tool: coco, "
                                             "via, labelme or cvat (into OUT/<format>/).")]


@commands.command("predict")
def predict(
    model: Annotated[Path, typer.Argument(help="model.masksmith file, run folder, or an exported .onnx.")],
    images: ImagesArg,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("predictions"),
    opacity: Annotated[float, typer.Option(min=0.0, max=1.0, help="Overlay opacity: 1 opaque, 0.5 see-through.")
                       ] = 0.5,
    tta: Annotated[bool, typer.Option(help="Average with the mirrored prediction.")] = False,
    score: ScoreOpt = 0.5, backend: BackendOpt = "auto", save: SaveOpt = None, profile: ProfileOpt = False,
    engine: EngineOpt = "local", address: AddressOpt = None, workers: WorkersOpt = 2, summary: SummaryOpt = None,
    overwrite: PredictOverwriteOpt = False,
    lenient: Annotated[bool, typer.Option("--lenient", help="Skip photos that cannot be read and list them.")
                       ] = False,
    to: ToolOpt = None,
) -> None:
    """Masks (palette PNGs), overlays and colour masks for new photos, each at its own size; for instance
    models a JSON per image (class, score, box, RLE mask) and an overlay with each object in its own colour.
    Streams over any number of photos with a progress bar; a re-run skips photos already done."""
    from masksmith.apps.annotate import check_format
    from masksmith.core.errors import MasksmithError
    from masksmith.infer import open_predictor
    from masksmith.infer.batch import Skipped, predict_batch
    from masksmith.infer.profile import Profile
    from masksmith.tasks import get_task

    if to is not None:
        check_format(to)
    if engine not in ("local", "ray"):
        raise MasksmithError(f"unknown engine {engine!r}.", fix="use --engine local or --engine ray.")
    if to is not None and save is not None and not {"mask", "json"} & set(save.replace(" ", "").split(",")):
        raise MasksmithError("pre-annotations are made from the masks (or JSON) predict writes.",
                             fix="add mask (instance models: json) to --save, or leave --save out.")
    predictor = open_predictor(model, backend=backend, tta=tta, score_threshold=score)
    stages = Profile() if profile else None
    skipped = Skipped()
    counts = {"predicted": 0, "existing": 0}
    written: list[dict] = []  # kept only for --to, which reads every photo's outputs back at the end
    progress = PhotoProgress(first=lambda: plain(f"backend: {predictor.backend_note}"))
    on_stop(lambda: _predicted(progress, out))
    with progress:
        if engine == "ray":
            from masksmith.infer.distributed import predict_with_ray

            stream = predict_with_ray(model, images, out, address=address, workers=workers, backend=backend,
                                      opacity=opacity, save=save, overwrite=overwrite, lenient=lenient,
                                      skipped=skipped, progress=progress, summary=summary,
                                      options={"tta": tta, "score_threshold": score})
        else:
            stream = predict_batch(predictor, images, out, opacity=opacity, overwrite=overwrite, lenient=lenient,
                                   skipped=skipped, progress=progress, summary=summary, save=save, profile=stages)
        for row in stream:
            counts[row["status"]] += 1
            if to is not None:
                written.append(row)
    files = get_task(predictor.artifact.task).outputs if save is None else f"--save {save}"
    kept = f"; {counts['existing']} already there, kept (--overwrite redoes them)" if counts["existing"] else ""
    plain(f"predicted {counts['predicted']} image(s) into {out} ({files}){kept}")
    if summary is not None:
        plain(f"summary: {summary}")
    if stages is not None:
        stages.stop()
        for line in stages.lines():
            plain(line)
    if to is not None:
        _write_preannotations(to, written, predictor, out, images, overwrite)
    print_problems(skipped.items)


def _predicted(progress: PhotoProgress, out: Path) -> str:
    """What an interrupted `predict` finished: each photo's outputs are complete or absent."""
    done = f"predicted {progress.done} of {progress.total} photo(s) into {out}" if progress.total is not None \
        else "no photo was predicted yet"
    return f"{done}; run the same command again to predict the rest (photos already done are skipped)."


def _write_preannotations(to: str, written: list[dict], predictor, out: Path, images: list[Path],
                          overwrite: bool) -> None:
    """predict --to FMT: the masks predict just wrote, as polygons in the labelling tool's format."""
    from masksmith.apps.annotate import predictions_from_outputs, write_preannotations
    from masksmith.core.outputs import OutputFolder

    folder = OutputFolder(out / to, inputs=images, overwrite=overwrite)
    write_preannotations(predictions_from_outputs(written), predictor.classes, to, folder)
    console.print(f"pre-annotations for {to} in {out / to} (open them in your labelling tool and correct)")


@commands.command("extract")
def extract(
    model: ModelArg, images: ImagesArg,
    out: Annotated[Path, typer.Option(help="Folder for the cut-outs and index.csv / index.json.")] = Path("cutouts"),
    classes: Annotated[str | None, typer.Option(help="Comma-separated classes to cut out (default: all).")] = None,
    background: Annotated[str, typer.Option(help="white, black or transparent.")] = "white",
    pad: Annotated[int, typer.Option(min=0, max=10_000, help="Pixels of margin around each object's box.")] = 0,
    min_pixels: MinPixelsOpt = 16, score: ScoreOpt = 0.5, overwrite: OverwriteOpt = False,
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
    jobs = plan_outputs(images, folder)
    tally = Tally(out, len(jobs))
    for job, image in readable(jobs, False, Skipped()):
        objects = objects_of_classes(predict_photo(predictor, image, min_pixels).objects, wanted, min_pixels)
        rows += write_cutouts(job.path, image, objects, folder, background, pad, stem=job.stem)
        tally.add()
    csv_path, _ = write_index(rows, folder)
    console.print(f"cut out {len(rows)} object(s) into {out}; index: {csv_path}")


@commands.command("export")
def export(
    model: ModelArg,
    to: Annotated[str, typer.Option("--to", help="Export format: onnx.")] = "onnx",
    out: Annotated[Path | None, typer.Option(help="Output file (default: the model's name with .onnx).")] = None,
    int8: Annotated[bool, typer.Option("--int8", help="Also write an INT8 copy (<name>.int8.onnx): static "
                                       "quantisation recipes are tried and the fastest that keeps 95 % of the "
                                       "mask pixels and pays (>= 1.15x float) is written, or it says why none.")
                    ] = False,
    calibrate: Annotated[Path | None, typer.Option(help="Photos to calibrate INT8 on: a folder of training "
                                                   "images or the training data set.")] = None,
    calibration_images: Annotated[int, typer.Option(min=1, max=10_000, help="Photos used for INT8 calibration.")
                                  ] = 128,
    overwrite: OverwriteOpt = False,
) -> None:
    """Export a semantic model to ONNX (classes, colours and preprocessing kept in its metadata; dynamic height
    and width); parity against PyTorch is checked and printed before success is reported."""
    from masksmith.core.errors import MasksmithError
    from masksmith.infer.export import describe_speed, export_onnx

    on_stop("nothing was written (an ONNX file is written only after its parity check); run the same command "
            "again.")
    if to.lower() != "onnx":
        raise MasksmithError(f"unknown export format {to!r}.", fix="use --to onnx.")
    report = export_onnx(model, out, int8=int8, calibrate=calibrate, calibration_images=calibration_images,
                         overwrite=overwrite)
    plain(f"parity ONNX float vs PyTorch: {report.parity.describe()}")
    if report.speed:
        plain(f"speed: {describe_speed(report.speed)}")
    failed = report.failure(model)
    if failed is not None:
        raise failed
    plain(f"wrote {report.path}")
    for note in report.notes:
        plain(f"note: {note}")
    if int8:
        for trial in report.int8_trials:
            plain(f"INT8 tried ({report.calibrated_on} calibration photo(s)): {trial.describe()}")
        if report.int8_ok:
            plain(f"wrote {report.int8_path} ({report.int8_recipe.name})")
        else:
            plain(report.int8_refusal)
