"""What the routes depend on, through FastAPI's `Depends`: the store, the data folder, the limits, the job
runner, the predictor cache and the page renderer (all on app.state, set once by `create_app`), and the data
set or run a path names (a 404 sentence when there is none)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from masksmith.core import runfolder
from masksmith.web.common import WebError
from masksmith.web.jobs import JobRunner
from masksmith.web.store import Store

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Limits:
    upload: int  # bytes of a data set zip
    photo: int  # bytes of one photo to try a model on


class PredictorCache:
    """Each model's predictor, opened once and reused while its file does not change; one lock per model
    (a predictor is not thread-safe), so two photos for two models are predicted at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, tuple[tuple[str, int], Any, threading.Lock]] = {}

    def get(self, run_id: int, model: Path) -> tuple[Any, threading.Lock]:
        from masksmith.infer import open_predictor

        key = (str(model), model.stat().st_mtime_ns)
        with self._lock:
            cached = self._open.get(run_id)
            if cached is None or cached[0] != key:
                cached = (key, open_predictor(model), threading.Lock())
                self._open[run_id] = cached
        return cached[1], cached[2]

    def drop(self, run_id: int) -> None:
        with self._lock:
            self._open.pop(run_id, None)


def make_templates(data_dir: Path) -> Jinja2Templates:
    """The pages' templates; `words` spells a library sentence for the page (field labels, no server path)."""
    from masksmith.web.common import plain
    from masksmith.web.forms import web_message

    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters.update(rgb=lambda c: "#" + "".join(f"{int(v):02x}" for v in c),
                                 when=lambda t: time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-",
                                 words=lambda text: plain(web_message(str(text)), data_dir))
    return templates


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_data_dir(request: Request) -> Path:
    return request.app.state.data_dir


def get_limits(request: Request) -> Limits:
    return request.app.state.limits


def get_jobs(request: Request) -> JobRunner:
    return request.app.state.jobs


def get_predictors(request: Request) -> PredictorCache:
    return request.app.state.predictors


StoreDep = Annotated[Store, Depends(get_store)]
DataDir = Annotated[Path, Depends(get_data_dir)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
JobsDep = Annotated[JobRunner, Depends(get_jobs)]
PredictorsDep = Annotated[PredictorCache, Depends(get_predictors)]


class Pages:
    """Renders a template with the navigation tab it belongs to."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def __call__(self, name: str, **context: Any) -> HTMLResponse:
        templates = self.request.app.state.templates
        return templates.TemplateResponse(self.request, name, {"nav": name.split(".")[0], **context})


PagesDep = Annotated[Pages, Depends(Pages)]


def find_dataset(store: Store, dataset_id: int) -> dict[str, Any]:
    ds = store.dataset(dataset_id)
    if ds is None:
        raise WebError(404, "there is no such data set (it may have been deleted).")
    return ds


def find_run(store: Store, run_id: int) -> dict[str, Any]:
    run = store.run(run_id)
    if run is None:
        raise WebError(404, "there is no such run or model (it may have been deleted).")
    return run


def dataset_of_path(dataset_id: int, store: StoreDep) -> dict[str, Any]:
    return find_dataset(store, dataset_id)


def run_of_path(run_id: int, store: StoreDep) -> dict[str, Any]:
    return find_run(store, run_id)


DatasetDep = Annotated[dict[str, Any], Depends(dataset_of_path)]
RunDep = Annotated[dict[str, Any], Depends(run_of_path)]


def model_file(run: dict[str, Any]) -> Path:
    """The run's model file, or a 409 sentence when training has not written one yet."""
    path = Path(run["folder"]) / runfolder.MODEL
    if not path.is_file():
        raise WebError(409, f"{run['name']} has no model yet: it appears after the first epoch.")
    return path
