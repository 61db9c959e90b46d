"""The options several commands share, as Annotated types, and the parsing of -o KEY=VALUE pairs. Help texts that
list models or tasks read them from the model registry and the task table, never by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from masksmith.core.errors import MasksmithError

FormatOpt = Annotated[str | None, typer.Option("--format", "-f", help="Annotation format; detected when omitted.")]
LenientOpt = Annotated[bool, typer.Option("--lenient", help="Skip bad items and list them instead of stopping.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace files in the output folder that "
                                            "masksmith did not write (its own are always replaced).")]
OptionOpt = Annotated[list[str] | None, typer.Option(
    "--option", "-o", help="Reading option KEY=VALUE, e.g. label_attribute=type, ignore_value=11, masks=mask "
                           "(repeatable; VALUE may be JSON). `masksmith dataset formats` lists each format's.")]
DataArg = Annotated[Path, typer.Argument(help="Annotation file, folder or zip.")]
ModelArg = Annotated[Path, typer.Argument(help="model.masksmith file or run folder.")]
ImagesArg = Annotated[list[Path], typer.Argument(help="Image files or folders.")]
SeedOpt = Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Random seed.")]

# the apps take their masks from a semantic model, an instance model or a mask file the user has (--mask)
AppInputsArg = Annotated[list[Path], typer.Argument(help="MODEL PHOTO... (or, with --mask, PHOTO...).")]
MaskOpt = Annotated[Path | None, typer.Option(
    "--mask", help="A mask file of your own (non-zero or non-transparent pixels are the part) instead of a "
                   "model; then every argument is a photo.")]
ClassesOpt = Annotated[list[str] | None, typer.Option(
    "--classes", "--class", help="Classes to work on (repeatable, or comma-separated); a name from --group "
                                 "stands for its classes.")]
GroupOpt = Annotated[Path | None, typer.Option(
    "--group", help="YAML file of class groups, one line each, e.g. paint: \\[hood, front_door, back_door].")]
ScoreOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Instance models: keep objects scoring at least "
                                         "this.")]
MinPixelsOpt = Annotated[int, typer.Option(min=0, max=10**9, help="Ignore regions smaller than this.")]


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """-o KEY=VALUE pairs as a dict; VALUE is read as JSON when it is JSON (11, true, [1, 2]), else as text."""
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


def load(path: Path, format: str | None, lenient: bool, option: list[str] | None, need_pixels: bool = True):
    """The data set a command was given, read with its -f, --lenient and -o."""
    from masksmith.data import load_dataset

    return load_dataset(path, format, strict=not lenient, need_pixels=need_pixels, **parse_options(option))


# ------------------------------------------------------------------------------- help read from the tables
def model_help() -> str:
    """'Semantic: unet (default), fpn, ... Instance: maskrcnn_lite0 (default), ...', from the task table."""
    from masksmith.tasks import TASKS

    return " ".join(f"{t.name.capitalize()}: "
                    + ", ".join(f"{m} (default)" if m == t.default_model else m for m in t.models) + "."
                    for t in TASKS.values())


def task_help() -> str:
    from masksmith.tasks import TASKS

    return ", ".join(TASKS) + " or auto (the task of --model; semantic without one)."


def size_help() -> str:
    from masksmith.tasks import TASKS

    return "; ".join(f"{t.name.capitalize()}: {t.size_meaning} ({t.default_size})" for t in TASKS.values()) + "."


def batch_help() -> str:
    from masksmith.tasks import TASKS

    return "Images per step (" + ", ".join(f"{t.name} {t.default_batch}" for t in TASKS.values()) + ")."
