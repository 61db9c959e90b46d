"""`masksmith evaluate`: per-class IoU and Dice, mIoU, pixel accuracy, a confusion matrix picture and galleries
of the worst- and best-predicted images (each with its name, its mIoU and the classes it confuses most), for a
semantic model on an annotated data set.

Scores are reported twice: at the network's input size (truth resized by nearest neighbour, as the
car-parts benchmark protocol asks) and at each image's own size (prediction resized up).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from masksmith.data import load_dataset
from masksmith.data.rasterize import semantic_mask
from masksmith.data.schema import Dataset, Sample
from masksmith.infer.predictor import Predictor
from masksmith.metrics import ConfusionMatrix, SegmentationScores, describe_confusions, top_confusions

GALLERY_CELL = 220
LISTED_IMAGES = 20  # worst and best images listed in metrics.json


@dataclass
class ImageScore:
    """One image's score (mIoU, or mask AP for instance models; None where undefined) and its largest
    confusions (see `masksmith.metrics.top_confusions`)."""

    image: str
    score: float | None
    confusions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        score = None if self.score is None or self.score != self.score else float(self.score)
        return {"image": self.image, "score": score, "confusions": self.confusions}


@dataclass
class EvaluationReport:
    classes: list[str]  # background first
    at_input: SegmentationScores
    at_full: SegmentationScores
    per_image: list[tuple[str, float]] = field(default_factory=list)  # (name, image mIoU), worst first
    files: dict[str, str] = field(default_factory=dict)
    images: list[ImageScore] = field(default_factory=list)  # worst first, with their confusions
    data: str = ""
    seconds: float = 0.0
    samples_used: str = ""  # which images were scored: the test split when the data set has one, else all

    def to_dict(self) -> dict[str, Any]:
        names = self.classes[1:]
        worst, best = ranked(self.images)
        return {"task": "semantic", "data": self.data, "images": len(self.images), "image_score": "mIoU",
                "seconds": round(self.seconds, 1),
                "at_input_size": self.at_input.as_dict(names), "at_full_size": self.at_full.as_dict(names),
                "worst_images": [i.to_dict() for i in worst[:LISTED_IMAGES]],
                "best_images": [i.to_dict() for i in best[:LISTED_IMAGES]],
                "files": {k: Path(v).name for k, v in self.files.items()}, "samples_used": self.samples_used}


def ranked(images: Sequence[ImageScore]) -> tuple[list[ImageScore], list[ImageScore]]:
    """(worst first, best first) of the images that have a score."""
    scored = sorted((i for i in images if i.score is not None and i.score == i.score), key=lambda i: i.score)
    return scored, scored[::-1]


def _resize_nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape == size:
        return mask
    return np.asarray(Image.fromarray(mask).resize((size[1], size[0]), Image.NEAREST))


def open_data(data: str | Path | Dataset, format: str | None, strict: bool, data_options: dict[str, Any]
              ) -> tuple[Dataset, str]:
    """The data set to score on (a path is read; a Dataset, such as a validation split, is used as it is)
    and the label its evaluation records."""
    from masksmith.runfolder import data_label

    if isinstance(data, Dataset):
        return data, str(data.root) if data.root else data.format
    return load_dataset(data, format, strict=strict, **data_options), data_label(data)


def evaluate_semantic(model: str | Path | Predictor, data: str | Path | Dataset, out: Path | None = None,
                      worst: int = 8, tta: bool = False, format: str | None = None, strict: bool = True,
                      data_label: str | None = None, **data_options: Any) -> EvaluationReport:
    """Score `model` on `data`. With `out`, writes out/metrics.json, confusion.png, worst.png and best.png
    (`worst` images in each gallery), and when `out` is a run's evaluation/<name>/ folder, the run's
    report.html. `data_label`: how metrics.json names the data (default: its path)."""
    import torch
    import torch.nn.functional as F

    started = time.monotonic()
    predictor = model if isinstance(model, Predictor) else Predictor.from_file(model, tta=tta)
    dataset, label = open_data(data, format, strict, data_options)
    from masksmith.data.split import evaluation_samples

    scored, samples_used = evaluation_samples(dataset)
    classes = ["background", *predictor.artifact.classes]
    index = {n: i + 1 for i, n in enumerate(predictor.artifact.classes)}
    missing = [n for n in dataset.class_names if n not in index]
    if missing and len(missing) == len(dataset.class_names):
        from masksmith.errors import MasksmithError

        raise MasksmithError(f"none of the data set's classes ({', '.join(dataset.class_names)}) are the "
                             f"model's ({', '.join(predictor.artifact.classes)}).", path=label,
                             fix="evaluate on data annotated with the classes the model was trained on.")
    k = len(classes)
    at_input, at_full = ConfusionMatrix(k), ConfusionMatrix(k)
    images: list[ImageScore] = []
    for sample in scored:
        image = sample.load_image()
        truth = semantic_mask(sample, index)  # classes the model does not know stay background
        probs = predictor.predict_proba(image, own_size=False)
        small = probs.argmax(0).to(torch.uint8).numpy()
        full = F.interpolate(probs[None], size=image.shape[:2], mode="bilinear", align_corners=False)[0]
        full = full.argmax(0).to(torch.uint8).numpy()
        at_input.update_numpy(small, _resize_nearest(truth, small.shape))
        one = ConfusionMatrix(k)
        one.update_numpy(full, truth)
        at_full.merge(one)
        images.append(ImageScore(sample.name, one.scores().miou(True), top_confusions(one.matrix.numpy(), classes)))
    images.sort(key=lambda i: i.score if i.score == i.score else float("inf"))
    report = EvaluationReport(classes, at_input.scores(), at_full.scores(), [(i.image, i.score) for i in images],
                              images=images, data=data_label or label,
                              samples_used=samples_used)
    if out is not None:
        from masksmith.draw.charts import plot_confusion
        from masksmith.outputs import OutputFolder
        from masksmith.runfolder import shown_name

        folder = OutputFolder(out, inputs=[dataset.root])
        report.files["confusion_matrix"] = str(plot_confusion(report.at_full.matrix, classes, folder,
                                                              "confusion.png"))
        by_name = {s.name: s for s in dataset.samples}

        def row(sample: Sample) -> list[np.ndarray]:
            from masksmith.draw import semantic_row

            image = sample.load_image()
            return semantic_row(image, semantic_mask(sample, index), predictor.predict(image), predictor.colors,
                                GALLERY_CELL)

        worst_first, best_first = ranked(images)
        shown = shown_name(out, report.data)
        for key, name, chosen, what in (("worst_gallery", "worst.png", worst_first[:worst], "worst"),
                                        ("best_gallery", "best.png", best_first[:worst], "best")):
            if chosen:
                picture = gallery(chosen, by_name, row, f"{what}-predicted images of {shown} "
                                  f"({'lowest' if what == 'worst' else 'highest'} mIoU first)", "mIoU",
                                  classes[1:], predictor.colors[1:])
                report.files[key] = str(folder.save_image(name, picture.pixels, **picture.save_options()))
        report.files["metrics"] = str(folder.path("metrics.json"))
        report.seconds = time.monotonic() - started  # recorded in metrics.json
        folder.write_text("metrics.json", json.dumps(report.to_dict(), indent=2))
        from masksmith.report import update_report

        page = update_report(out)  # the run's report.html, when `out` is the run's evaluation/<name>/
        if page is not None:
            report.files["report"] = str(page)
    else:
        report.seconds = time.monotonic() - started
    return report


def score_caption(item: ImageScore, score_name: str) -> str:
    """"car_007.png · mIoU 0.412 · confuses window→body 12 %" (the scores of one gallery row)."""
    score = "-" if item.score is None else f"{item.score:.3f}"
    text = f"{item.image} \u00b7 {score_name} {score}"
    return text + (f" \u00b7 confuses {describe_confusions(item.confusions)}" if item.confusions else "")


def gallery(chosen: Sequence[ImageScore], samples: dict[str, Sample], row: Callable[[Sample], Any], title: str,
            score_name: str, class_names: Sequence[str], class_colors: Sequence[tuple[int, int, int]]):
    """A comparison sheet of the chosen images, each row captioned with its name, score and confusions.
    `row(sample)` draws one row: a list of panels, or (panels, texts on them) for instance models."""
    from masksmith.draw import comparison_sheet

    rows, texts = [], []
    for item in chosen:
        drawn = row(samples[item.image])
        panels, written = drawn if isinstance(drawn, tuple) else (drawn, [])
        rows.append(panels)
        texts.append(written)
    return comparison_sheet(rows, title=title, captions=[score_caption(i, score_name) for i in chosen],
                            class_names=class_names, class_colors=class_colors, cell=GALLERY_CELL,
                            panel_texts=texts)
