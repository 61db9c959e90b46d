"""The labelling loop: photos without annotations added to a data set, "label next" (the unlabelled photos,
most uncertain first with a model), the editor page, the proposed mask, saving a corrected mask as the photo's
annotation, and "continue training" (fine-tune a model on the grown data set). The logic is the library's
(`masksmith.data.labelling`, `masksmith.apps.labelling`, `masksmith.service`)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from masksmith.data import labelling, labelling_objects
from masksmith.web.common import read_upload
from masksmith.web.deps import (
    DataDir,
    DatasetDep,
    JobsDep,
    LimitsDep,
    PagesDep,
    PredictorsDep,
    RunDep,
    StoreDep,
    find_dataset,
    find_run,
    model_file,
)
from masksmith.web.forms import ContinueForm
from masksmith.web.routes.runs import queue_run
from masksmith.web.store import Store

router = APIRouter()
THUMB = 160  # px, the longer side of a "label next" thumbnail
NEXT_LIMIT = 24  # photos listed under "label next"


# ------------------------------------------------------------------------------------------ the data set
_CONVERTING = threading.Lock()  # two first photos at once must not make two labelling copies


def labelling_root(store: Store, data_dir: Path, ds: dict[str, Any], objects: bool = False) -> Path:
    """The data set's labelling folder; a data set in another layout is first written as one in our own folder
    (its annotations as class-value masks, and its objects too with `objects`), and the data set then reads
    from there. With `objects` a labelling folder of class masks becomes an instance data set."""
    with _CONVERTING:
        return _labelling_root(store, data_dir, find_dataset(store, ds["id"]), objects)


def _labelling_root(store: Store, data_dir: Path, ds: dict[str, Any], objects: bool) -> Path:
    from masksmith import service

    root = Path(ds["root"])
    if labelling.is_labelling_folder(root):
        if objects and not labelling_objects.is_instance_folder(root):
            with labelling.labelling_lock(root):
                labelling_objects.make_instance_folder(root)
            store.update_dataset(ds["id"], stats=_inspected(root))
        return root
    folder = Path(ds["folder"]) if ds["folder"] else data_dir / "datasets" / uuid.uuid4().hex[:12]
    target = folder / f"labelling-{uuid.uuid4().hex[:6]}"
    try:
        service.start_labelling(root, target, ds["colors"], objects=objects)
        stats = _inspected(target)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    store.update_dataset(ds["id"], root=target, folder=folder, format="masks", stats=stats)
    return target


def _inspected(root: Path) -> dict[str, Any]:
    """`inspect` of a labelling folder, with the photo counts it was made at (to tell when it is out of date)."""
    from masksmith import service

    return {**service.inspect_dataset(root), "labelling": labelling.counts(root)}


def fresh_stats(store: Store, ds: dict[str, Any]) -> dict[str, Any]:
    """The data set's stored summary, inspected again when its labelling folder has changed since."""
    root = Path(ds["root"])
    if not labelling.is_labelling_folder(root):
        return ds
    if ds["stats"].get("labelling") != labelling.counts(root):
        store.update_dataset(ds["id"], stats=_inspected(root))
        ds = find_dataset(store, ds["id"])
    return ds


def _predictor(store: Store, predictors, model: int | None):
    """(predictor, its lock) of run `model`, or (None, a lock that does nothing) without one."""
    if not model:
        return None, contextlib.nullcontext()
    return predictors.get(model, model_file(find_run(store, model)))


def _classes(ds: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    """The classes in mask-value order with their colours (the person's choice, else the data set's)."""
    colors = {**{c["name"]: c.get("color") for c in ds["stats"].get("class_colors", [])}, **ds["colors"]}
    from masksmith.core.labels import class_color

    return [{"value": i, "name": name, "color": list(colors.get(name) or class_color(i - 1))}
            for i, name in enumerate(labelling.class_names(root), start=1)]


@router.post("/api/datasets/{dataset_id}/photos")
async def add_photo(request: Request, ds: DatasetDep, store: StoreDep, data_dir: DataDir, limits: LimitsDep,
                    name: str = "photo.jpg"):
    """One photo without annotations, into the data set's unlabelled/ folder (the page sends each file)."""
    from masksmith import service

    data = await read_upload(request, data_dir / "uploads", limits.photo, what="the photo")
    root = await asyncio.to_thread(labelling_root, store, data_dir, ds)
    added = await asyncio.to_thread(service.add_unlabelled, root, [(name, data)])
    return {"added": added, **labelling.counts(root)}


@router.get("/api/datasets/{dataset_id}/next")
async def label_next(ds: DatasetDep, store: StoreDep, predictors: PredictorsDep, model: int | None = None,
                     limit: int = NEXT_LIMIT):
    """The unlabelled photos to label next: with a model in `rank`'s diverse order (the most unsure photo unlike
    those above it and those labelled since), else by name."""
    from masksmith.apps.labelling import label_next as ranked

    root = Path(ds["root"])
    if not labelling.is_labelling_folder(root):
        return {"photos": [], "labelled": 0, "unlabelled": 0}
    predictor, lock = await asyncio.to_thread(_predictor, store, predictors, model)
    known = _known_scores(root, store, model)

    def work():
        with lock:
            return ranked(root, predictor, max(1, min(limit, 500)), known=known)

    rows = await asyncio.to_thread(work)
    query = f"?model={model}" if model else ""
    return {"photos": [{"name": r.name, "score": r.score,
                        "edit": f"/datasets/{ds['id']}/edit/{_quoted(r.name)}{query}",
                        "thumb": f"/datasets/{ds['id']}/photos/{_quoted(r.name)}/thumb.png{query}"} for r in rows],
            **labelling.counts(root)}


_SCORES: dict[tuple[str, str, int], dict] = {}  # (folder, model file, its time): photo -> rank.Ranked


def _known_scores(root: Path, store: Store, model: int | None) -> dict | None:
    """What this model found for this folder's photos so far (scores and descriptions, `rank.Ranked` by photo
    name; a new model file starts afresh): photos are scored once, and those labelled since count as picked."""
    if not model:
        return None
    path = model_file(find_run(store, model))
    key = (str(root), str(path), path.stat().st_mtime_ns)
    if key not in _SCORES:
        for old in [k for k in _SCORES if k[:2] == key[:2]]:
            del _SCORES[old]
        _SCORES[key] = {}
    return _SCORES[key]


def _quoted(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


# ------------------------------------------------------------------------------------------ one photo
async def _proposal(ds: dict[str, Any], store: Store, predictors, name: str, model: int | None):
    from masksmith.apps.labelling import proposal

    root = labelling.require_folder(ds["root"])
    predictor, lock = await asyncio.to_thread(_predictor, store, predictors, model)

    def work():
        with lock:
            return proposal(root, name, predictor)

    return root, await asyncio.to_thread(work)


def _png(array, mode: str | None = None) -> Response:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, "PNG")
    return Response(buf.getvalue(), media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/datasets/{dataset_id}/photos/{name:path}/mask.png")
async def mask_png(ds: DatasetDep, store: StoreDep, predictors: PredictorsDep, name: str, model: int | None = None):
    """The mask the editor starts from, as class values (grey PNG): the saved one, else the model's proposal."""
    _, mask = await _proposal(ds, store, predictors, name, model)
    return _png(mask, "L")


@router.get("/datasets/{dataset_id}/photos/{name:path}/thumb.png")
async def thumb_png(ds: DatasetDep, store: StoreDep, predictors: PredictorsDep, name: str, model: int | None = None):
    """The photo with the proposed mask in the class colours, small."""
    from PIL import Image

    from masksmith.core.images import read_image
    from masksmith.draw.overlay import overlay

    root, mask = await _proposal(ds, store, predictors, name, model)
    colors = [(0, 0, 0), *[tuple(c["color"]) for c in _classes(ds, root)]]
    picture = overlay(read_image(labelling.find_photo(root, name).path), mask, colors, opacity=0.55)
    image = Image.fromarray(picture)
    image.thumbnail((THUMB, THUMB))
    return _png(np.asarray(image))


@router.get("/datasets/{dataset_id}/photos/{name:path}/superpixels.png")
async def superpixels_png(ds: DatasetDep, name: str):
    """The photo's superpixel ids as RGB (`apps.labelling.superpixels`), for "snap to edges"."""
    from masksmith.apps.labelling import encode_ids, superpixels
    from masksmith.core.images import read_image

    photo = labelling.find_photo(labelling.require_folder(ds["root"]), name)
    ids = await asyncio.to_thread(lambda: encode_ids(superpixels(read_image(photo.path))))
    return _png(ids)


@router.get("/datasets/{dataset_id}/edit/{name:path}", response_class=HTMLResponse)
def editor_page(page: PagesDep, ds: DatasetDep, name: str, model: int | None = None):
    from masksmith.core.images import image_size

    root = labelling.require_folder(ds["root"])
    photo = labelling.find_photo(root, name)
    width, height = image_size(photo.path)
    query = f"?model={model}" if model else ""
    return page("editor.html", ds=ds, photo=photo, width=width, height=height, classes=_classes(ds, root),
                model=model or "", photo_url=f"/datasets/{ds['id']}/photos/{_quoted(photo.name)}",
                mask_url=f"/datasets/{ds['id']}/photos/{_quoted(photo.name)}/mask.png{query}",
                superpixels_url=f"/datasets/{ds['id']}/photos/{_quoted(photo.name)}/superpixels.png",
                save_url=f"/api/datasets/{ds['id']}/photos/{_quoted(photo.name)}/mask",
                objects=labelling_objects.is_instance_folder(root),
                objects_png=f"/datasets/{ds['id']}/photos/{_quoted(photo.name)}/objects.png{query}",
                save_objects_url=f"/api/datasets/{ds['id']}/photos/{_quoted(photo.name)}/objects",
                next_url=f"/api/datasets/{ds['id']}/next{query}", query=query)


@router.post("/api/datasets/{dataset_id}/photos/{name:path}/mask")
async def save_mask(request: Request, ds: DatasetDep, data_dir: DataDir, limits: LimitsDep, name: str):
    """Save the class-value mask (PNG body) as the photo's annotation: checked, versioned, atomic."""
    root = labelling.require_folder(ds["root"])
    data = await read_upload(request, data_dir / "uploads", limits.photo, what="the mask")
    saved = await asyncio.to_thread(labelling.save_mask, root, name, data)
    return {"photo": saved.photo, "version": saved.version, "kept": saved.kept is not None,
            **labelling.counts(root)}


# ------------------------------------------------------------------------------------ instance data sets
@router.post("/api/datasets/{dataset_id}/objects")
async def label_objects(ds: DatasetDep, store: StoreDep, data_dir: DataDir):
    """Make the data set one of objects (an instance data set): the editor then selects, splits, merges and
    deletes objects, and saves each photo's objects (`masksmith.data.labelling_objects`)."""
    root = await asyncio.to_thread(labelling_root, store, data_dir, ds, True)
    return {"objects": True, **labelling.counts(root)}


def _instance_root(ds: dict[str, Any]) -> Path:
    root = labelling.require_folder(ds["root"])
    if not labelling_objects.is_instance_folder(root):
        from masksmith.core.errors import DatasetError

        raise DatasetError("is not an instance data set.", path=root,
                           fix="label objects first (the data set page's \"Label objects\").")
    return root


async def _start_objects(ds, store, predictors, name: str, model: int | None):
    root, mask = await _proposal(ds, store, predictors, name, model)
    return await asyncio.to_thread(labelling_objects.start_objects, _instance_root(ds), name, mask)


@router.get("/api/datasets/{dataset_id}/photos/{name:path}/objects")
async def objects_table(ds: DatasetDep, store: StoreDep, predictors: PredictorsDep, name: str,
                        model: int | None = None):
    """The objects the editor starts from: {"objects": {id: class name}} (their ids: objects.png)."""
    _, table = await _start_objects(ds, store, predictors, name, model)
    return {"objects": {str(k): v for k, v in sorted(table.items())}}


@router.get("/datasets/{dataset_id}/photos/{name:path}/objects.png")
async def objects_png(ds: DatasetDep, store: StoreDep, predictors: PredictorsDep, name: str,
                      model: int | None = None):
    """The object ids the editor starts from (grey PNG, 0 no object): the saved objects, else the parts of
    the saved class mask or of the model's proposal; their classes in header X-Masksmith-Objects (JSON)."""
    import json

    ids, table = await _start_objects(ds, store, predictors, name, model)
    answer = _png(ids, "L")
    answer.headers["X-Masksmith-Objects"] = json.dumps({str(k): v for k, v in sorted(table.items())})
    return answer


@router.post("/api/datasets/{dataset_id}/photos/{name:path}/objects")
async def save_objects(request: Request, ds: DatasetDep, data_dir: DataDir, limits: LimitsDep, name: str):
    """Save the photo's objects: a JSON body {"objects": {id: class name}, "png": base64 PNG of the ids}.
    Checked (size, classes, ids), versioned, atomic."""
    import base64
    import binascii
    import json

    from masksmith.core.errors import DatasetError

    root = _instance_root(ds)
    body = await read_upload(request, data_dir / "uploads", 2 * limits.photo, what="the objects")
    try:
        sent = json.loads(body)
        png = base64.b64decode(sent["png"], validate=True)
        table = sent["objects"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise DatasetError("the objects are not a JSON object with \"objects\" and \"png\" (base64).",
                           fix='send {"objects": {"1": "door"}, "png": "<base64 PNG of the object ids>"}.') from None
    saved = await asyncio.to_thread(labelling_objects.save_objects, root, name, png, table)
    return {"photo": saved.photo, "version": saved.version, "kept": saved.kept is not None,
            **labelling.counts(root)}


# ------------------------------------------------------------------------------------ continue training
@router.post("/api/models/{run_id}/continue")
def continue_training(run: RunDep, form: ContinueForm, store: StoreDep, jobs: JobsDep, data_dir: DataDir):
    """A new run that fine-tunes this model (`service.finetune_config`) on its data set as it is now."""
    from masksmith import service

    model_file(run)
    ds = find_dataset(store, form.dataset or run["dataset_id"] or 0)
    config = service.finetune_config(run["folder"], ds["root"], time_budget=60 * form.minutes, epochs=None,
                                     class_colors=ds["colors"], strict_data=False)
    return queue_run(config, f"{run['name']}-more", ds, store, jobs, data_dir)


# last: its path parameter would otherwise take the routes above that add to a photo's path
@router.get("/datasets/{dataset_id}/photos/{name:path}")
def photo_file(ds: DatasetDep, name: str):
    photo = labelling.find_photo(labelling.require_folder(ds["root"]), name)
    return FileResponse(photo.path, headers={"Cache-Control": "no-cache"})
