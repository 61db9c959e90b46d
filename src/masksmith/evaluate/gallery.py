"""The worst- and best-predicted images of an evaluation as captioned comparison sheets (worst.png, best.png)
and the confusion matrix picture, written beside metrics.json."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from masksmith.core.labels import ClassMap
from masksmith.core.outputs import OutputFolder
from masksmith.core.runfolder import shown_name
from masksmith.data.schema import Sample
from masksmith.evaluate.metrics import describe_confusions
from masksmith.evaluate.result import Evaluation, ImageScore, ranked

GALLERY_CELL = 220


def score_caption(item: ImageScore, score_name: str) -> str:
    """"car_007.png · mIoU 0.412 · confuses window→body 12 %" (the scores of one gallery row)."""
    score = "-" if item.score is None else f"{item.score:.3f}"
    text = f"{item.image} \u00b7 {score_name} {score}"
    return text + (f" \u00b7 confuses {describe_confusions(item.confusions)}" if item.confusions else "")


def gallery(chosen: Sequence[ImageScore], samples: dict[str, Sample], row: Callable[[Sample], Any], title: str,
            score_name: str, classes: ClassMap):
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
                            classes=classes, cell=GALLERY_CELL, panel_texts=texts)


def write_pictures(evaluation: Evaluation, folder: OutputFolder, samples: Sequence[Sample], classes: ClassMap,
                   matrix: Any, row: Callable[[Sample], Any], count: int, matrix_title: str | None = None) -> None:
    """confusion.png and the worst / best galleries (`count` images each) into `folder`, recorded in
    `evaluation.files`."""
    from masksmith.draw.charts import plot_confusion

    title = {"title": matrix_title} if matrix_title else {}
    evaluation.files["confusion_matrix"] = str(plot_confusion(matrix, classes.labels(), folder, "confusion.png",
                                                              **title))
    by_name = {s.name: s for s in samples}
    worst, best = ranked(evaluation.image_scores)
    shown = shown_name(folder.root, evaluation.data)
    for key, name, chosen, what in (("worst_gallery", "worst.png", worst[:count], "worst"),
                                    ("best_gallery", "best.png", best[:count], "best")):
        if chosen:
            picture = gallery(chosen, by_name, row, f"{what}-predicted images of {shown} "
                              f"({'lowest' if what == 'worst' else 'highest'} {evaluation.image_score} first)",
                              evaluation.image_score, classes)
            evaluation.files[key] = str(folder.save_image(name, picture.pixels, **picture.save_options()))
