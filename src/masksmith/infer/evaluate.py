"""`masksmith evaluate`: per-class IoU and Dice, mIoU, pixel accuracy, a confusion matrix picture and a gallery
of the worst-predicted images, for a semantic model on an annotated data set.

Scores are reported twice: at the network's input size (truth resized by nearest neighbour, as the
car-parts benchmark protocol asks) and at each image's own size (prediction resized up).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from masksmith.apps.overlay import colorize, grid, overlay
from masksmith.data import load_dataset
from masksmith.data.rasterize import semantic_mask
from masksmith.infer.predictor import Predictor
from masksmith.train.metrics import ConfusionMatrix, SegmentationScores


@dataclass
class EvaluationReport:
    classes: list[str]  # background first
    at_input: SegmentationScores
    at_full: SegmentationScores
    per_image: list[tuple[str, float]] = field(default_factory=list)  # (name, image mIoU), worst first
    files: dict[str, str] = field(default_factory=dict)
    samples_used: str = ""  # which images were scored: the test split when the data set has one, else all

    def to_dict(self) -> dict[str, Any]:
        names = self.classes[1:]
        return {"at_input_size": self.at_input.as_dict(names), "at_full_size": self.at_full.as_dict(names),
                "worst_images": [{"image": n, "miou": m} for n, m in self.per_image[:20]], "files": self.files,
                "samples_used": self.samples_used}


def _resize_nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape == size:
        return mask
    return np.asarray(Image.fromarray(mask).resize((size[1], size[0]), Image.NEAREST))


def evaluate_semantic(model: str | Path | Predictor, data: str | Path, out: Path | None = None,
                      worst: int = 8, tta: bool = False, format: str | None = None, strict: bool = True,
                      **data_options: Any) -> EvaluationReport:
    import torch
    import torch.nn.functional as F

    predictor = model if isinstance(model, Predictor) else Predictor.from_file(model, tta=tta)
    from masksmith.data.split import evaluation_samples

    dataset = load_dataset(data, format, strict=strict, **data_options)
    scored, samples_used = evaluation_samples(dataset)
    classes = ["background", *predictor.artifact.classes]
    index = {n: i + 1 for i, n in enumerate(predictor.artifact.classes)}
    missing = [n for n in dataset.class_names if n not in index]
    if missing and len(missing) == len(dataset.class_names):
        from masksmith.errors import MasksmithError

        raise MasksmithError(f"none of the data set's classes ({', '.join(dataset.class_names)}) are the "
                             f"model's ({', '.join(predictor.artifact.classes)}).", path=data,
                             fix="evaluate on data annotated with the classes the model was trained on.")
    k = len(classes)
    at_input, at_full = ConfusionMatrix(k), ConfusionMatrix(k)
    per_image: list[tuple[str, float, float]] = []
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
        per_image.append((sample.name, one.scores().miou(True), 0.0))
    per_image.sort(key=lambda t: t[1])
    report = EvaluationReport(classes, at_input.scores(), at_full.scores(), [(n, m) for n, m, _ in per_image],
                              samples_used=samples_used)
    if out is not None:
        from masksmith.outputs import OutputFolder

        folder = OutputFolder(out, inputs=[data])
        report.files["confusion_matrix"] = str(plot_confusion(report.at_full, classes, folder, "confusion.png"))
        by_name = {s.name: s for s in dataset.samples}
        rows = []
        for name, _ in report.per_image[:worst]:
            sample = by_name[name]
            image = sample.load_image()
            rows += [image, colorize(semantic_mask(sample, index), predictor.colors),
                     overlay(image, predictor.predict(image), predictor.colors, 0.6)]
        if rows:
            report.files["worst_gallery"] = str(folder.save_image("worst.png", grid(rows, columns=3, cell=220)))
        report.files["metrics"] = str(folder.path("metrics.json"))
        folder.write_text("metrics.json", json.dumps(report.to_dict(), indent=2))
    return report


def plot_confusion(scores: SegmentationScores, classes: list[str], folder, name: str) -> Path:
    """Row-normalised confusion matrix (each row: where that class's true pixels went)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = scores.matrix.astype(np.float64)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * n + 2), max(3.5, 0.45 * n + 1.5)))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if norm[i, j] >= 0.01:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=5,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = folder.save_figure(name, fig, dpi=110)
    plt.close(fig)
    return path
