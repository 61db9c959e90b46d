"""`masksmith predict` outputs: per image a class-index mask PNG (palette: opens in colour), an overlay and
an opaque colour mask, named after the input file.

Outputs go through an `OutputFolder`: never into (or around) the photos' own folder, never over a file
masksmith did not write, each file atomically; two photos with the same stem get distinct names.

Batches of thousands of photos stream through `predict_batch` (semantic and instance models alike):
- photos are read (and decoded) in a background thread, a few ahead in a bounded queue, while the network runs;
- nothing accumulates: each photo's outputs are written and its summary row handed on before the next;
- a photo whose outputs are all there from an earlier run of ours is skipped (`overwrite=True` redoes it), so a
  re-run after Ctrl-C picks up where it stopped; every file is written atomically, so an interrupted run leaves
  whole files or none;
- `progress(done, total)` is called after each predicted photo (the CLI draws a bar from it);
- the summary CSV (pixels per class, or objects per class) is written while the photos stream, into a temporary
  file that becomes the summary only when the run completes; skipped photos' rows come from their outputs."""

from __future__ import annotations

import csv
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from masksmith.core.errors import MasksmithError
from masksmith.core.outputs import OutputFolder, as_output_folder
from masksmith.core.paths import unique_stems
from masksmith.data.formats._common import is_image_file
from masksmith.draw import colorize, overlay
from masksmith.infer.predictor import Predictor


def expand_inputs(paths: Iterable[str | Path], skip: OutputFolder | None = None) -> list[Path]:
    """Image files named directly or found (non-recursively) in named folders, without the files masksmith
    wrote into `skip` (so a run never reads its own outputs back as photos)."""
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
    index_mask_image(mask, colors).save(buf, "PNG")
    return buf.getvalue()


def save_index_mask(mask: np.ndarray, colors: list[tuple[int, int, int]], folder: OutputFolder, name: str) -> Path:
    """A palette PNG: pixel values are class indices, and viewers show the class colours."""
    return folder.save_image(name, index_mask_image(mask, colors))


class SemanticWriter:
    """What a semantic model writes per photo, and its summary row: pixels per class."""

    def __init__(self, predictor: Predictor, opacity: float) -> None:
        self.predictor, self.opacity = predictor, opacity
        self.colors = predictor.classes.palette()
        self.names = predictor.classes.labels()
        self.columns = ["image", "width", "height", *(f"pixels_{n}" for n in self.names)]

    def names_for(self, stem: str) -> dict[str, str]:
        return {"mask": f"{stem}_mask.png", "overlay": f"{stem}_overlay.png", "color": f"{stem}_color.png"}

    def predict(self, image: np.ndarray) -> np.ndarray:
        return self.predictor.predict(image)

    def write(self, folder: OutputFolder, job: PhotoJob, image: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
        names = self.names_for(job.stem)
        files = {
            "mask": save_index_mask(mask, self.colors, folder, names["mask"]),
            "overlay": folder.save_image(names["overlay"], overlay(image, mask, self.colors, self.opacity)),
            "color": folder.save_image(names["color"], colorize(mask, self.colors)),
        }
        return {**{k: str(v) for k, v in files.items()}, **self.counts(mask)}

    def counts(self, mask: np.ndarray) -> dict[str, Any]:
        n = np.bincount(mask.ravel(), minlength=len(self.names))
        return {"width": mask.shape[1], "height": mask.shape[0],
                **{f"pixels_{name}": int(n[i]) for i, name in enumerate(self.names)}}

    def existing(self, folder: OutputFolder, job: PhotoJob) -> dict[str, Any]:
        names = self.names_for(job.stem)
        with Image.open(folder.path(names["mask"])) as im:
            mask = np.asarray(im)
        return {**{k: str(folder.path(v)) for k, v in names.items()}, **self.counts(mask)}


def prefetch(items: Iterable[Any], load: Callable[[Any], Any], depth: int = 4) -> Iterator[tuple[Any, Any]]:
    """(item, load(item)) in order, `load` running in a background thread at most `depth` items ahead. An
    exception from `load` is handed over in place of its result; stopping early stops the thread."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        for item in items:
            try:
                entry = (item, load(item), None)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
                entry = (item, None, exc)
            if not put(entry):
                return
        put(done)

    thread = threading.Thread(target=work, name="masksmith-reader", daemon=True)
    thread.start()
    try:
        while True:
            entry = q.get()
            if entry is done:
                return
            item, value, exc = entry
            if exc is not None:
                yield item, exc
            else:
                yield item, value
    finally:
        stop.set()
        thread.join(timeout=5)


def predict_batch(predictor, inputs: Iterable[str | Path], out: Path | OutputFolder, writer=None, *,
                  opacity: float = 0.5, overwrite: bool = False, lenient: bool = False,
                  skipped: Skipped | None = None, progress: Callable[[int, int], None] | None = None,
                  summary: Path | None = None) -> Iterator[dict[str, Any]]:
    """Predict every photo and write its outputs, streaming: yields one row per photo (``status`` "predicted"
    or "existing", the files, the summary counts). See the module docstring."""
    from masksmith.core.images import read_image

    inputs = list(inputs)
    folder = as_output_folder(out, inputs=inputs, overwrite=overwrite)
    if writer is None:
        from masksmith.tasks import get_task

        writer = get_task(predictor.artifact.task).load("writer")(predictor, opacity)
    skipped = skipped if skipped is not None else Skipped()
    jobs = plan_outputs(inputs, folder)
    finished = set() if overwrite else {
        j.path for j in jobs if all(folder.exists(n) for n in writer.names_for(j.stem).values())}
    total = len(jobs) - len(finished)
    summary_target = None
    if summary is not None:
        summary_target = OutputFolder.for_file(summary, inputs=inputs, overwrite=overwrite)
        summary_target[0].claim(summary_target[1])

    def load(job: PhotoJob) -> Any:
        return ("existing", writer.existing(folder, job)) if job.path in finished else ("photo", read_image(job.path))

    def rows() -> Iterator[dict[str, Any]]:
        done = 0
        if progress is not None:
            progress(0, total)
        for job, loaded in prefetch(jobs, load):
            if isinstance(loaded, BaseException):
                if isinstance(loaded, MasksmithError) and lenient:
                    skipped.items.append(str(loaded))
                    continue
                raise loaded
            kind, value = loaded
            if kind == "existing":
                yield {"image": str(job.path), "status": "existing", **value}
                continue
            row = writer.write(folder, job, value, writer.predict(value))
            done += 1
            if progress is not None:
                progress(done, total)
            yield {"image": str(job.path), "status": "predicted", **row}

    if summary_target is None:
        yield from rows()
        return
    # the summary fills a temporary file while the photos stream and becomes the summary at the end only
    target_folder, name = summary_target
    with target_folder.writing(name) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        table = csv.DictWriter(f, fieldnames=writer.columns, extrasaction="ignore")
        table.writeheader()
        for row in rows():
            table.writerow(row)
            yield row


def predict_to_folder(predictor: Predictor, inputs: Iterable[str | Path], out: Path | OutputFolder,
                      opacity: float = 0.5, *, overwrite: bool = False, lenient: bool = False,
                      skipped: Skipped | None = None) -> list[dict[str, str]]:
    """Predict every input image and write <stem>_mask.png, <stem>_overlay.png and <stem>_color.png; the rows
    of `predict_batch` as a list (for a few photos; stream `predict_batch` for many)."""
    return list(predict_batch(predictor, inputs, out, opacity=opacity, overwrite=overwrite, lenient=lenient,
                              skipped=skipped))
