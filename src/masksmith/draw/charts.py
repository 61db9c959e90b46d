"""Charts drawn with matplotlib: training curves from metrics.csv and the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from masksmith.core.outputs import atomic_save_figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(csv_path: Path, png_path: Path, losses: tuple[str, ...] = ("train_loss", "val_loss"),
                metrics: tuple[str, ...] = ("val_miou", "val_mean_dice", "val_pixel_accuracy"),
                metrics_title: str = "validation") -> Path:
    """Loss curves (left) and validation metrics in [0, 1] (right) per epoch, from metrics.csv; the best epoch
    of the first metric (the one that picks the model file) is marked."""
    from masksmith.core.runfolder import read_metrics

    plt = _pyplot()
    rows = read_metrics(csv_path)
    epochs = [r["epoch"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for axes, keys, title in ((a, losses, "loss"), (b, metrics, metrics_title)):
        for key in keys:
            if any(key in r for r in rows):
                main = key == keys[0] or axes is b
                axes.plot(epochs, [r.get(key, np.nan) for r in rows], marker="o" if main else ".", label=key,
                          linewidth=2 if key == keys[0] else 1)
        axes.set_xlabel("epoch")
        axes.set_title(title)
        axes.xaxis.get_major_locator().set_params(integer=True)
        if axes.lines:
            axes.legend(fontsize=7 if len(keys) > 3 else None)
    scored = [(r[metrics[0]], r["epoch"]) for r in rows if metrics and metrics[0] in r]
    if scored:
        best, epoch = max(scored)
        b.plot([epoch], [best], marker="*", markersize=14, color="gold", markeredgecolor="black", zorder=5)
        b.annotate(f"best {best:.3f} (epoch {epoch:.0f})", (epoch, best), textcoords="offset points",
                   xytext=(0, -16), ha="center", fontsize=8)
    b.set_ylim(0, 1)
    fig.suptitle(f"training: {len(rows)} epoch(s)", fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, png_path, dpi=90)
    plt.close(fig)
    return png_path


def plot_confusion(matrix: np.ndarray, classes: Sequence[str], folder: Any, name: str,
                   title: str = "confusion matrix") -> Path:
    """Row-normalised confusion matrix (each row: where that class's true pixels went), saved through
    `folder.save_figure`."""
    from masksmith.draw.text import matplotlib_fonts

    plt = _pyplot()
    m = np.asarray(matrix, dtype=np.float64)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    classes = [tick_label(c) for c in classes]
    with plt.rc_context({"font.family": matplotlib_fonts() or ["sans-serif"]}):  # per-glyph fallback (CJK)
        return _confusion_figure(plt, norm, classes, folder, name, title)


def tick_label(name: str, limit: int = 28) -> str:
    """A class name as an axis label: cleaned (draw/text.py), at most `limit` characters, and with `$` escaped
    so matplotlib never reads a name as mathtext."""
    from masksmith.draw.text import ELLIPSIS, clean

    text = clean(name)
    text = text if len(text) <= limit else text[:limit - 1] + ELLIPSIS
    return text.replace("$", r"\$")


def _confusion_figure(plt: Any, norm: np.ndarray, classes: list[str], folder: Any, name: str, title: str) -> Path:
    n = len(classes)
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * n + 2), max(3.5, 0.45 * n + 1.5)))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}\n(each row: where that class's pixels went)", fontsize=9)
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
