"""PyTorch eager against ONNX Runtime float and ONNX Runtime INT8 for a semantic model, in one run (issue 17).

Protocol: the default semantic recipe (`masksmith train` defaults) trained briefly on car-parts' trainingset
(or an existing model with --model), exported with `masksmith export --to onnx --int8 --calibrate trainingset`
(32 calibration photos). Then, with the same thread count for both runtimes:
- latency of the network on 512x512 and 1024x1024 inputs (dynamic H/W of the export), the three backends'
  runs interleaved repeat by repeat so a load change from other processes hits them alike; median seconds,
  images/s and the ratio to eager;
- peak memory: peak RSS of a fresh process that loads the model and runs the network at that size, less the
  RSS of the same process before loading (interpreter, torch and onnxruntime imported);
- the model's FLOPs per image (torch's FlopCounterMode: 2 per multiply-add) divided by the time, against a
  float32 matrix multiply (torch.mm 2048x2048) measured in the same run, interleaved too;
- test mIoU on car-parts' testset for each backend through the same Predictor (input size, 19 classes with
  background), and the share of mask pixels each ONNX backend predicts equal to eager.
Targets: ONNX float >= 1.6x eager with >= 99.9 % equal mask pixels; INT8 >= 2.5x eager, test mIoU within 1
point of float.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import car_parts_or_exit, write_section  # noqa: E402

BACKENDS = ("eager", "ort-float", "ort-int8")


def cpu_flags() -> str:
    wanted = ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
              "amx_int8", "amx_bf16"]
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    return f"{model}; " + ", ".join(f"{f} {'yes' if f in have else 'no'}" for f in wanted)


def networks(model: Path, float_onnx: Path, int8_onnx: Path):
    from masksmith.infer.export import OnnxNetwork
    from masksmith.models.artifact import build_network, load_artifact

    eager = build_network(load_artifact(model)).eval()

    def run_eager(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return eager(x.contiguous(memory_format=torch.channels_last))

    return {"eager": run_eager, "ort-float": OnnxNetwork(float_onnx), "ort-int8": OnnxNetwork(int8_onnx)}, eager


def rss_peak_mb() -> float:
    """This process's peak resident memory (VmHWM: per address space, so unlike ru_maxrss it does not carry
    the parent's peak across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_memory(backend: str, size: int, model: Path, float_onnx: Path, int8_onnx: Path) -> None:
    """Child process: RSS before and peak after loading one backend and running it at `size`."""
    import onnxruntime  # noqa: F401 - imported before the baseline, like torch

    from masksmith.infer.export import OnnxNetwork
    from masksmith.models.artifact import build_network, load_artifact

    before = rss_peak_mb()
    x = torch.rand(1, 3, size, size) * 255
    if backend == "eager":
        net = build_network(load_artifact(model)).eval()
        with torch.no_grad():
            for _ in range(2):
                net(x.contiguous(memory_format=torch.channels_last))
    else:
        net = OnnxNetwork(float_onnx if backend == "ort-float" else int8_onnx)
        for _ in range(2):
            net(x)
    print(json.dumps({"before_mb": before, "peak_mb": rss_peak_mb()}))


def peaks(threads: int, size: int, model: Path, float_onnx: Path, int8_onnx: Path) -> dict:
    out = {}
    for b in BACKENDS:
        child = subprocess.run([sys.executable, __file__, "--threads", str(threads), "--measure-memory", b,
                                str(size), str(model), str(float_onnx), str(int8_onnx)],
                               capture_output=True, text=True, check=True)
        out[b] = json.loads(child.stdout.strip().splitlines()[-1])
    return out


def matmul_gflops(n: int = 2048) -> float:
    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.mm(a, b)
    t = time.perf_counter()
    torch.mm(a, b)
    return 2 * n**3 / (time.perf_counter() - t) / 1e9


def flops_per_image(net: torch.nn.Module, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(torch.rand(1, 3, size, size) * 255)
    return float(counter.get_total_flops())


def train_model(data: Path, budget: float, runs: Path) -> Path:
    from masksmith.train.config import TrainConfig
    from masksmith.train.semantic import train_semantic

    config = TrainConfig(data=str(data / "trainingset"), time_budget=budget, epochs=None, runs_dir=str(runs),
                         name="bench-onnx", preview_images=2)
    return train_semantic(config) / "model.masksmith"


def test_scores(model: Path, float_onnx: Path, int8_onnx: Path, data: Path, limit: int | None) -> dict:
    """Test mIoU per backend (same Predictor, same test photos) and the share of mask pixels equal to eager."""
    from masksmith import service
    from masksmith.core.images import read_image
    from masksmith.data import load_dataset
    from masksmith.infer import open_predictor

    dataset = load_dataset(data / "testset")
    if limit:
        dataset.samples = dataset.samples[:limit]
    predictors = {"eager": open_predictor(model), "ort-float": open_predictor(float_onnx),
                  "ort-int8": open_predictor(int8_onnx)}
    out = {b: {"miou": service.evaluate(p, dataset, save=False).scores["input"].miou(True)}
           for b, p in predictors.items()}
    equal = {b: 0 for b in BACKENDS}
    total = 0
    for sample in dataset.samples:
        image = read_image(sample.image_path)
        masks = {b: p.predict_proba(image, own_size=False).argmax(0) for b, p in predictors.items()}
        total += masks["eager"].size
        for b in BACKENDS:
            equal[b] += int((masks[b] == masks["eager"]).sum())
    for b in BACKENDS:
        out[b]["equal_to_eager"] = equal[b] / total
    out["images"] = len(dataset.samples)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a trained .masksmith (default: train one)")
    parser.add_argument("--budget", type=float, default=300, help="training seconds when no --model is given")
    parser.add_argument("--sizes", default="512,1024")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per backend and size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--test-images", type=int, default=None, help="limit the test photos (default: all)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the run and exports (default: temp)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--memory-only", type=Path, default=None,
                        help="measure peak memory again for a results.json of an earlier run, and update it")
    parser.add_argument("--render", type=Path, default=None,
                        help="write docs/benchmarks.md from a results.json of an earlier run (no measuring)")
    parser.add_argument("--measure-memory", nargs=5, metavar=("BACKEND", "SIZE", "MODEL", "FLOAT", "INT8"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.measure_memory:
        b, s, m, f, i = args.measure_memory
        measure_memory(b, int(s), Path(m), Path(f), Path(i))
        return
    if args.memory_only:
        results = json.loads(args.memory_only.read_text())
        work = args.memory_only.parent
        for size, r in results["sizes"].items():
            peak = peaks(args.threads, int(size), Path(results["model"]), work / "model.onnx", work / "model.int8.onnx")
            for b in BACKENDS:
                r[b]["peak_mb"] = peak[b]["peak_mb"] - peak[b]["before_mb"]
                r[b]["process_peak_mb"] = peak[b]["peak_mb"]
            print(size, {b: round(r[b]["peak_mb"]) for b in BACKENDS})
        args.memory_only.write_text(json.dumps(results, indent=1))
        return
    if args.render:
        results = json.loads(args.render.read_text())
        results["sizes"] = {int(k): v for k, v in results["sizes"].items()}
        body = render(results, argparse.Namespace(**results["args"]), Path(results["model"]))
        print(body)
        if not args.no_write:
            write_section("onnx", "ONNX Runtime float and INT8 against PyTorch eager (issue 17)", body)
        return
    data = car_parts_or_exit()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_flags()}")
    print(f"threads: torch {torch.get_num_threads()}, onnxruntime intra-op {args.threads}")
    model = args.model or train_model(data, args.budget, work / "runs")
    print(f"model: {model}")

    from masksmith.core.images import read_image
    from masksmith.infer.export import (
        INT8_EQUAL_SHARE,
        OnnxNetwork,
        calibration_photos,
        export_onnx,
        parity,
        predictor_inputs,
        quantize_int8,
        spread,
    )
    from masksmith.models.artifact import load_artifact

    t = time.perf_counter()
    report = export_onnx(model, work / "model.onnx", overwrite=True)
    print(f"export ({time.perf_counter() - t:.0f} s): float vs PyTorch {report.parity.describe()}")
    if not report.ok:
        raise SystemExit("float export parity failed; see above")
    # INT8 as `masksmith export --int8 --calibrate trainingset` makes it (the same functions), written here
    # even when its parity is below the command's threshold, so the benchmark can say how far off it is
    artifact = load_artifact(model)
    photos = [read_image(p) for p in spread(calibration_photos(data / "trainingset"), 40)]
    t = time.perf_counter()
    int8_bytes = quantize_int8(report.path.read_bytes(), predictor_inputs(artifact, photos[:32], 32))
    quant_seconds = time.perf_counter() - t
    int8_onnx = work / "model.int8.onnx"
    int8_onnx.write_bytes(int8_bytes)
    int8_parity = parity(OnnxNetwork(report.path), OnnxNetwork(int8_onnx), predictor_inputs(artifact, photos[32:], 8))
    print(f"INT8 ({quant_seconds:.0f} s, 32 calibration photos): vs float on 8 held-out training photos "
          f"{int8_parity.describe()} (export threshold {100 * INT8_EQUAL_SHARE:.0f} %)")
    float_onnx = report.path
    nets, eager_module = networks(model, float_onnx, int8_onnx)

    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict = {"sizes": {}}
    for size in sizes:
        x = torch.rand(1, 3, size, size) * 255
        for fn in nets.values():  # warm-up (ORT plans memory for the new shape)
            fn(x)
        times = {b: [] for b in BACKENDS}
        mm = []
        for _ in range(args.repeats):
            for b in BACKENDS:
                t = time.perf_counter()
                nets[b](x)
                times[b].append(time.perf_counter() - t)
            mm.append(matmul_gflops())
        flops = flops_per_image(eager_module, size)
        peak = peaks(args.threads, size, model, float_onnx, int8_onnx)
        med = {b: statistics.median(v) for b, v in times.items()}
        gf = statistics.median(mm)
        results["sizes"][size] = {
            "matmul_gflops": gf, "gflops_per_image": flops / 1e9,
            **{b: {"median_s": med[b], "images_per_s": 1 / med[b], "vs_eager": med["eager"] / med[b],
                   "achieved_gflops": flops / med[b] / 1e9, "share_of_matmul": flops / med[b] / 1e9 / gf,
                   "peak_mb": peak[b]["peak_mb"] - peak[b]["before_mb"], "process_peak_mb": peak[b]["peak_mb"]}
               for b in BACKENDS}}
        print(json.dumps({size: results["sizes"][size]}, indent=1))

    scores = test_scores(model, float_onnx, int8_onnx, data, args.test_images)
    results["scores"] = scores
    results.update({"float_parity": report.parity.describe(), "int8_parity": int8_parity.describe(),
                    "int8_parity_ok": int8_parity.ok(INT8_EQUAL_SHARE), "calibrated_on": 32,
                    "args": {"threads": args.threads, "repeats": args.repeats}, "model": str(model)})
    print(json.dumps(scores, indent=1))
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    body = render(results, args, model)
    print(body)
    if not args.no_write:
        write_section("onnx", "ONNX Runtime float and INT8 against PyTorch eager (issue 17)", body)


def render(results: dict, args, model: Path) -> str:
    s = results["scores"]
    lines = [f"CPU: {cpu_flags()}. Threads: {args.threads} for torch and for onnxruntime (intra-op). "
             f"Model: the default semantic recipe (U-Net on tf_efficientnet_lite0, side head, 256x256 training), "
             f"`{model.name}`; {args.repeats} interleaved repeats per size.", "",
             "| input | backend | median latency | images/s | vs eager | peak memory (added) | GFLOP/s "
             "(share of fp32 matmul) |", "|---|---|---|---|---|---|---|"]
    for size, r in results["sizes"].items():
        for b in BACKENDS:
            v = r[b]
            lines.append(f"| {size}x{size} | {b} | {1000 * v['median_s']:.0f} ms | {v['images_per_s']:.2f} | "
                         f"{v['vs_eager']:.2f}x | {v['peak_mb']:.0f} MB | {v['achieved_gflops']:.0f} "
                         f"({100 * v['share_of_matmul']:.0f} %) |")
    lines += ["", "| input | model GFLOP per image | fp32 matmul GFLOP/s (same run) |", "|---|---|---|"]
    for size, r in results["sizes"].items():
        lines.append(f"| {size}x{size} | {r['gflops_per_image']:.1f} | {r['matmul_gflops']:.0f} |")
    lines += ["", f"Test set ({s['images']} photos, mIoU at the network's input size, 19 classes):", "",
              "| backend | test mIoU | mask pixels equal to eager |", "|---|---|---|"]
    for b in BACKENDS:
        lines.append(f"| {b} | {s[b]['miou']:.4f} | {100 * s[b]['equal_to_eager']:.3f} % |")
    lines += ["", f"Export parity (sample inputs): float vs PyTorch {results['float_parity']}; INT8 vs float on "
              f"held-out training photos ({results['calibrated_on']} calibration photos): {results['int8_parity']}"
              + ("." if results["int8_parity_ok"] else " (below the 95 % that `masksmith export --int8` requires; "
                 "it would refuse to write this file)."),
              "", "Targets:"]
    big = max(results["sizes"])
    fl, i8 = results["sizes"][big]["ort-float"], results["sizes"][big]["ort-int8"]
    float_ok = fl["vs_eager"] >= 1.6 and s["ort-float"]["equal_to_eager"] >= 0.999
    int8_ok = i8["vs_eager"] >= 2.5 and abs(s["ort-int8"]["miou"] - s["ort-float"]["miou"]) <= 0.01
    ratios = {b: ", ".join(f"{z}: {r[b]['vs_eager']:.2f}x" for z, r in results["sizes"].items())
              for b in BACKENDS}
    lines.append(f"- ONNX float >= 1.6x eager with >= 99.9 % equal mask pixels: {'met' if float_ok else 'missed'} "
                 f"({ratios['ort-float']}; "
                 f"{100 * s['ort-float']['equal_to_eager']:.3f} % equal).")
    lines.append(f"- INT8 >= 2.5x eager, test mIoU within 1 point of float: {'met' if int8_ok else 'missed'} "
                 f"({ratios['ort-int8']}; "
                 f"mIoU {s['ort-int8']['miou']:.4f} against {s['ort-float']['miou']:.4f}, "
                 f"{100 * abs(s['ort-int8']['miou'] - s['ort-float']['miou']):.2f} points; INT8 against ONNX float: "
                 + ", ".join(f"{z}: {r['ort-float']['median_s'] / r['ort-int8']['median_s']:.2f}x"
                             for z, r in results["sizes"].items()) + ").")
    lines += ["", NOTES.strip()]
    return "\n".join(lines)


# What was tried beyond the run above, measured by hand on the same model file and 512x512 inputs (2026-12-02),
# and what the figures mean; kept with the script so a re-run keeps them next to the table.
NOTES = """
Notes
- Other helpers' jobs loaded this 2-core machine throughout (load average 13-18), so absolute latencies are
  several times an idle machine's; only the ratios, from runs interleaved repeat by repeat, are meant to be
  compared. The fp32 matmul rate measured beside them shows how much of the machine the run got.
- The model trained for about 14 minutes (two resumed short runs) on that loaded machine and is weak (validation
  mIoU about 0.07): its logits are less decisive than a well-trained model's, so INT8 flips more pixels than it
  would on a good model. The mIoU column compares backends of one model, which is what the target asks.
- ONNX Runtime float runs the graph with all optimisations (Conv+BN+activation fusion, NCHWc layouts), on the
  same 2 threads as torch; parity stays at 1e-5 in the logits.
- INT8 (static, QDQ, per-channel int8 weights, int8 activations, MinMax over 32 training photos) was also tried
  as Conv-only quantisation (92.5 % of mask pixels equal to float on 8 held-out photos, 1.00x float's speed)
  and Conv-only with the segmentation head's last Conv kept float (92.6 %, 1.02x); the default export setting
  (all supported ops) gave 94.2 %. Why INT8 is not faster here: in ORT's optimised graph only 38 of the 59
  convolutions become QLinearConv (16 of them depthwise, where int8 kernels gain little over fp32: Lite0 is
  mostly depthwise layers); 21 dense ones stay float behind DequantizeLinear, and the graph carries 84
  QuantizeLinear, 147 DequantizeLinear and 45 Transposes (QLinearConv runs in NHWC) that float does not pay.
  The processor has AVX-512 VNNI but no AMX, so int8 matrix work is at best about 2-4x fp32 on the dense
  layers alone. Not tried for lack of time: excluding the TF-style SAME padding (Pad computed per input size)
  from the encoder so more Conv patterns fuse, QOperator format, and quantisation-aware training.
"""


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
