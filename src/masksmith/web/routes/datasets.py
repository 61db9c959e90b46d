"""Data sets: the list, upload a zip or name a folder, the data set page (its health check), the preview in
the class colours, the colours, a split, delete."""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from masksmith.web.common import MB, WebError, remove_under, stream_to_file
from masksmith.web.deps import DataDir, DatasetDep, LimitsDep, PagesDep, StoreDep
from masksmith.web.forms import FolderForm, SplitForm
from masksmith.web.register import add_uploaded_zip, preview_file, register_dataset, split_into_datasets
from masksmith.web.store import ACTIVE

router = APIRouter()


@router.get("/")
def home():
    return RedirectResponse("/datasets", status_code=303)


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(page: PagesDep, store: StoreDep, limits: LimitsDep):
    return page("datasets.html", datasets=store.datasets(), limit_mb=limits.upload // MB)


@router.post("/api/datasets/upload")
async def upload_dataset(request: Request, store: StoreDep, data_dir: DataDir, limits: LimitsDep,
                         name: str = "data"):
    tmp = data_dir / "uploads" / f"{uuid.uuid4().hex}.zip"
    try:
        await stream_to_file(request, tmp, limits.upload, what="the zip")
        return await asyncio.to_thread(add_uploaded_zip, store, data_dir, tmp, name)
    finally:
        tmp.unlink(missing_ok=True)


@router.post("/api/datasets/folder")
async def add_folder(form: FolderForm, store: StoreDep):
    path = Path(form.path.strip()).expanduser()
    if not form.path.strip() or not path.is_absolute():
        raise WebError(400, "give the full path of a folder or annotation file on this machine.")
    if not path.exists():
        raise WebError(400, f"{path} does not exist on this machine.")
    return await asyncio.to_thread(register_dataset, store, path, None, "folder", form.name or path.name or "data")


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_page(page: PagesDep, ds: DatasetDep, store: StoreDep):
    from masksmith.data import labelling as labelling_folder
    from masksmith.web.routes.labelling import fresh_stats

    ds = fresh_stats(store, ds)
    stats = ds["stats"]
    per_class = stats.get("per_class", [])  # the background first, then the classes (DatasetStats.to_dict)
    classes = per_class[1:]
    colors = {**{c["name"]: c.get("color") for c in stats.get("class_colors", [])}, **ds["colors"]}
    runs = [r for r in store.runs() if r["dataset_id"] == ds["id"]]
    models = [r for r in runs if r["state"] not in ("queued", "running") and
              (Path(r["folder"]) / "model.masksmith").is_file()]
    from masksmith.data.labelling_objects import is_instance_folder

    counts = labelling_folder.counts(ds["root"]) if labelling_folder.is_labelling_folder(ds["root"]) else None
    return page("dataset.html", ds=ds, stats=stats, classes=classes, colors=colors, runs=runs,
                models=models, counts=counts, objects=is_instance_folder(ds["root"]),
                max_share=max([c["pixel_share"] for c in classes] or [0]) or 1,
                background=per_class[0] if per_class and stats.get("images_with_pixels_counted") else None)


@router.get("/datasets/{dataset_id}/preview.png")
async def dataset_preview(ds: DatasetDep, data_dir: DataDir):
    path = await asyncio.to_thread(preview_file, data_dir, ds)
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.post("/api/datasets/{dataset_id}/colors")
def set_colors(ds: DatasetDep, store: StoreDep, body: dict[str, str]):
    names = {c["name"] for c in ds["stats"].get("class_colors", [])}
    colors = dict(ds["colors"])
    for name, value in body.items():
        if name not in names:
            raise WebError(400, f"this data set has no class {name!r}.")
        colors[name] = list(hex_color(value))
    store.set_colors(ds["id"], colors)
    return {"colors": colors}


def hex_color(value: str) -> tuple[int, int, int]:
    text = str(value).strip()
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", text):
        raise WebError(400, f"colour {text!r} is not written as #rrggbb.")
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


@router.get("/api/datasets/{dataset_id}/budget")
async def budget(ds: DatasetDep, task: str = "semantic", model: str = ""):
    """How long to train this data set on this machine (`service.suggest_budget`: the plan's size, the
    measured speed, minutes for a usable and a good model, and what budgets give in words)."""
    from masksmith import service

    return await asyncio.to_thread(service.suggest_budget, ds["root"], task=task or None, model=model or None,
                                   colors=ds["colors"])


@router.post("/api/datasets/{dataset_id}/split")
async def split(ds: DatasetDep, form: SplitForm, store: StoreDep, data_dir: DataDir):
    return await asyncio.to_thread(split_into_datasets, store, data_dir, ds, form.val, form.test, form.seed)


@router.delete("/api/datasets/{dataset_id}")
def delete_dataset(ds: DatasetDep, store: StoreDep, data_dir: DataDir):
    if any(r["dataset_id"] == ds["id"] and r["state"] in ACTIVE for r in store.runs()):
        raise WebError(409, f"a training on {ds['name']!r} is under way; stop it first.")
    store.delete_dataset(ds["id"])
    if ds["folder"]:  # our own copy only; a folder on this machine is never deleted
        remove_under(data_dir / "datasets", Path(ds["folder"]))
    shutil.rmtree(data_dir / "cache" / f"dataset-{ds['id']}", ignore_errors=True)
    return {"deleted": ds["name"]}
