"""The mask editor in Debian's Chromium (issue 27): on an unlabelled photo it draws a stroke, erases part of it,
fills a region, undoes the fill, saves, reloads and finds the saved mask, finds an unsaved stroke again after
a reload (kept as a draft), snaps a stroke to superpixels, draws a polygon, zooms and pans; the data set page
then counts the photo as labelled. Another test ranks photos with a model, accepts its proposal and continues
training. Screenshots go to the test's tmp folder (and to docs/images/ with MASKSMITH_DOCS_IMAGES=1)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import CHROMIUM, CHROMIUM_ARGS, Server, axe_script, needs_chromium, page_width, serious_findings
from masksmith.data import labelling
from masksmith.data.synthetic import make_sample_dataset

DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def post_bytes(base: str, path: str, data: bytes) -> dict:
    request = urllib.request.Request(f"{base}{path}", data=data, method="POST",
                                     headers={"content-type": "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())


def drag(page, points: list[tuple[float, float]]) -> None:
    """A pointer stroke through `points` (photo pixels) in the editor on `page`."""
    def at(x: float, y: float) -> list[float]:
        return page.evaluate("([x, y]) => editor.toScreen(x, y)", [x, y])

    page.mouse.move(*at(*points[0]))
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(*at(x, y), steps=4)
    page.mouse.up()


@needs_chromium
def test_editor_draw_erase_fill_undo_save_reload(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    pytest.importorskip("uvicorn")
    cars = make_sample_dataset(tmp_path / "cars", n_images=4, size=(240, 160), seed=2, vary_size=False)
    photo = make_sample_dataset(tmp_path / "more", n_images=1, size=(240, 160), seed=7, vary_size=False)
    photo_file = sorted(photo.rglob("*.jpg"))[0]
    server = Server(tmp_path / "data", tmp_path / "server.log").start()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        ds = server.api("POST", "/api/datasets/folder", {"path": str(cars), "name": "cars"})["id"]
        added = post_bytes(server.base, f"/api/datasets/{ds}/photos?name=new%20car.jpg", photo_file.read_bytes())
        assert added["added"] == ["new car.jpg"] and added["unlabelled"] == 1
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            page.goto(f"{server.base}/datasets/{ds}")
            page.wait_for_selector("#label-next a")
            assert "1 unlabelled" in page.inner_text("#label-counts")
            script = axe_script()
            assert serious_findings(page, script) == []
            page.click("#label-next a")
            page.wait_for_selector("#editor[data-ready='1']")
            assert serious_findings(page, script) == []

            def count(value: int) -> int:
                return page.evaluate(f"editor.labels.reduce((n, v) => n + (v === {value}), 0)")

            def stroke(points: list[tuple[float, float]]) -> None:
                drag(page, points)

            assert count(0) == 240 * 160  # no model: the proposal is empty
            page.keyboard.press("1")  # the first class
            page.keyboard.press("b")
            page.fill("#brush-size", "10")
            page.dispatch_event("#brush-size", "input")
            stroke([(20, 40), (120, 40)])
            drawn = count(1)
            assert drawn > 800, drawn  # ~100 px long, 10 px wide
            page.keyboard.press("e")
            stroke([(20, 40), (60, 40)])
            erased = count(1)
            assert 0 < erased < drawn - 300
            page.keyboard.press("2")  # the second class; fill the background around the stroke
            page.keyboard.press("f")
            page.mouse.click(*page.evaluate("editor.toScreen(200, 140)"))
            assert count(2) == 240 * 160 - erased
            page.keyboard.press("Control+z")  # undo the fill
            assert count(2) == 0 and count(1) == erased
            page.keyboard.press("Control+Shift+z")  # redo, and undo again
            assert count(2) == 240 * 160 - erased
            page.keyboard.press("Control+z")
            before = page.evaluate("Array.from(editor.labels)")
            page.screenshot(path=str(shots / "editor.png"))
            page.keyboard.press("Control+s")
            page.wait_for_function("document.querySelector('#status').textContent.includes('Saved as version 1')")

            page.reload()
            page.wait_for_selector("#editor[data-ready='1']")
            assert page.evaluate("Array.from(editor.labels)") == before  # the saved mask comes back
            # an edit not saved survives a closed tab: kept as a draft after the stroke, restored on opening
            page.keyboard.press("3")
            page.keyboard.press("b")
            stroke([(150, 120), (200, 120)])
            page.wait_for_function("editor.draft === 'kept'")
            drafted = page.evaluate("Array.from(editor.labels)")
            page.reload()
            page.wait_for_selector("#editor[data-ready='1']")
            assert page.evaluate("editor.draft") == "restored" and "Restored" in page.inner_text("#status")
            assert page.evaluate("Array.from(editor.labels)") == drafted
            page.keyboard.press("Control+z")  # back to the saved mask, which stays as it was
            assert page.evaluate("Array.from(editor.labels)") == before
            # snap to edges: a stroke of class 4 becomes whole superpixels of the photo
            page.keyboard.press("4")
            page.keyboard.press("s")
            page.wait_for_function("editor.superpixels !== null")
            stroke([(30, 120), (90, 125)])
            snapped = page.evaluate("""() => {
                const ids = editor.superpixels.ids, L = editor.labels, inside = new Set(), whole = new Set();
                L.forEach((v, i) => { if (v === 4) inside.add(ids[i]); });
                ids.forEach((id, i) => { if (inside.has(id) && L[i] !== 4) whole.add(id); });
                return [inside.size, whole.size, L.filter(v => v === 4).length];
            }""")
            assert snapped[0] > 0 and snapped[1] == 0 and snapped[2] > 0, snapped
            # polygon: four corners and Enter fill the shape with the class
            page.keyboard.press("s")  # snapping off
            page.keyboard.press("3")
            page.keyboard.press("p")
            had = count(3)
            for x, y in ((10, 10), (50, 10), (50, 30), (10, 30)):
                page.mouse.click(*page.evaluate("([x, y]) => editor.toScreen(x, y)", [x, y]))
            page.keyboard.press("Enter")
            assert 700 <= count(3) - had <= 900  # 40 x 20 pixels inside the corners
            # zoom with the keys, back to fit, and pan by dragging with the pan tool
            fitted = page.evaluate("editor.scale")
            page.keyboard.press("+")
            assert abs(page.evaluate("editor.scale") / fitted - 1.25) < 1e-6
            page.keyboard.press("0")
            assert page.evaluate("editor.scale") == fitted
            page.keyboard.press("h")
            ox = page.evaluate("editor.ox")
            page.mouse.move(400, 400)
            page.mouse.down()
            page.mouse.move(450, 420, steps=3)
            page.mouse.up()
            assert abs(page.evaluate("editor.ox") - ox - 50) < 1
            page.goto(f"{server.base}/datasets/{ds}")
            assert "5 labelled, 0 unlabelled" in page.inner_text("#label-counts")
            assert not errors, errors
            phone = browser.new_page(viewport={"width": 390, "height": 844})  # no sideways scrolling on a phone
            for url in (f"/datasets/{ds}", f"/datasets/{ds}/edit/new%20car.jpg"):
                phone.goto(server.base + url)
                assert page_width(phone) <= 390, url
            browser.close()
        assert server.api("GET", f"/api/datasets/{ds}/next")["photos"] == []  # no photo left to label
        saved = next((tmp_path / "data" / "datasets").rglob("masks/new car.png"))
        mask = np.asarray(Image.open(saved))
        assert int((mask == 1).sum()) == erased and int((mask == 2).sum()) == 0
        assert labelling.counts(saved.parent.parent) == {"labelled": 5, "unlabelled": 0}
    finally:
        server.stop()
    if os.environ.get("MASKSMITH_DOCS_IMAGES") == "1":
        shutil.copy(shots / "editor.png", DOCS_IMAGES / "web-editor.png")


def run_state(server: Server, run_id: int) -> str:
    with urllib.request.urlopen(f"{server.base}/runs/{run_id}", timeout=30) as page:
        return re.search(r'id="state" data-state="(\w+)"', page.read().decode()).group(1)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@needs_chromium
def test_label_next_accept_a_proposal_and_continue_training(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    pytest.importorskip("uvicorn")
    cars = make_sample_dataset(tmp_path / "cars", n_images=8, size=(160, 120), seed=4)
    more = make_sample_dataset(tmp_path / "more", n_images=2, size=(160, 120), seed=8)
    server = Server(tmp_path / "data", tmp_path / "server.log").start()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        ds = server.api("POST", "/api/datasets/folder", {"path": str(cars), "name": "cars"})["id"]
        run = server.api("POST", "/api/runs", {"dataset": ds, "seconds": 15, "size": 64, "batch_size": 4,
                                               "model": "baseline", "pretrained": False, "name": "first"})["id"]
        wait_until(lambda: run_state(server, run) in ("finished", "failed"), 300, "the first training")
        assert run_state(server, run) == "finished"
        for photo in sorted(more.rglob("*.jpg")):
            post_bytes(server.base, f"/api/datasets/{ds}/photos?name={photo.name}", photo.read_bytes())
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server.base}/datasets/{ds}")
            assert page.input_value("#label-model") == str(run)  # the newest model proposes
            page.wait_for_function("document.querySelectorAll('#label-next img').length === 2 && "
                                   "Array.from(document.querySelectorAll('#label-next img'))"
                                   ".every(i => i.complete && i.naturalWidth > 0)")
            assert "unsure" in page.inner_text("#label-next")  # ranked by the model's doubt
            page.locator("#labelling").screenshot(path=str(shots / "label-next.png"))
            page.click("#label-next a")
            page.wait_for_selector("#editor[data-ready='1']")
            proposed = page.evaluate("Array.from(editor.labels)")
            page.screenshot(path=str(shots / "editor-proposal.png"))
            page.keyboard.press("a")  # accept as is
            page.wait_for_function("document.querySelector('#status').textContent.includes('Saved as version 1')")
            page.reload()
            page.wait_for_selector("#editor[data-ready='1']")
            assert page.evaluate("Array.from(editor.labels)") == proposed
            page.goto(f"{server.base}/datasets/{ds}")
            assert "9 labelled, 1 unlabelled" in page.inner_text("#label-counts")
            page.fill("#continue-minutes", "0.1")
            page.click("#continue-training")
            page.wait_for_url("**/runs/*")
            more_run = int(page.url.rstrip("/").rsplit("/", 1)[1])
            assert not errors, errors
            browser.close()
        wait_until(lambda: run_state(server, more_run) in ("finished", "failed"), 300, "the fine-tuning")
        assert run_state(server, more_run) == "finished"
        config = next((tmp_path / "data" / "runs").glob("first-more-*/config.yaml")).read_text()
        assert "from_model:" in config and "model.masksmith" in config
    finally:
        server.kill_trainings()
        server.stop()
    if os.environ.get("MASKSMITH_DOCS_IMAGES") == "1":
        shutil.copy(shots / "editor-proposal.png", DOCS_IMAGES / "web-editor-proposal.png")
        shutil.copy(shots / "label-next.png", DOCS_IMAGES / "web-label-next.png")
