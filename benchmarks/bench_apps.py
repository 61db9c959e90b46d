"""Seconds per 12-megapixel photo for `recolor` and `cluster`, each beside a reference in the same run.

- recolor: the CIELAB recolour of issue 15 (kept in benchmarks/_legacy_recolor.py since issue 28 replaced it
  with the respray, which benchmarks/bench_respray.py measures on real photos): float32 look-up tables, only the
  mask's box converted, feather by erosion, against the naive way: skimage.color.rgb2lab / lab2rgb of the whole
  photo and a Euclidean distance transform of the whole mask, with the same colour formulas. Also the mean and
  largest difference between the two results (in 8-bit levels).
- cluster: ours (KMeans fitted on a 50 000-pixel sample, every pixel assigned through a colour-bin table)
  against scikit-learn fitted on every pixel: MiniBatchKMeans (fit + predict) and KMeans (n_init=1), all in
  CIELAB. Also the k-means cost (inertia) of each result on every pixel, relative to full KMeans's, and the
  share of pixels labelled alike (clusters matched by the Hungarian method).

The photo is a sample car (masksmith.data.synthetic) scaled up to 4000x3000, its body as the mask: content
matters little to these timings. Both sides get the same thread count (threadpoolctl), printed with the
CPU flags; the figures are ratios measured side by side, so a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _legacy_recolor import legacy_recolor  # noqa: E402
from _report import write_section  # noqa: E402
from masksmith.apps import recolor as rc  # noqa: E402
from masksmith.apps.cluster import cluster_image  # noqa: E402


def cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return " ".join(f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw") if f in flags)
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def photo(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    from masksmith.data.rasterize import semantic_mask
    from masksmith.data.synthetic import sample_dataset

    ds = sample_dataset(1, (400, 300), seed=7, vary_size=False)
    sample = ds.samples[0]
    classes = semantic_mask(sample, ds.class_to_index())
    ys, xs = np.nonzero((classes > 0) & (classes < 255))  # the car, with a margin: it fills the photo
    box = (max(0, xs.min() - 20), max(0, ys.min() - 15), min(400, xs.max() + 20), min(300, ys.max() + 15))
    image = Image.fromarray(sample.load_image()).crop(box).resize((width, height), Image.Resampling.BICUBIC)
    mask = Image.fromarray(classes).crop(box).resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(image), np.asarray(mask) == ds.class_to_index()["body"]


def naive_recolor(image: np.ndarray, mask: np.ndarray, rgb: tuple[int, int, int], feather: int = 3,
                  lightness: float = 0.5) -> np.ndarray:
    """The same formulas as the legacy recolour (_legacy_recolor.py), done the plain way on the whole photo."""
    from scipy import ndimage
    from skimage.color import lab2rgb, rgb2lab

    lab = rgb2lab(image)
    depth = ndimage.distance_transform_edt(mask)  # Euclidean, vs our 8-connected steps
    weights = np.where(mask, np.clip((depth + 1) / (feather + 1), 0, 1), 0)
    target = rgb2lab(np.array([[rgb]], np.uint8))[0, 0]
    L, ab = lab[..., 0], lab[..., 1:]
    inside = weights > 0
    parts, n = ndimage.label(mask, structure=np.ones((3, 3), bool))  # each part's own means, as ours
    total = np.bincount(parts.ravel(), weights=weights.ravel(), minlength=n + 1)
    means = [np.bincount(parts.ravel(), weights=(weights * lab[..., c]).ravel(), minlength=n + 1)
             / np.maximum(total, 1e-12) for c in range(3)]
    mean_L = means[0][parts]
    mean_ab = np.dstack([means[1][parts], means[2][parts]])
    t = mean_L + lightness * (target[0] - mean_L)
    m = np.clip(mean_L, 1e-3, 100 - 1e-3)
    new_L = np.where(m >= L, L * t / m, t + (L - m) * (100 - t) / (100 - m))
    fade = np.clip((100 - new_L) / 20, 0, 1) * np.clip(new_L / 10, 0, 1)
    new = lab2rgb(np.dstack([new_L, ab - mean_ab + target[1:] * fade[..., None]])) * 255
    out = weights[..., None] * np.rint(new) + (1 - weights[..., None]) * image
    return np.where(inside[..., None], np.clip(np.rint(out), 0, 255), image).astype(np.uint8)


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t, result


def inertia(features: np.ndarray, labels: np.ndarray) -> float:
    total = 0.0
    for c in np.unique(labels):
        part = features[labels == c]
        total += float(((part - part.mean(0)) ** 2).sum())
    return total


def agreement(a: np.ndarray, b: np.ndarray, k: int) -> float:
    from scipy.optimize import linear_sum_assignment

    table = np.zeros((k, k), np.int64)
    np.add.at(table, (a.ravel().astype(np.int64), b.ravel().astype(np.int64)), 1)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / a.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-full-kmeans", action="store_true", help="skip KMeans fitted on every pixel (slow)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    megapixels = args.width * args.height / 1e6
    print(f"CPU: {cpu_model()}; flags: {cpu_flags()}; {os.cpu_count()} cores; threads for both sides: "
          f"{args.threads}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    image, mask = photo(args.width, args.height)
    print(f"photo {args.width}x{args.height} ({megapixels:.1f} MP), mask {100 * mask.mean():.1f} % of it")
    rows = []
    with threadpool_limits(args.threads):
        rgb = rc.parse_color("#c0392b")
        legacy_recolor(image[:64, :64], mask[:64, :64], rgb)  # imports and tables out of the timing
        t_ours, ours = timed(legacy_recolor, image, mask, rgb)
        t_ref, ref = timed(naive_recolor, image, mask, rgb)
        diff = np.abs(ours.astype(int) - ref.astype(int))
        rows.append(("recolor", "masksmith", t_ours, "skimage rgb2lab/lab2rgb of the whole photo", t_ref,
                     f"mean difference {diff[mask].mean():.2f} levels, largest {diff.max()} (feather edge)"))
        print(rows[-1])

        cluster_image(image[:64, :64], args.k)
        t_ours, ours_c = timed(cluster_image, image, args.k, 0)
        t0 = time.perf_counter()
        features = rc.to_lab(image.reshape(-1, 3))
        t_lab = time.perf_counter() - t0
        t_mb, mb = timed(lambda: MiniBatchKMeans(args.k, random_state=0, n_init=3, batch_size=4096)
                         .fit(features).predict(features))
        base = None
        if not args.no_full_kmeans:
            t_full, full = timed(lambda: KMeans(args.k, random_state=0, n_init=1).fit(features).labels_)
            base = inertia(features, full)
        our_cost = inertia(features, ours_c.labels.ravel())
        mb_cost = inertia(features, mb)

        def quality(labels, cost):
            if base is None:
                return f"inertia {cost:.3g}"
            return (f"inertia {cost / base:.3f}x full KMeans's; {100 * agreement(labels, full, args.k):.1f} % of "
                    "pixels labelled as full KMeans")

        rows.append(("cluster", "masksmith", t_ours, "MiniBatchKMeans fit + predict on every pixel",
                     t_mb + t_lab, quality(ours_c.labels.ravel(), our_cost) + f" (MiniBatch: "
                     f"{quality(mb, mb_cost)})"))
        print(rows[-1])
        if base is not None:
            rows.append(("cluster", "masksmith", t_ours, "KMeans (n_init=1) on every pixel", t_full + t_lab,
                         "reference"))
            print(rows[-1])
    lines = [f"One {args.width}x{args.height} photo ({megapixels:.1f} MP: a sample car cropped to its box and scaled "
             f"up, its body {100 * mask.mean():.0f} % of the pixels); {args.threads} threads for both sides "
             "(threadpoolctl); "
             f"CPU {cpu_model()}, flags {cpu_flags()}. Reference times include the whole-photo CIELAB "
             "conversion they need.", "",
             "| app | ours s / photo | reference | reference s / photo | speed-up | result |",
             "|---|---|---|---|---|---|"]
    for app, _, ours_s, ref_name, ref_s, note in rows:
        lines.append(f"| {app} | {ours_s:.2f} | {ref_name} | {ref_s:.2f} | **{ref_s / ours_s:.1f}x** | {note} |")
    lines += ["", "OPENBLAS_CORETYPE is preset on these machines and slows numpy's matrix code on both sides alike.",
              f"Load average at the start: {load:.1f} on {os.cpu_count()} cores" + (
                  " (other jobs shared the machine, so the seconds are high for both sides; the ratios are the "
                  "figures)." if load > 1.5 * (os.cpu_count() or 1) / 2 else " (a quiet machine).")]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("apps", "Apps: seconds per 12-megapixel photo (recolor, cluster)", body)


if __name__ == "__main__":
    main()
