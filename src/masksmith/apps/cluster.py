"""Colours without training: k-means colour clustering of a photo.

Pixels are clustered in CIELAB (distances there follow what people see), optionally with their position as
two more features (`position_weight`: 0 ignores where a pixel is; 1 weighs crossing the whole photo like the
distance from black to white). scikit-learn's KMeans is fitted on a seeded sample of pixels (`sample`, 50 000
by default), then every pixel is assigned to its nearest centre in chunks, so a 12-megapixel photo takes
seconds (benchmarks/bench_apps.py compares it with a fit on every pixel). Clusters are numbered by their share,
largest first, so the same photo and seed always give the same label map.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from masksmith.apps.colorspace import to_lab
from masksmith.core.errors import MasksmithError

CHUNK = 1 << 20  # pixels assigned at a time (a few tens of MB of features)
TABLE_BITS = 7  # colour-only clustering of large photos: labels looked up per 7-bit-per-channel colour bin
TABLE_FROM = 1 << (3 * TABLE_BITS)  # ... once the photo has more pixels than the table has bins


@dataclass
class Clusters:
    labels: np.ndarray  # (H, W) uint8 cluster index, 0 = the largest cluster
    colors: np.ndarray  # (k, 3) uint8 mean RGB of each cluster's pixels
    shares: np.ndarray  # (k,) float, fraction of pixels in each cluster (sums to 1)

    @property
    def k(self) -> int:
        return len(self.colors)

    def image(self) -> np.ndarray:
        """Each pixel painted in its cluster's mean colour."""
        return self.colors[self.labels]

    def palette(self) -> list[dict]:
        """Each cluster's label, hex colour, RGB and share of the pixels, largest first."""
        return [{"label": i, "hex": hex_color(c), "rgb": [int(v) for v in c], "share": round(float(s), 4)}
                for i, (c, s) in enumerate(zip(self.colors, self.shares, strict=True))]


def write_clusters(result: Clusters, folder, stem: str, source: str | Path, k: int, seed: int) -> list[dict]:
    """A photo's clusters in `folder` (an OutputFolder): <stem>_labels.png (cluster index per pixel, drawn in
    the cluster colours), <stem>_clustered.png, <stem>_palette.png and <stem>_palette.json. Returns the
    palette."""
    import json

    from masksmith.infer.batch import save_index_mask

    palette = result.palette()
    save_index_mask(result.labels, [tuple(p["rgb"]) for p in palette], folder, f"{stem}_labels.png")
    folder.save_image(f"{stem}_clustered.png", result.image())
    folder.save_image(f"{stem}_palette.png", palette_strip(result.colors, result.shares))
    folder.write_text(f"{stem}_palette.json", json.dumps({"image": str(source), "k": k, "seed": seed,
                                                          "colors": palette}, indent=1))
    return palette


def _features(pixels: np.ndarray, coords: np.ndarray | None, shape: tuple[int, int], weight: float) -> np.ndarray:
    lab = to_lab(pixels)
    if coords is None or weight <= 0:
        return lab
    scale = 100.0 * weight / max(shape)
    return np.column_stack([lab, coords.astype(np.float32) * np.float32(scale)])


ONE_THREAD = 20_000  # samples up to this many are clustered on one thread (see fit_centres)
_THREADS: list = []  # the threadpoolctl controller, made once (finding the thread pools takes ~10 ms)


def _one_thread():
    """A context in which OpenMP runs one thread."""
    from threadpoolctl import ThreadpoolController

    if not _THREADS:
        _THREADS.append(ThreadpoolController())
    return _THREADS[0].limit(limits=1, user_api="openmp")


def fit_centres(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    """KMeans centres (k, d) of a sample of features (fewer when the sample has fewer distinct values). A small
    sample (ONE_THREAD rows or fewer: the respray's 6000 part pixels) is clustered on one thread: scikit-learn's
    Lloyd iterations meet at an OpenMP barrier each, and for a few thousand rows the barriers are the cost; with
    another process on the cores, 2 threads took 300-600 ms for what one does in 6-8 ms, to the same centres."""
    from contextlib import nullcontext

    from sklearn.cluster import KMeans

    distinct = len(np.unique(features, axis=0)) if len(features) <= 4096 else k
    k = max(1, min(k, distinct))
    with warnings.catch_warnings(), (_one_thread() if len(features) <= ONE_THREAD else nullcontext()):
        warnings.simplefilter("ignore")  # ConvergenceWarning on flat pictures: the centres are still right
        model = KMeans(n_clusters=k, n_init=2, random_state=seed).fit(features.astype(np.float64))
    return model.cluster_centers_.astype(np.float32)


def assign(features: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre for each row (squared Euclidean distance)."""
    c2 = (centres ** 2).sum(1)
    return np.argmin(c2[None, :] - 2.0 * features @ centres.T, axis=1)


def _assign_by_table(pixels: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, counts, colour sums) through a table: each 7-bit-per-channel colour bin (2 levels wide) gets the
    label of its centre colour, and every pixel the label of its bin: a few integer passes over the pixels
    instead of a CIELAB conversion and k distances each; pixels within a level of a cluster boundary may land on the
    other side of it (benchmarks/bench_apps.py counts how many)."""
    shift = 8 - TABLE_BITS
    q = pixels >> shift
    index = q[:, 0].astype(np.int32)  # built in place: one 12-megapixel int32 array, no temporaries
    index <<= TABLE_BITS
    index |= q[:, 1]
    index <<= TABLE_BITS
    index |= q[:, 2]
    bins = np.arange(1 << (3 * TABLE_BITS), dtype=np.int32)
    mask = (1 << TABLE_BITS) - 1
    centre = np.column_stack([bins >> (2 * TABLE_BITS), (bins >> TABLE_BITS) & mask, bins & mask])
    centre = ((centre << shift) + (1 << shift) // 2).astype(np.uint8)
    table = np.empty(len(bins), np.uint8)
    for start in range(0, len(bins), CHUNK):
        part = slice(start, start + CHUNK)
        table[part] = assign(to_lab(centre[part]), centres)
    labels = table[index]
    counts = np.bincount(labels, minlength=len(centres))
    sums = np.stack([np.bincount(labels, weights=pixels[:, c], minlength=len(centres)) for c in range(3)], 1)
    return labels, counts, sums


def cluster_pixels(pixels: np.ndarray, k: int = 5, seed: int = 0, sample: int = 50_000,
                   coords: np.ndarray | None = None, shape: tuple[int, int] = (1, 1),
                   position_weight: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels (N,), colors (k, 3) uint8, shares (k,)) for (N, 3) uint8 pixels, clusters largest first."""
    pixels = np.asarray(pixels, np.uint8).reshape(-1, 3)
    n = len(pixels)
    if n == 0:
        raise MasksmithError("there are no pixels to cluster.")
    if not 1 <= k <= 64:
        raise MasksmithError(f"k = {k} is outside 1..64.", fix="ask for between 1 and 64 colours.")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(n, size=sample, replace=False)) if n > sample else np.arange(n)
    centres = fit_centres(_features(pixels[pick], None if coords is None else coords[pick], shape,
                                    position_weight), k, seed)
    if coords is None and n > TABLE_FROM and len(centres) < 256:
        labels, counts, sums = _assign_by_table(pixels, centres)
    else:
        labels = np.empty(n, np.int64)
        for start in range(0, n, CHUNK):
            part = slice(start, start + CHUNK)
            labels[part] = assign(_features(pixels[part], None if coords is None else coords[part], shape,
                                            position_weight), centres)
        counts = np.bincount(labels, minlength=len(centres))
        sums = np.stack([np.bincount(labels, weights=pixels[:, c], minlength=len(centres)) for c in range(3)], 1)
    keep = np.flatnonzero(counts)
    order = keep[np.argsort(-counts[keep], kind="stable")]
    remap = np.zeros(len(centres), np.uint8 if len(centres) < 256 else np.int64)
    remap[order] = np.arange(len(order))
    colors = np.clip(np.rint(sums[order] / counts[order, None]), 0, 255).astype(np.uint8)
    return remap[labels], colors, counts[order] / n


def cluster_image(image: np.ndarray, k: int = 5, seed: int = 0, position_weight: float = 0.0,
                  sample: int = 50_000) -> Clusters:
    """K-means colour clustering of an (H, W, 3) uint8 photo: label map, mean colours and shares."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise MasksmithError(f"expected an RGB image (H, W, 3) of uint8, got {image.dtype} {image.shape}.")
    h, w = image.shape[:2]
    coords = None
    if position_weight > 0:
        ys, xs = np.divmod(np.arange(h * w, dtype=np.int64), w)
        coords = np.column_stack([xs, ys]).astype(np.float32)
    labels, colors, shares = cluster_pixels(image.reshape(-1, 3), k, seed, sample, coords, (h, w), position_weight)
    return Clusters(labels.reshape(h, w).astype(np.uint8), colors, shares)


def hex_color(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def palette_strip(colors: np.ndarray, shares: np.ndarray, names: list[str] | None = None, width: int = 720,
                  height: int = 110) -> np.ndarray:
    """A strip of the colours, each as wide as its share, labelled with its hex code, share (and name)."""
    from PIL import Image, ImageDraw

    from masksmith.draw.instances import ink_on
    from masksmith.draw.sheet import draw_text, text_width

    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    edges = np.rint(np.concatenate([[0], np.cumsum(shares)]) / max(float(np.sum(shares)), 1e-9) * width).astype(int)
    for i, rgb in enumerate(colors):
        x0, x1 = int(edges[i]), int(edges[i + 1])
        color = tuple(int(c) for c in rgb)
        d.rectangle([x0, 0, max(x0, x1 - 1), height - 1], fill=color)
        lines = [hex_color(rgb), f"{100 * float(shares[i]):.1f} %"] + ([names[i]] if names else [])
        size = 14
        if x1 - x0 >= max(text_width(t, size) for t in lines) + 8:
            for j, text in enumerate(lines):
                draw_text(d, (x0 + 4, 6 + j * (size + 6)), text, size, fill=ink_on(color))
    return np.asarray(canvas)
