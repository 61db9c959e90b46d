"""Models: the list, the model card (the main score explained, per-class bars, the report folded below),
download, the report page, delete, and evaluating a model on another data set."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from masksmith.core import runfolder
from masksmith.core.paths import safe_filename
from masksmith.web.common import WebError, plain, remove_under
from masksmith.web.deps import DataDir, PagesDep, PredictorsDep, RunDep, StoreDep, find_dataset, model_file
from masksmith.web.forms import EvaluateForm
from masksmith.web.store import ACTIVE

router = APIRouter()


def model_row(run: dict[str, Any]) -> dict[str, Any]:
    """A models table row: the run with its epochs, time trained and headline figure."""
    from masksmith import service

    summary = service.run_summary(run["folder"], run["task"])
    headline = summary.headline
    clock = service.run_clock(run["folder"], run["state"])  # the same clock as the run page
    return {**run, "epochs": summary.epochs, "seconds": summary.seconds, "metric": headline.value,
            "metric_text": headline.text(), "metric_name": f"{headline.name} ({headline.source})",
            "has_model": summary.has_model, "clock": clock["elapsed_text"]}


@router.get("/models", response_class=HTMLResponse)
def models_page(page: PagesDep, store: StoreDep):
    return page("models.html", rows=[model_row(r) for r in store.runs()])


@router.get("/models/{run_id}", response_class=HTMLResponse)
def model_page(request: Request, page: PagesDep, run: RunDep, store: StoreDep):
    from masksmith import service
    from masksmith.html_report import report_css, report_sections

    folder = Path(run["folder"])
    data_dir = request.app.state.data_dir  # the report names files inside the data folder, never its path
    sections = [replace(s, html=plain(s.html, data_dir)) for s in report_sections(folder)] \
        if runfolder.is_run_folder(folder) else []
    progress = runfolder.run_progress(folder)
    return page("model.html", run=run, row=model_row(run), sections=sections, css=report_css(),
                datasets=store.datasets(), card=service.model_card(folder, run["task"]), colors=_colors(folder),
                preview=progress["preview"])


def _colors(folder: Path) -> dict[str, Any]:
    """{class: colour} the run trained with (data.json), for the bars; {} before training has read the data."""
    import json

    try:
        data = json.loads((folder / runfolder.DATA).read_text(encoding="utf-8"))
        return {c["name"]: c["color"] for c in data.get("classes", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


@router.get("/models/{run_id}/download")
def download_model(run: RunDep):
    path = Path(run["folder"]) / runfolder.MODEL
    if not path.is_file():
        raise WebError(404, f"{run['name']} has no model file yet (it appears after the first epoch).")
    return FileResponse(path, filename=f"{safe_filename(run['name'], 'model')}.masksmith",
                        media_type="application/octet-stream")


@router.get("/models/{run_id}/report")
def model_report(run: RunDep, data_dir: DataDir):
    from masksmith.html_report import render_report

    return HTMLResponse(plain(render_report(run["folder"]), data_dir))


@router.delete("/api/models/{run_id}")
def delete_model(run: RunDep, store: StoreDep, data_dir: DataDir, predictors: PredictorsDep):
    if run["state"] in ACTIVE:
        raise WebError(409, f"{run['name']} is {run['state']}; stop it first.")
    store.delete_run(run["id"])
    remove_under(data_dir / "runs", Path(run["folder"]))
    predictors.drop(run["id"])
    return {"deleted": run["name"]}


@router.post("/api/models/{run_id}/evaluate")
async def evaluate_model(run: RunDep, form: EvaluateForm, store: StoreDep):
    ds = find_dataset(store, form.dataset)
    model = model_file(run)
    return await asyncio.to_thread(_evaluate, model, ds)


def _evaluate(model: Path, ds: dict[str, Any]) -> dict[str, Any]:
    from masksmith import service

    evaluation = service.evaluate(model, ds["root"], strict=False, label=safe_filename(ds["name"], "data"))
    return {"evaluation": Path(evaluation.files["metrics"]).parent.name}
