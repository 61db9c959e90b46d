"""Respray on real car photos (car-parts test set, issue 28), beside the recolour it replaced, in one run.

Recolouring uses a semantic model's predictions (`--model FILE`, or one trained here for `--train-minutes` on
the training set); scoring uses the test set's annotated polygons. Every figure is also measured with the
annotated masks as the input (a perfect model), which separates the model's errors from the method's.

- Colour reached: for 3 targets (navy, red, white by default) on `--photos` test photos of different paint
  colours (chosen round-robin over colour families by the annotated paint's median colour), the median
  CIEDE2000 (skimage.color.deltaE_ciede2000) between the target and the recoloured paint's mid-tone pixels:
  the annotated painted parts' pixels that changed, between the 25th and 75th percentile of their lightness
  in the photo. Per photo and target a median; the figure is the median over photos. Goal <= 10.
- Paint only: the share of the annotated glass and light pixels (front_glass, back_glass, *_light) that
  changed (goal <= 2 %), and of the annotated painted parts' pixels (hood, bumpers, trunk, tailgate, doors;
  the doors' polygons hold their windows) that changed (goal >= 90 %), and of the hood, trunk and tailgate alone
  (no windows, plates or grilles inside), pooled over photos. A pixel changed when a channel moved by 4 levels
  or more in any of the targets' results. Also how many pixels the paint grew
  into outside the annotated parts, per annotated painted pixel (the unlabelled fenders, roof and pillars).
- Speed: seconds per 12-megapixel photo (`--speed-photos` test photos scaled to 4000x3000 with their masks),
  respray (with growth) beside the recolour of main before issue 28 (benchmarks/_legacy_recolor.py), median of
  `--repeats` alternating runs, the same thread count for both. Goal: within 1.5x.

`--gallery` also writes a gallery, respray-*.png in `--gallery-dir` (kept out of the repository: the car-parts
photos have no licence to publish them): 6 test photos (2 side views, 2 front three-quarter, 2 rear) resprayed
in 3 colours with new wheels (masksmith.apps.paste.new_wheels), all from the model's predictions. The load
average is printed before and after; the script refuses to start above 1.5 (`--force` runs anyway and marks
the output "not a result"). The figures go into docs/benchmarks.md with the command unless `--no-write`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from masksmith.core.labels import ClassMap

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _legacy_recolor import legacy_recolor  # noqa: E402
from _report import REPO, car_parts_or_exit, cpu_flags, load_average, refuse_when_loaded, write_section  # noqa: E402

PAINT = ("hood", "front_bumper", "back_bumper", "trunk", "tailgate", "front_left_door", "front_right_door",
         "back_left_door", "back_right_door")
GLASS = ("front_glass", "back_glass")
PANELS = ("hood", "trunk", "tailgate")  # painted parts without windows, plates or grilles inside
GROUPS = {"doors": tuple(n for n in PAINT if n.endswith("_door")), "bumpers": ("front_bumper", "back_bumper"),
          "hood, trunk, tailgate": PANELS}
REASONS = ("changed", "another predicted part", "not paint by colour", "outside the predicted parts")
CHANGED = 4  # levels a channel must move for a pixel to count as changed
FAMILIES = ("white", "silver", "black", "red", "yellow-green", "blue")
VIEWS = {"side": 2, "front three-quarter": 2, "rear": 2}
GALLERY_COLORS = ("navy", "#c0392b", "white")


@dataclass
class Photo:
    name: str
    image: np.ndarray
    truth: np.ndarray  # (H, W) class index in the model's class order (0 background, 255 void)
    family: str = ""
    painted: int = 0


@dataclass
class Tally:
    """Pooled counts and per-photo colour errors of one method on one input."""
    delta_e: dict[str, list[float]] = field(default_factory=dict)
    glass: list[int] = field(default_factory=lambda: [0, 0])  # changed, annotated
    paint: list[int] = field(default_factory=lambda: [0, 0])
    panels: list[int] = field(default_factory=lambda: [0, 0])
    grown: int = 0
    photos: list[dict] = field(default_factory=list)  # per photo, for --json
    # annotated painted pixels per group (GROUPS) by what became of them (REASONS; respray only)
    why: dict[str, dict[str, int]] = field(default_factory=dict)

    def explain(self, photo: Photo, names: ClassMap, results: dict[str, np.ndarray], masks) -> None:
        """Where the annotated painted pixels went: changed, or left because the model called them another part
        (glass, lights, wheels, mirrors, with their outlines snapped as find_paint snaps them), because the colour
        test found them not paint inside the chosen parts (windows in the doors, plates and grilles in the
        bumpers, trim, and paint it got wrong), or because they lie outside the chosen parts and growth did not
        reach them."""
        from masksmith.apps.respray import SNAP, snap_to_edges

        changed = np.zeros(photo.truth.shape, bool)
        for out in results.values():
            changed |= (np.abs(out.astype(np.int16) - photo.image.astype(np.int16)) >= CHANGED).any(axis=2)
        kept = snap_to_edges(photo.image, masks.keep, SNAP)
        for group, classes in GROUPS.items():
            mine = _classes(photo.truth, names, classes)
            left = mine & ~changed
            counts = self.why.setdefault(group, dict.fromkeys(("all", *REASONS), 0))
            counts["all"] += int(mine.sum())
            counts["changed"] += int((mine & changed).sum())
            counts["another predicted part"] += int((left & kept).sum())
            counts["not paint by colour"] += int((left & masks.part & ~kept).sum())
            counts["outside the predicted parts"] += int((left & ~masks.part & ~kept).sum())

    def add(self, photo: Photo, names: ClassMap, results: dict[str, np.ndarray]) -> None:
        from skimage.color import deltaE_ciede2000, rgb2lab

        from masksmith.apps.colorspace import parse_color, to_lab

        paint = _classes(photo.truth, names, PAINT)
        glass = _classes(photo.truth, names, [n for n in names.names if n in GLASS or n.endswith("_light")])
        car = np.isin(photo.truth, list(names.values))
        changed = np.zeros(photo.truth.shape, bool)
        row: dict = {"photo": photo.name, "paint": photo.family}
        for target, out in results.items():
            moved = (np.abs(out.astype(np.int16) - photo.image.astype(np.int16)) >= CHANGED).any(axis=2)
            changed |= moved
            region = paint & moved
            if region.sum() < 50:
                continue
            lightness = to_lab(photo.image[region])[:, 0]
            lo, hi = np.percentile(lightness, [25, 75])
            mids = out[region][(lightness >= lo) & (lightness <= hi)]
            goal = rgb2lab(np.array([[parse_color(target)]], np.uint8))[0, 0]
            errors = deltaE_ciede2000(rgb2lab(mids.reshape(-1, 1, 3))[:, 0], goal[None, :])
            self.delta_e.setdefault(target, []).append(float(np.median(errors)))
            row[target] = round(float(np.median(errors)), 2)
        row["glass_changed"] = round(float((changed & glass).sum() / max(glass.sum(), 1)), 4)
        row["paint_changed"] = round(float((changed & paint).sum() / max(paint.sum(), 1)), 4)
        self.photos.append(row)
        self.glass[0] += int((changed & glass).sum())
        self.glass[1] += int(glass.sum())
        self.paint[0] += int((changed & paint).sum())
        self.paint[1] += int(paint.sum())
        panels = _classes(photo.truth, names, PANELS)
        self.panels[0] += int((changed & panels).sum())
        self.panels[1] += int(panels.sum())
        self.grown += int((changed & ~car).sum())

    def summary(self) -> dict:
        per_target = {t: statistics.median(v) for t, v in self.delta_e.items() if v}
        every = [x for v in self.delta_e.values() for x in v]
        return {"delta_e": per_target, "delta_e_all": statistics.median(every) if every else float("nan"),
                "glass_changed": self.glass[0] / max(self.glass[1], 1),
                "paint_changed": self.paint[0] / max(self.paint[1], 1),
                "panels_changed": self.panels[0] / max(self.panels[1], 1),
                "grown": self.grown / max(self.paint[1], 1), "photos": len(next(iter(self.delta_e.values()), []))}


def _classes(mask: np.ndarray, names: ClassMap, wanted) -> np.ndarray:
    return np.isin(mask, [names.value(n) for n in set(wanted) if n in names])


def family(rgb) -> str:
    """The colour family of a paint's median colour, for choosing photos of different colours."""
    from masksmith.apps.colorspace import to_lab

    lightness, a, b = to_lab(np.asarray(rgb, np.uint8))
    if np.hypot(a, b) < 12:
        return "white" if lightness > 75 else "silver" if lightness > 40 else "black"
    hue = np.degrees(np.arctan2(b, a)) % 360
    return "red" if hue < 70 or hue >= 330 else "yellow-green" if hue < 170 else "blue"


def read_photos(data: Path, names: ClassMap) -> list[Photo]:
    """The test photos with their annotated masks in the model's class order, and their paint's family."""
    from masksmith.data import load_dataset
    from masksmith.data.rasterize import semantic_mask

    dataset = load_dataset(data / "testset")
    index = names.index()
    missing = [c for c in dataset.class_names if c not in index]
    if missing:
        raise SystemExit(f"the model lacks the test set's classes {missing}: train it on car-parts.")
    photos = []
    for sample in dataset.samples:
        truth = semantic_mask(sample, index)
        image = sample.load_image()
        paint = _classes(truth, names, PAINT)
        photo = Photo(Path(sample.name).name, image, truth, painted=int(paint.sum()))
        if photo.painted:
            photo.family = family(np.median(image[paint], axis=0))
        photos.append(photo)
    return photos


def choose(photos: list[Photo], count: int) -> list[Photo]:
    """`count` photos, round-robin over the paint's colour families, most annotated paint first in each."""
    pools = {f: sorted([p for p in photos if p.family == f and p.painted >= 0.05 * p.truth.size],
                       key=lambda p: -p.painted) for f in FAMILIES}
    chosen: list[Photo] = []
    while len(chosen) < count and any(pools.values()):
        for f in FAMILIES:
            if pools[f] and len(chosen) < count:
                chosen.append(pools[f].pop(0))
    return chosen


def view_of(photo: Photo, names: ClassMap) -> str | None:
    present = set(names.names_of(np.unique(photo.truth).tolist()))
    doors = {n for n in present if n.endswith("_door")}
    if {"back_bumper", "back_glass"} <= present and present & {"trunk", "tailgate"} and "hood" not in present:
        return "rear"
    if {"hood", "front_bumper", "front_glass"} <= present and doors:
        return "front three-quarter"
    if len(doors) >= 2 and not present & {"hood", "front_bumper", "back_bumper", "front_glass", "back_glass"}:
        return "side"
    return None


def masks_from(prediction: np.ndarray, names: ClassMap):
    from masksmith.apps.respray import respray_masks

    return respray_masks(prediction, names, PAINT)


def run_methods(photo: Photo, prediction: np.ndarray, names: ClassMap, targets: list[str]):
    """({method: {target: result}}, the respray's masks)."""
    from masksmith.apps.colorspace import parse_color
    from masksmith.apps.respray import find_paint, respray

    masks = masks_from(prediction, names)
    paint = find_paint(photo.image, masks.part, masks.car, masks.keep)
    new = {t: respray(photo.image, masks.part, t, paint=paint) for t in targets}
    old = {t: legacy_recolor(photo.image, masks.part, parse_color(t)) for t in targets}
    return {"respray": new, "recolour before": old}, masks


def train(data: Path, minutes: float, runs: Path) -> Path:
    from masksmith.train.config import TrainConfig
    from masksmith.train.semantic import train_semantic

    config = TrainConfig(data=str(data / "trainingset"), time_budget=60.0 * minutes, epochs=None, size=256,
                         runs_dir=str(runs), name="bench-respray", preview_images=2)
    return train_semantic(config) / "model.masksmith"


def speed(photos: list[Photo], names: ClassMap, repeats: int, threads: int) -> dict:
    """Median seconds per 12-megapixel photo: respray (grown, with car and keep masks) and the old recolour,
    alternating, on the photos scaled to 4000x3000 with their annotated masks scaled alike."""
    from PIL import Image
    from threadpoolctl import threadpool_limits

    from masksmith.apps.colorspace import parse_color
    from masksmith.apps.respray import respray

    times: dict[str, list[float]] = {"respray": [], "recolour before": []}
    rgb = parse_color("navy")
    with threadpool_limits(threads):
        respray(photos[0].image[:64, :64], _classes(photos[0].truth, names, PAINT)[:64, :64], rgb)  # warm up
        for photo in photos:
            image = np.asarray(Image.fromarray(photo.image).resize((4000, 3000), Image.Resampling.BICUBIC))
            truth = np.asarray(Image.fromarray(photo.truth).resize((4000, 3000), Image.Resampling.NEAREST))
            masks = masks_from(truth, names)
            for _ in range(repeats):
                t = time.perf_counter()
                respray(image, masks.part, rgb, car_mask=masks.car, keep=masks.keep)
                times["respray"].append(time.perf_counter() - t)
                t = time.perf_counter()
                legacy_recolor(image, masks.part, rgb)
                times["recolour before"].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def gallery(photos: list[Photo], predictor, names: ClassMap, folder: Path) -> list[Path]:
    """docs/images/respray-N.png: per photo, the photo and its respray in GALLERY_COLORS with new wheels."""
    from PIL import Image

    from masksmith.apps.paste import new_wheels, regions
    from masksmith.apps.respray import find_paint, respray
    from masksmith.core.outputs import atomic_save_image
    from masksmith.draw.sheet import sheet

    picked: list[tuple[str, Photo]] = []
    for view, count in VIEWS.items():
        seen: set[str] = set()
        candidates = sorted([p for p in photos if view_of(p, names) == view], key=lambda p: -p.image.size)
        for p in candidates:  # different paint colours where the view has them
            if len([q for v, q in picked if v == view]) < count and p.family not in seen:
                picked.append((view, p))
                seen.add(p.family)
        for p in candidates:
            if len([q for v, q in picked if v == view]) < count and all(p is not q for _, q in picked):
                picked.append((view, p))
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for number, (view, photo) in enumerate(picked, start=1):
        prediction = predictor.predict(photo.image)
        masks = masks_from(prediction, names)
        paint = find_paint(photo.image, masks.part, masks.car, masks.keep)
        wheels = regions(_classes(prediction, names, ["wheel"]), 64)
        cell = 360
        scale = cell / max(photo.image.shape[:2])
        size = (max(1, round(photo.image.shape[1] * scale)), max(1, round(photo.image.shape[0] * scale)))
        panels = [photo.image]
        notes = 0
        for color in GALLERY_COLORS:
            out = respray(photo.image, masks.part, color, paint=paint)
            result = new_wheels(out, wheels)
            notes += len(result.notes)
            panels.append(result.image)
        panels = [np.asarray(Image.fromarray(p).resize(size, Image.Resampling.LANCZOS)) for p in panels]
        picture = sheet([panels], ["photo", *[f"{c}, new wheels" for c in GALLERY_COLORS]], cell=cell,
                        title=f"car-parts test photo {photo.name} ({view}): resprayed from the model's masks")
        written.append(atomic_save_image(picture.pixels, folder / f"respray-{number}.png", **picture.save_options()))
        print(f"gallery: {written[-1]} ({view}, {photo.family} paint, {len(wheels)} wheel region(s), "
              f"{notes // len(GALLERY_COLORS)} left alone)")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a semantic model.masksmith trained on car-parts")
    parser.add_argument("--train-minutes", type=float, default=12.0, help="without --model: train this long")
    parser.add_argument("--runs", type=Path, default=Path("/tmp/bench-respray"), help="where a training goes")
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--colors", default="navy,red,white")
    parser.add_argument("--speed-photos", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gallery", action="store_true", help="write the gallery, respray-*.png, to --gallery-dir")
    parser.add_argument("--gallery-dir", type=Path, default=Path("respray-gallery"),
                        help="where the gallery goes (not the repository: car-parts photos are not ours to publish)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument("--force", action="store_true", help="run on a loaded machine (output: not a result)")
    args = parser.parse_args()
    data = car_parts_or_exit()
    load_before = refuse_when_loaded(args.force)
    loaded = load_before > 1.5

    from masksmith.infer import open_predictor

    started = time.perf_counter()
    model = args.model or train(data, args.train_minutes, args.runs)
    predictor = open_predictor(model)
    names = predictor.classes
    targets = [t.strip() for t in args.colors.split(",") if t.strip()]
    photos = read_photos(data, names)
    chosen = choose(photos, args.photos)
    print(f"model {model}; {len(chosen)} photos: " + ", ".join(f"{p.name} ({p.family})" for p in chosen))
    tallies = {(source, method): Tally() for source in ("model", "annotation")
               for method in ("respray", "recolour before")}
    for photo in chosen:
        prediction = predictor.predict(photo.image)
        for source, masks in (("model", prediction), ("annotation", photo.truth)):
            outputs, used = run_methods(photo, masks, names, targets)
            for method, results in outputs.items():
                tallies[(source, method)].add(photo, names, results)
            tallies[(source, "respray")].explain(photo, names, outputs["respray"], used)
    figures = {f"{s} / {m}": t.summary() for (s, m), t in tallies.items()}
    seconds = speed(chosen[:args.speed_photos], names, args.repeats, args.threads) if args.speed_photos else {}
    written = gallery(photos, predictor, names, args.gallery_dir) if args.gallery else []
    load_after = load_average()
    loaded = loaded or load_after > 1.5

    lines = [f"Model: `{model}`; {len(chosen)} test photos of different paint colours "
             f"({', '.join(sorted({p.family for p in chosen}))}); targets {', '.join(targets)}. "
             "Recoloured from the model's predicted masks (and, to separate the model's errors from the "
             "method's, from the annotated masks); scored on the annotated masks.", "",
             "| input / method | median CIEDE2000 to the target (mid-tones) | per target | glass and lights "
             "changed | painted parts changed | of which hood, trunk, tailgate | grown (per painted pixel) |",
             "|---|---|---|---|---|---|---|"]
    for key, f in figures.items():
        per = ", ".join(f"{t} {v:.1f}" for t, v in f["delta_e"].items())
        lines.append(f"| {key} | **{f['delta_e_all']:.1f}** | {per} | {100 * f['glass_changed']:.1f} % | "
                     f"{100 * f['paint_changed']:.1f} % | {100 * f['panels_changed']:.1f} % | {f['grown']:.2f} |")
    lines += ["", "Goals: CIEDE2000 <= 10, glass and lights <= 2 %, painted parts >= 90 %. The doors' polygons hold "
              "their windows (no class of their own) and the bumpers' their plates, grilles and black trim, which "
              "a respray leaves alone: hence the share of the hood, trunk and tailgate alone beside it. A pixel "
              f"changed when a channel moved by {CHANGED} levels in any target's result."]
    lines += ["", "Where the annotated painted pixels went (respray; an extra breakdown, not the goal's metric: the "
              "goal counts every annotated pixel): changed, or left because the model called them another part "
              "(glass, lights, wheels, mirrors, their outlines snapped to the photo's edges), because the colour "
              "test inside the chosen parts found them not paint (the doors' windows, the bumpers' plates and "
              "grilles, trim, and paint it got wrong), or because they lie outside the chosen parts and growth did "
              "not reach them.", "",
              "| input | parts | annotated pixels | " + " | ".join(REASONS) + " |",
              "|---|---|---|" + "---|" * len(REASONS)]
    for source in ("model", "annotation"):
        for group, counts in tallies[(source, "respray")].why.items():
            cells = " | ".join(f"{100 * counts[r] / max(counts['all'], 1):.1f} %" for r in REASONS)
            lines.append(f"| {source} | {group} | {counts['all']} | {cells} |")
    if seconds:
        ratio = seconds["respray"] / seconds["recolour before"]
        lines += ["", f"Speed per 12-megapixel photo ({min(args.speed_photos, len(chosen))} photos scaled to "
                  f"4000x3000, median of {args.repeats} alternating runs, {args.threads} threads): respray "
                  f"{seconds['respray']:.2f} s, the recolour before {seconds['recolour before']:.2f} s: "
                  f"**{ratio:.2f}x** (goal <= 1.5x)."]
    lines += ["", f"CPU flags: {cpu_flags()}. Load average {load_before:.2f} before, {load_after:.2f} after "
              f"({os.cpu_count()} cores); {time.perf_counter() - started:.0f} s in all."]
    if loaded:
        lines += ["", "**Not a result**: the machine was loaded (load average above 1.5); run again on a quiet "
                  "machine."]
    if written:
        lines += ["", "Gallery: " + ", ".join(str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)
                                              for p in written) + "."]
    body = "\n".join(lines)
    print(body)
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "seconds": seconds, "load": [load_before, load_after],
                                         "where": {s: tallies[(s, "respray")].why for s in ("model", "annotation")},
                                         "photos": {f"{s} / {m}": t.photos for (s, m), t in tallies.items()}},
                                        indent=1))
    if not args.no_write:
        write_section("respray", "Respray on car-parts test photos (issue 28)", body)


if __name__ == "__main__":
    main()
