"""One HTML page per run, to open offline and to send to someone who was not at the terminal.

The page holds the data summary, the configuration (all of config.yaml, whatever it records), the training
curves and the last preview, and for each data set evaluated so far (the validation split when training ends,
then every `masksmith evaluate`) the scores, the per-class table, the confusion matrix and the worst and best
images with their scores. Pictures are embedded as data: URIs and the styles inline, so the one file is all
there is: no internet, no other files.

One renderer, two places: `report_sections(run)` gives the sections as HTML fragments (the web app's model
page shows them), `render_report(run)` the whole page, and `write_report(run)` writes it (training and
`evaluate` call it when they finish; so does `masksmith report`).
"""

from __future__ import annotations

import base64
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from masksmith.core import runfolder
from masksmith.core.durations import format_duration
from masksmith.core.errors import MasksmithError
from masksmith.tasks import get_task

SECTIONS = ("summary", "data", "configuration", "training", "evaluation")


@dataclass
class ReportSection:
    id: str  # also the HTML id of its <section>
    title: str
    html: str  # a fragment: <h2> and the content, with pictures embedded


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("masksmith", "templates/report"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(num=_num, pct=_pct, duration=_duration, rgb=_rgb)
    return env


def report_css() -> str:
    """The page's styles, scoped to `.masksmith-report` so a host page can include them."""
    return _environment().get_template("report.css").render()


def report_sections(run_dir: str | Path) -> list[ReportSection]:
    """The report's sections for a run folder, in order (see SECTIONS)."""
    run = resolve_run(run_dir)
    context = _context(run)
    env = _environment()
    titles = {"summary": "Summary", "data": "Data", "configuration": "Configuration", "training": "Training",
              "evaluation": "Evaluation"}
    return [ReportSection(key, titles[key], env.get_template(f"{key}.html.j2").render(title=titles[key], **context))
            for key in SECTIONS]


def render_report(run_dir: str | Path) -> str:
    """The whole report as one self-contained HTML page."""
    run = resolve_run(run_dir)
    sections = report_sections(run)
    return _environment().get_template("page.html.j2").render(
        name=run.name, sections=sections, css=report_css(), created=time.strftime("%Y-%m-%d %H:%M"))


def write_report(run_dir: str | Path, out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Write the report: into the run folder (report.html) by default, or to `out`, a file the user chose
    (outside the run folder; another file there is replaced only with `overwrite`)."""
    run = resolve_run(run_dir)
    html = render_report(run)
    target = run / runfolder.REPORT
    if out is None or Path(out).resolve() == target.resolve():
        from masksmith.core.outputs import atomic_write_text

        return atomic_write_text(target, html)
    from masksmith.core.outputs import OutputFolder

    folder, name = OutputFolder.for_file(out, inputs=[run], overwrite=overwrite)
    return folder.write_text(name, html)


def update_report(evaluation_dir: str | Path) -> Path | None:
    """Rewrite the report of the run an evaluation was written into (RUN/evaluation/<name>/); None when the
    folder lies elsewhere. `evaluate` calls it, so the report always shows every evaluation."""
    folder = Path(evaluation_dir)
    if folder.parent.name != runfolder.EVALUATION or not runfolder.is_run_folder(folder.parent.parent):
        return None
    return write_report(folder.parent.parent)


def resolve_run(path: str | Path) -> Path:
    """The run folder for a run folder or its model file; one clear error otherwise."""
    run = runfolder.run_folder_of(path)
    if run is None:
        raise MasksmithError("is not a run folder (no config.yaml).", path=path,
                             fix="pass the run folder that `masksmith train` printed, e.g. runs/NAME.")
    return run


# --------------------------------------------------------------------------------------------- reading
def picture(path: Path, alt: str = "") -> dict[str, Any] | None:
    """A picture for the page: its data: URI, its alt text (the PNG's own description when it has one) and
    its size; None when the file is not there."""
    path = Path(path)
    if not path.is_file():
        return None
    from PIL import Image

    data = path.read_bytes()
    with Image.open(path) as im:
        width, height = im.size
        described = getattr(im, "text", {}).get("Description", "")
    mime = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
    return {"src": f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", "alt": described or alt,
            "width": width, "height": height, "name": path.name}


def _read_yaml(path: Path) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
    except (OSError, yaml.YAMLError):
        return {}, ""
    return (data if isinstance(data, dict) else {"value": data}), text


def _read_json(path: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _model_summary(run: Path) -> dict[str, Any] | None:
    path = run / runfolder.MODEL
    if not path.is_file():
        return None
    from masksmith.models.artifact import load_artifact

    try:
        artifact = load_artifact(path)
    except MasksmithError:
        return None
    return {"task": artifact.task, "model": artifact.model, "class_map": artifact.class_map,
            "training": artifact.training,
            "input_size": list(artifact.input_size), "megabytes": path.stat().st_size / 1e6}


def config_rows(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """config.yaml flattened into (key, value) rows, nested mappings as dotted keys, so whatever a run
    records there (a training plan included) shows without the report knowing its fields."""
    if isinstance(value, dict) and value:
        rows = []
        for key, item in value.items():
            rows += config_rows(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        rows = []
        for k, item in enumerate(value):
            rows += config_rows(item, f"{prefix}[{k}]")
        return rows
    shown = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    shown = shown.removesuffix("\n...").removesuffix("...").strip()
    return [(prefix or "value", shown)]


def plan_rows(config: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(choice, value, source, reason) of each choice a training plan recorded in config.yaml (as
    masksmith.train.plan writes them: {name: {value, source, reason}})."""
    plan = config.get("plan")
    if not isinstance(plan, dict):
        return []
    def shown(name: str, value: Any) -> str:
        if name == "budget" and isinstance(value, dict):  # the budget's arithmetic: its headline figures
            return f"{value.get('passes')} passes, {value.get('train_seconds')} s of training"
        return config_rows(value)[0][1]

    return [(str(name), shown(str(name), c.get("value")), str(c["source"]), str(c.get("reason", "")))
            for name, c in plan.items() if isinstance(c, dict) and "source" in c]


def _context(run: Path) -> dict[str, Any]:
    config, config_text = _read_yaml(run / runfolder.CONFIG)
    planned = plan_rows(config)
    shown = {f"plan.{name}." for name, *_ in planned}
    model = _model_summary(run)
    data = _read_json(run / runfolder.DATA)
    rows = runfolder.read_metrics(run / runfolder.METRICS) if (run / runfolder.METRICS).is_file() else []
    task = (model or {}).get("task") or config.get("task", "semantic")
    facts = get_task(task)
    monitor = facts.monitor
    scored = [r for r in rows if monitor in r]
    best = max(scored, key=lambda r: r[monitor]) if scored else None
    classes = _classes(model, data)
    previews = runfolder.previews(run)
    evaluations = [_evaluation(folder, metrics, classes) for folder, metrics in runfolder.evaluations(run)]
    return {
        "run": {"name": run.name, "path": str(run.resolve())}, "task": task, "config": config,
        "config_rows": [(k, v) for k, v in config_rows(config) if not k.startswith(tuple(shown))],
        "plan_rows": planned, "config_text": config_text, "model": model, "data": data,
        "classes": classes, "epochs": rows, "last": rows[-1] if rows else None, "best": best, "monitor": monitor,
        "monitor_name": f"validation {facts.headline}",
        "curves": picture(run / runfolder.CURVES, "training curves"),
        "preview": picture(previews[-1], "the last epoch's preview") if previews else None,
        "preview_count": len(previews), "evaluations": evaluations,
    }


def _classes(model: dict[str, Any] | None, data: dict[str, Any] | None) -> list[dict[str, Any]]:
    """[{name, color}], from the model file (its colours are the ones drawn) or data.json."""
    if model:
        return [{"name": n, "color": c} for n, c in model["class_map"].colors_by_name().items()]
    return [{"name": c["name"], "color": tuple(c["color"])} for c in (data or {}).get("classes", [])]


def _evaluation(folder: Path, metrics: dict[str, Any], classes: list[dict[str, Any]]) -> dict[str, Any]:
    """One evaluated data set, ready for the template (the same for both tasks: `Evaluation`)."""
    from masksmith.evaluate.result import Evaluation, format_value

    evaluation = Evaluation.from_dict(metrics)
    files = metrics.get("files", {})
    colors = {c["name"]: c["color"] for c in classes}
    per_class = [{"class": r.name, "color": colors.get(r.name, (0, 0, 0)),
                  "values": [format_value(v, c.kind) for v, c in zip(r.values, evaluation.columns, strict=False)]}
                 for r in evaluation.per_class]
    name = folder.name if folder.name != runfolder.EVALUATION else runfolder.data_name(metrics.get("data", "data"))
    return {
        "id": name, "name": name, "data": evaluation.data, "images": evaluation.images,
        "seconds": metrics.get("seconds"), "task": evaluation.task,
        "headline": [(f.name, f.text()) for f in evaluation.figures], "headers": [c.name for c in evaluation.columns],
        "per_class": per_class, "score_name": evaluation.image_score, "notes": evaluation.notes,
        "confusion": picture(folder / files.get("confusion_matrix", "confusion.png"), "confusion matrix"),
        "worst": picture(folder / files.get("worst_gallery", "worst.png"), "worst-predicted images"),
        "best": picture(folder / files.get("best_gallery", "best.png"), "best-predicted images"),
        "worst_images": metrics.get("worst_images", []), "best_images": metrics.get("best_images", []),
    }


# ------------------------------------------------------------------------------------------- formatting
def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, int | float) else str(x)


def _pct(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _duration(seconds: Any) -> str:
    return "-" if seconds is None else format_duration(float(seconds))


def _rgb(color: Any) -> str:
    r, g, b = (int(v) for v in color)
    return f"rgb({r}, {g}, {b})"
