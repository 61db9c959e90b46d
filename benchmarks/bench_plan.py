"""The training plan and the time budget (issues 18 and 23), side by side in one run, as a person runs them.

Every training is the command a person types, `masksmith train DATA --time T` (a subprocess, timed from
outside: the budget is the whole wait, the final evaluation on the validation photos and the report included);
its model is then scored on a separate test set at each photo's full size (not part of the wait).

1. The budget sweep: at each budget (default 3, 6 and 12 minutes), on each data set,
   - planned: `masksmith train DATA --time T` (the plan: scale, crops, low-resolution phase, epochs by budget);
   - default: `masksmith train DATA --time T --no-plan` (the plain 256x256 whole-photo resize, batch 8).
   The plan must never be worse by more than 0.01 mIoU, and should win where geometry matters.
2. The wall time of each row against its budget (goal: within T + 5 %).
3. car-parts at the matched budget (1640 s, docs/benchmarks.md "27-minute budget": the reference recipe reaches
   0.603 there) and at half of it, the planned default over three seeds: goal a mean of 0.70 mIoU over 19
   classes (background included) at 1640 s, and 0.60 at 820 s.

Data sets: car-parts (trainingset 400 photos 512x512, testset 100; MASKSMITH_CAR_PARTS), and the generated thin
(`masksmith dataset sample --kind thin`: 1-2 px wires on ~600x400 photos; test on another seed) and large
(`--kind large`: 18-45 px shapes on ~2000x1500 photos) sets.

The machine must be quiet: the script refuses to start when the 1-minute load average is above 1.5 (`--force`
runs anyway and marks the output "not a result"), prints the CPU flags and the load before and after, and with
`--dry-run` prints every command and the expected duration without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import CAR_PARTS, cpu_flags, write_section  # noqa: E402

SETS = {"thin": dict(train=48, test=12, thinnest="wire"), "large": dict(train=20, test=6, thinnest="triangle")}
MATCHED = 1640.0  # seconds: the compute the issue-3 machine's 12 minutes bought (docs/benchmarks.md)
QUIET = 1.5  # the 1-minute load average above which figures are not a result
GOALS = {MATCHED: 0.70, MATCHED / 2: 0.60}


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def data_sets(names: list[str], root: Path, make: bool) -> dict[str, tuple[Path, Path, str | None]]:
    out = {}
    for name in names:
        if name == "car-parts":
            if not (CAR_PARTS / "trainingset" / "annotations.json").exists():
                print(f"SKIPPED car-parts: not at {CAR_PARTS} (set MASKSMITH_CAR_PARTS)")
                continue
            out[name] = (CAR_PARTS / "trainingset", CAR_PARTS / "testset", None)
        else:
            spec = SETS[name]
            train, test = root / f"{name}-train", root / f"{name}-test"
            if make and not train.exists():
                from masksmith.data.synthetic import make_sample_dataset

                make_sample_dataset(train, n_images=spec["train"], seed=0, kind=name)
                make_sample_dataset(test, n_images=spec["test"], seed=1, kind=name)
            out[name] = (train, test, spec["thinnest"])
    return out


def train_command(side: str, train: Path, budget: float, seed: int, runs: Path, name: str) -> list[str]:
    cmd = [sys.executable, "-m", "masksmith.cli", "train", str(train), "--time", f"{budget:g}s", "--seed", str(seed),
           "--runs", str(runs), "--name", name]
    return cmd + (["--no-plan"] if side == "default" else [])


def run_row(side: str, set_name: str, train: Path, test: Path, thinnest: str | None, budget: float, seed: int,
            runs: Path, test_images: int | None = None) -> dict:
    from masksmith import service
    from masksmith.train.config import TrainConfig

    name = f"{set_name}-{side}-{budget:g}s-s{seed}"
    cmd = train_command(side, train, budget, seed, runs, name)
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    (runs / f"{name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}); see {runs / (name + '.log')}")
    run = runs / name
    data: object = test
    if test_images:  # checking the script only: score on a few test photos
        from dataclasses import replace

        from masksmith.data import load_dataset

        full = load_dataset(test)
        data = replace(full, samples=full.samples[:test_images])
    report = service.evaluate(run / "model.masksmith", data, save=False)
    iou = {r.name: r.values[0] for r in report.per_class} if report.per_class else {}
    saved = TrainConfig.from_yaml(run / "config.yaml")
    figures = ((saved.plan or {}).get("budget") or {}).get("value") or {}
    metrics = run / "metrics.csv"
    epochs = len(metrics.read_text().splitlines()) - 1 if metrics.exists() else 0
    row = {"set": set_name, "side": side, "budget": budget, "seed": seed, "run": str(run), "wall_s": round(wall, 1),
           "over": round(wall / budget - 1, 3), "miou": report.headline.value, "thinnest": thinnest,
           "thinnest_iou": iou.get(thinnest) if thinnest else None, "epochs": epochs,
           "passes": figures.get("passes"), "setup": describe(saved), "command": " ".join(cmd[1:])}
    print(f"  {wall:.0f} s for {budget:g} s ({100 * row['over']:+.1f} %), test mIoU {row['miou']:.3f}", flush=True)
    return row


def describe(c) -> str:
    low = f", first half at {c.low_res_factor:g}x" if c.low_res_factor else ""
    if c.shrink and c.crop:
        return f"crops {c.crop} at 1/{c.shrink:g} scale, batch {c.batch_size}{low}"
    return f"resize {c.size}x{c.size}, batch {c.batch_size}{low}"


def planned_rows(args, sets: dict) -> list[tuple]:
    rows = []
    for name, (train, test, thinnest) in sets.items():
        for budget in args.budgets:
            for side in ("default", "planned"):
                rows.append(("sweep", side, name, train, test, thinnest, budget, args.seed))
    if args.matched and "car-parts" in sets:
        train, test, _ = sets["car-parts"]
        for budget in (MATCHED, MATCHED / 2):
            for seed in args.seeds:
                rows.append(("matched", "planned", "car-parts", train, test, None, budget * args.scale_matched, seed))
    return rows


def render(results: list[dict], header: list[str]) -> str:
    lines = [*header, "", "### Budget sweep: planned default against the plain 256x256 default", "",
             "| data set | budget | side | what it trained on | passes (planned) | epochs | test mIoU | thinnest IoU "
             "| wall s | over budget |", "|---|---|---|---|---|---|---|---|---|---|"]
    sweep = [r for r in results if r.get("part", "sweep") == "sweep"]
    for r in sweep:
        thin = f"{r['thinnest']} {r['thinnest_iou']:.3f}" if r["thinnest"] and r["thinnest_iou"] is not None else "-"
        lines.append(f"| {r['set']} | {r['budget']:g} s | {r['side']} | {r['setup']} | {r['passes'] or '-'} | "
                     f"{r['epochs']} | {r['miou']:.3f} | {thin} | {r['wall_s']:.0f} | {100 * r['over']:+.1f} % |")
    by = {(r["set"], r["budget"], r["side"]): r for r in sweep}
    lines.append("")
    for (name, budget, side), p in by.items():
        d = by.get((name, budget, "default"))
        if side == "planned" and d:
            verdict = "ok" if p["miou"] >= d["miou"] - 0.01 else "WORSE by more than 0.01"
            lines.append(f"- {name}, {budget:g} s: planned - default = {p['miou'] - d['miou']:+.3f} ({verdict}).")
    walls = [r["over"] for r in results]
    if walls:
        lines.append(f"- Wall time against the budget: worst {100 * max(walls):+.1f} %, median "
                     f"{100 * statistics.median(walls):+.1f} % (goal: within +5 %).")
    matched = [r for r in results if r.get("part") == "matched"]
    if matched:
        lines += ["", "### car-parts, planned default, matched budget and half of it", "",
                  "| budget | seed | what it trained on | passes | epochs | test mIoU (19 classes) | wall s | over |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in matched:
            lines.append(f"| {r['budget']:g} s | {r['seed']} | {r['setup']} | {r['passes'] or '-'} | {r['epochs']} "
                         f"| {r['miou']:.3f} | {r['wall_s']:.0f} | {100 * r['over']:+.1f} % |")
        lines.append("")
        for budget in sorted({r["budget"] for r in matched}, reverse=True):
            scores = [r["miou"] for r in matched if r["budget"] == budget]
            goal = GOALS.get(budget)
            spread = f" +- {statistics.stdev(scores):.3f}" if len(scores) > 1 else ""
            mean = statistics.mean(scores)
            verdict = f" (goal >= {goal:.2f}: {'met' if mean >= goal else 'NOT met'})" if goal else ""
            lines.append(f"- {budget:g} s: mean test mIoU {mean:.3f}{spread} over {len(scores)} seed(s){verdict}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="180,360,720", help="sweep budgets in seconds (add 1440 if time allows)")
    parser.add_argument("--sets", default="thin,large,car-parts")
    parser.add_argument("--seed", type=int, default=0, help="the sweep's seed")
    parser.add_argument("--matched", action=argparse.BooleanOptionalAction, default=True,
                        help="car-parts at 1640 s and 820 s over --seeds")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--scale-matched", type=float, default=1.0,
                        help="multiply the matched budgets (for a quick check of the script only)")
    parser.add_argument("--test-images", type=int, default=None,
                        help="score on this many test photos only (for a quick check of the script only)")
    parser.add_argument("--runs", default=None, help="where data and run folders go (default: a temporary folder)")
    parser.add_argument("--force", action="store_true", help="run on a busy machine; the output says 'not a result'")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the commands and the expected duration; run nothing")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--render", type=Path, help="re-render a results.json and stop")
    args = parser.parse_args()
    args.budgets = [float(b) for b in args.budgets.split(",") if b]
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    before = load_average()
    print(f"CPU flags: {cpu_flags()}; {os.cpu_count()} cores; 1-minute load average {before:.2f}", flush=True)
    busy = before > QUIET or bool(args.test_images) or args.scale_matched != 1.0  # not a result either way
    if args.render:
        results = json.loads(args.render.read_text())
        header = [f"Rendered from {args.render}."]
    else:
        runs = Path(args.runs or tempfile.mkdtemp(prefix="bench-plan-"))
        runs.mkdir(parents=True, exist_ok=True)
        sets = data_sets(args.sets.split(","), runs, make=not args.dry_run)
        rows = planned_rows(args, sets)
        expected = sum(r[6] * 1.05 + 30 for r in rows)
        print(f"{len(rows)} trainings, about {expected / 3600:.1f} h in all (each budget + ~30 s of test scoring):")
        for part, side, name, train, _test, _thin, budget, seed in rows:
            cmd = train_command(side, train, budget, seed, runs, f"{name}-{side}-{budget:g}s-s{seed}")
            print(f"  [{part}, ~{budget * 1.05 / 60:.1f} min] python " + " ".join(shlex.quote(c) for c in cmd[1:]))
        if args.dry_run:
            return
        if before > QUIET and not args.force:
            raise SystemExit(f"the load average is {before:.2f} (> {QUIET}): other jobs would take the time these "
                             "figures measure. Stop them, or pass --force for a run that is not a result.")
        results = []
        for part, side, name, train, test, thinnest, budget, seed in rows:
            row = run_row(side, name, train, test, thinnest, budget, seed, runs, args.test_images)
            results.append({**row, "part": part})
            (runs / "results.json").write_text(json.dumps(results, indent=1))
        after = load_average()
        print(f"1-minute load average after: {after:.2f}")
        header = [f"CPU flags: {cpu_flags()}; {os.cpu_count()} cores. 1-minute load average before {before:.2f}, "
                  f"after {after:.2f}." + (" **NOT A RESULT: a busy machine (--force) or a check of the script "
                  "(--test-images, --scale-matched).**" if busy else ""),
                  "", "Each row is `masksmith train DATA --time T` (planned) or the same with `--no-plan` (the plain "
                  "256x256 default), run as a subprocess and timed from outside (the whole wait: data, training, "
                  "validation, the final evaluation and the report), then scored on the test set at each photo's "
                  "full size (mIoU with background). Data and runs: " + str(runs) + "."]
    text = render(results, header)
    print(text)
    if not args.no_write and not (busy and not args.render):
        write_section("plan", "Training plan and time budget (issues 18 and 23): planned against the plain default",
                      text)


if __name__ == "__main__":
    main()
