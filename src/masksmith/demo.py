"""`masksmith demo`: the whole path on the built-in sample set, printing where everything went.

Build the sample data set -> inspect it -> write its masks and a preview -> train a small U-Net for a couple of
minutes -> evaluate it on cars it never saw -> predict masks and overlays for them -> one HTML report -> recolour
one of the predicted cars.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console


def run_demo(out: Path, console: Console, train_seconds: float = 120.0) -> Path:
    """Run the whole path into `out`; returns the run folder."""
    from masksmith import service
    from masksmith.data import load_dataset
    from masksmith.data.convert import convert
    from masksmith.data.preview import write_preview
    from masksmith.data.stats import dataset_stats
    from masksmith.data.synthetic import ensure_sample_dataset
    from masksmith.infer import open_predictor
    from masksmith.infer.batch import predict_to_folder

    out.mkdir(parents=True, exist_ok=True)
    source = ensure_sample_dataset()
    unseen = ensure_sample_dataset(n_images=16, seed=101)
    console.print(f"[bold]1. sample data set[/bold]: {source} (and 16 unseen cars in {unseen})")
    ds = load_dataset(source)
    stats = dataset_stats(ds)
    shares = ", ".join(f"{c.name} {100 * c.pixel_share:.1f} %" for c in [stats.background, *stats.classes])
    console.print(f"[bold]2. inspect[/bold]: format {ds.format}, {stats.images} images, {len(stats.classes)} "
                  f"classes, {stats.instances} instances; pixel share: {shares}")
    masks = convert(ds, "masks", out / "masks", kind="color")
    console.print(f"[bold]3. masks[/bold]: colour-coded mask PNGs in {masks}")
    preview = write_preview(ds, out / "preview.png", count=6)
    console.print(f"[bold]4. preview[/bold]: {preview}")
    console.print(f"[bold]5. train[/bold]: U-Net on EfficientNet-Lite0 (offline ImageNet weights), "
                  f"{train_seconds:.0f} s on this machine ...")
    config = service.training_config(source, size=128, time_budget=train_seconds, batch_size=8, plan=False,
                                     runs_dir=str(out / "runs"), name="demo", val_fraction=0.15)
    run = service.train(config)
    console.print(f"   run folder: {run} (model.masksmith, curves.png, previews/, checkpoints/, "
                  "evaluation/validation/)")
    report = service.evaluate(run / "model.masksmith", unseen, label="unseen", worst=4)
    per_class = ", ".join(f"{n} {v:.2f}" for n, v in report.class_values("IoU").items() if v is not None)
    console.print(f"[bold]6. evaluate[/bold] on unseen cars: mIoU {report.headline.text()} "
                  f"(IoU: {per_class}); pixel accuracy {report.figure('pixel accuracy').text()}; "
                  f"scores and galleries in {Path(report.files['metrics']).parent}")
    predictor = open_predictor(run / "model.masksmith")
    written = predict_to_folder(predictor, [unseen / "images"], out / "predictions", opacity=0.5)
    console.print(f"[bold]7. predict[/bold]: {len(written)} masks and overlays in {out / 'predictions'}")
    console.print(f"[bold]8. report[/bold]: {report.files['report']} (one page to open offline or send)")
    recolored = recolor_one(written, out / "recolor", predictor.classes)
    console.print(f"[bold]9. recolor[/bold]: a predicted car's body in red: {recolored} (before | after); try "
                  f"masksmith recolor {run / 'model.masksmith'} PHOTO --classes body --color navy")
    return run


def recolor_one(written: list[dict[str, str]], out: Path, classes, color: str = "#c0392b") -> Path:
    """The predicted car with the most body pixels, resprayed (the body's paint, grown over the rest of the
    predicted car); returns its before | after picture."""
    import numpy as np
    from PIL import Image

    from masksmith.apps.recolor import before_after, recolor
    from masksmith.apps.respray import respray_masks
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder

    predicted = [np.asarray(Image.open(row["mask"])) for row in written]
    best = int(np.argmax([(m == classes.value("body")).sum() for m in predicted]))
    photo = Path(written[best]["image"])
    image = read_image(photo)
    masks = respray_masks(predicted[best], classes, ["body"])
    result = recolor(image, masks.part, color, car_mask=masks.car, keep=masks.keep)
    folder = OutputFolder(out, inputs=[photo.parent])
    folder.save_image(f"{photo.stem}_recolored.png", result)
    picture = before_after(image, result, title=f"{photo.name}: body recoloured to {color}", cell=320)
    return folder.save_image(f"{photo.stem}_before_after.png", picture.pixels, **picture.save_options())
