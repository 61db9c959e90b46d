"""Make the README's pictures of the apps from the demo, never by hand: the demo's model and its unseen cars
(running the demo first when its folder has no model), then recolor, paste, cluster, colors, pre-annotations
and rank through the same library functions the commands call, into docs/images/app-*.png.

    python docs/make_app_images.py                       # uses (or makes) demo_output/
    python docs/make_app_images.py --demo /tmp/demo      # another demo folder
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

IMAGES = Path(__file__).resolve().parent / "images"


def stack(pictures: list[np.ndarray], gap: int = 6) -> np.ndarray:
    """Pictures one under the other on white, left-aligned."""
    width = max(p.shape[1] for p in pictures)
    height = sum(p.shape[0] for p in pictures) + gap * (len(pictures) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    y = 0
    for p in pictures:
        canvas[y:y + p.shape[0], :p.shape[1]] = p[..., :3]
        y += p.shape[0] + gap
    return canvas


def fit(image: np.ndarray, cell: int) -> np.ndarray:
    from masksmith.draw.overlay import fitted_size

    h, w = fitted_size(image.shape, cell)
    return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.LANCZOS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo_output"), help="the demo's output folder")
    parser.add_argument("--seconds", type=float, default=120.0, help="training time if the demo must run")
    args = parser.parse_args()

    from rich.console import Console

    from masksmith.apps.annotate import Prediction, write_preannotations
    from masksmith.apps.cluster import cluster_image, palette_strip
    from masksmith.apps.colors import dominant_colors
    from masksmith.apps.paste import demo_rim, new_wheels
    from masksmith.apps.rank import rank_images
    from masksmith.apps.recolor import recolor
    from masksmith.apps.selection import object_masks, semantic_class_mask
    from masksmith.core.images import read_image
    from masksmith.core.outputs import atomic_save_image
    from masksmith.data import load_dataset
    from masksmith.data.synthetic import ensure_sample_dataset
    from masksmith.draw.sheet import sheet
    from masksmith.infer import open_predictor

    model = args.demo / "runs" / "demo" / "model.masksmith"
    if not model.exists():
        from masksmith.demo import run_demo

        run_demo(args.demo, Console(), train_seconds=args.seconds)
    predictor = open_predictor(model)
    names = predictor.classes
    unseen = ensure_sample_dataset(n_images=16, seed=101) / "images"
    files = sorted(unseen.iterdir())
    photos = [(f, read_image(f)) for f in files]
    masks = [predictor.predict(image) for _, image in photos]
    body_pixels = [int(semantic_class_mask(m, names, ["body"]).sum()) for m in masks]
    best = int(np.argmax(body_pixels))
    path, image = photos[best]
    mask = masks[best]
    IMAGES.mkdir(exist_ok=True)
    written = []

    def save(name: str, picture) -> None:
        pixels = picture.pixels if hasattr(picture, "pixels") else picture
        options = picture.save_options() if hasattr(picture, "save_options") else {}
        written.append(atomic_save_image(pixels, IMAGES / name, **options))

    body = semantic_class_mask(mask, names, ["body"])
    car = np.isin(mask, list(names.values))
    panels = [fit(image, 300)] + [fit(recolor(image, body, c, car_mask=car, keep=car & ~body), 300)
                                  for c in ("#c0392b", "navy", "gold")]
    save("app-recolor.png", sheet([panels], ["photo", "#c0392b", "navy", "gold"], cell=300,
                                  title=f"masksmith recolor: {path.name}, predicted body recoloured"))

    wheels = object_masks(mask, names, ["wheel"], min_pixels=64)  # the CLI's default
    pasted = new_wheels(image, wheels, demo_rim())
    save("app-paste.png", sheet([[fit(image, 400), fit(pasted.image, 400)]], ["photo", "demo rim on each wheel"],
                                cell=400, title=f"new wheels: {len(pasted.placed)} of {len(wheels)} predicted wheels"))

    clusters = cluster_image(image, 5, seed=0)
    grid = sheet([[fit(image, 400), fit(clusters.image(), 400)]], ["photo", "5 colour clusters"], cell=400,
                 title=f"masksmith cluster --k 5: {path.name}, no training")
    save("app-cluster.png", stack([grid.pixels, palette_strip(clusters.colors, clusters.shares,
                                                             width=grid.pixels.shape[1], height=70)]))

    found = dominant_colors(image, body, k=3)
    shown = image.copy()
    shown[~body] = (shown[~body] * 0.25 + 190).astype(np.uint8)
    grid = sheet([[fit(shown, 500)]], ["the predicted body"], cell=500,
                 title="masksmith colors --classes body: its dominant colours")
    strip = palette_strip(np.array([c.rgb for c in found]), np.array([c.share for c in found]),
                          [c.name for c in found], width=grid.pixels.shape[1], height=90)
    save("app-colors.png", stack([grid.pixels, strip]))

    with tempfile.TemporaryDirectory() as tmp:
        out = write_preannotations([Prediction(path, image.shape[1], image.shape[0], mask=mask)], names, "cvat",
                                   Path(tmp) / "cvat")
        back = load_dataset(out)
        scale = 3
        canvas = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale),
                                              Image.Resampling.LANCZOS)
        d = ImageDraw.Draw(canvas)
        colors = {c.name: c.color for c in back.classes}
        vertices = 0
        for region in back.samples[0].regions:
            for polygon in region.polygons:
                points = [(float(x) * scale, float(y) * scale) for x, y in polygon]
                d.line([*points, points[0]], fill=colors[region.label], width=3)
                for x, y in points:
                    d.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=(255, 255, 255))
                vertices += len(points)
    regions = len(back.samples[0].regions)
    save("app-preannotate.png", sheet([[fit(np.asarray(canvas), 520)]], [f"{regions} polygons, {vertices} vertices"],
                                      cell=520, title="predict --to cvat, read back",
                                      classes=back.class_map))

    rows = rank_images(predictor, [(f.name, im) for f, im in photos], "entropy", strategy="uncertain")  # the ends
    by_name = dict((f.name, im) for f, im in photos)
    picked = rows[:3] + rows[-3:]
    save("app-rank.png", sheet([[fit(by_name[r.image], 180) for r in picked[:3]],
                                [fit(by_name[r.image], 180) for r in picked[3:]]], [], cell=180,
                               captions=["most uncertain first: " + ", ".join(f"{r.image} {r.score:.3f}"
                                                                               for r in picked[:3]),
                                         "most certain: " + ", ".join(f"{r.image} {r.score:.3f}" for r in picked[3:])],
                               title="masksmith rank: label these first (mean pixel entropy)"))
    for f in written:
        print(f"wrote {f}")


if __name__ == "__main__":
    sys.exit(main())
