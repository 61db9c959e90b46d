"""The worst- and best-predicted images of an evaluation as captioned comparison sheets (worst.png, best.png)
and the confusion matrix picture, written beside metrics.json."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Any

from masksmith.core.labels import ClassMap
from masksmith.core.outputs import OutputFolder
from masksmith.core.runfolder import shown_name
from masksmith.data.schema import Sample
from masksmith.evaluate.metrics import describe_confusions
from masksmith.evaluate.result import Evaluation, ImageScore, ranked

GALLERY_CELL = 220


class GalleryKeeper:
    """The gallery rows of the `count` worst- and `count` best-scored images, drawn while the evaluation scores
    them, so no image is read or predicted a second time for the galleries. An image's row is drawn only when
    it enters one of the two sets (ties ordered as `result.ranked` orders them), and dropped when it leaves
    both, so at most 2 x `count` rows (small: GALLERY_CELL pixels) are held however many images are scored."""

    def __init__(self, count: int) -> None:
        self.count = max(0, count)
        self.order = 0
        self.worst: list[tuple[float, int, str]] = []  # max-heap of the smallest (score, order): negated
        self.best: list[tuple[float, int, str]] = []  # min-heap of the largest (score, order)
        self.rows: dict[str, Any] = {}

    def offer(self, name: str, score: float | None, draw: Callable[[], Any]) -> None:
        order, self.order = self.order, self.order + 1
        if not self.count or score is None or score != score:
            return
        into_worst = len(self.worst) < self.count or (score, order) < (-self.worst[0][0], -self.worst[0][1])
        into_best = len(self.best) < self.count or (score, order) > self.best[0][:2]
        if not (into_worst or into_best):
            return
        self.rows[name] = draw()
        dropped = []
        if into_worst:
            heapq.heappush(self.worst, (-score, -order, name))
            if len(self.worst) > self.count:
                dropped.append(heapq.heappop(self.worst)[2])
        if into_best:
            heapq.heappush(self.best, (score, order, name))
            if len(self.best) > self.count:
                dropped.append(heapq.heappop(self.best)[2])
        kept = {n for *_, n in self.worst} | {n for *_, n in self.best}
        for n in dropped:
            if n not in kept:
                self.rows.pop(n, None)

    def row(self, name: str, fallback: Callable[[], Any]) -> Any:
        """The row drawn for `name`, or `fallback()` for an image the keeper did not hold."""
        return self.rows[name] if name in self.rows else fallback()


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
