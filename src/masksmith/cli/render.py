"""What the command line prints: the console, library lines with the settings they name spelled as this command
line's flags, problem and note lists, tables, an evaluation, and the progress bar of photo batches. Printing
only: every figure printed here comes from the library."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(soft_wrap=True)  # long paths stay on one line, so they can be copied

# how the CLI spells the settings library messages name in backticks (`size`, `ignore_value=11`)
FLAG_NAMES = {"time_budget": "--time", "val_fraction": "--val", "strict_data": "--lenient", "lenient": "--lenient",
              "data_options": "--option", "options": "--option", "arch": "--model", "encoder_weights": "--weights",
              "runs_dir": "--runs"}


def spell_flag(name: str, value: str | None) -> str:
    """A setting as the command line writes it: a reading option as -o NAME=VALUE, `resume=DIR` as the
    command that resumes, any other as its --flag (and value)."""
    if name == "resume" and value:
        return f"masksmith train --resume {value}"
    if value is not None and name in reading_option_names():
        return f"-o {shlex.quote(f'{name}={value}')}"
    flag = FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
    return flag if value is None else f"{flag} {shlex.quote(value)}"


def reading_option_names() -> set[str]:
    from masksmith.data.formats import all_formats

    return {o.name for module in all_formats() for o in getattr(module, "OPTIONS", ())}


def cli_message(exc: BaseException | str) -> str:
    """A library message with its settings spelled as flags."""
    from masksmith.core.errors import spell_settings

    return spell_settings(str(exc), spell_flag)


def say(text: str) -> None:
    """A line from the library, with the settings it names spelled as this command line's flags."""
    console.print(cli_message(text), markup=False, highlight=False)


def plain(text: str) -> None:
    """A line holding paths or names from data: printed as it is (no markup, no highlighting)."""
    console.print(text, markup=False, highlight=False)


# ------------------------------------------------------------------------------------------ problems and notes
def problem_header(problems: Any) -> str:
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


def print_problems(problems: Any) -> None:
    if problems:
        console.print(f"[yellow]{problem_header(problems)}:[/yellow]")
        for p in problems[:50]:
            say(f"  - {p}")
        if len(problems) > 50:
            console.print(f"  ... and {len(problems) - 50} more")


def print_notes(notes: Any) -> None:
    for note in notes:
        say(f"{'skipped' if note.skipped else 'note'}: {note}")


# ------------------------------------------------------------------------------------------------- reports
def print_dataset_stats(path: Any, ds: Any, stats: Any, fingerprint: Any, pixels: bool) -> None:
    """What `dataset inspect` says: format and counts, splits, folders, sizes, the class table with pixel
    shares, mask values, hints, unannotated images, the fingerprint, notes and problems."""
    console.print(f"[bold]{path}[/bold]: format [cyan]{ds.format}[/cyan], {stats.images} images, "
                  f"{len(stats.classes)} classes, {stats.instances} instances", highlight=False)
    if stats.unlabelled:
        console.print(f"photos: {stats.images} labelled, {stats.unlabelled} unlabelled (in unlabelled/)")
    if stats.splits:
        console.print("splits: " + ", ".join(f"{k} {n}" for k, n in sorted(stats.splits.items())))
    for images, masks in stats.folders:
        plain(f"folders: images {images}/ with masks {masks}/")
    sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sorted(stats.sizes.items(), key=lambda kv: -kv[1])[:5])
    console.print(f"image sizes: {sizes or 'unknown'}{' ...' if len(stats.sizes) > 5 else ''}")
    counted = pixels and stats.counted_pixels > 0
    console.print(class_table(stats, counted))
    if counted:
        fg = 1.0 - stats.background.pixel_share
        console.print(f"labelled pixels: {100 * fg:.1f} % objects / {100 * (1 - fg):.1f} % background "
                      f"(over {stats.pixel_images} of {stats.images} images)")
    elif pixels:
        console.print("no pixels counted: no image size is known (the images are missing and the annotations "
                      "do not state their sizes)")
    if stats.mask_values:
        plain("mask values: " + ", ".join(f"{v} {m} {100 * sh:.2f} %" for v, m, sh in stats.mask_values))
    for hint in stats.hints:
        say(f"hint: {hint}")
    if stats.unannotated:
        plain(f"{len(stats.unannotated)} image(s) without annotations: "
              f"{', '.join(stats.unannotated[:10])}{' ...' if len(stats.unannotated) > 10 else ''}")
    if fingerprint is not None:
        plain("\n".join(fingerprint.lines()))
    print_notes(stats.notes)
    print_problems(stats.problems)
    if not stats.problems and not stats.skipped_notes:
        console.print("no problems found")


def class_table(stats: Any, counted: bool) -> Table:
    """Classes with their instances, images and (when counted) pixel shares, background first."""
    table = Table("class", "instances", "images", "pixel share")
    rows = [stats.background, *stats.classes] if counted else stats.classes
    for c in rows:
        share = f"{100 * c.pixel_share:.2f} %" if counted else "-"
        background = c is stats.background
        table.add_row(c.name, "-" if background else str(c.instances), "-" if background else str(c.images), share)
    return table


def print_evaluation(evaluation: Any) -> None:
    """Which images were scored, the per-class table, the figures (the headline first) and the files."""
    from masksmith.evaluate.result import format_value

    say(evaluation.samples_used)
    table = Table("class", *(c.name for c in evaluation.columns))
    for row in evaluation.per_class:
        table.add_row(row.name, *(format_value(v, c.kind) for v, c in zip(row.values, evaluation.columns,
                                                                          strict=True)))
    console.print(table)
    say(", ".join(f"{f.name} {f.text()}" for f in evaluation.figures))
    for key, path in evaluation.files.items():
        say(f"{key}: {path}")


def print_run_folder(run_dir: Any) -> None:
    """Where a training put everything, and the next commands."""
    from masksmith.core import runfolder

    model = run_dir / runfolder.MODEL
    console.print(f"run folder: {run_dir}")
    console.print(f"  model:    {model}")
    console.print(f"  curves:   {run_dir / runfolder.CURVES}   metrics: {run_dir / runfolder.METRICS}")
    console.print(f"  previews: {run_dir / runfolder.PREVIEWS}   checkpoints: {run_dir / 'checkpoints'}")
    validation = run_dir / runfolder.EVALUATION / runfolder.VALIDATION
    if validation.is_dir():
        console.print(f"  validation: {validation} (scores, confusion.png, worst.png)")
    console.print(f"  report:   {run_dir / runfolder.REPORT} (one page to open or send)")
    console.print(f"next: masksmith evaluate {model} DATA; masksmith predict {model} IMAGES...")


def print_colors(report: list[dict[str, Any]]) -> None:
    """`colors`: a table of dominant colours per photo."""
    for entry in report:
        what = ", ".join(entry["classes"]) or "the mask"
        if not entry["colors"]:
            plain(f"{entry['image']}: none of {what} found")
            continue
        table = Table("colour", "name", "share", title=f"{entry['image']} ({what}, {entry['pixels']} pixels)")
        for c in entry["colors"]:
            table.add_row(f"[on {c['hex']}]      [/] {c['hex']}", c["name"], f"{100 * c['share']:.1f} %")
        console.print(table)


# ------------------------------------------------------------------------------------------------- progress
class PhotoProgress:
    """A progress bar for photo batches: done / total, photos per second and time left (stderr, drawn only on
    a terminal; the rate counts predicted photos, not skipped ones). `done` and `total` stay readable, so an
    interruption can say how far it got."""

    def __init__(self, verb: str = "predicting", first: Callable[[], None] | None = None) -> None:
        self.verb = verb
        self.done = 0
        self.total: int | None = None
        self.first = first  # said once, at the first call (when the work's outputs were accepted)

    def __enter__(self) -> PhotoProgress:
        self.bar: Any = None  # drawn at the first photo: an error before it prints alone, on its line
        self.task: Any = None
        return self

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self.first is not None:
            first, self.first = self.first, None
            first()
        if self.bar is None:
            stderr = Console(stderr=True)
            if not stderr.is_terminal:  # a log file gets the summary line, not a blank line from the bar
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn(self.verb), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TextColumn("left"), TimeRemainingColumn(),
                                console=stderr, transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task(self.verb, total=total, rate="")
        speed = self.bar.tasks[0].speed
        self.bar.update(self.task, completed=done, rate=f"{speed:.2f} images/s" if speed else "")

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
