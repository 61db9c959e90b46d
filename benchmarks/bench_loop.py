"""The labelling loop on car-parts (issue 27), with the ground truth playing the person.

Start from `--start` labelled photos of car-parts' trainingset (seeded), the others waiting in unlabelled/;
train a first model from scratch for `--budget` seconds. Then two loops from that same model, each for
`--rounds` rounds:
- ranked: the `--per-round` photos the model is least sure of (`apps.labelling.label_next`, as the web app's
  "label next" lists them) are "corrected": the true mask is saved over the model's proposal through
  `data.labelling.save_mask` (what the editor's save does), counting the pixels the person had to change;
- random: as many photos drawn at random (seeded), saved the same way;
after which each fine-tunes its current model (`from_model`, "continue training") for `--round-budget` seconds.
After every round both models are scored on the same test photos (car-parts' testset, the first
`--test-images`), mIoU at each photo's full size. Last, a model trained from scratch on the ranked loop's final
photos for the time the loop spent training (first model + every round) says what fine-tuning saved.

Run it on a quiet machine: it refuses to start above a load average of 1.5 (`--force` overrides, and marks the
output "not a result"); `--no-write` leaves docs/benchmarks.md alone.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import car_parts_or_exit, load_average, refuse_when_loaded, write_section  # noqa: E402
from masksmith import service  # noqa: E402
from masksmith.apps.labelling import label_next  # noqa: E402
from masksmith.data import labelling, load_dataset  # noqa: E402
from masksmith.infer import open_predictor  # noqa: E402


def make_pool(train: Path, work: Path, start: int, seed: int) -> tuple[Path, Path]:
    """truth/: every training photo with its true class-value mask; loop/: `start` of them labelled, the rest
    in unlabelled/ (the same photo files)."""
    truth = work / "truth"
    if not truth.exists():
        service.start_labelling(train, truth)
    loop = work / "loop-start"
    shutil.rmtree(loop, ignore_errors=True)
    names = sorted(p.name for p in (truth / "images").iterdir())
    chosen = set(random.Random(seed).sample(names, start))
    (loop / "images").mkdir(parents=True)
    (loop / "masks").mkdir()
    (loop / "unlabelled").mkdir()
    shutil.copy(truth / "classes.txt", loop / "classes.txt")
    for name in names:
        if name in chosen:
            shutil.copy(truth / "images" / name, loop / "images" / name)
            shutil.copy(truth / "masks" / f"{Path(name).stem}.png", loop / "masks" / f"{Path(name).stem}.png")
        else:
            shutil.copy(truth / "images" / name, loop / "unlabelled" / name)
    return truth, loop


def train(data: Path, runs: Path, name: str, seconds: float, from_model: Path | None, seed: int) -> tuple[Path, float]:
    config = service.training_config(data, time_budget=seconds, name=name, runs_dir=str(runs), seed=seed,
                                     from_model=str(from_model) if from_model else None, strict_data=False)
    began = time.monotonic()
    run = service.train(config)
    return run / "model.masksmith", time.monotonic() - began


def score(model: Path, test) -> float:
    return float(service.evaluate(model, test, save=False).headline.value)


def correct(loop: Path, truth: Path, names: list[str], model: Path) -> list[int]:
    """Save the true mask of each photo over the model's proposal; the pixels the person changed, per photo."""
    predictor = open_predictor(model)
    changed = []
    for name in names:
        from masksmith.apps.labelling import proposal

        proposed = proposal(loop, name, predictor)
        true = labelling.read_mask(truth, name)
        changed.append(int((proposed != true).sum()))
        labelling.save_mask(loop, name, true)
    return changed


def run_loop(strategy: str, start_loop: Path, truth: Path, first: Path, work: Path, test, args) -> list[dict]:
    loop = work / f"loop-{strategy}"
    shutil.rmtree(loop, ignore_errors=True)
    shutil.copytree(start_loop, loop)
    model, rows, rng = first, [], random.Random(args.seed + 1)
    for round_ in range(1, args.rounds + 1):
        if strategy == "ranked":
            names = [p.name for p in label_next(loop, open_predictor(model), args.per_round)]
        else:
            waiting = sorted(p.name for p in labelling.unlabelled_photos(loop))
            names = rng.sample(waiting, min(args.per_round, len(waiting)))
        changed = correct(loop, truth, names, model)
        model, seconds = train(loop, work / "runs", f"{strategy}-{round_}", args.round_budget, model, args.seed)
        rows.append({"round": round_, "labelled": labelling.counts(loop)["labelled"],
                     "miou": score(model, test), "changed_px": float(np.mean(changed)), "seconds": seconds})
        print(f"{strategy} round {round_}: {rows[-1]}", flush=True)
    return rows


def report(results: dict, args, forced: bool) -> str:
    lines = ["not a result (run with --force on a loaded machine)\n" if forced else "",
             f"Start {args.start} labelled photos, {args.rounds} rounds of {args.per_round} photos, first model "
             f"{args.budget:.0f} s, each fine-tune {args.round_budget:.0f} s; test: {results['test_images']} "
             "car-parts test photos, mIoU at full size.\n",
             f"First model: mIoU {results['first']:.3f}.\n",
             "| round | labelled | ranked mIoU | random mIoU | ranked px changed / photo | random px changed / photo |",
             "|---|---|---|---|---|---|"]
    for r, q in zip(results["ranked"], results["random"], strict=True):
        lines.append(f"| {r['round']} | {r['labelled']} | {r['miou']:.3f} | {q['miou']:.3f} | "
                     f"{r['changed_px']:.0f} | {q['changed_px']:.0f} |")
    s = results["scratch"]
    lines.append(f"\nFrom scratch on the ranked loop's final {s['labelled']} photos for {s['budget']:.0f} s (the "
                 f"loop's training time): mIoU {s['miou']:.3f}, against {results['ranked'][-1]['miou']:.3f} "
                 "fine-tuned.")
    ranked_wins = [r["miou"] > q["miou"] for r, q in zip(results["ranked"], results["random"], strict=True)]
    last = results["ranked"][-1]
    lines += ["", "Goals:",
              f"- ranked beats random at every round: {'met' if all(ranked_wins) else 'missed'} (rounds won "
              f"{sum(ranked_wins)} of {len(ranked_wins)}).",
              f"- fine-tuning reaches the from-scratch score in at most half its time: the last round's fine-tune "
              f"({args.round_budget:.0f} s asked, {last['seconds']:.0f} s of wall time, on the grown data) scored "
              f"{last['miou']:.3f} against {s['miou']:.3f} from scratch in {s['budget']:.0f} s "
              f"({args.round_budget / s['budget']:.2f} of its time): "
              f"{'met' if last['miou'] >= s['miou'] and args.round_budget <= s['budget'] / 2 else 'missed'}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=int, default=20, help="labelled photos to start from")
    parser.add_argument("--per-round", type=int, default=10, help="photos corrected per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=300, help="seconds of the first model's training")
    parser.add_argument("--round-budget", type=float, default=120, help="seconds of each fine-tuning")
    parser.add_argument("--test-images", type=int, default=100, help="car-parts test photos scored")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--force", action="store_true", help="run on a loaded machine (output: not a result)")
    args = parser.parse_args()
    car_parts = car_parts_or_exit()
    load = refuse_when_loaded(args.force)
    forced = load > 1.5
    work = args.work or Path(tempfile.mkdtemp(prefix="masksmith-loop-"))
    truth, start_loop = make_pool(car_parts / "trainingset", work, args.start, args.seed)
    test = load_dataset(car_parts / "testset", strict=False)
    test.samples = test.samples[: args.test_images]
    first, first_seconds = train(start_loop, work / "runs", "first", args.budget, None, args.seed)
    results = {"first": score(first, test), "test_images": len(test.samples)}
    print(f"first model: mIoU {results['first']:.3f} ({first_seconds:.0f} s)", flush=True)
    for strategy in ("ranked", "random"):
        results[strategy] = run_loop(strategy, start_loop, truth, first, work, test, args)
    budget = args.budget + args.rounds * args.round_budget
    scratch, _ = train(work / "loop-ranked", work / "runs", "scratch", budget, None, args.seed)
    results["scratch"] = {"labelled": labelling.counts(work / "loop-ranked")["labelled"], "budget": budget,
                          "miou": score(scratch, test)}
    after = load_average()
    print(f"load average (1 min) after: {after:.2f}")
    forced = forced or after > 1.5 * 2  # two cores busy with us alone is expected; more means others ran
    print(json.dumps(results, indent=2))
    text = report(results, args, forced)
    print(text)
    if not args.no_write and not forced:
        write_section("loop", "Labelling loop: ranked vs random corrections, fine-tune vs scratch (car-parts)", text)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
