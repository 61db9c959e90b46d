"""The local web app (`masksmith serve`): `create_app` wires the guard, the error handlers, the lifespan, the
static files and the routers (routes/: data sets, runs, models, results); what routes depend on comes through
deps.py, request bodies are the pydantic models of forms.py, state is in store.py and trainings run in jobs.py.
Every route calls the library the CLI calls (masksmith.service and the modules below it).

Safety, because a local app is reachable by every page the user visits:
- the Host header must name this machine (127.0.0.1, localhost, [::1], or the --host given): no DNS rebinding;
- every state-changing request (POST, PUT, PATCH, DELETE) must come from our own pages (Origin, or
  Sec-Fetch-Site, when the browser sends them): no cross-site requests from other tabs;
- served on another address than loopback, every request needs the token printed at start (cookie after the
  first visit with ?token=);
- uploads are streamed to disk under a size limit, zips are extracted by masksmith.data.archive (no path
  escapes, no links, no bombs), photos read by masksmith.core.images; names from users go through
  masksmith.core.paths; files are served only from under the data folder;
- errors reach the page as one sentence (MasksmithError's text, settings named by the form's labels, no server
  path); the server log keeps the traceback.
"""

from __future__ import annotations

import hmac
import logging
import re
import shutil
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from masksmith.core.errors import MasksmithError
from masksmith.web.common import MB, WebError, plain, refuse
from masksmith.web.deps import HERE, Limits, PredictorCache, make_templates
from masksmith.web.forms import validation_message, web_message
from masksmith.web.jobs import JobRunner
from masksmith.web.register import load_sample_once
from masksmith.web.routes import datasets, labelling, models, results, runs
from masksmith.web.store import Store

log = logging.getLogger("masksmith.web")
UPLOAD_LIMIT = 2048 * MB  # a data set zip
PHOTO_LIMIT = 50 * MB  # one photo to try a model on
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
TOKEN_COOKIE = "masksmith_token"
RESULTS_KEPT_DAYS = 7


def create_app(data_dir: str | Path, *, host: str = "127.0.0.1", token: str | None = None,
               load_sample: bool = True, upload_limit: int = UPLOAD_LIMIT, photo_limit: int = PHOTO_LIMIT,
               watch: bool = True) -> FastAPI:
    """The app over the data folder `data_dir` (created when missing). `host`: the address served (other
    Host headers than it and loopback are refused); `token`: required on every request when given;
    `load_sample`: on first start, add the built-in sample data set; `watch`: poll the training jobs."""
    data_dir = Path(data_dir).expanduser().resolve()
    store = Store(data_dir)
    jobs = JobRunner(store)
    closing = threading.Event()  # set when the server stops: live event streams end at once

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        closing.clear()
        if watch:
            jobs.start_watching()
        yield
        closing.set()
        jobs.shutdown()

    app = FastAPI(title="masksmith", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store, app.state.jobs, app.state.data_dir, app.state.closing = store, jobs, data_dir, closing
    app.state.limits = Limits(upload=upload_limit, photo=photo_limit)
    app.state.predictors = PredictorCache()
    app.state.templates = make_templates(data_dir)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    _guard(app, host, token)
    _error_handlers(app, data_dir)
    for module in (datasets, runs, models, results, labelling):
        app.include_router(module.router)
    app.get("/api/health")(lambda: {"ok": True, "schema": store.version, "runs": len(store.runs()),
                                    "datasets": len(store.datasets())})
    if load_sample:
        load_sample_once(store, data_dir)
    _clean_results(data_dir)
    return app


def _guard(app: FastAPI, host: str, token: str | None) -> None:
    """The Host, token and Origin checks, before any route."""
    any_host = host in ("0.0.0.0", "::")
    allowed_hosts = set(LOOPBACK) | (set() if any_host else {host.lower()})

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host_header = request.headers.get("host", "")
        if not any_host and _host_name(host_header) not in allowed_hosts:
            return refuse(request, 400, f"this server answers only to {', '.join(sorted(allowed_hosts))}, "
                                        f"not to {host_header!r}.")
        if token is not None:
            given = request.cookies.get(TOKEN_COOKIE) or request.headers.get("x-masksmith-token") or ""
            query = request.query_params.get("token")
            if query and hmac.compare_digest(query, token) and request.method == "GET":
                response = RedirectResponse(str(request.url.remove_query_params("token")), status_code=303)
                response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
                return response
            if not hmac.compare_digest(given, token):
                return refuse(request, 401, "this server needs its access token: open the address it printed "
                                            "at start (…/?token=…).")
        if request.method in UNSAFE_METHODS:
            origin = request.headers.get("origin")
            fetch_site = request.headers.get("sec-fetch-site")
            if origin is not None and origin != f"{request.url.scheme}://{host_header}":
                return refuse(request, 403, f"refused a request from another site ({origin}).")
            if origin is None and fetch_site in ("cross-site", "same-site"):
                return refuse(request, 403, "refused a request from another site.")
        return await call_next(request)


def _error_handlers(app: FastAPI, data_dir: Path) -> None:
    """Every refusal as one sentence: ours, the library's (worded for the page, no server path), a body that
    cannot be read (its field named by its label), and anything else (the log keeps the traceback)."""

    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError):
        return refuse(request, exc.status, plain(exc.message, data_dir))

    @app.exception_handler(MasksmithError)
    async def masksmith_error(request: Request, exc: MasksmithError):
        from masksmith.core.errors import FormatNotRecognised

        log.info("refused %s %s: %s", request.method, request.url.path, exc)
        help = "layout" if isinstance(exc, FormatNotRecognised) else None  # the page shows example layouts
        return refuse(request, 400, plain(web_message(str(exc)), data_dir), help)

    @app.exception_handler(RequestValidationError)
    async def unreadable(request: Request, exc: RequestValidationError):
        return refuse(request, 400, validation_message(list(exc.errors())))

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return refuse(request, 500, f"something went wrong on the server ({type(exc).__name__}); the server's "
                                    "log has the details.")


def _clean_results(data_dir: Path, days: float = RESULTS_KEPT_DAYS) -> None:
    """"Try it" results older than a week go at start (they were downloadable; the photos were the user's)."""
    cutoff = time.time() - days * 86400
    for folder in (data_dir / "results").glob("*"):
        try:
            if folder.is_dir() and re.fullmatch(r"[0-9a-f]{32}", folder.name) and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder)
        except OSError:
            log.warning("could not remove the old result %s", folder)


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
