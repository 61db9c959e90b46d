"""The local web app (`masksmith serve`): routes only. Every route calls the library functions the CLI calls
(load_dataset, dataset_stats, preview_picture, split_dataset, convert, run_training through jobs.py,
open_predictor, evaluate_semantic / evaluate_instances, report_sections, apps.*); state is in store.py.

Safety, because a local app is reachable by every page the user visits:
- the Host header must name this machine (127.0.0.1, localhost, [::1], or the --host given): no DNS rebinding;
- every state-changing request (POST, PUT, PATCH, DELETE) must come from our own pages (Origin, or
  Sec-Fetch-Site, when the browser sends them): no cross-site requests from other tabs;
- served on another address than loopback, every request needs the token printed at start (cookie after the
  first visit with ?token=);
- uploads are streamed to disk under a size limit, zips are extracted by masksmith.data.archive (no path
  escapes, no links, no bombs), photos read by masksmith.core.images; names from users go through masksmith.core.paths;
  files are served only from under the data folder;
- errors reach the page as one sentence (MasksmithError's text); the server log keeps the traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import logging
import re
import shutil
import threading
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from masksmith.core import runfolder
from masksmith.core.errors import MasksmithError
from masksmith.core.paths import UnsafePath, resolve_under, safe_filename
from masksmith.web.jobs import JobRunner, run_progress
from masksmith.web.store import ACTIVE, Store

log = logging.getLogger("masksmith.web")
HERE = Path(__file__).parent
MB = 1024 * 1024
UPLOAD_LIMIT = 2048 * MB  # a data set zip
PHOTO_LIMIT = 50 * MB  # one photo to try a model on
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
TOKEN_COOKIE = "masksmith_token"


class WebError(Exception):
    """A request the app refuses, with the HTTP status and the sentence the page shows."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ------------------------------------------------------------------------------------------------ the app
def create_app(data_dir: str | Path, *, host: str = "127.0.0.1", token: str | None = None,
               load_sample: bool = True, upload_limit: int = UPLOAD_LIMIT, photo_limit: int = PHOTO_LIMIT,
               watch: bool = True) -> FastAPI:
    """The app over the data folder `data_dir` (created when missing). `host`: the address served (other
    Host headers than it and loopback are refused); `token`: required on every request when given;
    `load_sample`: on first start, add the built-in sample data set; `watch`: poll the training jobs."""
    data_dir = Path(data_dir).expanduser().resolve()
    store = Store(data_dir)
    jobs = JobRunner(store)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if watch:
            jobs.start_watching()
        yield
        jobs.shutdown()

    app = FastAPI(title="masksmith", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store, app.state.jobs, app.state.data_dir = store, jobs, data_dir
    app.state.limits = {"upload": upload_limit, "photo": photo_limit}
    app.state.predictors = {}
    app.state.predictor_lock = threading.Lock()
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters.update(rgb=lambda c: "#" + "".join(f"{int(v):02x}" for v in c),
                                 when=lambda t: time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-")
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    allowed_hosts = set(LOOPBACK) | ({host.lower()} if host not in ("0.0.0.0", "::") else set())
    any_host = host in ("0.0.0.0", "::")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host_header = request.headers.get("host", "")
        name = _host_name(host_header)
        if not any_host and name not in allowed_hosts:
            return _refuse(request, 400, f"this server answers only to {', '.join(sorted(allowed_hosts))}, "
                                         f"not to {host_header!r}.")
        if token is not None:
            given = request.cookies.get(TOKEN_COOKIE) or request.headers.get("x-masksmith-token") or ""
            query = request.query_params.get("token")
            if query and hmac.compare_digest(query, token) and request.method == "GET":
                response = RedirectResponse(str(request.url.remove_query_params("token")), status_code=303)
                response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
                return response
            if not hmac.compare_digest(given, token):
                return _refuse(request, 401, "this server needs its access token: open the address it printed "
                                             "at start (…/?token=…).")
        if request.method in UNSAFE_METHODS:
            origin = request.headers.get("origin")
            fetch_site = request.headers.get("sec-fetch-site")
            if origin is not None and origin != f"{request.url.scheme}://{host_header}":
                return _refuse(request, 403, f"refused a request from another site ({origin}).")
            if origin is None and fetch_site in ("cross-site", "same-site"):
                return _refuse(request, 403, "refused a request from another site.")
        return await call_next(request)

    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError):
        return _refuse(request, exc.status, exc.message)

    @app.exception_handler(MasksmithError)
    async def masksmith_error(request: Request, exc: MasksmithError):
        log.info("refused %s %s: %s", request.method, request.url.path, exc)
        return _refuse(request, 400, _plain(web_message(str(exc)), data_dir))

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return _refuse(request, 500, f"something went wrong on the server ({type(exc).__name__}); the server's "
                                     "log has the details.")

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"nav": name.split(".")[0], **context})

    # -- data sets ---------------------------------------------------------------------------------------
    @app.get("/")
    def home():
        return RedirectResponse("/datasets", status_code=303)

    @app.get("/datasets", response_class=HTMLResponse)
    def datasets_page(request: Request):
        return page(request, "datasets.html", datasets=store.datasets(),
                    limit_mb=app.state.limits["upload"] // MB)

    @app.post("/api/datasets/upload")
    async def upload_dataset(request: Request, name: str = "data"):
        limit = app.state.limits["upload"]
        uploads = data_dir / "uploads"
        tmp = uploads / f"{uuid.uuid4().hex}.zip"
        try:
            await _stream_to_file(request, tmp, limit, what="the zip")
            return await asyncio.to_thread(_add_uploaded_zip, store, data_dir, tmp, name)
        finally:
            tmp.unlink(missing_ok=True)

    @app.post("/api/datasets/folder")
    async def add_folder(request: Request):
        body = await _json(request)
        path = Path(str(body.get("path", "")).strip()).expanduser()
        if not str(path) or not path.is_absolute():
            raise WebError(400, "give the full path of a folder or annotation file on this machine.")
        if not path.exists():
            raise WebError(400, f"{path} does not exist on this machine.")
        name = str(body.get("name") or path.name or "data")
        return await asyncio.to_thread(_register_dataset, store, path, None, "folder", name)

    @app.get("/datasets/{dataset_id}", response_class=HTMLResponse)
    def dataset_page(request: Request, dataset_id: int):
        ds = _dataset_or_404(store, dataset_id)
        stats = ds["stats"]
        per_class = stats.get("per_class", [])  # the background first, then the classes (DatasetStats.to_dict)
        classes = per_class[1:]
        colors = {**{c["name"]: c.get("color") for c in stats.get("class_colors", [])}, **ds["colors"]}
        runs = [r for r in store.runs() if r["dataset_id"] == dataset_id]
        return page(request, "dataset.html", ds=ds, stats=stats, classes=classes, colors=colors, runs=runs,
                    max_share=max([c["pixel_share"] for c in classes] or [0]) or 1,
                    background=per_class[0] if per_class and stats.get("images_with_pixels_counted") else None)

    @app.get("/datasets/{dataset_id}/preview.png")
    async def dataset_preview(dataset_id: int):
        ds = _dataset_or_404(store, dataset_id)
        path = await asyncio.to_thread(_preview_file, data_dir, ds)
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-cache"})

    @app.post("/api/datasets/{dataset_id}/colors")
    async def set_colors(request: Request, dataset_id: int):
        ds = _dataset_or_404(store, dataset_id)
        body = await _json(request)
        names = {c["name"] for c in ds["stats"].get("class_colors", [])}
        colors = dict(ds["colors"])
        for name, value in body.items():
            if name not in names:
                raise WebError(400, f"this data set has no class {name!r}.")
            colors[name] = list(_hex_color(value))
        store.set_colors(dataset_id, colors)
        return {"colors": colors}

    @app.post("/api/datasets/{dataset_id}/split")
    async def split(request: Request, dataset_id: int):
        ds = _dataset_or_404(store, dataset_id)
        body = await _json(request)
        return await asyncio.to_thread(_split_dataset, store, data_dir, ds, _number(body, "val", 0.2),
                                       _number(body, "test", 0.1), int(_number(body, "seed", 0)))

    @app.delete("/api/datasets/{dataset_id}")
    def delete_dataset(dataset_id: int):
        ds = _dataset_or_404(store, dataset_id)
        if any(r["dataset_id"] == dataset_id and r["state"] in ACTIVE for r in store.runs()):
            raise WebError(409, f"a training on {ds['name']!r} is under way; stop it first.")
        store.delete_dataset(dataset_id)
        if ds["folder"]:  # our own copy only; a folder on this machine is never deleted
            _remove_under(data_dir / "datasets", Path(ds["folder"]))
        shutil.rmtree(data_dir / "cache" / f"dataset-{dataset_id}", ignore_errors=True)
        return {"deleted": ds["name"]}

    # -- training ----------------------------------------------------------------------------------------
    @app.get("/train", response_class=HTMLResponse)
    def train_page(request: Request, dataset: int | None = None):
        from masksmith.tasks import TASKS

        return page(request, "train.html", datasets=store.datasets(), chosen=dataset,
                    semantic_models=TASKS["semantic"].models, instance_models=TASKS["instance"].models)

    @app.post("/api/runs")
    async def start_run(request: Request):
        body = await _json(request)
        ds = _dataset_or_404(store, int(_number(body, "dataset", 0)))
        config = _train_config(body, ds, data_dir)
        name = store.free_name("runs", safe_filename(str(body.get("name") or f"{ds['name']}-{config.arch}"),
                                                      "run"))
        folder = data_dir / "runs" / safe_filename(f"{name}-{uuid.uuid4().hex[:6]}", "run")
        config.name, config.runs_dir = folder.name, str(folder.parent)
        folder.mkdir(parents=True)
        from masksmith.core.outputs import atomic_write_text

        atomic_write_text(folder / runfolder.CONFIG, config.to_yaml())
        run_id = store.add_run(name, ds, folder, config.task, config.arch)
        jobs.submit(run_id)
        return {"id": run_id, "url": f"/runs/{run_id}"}

    @app.post("/api/plan")
    async def plan_run(request: Request):
        """What the train form's budget buys on this machine: the plan, the passes and the finish time."""
        body = await _json(request)
        ds = _dataset_or_404(store, int(_number(body, "dataset", 0)))
        config = _train_config(body, ds, data_dir)
        return _plan_summary(config)

    @app.get("/runs", response_class=HTMLResponse)
    def runs_page(request: Request):
        return RedirectResponse("/models", status_code=303)

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: int):
        from masksmith.tasks import get_task

        run = _run_or_404(store, run_id)
        return page(request, "run.html", run=run, progress=run_progress(run), task=get_task(run["task"]))

    @app.get("/runs/{run_id}/events")
    async def run_events(request: Request, run_id: int):
        _run_or_404(store, run_id)

        async def stream():
            last = None
            while True:
                run = store.run(run_id)
                if run is None:
                    return
                progress = await asyncio.to_thread(run_progress, run)
                text = json.dumps(progress)
                if text != last:
                    yield f"data: {text}\n\n"
                    last = text
                else:
                    yield ": still here\n\n"
                if await request.is_disconnected() or run["state"] not in ACTIVE:
                    return
                await asyncio.sleep(1.0)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/runs/{run_id}/previews/{name}")
    def run_preview(run_id: int, name: str):
        run = _run_or_404(store, run_id)
        return _file_under(Path(run["folder"]) / runfolder.PREVIEWS, name)

    @app.get("/runs/{run_id}/log")
    def run_log(run_id: int):
        run = _run_or_404(store, run_id)
        path = Path(run["folder"]) / "train.log"
        text = path.read_text(encoding="utf-8", errors="replace")[-20000:] if path.is_file() else ""
        return Response(text, media_type="text/plain; charset=utf-8")

    @app.post("/api/runs/{run_id}/stop")
    def stop_run(run_id: int):
        run = _run_or_404(store, run_id)
        if not jobs.stop(run_id):
            raise WebError(409, f"{run['name']} is not training ({run['state']}).")
        return {"state": store.run(run_id)["state"]}

    @app.post("/api/runs/{run_id}/resume")
    async def resume_run(request: Request, run_id: int):
        """Resume a stopped or interrupted run, or train a finished one longer (more minutes or epochs)."""
        run = _run_or_404(store, run_id)
        if run["state"] in ACTIVE:
            raise WebError(409, f"{run['name']} is already {run['state']}.")
        body = await _json(request)
        folder = Path(run["folder"])
        from masksmith import service
        from masksmith.core.outputs import atomic_write_text
        from masksmith.train.run import resume_checkpoint

        try:
            resume_checkpoint(folder)
        except MasksmithError:
            raise WebError(409, f"{run['name']} stopped before its first checkpoint, so there is nothing to resume; "
                                "start a new training instead.") from None
        config = service.extend_config(folder, more_minutes=_number(body, "more_minutes", 0),
                                       more_epochs=int(_number(body, "more_epochs", 0)))
        atomic_write_text(folder / runfolder.CONFIG, config.to_yaml())
        jobs.submit(run_id)
        return {"id": run_id, "url": f"/runs/{run_id}"}

    # -- models ------------------------------------------------------------------------------------------
    @app.get("/models", response_class=HTMLResponse)
    def models_page(request: Request):
        rows = [_model_row(r) for r in store.runs()]
        return page(request, "models.html", rows=rows)

    @app.get("/models/{run_id}", response_class=HTMLResponse)
    def model_page(request: Request, run_id: int):
        from masksmith.html_report import report_css, report_sections

        run = _run_or_404(store, run_id)
        folder = Path(run["folder"])
        sections = report_sections(folder) if runfolder.is_run_folder(folder) else []
        return page(request, "model.html", run=run, row=_model_row(run), sections=sections, css=report_css(),
                    datasets=store.datasets())

    @app.get("/models/{run_id}/download")
    def download_model(run_id: int):
        run = _run_or_404(store, run_id)
        path = Path(run["folder"]) / runfolder.MODEL
        if not path.is_file():
            raise WebError(404, f"{run['name']} has no model file yet (it appears after the first epoch).")
        return FileResponse(path, filename=f"{safe_filename(run['name'], 'model')}.masksmith",
                            media_type="application/octet-stream")

    @app.get("/models/{run_id}/report")
    def model_report(run_id: int):
        from masksmith.html_report import render_report

        run = _run_or_404(store, run_id)
        return HTMLResponse(render_report(run["folder"]))

    @app.delete("/api/models/{run_id}")
    def delete_model(run_id: int):
        run = _run_or_404(store, run_id)
        if run["state"] in ACTIVE:
            raise WebError(409, f"{run['name']} is {run['state']}; stop it first.")
        store.delete_run(run_id)
        _remove_under(data_dir / "runs", Path(run["folder"]))
        app.state.predictors.pop(run_id, None)
        return {"deleted": run["name"]}

    @app.post("/api/models/{run_id}/evaluate")
    async def evaluate_model(request: Request, run_id: int):
        run = _run_or_404(store, run_id)
        body = await _json(request)
        ds = _dataset_or_404(store, int(_number(body, "dataset", 0)))
        model = _model_file(run)
        return await asyncio.to_thread(_evaluate, model, ds)

    # -- try it ------------------------------------------------------------------------------------------
    @app.get("/models/{run_id}/try", response_class=HTMLResponse)
    def try_page(request: Request, run_id: int):
        run = _run_or_404(store, run_id)
        _model_file(run)
        from masksmith.models.artifact import load_artifact

        artifact = load_artifact(Path(run["folder"]) / runfolder.MODEL)
        classes = [{"name": n, "color": c} for n, c in artifact.class_map.colors_by_name().items()]
        return page(request, "try.html", run=run, row=_model_row(run), classes=classes,
                    limit_mb=app.state.limits["photo"] // MB)

    @app.post("/api/models/{run_id}/try")
    async def try_photo(request: Request, run_id: int, filename: str = "photo"):
        run = _run_or_404(store, run_id)
        model = _model_file(run)
        token = uuid.uuid4().hex
        folder = data_dir / "results" / token
        folder.mkdir(parents=True)
        upload = folder / ".upload"
        try:
            await _stream_to_file(request, upload, app.state.limits["photo"], what="the photo")
            return await asyncio.to_thread(_predict_photo, app, run_id, model, upload, folder, filename, token)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            upload.unlink(missing_ok=True)

    @app.get("/results/{token}/overlay.png")
    def result_overlay(token: str, opacity: float = 0.5):
        """The overlay at the opacity the slider shows (the download button)."""
        import numpy as np

        from masksmith.core.images import read_image
        from masksmith.draw import overlay

        folder, meta = _result(data_dir, token)
        image = read_image(folder / meta["files"]["photo"])
        from PIL import Image

        mask = np.asarray(Image.open(folder / meta["files"]["mask"]))
        picture = overlay(image, mask, [tuple(c) for c in meta["colors"]], min(1.0, max(0.0, opacity)))
        return _png(picture, f"{meta['stem']}_overlay.png")

    @app.get("/results/{token}/all.zip")
    def result_zip(token: str):
        from masksmith.data.archive import zip_folder

        folder, meta = _result(data_dir, token)
        out = data_dir / "cache" / "zips" / f"{token}.zip"
        zip_folder(folder, out, arcname=meta["stem"])
        return FileResponse(out, filename=f"{meta['stem']}-results.zip", media_type="application/zip")

    @app.get("/results/{token}/{name}")
    def result_file(token: str, name: str):
        folder, _ = _result(data_dir, token)
        return _file_under(folder, name, download=name.endswith(".csv"))

    @app.post("/api/results/{token}/recolor")
    async def recolor_result(request: Request, token: str):
        from masksmith.apps.recolor import parse_color, recolor

        body = await _json(request)
        folder, meta = _result(data_dir, token)
        mask = _class_mask(folder, meta, str(body.get("class", "")))
        color = parse_color(str(body.get("color", "")))
        return await asyncio.to_thread(_write_app_result, folder, meta, "recolor",
                                       lambda image: recolor(image, mask, color=color))

    @app.post("/api/results/{token}/wheels")
    async def wheels_result(request: Request, token: str):
        from masksmith.apps.paste import demo_rim, paste_all, regions

        body = await _json(request)
        folder, meta = _result(data_dir, token)
        mask = _class_mask(folder, meta, str(body.get("class", "")))
        parts = regions(mask, min_pixels=16)
        if not parts:
            raise WebError(400, f"no {body.get('class')!r} region was found in this photo to put a wheel on.")
        return await asyncio.to_thread(_write_app_result, folder, meta, "wheels",
                                       lambda image: paste_all(image, parts, demo_rim(256)))

    @app.get("/api/health")
    def health():
        return {"ok": True, "schema": store.version, "runs": len(store.runs()), "datasets": len(store.datasets())}

    if load_sample:
        _load_sample_once(store, data_dir)
    _clean_results(data_dir)
    return app


RESULTS_KEPT_DAYS = 7


def _clean_results(data_dir: Path, days: float = RESULTS_KEPT_DAYS) -> None:
    """"Try it" results older than a week go at start (they were downloadable; the photos were the user's)."""
    cutoff = time.time() - days * 86400
    for folder in (data_dir / "results").glob("*"):
        try:
            if folder.is_dir() and re.fullmatch(r"[0-9a-f]{32}", folder.name) and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder)
        except OSError:
            log.warning("could not remove the old result %s", folder)


# ---------------------------------------------------------------------------------------------- helpers
def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def _refuse(request: Request, status: int, message: str) -> Response:
    if _wants_html(request):
        from html import escape

        return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>masksmith</title>"
                            f"<link rel=stylesheet href=/static/app.css><main class=narrow><h1>Sorry</h1>"
                            f"<p class=error>{escape(message)}</p><p><a href=/datasets>Back to the data sets</a>"
                            f"</p></main>", status_code=status)
    return JSONResponse({"error": message}, status_code=status)


def _plain(message: str, data_dir: Path) -> str:
    """An error sentence without the data folder's absolute path (the page names files inside it)."""
    return message.replace(str(data_dir) + "/", "").replace(str(data_dir), "the data folder")


async def _stream_to_file(request: Request, path: Path, limit: int, what: str) -> int:
    """The request body written to `path` chunk by chunk, stopping at `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise WebError(413, f"{what} is {int(declared) / MB:.0f} MB, more than the {limit / MB:.0f} MB allowed.")
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with path.open("wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                out.close()
                path.unlink(missing_ok=True)
                raise WebError(413, f"{what} is more than the {limit / MB:.0f} MB allowed.")
            out.write(chunk)
    if size == 0:
        path.unlink(missing_ok=True)
        raise WebError(400, f"{what} is empty (0 bytes); choose the file again.")
    return size


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise WebError(400, "the request is not JSON.") from None
    if not isinstance(body, dict):
        raise WebError(400, "the request is not a JSON object.")
    return body


def _number(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    if value in (None, ""):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise WebError(400, f"{key} must be a number, not {value!r}.") from None


def _hex_color(value: Any) -> tuple[int, int, int]:
    text = str(value).strip()
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", text):
        raise WebError(400, f"colour {text!r} is not written as #rrggbb.")
    return tuple(int(text[k:k + 2], 16) for k in (1, 3, 5))  # type: ignore[return-value]


def _dataset_or_404(store: Store, dataset_id: int) -> dict[str, Any]:
    ds = store.dataset(dataset_id)
    if ds is None:
        raise WebError(404, "there is no such data set (it may have been deleted).")
    return ds


def _run_or_404(store: Store, run_id: int) -> dict[str, Any]:
    run = store.run(run_id)
    if run is None:
        raise WebError(404, "there is no such run or model (it may have been deleted).")
    return run


def _model_file(run: dict[str, Any]) -> Path:
    path = Path(run["folder"]) / runfolder.MODEL
    if not path.is_file():
        raise WebError(409, f"{run['name']} has no model yet: it appears after the first epoch.")
    return path


def _file_under(root: Path, name: str, download: bool = False) -> FileResponse:
    try:
        path = resolve_under(root, name, what="file name")
    except UnsafePath:
        raise WebError(404, "there is no such file.") from None
    if not path.is_file() or path.name.startswith("."):
        raise WebError(404, "there is no such file.")
    return FileResponse(path, filename=path.name if download else None, headers={"Cache-Control": "no-cache"})


def _remove_under(root: Path, folder: Path) -> None:
    """Delete `folder` only when it lies inside `root` (our data folder's part)."""
    from masksmith.core.paths import is_under

    if folder.exists() and is_under(folder, root) and folder.resolve() != root.resolve():
        shutil.rmtree(folder)


def _png(picture: Any, filename: str) -> Response:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, "PNG")
    return Response(buf.getvalue(), media_type="image/png",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# --------------------------------------------------------------------------------- data sets (library calls)
def _inspect(root: Path) -> tuple[str, dict[str, Any]]:
    """What `masksmith dataset inspect` finds, as JSON for the store: stats, problems, notes, colours."""
    from masksmith.data import load_dataset
    from masksmith.data.stats import dataset_stats

    ds = load_dataset(root, strict=False, need_pixels=False)
    stats = dataset_stats(ds, pixels=True)
    summary = stats.to_dict()
    summary["problems"] = [{"text": str(p), "dropped": p.dropped, "count": p.count} for p in stats.problems]
    summary["notes"] = [str(n) for n in stats.notes]
    summary["class_colors"] = [{"name": c.name, "color": list(c.color)} for c in ds.classes]
    summary["splits"] = dict(stats.splits)
    return ds.format, summary


def _register_dataset(store: Store, root: Path, folder: Path | None, source: str, name: str) -> dict[str, Any]:
    format, stats = _inspect(root)
    name = store.free_name("datasets", name.strip()[:80] or "data")
    dataset_id = store.add_dataset(name, root, folder, source, format, stats)
    return {"id": dataset_id, "name": name, "url": f"/datasets/{dataset_id}"}


def _add_uploaded_zip(store: Store, data_dir: Path, upload: Path, name: str) -> dict[str, Any]:
    import zipfile

    from masksmith.data.archive import extract_zip

    if not zipfile.is_zipfile(upload):
        raise WebError(400, "the file is not a zip archive; zip the data set folder (annotations and images) "
                            "and upload the .zip.")
    folder = data_dir / "datasets" / uuid.uuid4().hex[:12]
    try:
        root = extract_zip(upload, folder / "files")
        label = safe_filename(Path(name).stem if name.lower().endswith(".zip") else name, "data")
        return _register_dataset(store, root, folder, "upload", label)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _load_sample_once(store: Store, data_dir: Path) -> None:
    """The built-in sample data set, added on the first start so a new user sees a working project."""
    marker = data_dir / ".sample-loaded"
    if marker.exists():
        return
    from masksmith.data.synthetic import make_sample_dataset

    folder = data_dir / "datasets" / "sample"
    if not folder.is_dir():
        tmp = data_dir / "datasets" / f".sample-{uuid.uuid4().hex[:6]}"
        make_sample_dataset(tmp / "files")
        tmp.rename(folder)
    _register_dataset(store, folder / "files", folder, "sample", "sample cars")
    marker.write_text("the sample data set was added once; deleting it keeps it deleted\n")


def _dataset_for_training(ds: dict[str, Any]):
    from masksmith.data import load_dataset

    dataset = load_dataset(ds["root"], strict=False)
    if ds["colors"]:
        dataset.recolor_classes(ds["colors"])
    return dataset


def _preview_file(data_dir: Path, ds: dict[str, Any]) -> Path:
    """The preview grid in the class colours (cached per colour choice)."""
    import hashlib

    from masksmith.core.outputs import atomic_save_image
    from masksmith.data.preview import preview_picture

    key = hashlib.sha1(json.dumps(ds["colors"], sort_keys=True).encode()).hexdigest()[:10]
    path = data_dir / "cache" / f"dataset-{ds['id']}" / f"preview-{key}.png"
    if not path.is_file():
        picture = preview_picture(_dataset_for_training(ds), count=6, cell=200)
        atomic_save_image(picture.pixels, path, **picture.save_options())
    return path


def _split_dataset(store: Store, data_dir: Path, ds: dict[str, Any], val: float, test: float,
                   seed: int) -> dict[str, Any]:
    """Split at random (seeded) into train / val / test, each written as a COCO data set of its own."""
    from masksmith import service
    from masksmith.data.convert import convert

    parts = service.split(_dataset_for_training(ds), val, test, seed)
    made = []
    for part_name, part in parts.items():
        folder = data_dir / "datasets" / uuid.uuid4().hex[:12]
        convert(part, "coco", folder / "files")
        made.append(_register_dataset(store, folder / "files", folder, "split", f"{ds['name']} {part_name}"))
    return {"parts": made}


def _evaluate(model: Path, ds: dict[str, Any]) -> dict[str, Any]:
    from masksmith import service

    name = safe_filename(ds["name"], "data")
    evaluation = service.evaluate(model, ds["root"], strict=False, label=name)
    return {"evaluation": Path(evaluation.files["metrics"]).parent.name}


# -------------------------------------------------------------------------------------- training settings
# the train form's fields, as the page labels them (messages name settings; the page names its fields)
FIELD_LABELS = {"size": "Image size", "shrink": "Shrink factor", "batch_size": "Batch size",
                "time_budget": "Minutes", "epochs": "Epochs", "lr": "Learning rate",
                "val_fraction": "Validation share", "arch": "Model", "task": "Task", "val": "Validation part",
                "test": "Test part", "seed": "Seed", "color": "Colour", "classes": "Part"}


def spell_field(name: str, value: str | None) -> str:
    label = FIELD_LABELS.get(name)
    if label is None:
        return f"the setting {name}" + (f"={value}" if value is not None else "")
    return f"“{label}”" + (f" {value}" if value is not None else "")


def web_message(text: str) -> str:
    """A library message worded for the page: settings named by their field labels."""
    from masksmith.core.errors import spell_settings

    return spell_settings(text, spell_field)


def _train_config(body: dict[str, Any], ds: dict[str, Any], data_dir: Path):
    """A TrainConfig from the train form, as `masksmith train` builds one (masksmith.service)."""
    from masksmith import service

    minutes, epochs = _number(body, "minutes", 0), int(_number(body, "epochs", 0))
    seconds = _number(body, "seconds", 0) or 60 * minutes
    if seconds <= 0 and epochs <= 0:
        raise WebError(400, "give a time budget (minutes) or a number of epochs.")
    # as `masksmith train`: what the user leaves empty is planned from the data set's fingerprint
    given = {key: _number(body, key, 0) or None for key in ("size", "shrink", "batch_size")}
    return service.training_config(
        ds["root"], task=str(body.get("task") or "semantic"), model=str(body.get("model") or "") or None,
        strict_data=False, class_colors=ds["colors"], time_budget=seconds if seconds > 0 else None,
        epochs=epochs if seconds <= 0 else None, size=int(given["size"]) if given["size"] else None,
        shrink=given["shrink"], batch_size=int(given["batch_size"]) if given["batch_size"] else None,
        lr=_number(body, "lr", 0) or None, val_fraction=_number(body, "val_fraction", 0) or None,
        flip=bool(body.get("flip", True)),
        encoder_weights="none" if body.get("pretrained") is False else None)


def _plan_summary(config) -> dict[str, Any]:
    """The library's plan summary for a train form's config (masksmith.service.plan_summary), for the page."""
    from masksmith import service
    from masksmith.core.durations import format_duration

    summary = service.plan_summary(config.data, config.time_budget, config=config)
    out = summary.to_dict()
    out.pop("record", None)
    out["finish_text"] = time.strftime("%H:%M", time.localtime(summary.finish)) if summary.finish else None
    out["train_text"] = format_duration(summary.train_seconds) if summary.train_seconds else None
    return out


def _model_row(run: dict[str, Any]) -> dict[str, Any]:
    """A models table row: data set, task, time trained, headline metric."""
    from masksmith import service

    folder = Path(run["folder"])
    progress = runfolder.run_progress(folder)
    rows = progress["epochs"]
    headline = service.run_headline(folder, run["task"])
    return {**run, "epochs": len(rows), "seconds": rows[-1].get("seconds") if rows else None,
            "metric": headline.value, "metric_text": headline.text(),
            "metric_name": f"{headline.name} ({headline.source})", "has_model": progress["model"]}


# ------------------------------------------------------------------------------------------------- try it
def _predictor(app: FastAPI, run_id: int, model: Path):
    """The model's predictor, opened once and reused while its file does not change."""
    from masksmith.infer import open_predictor

    key = (str(model), model.stat().st_mtime_ns)
    with app.state.predictor_lock:
        cached = app.state.predictors.get(run_id)
        if cached is None or cached[0] != key:
            cached = (key, open_predictor(model), threading.Lock())
            app.state.predictors[run_id] = cached
    return cached[1], cached[2]


def _predict_photo(app: FastAPI, run_id: int, model: Path, upload: Path, folder: Path, filename: str,
                   token: str) -> dict[str, Any]:
    from masksmith.apps.photo import predict_photo, write_photo_results
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder

    stem = safe_filename(Path(filename).stem, "photo")
    try:
        image = read_image(upload)
    except MasksmithError as exc:
        raise WebError(400, f"{filename}: {exc.problem}") from None
    predictor, lock = _predictor(app, run_id, model)
    with lock:  # regions under 0.2 % of the photo are not worth a cut-out
        prediction = predict_photo(predictor, image, min_pixels=max(16, image.shape[0] * image.shape[1] // 500))
    files = write_photo_results(image, prediction, OutputFolder(folder), stem=stem)
    meta = {"stem": stem, "filename": filename, "files": files, "run": run_id,
            "classes": list(prediction.classes.names), "colors": [list(c) for c in prediction.classes.palette()],
            "found": prediction.found(),
            "objects": len(prediction.objects), "size": [int(image.shape[1]), int(image.shape[0])]}
    from masksmith.core.outputs import atomic_write_text

    atomic_write_text(folder / ".meta.json", json.dumps(meta))
    return {"token": token, **meta, "urls": {k: f"/results/{token}/{v}" for k, v in files.items()},
            "zip": f"/results/{token}/all.zip", "overlay": f"/results/{token}/overlay.png"}


def _result(data_dir: Path, token: str) -> tuple[Path, dict[str, Any]]:
    if not re.fullmatch(r"[0-9a-f]{32}", token):
        raise WebError(404, "there is no such result.")
    folder = data_dir / "results" / token
    try:
        meta = json.loads((folder / ".meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise WebError(404, "there is no such result (it may have been cleaned up).") from None
    return folder, meta


def _class_mask(folder: Path, meta: dict[str, Any], name: str):
    import numpy as np
    from PIL import Image

    from masksmith.core.labels import ClassMap

    if name not in meta["classes"]:
        raise WebError(400, f"the model has no class {name!r}; choose one of {', '.join(meta['classes'])}.")
    classes = ClassMap.from_palette(meta["classes"], meta["colors"])
    mask = np.asarray(Image.open(folder / meta["files"]["mask"])) == classes.value(name)
    if not mask.any():
        raise WebError(400, f"the model found no {name!r} in this photo.")
    return mask


def _write_app_result(folder: Path, meta: dict[str, Any], kind: str, make) -> dict[str, Any]:
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder

    image = read_image(folder / meta["files"]["photo"])
    name = f"{meta['stem']}_{kind}.png"
    OutputFolder(folder).save_image(name, make(image))
    return {"file": name, "url": f"/results/{folder.name}/{name}?t={time.time():.0f}"}
