"""The editor on an instance data set in Debian's Chromium (issue 27): the data set page makes it one of objects;
on a new photo the test draws three objects, selects two (Shift+click) and merges them, erases a line across the
third and splits it into its parts, deletes one part, gives one the picked class and undoes it, saves, reloads,
and finds the objects again in the editor and through the API; an unsaved object comes back as a draft.
Screenshots go to the test's tmp folder (and the selection to docs/images/ with MASKSMITH_DOCS_IMAGES=1)."""

from __future__ import annotations

import io
import os
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import CHROMIUM, CHROMIUM_ARGS, Server, needs_chromium
from masksmith.data import load_dataset
from masksmith.data.synthetic import make_sample_dataset
from test_labelling_browser import DOCS_IMAGES, drag, post_bytes


@needs_chromium
def test_objects_select_merge_split_delete_save_reload(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    pytest.importorskip("uvicorn")
    cars = make_sample_dataset(tmp_path / "cars", n_images=3, size=(240, 160), seed=2, vary_size=False)
    photo = make_sample_dataset(tmp_path / "more", n_images=1, size=(240, 160), seed=7, vary_size=False)
    photo_file = sorted(photo.rglob("*.jpg"))[0]
    server = Server(tmp_path / "data", tmp_path / "server.log").start()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        ds = server.api("POST", "/api/datasets/folder", {"path": str(cars), "name": "cars"})["id"]
        post_bytes(server.base, f"/api/datasets/{ds}/photos?name=new.jpg", photo_file.read_bytes())
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server.base}/datasets/{ds}")
            page.click("#label-objects")
            page.wait_for_selector("#label-objects-on")
            page.goto(f"{server.base}/datasets/{ds}/edit/new.jpg")
            page.wait_for_selector("#editor[data-ready='1']")
            assert page.evaluate("editor.instance") and page.evaluate("Object.keys(editor.objectClass)") == []

            def at(x: float, y: float) -> list[float]:
                return page.evaluate("([x, y]) => editor.toScreen(x, y)", [x, y])

            def stroke(points: list[tuple[float, float]]) -> None:
                drag(page, points)

            def objects() -> dict[int, tuple[int, int]]:
                """{object id: (class value, pixels)} of the objects that hold pixels."""
                return {int(k): tuple(v) for k, v in page.evaluate("""() => {
                    const n = {};
                    editor.objects.forEach(id => { if (id) n[id] = (n[id] || 0) + 1; });
                    const out = {};
                    Object.keys(n).forEach(id => { out[id] = [editor.objectClass[id], n[id]]; });
                    return out;
                }""").items()}

            def click(x: float, y: float, shift: bool = False) -> None:
                if shift:
                    page.keyboard.down("Shift")
                page.mouse.click(*at(x, y))
                if shift:
                    page.keyboard.up("Shift")

            page.fill("#brush-size", "10")
            page.dispatch_event("#brush-size", "input")
            page.keyboard.press("1")
            page.keyboard.press("b")
            stroke([(20, 40), (80, 40)])  # a new object of class 1, selected as it is drawn
            page.keyboard.press("Escape")  # the next stroke starts another object
            stroke([(130, 40), (200, 40)])
            page.keyboard.press("2")
            stroke([(20, 120), (200, 120)])
            drawn = objects()
            assert sorted(v[0] for v in drawn.values()) == [1, 1, 2] and len(drawn) == 3, drawn

            # select the two class-1 objects (Shift+click adds) and merge them (M)
            page.keyboard.press("v")
            click(50, 40)
            click(160, 40, shift=True)
            assert page.evaluate("editor.selected.size") == 2
            page.screenshot(path=str(shots / "objects-selected.png"))
            page.keyboard.press("m")
            merged = objects()
            assert len(merged) == 2 and sorted(v[0] for v in merged.values()) == [1, 2], merged
            one = next(k for k, v in merged.items() if v[0] == 1)
            assert merged[one][1] == sum(v[1] for v in drawn.values() if v[0] == 1)

            # erase a line across the class-2 object, then split it (X) into its two parts
            click(40, 120)
            two = page.evaluate("[...editor.selected][0]")
            page.keyboard.press("e")
            page.fill("#brush-size", "6")
            page.dispatch_event("#brush-size", "input")
            stroke([(110, 100), (110, 140)])
            page.keyboard.press("x")
            split = objects()
            assert len(split) == 3 and sorted(v[0] for v in split.values()) == [1, 2, 2], split
            assert "Split #" in page.inner_text("#status")

            # delete the left part (Delete): two objects stay
            page.keyboard.press("v")
            click(40, 120)
            left = page.evaluate("[...editor.selected][0]")
            assert left in split and split[left][0] == 2
            page.keyboard.press("Delete")
            kept = objects()
            assert sorted(kept) == sorted(k for k in split if k != left) and two in split
            page.keyboard.press("Control+z")  # undo brings it back, redo takes it away again
            assert objects() == split
            page.keyboard.press("Control+Shift+z")
            assert objects() == kept
            # C gives the selected object the picked class; undo takes it back
            page.keyboard.press("v")
            click(160, 120)
            right = page.evaluate("[...editor.selected][0]")
            page.keyboard.press("1")
            page.keyboard.press("c")
            assert objects()[right] == (1, kept[right][1])
            page.keyboard.press("Control+z")
            assert objects() == kept
            ids = page.evaluate("Array.from(editor.objects)")
            page.screenshot(path=str(shots / "objects-edited.png"))
            page.keyboard.press("Control+s")
            page.wait_for_function("document.querySelector('#status').textContent.includes('Saved as version 1')")

            page.reload()
            page.wait_for_selector("#editor[data-ready='1']")
            assert page.evaluate("Array.from(editor.objects)") == ids and objects() == kept
            # an unsaved new object survives a reload as a draft; undo goes back to the saved objects
            page.keyboard.press("3")
            page.keyboard.press("b")
            stroke([(20, 80), (60, 80)])
            page.wait_for_function("editor.draft === 'kept'")
            drafted = objects()
            assert len(drafted) == 3 and sorted(v[0] for v in drafted.values()) == [1, 2, 3]
            page.reload()
            page.wait_for_selector("#editor[data-ready='1']")
            assert page.evaluate("editor.draft") == "restored" and objects() == drafted
            page.keyboard.press("Control+z")
            assert objects() == kept
            listed = page.evaluate("JSON.parse(document.querySelector('#class-colors').textContent)")
            names = {c["value"]: c["name"] for c in listed}
            assert not errors, errors
            browser.close()
        # the saved objects through the API: the same ids, each with its class; and as instances of the data set
        table = server.api("GET", f"/api/datasets/{ds}/photos/new.jpg/objects")["objects"]
        assert table == {str(k): names[v[0]] for k, v in kept.items()}
        with urllib.request.urlopen(f"{server.base}/datasets/{ds}/photos/new.jpg/objects.png", timeout=30) as answer:
            saved = np.asarray(Image.open(io.BytesIO(answer.read())))
        assert np.array_equal(saved.ravel(), np.asarray(ids, np.uint8))
        root = next((tmp_path / "data" / "datasets").rglob("objects")).parent
        sample = next(s for s in load_dataset(root).samples if Path(s.image_path).name == "new.jpg")
        assert sorted(r.label for r in sample.regions if r.is_instance) == sorted(names[v[0]] for v in kept.values())
    finally:
        server.stop()
    if os.environ.get("MASKSMITH_DOCS_IMAGES") == "1":
        shutil.copy(shots / "objects-selected.png", DOCS_IMAGES / "web-editor-objects.png")
