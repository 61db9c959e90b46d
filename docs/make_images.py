"""Make the README's pictures from the demo, never by hand: runs `masksmith demo`'s path into a scratch folder
and copies the pictures it wrote (the data set preview, the last training preview, the worst-predicted gallery
of the evaluation) into docs/images/, with screenshots of the run's report.html taken in headless Chromium.

    python docs/make_images.py            # about 3 minutes: the demo trains for 2 of them
    python docs/make_images.py --out /tmp/demo --seconds 420   # a busy machine: train longer, as the demo
                                                               # would get as far in 2 minutes on a quiet one
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from rich.console import Console

IMAGES = Path(__file__).resolve().parent / "images"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def screenshot_report(report: Path, out: Path) -> list[Path]:
    """report-top.png (summary, data, configuration) and report-evaluation.png (the first evaluation)."""
    from playwright.sync_api import sync_playwright

    from masksmith.core.outputs import atomic_save

    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            page.goto(report.resolve().as_uri(), wait_until="load")
            shots.append(atomic_save(out / "report-top.png", lambda tmp: page.screenshot(path=str(tmp), type="png")))
            box = page.locator("#evaluation").bounding_box()
            clip = {"x": box["x"], "y": box["y"], "width": box["width"], "height": min(box["height"], 1500)}
            shots.append(atomic_save(out / "report-evaluation.png",
                                     lambda tmp: page.screenshot(path=str(tmp), type="png", full_page=True,
                                                                 clip=clip)))
        finally:
            browser.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_output"), help="scratch folder for the demo")
    parser.add_argument("--seconds", type=float, default=120.0, help="training time of the demo")
    args = parser.parse_args()

    from masksmith.core.outputs import atomic_copy
    from masksmith.core.runfolder import evaluations, previews
    from masksmith.demo import run_demo

    if args.out.exists():
        shutil.rmtree(args.out / "runs", ignore_errors=True)  # a fresh run named "demo"
    run = run_demo(args.out, Console(), train_seconds=args.seconds)
    unseen = [folder for folder, _ in evaluations(run) if folder.name != "validation"][0]
    copies = {"dataset-preview.png": args.out / "preview.png", "training-preview.png": previews(run)[-1],
              "worst.png": unseen / "worst.png", "curves.png": run / "curves.png"}
    for name, source in copies.items():
        atomic_copy(source, IMAGES / name)
        print(f"{IMAGES / name}  <-  {source}")
    if CHROMIUM.exists():
        for shot in screenshot_report(run / "report.html", IMAGES):
            print(f"{shot}  <-  screenshot of {run / 'report.html'}")
    else:
        print(f"no {CHROMIUM}: the report screenshots were not made", file=sys.stderr)


if __name__ == "__main__":
    main()
