"""The labelling loop on car-parts (issue 27), with the ground truth playing the person.

Start from `--start` labelled photos of car-parts' trainingset (seeded; `--pool` limits the photos waiting to be
labelled, default all), the others waiting in unlabelled/; train a first model from scratch for `--budget`
seconds. Then one loop from that same model per strategy of `--strategies`, each for `--rounds` rounds:
- diverse: the `--per-round` photos first in `rank`'s default order (`apps.labelling.label_next`, as the web
  app's "label next" lists them: each the most unsure photo unlike those before it) are "corrected": the true
  mask is saved over the model's proposal through `data.labelling.save_mask` (what the editor's save does),
  counting the pixels the person had to change;
- uncertain: the same with `rank --strategy uncertain` (the most unsure photos, nothing else);
- random: as many photos drawn at random (seeded), saved the same way;
after which each fine-tunes its current model (`from_model`, "continue training") for `--round-budget` seconds.
After every round the models are scored on the same test photos (car-parts' testset, the first
`--test-images`), mIoU at each photo's full size. `--seeds N` repeats all this from N different starting sets
(seeds `--seed`, `--seed` + 1, ...) and reports each round's mean over them. Last (first seed only), a model
trained from scratch on the first ranked strategy's final photos for the time its loop spent training (first
model + every round) says what fine-tuning saved. `--first MODEL` starts the loops from an earlier run's first
model (same seed and starting photos) instead of training one: fine-tuning rules compared from the same model.

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
from masksmith.models.artifact import load_artifact  # noqa: E402


def make_truth(train: Path, work: Path) -> Path:
    """truth/: every training photo with its true class-value mask (made once per work folder)."""
    truth = work / "truth"
    if not truth.exists():
        service.start_labelling(train, truth)
    return truth


def make_pool(truth: Path, loop: Path, start: int, seed: int, pool: int | None = None) -> Path:
    """loop/: `start` of the photos labelled, `pool` others (all by default) in unlabelled/, drawn with `seed`."""
    shutil.rmtree(loop, ignore_errors=True)
    names = sorted(p.name for p in (truth / "images").iterdir())
    drawn = random.Random(seed).sample(names, min(len(names), start + (pool if pool is not None else len(names))))
    chosen = set(drawn[:start])
    (loop / "images").mkdir(parents=True)
    (loop / "masks").mkdir()
    (loop / "unlabelled").mkdir()
    shutil.copy(truth / "classes.txt", loop / "classes.txt")
    for name in sorted(drawn):
        if name in chosen:
            shutil.copy(truth / "images" / name, loop / "images" / name)
            shutil.copy(truth / "masks" / f"{Path(name).stem}.png", loop / "masks" / f"{Path(name).stem}.png")
        else:
            shutil.copy(truth / "images" / name, loop / "unlabelled" / name)
    return loop


def train(data: Path, runs: Path, name: str, seconds: float, from_model: Path | None, seed: int) -> tuple[Path, float]:
    config = service.training_config(data, time_budget=seconds, name=name, runs_dir=str(runs), seed=seed,
                                     from_model=str(from_model) if from_model else None, strict_data=False)
    began = time.monotonic()
    run = service.train(config)
    return run / "model.masksmith", time.monotonic() - began


def given_first(model: Path, start_loop: Path) -> Path:
    """A first model from an earlier run, checked to have validated on photos of this seed's starting set (so
    it was trained on the same drawn photos) and copied with its data.json, which fine-tunes validate on."""
    data = model.parent / "data.json"
    names = json.loads(data.read_text())["validation_images"] if data.is_file() else []
    missing = [n for n in names if not (start_loop / n).is_file()]
    if not names or missing:
        sys.exit(f"--first {model}: its run's validation photos are not this seed's starting photos "
                 f"({', '.join(missing[:3]) or 'no data.json'}); train it from the same --seed and --start")
    copy = start_loop.parent / "runs" / "first-given"
    copy.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, copy / "model.masksmith")
    shutil.copy(data, copy / "data.json")
    return copy / "model.masksmith"


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


STRATEGIES = ("diverse", "uncertain", "random")


def pick(strategy: str, loop: Path, model: Path, per_round: int, rng: random.Random) -> list[str]:
    if strategy == "random":
        waiting = sorted(p.name for p in labelling.unlabelled_photos(loop))
        return rng.sample(waiting, min(per_round, len(waiting)))
    return [p.name for p in label_next(loop, open_predictor(model), per_round, strategy=strategy)]


def run_loop(strategy: str, start_loop: Path, truth: Path, first: Path, work: Path, test, args, seed: int) -> list:
    loop = work / f"loop-{strategy}"
    shutil.rmtree(loop, ignore_errors=True)
    shutil.copytree(start_loop, loop)
    model, rows, rng = first, [], random.Random(seed + 1)
    for round_ in range(1, args.rounds + 1):
        began = time.monotonic()
        names = pick(strategy, loop, model, args.per_round, rng)
        picking = time.monotonic() - began
        changed = correct(loop, truth, names, model)
        model, seconds = train(loop, work / "runs", f"{strategy}-{round_}", args.round_budget, model, seed)
        kept = load_artifact(model).training.get("reason") == "start"  # no epoch beat the model it started from
        rows.append({"round": round_, "labelled": labelling.counts(loop)["labelled"], "miou": score(model, test),
                     "changed_px": float(np.mean(changed)), "seconds": seconds, "pick_seconds": picking,
                     "kept_start": kept})
        print(f"seed {seed} {strategy} round {round_}: {rows[-1]}", flush=True)
    return rows


def mean(values) -> float:
    return float(np.mean(list(values)))


def bracket(values: list[float]) -> str:
    """Each seed's figure in brackets, when there are several."""
    return f" ({', '.join(f'{v:.3f}' for v in values)})" if len(values) > 1 else ""


def report(results: dict, args, forced: bool) -> str:
    runs, strategies = results["seeds"], args.strategies
    seeds = ", ".join(str(r["seed"]) for r in runs)
    lines = ["not a result (run with --force on a loaded machine)\n" if forced else "",
             f"Start {args.start} labelled photos, {args.rounds} rounds of {args.per_round} photos, first model "
             + (f"given ({args.first})" if getattr(args, "first", None) else f"{args.budget:.0f} s")
             + f", each fine-tune {args.round_budget:.0f} s; test: {results['test_images']} "
             f"car-parts test photos, mIoU at full size; {len(runs)} seed(s) ({seeds}): each seed its own "
             "starting photos, random picks and training seed" + (", figures the mean over seeds (each seed's "
             "in brackets)" if len(runs) > 1 else "") + ".\n",
             f"First model: mIoU {mean(r['first'] for r in runs):.3f}{bracket([r['first'] for r in runs])}.\n",
             "| round | labelled | " + " | ".join(f"{s} mIoU" for s in strategies) + " | "
             + " | ".join(f"{s} px changed / photo" for s in strategies) + " |",
             "|---|---|" + "---|" * (2 * len(strategies))]
    per_round = {s: [[r["loops"][s][k] for r in runs] for k in range(args.rounds)] for s in strategies}
    for k in range(args.rounds):
        cells = []
        for s in strategies:
            values = [row["miou"] for row in per_round[s][k]]
            cells.append(f"{mean(values):.3f}{bracket(values)}")
        cells += [f"{mean(row['changed_px'] for row in per_round[s][k]):.0f}" for s in strategies]
        lines.append(f"| {k + 1} | {per_round[strategies[0]][k][0]['labelled']} | " + " | ".join(cells) + " |")
    picks = [s for s in strategies if s != "random"]
    if picks:
        lines.append("\nSeconds to pick a round's photos (mean): " + ", ".join(
            f"{s} {mean(row['pick_seconds'] for rows in per_round[s] for row in rows):.0f}" for s in picks) + ".")
    kept = {s: sum(bool(row.get("kept_start")) for rows in per_round[s] for row in rows) for s in strategies}
    lines.append("\nFine-tunes that kept their starting model (no epoch beat its validation score): " + ", ".join(
        f"{s} {kept[s]} of {args.rounds * len(runs)}" for s in strategies) + ".")
    scratch = results.get("scratch")
    if scratch:
        last = runs[0]["loops"][scratch["strategy"]][-1]
        lines.append(f"\nFrom scratch on the {scratch['strategy']} loop's final {scratch['labelled']} photos "
                     f"(seed {runs[0]['seed']}) for {scratch['budget']:.0f} s (the loop's training time): mIoU "
                     f"{scratch['miou']:.3f}, against {last['miou']:.3f} fine-tuned.")
    lines += ["", "Goals:"]
    if "random" in strategies:
        for s in picks:
            wins = [mean(row["miou"] for row in per_round[s][k]) > mean(row["miou"] for row in per_round["random"][k])
                    for k in range(args.rounds)]
            tag = " (rank's default)" if s == "diverse" else ""
            lines.append(f"- {s}{tag} beats random at every round (means over seeds): "
                         f"{'met' if all(wins) else 'missed'} (rounds won {sum(wins)} of {len(wins)}).")
    if scratch:
        ok = last["miou"] >= scratch["miou"] and args.round_budget <= scratch["budget"] / 2
        lines.append(f"- fine-tuning reaches the from-scratch score in at most half its time: the "
                     f"{scratch['strategy']} loop's last fine-tune ({args.round_budget:.0f} s asked, "
                     f"{last['seconds']:.0f} s of wall time, "
                     f"on the grown data) scored {last['miou']:.3f} against {scratch['miou']:.3f} from scratch in "
                     f"{scratch['budget']:.0f} s ({args.round_budget / scratch['budget']:.2f} of its time): "
                     f"{'met' if ok else 'missed'}.")
    return "\n".join(lines)


def strategies(text: str) -> list[str]:
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in chosen if t not in STRATEGIES]
    if bad or not chosen or len(set(chosen)) != len(chosen):
        raise argparse.ArgumentTypeError(f"{text!r}: give distinct strategies among {', '.join(STRATEGIES)}")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=int, default=20, help="labelled photos to start from")
    parser.add_argument("--per-round", type=int, default=10, help="photos corrected per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=300, help="seconds of the first model's training")
    parser.add_argument("--round-budget", type=float, default=120, help="seconds of each fine-tuning")
    parser.add_argument("--test-images", type=int, default=100, help="car-parts test photos scored")
    parser.add_argument("--pool", type=int, help="photos waiting to be labelled (default: all the others)")
    parser.add_argument("--strategies", type=strategies, default=list(STRATEGIES),
                        help=f"comma-separated, among {', '.join(STRATEGIES)} (default: all)")
    parser.add_argument("--seeds", type=int, default=1, help="repeat the comparison from this many starting sets")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--no-scratch", action="store_true", help="skip the from-scratch model at the end")
    parser.add_argument("--first", type=Path, help="start the loops from this model file instead of training one "
                        "(one seed; trained on that seed's starting photos, e.g. an earlier run's "
                        "seed-0/runs/first/model.masksmith): compares fine-tuning rules from the same model")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--force", action="store_true", help="run on a loaded machine (output: not a result)")
    args = parser.parse_args()
    if args.seeds < 1 or args.rounds < 1 or args.per_round < 1 or args.start < 1:
        parser.error("--seeds, --rounds, --per-round and --start must be at least 1")
    if args.first and (args.seeds != 1 or not args.first.is_file()):
        parser.error("--first takes an existing model file, with one seed")
    car_parts = car_parts_or_exit()
    load = refuse_when_loaded(args.force)
    forced = load > 1.5
    began = time.monotonic()
    work = args.work or Path(tempfile.mkdtemp(prefix="masksmith-loop-"))
    truth = make_truth(car_parts / "trainingset", work)
    test = load_dataset(car_parts / "testset", strict=False)
    test.samples = test.samples[: args.test_images]
    results: dict = {"test_images": len(test.samples), "seeds": []}
    for seed in range(args.seed, args.seed + args.seeds):
        folder = work / f"seed-{seed}"
        start_loop = make_pool(truth, folder / "loop-start", args.start, seed, args.pool)
        if args.first:
            first, first_seconds = given_first(args.first, start_loop), 0.0
        else:
            first, first_seconds = train(start_loop, folder / "runs", "first", args.budget, None, seed)
        run = {"seed": seed, "first": score(first, test), "loops": {}}
        print(f"seed {seed} first model: mIoU {run['first']:.3f} ({first_seconds:.0f} s)", flush=True)
        for strategy in args.strategies:
            run["loops"][strategy] = run_loop(strategy, start_loop, truth, first, folder, test, args, seed)
        results["seeds"].append(run)
    ranked = [s for s in args.strategies if s != "random"] or args.strategies
    if not args.no_scratch:
        seed, strategy = args.seed, ranked[0]
        final = work / f"seed-{seed}" / f"loop-{strategy}"
        budget = args.budget + args.rounds * args.round_budget
        scratch, _ = train(final, work / f"seed-{seed}" / "runs", "scratch", budget, None, seed)
        results["scratch"] = {"strategy": strategy, "labelled": labelling.counts(final)["labelled"],
                              "budget": budget, "miou": score(scratch, test)}
    after = load_average()
    print(f"load average (1 min) after: {after:.2f}; {(time.monotonic() - began) / 60:.1f} minutes")
    forced = forced or after > 1.5 * 2  # two cores busy with us alone is expected; more means others ran
    print(json.dumps(results, indent=2))
    text = report(results, args, forced)
    print(text)
    if not args.no_write and not forced:
        write_section("loop", "Labelling loop: ranked (diverse, uncertain) vs random corrections, fine-tune vs "
                      "scratch (car-parts)", text)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
