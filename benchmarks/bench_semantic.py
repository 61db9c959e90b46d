"""Semantic segmentation on car-parts: our default recipe against the standard one, in one run.

Protocol (issue 3): train on trainingset (400 photos), test on testset (100 photos), 256x256 inputs, the same
wall-clock training budget for every run on this 2-core machine; test mIoU over 19 classes with background
included, truth masks resized to 256x256 by nearest neighbour (also reported at each image's full size).

Recipes
- reference: smp U-Net, timm tf_efficientnet_lite0 encoder from the offline ImageNet weights, smp's default
  decoder, CE+Dice, AdamW lr 1e-3 with cosine over the budget, batch 8, channels_last, fp32, left/right-aware
  flips and nothing else (the recipe the issue measured at 0.59 +- 0.03).
- ours: `masksmith train` defaults (TrainConfig), nothing tuned per run.
- ours-no-side: ours with one output per left/right class instead of a part plus a shared side map (ablation).
- baseline / unet-short: the three-layer CNN against U-Net with the same short budget (the Carvana lesson).

Also measured in the same run: the bare model's forward+backward+step throughput (random tensors, same
precision and memory format), to show the data pipeline and the loop are not the bottleneck.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import car_parts_or_exit, write_section  # noqa: E402
from masksmith import service  # noqa: E402
from masksmith.models.artifact import load_artifact  # noqa: E402
from masksmith.models.encoders import freeze_modules  # noqa: E402
from masksmith.models.semantic import ModelConfig, SegmentationNet, build_model  # noqa: E402
from masksmith.train.config import TrainConfig  # noqa: E402
from masksmith.train.losses import SegmentationLoss  # noqa: E402
from masksmith.train.semantic import frozen_encoder_part, resolve_precision, train_semantic  # noqa: E402

# Every field that masksmith's defaults change is pinned here, so the reference stays the reference.
REFERENCE = dict(decoder_channels=None, loss="ce+dice", lr=1e-3, encoder_lr_factor=1.0, warmup_fraction=0.0,
                 weight_decay=1e-2, batch_size=8, precision="32-true", channels_last=True, flip=True,
                 flip_pairs="auto", scale=[1.0, 1.0], color_jitter=0.0, low_res_factor=None, shrink=None,
                 freeze_encoder_levels=0, side_head=False,
                 arch="unet", encoder="tf_efficientnet_lite0", encoder_weights="imagenet-offline", size=256)

ISSUE_BUDGET = 720  # seconds: the issue's 12 minutes; a section for another budget says so in its title


def recipe_config(recipe: str, data: Path, budget: float, seed: int, runs: Path) -> TrainConfig:
    base = TrainConfig(data=str(data / "trainingset"), val_fraction=0.0, epochs=None, time_budget=budget,
                       seed=seed, runs_dir=str(runs), name=f"{recipe}-s{seed}", preview_images=4)
    if recipe == "reference":
        return replace(base, **REFERENCE)
    if recipe == "ours":
        return base
    if recipe == "ours-no-side":  # ablation: one output per left/right class instead of part + side map
        return replace(base, side_head=False)
    if recipe == "baseline":
        return replace(base, arch="baseline", encoder_weights=None)
    if recipe == "unet-short":
        return base
    raise SystemExit(f"unknown recipe {recipe}")


def train_and_test(config: TrainConfig, data: Path) -> dict:
    t0 = time.monotonic()
    run = train_semantic(config)
    wall = time.monotonic() - t0
    result = summarise_run(run, config)
    report = service.evaluate(run / "model.masksmith", data / "testset", save=False)
    with_tta = service.evaluate(run / "model.masksmith", data / "testset", tta=True, save=False)
    result.update({
        "wall_seconds": round(wall, 1), "miou_256": report.scores["input"].miou(True),
        "miou_full": report.scores["full"].miou(True),
        "miou_256_tta": with_tta.scores["input"].miou(True), "seed": config.seed,
        "per_class_iou_256": {row.name: None if v != v else round(float(v), 4)
                              for row, v in zip(report.per_class, report.scores["input"].iou, strict=True)},
    })
    return result


def summarise_run(run: Path, config: TrainConfig, images: int = 400) -> dict:
    """Epochs and throughput from metrics.csv. Throughput counts only whole epochs at the full input size
    (after progressive resizing's low-resolution phase, before the budget cuts the last one), so it compares
    like with like against the bare model at that size."""
    with (run / "metrics.csv").open() as f:
        ends = [float(r["seconds"]) for r in csv.DictReader(f)]
    starts = [0.0, *ends[:-1]]
    switch = config.low_res_until * (config.time_budget or 0) if config.low_res_factor else 0.0
    full = [e - s for s, e in zip(starts[:-1], ends[:-1], strict=True) if s >= switch] or \
        [e - s for s, e in zip(starts, ends, strict=True)]
    per_epoch = statistics.median(full)
    return {"run": str(run), "epochs": len(ends), "seconds_per_epoch": round(per_epoch, 1),
            "train_images_per_second": round(images / per_epoch, 2)}


def bare_throughput(config: TrainConfig, run: Path, steps: int = 12) -> float:
    """Images/s of forward + backward + optimiser step alone, on random tensors, as training runs them (the
    architecture the run's model file describes)."""
    model_config = replace(ModelConfig.from_dict(load_artifact(run / "model.masksmith").model), encoder_weights=None)
    net = SegmentationNet(build_model(model_config, pretrained=False), (0.5,) * 3, (0.5,) * 3)
    freeze_modules(frozen_encoder_part(net, config))
    if config.channels_last:
        net = net.to(memory_format=torch.channels_last)
    loss_fn = SegmentationLoss("ce+dice", 19)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], 1e-3)
    x = torch.rand(config.batch_size, 3, config.size, config.size) * 255
    if config.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 19, (config.batch_size, config.size, config.size))
    bf16 = resolve_precision(config) == "bf16-mixed"

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        loss = loss_fn(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * config.batch_size / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=ISSUE_BUDGET, help="training seconds per run (12 min)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--recipes", default="reference,ours")
    parser.add_argument("--short-budget", type=float, default=180, help="seconds for baseline vs U-Net")
    parser.add_argument("--compare-baseline", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--runs", default=None, help="where run folders go (default: a temporary folder)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--render", type=Path, help="re-summarise a finished run's results.json and stop")
    parser.add_argument("--section", default="semantic",
                        help="section of docs/benchmarks.md to write (another name keeps the standard one)")
    args = parser.parse_args()
    if args.render:
        rerender(args)
        return
    data = car_parts_or_exit()
    runs = Path(args.runs or tempfile.mkdtemp(prefix="bench-semantic-"))
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, list[dict]] = {}
    for recipe in args.recipes.split(","):
        for seed in seeds if recipe.startswith("ours") else seeds[:1]:
            config = recipe_config(recipe, data, args.budget, seed, runs)
            result = train_and_test(config, data)
            result["bare_images_per_second"] = round(bare_throughput(config, Path(result["run"])), 2)
            results.setdefault(recipe, []).append(result)
            print(json.dumps({recipe: result}), flush=True)
    if args.compare_baseline:
        for recipe in ("baseline", "unet-short"):
            result = train_and_test(recipe_config(recipe, data, args.short_budget, seeds[0], runs), data)
            results.setdefault(recipe, []).append(result)
            print(json.dumps({recipe: result}), flush=True)
    text = render(results, args)
    print(text)
    if not args.no_write:
        write_section(args.section, section_title(data, args), text)
    (runs / "results.json").write_text(json.dumps(results, indent=1))


def rerender(args) -> None:
    """Recompute throughput from the run folders of an earlier benchmark run and write the table again."""
    results = json.loads(args.render.read_text())
    data = car_parts_or_exit()
    for rows in results.values():
        for r in rows:
            config = TrainConfig.from_yaml(Path(r["run"]) / "config.yaml")
            r.update(summarise_run(Path(r["run"]), config))
    first_run = Path(next(iter(results.values()))[0]["run"])
    args.budget = TrainConfig.from_yaml(first_run / "config.yaml").time_budget  # the runs' own, not the default
    text = render(results, args)
    print(text)
    if not args.no_write:
        write_section(args.section, section_title(data, args), text)


def section_title(data: Path, args) -> str:
    budget = "" if args.budget == ISSUE_BUDGET else f", {args.budget / 60:.0f}-minute budget"
    return f"Semantic segmentation on {data.name} (issue 3 protocol{budget})"


def render(results: dict[str, list[dict]], args) -> str:
    lines = ["Train on trainingset (400), test on testset (100). s/epoch and train img/s: whole epochs at the full "
             "256 px input (our recipe's first half runs at 192 px); bare img/s: forward+backward+step alone on "
             "random tensors at 256 px, same precision, measured right after each run.", "",
             f"Training budget {args.budget:.0f} s wall-clock per run"
             + (f" (baseline comparison: {args.short_budget:.0f} s)" if "baseline" in results else "")
             + "; test mIoU over 19 classes, background included.", "",
             "| recipe | seed | test mIoU 256x256 | test mIoU full size | with --tta (256) | epochs | s/epoch "
             "| train img/s | bare img/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for recipe, rows in results.items():
        for k, r in enumerate(rows):
            bare = r.get("bare_images_per_second")
            tta = f"{r['miou_256_tta']:.3f}" if "miou_256_tta" in r else "-"
            lines.append(f"| {recipe} | {r.get('seed', k)} | {r['miou_256']:.3f} | {r['miou_full']:.3f} | {tta} | "
                         f"{r['epochs']} | {r['seconds_per_epoch']} | {r['train_images_per_second']} | {bare or '-'} |")
    lines.append("")
    for recipe, rows in results.items():
        if len(rows) > 1:
            m = [r["miou_256"] for r in rows]
            lines.append(f"- **{recipe}**: mean test mIoU {statistics.mean(m):.3f} +- {statistics.stdev(m):.3f} "
                         f"over {len(m)} seeds ({', '.join(f'{v:.3f}' for v in m)}).")
            tta = [r["miou_256_tta"] for r in rows if "miou_256_tta" in r]
            if len(tta) == len(rows):
                lines.append(f"- **{recipe}** predicted with `--tta` (mirrored prediction averaged in): mean "
                             f"{statistics.mean(tta):.3f} ({', '.join(f'{v:.3f}' for v in tta)}).")
    for recipe, rows in results.items():
        ratios = [r["train_images_per_second"] / r["bare_images_per_second"] for r in rows
                  if r.get("bare_images_per_second")]
        if ratios:
            lines.append(f"- **{recipe}** training throughput / bare model throughput: "
                         f"{statistics.mean(ratios):.2f} (target: at least 0.85).")
    lines += ["", "Per-class test IoU (256x256), first seed of each recipe:", "",
              "| class | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    classes = list(next(iter(results.values()))[0]["per_class_iou_256"])
    for c in classes:
        cells = [results[r][0]["per_class_iou_256"].get(c) for r in results]
        lines.append(f"| {c} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
