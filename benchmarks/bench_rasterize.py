"""Reading + rasterising car-parts into semantic masks: masksmith vs pycocotools annToMask, side by side.

Both sides do the whole job from the JSON file to one class-index mask per image: parse the annotations,
then paint every annotation's mask in file order. Runs alternate (ours, theirs, ours, ...) so machine noise
hits both alike; the ratio of medians is the figure. Also checks that the masks agree pixel for pixel, and
that `dataset convert --to voc` writes exactly those masks.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import car_parts_or_exit, write_section  # noqa: E402
from masksmith.data import load_dataset  # noqa: E402
from masksmith.data.convert import convert  # noqa: E402
from masksmith.data.rasterize import semantic_mask  # noqa: E402


def ours(root: Path) -> list[np.ndarray]:
    ds = load_dataset(root)
    index = ds.class_to_index()
    return [semantic_mask(s, index) for s in ds.samples]


def pycocotools_reference(root: Path, names: list[str]) -> list[np.ndarray]:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(root / "annotations.json"))
    value = {c["id"]: (names.index(c["name"]) + 1 if c["name"] in names else 0)
             for c in coco.loadCats(coco.getCatIds())}
    masks = []
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        mask = np.zeros((info["height"], info["width"]), np.uint8)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
            mask[coco.annToMask(ann).astype(bool)] = value[ann["category_id"]]
        masks.append(mask)
    return masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    root = car_parts_or_exit() / "trainingset"
    names = load_dataset(root).class_names
    n = len(names)
    times: dict[str, list[float]] = {"masksmith": [], "pycocotools": []}
    for _ in range(args.repeats):
        t = time.perf_counter()
        a = ours(root)
        times["masksmith"].append(time.perf_counter() - t)
        t = time.perf_counter()
        b = pycocotools_reference(root, names)
        times["pycocotools"].append(time.perf_counter() - t)
    images = len(a)
    same = all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    with tempfile.TemporaryDirectory() as tmp:
        ds = load_dataset(root)
        convert(ds, "voc", Path(tmp))
        voc = [np.asarray(Image.open(Path(tmp) / "SegmentationClass" / (Path(s.name).stem + ".png")))
               for s in ds.samples]
        voc_same = all(np.array_equal(x, y) for x, y in zip(voc, b, strict=True))
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: images / v for k, v in med.items()}
    ratio = rate["masksmith"] / rate["pycocotools"]
    lines = [
        f"car-parts trainingset: {images} images, {n} classes; median of {args.repeats} alternating runs.",
        "",
        "| implementation | images/s (read + rasterise) | seconds per pass |",
        "|---|---|---|",
        *(f"| {k} | {rate[k]:.0f} | {med[k]:.2f} |" for k in times),
        "",
        f"Speed ratio masksmith / pycocotools: **{ratio:.2f}x** (target: at least 1.0).",
        f"Masks equal to annToMask pixel for pixel: **{same}**; `convert --to voc` SegmentationClass PNGs equal "
        f"to annToMask: **{voc_same}**.",
    ]
    print("\n".join(lines))
    write_section("rasterize", "Reading and rasterising COCO polygons (car-parts)", "\n".join(lines))
    if not (same and voc_same):
        sys.exit(1)


if __name__ == "__main__":
    main()
