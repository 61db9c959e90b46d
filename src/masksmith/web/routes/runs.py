"""Training: the train page, start a run, the live run page and its event stream, previews and log, stop,
resume and train longer. The training itself runs in a process of its own (jobs.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from masksmith.core import runfolder
from masksmith.core.errors import MasksmithError
from masksmith.core.outputs import atomic_write_text
from masksmith.core.paths import safe_filename
from masksmith.web.common import WebError, file_under
from masksmith.web.deps import DataDir, JobsDep, PagesDep, RunDep, StoreDep, find_dataset, find_run
from masksmith.web.forms import ResumeForm, TrainForm
from masksmith.web.jobs import run_progress
from masksmith.web.store import ACTIVE

router = APIRouter()


@router.get("/train", response_class=HTMLResponse)
def train_page(page: PagesDep, store: StoreDep, dataset: int | None = None):
    from masksmith.tasks import TASKS

    return page("train.html", datasets=store.datasets(), chosen=dataset,
                semantic_models=TASKS["semantic"].models, instance_models=TASKS["instance"].models)


@router.post("/api/runs")
def start_run(form: TrainForm, store: StoreDep, jobs: JobsDep, data_dir: DataDir):
    ds = find_dataset(store, form.dataset)
    config = form.config(ds["root"], ds["colors"])
    return queue_run(config, form.name or f"{ds['name']}-{config.arch}", ds, store, jobs, data_dir)


def queue_run(config, wanted_name: str, ds: dict, store, jobs, data_dir: Path) -> dict:
    """A run folder of its own for `config` (named after `wanted_name`, made free), registered and queued:
    what the page needs to follow it."""
    name = store.free_name("runs", safe_filename(wanted_name, "run"))
    folder = data_dir / "runs" / safe_filename(f"{name}-{uuid.uuid4().hex[:6]}", "run")
    config.name, config.runs_dir = folder.name, str(folder.parent)
    folder.mkdir(parents=True)
    atomic_write_text(folder / runfolder.CONFIG, config.to_yaml())
    run_id = store.add_run(name, ds, folder, config.task, config.arch)
    jobs.submit(run_id)
    return {"id": run_id, "url": f"/runs/{run_id}"}


@router.post("/api/plan")
def plan_run(form: TrainForm, store: StoreDep):
    """What the train form's budget buys on this machine: the library's plan (masksmith.service.plan_summary,
    what `masksmith train --dry-run` prints), the passes over the photos and the finish time. Starts nothing."""
    import time

    from masksmith import service
    from masksmith.core.durations import format_duration

    ds = find_dataset(store, form.dataset)
    config = form.config(ds["root"], ds["colors"])
    summary = service.plan_summary(config.data, config.time_budget, config=config)
    out = summary.to_dict()
    out.pop("record", None)
    out["finish_text"] = time.strftime("%H:%M", time.localtime(summary.finish)) if summary.finish else None
    out["train_text"] = format_duration(summary.train_seconds) if summary.train_seconds else None
    return out


@router.get("/runs", response_class=HTMLResponse)
def runs_page():
    return RedirectResponse("/models", status_code=303)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(page: PagesDep, run: RunDep, store: StoreDep):
    from masksmith.tasks import get_task

    return page("run.html", run=run, progress=run_progress(run, _images(store, run)), task=get_task(run["task"]))


def _images(store, run: dict) -> int | None:
    """The run's data set's usable images (the first preparation's estimate), when it is still in the store."""
    ds = store.dataset(run["dataset_id"]) if run.get("dataset_id") else None
    stats = ds["stats"] if ds else {}
    return (stats.get("health") or {}).get("usable_images") or stats.get("images")


@router.get("/runs/{run_id}/events")
async def run_events(request: Request, run: RunDep, store: StoreDep):
    """Server-sent events: the run's progress whenever it changes (a comment line keeps the stream open),
    until the run ends, the page goes, or the server shuts down."""
    run_id, closing = run["id"], request.app.state.closing  # a threading.Event: set when the server stops
    images = _images(store, run)

    async def stream():
        last = None
        while not closing.is_set():
            now = store.run(run_id)
            if now is None:
                return
            text = json.dumps(await asyncio.to_thread(run_progress, now, images))
            yield f"data: {text}\n\n" if text != last else ": still here\n\n"
            last = text
            if await request.is_disconnected() or now["state"] not in ACTIVE:
                return
            for _ in range(4):  # a second between messages, watching for the server's stop
                if closing.is_set():
                    return
                await asyncio.sleep(0.25)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/runs/{run_id}/previews/{name}")
def run_preview(run: RunDep, name: str):
    return file_under(Path(run["folder"]) / runfolder.PREVIEWS, name)


@router.get("/runs/{run_id}/log")
def run_log(run: RunDep):
    path = Path(run["folder"]) / "train.log"
    text = path.read_text(encoding="utf-8", errors="replace")[-20000:] if path.is_file() else ""
    return Response(text, media_type="text/plain; charset=utf-8")


@router.post("/api/runs/{run_id}/stop")
def stop_run(run: RunDep, jobs: JobsDep, store: StoreDep):
    if not jobs.stop(run["id"]):
        raise WebError(409, f"{run['name']} is not training ({run['state']}).")
    return {"state": find_run(store, run["id"])["state"]}


@router.post("/api/runs/{run_id}/resume")
def resume_run(run: RunDep, form: ResumeForm, jobs: JobsDep):
    """Resume a stopped or interrupted run, or train a finished one longer (more minutes or epochs)."""
    from masksmith import service
    from masksmith.train.run import resume_checkpoint

    if run["state"] in ACTIVE:
        raise WebError(409, f"{run['name']} is already {run['state']}.")
    folder = Path(run["folder"])
    try:
        resume_checkpoint(folder)
    except MasksmithError:
        raise WebError(409, f"{run['name']} stopped before its first checkpoint, so there is nothing to resume; "
                            "start a new training instead.") from None
    config = service.extend_config(folder, more_minutes=form.more_minutes, more_epochs=form.more_epochs)
    atomic_write_text(folder / runfolder.CONFIG, config.to_yaml())
    jobs.submit(run["id"])
    return {"id": run["id"], "url": f"/runs/{run['id']}"}
