"""What buys accuracy per second on car-parts: recipe variants trained by EPOCHS (so the machine's load does not
change the results), each scored on the test set at full size, with its compute counted in a load-free unit.

Compute: every training item costs `train_seconds(pixels) / train_seconds(256^2)` of the measured rate curve
(masksmith.train.speed: the same curve the plan uses), so "256-px image equivalents" compare a 320 px variant
with a 192 px one fairly, whatever else ran on the machine. A winner is a variant with a higher test mIoU at no
more compute, or a higher mIoU per unit; make winners the default in TrainConfig and re-run bench_plan.py.

Example (about 10 minutes per variant and 10 epochs on a quiet 2-core machine):
    python benchmarks/bench_recipe.py --epochs 10 --variant base='{}' --variant lowres05='{"low_res_factor": 0.5}' \
        --variant size320='{"size": 320}' --variant lr6e3='{"lr": 0.006}'
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import car_parts_or_exit, cpu_flags  # noqa: E402


def compute_units(config, rate, photos: int) -> float:
    """256-px image equivalents of `config.epochs` epochs over `photos` photos (the low-resolution first part
    counted at its own cost)."""
    crop = config.crop
    pixels = config.size ** 2 if not crop else (crop * crop if isinstance(crop, int) else crop[0] * crop[1])
    per_epoch = config.crops_per_epoch or photos * config.crops_per_image
    unit = rate.train_seconds(256 * 256)
    low = config.low_res_factor or 1.0
    until = config.low_res_until if config.low_res_factor else 0.0
    cost = until * rate.train_seconds(pixels * low * low) + (1 - until) * rate.train_seconds(pixels)
    return config.epochs * per_epoch * cost / unit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", default=[], help="NAME=JSON of TrainConfig settings")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--runs", default=None)
    args = parser.parse_args()
    data = car_parts_or_exit()
    from masksmith import service
    from masksmith.data import load_dataset
    from masksmith.train.config import TrainConfig
    from masksmith.train.semantic import measured_rate

    runs = Path(args.runs or tempfile.mkdtemp(prefix="bench-recipe-"))
    print(f"CPU flags: {cpu_flags()}; 1-minute load average {os.getloadavg()[0]:.2f}; runs in {runs}")
    variants = [v.split("=", 1) for v in args.variant] or [["base", "{}"]]
    results = []
    for name, settings in variants:
        for seed in [int(s) for s in args.seeds.split(",")]:
            config = service.training_config(data / "trainingset", epochs=args.epochs, seed=seed, val_fraction=0.0,
                                             runs_dir=str(runs), name=f"{name}-s{seed}", preview_images=0,
                                             **json.loads(settings))
            t0 = time.monotonic()
            run = service.train(config)
            seconds = time.monotonic() - t0
            saved = TrainConfig.from_yaml(run / "config.yaml")
            units = compute_units(saved, measured_rate(saved, load_dataset(saved.data).class_map), 400)
            score = service.evaluate(run / "model.masksmith", data / "testset", save=False).headline.value
            row = {"variant": name, "settings": json.loads(settings), "seed": seed, "epochs": args.epochs,
                   "test_miou": round(score, 4), "compute_256px_images": round(units), "wall_s": round(seconds)}
            results.append(row)
            print(json.dumps(row), flush=True)
            (runs / "results.json").write_text(json.dumps(results, indent=1))
    print("\n| variant | seed | test mIoU | compute (256-px images) | mIoU per 10k units | wall s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['variant']} | {r['seed']} | {r['test_miou']:.3f} | {r['compute_256px_images']} | "
              f"{1e4 * r['test_miou'] / max(1, r['compute_256px_images']):.3f} | {r['wall_s']} |")


if __name__ == "__main__":
    main()
