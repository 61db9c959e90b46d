"""`masksmith predict` outputs: per image a class-index mask PNG (palette: opens in colour), an overlay (JPEG)
and an opaque colour mask, named after the input file; `save` chooses which of them are written.

Outputs go through an `OutputFolder`: never into (or around) the photos' own folder, never over a file
masksmith did not write, each file atomically; two photos with the same stem get distinct names.

Batches of thousands of photos stream through `predict_batch` (semantic and instance models alike):
- photos are read (and decoded) in a background thread, a few ahead in a bounded queue, while the network runs;
- outputs are drawn and written by a small pool of writer threads (`core.background.WritePool`), a few photos
  behind the network, PNGs at a fast compression level (PNG_COMPRESSION); rows come back in photo order;
- nothing accumulates: each photo's outputs are written and its summary row handed on, and the pool holds a
  bounded number of photos; an interruption waits for the photos already predicted to be written;
- a photo whose outputs are all there from an earlier run of ours is skipped (`overwrite=True` redoes it), so a
  re-run after Ctrl-C picks up where it stopped; every file is written atomically, so an interrupted run leaves
  whole files or none;
- `progress(done, total)` is called after each predicted photo is written (the CLI draws a bar from it);
- `profile` (a `masksmith.infer.profile.Profile`) collects the seconds per stage: read, preprocess, network,
  postprocess, write;
- the summary CSV (pixels per class, or objects per class) is written while the photos stream, into a temporary
  file that becomes the summary only when the run completes; skipped photos' rows come from their outputs."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from masksmith.core.background import WritePool, prefetch
from masksmith.core.errors import MasksmithError
from masksmith.core.outputs import OutputFolder, as_output_folder
from masksmith.core.paths import unique_stems
from masksmith.draw import overlay
from masksmith.draw.overlay import colorize_image
from masksmith.infer.profile import OFF

__all__ = ["prefetch", "predict_batch", "predict_to_folder", "SemanticWriter", "expand_inputs", "plan_outputs"]

# zlib level 1: about 3x faster than Pillow's default (6) on masks, files about 10-30 % larger
PNG_COMPRESSION = 1
# overlays are photos: JPEG at quality 90 without chroma subsampling (1-pixel outlines keep their colour) is 11x
# faster to write than a level-1 PNG of a 12-megapixel overlay and a third of its size (docs/benchmarks.md)
OVERLAY_JPEG = {"quality": 90, "subsampling": 0}
SUFFIXES = {"mask": ".png", "overlay": ".jpg", "color": ".png"}
WRITE_THREADS = 2


def expand_inputs(paths: Iterable[str | Path], skip: OutputFolder | None = None) -> list[Path]:
    """Image files named directly or found (non-recursively) in named folders, without the files masksmith
    wrote into `skip` (so a run never reads its own outputs back as photos)."""
    from masksmith.data.formats._common import is_image_file

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and is_image_file(f))
        elif p.exists():
            files.append(p)
        else:
            raise MasksmithError("does not exist.", path=p, fix="check the path.")
    if skip is not None:
        files = [f for f in files if not skip.is_output(f)]
    if not files:
        raise MasksmithError("no images found in the given paths.", fix="pass image files or folders of images.")
    return files


def chosen_outputs(save: str | Sequence[str] | None, offered: Sequence[str]) -> list[str]:
    """The outputs `save` names (a comma-separated string or a list; None: all `offered`), in offered order."""
    if save is None:
        return list(offered)
    names = [n.strip().lower() for n in (save.split(",") if isinstance(save, str) else save) if n.strip()]
    unknown = [n for n in names if n not in offered]
    if unknown or not names:
        raise MasksmithError(f"`save` names {', '.join(map(repr, unknown)) or 'nothing'}; this model writes "
                             f"{', '.join(offered)}.", fix=f"set `save` to some of: {','.join(offered)}.")
    return [n for n in offered if n in names]


@dataclass
class PhotoJob:
    """One input photo and the stem its outputs are named with."""

    path: Path
    stem: str


def plan_outputs(inputs: Iterable[str | Path], folder: OutputFolder) -> list[PhotoJob]:
    files = expand_inputs(inputs, skip=folder)
    return [PhotoJob(f, s) for f, s in zip(files, unique_stems(files), strict=True)]


@dataclass
class Skipped:
    """Photos that could not be read (with --lenient), each with the reason."""

    items: list[str] = field(default_factory=list)


def readable(jobs: list[PhotoJob], lenient: bool, skipped: Skipped) -> Iterator[tuple[PhotoJob, np.ndarray]]:
    """(job, image) for every job; unreadable photos stop the run, or with `lenient` are listed in `skipped`
    and passed over."""
    from masksmith.core.images import read_image

    for job in jobs:
        try:
            image = read_image(job.path)
        except MasksmithError as exc:
            if not lenient:
                raise
            skipped.items.append(str(exc))
            continue
        yield job, image


def index_mask_image(mask: np.ndarray, colors: list[tuple[int, int, int]]) -> Image.Image:
    """A palette image of a class-index mask: pixel values are class indices, viewers show the class colours."""
    im = Image.fromarray(np.asarray(mask, np.uint8), mode="P")
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(colors)] = np.asarray(colors, np.uint8)
    im.putpalette(palette.ravel().tolist())
    return im


def index_mask_png(mask: np.ndarray, colors: list[tuple[int, int, int]]) -> bytes:
    """`index_mask_image` as PNG bytes (what the web app sends for download)."""
    import io

    buf = io.BytesIO()
    index_mask_image(mask, colors).save(buf, "PNG", compress_level=PNG_COMPRESSION)
    return buf.getvalue()


def save_index_mask(mask: np.ndarray, colors: list[tuple[int, int, int]], folder: OutputFolder, name: str) -> Path:
    """A palette PNG: pixel values are class indices, and viewers show the class colours."""
    return folder.save_image(name, index_mask_image(mask, colors), compress_level=PNG_COMPRESSION)


class SemanticWriter:
    """What a semantic model writes per photo (the `save`d ones of OUTPUTS), and its summary row: pixels per
    class (blank for a photo kept from an earlier run that wrote no mask)."""

    OUTPUTS = ("mask", "overlay", "color")

    def __init__(self, predictor: Any, opacity: float, save: str | Sequence[str] | None = None) -> None:
        self.predictor, self.opacity = predictor, opacity
        self.save = chosen_outputs(save, self.OUTPUTS)
        self.colors = predictor.classes.palette()
        self.names = predictor.classes.labels()
        self.columns = ["image", "width", "height", *(f"pixels_{n}" for n in self.names)]

    def names_for(self, stem: str) -> dict[str, str]:
        return {k: f"{stem}_{k}{SUFFIXES[k]}" for k in self.save}

    def predict(self, image: np.ndarray) -> np.ndarray:
        return self.predictor.predict(image)

    def write(self, folder: OutputFolder, job: PhotoJob, image: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
        names = self.names_for(job.stem)
        files = {}
        if "mask" in names:
            files["mask"] = save_index_mask(mask, self.colors, folder, names["mask"])
        if "overlay" in names:
            files["overlay"] = folder.save_image(names["overlay"], overlay(image, mask, self.colors, self.opacity),
                                                 **OVERLAY_JPEG)
        if "color" in names:  # RGB (what opens as the class colours in numpy too; the mask is the palette PNG)
            files["color"] = folder.save_image(names["color"], colorize_image(mask, self.colors).convert("RGB"),
                                               compress_level=PNG_COMPRESSION)
        return {**{k: str(v) for k, v in files.items()}, **self.counts(mask)}

    def counts(self, mask: np.ndarray) -> dict[str, Any]:
        n = np.bincount(mask.ravel(), minlength=len(self.names))
        return {"width": mask.shape[1], "height": mask.shape[0],
                **{f"pixels_{name}": int(n[i]) for i, name in enumerate(self.names)}}

    def existing(self, folder: OutputFolder, job: PhotoJob) -> dict[str, Any]:
        names = self.names_for(job.stem)
        row = {k: str(folder.path(v)) for k, v in names.items()}
        if "mask" not in names:
            return row
        with Image.open(folder.path(names["mask"])) as im:
            mask = np.asarray(im)
        return {**row, **self.counts(mask)}


def predict_batch(predictor, inputs: Iterable[str | Path], out: Path | OutputFolder, writer=None, *,
                  opacity: float = 0.5, overwrite: bool = False, lenient: bool = False,
                  skipped: Skipped | None = None, progress: Callable[[int, int], None] | None = None,
                  summary: Path | None = None, save: str | Sequence[str] | None = None, profile: Any = None,
                  write_threads: int = WRITE_THREADS) -> Iterator[dict[str, Any]]:
    """Predict every photo and write its outputs (those `save` names; all by default), streaming: yields one
    row per photo (``status`` "predicted" or "existing", the files, the summary counts), in photo order. See
    the module docstring."""
    from masksmith.core.images import read_image

    inputs = list(inputs)
    if writer is None:
        from masksmith.tasks import get_task

        writer = get_task(predictor.artifact.task).load("writer")(predictor, opacity, save=save)
    folder = as_output_folder(out, inputs=inputs, overwrite=overwrite)
    skipped = skipped if skipped is not None else Skipped()
    profile = profile if profile is not None else OFF
    jobs = plan_outputs(inputs, folder)
    finished = set() if overwrite else {
        j.path for j in jobs if all(folder.exists(n) for n in writer.names_for(j.stem).values())}
    total = len(jobs) - len(finished)
    summary_target = claim_summary(summary, inputs, overwrite)

    def load(job: PhotoJob) -> Any:
        if job.path in finished:
            return "existing", writer.existing(folder, job)
        with profile("read"):
            return "photo", read_image(job.path)

    def write(job: PhotoJob, image: np.ndarray, result: Any) -> dict[str, Any]:
        with profile("write"):
            return writer.write(folder, job, image, result)

    def rows() -> Iterator[dict[str, Any]]:
        done = 0
        if progress is not None:
            progress(0, total)
        own_profile = getattr(predictor, "profile", None)
        if own_profile is not None:
            predictor.profile = profile
        try:
            with WritePool(write_threads) as pool:
                def handed(due: list[tuple[Any, Any]]) -> Iterator[dict[str, Any]]:
                    nonlocal done
                    for (status, job), row in due:
                        if status == "predicted":
                            done += 1
                            profile.photos += 1
                            if progress is not None:
                                progress(done, total)
                        yield {"image": str(job.path), "status": status, **row}

                for job, loaded in prefetch(jobs, load):
                    if isinstance(loaded, BaseException):
                        if isinstance(loaded, MasksmithError) and lenient:
                            skipped.items.append(str(loaded))
                            continue
                        raise loaded
                    kind, value = loaded
                    if kind == "existing":
                        yield from handed(pool.submit(("existing", job), lambda v=value: v))
                        continue
                    result = writer.predict(value)
                    yield from handed(pool.submit(("predicted", job), lambda j=job, v=value, r=result: write(j, v, r)))
                yield from handed(list(pool.drain()))
        finally:
            if own_profile is not None:
                predictor.profile = own_profile

    yield from with_summary(rows(), summary_target, writer.columns)


def claim_summary(summary: str | Path | None, inputs: Sequence[Any], overwrite: bool
                  ) -> tuple[OutputFolder, str] | None:
    """(folder, name) of predict's summary CSV, claimed before any photo is predicted (a file masksmith did not
    write is refused then), or None without `summary`."""
    if summary is None:
        return None
    target = OutputFolder.for_file(summary, inputs=inputs, overwrite=overwrite)
    target[0].claim(target[1])
    return target


def with_summary(rows: Iterator[dict[str, Any]], target: tuple[OutputFolder, str] | None,
                 columns: Sequence[str]) -> Iterator[dict[str, Any]]:
    """`rows` passed on, each also written to the summary CSV `target` (`claim_summary`): it fills a temporary
    file while the photos stream and becomes the summary at the end only."""
    if target is None:
        yield from rows
        return
    folder, name = target
    with folder.writing(name) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        table = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        table.writeheader()
        for row in rows:
            table.writerow(row)
            yield row


def predict_to_folder(predictor: Any, inputs: Iterable[str | Path], out: Path | OutputFolder,
                      opacity: float = 0.5, *, overwrite: bool = False, lenient: bool = False,
                      skipped: Skipped | None = None) -> list[dict[str, str]]:
    """Predict every input image and write <stem>_mask.png, <stem>_overlay.jpg and <stem>_color.png; the rows
    of `predict_batch` as a list (for a few photos; stream `predict_batch` for many)."""
    return list(predict_batch(predictor, inputs, out, opacity=opacity, overwrite=overwrite, lenient=lenient,
                              skipped=skipped))
