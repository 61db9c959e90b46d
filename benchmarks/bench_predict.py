"""Prediction end to end, as a person waiting for masks sees it (issues 29 and 23), each figure beside its
reference in the same run:

- per-photo time after start-up of `predict` (read, network, masks, overlays and colour masks written), torch
  and ONNX Runtime, on car-parts test photos resized to 640x480, 1000x700 and 4000x3000 (JPEG), against each
  backend's bare network rate on the very inputs the predictor builds for those photos; the stage table
  (read, preprocess, network, postprocess, write) of each run;
- start-up to the first mask: the whole `masksmith predict MODEL ONE_PHOTO` command in a fresh process, torch and
  ONNX (with its optimised graph cached, as after `masksmith export`), and `masksmith --help` /
  `masksmith predict --help`;
- 10 000 generated photos through predict in one process, peak memory after photo 1 000 and after the last;
- `evaluate` end to end (images/s, reading and scoring included) on the car-parts test set resized to 480x360
  and to 2000x1500, against the bare network on the same inputs;
- the masks' agreement with the previous full-resolution path (every class score resized to the photo, then
  the argmax) on car-parts test photos and on generated photos.

    python benchmarks/bench_predict.py --model RUN/model.masksmith
    python benchmarks/bench_predict.py --model M --short --force --no-write   # a quick check that it all works

The model: the default recipe trained by epochs (`masksmith train trainingset --epochs 12`); the script exports
it to ONNX beside itself when no export is there. Refuses to start above a 1-minute load average of 1.5
(--force runs anyway and marks the output "not a result").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import REPO, car_parts_or_exit, cpu_flags, machine, write_section  # noqa: E402

LOAD_LIMIT = 1.5


def load1() -> float:
    return os.getloadavg()[0]


def rss_mb(field: str = "VmHWM") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------------------------------- photos
def resized_jpegs(sources: list[Path], size: tuple[int, int], count: int, folder: Path) -> Path:
    """`count` JPEGs (quality 90) of `size` (w, h) made from the car photos, cycling through them."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        with Image.open(sources[k % len(sources)]) as im:
            im.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(folder / f"car_{k:05d}.jpg", quality=90)
    return folder


def network_inputs(predictor, images: list[np.ndarray]) -> list[np.ndarray]:
    """The arrays the predictor hands its network for these photos (resize or sliding windows, padding)."""
    seen: list[np.ndarray] = []
    net = predictor.net

    def record(x: np.ndarray) -> np.ndarray:
        seen.append(x.copy())
        return net(x)

    predictor.net = record
    try:
        for image in images:
            predictor.predict_proba(image, own_size=False)
    finally:
        predictor.net = net
    return seen


def bare_seconds(predictor, inputs: list[np.ndarray], repeats: int = 3) -> float:
    """Seconds of the network alone per photo: all of a photo's network inputs, median over repeats."""
    per_pass = []
    predictor.net(inputs[0])
    for _ in range(repeats):
        t = time.perf_counter()
        for x in inputs:
            predictor.net(x)
        per_pass.append(time.perf_counter() - t)
    return statistics.median(per_pass)


# --------------------------------------------------------------------------------------- the measurements
def e2e(predictor, folder: Path, out: Path, save: str | None = None) -> tuple[float, object]:
    """Seconds per photo of predict_batch over `folder` (after one warm-up photo) writing `save` (None: all
    three outputs, the default), and its stage profile."""
    from masksmith.infer.batch import predict_batch
    from masksmith.infer.profile import Profile

    photos = sorted(folder.iterdir())
    list(predict_batch(predictor, photos[:1], out / "warm-up", overwrite=True, save=save))
    profile = Profile()
    rows = list(predict_batch(predictor, photos, out / "run", overwrite=True, profile=profile, save=save))
    profile.stop()
    shutil.rmtree(out, ignore_errors=True)
    return profile.wall / len(rows), profile


def rates(predictors: dict, sources: list[Path], sizes: list[tuple[int, int]], count: int, work: Path) -> list[dict]:
    from masksmith.core.images import read_image

    rows = []
    for size in sizes:
        folder = resized_jpegs(sources, size, count, work / f"photos-{size[0]}x{size[1]}")
        sample = [read_image(p) for p in sorted(folder.iterdir())[:4]]
        for name, predictor in predictors.items():
            inputs = network_inputs(predictor, sample)
            bare = bare_seconds(predictor, inputs) / len(sample)
            per_photo, profile = e2e(predictor, folder, work / "out")
            masks_only, _ = e2e(predictor, folder, work / "out", save="mask")
            bare = (bare + bare_seconds(predictor, inputs) / len(sample)) / 2  # before and after, averaged
            rows.append({"size": f"{size[0]}x{size[1]}", "backend": name, "e2e_s": per_photo, "bare_s": bare,
                         "mask_only_s": masks_only,
                         "net_input": "x".join(map(str, inputs[0].shape[-2:][::-1])), "windows": len(inputs) / 4,
                         "stages": {s.stage: s.seconds / max(1, profile.photos) for s in profile.stages()},
                         "wall_per_photo": profile.wall / max(1, profile.photos)})
            print(json.dumps(rows[-1]))
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def startup(model: Path, onnx_path: Path, photo: Path, runs: int, work: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    commands = {
        "masksmith --help": ["--help"],
        "masksmith predict --help": ["predict", "--help"],
        "predict, torch": ["predict", str(model), str(photo), "--backend", "torch"],
        "predict, ONNX (cached graph)": ["predict", str(onnx_path), str(photo)],
        "predict, auto (the default)": ["predict", str(model), str(photo)],
    }
    out = {}
    for name, args in commands.items():
        times = []
        for k in range(runs + 1):  # the first run warms the file cache (and the ONNX graph cache); not counted
            extra = ["--out", str(work / "startup"), "--overwrite"] if args[0] == "predict" and len(args) > 2 else []
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "masksmith.cli", *args, *extra], env=env,
                                  capture_output=True, text=True)
            elapsed = time.perf_counter() - t
            if done.returncode != 0:
                raise SystemExit(f"{name} failed: {done.stderr[-500:]}")
            if k:
                times.append(elapsed)
            note = next((ln for ln in done.stdout.splitlines() if ln.startswith("backend:")), None)
        out[name] = {"median_s": statistics.median(times), "runs": times, "backend": note}
        print(name, out[name])
    shutil.rmtree(work / "startup", ignore_errors=True)
    return out


def memory_child(model: str, count: int, pool: str, out: str, backend: str) -> None:
    """Child process: predict `count` photos (links to the photos in `pool`), peak RSS at 1 000 and at the end."""
    from masksmith.infer import open_predictor
    from masksmith.infer.batch import predict_batch

    pool_photos = sorted(Path(pool).iterdir())
    links = Path(out) / "photos"
    links.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        (links / f"p_{k:06d}.jpg").symlink_to(pool_photos[k % len(pool_photos)])
    predictor = open_predictor(model, backend=backend)
    marks: dict[str, float] = {}
    checkpoint = min(1000, count // 10 or 1)

    def progress(done: int, total: int) -> None:
        if done == checkpoint:
            marks["peak_at_checkpoint_mb"], marks["rss_at_checkpoint_mb"] = rss_mb(), rss_mb("VmRSS")

    t = time.perf_counter()
    for _ in predict_batch(predictor, [links], Path(out) / "masks", progress=progress):
        pass
    marks.update(peak_at_end_mb=rss_mb(), rss_at_end_mb=rss_mb("VmRSS"), checkpoint=checkpoint, photos=count,
                 seconds=time.perf_counter() - t)
    print("MEMORY " + json.dumps(marks))


def memory(model: Path, count: int, sources: list[Path], work: Path, backend: str) -> dict:
    pool = resized_jpegs(sources, (320, 240), 100, work / "memory-pool")
    out = work / "memory-out"
    child = subprocess.run([sys.executable, __file__, "--memory-child", str(model), str(count), str(pool), str(out),
                            backend], capture_output=True, text=True)
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(pool, ignore_errors=True)
    line = next((ln for ln in child.stdout.splitlines() if ln.startswith("MEMORY ")), None)
    if line is None:
        raise SystemExit(f"the memory run failed: {child.stderr[-1000:]}")
    result = json.loads(line[len("MEMORY "):])
    print(result)
    return result


def scaled_testset(data: Path, size: tuple[int, int], limit: int | None, work: Path):
    """car-parts' test set with every photo resized to `size` (w, h) and its polygons scaled alike."""
    from masksmith.data import load_dataset
    from masksmith.data.schema import Dataset, Region, Sample

    source = load_dataset(data / "testset")
    folder = work / f"testset-{size[0]}x{size[1]}"
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for s in source.samples[:limit]:
        fx, fy = size[0] / s.width, size[1] / s.height
        path = folder / Path(s.name).name
        s.open_image().convert("RGB").resize(size, Image.Resampling.BICUBIC).save(path, quality=92)
        regions = [Region(r.label, [p * [fx, fy] for p in r.polygons], iscrowd=r.iscrowd) for r in s.regions
                   if r.rle is None]
        samples.append(Sample(name=path.name, image_path=path, width=size[0], height=size[1], regions=regions))
    return Dataset(classes=source.classes, samples=samples, format="coco", root=folder)


def eval_rates(predictors: dict, data: Path, sizes: list[tuple[int, int]], limit: int | None, work: Path) -> list:
    from masksmith import service

    rows = []
    for size in sizes:
        dataset = scaled_testset(data, size, limit, work)
        images = [s.load_image() for s in dataset.samples[:4]]
        for name, predictor in predictors.items():
            inputs = network_inputs(predictor, images)
            bare = bare_seconds(predictor, inputs) / len(images)
            t = time.perf_counter()
            evaluation = service.evaluate(predictor, dataset, save=False)
            per_image = (time.perf_counter() - t) / evaluation.images
            bare = (bare + bare_seconds(predictor, inputs) / len(images)) / 2
            rows.append({"size": f"{size[0]}x{size[1]}", "backend": name, "e2e_s": per_image, "bare_s": bare,
                         "images": evaluation.images, "miou": evaluation.figures[0].value})
            print(json.dumps(rows[-1]))
        shutil.rmtree(dataset.root, ignore_errors=True)
    return rows


def tolerance(predictor, paths: list[Path], generated: list[np.ndarray]) -> dict:
    """Share of mask pixels equal to the previous path's (scores resized to the photo, then argmax)."""
    import torch
    import torch.nn.functional as F

    from masksmith.core.images import read_image

    def old_mask(image: np.ndarray) -> np.ndarray:
        pixels = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float()
        x = F.interpolate(pixels, size=predictor.artifact.input_size, mode="bilinear", antialias=True,
                          align_corners=False)
        probs = torch.from_numpy(predictor._probabilities(x.numpy()))
        return F.interpolate(probs, size=image.shape[:2], mode="bilinear", align_corners=False)[0].argmax(0).numpy()

    out = {}
    for name, images in (("car-parts test photos", (read_image(p) for p in paths)), ("generated photos", generated)):
        shares = [float((predictor.predict(im) == old_mask(im)).mean()) for im in images]
        out[name] = {"photos": len(shares), "min": min(shares), "mean": statistics.mean(shares)}
        print(name, out[name])
    return out


# ------------------------------------------------------------------------------------------------ report
def render(r: dict, command_note: str) -> str:
    lines = [command_note, "",
             "Per-photo time after start-up (`predict_batch`, all three outputs written: mask, overlay, colour "
             "mask; and with `save=\"mask\"` only), against the backend's network alone on the same inputs:", "",
             "| photos | backend | end to end | photos/s | network alone (input) | end-to-end / network rate | "
             "ONNX / torch end to end | ONNX / torch network alone | masks only: end to end, / network rate |",
             "|---|---|---|---|---|---|---|---|---|"]
    by = {(x["size"], x["backend"]): x for x in r["rates"]}
    for x in r["rates"]:
        torch_row = by.get((x["size"], "torch"))
        vs = f"{torch_row['e2e_s'] / x['e2e_s']:.2f}x" if x["backend"] == "onnx" and torch_row else ""
        nets = f"{torch_row['bare_s'] / x['bare_s']:.2f}x" if x["backend"] == "onnx" and torch_row else ""
        only = (f"{1000 * x['mask_only_s']:.0f} ms, {x['bare_s'] / x['mask_only_s']:.2f}" if "mask_only_s" in x
                else "")
        lines.append(f"| {x['size']} | {x['backend']} | {1000 * x['e2e_s']:.0f} ms | {1 / x['e2e_s']:.2f} | "
                     f"{1000 * x['bare_s']:.0f} ms ({x['net_input']}) | {x['bare_s'] / x['e2e_s']:.2f} | {vs} | "
                     f"{nets} | {only} |")
    lines += ["", "Where the time goes (ms per photo, summed over threads: reading and writing run beside the "
              "network):", "", "| photos | backend | read | preprocess | network | postprocess | write | wall |",
              "|---|---|---|---|---|---|---|---|"]
    for x in r["rates"]:
        st = x["stages"]
        lines.append(f"| {x['size']} | {x['backend']} | " + " | ".join(
            f"{1000 * st.get(k, 0):.0f}" for k in ("read", "preprocess", "network", "postprocess", "write"))
            + f" | {1000 * x['wall_per_photo']:.0f} |")
    lines += ["", "Start-up to the first mask (a fresh process; median of the runs after a warm-up run):", "",
              "| command | seconds | backend it said |", "|---|---|---|"]
    for name, v in r["startup"].items():
        lines.append(f"| {name} | {v['median_s']:.2f} | {v['backend'] or ''} |")
    m = r["memory"]
    growth = (m["peak_at_end_mb"] - m["peak_at_checkpoint_mb"]) / m["peak_at_checkpoint_mb"]
    lines += ["", f"Memory over {m['photos']} generated photos (320x240, links to 100 car photos) in one `predict` "
              f"({m['seconds']:.0f} s, {m['photos'] / m['seconds']:.1f} photos/s): peak RSS "
              f"{m['peak_at_checkpoint_mb']:.0f} MB after photo {m['checkpoint']}, {m['peak_at_end_mb']:.0f} MB at the "
              f"end ({100 * growth:+.1f} %); RSS at the end {m['rss_at_end_mb']:.0f} MB.", "",
              "`evaluate` end to end (reading, scoring at input and full size) against the network alone on the same "
              "inputs:", "", "| photos | backend | images | end to end | network alone | ratio | mIoU |",
              "|---|---|---|---|---|---|---|"]
    for x in r["evaluate"]:
        lines.append(f"| {x['size']} | {x['backend']} | {x['images']} | {1000 * x['e2e_s']:.0f} ms | "
                     f"{1000 * x['bare_s']:.0f} ms | {x['bare_s'] / x['e2e_s']:.2f} | {x['miou']:.3f} |")
    lines += ["", "Masks against the previous full-resolution path (every class score resized to the photo, then "
              "the argmax; preprocessing then in float by torch):", "", "| photos | count | min equal | mean equal |",
              "|---|---|---|---|"]
    for name, v in r["tolerance"].items():
        lines.append(f"| {name} | {v['photos']} | {100 * v['min']:.3f} % | {100 * v['mean']:.3f} % |")
    rates_ok = [x["bare_s"] / x["e2e_s"] >= 0.8 for x in r["rates"] if x["size"] != "4000x3000"]
    onnx_vs = [by[(x["size"], "torch")]["e2e_s"] / x["e2e_s"] for x in r["rates"] if x["backend"] == "onnx"]
    nets_vs = [by[(x["size"], "torch")]["bare_s"] / x["bare_s"] for x in r["rates"] if x["backend"] == "onnx"]
    start = r["startup"]
    lines += ["", "Goals:",
              f"- ONNX end to end >= 1.5x torch end to end: {', '.join(f'{v:.2f}x' for v in onnx_vs)} "
              f"(the networks alone: {', '.join(f'{v:.2f}x' for v in nets_vs)}).",
              "- end-to-end rate >= 0.8 of the backend's network rate: "
              + ", ".join(f"{x['size']} {x['backend']} {x['bare_s'] / x['e2e_s']:.2f}" for x in r["rates"])
              + f" ({'met' if all(rates_ok) else 'missed'} below 4000x3000); masks only: "
              + ", ".join(f"{x['size']} {x['backend']} {x['bare_s'] / x['mask_only_s']:.2f}" for x in r["rates"]
                          if "mask_only_s" in x) + ".",
              f"- start-up to the first mask <= 2 s: torch {start['predict, torch']['median_s']:.2f} s, ONNX "
              f"{start['predict, ONNX (cached graph)']['median_s']:.2f} s.",
              f"- flat memory (peak within 10 % from photo {m['checkpoint']} to {m['photos']}): {100 * growth:+.1f} % "
              f"({'met' if abs(growth) <= 0.10 else 'missed'}).",
              "- evaluate end to end >= 0.8 of the network rate: " + ", ".join(
                  f"{x['size']} {x['backend']} {x['bare_s'] / x['e2e_s']:.2f}" for x in r["evaluate"]) + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a trained semantic .masksmith (exported beside it if needed)")
    parser.add_argument("--sizes", default="640x480,1000x700,4000x3000")
    parser.add_argument("--photos", type=int, default=24, help="photos per size for the per-photo time")
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--memory-photos", type=int, default=10_000)
    parser.add_argument("--eval-sizes", default="480x360,2000x1500")
    parser.add_argument("--eval-images", type=int, default=None, help="test photos to evaluate (default: all 100)")
    parser.add_argument("--short", action="store_true", help="small counts: proves the script works")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--force", action="store_true", help=f"run above a load average of {LOAD_LIMIT}")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--memory-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        m, n, pool, out, backend = args.memory_child
        memory_child(m, int(n), pool, out, backend)
        return
    if args.model is None:
        raise SystemExit("give --model: a semantic model trained on car-parts (masksmith train "
                         "trainingset --epochs 12)")
    if args.short:
        args.sizes, args.photos, args.startup_runs = "640x480,1000x700", 4, 1
        args.memory_photos, args.eval_sizes, args.eval_images = 300, "480x360", 6
    data = car_parts_or_exit()
    before = load1()
    print(f"machine: {machine()}\ncpu flags: {cpu_flags()}\nload average (1 min) before: {before:.2f}")
    if before > LOAD_LIMIT and not args.force:
        raise SystemExit(f"load average {before:.2f} is above {LOAD_LIMIT}: other work would distort the figures; "
                         "run on a quiet machine (or --force for a trial, marked 'not a result')")
    started = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-predict-"))
    work.mkdir(parents=True, exist_ok=True)

    import torch

    from masksmith.infer import open_predictor
    from masksmith.infer.export import export_onnx

    onnx_path = args.model.with_suffix(".onnx")
    report = export_onnx(args.model, overwrite=True)
    print(f"export: {report.parity.describe()}; {report.graph}")
    predictors = {"torch": open_predictor(args.model, backend="torch"), "onnx": open_predictor(onnx_path)}
    sources = sorted((data / "testset" / "JPEGImages").iterdir())
    sizes = [tuple(map(int, s.split("x"))) for s in args.sizes.split(",")]
    results: dict = {"rates": rates(predictors, sources, sizes, args.photos, work)}
    photo = resized_jpegs(sources, (1000, 700), 1, work / "one") / "car_00000.jpg"
    results["startup"] = startup(args.model, onnx_path, photo, args.startup_runs, work)
    results["memory"] = memory(onnx_path, args.memory_photos, sources, work, "onnx")
    eval_sizes = [tuple(map(int, s.split("x"))) for s in args.eval_sizes.split(",")]
    results["evaluate"] = eval_rates(predictors, data, eval_sizes, args.eval_images, work)
    from masksmith.data.synthetic import sample_dataset

    generated = [s.load_image() for s in sample_dataset(12 if not args.short else 3, (640, 480), seed=5).samples]
    results["tolerance"] = tolerance(predictors["torch"], sources[: 100 if not args.short else 4], generated)
    after = load1()
    minutes = (time.perf_counter() - started) / 60
    quiet = before <= LOAD_LIMIT
    note = (f"CPU flags: {cpu_flags()}. Load average (1 min) {before:.2f} before, {after:.2f} after; "
            f"{minutes:.0f} minutes. Model: `{args.model}`; {torch.get_num_threads()} threads for torch and for "
            "onnxruntime."
            + ("" if quiet else " **Not a result: the machine was loaded (run with --force).**"))
    body = render(results, note)
    print(body)
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"load average after: {after:.2f}; results in {work / 'results.json'}")
    if not args.no_write:
        write_section("predict", "Prediction end to end: predict and evaluate against the network (issues 29, 23)",
                      body)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
