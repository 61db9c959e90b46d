"""`masksmith dataset ...`: read, check, convert, split, tile, stitch, preview and make data sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from masksmith.cli.options import DataArg, FormatOpt, LenientOpt, OptionOpt, OverwriteOpt, SeedOpt, load
from masksmith.cli.render import console, plain, print_dataset_stats, print_problems
from masksmith.cli.stops import NOTHING_WRITTEN, on_stop, partial
from masksmith.core.errors import MasksmithError

MAX_IMAGES = 1_000_000.0
commands = typer.Typer(help="Read, check, convert, split, tile and preview data sets.")


@commands.command("inspect")
def dataset_inspect(
    path: DataArg, format: FormatOpt = None, lenient: LenientOpt = False, option: OptionOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    pixels: Annotated[bool, typer.Option(help="Count pixel shares (rasterises every annotation).")] = True,
) -> None:
    """Report format, images, classes, instances and pixel share per class, splits, unannotated images, what was
    skipped and problems. Reads the annotation file alone: missing images are one problem, not a stop."""
    from masksmith.data.stats import dataset_stats

    on_stop(NOTHING_WRITTEN)
    ds = load(path, format, lenient, option, need_pixels=False)
    stats = dataset_stats(ds, pixels=pixels)
    found = _fingerprint(ds) if pixels else None
    if as_json:
        print(json.dumps({**stats.to_dict(), "fingerprint": found.to_dict() if found else None}, indent=2))
        return
    print_dataset_stats(path, ds, stats, found, pixels)


def _fingerprint(ds):
    """The data set's fingerprint (what `train` plans from), or None when its masks cannot be read here."""
    from masksmith.data.fingerprint import dataset_fingerprint

    try:
        return dataset_fingerprint(ds)
    except MasksmithError as exc:
        plain(f"no fingerprint: {exc}")
        return None


@commands.command("formats")
def dataset_formats() -> None:
    """The annotation formats masksmith reads (and writes), with each one's reading options (-o KEY=VALUE)."""
    from masksmith.data.formats import all_formats

    on_stop(NOTHING_WRITTEN)
    for module in all_formats():
        writes = " (read and write)" if hasattr(module, "write") else " (read)"
        console.print(f"[bold]{module.NAME}[/bold]: {module.DESCRIPTION}{writes}")
        options = getattr(module, "OPTIONS", ())
        if not options:
            console.print("  no options")
        for o in options:
            plain(f"  -o {o.name}=...  {o.meaning} (default: {o.default!r})")


@commands.command("convert")
def dataset_convert(
    path: DataArg,
    out: Annotated[Path, typer.Argument(help="Output folder (must not be the source).")],
    to: Annotated[str, typer.Option("--to", help="Target format: coco, voc, masks, via, labelme or cvat.")],
    format: FormatOpt = None, lenient: LenientOpt = False, option: OptionOpt = None,
    write_option: Annotated[list[str] | None, typer.Option(
        "--write-option", "-w", help="Writer option KEY=VALUE, e.g. kind=color for masks.")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Convert a data set to COCO JSON, Pascal VOC folders, mask images, a VIA 2 project, LabelMe JSON or CVAT
    1.1 XML (masks become polygons for the last three)."""
    from masksmith.cli.options import parse_options
    from masksmith.data.convert import convert

    on_stop(partial(out))
    ds = load(path, format, lenient, option)
    convert(ds, to, out, overwrite=overwrite, **parse_options(write_option))
    console.print(f"wrote {len(ds.samples)} images as {to} to {out}")
    print_problems(ds.problems)


@commands.command("add-unlabelled")
def dataset_add_unlabelled(
    path: Annotated[Path, typer.Argument(help="A folder of masks to label (images/, masks/, classes.txt; make one "
                                         "with `dataset convert DATA OUT --to masks`).")],
    photos: Annotated[list[Path], typer.Argument(help="Photo files or folders of photos.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the names given and the counts as JSON.")] = False,
) -> None:
    """Add photos without annotations to a data set (into its unlabelled/ folder, under names no photo of it has
    yet), to be ranked with `rank` and labelled in the web app's editor; `inspect` counts them."""
    from masksmith import service
    from masksmith.data import labelling

    on_stop("some photos may have been added; `dataset inspect` counts them.")
    added = service.add_unlabelled(path, list(photos))
    found = labelling.counts(path)
    if as_json:
        print(json.dumps({"added": added, **found}, indent=2))
        return
    console.print(f"added {len(added)} photo(s) to {path / labelling.UNLABELLED}: {found['labelled']} labelled, "
                  f"{found['unlabelled']} unlabelled")


@commands.command("split")
def dataset_split(
    path: DataArg,
    out: Annotated[Path, typer.Argument(help="Folder for train.txt / val.txt / test.txt.")],
    val: Annotated[float, typer.Option(min=0.0, max=MAX_IMAGES, help="Validation: a fraction (0.2) or a number "
                                       "of images (5).")] = 0.2,
    test: Annotated[float, typer.Option(min=0.0, max=MAX_IMAGES, help="Testing: a fraction (0.1) or a number "
                                        "of images (5).")] = 0.0,
    seed: SeedOpt = 0,
    to: Annotated[str | None, typer.Option("--to", help="Also write each part as a data set.")] = None,
    format: FormatOpt = None, lenient: LenientOpt = False, option: OptionOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Split at random (seeded) into train/val/test lists, optionally writing each part as a data set."""
    from masksmith import service
    from masksmith.core.outputs import OutputFolder
    from masksmith.data.convert import convert
    from masksmith.data.split import write_split_lists

    on_stop(partial(out))
    ds = load(path, format, lenient, option)
    parts = service.split(ds, val, test, seed)
    folder = OutputFolder(out, inputs=[ds.root], overwrite=overwrite)
    for file in write_split_lists(parts, folder):
        console.print(f"{file}: {len(file.read_text().splitlines())} images")
    if to:
        for name, part in parts.items():
            convert(part, to, out / name, overwrite=overwrite)
            console.print(f"wrote {name} as {to} to {out / name}")


@commands.command("tile")
def dataset_tile(
    path: DataArg,
    out: Annotated[Path, typer.Argument(help="Output folder for the tiles data set and tiles.json.")],
    size: Annotated[int, typer.Option(min=8, max=8192, help="Tile side in pixels.")] = 256,
    remainder: Annotated[str, typer.Option(help="pad | shift | drop: what to do with the edge remainder.")] = "pad",
    to: Annotated[str, typer.Option("--to", help="Format of the tiles data set.")] = "masks",
    format: FormatOpt = None, lenient: LenientOpt = False, option: OptionOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Cut images and masks into square patches; tiles.json lets `dataset stitch` put predictions back."""
    from masksmith.core.outputs import OutputFolder
    from masksmith.data.convert import convert
    from masksmith.data.tiles import tile_dataset, write_manifest

    on_stop(partial(out))
    ds = load(path, format, lenient, option)
    folder = OutputFolder(out, inputs=[ds.root], overwrite=overwrite)  # checked before the tiles are cut
    tiles, manifest = tile_dataset(ds, size, remainder)
    convert(tiles, to, folder)
    write_manifest(manifest, folder)
    console.print(f"cut {len(ds.samples)} images into {len(tiles.samples)} tiles of {size}x{size} "
                  f"({remainder}) in {out}; stitch predictions with: masksmith dataset stitch {out / 'tiles.json'}")


@commands.command("stitch")
def dataset_stitch(
    manifest: Annotated[Path, typer.Argument(help="tiles.json written by `dataset tile`.")],
    predictions: Annotated[Path, typer.Argument(help="Folder of per-tile mask PNGs named like the tiles.")],
    out: Annotated[Path, typer.Argument(help="Folder for the full-size masks.")],
    overwrite: OverwriteOpt = False,
) -> None:
    """Put per-tile masks back together into full-size masks."""
    from masksmith.core.outputs import OutputFolder
    from masksmith.data.tiles import stitch_folder

    on_stop(partial(out))
    written = stitch_folder(manifest, predictions, OutputFolder(out, inputs=[predictions], overwrite=overwrite))
    console.print(f"stitched {len(written)} full-size masks into {out}")


@commands.command("preview")
def dataset_preview(
    path: DataArg,
    out: Annotated[Path, typer.Option("--out", help="PNG to write.")] = Path("preview.png"),
    count: Annotated[int, typer.Option(min=1, max=1000, help="Number of images.")] = 8,
    format: FormatOpt = None, lenient: LenientOpt = False, option: OptionOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """A PNG grid: each image, its mask over it, and the mask alone, in the class colours."""
    from masksmith.data.preview import check_preview_name, write_preview

    on_stop(NOTHING_WRITTEN)  # the picture is written whole at the end
    check_preview_name(out)  # before the data set is read
    ds = load(path, format, lenient, option)
    write_preview(ds, out, count, overwrite=overwrite)
    console.print(f"wrote {out}")


@commands.command("sample")
def dataset_sample(
    out: Annotated[Path, typer.Argument(help="Folder to write the sample data set to.")],
    images: Annotated[int, typer.Option(min=1, max=100_000, help="Number of images.")] = 60,
    seed: SeedOpt = 0,
    kind: Annotated[str, typer.Option(help="cars (small side views), thin (wires and grids 1-3 px wide on "
                                      "~600x400 photos) or large (small objects on ~2000x1500 photos).")] = "cars",
) -> None:
    """Write a built-in sample data set (procedurally drawn, COCO format)."""
    from masksmith.data.synthetic import make_sample_dataset

    on_stop(partial(out))
    make_sample_dataset(out, n_images=images, seed=seed, kind=kind)
    console.print(f"wrote {images} sample images ({kind}) with COCO annotations to {out}")
