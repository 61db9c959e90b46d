"""Try it: the try page, a photo predicted by the model (mask, colour mask, overlay, cut-outs), the overlay at
the slider's opacity, everything as a zip, and the apps on one found part (recolour, new wheels)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from masksmith.apps.photo import MIN_CONFIDENCE, MIN_SHARE
from masksmith.core.errors import MasksmithError
from masksmith.core.paths import safe_filename
from masksmith.web.common import MB, WebError, file_under, png_download, stream_to_file
from masksmith.web.deps import DataDir, LimitsDep, PagesDep, PredictorCache, PredictorsDep, RunDep, model_file
from masksmith.web.forms import PartForm, RecolorForm
from masksmith.web.routes.models import model_row

router = APIRouter()
META = ".meta.json"


@router.get("/models/{run_id}/try", response_class=HTMLResponse)
def try_page(page: PagesDep, run: RunDep, limits: LimitsDep):
    from masksmith.models.artifact import load_artifact

    artifact = load_artifact(model_file(run))
    classes = [{"name": n, "color": c} for n, c in artifact.class_map.colors_by_name().items()]
    return page("try.html", run=run, row=model_row(run), classes=classes, limit_mb=limits.photo // MB,
                min_share=MIN_SHARE, min_confidence=MIN_CONFIDENCE)


@router.post("/api/models/{run_id}/try")
async def try_photo(request: Request, run: RunDep, data_dir: DataDir, limits: LimitsDep,
                    predictors: PredictorsDep, filename: str = "photo"):
    model = model_file(run)
    token = uuid.uuid4().hex
    folder = data_dir / "results" / token
    folder.mkdir(parents=True)
    upload = folder / ".upload"
    try:
        await stream_to_file(request, upload, limits.photo, what="the photo")
        return await asyncio.to_thread(_predict_photo, predictors, run["id"], model, upload, folder, filename)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        upload.unlink(missing_ok=True)


def _predict_photo(predictors: PredictorCache, run_id: int, model: Path, upload: Path, folder: Path,
                   filename: str) -> dict[str, Any]:
    from masksmith.apps.photo import predict_photo, write_photo_results
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder, atomic_write_text

    stem = safe_filename(Path(filename).stem, "photo")
    try:
        image = read_image(upload)
    except MasksmithError as exc:
        raise WebError(400, f"{filename}: {exc.problem}") from None
    predictor, lock = predictors.get(run_id, model)
    with lock:  # regions under 0.2 % of the photo are not worth a cut-out
        prediction = predict_photo(predictor, image, min_pixels=max(16, image.shape[0] * image.shape[1] // 500))
    files = write_photo_results(image, prediction, OutputFolder(folder), stem=stem)
    meta = {"stem": stem, "filename": filename, "files": files, "run": run_id,
            "classes": list(prediction.classes.names), "colors": [list(c) for c in prediction.classes.palette()],
            "found": prediction.usable_parts(), "parts": [p.to_dict() for p in prediction.parts()],
            "min_share": MIN_SHARE, "min_confidence": MIN_CONFIDENCE, "objects": len(prediction.objects),
            "size": [int(image.shape[1]), int(image.shape[0])]}
    atomic_write_text(folder / META, json.dumps(meta))
    token = folder.name
    return {"token": token, **meta, "urls": {k: f"/results/{token}/{v}" for k, v in files.items()},
            "zip": f"/results/{token}/all.zip", "overlay": f"/results/{token}/overlay.png"}


def find_result(data_dir: Path, token: str) -> tuple[Path, dict[str, Any]]:
    if not re.fullmatch(r"[0-9a-f]{32}", token):
        raise WebError(404, "there is no such result.")
    folder = data_dir / "results" / token
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise WebError(404, "there is no such result (it may have been cleaned up).") from None
    return folder, meta


@router.get("/results/{token}/overlay.png")
def result_overlay(token: str, data_dir: DataDir, opacity: float = 0.5):
    """The overlay at the opacity the slider shows (the download button)."""
    from masksmith.core.images import read_image
    from masksmith.draw import overlay

    folder, meta = find_result(data_dir, token)
    image = read_image(folder / meta["files"]["photo"])
    picture = overlay(image, _mask(folder, meta), [tuple(c) for c in meta["colors"]], min(1.0, max(0.0, opacity)))
    return png_download(picture, f"{meta['stem']}_overlay.png")


@router.get("/results/{token}/layer.png")
def result_layer(token: str, data_dir: DataDir, only: str = ""):
    """The colour layer (nothing on background), or with `only` that one class alone (a legend click)."""
    from masksmith.draw import colorize_layer

    folder, meta = find_result(data_dir, token)
    mask = _mask(folder, meta)
    if only:
        mask = np.where(mask == _class_value(meta, only), mask, 0).astype(np.uint8)
    picture = colorize_layer(mask, [tuple(c) for c in meta["colors"]])
    return png_download(picture, f"{meta['stem']}_layer.png", inline=True)


@router.get("/results/{token}/all.zip")
def result_zip(token: str, data_dir: DataDir):
    from masksmith.data.archive import zip_folder

    folder, meta = find_result(data_dir, token)
    out = data_dir / "cache" / "zips" / f"{token}.zip"
    zip_folder(folder, out, arcname=meta["stem"])
    return FileResponse(out, filename=f"{meta['stem']}-results.zip", media_type="application/zip")


@router.get("/results/{token}/{name}")
def result_file(token: str, name: str, data_dir: DataDir):
    folder, _ = find_result(data_dir, token)
    return file_under(folder, name, download=name.endswith(".csv"))


@router.post("/api/results/{token}/recolor")
async def recolor_result(token: str, form: RecolorForm, data_dir: DataDir):
    from masksmith.apps.colorspace import parse_color
    from masksmith.apps.recolor import recolor
    from masksmith.apps.respray import respray_masks

    folder, meta = find_result(data_dir, token)
    _class_mask(folder, meta, form.part)  # refused, with the reason, when the part was not found well enough
    masks = respray_masks(_mask(folder, meta), _class_map(meta), [form.part])
    color = parse_color(form.color)
    return await asyncio.to_thread(
        _write_app_result, folder, meta, "recolor",
        lambda image: (recolor(image, masks.part, color=color, car_mask=masks.car, keep=masks.keep,
                               grow=form.grow), []))


@router.post("/api/results/{token}/wheels")
async def wheels_result(token: str, form: PartForm, data_dir: DataDir):
    from masksmith.apps.paste import new_wheels, regions

    folder, meta = find_result(data_dir, token)
    mask = _class_mask(folder, meta, form.part)
    parts = regions(mask, min_pixels=16)
    if not parts:
        raise WebError(400, f"no {form.part!r} region was found in this photo to put a wheel on.")

    def make(image):
        wheels = new_wheels(image, parts, min_pixels=16)
        if not wheels.placed:
            raise WebError(400, "every wheel found is mostly hidden, so none was changed: "
                                + "; ".join(wheels.notes) + ".")
        return wheels.image, wheels.notes
    return await asyncio.to_thread(_write_app_result, folder, meta, "wheels", make)


def _mask(folder: Path, meta: dict[str, Any]):
    from PIL import Image

    return np.asarray(Image.open(folder / meta["files"]["mask"]))


def _class_map(meta: dict[str, Any]):
    from masksmith.core.labels import ClassMap

    return ClassMap.from_palette(meta["classes"], meta["colors"])


def _class_value(meta: dict[str, Any], name: str) -> int:
    if name not in meta["classes"]:
        raise WebError(400, f"the model has no class {name!r}; choose one of {', '.join(meta['classes'])}.")
    return _class_map(meta).value(name)


def _class_mask(folder: Path, meta: dict[str, Any], name: str):
    """The pixels of part `name`, refused (with the reason) when the part was not found well enough."""
    mask = _mask(folder, meta) == _class_value(meta, name)
    if not mask.any():
        raise WebError(400, f"the model found no {name!r} in this photo.")
    part = next((p for p in meta.get("parts", []) if p["name"] == name), None)
    if part is not None:
        from masksmith.apps.photo import PartFound

        reason = PartFound(**part).reason(meta.get("min_share", MIN_SHARE), 0.0)
        if reason:
            raise WebError(400, f"{name}: {reason}.")
    return mask


def _write_app_result(folder: Path, meta: dict[str, Any], kind: str, make) -> dict[str, Any]:
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder

    image = read_image(folder / meta["files"]["photo"])
    name = f"{meta['stem']}_{kind}.png"
    picture, notes = make(image)
    OutputFolder(folder).save_image(name, picture)
    return {"file": name, "url": f"/results/{folder.name}/{name}?t={time.time():.0f}", "notes": notes}
