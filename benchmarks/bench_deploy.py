"""Deploy, second round (issue 26), each figure beside its reference in the same run:

- INT8 table: for each trained semantic model given (one per encoder), the float ONNX graph and every INT8
  recipe `masksmith export --int8` tries (128 calibration photos from car-parts' training set): network speed
  against PyTorch eager at 512x512, and test mIoU (car-parts test set, input size, 19 classes); which recipe
  the export chose, or its one-line refusal.
- Speed only (`--speed-encoders`): encoders with no ImageNet weights offline (dense ResNets, where int8
  kernels are expected to pay), untrained, timed the same way: eager, float and each INT8 recipe.
- Mask R-CNN: PyTorch eager against the exported ONNX graph, network alone at the model's size, and the
  predictor end to end on car-parts test photos; detections matched between the two.
- Ray: photos per second of `predict` with the local engine against `--engine ray` with 2 workers on 2000
  generated photos (320x240), and the peak memory of each Ray worker.

    python benchmarks/bench_deploy.py --semantic RUN_A/model.masksmith RUN_B/model.masksmith \\
        --instance RUN_M/model.masksmith --speed-encoders resnet18,resnet34
    python benchmarks/bench_deploy.py --semantic M --short --force --no-write   # proves the script works

Models are trained by epochs beforehand (see docs/benchmarks.md for the commands). Refuses to start above a
1-minute load average of 1.5 (--force runs anyway and marks the output "not a result").
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import REPO, car_parts_or_exit, cpu_flags, machine, write_section  # noqa: E402

LOAD_LIMIT = 1.5


def median_ms(fn, x, repeats: int) -> float:
    fn(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def test_miou(predictor, data: Path, limit: int | None) -> float:
    from masksmith import service
    from masksmith.data import load_dataset

    dataset = load_dataset(data / "testset")
    dataset.samples = dataset.samples[:limit]
    return float(service.evaluate(predictor, dataset, save=False).scores["input"].miou(True))


def int8_rows(models: list[Path], data: Path, work: Path, repeats: int, limit: int | None, calib: int) -> list:
    import torch

    from masksmith.core.images import read_image
    from masksmith.infer import open_predictor
    from masksmith.infer.export import (
        INT8_MIN_GAIN,
        calibration_photos,
        export_onnx,
        predictor_inputs,
        spread,
        try_int8,
    )
    from masksmith.infer.predictor import Predictor, TorchNetwork
    from masksmith.infer.runtime import OnnxNetwork
    from masksmith.models.artifact import build_network, load_artifact

    rows = []
    for model in models:
        artifact = load_artifact(model)
        encoder = artifact.model.get("encoder") or artifact.model.get("arch")
        report = export_onnx(model, work / f"{model.parent.name}.onnx", overwrite=True)
        net = build_network(artifact)
        float_net = OnnxNetwork(report.path)
        photos = [read_image(p) for p in spread(calibration_photos(data / "trainingset"), calib + 8)]
        trials = try_int8(net, artifact, report.path.read_bytes(), float_net,
                          predictor_inputs(artifact, photos[:-8], calib), predictor_inputs(artifact, photos[-8:], 8))
        x = np.ascontiguousarray(torch.rand(1, 3, 512, 512).numpy() * 255, dtype=np.float32)
        eager = median_ms(TorchNetwork(net), x, repeats)
        variants = {"float": float_net, **{t.recipe.name: OnnxNetwork(t.data) for t in trials if t.error is None}}
        scores = {}
        for name, network in variants.items():
            ms = median_ms(network, x, repeats)
            miou = test_miou(Predictor(artifact, net=network, backend="onnx"), data, limit)
            scores[name] = {"ms": ms, "vs_eager": eager / ms, "miou": miou}
        paying = [t for t in trials if t.pays(INT8_MIN_GAIN)]
        chosen = max(paying, key=lambda t: t.speedup).recipe.name if paying else None
        eager_miou = test_miou(open_predictor(model, backend="torch"), data, limit)
        rows.append({"model": str(model), "encoder": encoder, "eager_ms": eager, "eager_miou": eager_miou,
                     "variants": scores, "chosen": chosen,
                     "trials": [t.describe() for t in trials]})
        print(json.dumps(rows[-1], indent=1))
    return rows


def speed_only_rows(encoders: list[str], template: Path, data: Path, repeats: int, calib: int) -> list:
    """Encoders with no ImageNet weights offline (dense ResNets): an untrained U-Net of the template model's
    classes and side pairs, for speed alone (INT8 kernels run as fast on untrained weights; accuracy would need
    a model trained to a real score, which these encoders cannot reach here from scratch)."""
    import torch

    from masksmith.core.images import read_image
    from masksmith.infer.export import calibration_photos, export_network, predictor_inputs, spread, try_int8
    from masksmith.infer.predictor import TorchNetwork
    from masksmith.infer.runtime import OnnxNetwork
    from masksmith.models.artifact import ModelArtifact, load_artifact
    from masksmith.models.semantic import ModelConfig, SegmentationNet, build_model

    base = load_artifact(template)
    photos = [read_image(p) for p in spread(calibration_photos(data / "trainingset"), calib + 8)]
    rows = []
    for encoder in encoders:
        config = ModelConfig(arch="unet", num_outputs=base.class_map.num_values, encoder=encoder,
                             encoder_weights=None, side_pairs=base.model.get("side_pairs"))
        torch.manual_seed(0)
        net = SegmentationNet(build_model(config, pretrained=False), base.preprocessing["mean"],
                              base.preprocessing["std"]).eval()
        artifact = ModelArtifact("semantic", config.to_dict(), base.classes, base.colors, base.preprocessing,
                                 training={}, state_dict=net.state_dict())
        float_bytes = export_network(net, artifact)
        float_net = OnnxNetwork(float_bytes)
        trials = try_int8(net, artifact, float_bytes, float_net, predictor_inputs(artifact, photos[:-8], calib),
                          predictor_inputs(artifact, photos[-8:], 8))
        x = np.ascontiguousarray(torch.rand(1, 3, 512, 512).numpy() * 255, dtype=np.float32)
        eager = median_ms(TorchNetwork(net), x, repeats)
        variants = {"float": float_net, **{t.recipe.name: OnnxNetwork(t.data) for t in trials if t.error is None}}
        scores = {name: {"ms": (ms := median_ms(network, x, repeats)), "vs_eager": eager / ms}
                  for name, network in variants.items()}
        rows.append({"encoder": encoder, "eager_ms": eager, "variants": scores,
                     "failed": [t.describe() for t in trials if t.error is not None]})
        print(json.dumps(rows[-1], indent=1))
    return rows


def instance_row(model: Path, data: Path, work: Path, repeats: int, limit: int | None) -> dict:
    import torch

    from masksmith.core.images import read_image
    from masksmith.infer import open_predictor
    from masksmith.infer.export import detection_parity, export_onnx, instance_sample_inputs
    from masksmith.infer.runtime import OnnxNetwork
    from masksmith.models.artifact import build_network, load_artifact

    t = time.perf_counter()
    report = export_onnx(model, work / "mrcnn.onnx", overwrite=True)
    export_s = time.perf_counter() - t
    artifact = load_artifact(model)
    net, onnx_net = build_network(artifact), OnnxNetwork(report.path)
    x = instance_sample_inputs(artifact)[0]
    with torch.no_grad():
        net.roi_heads.score_thresh = 0.5
        eager = median_ms(lambda v: net([v]), x, repeats)
    onnx_ms = median_ms(lambda v: onnx_net([v]), x, repeats)
    photos = sorted((data / "testset" / "JPEGImages").iterdir())[:limit or 20]
    images = [read_image(p) for p in photos]
    per = {}
    for name, predictor in (("eager", open_predictor(model, backend="torch")), ("onnx", open_predictor(report.path))):
        predictor.predict(images[0])
        t = time.perf_counter()
        for image in images:
            predictor.predict(image)
        per[name] = (time.perf_counter() - t) / len(images)
    net.roi_heads.score_thresh = 0.05
    matched = detection_parity(net, onnx_net, [torch.from_numpy(im).permute(2, 0, 1).float() / 255
                                               for im in images[:5]])
    row = {"export_s": export_s, "parity": report.parity.describe(), "eager_ms": eager, "onnx_ms": onnx_ms,
           "predict_eager_s": per["eager"], "predict_onnx_s": per["onnx"], "photos": len(images),
           "photo_parity": matched.describe()}
    print(json.dumps(row, indent=1))
    return row


def ray_row(model: Path, count: int, work: Path) -> dict:
    from PIL import Image

    from masksmith.data.synthetic import sample_dataset

    pool = work / "ray-pool"
    pool.mkdir(parents=True, exist_ok=True)
    for k, s in enumerate(sample_dataset(50, (320, 240), seed=11).samples):
        Image.fromarray(s.load_image()).save(pool / f"pool_{k:03d}.jpg", quality=90)
    photos = work / "ray-photos"
    shutil.rmtree(photos, ignore_errors=True)  # a work folder used before: start from none
    photos.mkdir()
    pool_files = sorted(pool.iterdir())
    for k in range(count):
        (photos / f"p_{k:05d}.jpg").symlink_to(pool_files[k % len(pool_files)])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    out = {}
    for engine in ("local", "ray"):
        target = work / f"out-{engine}"
        shutil.rmtree(target, ignore_errors=True)  # outputs left by an interrupted run would be skipped as done
        monitor = WorkerMemory() if engine == "ray" else None
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "masksmith.cli", "predict", str(model), str(photos), "--out",
                               str(target), "--engine", engine, "--workers", "2", "--backend", "torch"],
                              env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        if monitor:
            monitor.stop()
        if done.returncode:
            raise SystemExit(f"{engine} failed: {done.stderr[-800:]}")
        out[engine] = {"seconds": seconds, "photos_per_s": count / seconds,
                       "worker_peak_mb": monitor.peaks() if monitor else None}
        shutil.rmtree(target, ignore_errors=True)
        print(engine, out[engine])
    return {"photos": count, **out}


class WorkerMemory:
    """Samples the resident memory of the Ray model workers (processes named after PredictAndWrite)."""

    def __init__(self) -> None:
        import threading

        self.peak: dict[int, float] = {}
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while self.running:
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    if b"PredictAndWrite" not in (proc / "cmdline").read_bytes():
                        continue
                    rss = next(int(ln.split()[1]) for ln in (proc / "status").read_text().splitlines()
                               if ln.startswith("VmRSS:")) / 1024
                except (OSError, StopIteration, ValueError):
                    continue
                self.peak[int(proc.name)] = max(self.peak.get(int(proc.name), 0.0), rss)
            time.sleep(0.5)

    def stop(self) -> None:
        self.running = False
        self.thread.join(timeout=5)

    def peaks(self) -> list[float]:
        return sorted(self.peak.values())


def render(r: dict, note: str) -> str:
    lines = [note, ""]
    if r.get("int8"):
        lines += ["INT8 against float and PyTorch eager (network alone at 512x512; test mIoU at input size, 19 "
                  "classes):", "", "| encoder | graph | ms | vs eager | test mIoU |", "|---|---|---|---|---|"]
        for row in r["int8"]:
            lines.append(f"| {row['encoder']} | eager | {row['eager_ms']:.0f} | 1.00x | {row['eager_miou']:.3f} |")
            for name, v in row["variants"].items():
                lines.append(f"| {row['encoder']} | {name} | {v['ms']:.0f} | {v['vs_eager']:.2f}x | {v['miou']:.3f} |")
            lines.append(f"| {row['encoder']} | export --int8 chose | {row['chosen'] or 'none (float only)'} | | |")
        lines.append("")
    if r.get("speed_only"):
        lines += ["Speed only, untrained U-Nets (no ImageNet weights for these encoders offline, so no model trained "
                  "to a real score; INT8 kernels run as fast on untrained weights), network alone at 512x512:", "",
                  "| encoder | graph | ms | vs eager |", "|---|---|---|---|"]
        for row in r["speed_only"]:
            lines.append(f"| {row['encoder']} | eager | {row['eager_ms']:.0f} | 1.00x |")
            for name, v in row["variants"].items():
                lines.append(f"| {row['encoder']} | {name} | {v['ms']:.0f} | {v['vs_eager']:.2f}x |")
        lines.append("")
    if r.get("instance"):
        m = r["instance"]
        lines += [f"Mask R-CNN: network alone eager {m['eager_ms']:.0f} ms, ONNX {m['onnx_ms']:.0f} ms "
                  f"({m['eager_ms'] / m['onnx_ms']:.2f}x); predictor end to end on {m['photos']} test photos "
                  f"{1000 * m['predict_eager_s']:.0f} ms against {1000 * m['predict_onnx_s']:.0f} ms "
                  f"({m['predict_eager_s'] / m['predict_onnx_s']:.2f}x). Export {m['export_s']:.0f} s, parity: "
                  f"{m['parity']}; on test photos: {m['photo_parity']}.", ""]
    if r.get("ray"):
        y = r["ray"]
        lines += [f"Ray on this machine, {y['photos']} generated photos (320x240), all outputs written:", "",
                  "| engine | seconds | photos/s | peak memory per model worker |", "|---|---|---|---|",
                  f"| local | {y['local']['seconds']:.0f} | {y['local']['photos_per_s']:.1f} | |",
                  f"| ray, 2 workers | {y['ray']['seconds']:.0f} | {y['ray']['photos_per_s']:.1f} | "
                  + ", ".join(f"{v:.0f} MB" for v in y["ray"]["worker_peak_mb"] or []) + " |"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--semantic", type=Path, nargs="*", default=[], help="trained models, one per encoder")
    parser.add_argument("--instance", type=Path, default=None, help="a trained Mask R-CNN model")
    parser.add_argument("--speed-encoders", default="", help="comma-separated encoders timed untrained (speed "
                                                             "only), with the first --semantic model's classes")
    parser.add_argument("--ray-model", type=Path, default=None, help="model for the Ray row (default: the first "
                                                                      "--semantic)")
    parser.add_argument("--ray-photos", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calibration", type=int, default=128)
    parser.add_argument("--test-images", type=int, default=None)
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.short:
        args.ray_photos, args.repeats, args.calibration, args.test_images = 40, 2, 8, 4
    data = car_parts_or_exit()
    before = os.getloadavg()[0]
    print(f"machine: {machine()}\ncpu flags: {cpu_flags()}\nload average (1 min) before: {before:.2f}")
    if before > LOAD_LIMIT and not args.force:
        raise SystemExit(f"load average {before:.2f} is above {LOAD_LIMIT}: run on a quiet machine (or --force)")
    started = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    results: dict = {}
    if args.semantic:
        results["int8"] = int8_rows(args.semantic, data, work, args.repeats, args.test_images, args.calibration)
    if args.speed_encoders and args.semantic:
        results["speed_only"] = speed_only_rows(args.speed_encoders.split(","), args.semantic[0], data,
                                                args.repeats, args.calibration)
    if args.instance:
        results["instance"] = instance_row(args.instance, data, work, args.repeats, args.test_images)
    ray_model = args.ray_model or (args.semantic[0] if args.semantic else None)
    if ray_model:
        results["ray"] = ray_row(ray_model, args.ray_photos, work)
    after = os.getloadavg()[0]
    note = (f"CPU flags: {cpu_flags()}. Load average (1 min) {before:.2f} before, {after:.2f} after; "
            f"{(time.perf_counter() - started) / 60:.0f} minutes."
            + ("" if before <= LOAD_LIMIT else " **Not a result: the machine was loaded (run with --force).**"))
    body = render(results, note)
    print(body)
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    if not args.no_write:
        write_section("deploy", "Deploy: INT8 per encoder, Mask R-CNN in ONNX, Ray (issue 26)", body)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
