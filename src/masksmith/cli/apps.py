"""The apps: `recolor`, `paste`, `cluster`, `colors` and `rank`. Each takes its masks from a semantic model, an
instance model or a mask file the user has (`--mask`); the work is `masksmith.apps.*`, shared with the web app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from masksmith.cli.options import (
    AppInputsArg,
    ClassesOpt,
    GroupOpt,
    MaskOpt,
    MinPixelsOpt,
    ModelArg,
    OverwriteOpt,
    ScoreOpt,
    SeedOpt,
)
from masksmith.cli.render import console, plain, print_colors
from masksmith.cli.stops import NOTHING_WRITTEN, Tally, on_stop

commands = typer.Typer()

OutOpt = Annotated[Path, typer.Option(help="Output folder (not the photos' folder).")]
ColorOpt = Annotated[list[str] | None, typer.Option(
    "--color", help="Target colour: a CSS name (red, navy) or #rrggbb; repeat for one output each.")]
HueOpt = Annotated[float | None, typer.Option("--hue-shift", min=-360.0, max=360.0,
                                              help="Turn the hue by DEG degrees instead.")]
FeatherOpt = Annotated[int, typer.Option(min=0, max=1000, help="Pixels of soft edge outside the paint.")]
LightnessOpt = Annotated[float | None, typer.Option(
    min=0.0, max=1.0, help="How far the paint's mid-tone moves to the colour's luminance, 0..1 (default: all the "
                           "way: the colour asked for is the colour you get; 0 keeps the photo's).")]
GrowOpt = Annotated[bool, typer.Option("--grow/--no-grow", help="Paint the same paint on the car's unlabelled "
                                       "panels (fenders, roof, pillars) too, inside the predicted car.")]
PaintOnlyOpt = Annotated[bool, typer.Option("--paint-only/--whole-mask", help="Change only the paint inside the "
                                            "parts (glass, lights, plates, trim stay); --whole-mask recolours "
                                            "every pixel of the mask.")]


@commands.command("recolor")
def recolor_cmd(
    inputs: AppInputsArg, color: ColorOpt = None, hue_shift: HueOpt = None,
    classes: ClassesOpt = None, group: GroupOpt = None, mask: MaskOpt = None,
    feather: FeatherOpt = 2, lightness: LightnessOpt = None, grow: GrowOpt = True, paint_only: PaintOnlyOpt = True,
    out: OutOpt = Path("recolored"), score: ScoreOpt = 0.5, overwrite: OverwriteOpt = False,
) -> None:
    """Respray a car (or any painted part): only the paint of the chosen parts changes (glass, lights, plates
    and trim stay), grown over the car's unlabelled panels, its mid-tones reaching the colour asked for while
    shading, reflections and highlights stay: <stem>_<colour>.png at the photo's size and
    <stem>_<colour>_before_after.png. Pixels that are not paint stay byte-identical."""
    from masksmith.apps.recolor import recolor_targets, write_recolors
    from masksmith.apps.source import MaskSource
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder

    targets = recolor_targets(color, hue_shift)  # every colour checked before any work
    source = MaskSource.from_arguments(inputs, mask, classes, group, score)
    folder = OutputFolder(out, inputs=source.photos, overwrite=overwrite)
    written = 0
    jobs = source.jobs(folder)
    tally = Tally(out, len(jobs))
    for job in jobs:
        image = read_image(job.path)
        masks = source.respray_masks(image)
        if not masks.part.any():
            plain(f"{job.path}: none of {source.describe()} found; nothing recoloured")
        for file in write_recolors(image, masks, targets, folder, job.stem, job.path.name, hue_shift, feather,
                                   lightness, grow, paint_only):
            plain(f"wrote {file} (and {file.stem}_before_after.png)")
            written += 1
        tally.add()
    console.print(f"recoloured {written} picture(s) into {out}")


@commands.command("paste")
def paste_cmd(
    inputs: AppInputsArg, classes: ClassesOpt = None, group: GroupOpt = None, mask: MaskOpt = None,
    sprite: Annotated[Path | None, typer.Option(help="PNG with alpha to paste (default: the built-in rim).")
                      ] = None,
    fit: Annotated[str, typer.Option(help="ellipse (the wheel's fitted ellipse: perspective) or box.")] = "ellipse",
    rim_scale: Annotated[float | None, typer.Option(
        min=0.1, max=1.0, help="The rim's share of the wheel's diameter (default: find the photo's rim and cover "
                               "it; 0.68 where none is found).")] = None,
    shade: Annotated[float, typer.Option(min=0.0, max=1.0, help="How much of the photo's light falls on the new "
                                         "rim.")] = 1.0,
    min_match: Annotated[float, typer.Option(min=0.0, max=1.0, help="Wheels whose region matches a whole wheel's "
                                             "ellipse less are mostly hidden and left alone.")] = 0.85,
    plain_paste: Annotated[bool, typer.Option("--plain", help="Paste the sprite over each whole region (for "
                                              "sprites that are not rims).")] = False,
    min_pixels: MinPixelsOpt = 64, out: OutOpt = Path("pasted"), score: ScoreOpt = 0.5,
    overwrite: OverwriteOpt = False,
) -> None:
    """Try new wheels: a rim on each detected wheel (each instance, or each connected region of a semantic
    class), fitted to its ellipse, over the photo's own rim so the tyre stays, lit by the photo's light;
    mostly hidden wheels are left alone with a note: <stem>_pasted.png and a before | after."""
    from masksmith.apps.paste import check_fit, read_sprite, write_pasted
    from masksmith.apps.source import MaskSource
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder

    check_fit(fit)
    picture = read_sprite(sprite)
    source = MaskSource.from_arguments(inputs, mask, classes, group, score)
    folder = OutputFolder(out, inputs=[*source.photos, sprite], overwrite=overwrite)
    jobs = source.jobs(folder)
    tally = Tally(out, len(jobs))
    for job in jobs:
        image = read_image(job.path)
        masks = source.masks(image, split_regions=True, min_pixels=min_pixels)
        file, notes = write_pasted(image, masks, picture, folder, job.stem, job.path.name, plain=plain_paste,
                                   fit=fit, **({} if plain_paste else {"rim_scale": rim_scale, "shade": shade,
                                                                      "min_match": min_match,
                                                                      "min_pixels": min_pixels}))
        plain(f"{job.path}: {len(masks) - len(notes)} of {len(masks)} region(s) -> {file}")
        for note in notes:
            plain(f"{job.path}: {note}")
        tally.add()


@commands.command("cluster")
def cluster_cmd(
    photos: Annotated[list[Path], typer.Argument(help="Photos or folders of photos.")],
    k: Annotated[int, typer.Option("--k", min=1, max=64, help="Number of colours.")] = 5,
    position_weight: Annotated[float, typer.Option(min=0.0, max=100.0, help="Weight of pixel position (0: colour "
                                                   "only).")] = 0.0,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Random seed (same seed, same clusters).")] = 0,
    out: OutOpt = Path("clusters"), overwrite: OverwriteOpt = False,
) -> None:
    """K-means colour clustering, no training: <stem>_labels.png (cluster index per pixel, drawn in the
    cluster colours), <stem>_clustered.png, <stem>_palette.png (each colour's share) and <stem>_palette.json."""
    from masksmith.apps.cluster import cluster_image, write_clusters
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder
    from masksmith.infer.batch import plan_outputs

    folder = OutputFolder(out, inputs=photos, overwrite=overwrite)
    jobs = plan_outputs(photos, folder)
    tally = Tally(out, len(jobs))
    for job in jobs:
        result = cluster_image(read_image(job.path), k, seed, position_weight)
        palette = write_clusters(result, folder, job.stem, job.path, k, seed)
        plain(f"{job.path}: " + ", ".join(f"{p['hex']} {100 * p['share']:.1f} %" for p in palette))
        tally.add()
    console.print(f"wrote label maps, clustered images and palettes to {out}")


@commands.command("colors")
def colors_cmd(
    inputs: AppInputsArg, classes: ClassesOpt = None, group: GroupOpt = None, mask: MaskOpt = None,
    k: Annotated[int, typer.Option("--k", min=1, max=16, help="Number of colours.")] = 3,
    seed: SeedOpt = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    score: ScoreOpt = 0.5,
) -> None:
    """The dominant colours inside a predicted class ("what colour is this car?"): shares and the nearest
    CSS colour name, as a table or JSON."""
    from masksmith.apps.colors import photo_colors
    from masksmith.apps.source import MaskSource

    on_stop(NOTHING_WRITTEN)
    report = photo_colors(MaskSource.from_arguments(inputs, mask, classes, group, score), k, seed)
    if as_json:
        print(json.dumps(report, indent=1))
    else:
        print_colors(report)


@commands.command("rank")
def rank_cmd(
    model: ModelArg,
    photos: Annotated[list[Path], typer.Argument(help="Unlabelled photos or folders of photos.")],
    out: Annotated[Path, typer.Option(help="CSV file to write (beside the photos is fine).")] = Path("ranking.csv"),
    measure: Annotated[str, typer.Option(help="Semantic models: entropy or margin.")] = "entropy",
    strategy: Annotated[str, typer.Option(help="diverse: each photo the most unsure one unlike those above it, so "
                                          "any top N is a batch worth labelling together; uncertain: most "
                                          "unsure first, nothing else.")] = "diverse",
    overwrite: OverwriteOpt = False,
) -> None:
    """Order unlabelled photos for labelling, so you label the ones that teach the model most first: by default
    each photo is the most unsure one unlike those above it (the most unsure photos alone are often all alike);
    writes rank, image, score (the model's doubt), distinct as CSV."""
    from masksmith.apps.rank import check_measure, check_strategy, rank_images, write_ranking
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder
    from masksmith.infer import open_predictor
    from masksmith.infer.batch import expand_inputs

    on_stop(NOTHING_WRITTEN)  # the ranking is written whole at the end
    check_measure(measure)
    check_strategy(strategy)
    predictor = open_predictor(model)
    folder, name = OutputFolder.for_file(out, inputs=photos, overwrite=overwrite)
    files = expand_inputs(photos, skip=folder)
    rows = rank_images(predictor, ((str(f), read_image(f)) for f in files), measure, strategy=strategy)
    csv_path = write_ranking(rows, folder, name)
    for r in rows[:10]:  # distinct: how unlike the photos above it (1 = as far as a typical pair or more)
        plain(f"  {r.score:.4f}" + (f"  distinct {r.distinct:.2f}" if r.distinct is not None else "") + f"  {r.image}")
    how = "most unsure first, each unlike those above it" if strategy == "diverse" else "most unsure first"
    console.print(f"ranked {len(rows)} photo(s), {how}: {csv_path}")
