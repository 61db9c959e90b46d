"""`masksmith predict --engine ray`: the same streaming prediction as `predict_batch`, as a Ray Data pipeline
that spreads over the cores of one machine or the nodes of a cluster (an optional extra:
``pip install masksmith[ray]``).

    photos (a folder, or a list file of paths / object-storage URIs)
      -> read (Ray tasks: bytes from the file system or object storage, decoded)
      -> predict and write (an actor pool: one model per worker, loaded once; the same writer classes as the
         local engine, into the same output folder, each file atomically)
      -> rows streamed back to the driver (progress, summary CSV)

- The driver plans the work exactly as the local engine does (`plan_outputs`: the same output names, the
  same skipping of photos whose outputs are there), so both engines write the same files, and a re-run skips
  finished photos.
- A worker that dies (killed, out of memory, a lost node) is restarted by Ray and its photos are predicted
  again: every output is written atomically under a name fixed by the photo, so a retried photo replaces its
  own files and never adds a second copy; rows reach the driver once per photo (deduplicated by photo).
- No `address`: a local Ray on this machine (`workers` actors); an `address` ("auto", "ray://host:10001" or
  "host:6379") joins a running cluster. docs/deploy.md says what each node needs and where outputs go.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from masksmith.core.errors import MasksmithError
from masksmith.core.outputs import OutputFolder
from masksmith.infer.batch import PhotoJob, Skipped, claim_summary, expand_inputs, with_summary

URI_SCHEMES = ("s3://", "gs://", "gcs://", "hdfs://", "abfs://", "abfss://")


def is_uri(path: str) -> bool:
    return str(path).startswith(URI_SCHEMES)


def read_list_file(path: Path) -> list[str]:
    """Photo paths (or object-storage URIs), one a line; blank lines and # comments skipped; relative paths
    are taken from the list file's folder."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entries.append(line if is_uri(line) or Path(line).is_absolute() else str(path.parent / line))
    if not entries:
        raise MasksmithError("names no photos.", path=path, fix="write one photo path or URI a line.")
    return entries


def sources_of(inputs: Sequence[str | Path], folder: OutputFolder) -> list[str]:
    """Folders and image files as the local engine expands them; `.txt` / `.lst` files as lists of photos."""
    local, listed = [], []
    for item in inputs:
        p = Path(item)
        if p.is_file() and p.suffix.lower() in (".txt", ".lst"):
            listed += read_list_file(p)
        else:
            local.append(p)
    files = [str(f) for f in expand_inputs(local, skip=folder)] if local else []
    return files + listed


def plan_jobs(sources: list[str]) -> list[PhotoJob]:
    from masksmith.core.paths import unique_stems

    names = [Path(s.split("://", 1)[-1]) for s in sources]
    return [PhotoJob(Path(s), stem) for s, stem in zip(sources, unique_stems(names), strict=True)]


def read_photo_bytes(source: str) -> bytes:
    """A photo's bytes from a local path or an object-storage URI (through pyarrow's file systems)."""
    if not is_uri(source):
        return Path(source).read_bytes()
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(source)
    with filesystem.open_input_stream(path) as f:
        return f.read()


def _read_row(row: dict[str, Any]) -> dict[str, Any]:
    """Ray task: the photo decoded (or the reason it could not be)."""
    from masksmith.core.images import read_image

    try:
        image = read_image(read_photo_bytes(row["source"]))
        return {**row, "image": image, "error": ""}
    except (MasksmithError, OSError) as exc:
        import numpy as np

        message = str(exc).replace("embedded image", row["source"])
        return {**row, "image": np.zeros((1, 1, 3), np.uint8), "error": message}


class PredictAndWrite:
    """Ray actor: one model, loaded once per worker; predicts a batch of photos and writes their outputs with
    the local engine's writer."""

    def __init__(self, model: str, out: str, backend: str, opacity: float, save: list[str] | None,
                 options: dict[str, Any], threads: int) -> None:
        import torch

        from masksmith.infer import open_predictor
        from masksmith.tasks import get_task

        torch.set_num_threads(max(1, threads))
        self.predictor = open_predictor(model, backend=backend, **options)
        self.writer = get_task(self.predictor.artifact.task).load("writer")(self.predictor, opacity, save=save)
        self.folder = OutputFolder(out, may_hold_inputs=True)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import json

        rows = []
        for k in range(len(batch["source"])):
            job = PhotoJob(Path(str(batch["source"][k])), str(batch["stem"][k]))
            if batch["error"][k]:
                rows.append({"error": str(batch["error"][k])})
                continue
            image = batch["image"][k]
            row = self.writer.write(self.folder, job, image, self.writer.predict(image))
            rows.append(row)
        return {"source": batch["source"], "row": [json.dumps(r) for r in rows]}


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


def start_ray(address: str | None, workers: int) -> bool:
    """Join `address`, or start a local Ray with `workers` CPUs; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **options)
        return True
    # Ray starts its workers at niceness 15; the model workers are this command's work, so they run at the
    # priority the local engine would (on a busy machine niced workers all but stop)
    os.environ.setdefault("RAY_worker_niceness", "0")
    for attempt in range(3):  # a busy machine can miss Ray's fixed 30 s for the raylet to register
        try:
            ray.init(num_cpus=max(1, workers), **options)
            return True
        except Exception as exc:  # noqa: BLE001 - Ray raises a plain Exception for this
            ray.shutdown()
            if "timed out during startup" not in str(exc) or attempt == 2:
                raise MasksmithError(f"a local Ray did not start ({str(exc).splitlines()[0][:200]}).",
                                     fix="try again when the machine is less busy, or use the local engine.") \
                    from None
    return True


def predict_with_ray(model: str | Path, inputs: Sequence[str | Path], out: str | Path, *, address: str | None = None,
                     workers: int = 2, backend: str = "torch", opacity: float = 0.5,
                     save: str | Sequence[str] | None = None, overwrite: bool = False, lenient: bool = False,
                     skipped: Skipped | None = None, progress: Callable[[int, int], None] | None = None,
                     summary: Path | None = None, options: dict[str, Any] | None = None,
                     threads_per_worker: int = 1) -> Iterator[dict[str, Any]]:
    """`predict_batch` on Ray (see the module docstring): yields one row per photo (``status`` "predicted"
    or "existing", the files, the summary counts) as photos finish, in the order they finish."""
    if not ray_available():
        raise MasksmithError("the Ray engine needs Ray Data, which is not installed.",
                             fix="pip install 'masksmith[ray]' (or pip install 'ray[data]').")
    import json

    import ray

    from masksmith.infer import open_predictor
    from masksmith.tasks import get_task

    options = dict(options or {})
    model = str(Path(model).resolve())
    predictor = open_predictor(model, backend=backend, **options)  # fails here, once, if the model is bad
    writer = get_task(predictor.artifact.task).load("writer")(predictor, opacity, save=save)
    save_list = writer.save
    del predictor
    local_inputs = [i for i in inputs if not is_uri(str(i))]
    folder = OutputFolder(out, inputs=local_inputs, overwrite=overwrite)
    jobs = plan_jobs(sources_of(inputs, folder))
    finished = set() if overwrite else {
        j.path for j in jobs if all(folder.exists(n) for n in writer.names_for(j.stem).values())}
    todo = [j for j in jobs if j.path not in finished]
    skipped = skipped if skipped is not None else Skipped()
    summary_target = claim_summary(summary, local_inputs, overwrite)
    backend_name = getattr(writer.predictor, "backend", "torch")

    def discard_partial_outputs() -> None:
        folder.discard_partial(n for job in todo for n in writer.names_for(job.stem).values())

    def rows() -> Iterator[dict[str, Any]]:
        for job in jobs:
            if job.path in finished:
                yield {"image": str(job.path), "status": "existing", **writer.existing(folder, job)}
        if progress is not None:
            progress(0, len(todo))
        if not todo:
            return
        discard_partial_outputs()  # what a killed earlier run left
        started = start_ray(address, workers)
        try:
            items = [{"source": str(j.path), "stem": j.stem} for j in todo]
            dataset = ray.data.from_items(items, override_num_blocks=min(len(items), max(1, 4 * workers)))
            # reading reserves no CPU: the model workers hold one each, and a read task waiting for a free CPU
            # behind them would never run (on 2 CPUs with 2 workers the pipeline stood still)
            dataset = dataset.map(_read_row, num_cpus=0)
            dataset = dataset.map_batches(
                PredictAndWrite, batch_size=1, concurrency=workers, num_cpus=threads_per_worker,
                fn_constructor_kwargs={"model": model, "out": str(Path(out).resolve()), "backend": backend_name,
                                       "opacity": opacity, "save": save_list, "options": options,
                                       "threads": threads_per_worker},
                max_restarts=-1, max_task_retries=-1)
            seen: set[str] = set()
            done = 0
            for result in dataset.iter_rows():
                source = str(result["source"])
                if source in seen:
                    continue  # a retried batch reported twice: its files were replaced, not added
                seen.add(source)
                row = json.loads(result["row"])
                if "error" in row:
                    if not lenient:
                        raise MasksmithError(row["error"])
                    skipped.items.append(row["error"])
                    continue
                done += 1
                if progress is not None:
                    progress(done, len(todo))
                yield {"image": source, "status": "predicted", **row}
            discard_partial_outputs()  # a worker killed mid-write leaves its temporary file; the retry wrote the file
        finally:
            if started:
                ray.shutdown()

    yield from with_summary(rows(), summary_target, writer.columns)
