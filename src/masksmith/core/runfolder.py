"""The run folder's layout, in one place for the code that writes it (training, evaluate) and the code that
reads it (the report, the web app):

runs/<name>/
  config.yaml            the TrainConfig (and whatever else training records there)
  data.json              what was trained on: the data set, images per split, classes and their colours
  metrics.csv            one row per epoch; curves.png draws it
  previews/epoch_NNN.png photo | truth | prediction | difference, per epoch
  checkpoints/           last.ckpt, best.ckpt, interrupted.ckpt
  model.masksmith        the model file
  evaluation/<data>/     one folder per data set evaluated: metrics.json, confusion.png, worst.png, best.png
                         ("validation" is the validation split, evaluated when training ends)
  report.html            everything above in one self-contained page (`masksmith report`)
  status.json            written by a training started from the web app: state, process id, times, error
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from masksmith.core.outputs import atomic_write_text
from masksmith.core.paths import safe_filename

CONFIG = "config.yaml"
DATA = "data.json"
METRICS = "metrics.csv"
CURVES = "curves.png"
PREVIEWS = "previews"
MODEL = "model.masksmith"
EVALUATION = "evaluation"
EVALUATION_METRICS = "metrics.json"
REPORT = "report.html"
VALIDATION = "validation"
STARTED_FROM = "started-from"  # a fine-tuned run: the model it started from, on the same validation photos
STATUS = "status.json"
LOCK = "training.lock"  # held by the training that writes the folder (train/run.py)


def is_run_folder(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / CONFIG).is_file()


def model_file(path: str | Path) -> Path:
    """The model file a model path names: a run folder's model.masksmith, or the file itself."""
    path = Path(path)
    return path / MODEL if path.is_dir() else path


def run_folder_of(model: str | Path) -> Path | None:
    """The run folder a model file (or run folder) belongs to, or None for a model file on its own."""
    model = Path(model)
    folder = model if model.is_dir() else model.parent
    return folder if is_run_folder(folder) else None


def append_csv_row(path: Path, columns: list[str], row: dict[str, Any]) -> Path:
    """The CSV rewritten with one more row, atomically: an interrupted epoch never leaves half a line."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    if not old:
        writer.writeheader()
    writer.writerow(row)
    return atomic_write_text(path, old + buf.getvalue())


def read_metrics(path: Path) -> list[dict[str, float]]:
    """metrics.csv as one dict per epoch (empty cells left out)."""
    with Path(path).open(encoding="utf-8") as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


def previews(run_dir: Path) -> list[Path]:
    """The per-epoch previews, oldest first."""
    return sorted((Path(run_dir) / PREVIEWS).glob("epoch_*.png"))


def data_name(data: str | Path) -> str:
    """A folder name for a data set: a folder's or a zip's name, an annotation file's folder."""
    path = Path(data)
    if path.suffix.lower() == ".zip":
        name = path.stem
    elif path.suffix and path.parent.name:
        name = path.parent.name
    else:
        name = path.name
    return safe_filename(name, fallback="data")


def evaluation_folder(run_dir: Path, data: str | Path, name: str | None = None) -> Path:
    """evaluation/<name>/ for this data set: the folder already holding its evaluation, else a new name
    (test, test-2, ...) so that two data sets with the same folder name keep their own results."""
    root = Path(run_dir) / EVALUATION
    base = name or data_name(data)
    k = 1
    while True:
        folder = root / (base if k == 1 else f"{base}-{k}")
        recorded = read_evaluation(folder)
        if recorded is None or recorded.get("data") in (data_label(data), None):
            return folder
        k += 1


def shown_name(out: str | Path, data: str | Path) -> str:
    """How pictures name the data an evaluation scored: the run's evaluation/<name>, else the data's name."""
    out = Path(out)
    return out.name if out.parent.name == EVALUATION else data_name(data)


def data_label(data: str | Path) -> str:
    """How an evaluation records its data set: the absolute path, or a name such as "validation"."""
    return str(Path(data).resolve()) if Path(data).exists() else str(data)


def read_evaluation(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(folder) / EVALUATION_METRICS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def evaluations(run_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(folder, metrics.json) of every data set evaluated so far, the validation split first, then by name."""
    root = Path(run_dir) / EVALUATION
    found = []
    legacy = read_evaluation(root)  # an evaluation written straight into evaluation/ by an older masksmith
    if legacy is not None:
        found.append((root, legacy))
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        metrics = read_evaluation(folder) if folder.is_dir() else None
        if metrics is not None:
            found.append((folder, metrics))
    return sorted(found, key=lambda fm: (fm[0].name != VALIDATION, fm[0].name))


def read_status(run_dir: Path) -> dict[str, Any]:
    """status.json (what the process training this run last said), or {} when there is none."""
    try:
        data = json.loads((Path(run_dir) / STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_status(run_dir: Path, **fields: Any) -> Path:
    """status.json updated with `fields`, atomically."""
    status = {**read_status(run_dir), **fields}
    return atomic_write_text(Path(run_dir) / STATUS, json.dumps(status, indent=1))


def run_progress(run_dir: Path) -> dict[str, Any]:
    """What a run folder shows of a training in progress: the epochs so far (metrics.csv rows), the newest
    preview's name and how many there are, whether a model file exists, and status.json."""
    run_dir = Path(run_dir)
    try:
        rows = read_metrics(run_dir / METRICS) if (run_dir / METRICS).is_file() else []
    except (OSError, ValueError):  # never half a row (atomic writes), but a damaged file must not stop a page
        rows = []
    shots = previews(run_dir)
    return {"epochs": rows, "preview": shots[-1].name if shots else None, "previews": len(shots),
            "model": (run_dir / MODEL).is_file(), "status": read_status(run_dir)}
