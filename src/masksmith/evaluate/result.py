"""One evaluation result for both tasks: the figures (the headline first), a per-class table, each image's
score, the files written and the time taken. Every front prints it, stores it and reads it back the same way;
the task decides only which figures and columns there are.

`Evaluation.to_dict()` is metrics.json; `Evaluation.from_dict()` reads it back, including the layout written
before this type existed (so old run folders still show their scores).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from masksmith.evaluate.metrics import SegmentationScores

LISTED_IMAGES = 20  # worst and best images listed in metrics.json
KINDS = ("score", "percent", "count")  # 0.412; 41.2 (COCO AP is reported in percent); 1,234


@dataclass(frozen=True)
class Figure:
    """One number with its name and how it is shown: `score` (0-1, three decimals), `percent` (0-1 shown as
    a percentage, as COCO AP is) or `count`."""

    name: str
    value: float | None
    kind: str = "score"

    def text(self) -> str:
        return format_value(self.value, self.kind)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": _clean(self.value), "kind": self.kind}


def format_value(value: float | int | None, kind: str = "score") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "percent":
        return f"{100 * value:.1f}"
    if kind == "count":
        return f"{int(value):,}"
    return f"{value:.3f}"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "score"


@dataclass
class ClassRow:
    name: str
    values: list[float | int | None]


@dataclass
class ImageScore:
    """One image's score (mIoU, or mask AP for instance models; None where undefined) and its largest
    confusions (see `masksmith.evaluate.metrics.top_confusions`)."""

    image: str
    score: float | None
    confusions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "score": _clean(self.score), "confusions": self.confusions}


def ranked(images: Sequence[ImageScore]) -> tuple[list[ImageScore], list[ImageScore]]:
    """(worst first, best first) of the images that have a score."""
    scored = sorted((i for i in images if i.score is not None and i.score == i.score), key=lambda i: i.score)
    return scored, scored[::-1]


@dataclass
class Evaluation:
    """What evaluating a model on a data set found. `figures[0]` is the headline."""

    task: str
    data: str
    images: int
    samples_used: str
    figures: list[Figure]
    columns: list[Column]
    per_class: list[ClassRow]
    image_score: str  # what each image's score is ("mIoU", "mask AP")
    image_scores: list[ImageScore] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)  # the task's own figures, kept in metrics.json
    notes: list[str] = field(default_factory=list)  # what to know when reading the figures (classes that differ)
    scores: dict[str, SegmentationScores] = field(default_factory=dict, repr=False)  # not stored

    @property
    def headline(self) -> Figure:
        return self.figures[0]

    def figure(self, name: str) -> Figure | None:
        return next((f for f in self.figures if f.name == name), None)

    def class_values(self, column: str) -> dict[str, float | int | None]:
        """{class name: value} of one per-class column."""
        k = [c.name for c in self.columns].index(column)
        return {row.name: row.values[k] for row in self.per_class}

    def to_dict(self) -> dict[str, Any]:
        from pathlib import Path

        worst, best = ranked(self.image_scores)
        return {
            "task": self.task, "data": self.data, "images": self.images, "samples_used": self.samples_used,
            "seconds": round(self.seconds, 1), "image_score": self.image_score,
            "headline": self.headline.to_dict(), "figures": [f.to_dict() for f in self.figures],
            "columns": [{"name": c.name, "kind": c.kind} for c in self.columns],
            "class_table": [{"class": r.name, "values": [_clean(v) for v in r.values]} for r in self.per_class],
            "worst_images": [i.to_dict() for i in worst[:LISTED_IMAGES]],
            "best_images": [i.to_dict() for i in best[:LISTED_IMAGES]],
            "files": {k: Path(v).name for k, v in self.files.items()},
            **({"notes": list(self.notes)} if self.notes else {}),
            **self.details,
        }

    def write(self, folder: Any) -> None:
        """metrics.json into `folder` (an OutputFolder): the last file an evaluation writes."""
        import json

        self.files["metrics"] = str(folder.path("metrics.json"))
        folder.write_text("metrics.json", json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        """metrics.json read back (also the per-task layout that runs evaluated before this type wrote)."""
        if "figures" not in data:
            data = {**data, **_legacy_layout(data)}
        images = [ImageScore(i.get("image", ""), i.get("score"), i.get("confusions", []))
                  for i in data.get("worst_images", [])]
        return cls(
            task=str(data.get("task", "semantic")), data=str(data.get("data", "")), images=int(data.get("images") or 0),
            samples_used=str(data.get("samples_used", "")),
            figures=[Figure(f["name"], f.get("value"), f.get("kind", "score")) for f in data["figures"]]
            or [Figure("score", None)],
            columns=[Column(c["name"], c.get("kind", "score")) for c in data.get("columns", [])],
            per_class=[ClassRow(r["class"], list(r.get("values", []))) for r in data.get("class_table", [])],
            image_score=str(data.get("image_score", "score")), image_scores=images,
            files=dict(data.get("files", {})), seconds=float(data.get("seconds") or 0.0),
            notes=[str(n) for n in data.get("notes", []) if isinstance(n, str)],
            details={k: v for k, v in data.items() if k in ("at_full_size", "at_input_size", "mask", "box",
                                                            "semantic", "per_class")})

    @property
    def best_images(self) -> list[ImageScore]:
        return ranked(self.image_scores)[1]

    @property
    def worst_images(self) -> list[ImageScore]:
        return ranked(self.image_scores)[0]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _legacy_layout(data: dict[str, Any]) -> dict[str, Any]:
    """figures / columns / class_table from a metrics.json written before `Evaluation` (per-task keys)."""
    if data.get("task") == "instance" or "mask" in data:
        mask, box, union = data.get("mask", {}), data.get("box", {}), data.get("semantic", {})
        ious = {r["class"]: r.get("iou") for r in union.get("per_class", [])}
        return {"task": "instance", "figures": [
            {"name": "mask AP", "value": mask.get("ap"), "kind": "percent"},
            {"name": "mask AP50", "value": mask.get("ap50"), "kind": "percent"},
            {"name": "mask AP75", "value": mask.get("ap75"), "kind": "percent"},
            {"name": "box AP", "value": box.get("ap"), "kind": "percent"},
            {"name": "box AP50", "value": box.get("ap50"), "kind": "percent"},
            {"name": "mIoU (union masks)", "value": union.get("miou")}],
            "columns": [{"name": "mask AP", "kind": "percent"}, {"name": "box AP", "kind": "percent"},
                        {"name": "IoU (union masks)"}],
            "class_table": [{"class": r["class"], "values": [r.get("mask_ap"), r.get("box_ap"), ious.get(r["class"])]}
                            for r in data.get("per_class", [])]}
    full, small = data.get("at_full_size", {}), data.get("at_input_size", {})
    ious = {r["class"]: r.get("iou") for r in small.get("per_class", [])}
    return {"task": "semantic", "figures": [
        {"name": "mIoU", "value": full.get("miou")},
        {"name": "mIoU without background", "value": full.get("miou_without_background")},
        {"name": "mean Dice", "value": full.get("mean_dice")},
        {"name": "pixel accuracy", "value": full.get("pixel_accuracy")},
        {"name": "mIoU at input size", "value": small.get("miou")}],
        "columns": [{"name": "IoU"}, {"name": "Dice"}, {"name": "IoU (input size)"},
                    {"name": "pixels", "kind": "count"}],
        "class_table": [{"class": r["class"], "values": [r.get("iou"), r.get("dice"), ious.get(r["class"]),
                                                         r.get("pixels")]} for r in full.get("per_class", [])]}
