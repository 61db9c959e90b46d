"""The web app as a newcomer meets it (issue 25), in Debian's Chromium against a real `masksmith serve`: the data
set page's health check on a set with a rare class, the train page's suggested budget, "try it" counting a
part only above the confidence asked and disabling what cannot work, a zip with missing images counted as
what it holds, a server restart with a live page open, the one clock across Stop and Resume, every page on a
390x844 phone without sideways scrolling, an upload by keyboard alone, and axe-core on every page."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import CHROMIUM, CHROMIUM_ARGS, Server, axe_script, needs_chromium, page_width, serious_findings

pytestmark = [pytest.mark.slow, needs_chromium]
sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")


# ------------------------------------------------------------------------------------------------ the data
def rare_light_dataset(root: Path) -> Path:
    """30 sample cars whose "light" is annotated on 3 photos only, all of them in the training part, so the
    validation photos (the seeded split training makes) score no light."""
    from masksmith.data import load_dataset
    from masksmith.data.split import training_split
    from masksmith.data.synthetic import make_sample_dataset

    folder = make_sample_dataset(root, n_images=30, size=(160, 120))
    validation = {s.name for s in training_split(load_dataset(folder), 0.15, 0).val}
    coco = json.loads((folder / "annotations.json").read_text())
    light = next(c["id"] for c in coco["categories"] if c["name"] == "light")
    names = {i["id"]: i["file_name"] for i in coco["images"]}
    keep = [i for i in sorted(names) if names[i] not in validation][:3]
    coco["annotations"] = [a for a in coco["annotations"] if a["category_id"] != light or a["image_id"] in keep]
    (folder / "annotations.json").write_text(json.dumps(coco))
    return folder


def unsure_model_run(data_dir: Path, store) -> int:
    """A finished run whose model paints every pixel "body" with 38 % confidence (softmax of 0, 0.2, 0): a part
    the page must not count at the default 50 %, and count at 35 %."""
    import torch

    from masksmith.core.outputs import atomic_write_text
    from masksmith.models.artifact import ModelArtifact, save_artifact
    from masksmith.models.semantic import ModelConfig, SegmentationNet, build_model
    from masksmith.train.config import TrainConfig

    config = ModelConfig(arch="baseline", num_outputs=3, encoder_weights=None)
    net = SegmentationNet(build_model(config, pretrained=False), (0.5,) * 3, (0.5,) * 3)
    state = net.state_dict()
    last = [k for k, v in state.items() if v.shape[:1] == (3,) and v.ndim in (1, 4)][-2:]
    for key in last:  # the last layer: weights 0, biases (0, 0.2, 0): the same scores on every pixel
        state[key] = torch.zeros_like(state[key]) if state[key].ndim == 4 else torch.tensor([0.0, 0.2, 0.0])
    net.load_state_dict(state)
    folder = data_dir / "runs" / "unsure"
    atomic_write_text(folder / "config.yaml", TrainConfig(data="x", arch="baseline").to_yaml())
    save_artifact(ModelArtifact(task="semantic", model=config.to_dict(), classes=["body", "wheel"],
                                colors=[[0, 0, 0], [255, 56, 200], [0, 255, 0]],
                                preprocessing={"mean": [0.5] * 3, "std": [0.5] * 3, "input_mode": "resize",
                                               "size": [64, 64]}, state_dict=net.state_dict()),
                  folder / "model.masksmith")
    ds_id = store.add_dataset("unsure-data", "x", None, "folder", "coco", {})
    run_id = store.add_run("unsure", store.dataset(ds_id), folder, "semantic", "baseline")
    store.update_run(run_id, state="finished")
    return run_id


def photo(path: Path, w: int = 120, h: int = 90) -> Path:
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


# -------------------------------------------------------------------------- one server for the read-only pages
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A server with a data set with a rare class, a model that is never sure, and a small real training
    (20 s, random weights) finished, for the pages to be looked at."""
    from masksmith.web.store import Store

    root = tmp_path_factory.mktemp("site")
    data_dir = root / "data"
    store = Store(data_dir)
    unsure = unsure_model_run(data_dir, store)
    store.close()
    server = Server(data_dir, root / "server.log").start()
    try:
        rare = server.api("POST", "/api/datasets/folder", {"path": str(rare_light_dataset(root / "rare")),
                                                           "name": "rare lights"})
        run = server.api("POST", "/api/runs", {"dataset": rare["id"], "seconds": 20, "size": 64, "batch_size": 4,
                                               "model": "baseline", "pretrained": False, "name": "tiny"})
        wait_for(lambda: server.api("GET", "/api/health") and _state(server, run["id"]) == "finished", 300,
                 "the tiny training to finish")
        yield {"server": server, "base": server.base, "rare": rare["id"], "unsure": unsure, "run": run["id"],
               "root": root}
    finally:
        server.kill_trainings()
        server.stop()


def _state(server: Server, run_id: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"{server.base}/runs/{run_id}", timeout=30) as page:
        return re.search(r'id="state" data-state="(\w+)"', page.read().decode()).group(1)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], errors


# -------------------------------------------------------------------------------------------------- 1. health
def test_the_data_set_page_is_a_health_check(site, page) -> None:
    page.goto(f"{site['base']}/datasets/{site['rare']}")
    health = page.inner_text("#health")
    assert "Classes with few examples" in health and re.search(r"light \(\d+ in 3 photos\)", health)
    assert "leave unscored" in health and "no light" in health  # the validation photos have none
    assert "30" in page.inner_text("#usable-images")


def test_the_train_page_suggests_a_budget(site, page, monkeypatch) -> None:
    page.goto(f"{site['base']}/train?dataset={site['rare']}")
    page.wait_for_function("document.querySelector('#suggestion-text').textContent.includes('needs about')",
                           timeout=240_000)
    # the library's suggestion as the server gives it (its measured speed is reused for a few minutes)
    expected = page.evaluate(f"fetch('/api/datasets/{site['rare']}/budget?task=semantic&model=unet')"
                             ".then(r => r.json())")
    text = page.inner_text("#suggestion-text")
    assert f"about {expected['good_minutes']:g} min" in text and f"{expected['usable_minutes']:g} min" in text
    page.click("#use-good")
    assert float(page.input_value("#minutes")) == expected["good_minutes"]
    assert "good masks" in page.inner_text("#expect")
    page.fill("#minutes", str(min(expected["tiers"][2]["minutes"], 0.5) / 2))
    page.dispatch_event("#minutes", "input")
    assert "too short" in page.inner_text("#expect") or "rough" in page.inner_text("#expect")


# ----------------------------------------------------------------------------------------------- 2. try it
def test_a_part_counts_as_found_only_above_the_confidence_asked(site, page, tmp_path: Path) -> None:
    page.goto(f"{site['base']}/models/{site['unsure']}/try")
    page.set_input_files("#photos", str(photo(tmp_path / "street.png")))
    page.wait_for_selector(".result .found")
    card = ".result"
    assert "none of its parts" in page.inner_text(f"{card} .found")
    assert "body (found with 38 % confidence, below the 50 % asked)" in page.inner_text(f"{card} .not-counted")
    assert page.is_disabled(f"{card} .recolor-go") and page.is_disabled(f"{card} .wheels-go")
    assert "needs a part the model found" in page.inner_text(f"{card} .recolor-why")
    page.locator("#min-confidence").fill("0.35")
    found = page.inner_text(f"{card} .found")
    assert "body (1 object, 38 % sure)" in found
    assert not page.is_disabled(f"{card} .recolor-go")
    options = page.eval_on_selector_all(f"{card} .recolor-class option", "os => os.map(o => [o.value, o.disabled])")
    assert options == [["body", False], ["wheel", True]]
    # a click on a legend entry shows that part alone, a second click all of them again
    page.click(".legend-item[data-class=body]")
    assert page.get_attribute(f"{card} img.mask", "src").endswith("layer.png?only=body")
    assert page.get_attribute(".legend-item[data-class=body]", "aria-pressed") == "true"
    page.click(".legend-item[data-class=body]")
    assert page.get_attribute(f"{card} img.mask", "src").endswith("layer.png")


# ----------------------------------------------------------------------------------------- 3. missing images
def test_a_zip_with_missing_images_counts_what_it_holds(site, page, tmp_path: Path) -> None:
    from masksmith.data.archive import zip_folder
    from masksmith.data.synthetic import make_sample_dataset

    cars = make_sample_dataset(tmp_path / "cars", n_images=60, size=(96, 72))
    for image in sorted((cars / "images").glob("*.jpg"))[10:]:
        image.unlink()  # 50 of 60 photos missing
    page.goto(f"{site['base']}/datasets")
    page.set_input_files("#zip-file", str(zip_folder(cars, tmp_path / "cars.zip")))
    page.click("#zip-upload")
    page.wait_for_url("**/datasets/*", timeout=120_000)
    facts = page.inner_text("#usable-images")
    assert "10" in facts and "of 60 listed" in facts
    health = page.inner_text("#health")
    assert "Images missing" in health and "50 of the 60 images" in health and "so 10 can be used" in health
    page.click("#skipped summary")
    assert page.locator("#skipped li").count() == 50
    assert page.inner_text("#train-this") == "Train anyway"
    assert "/tmp" not in page.content()  # never a path of the server's machine


# ------------------------------------------------------------------------------------- 8. phones, 9. keyboard
def pages(site) -> list[str]:
    return ["/datasets", f"/datasets/{site['rare']}", f"/train?dataset={site['rare']}", f"/runs/{site['run']}",
            "/models", f"/models/{site['run']}", f"/models/{site['run']}/try"]


def test_every_page_fits_a_phone(site, browser, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    for path in pages(site):
        page.goto(site["base"] + path)
        page.wait_for_load_state("load")
        if path.endswith("/try"):  # with a result on it
            page.set_input_files("#photos", str(photo(tmp_path / "car.png", 400, 300)))
            page.wait_for_selector(".result .found")
        if path.startswith("/models/") and not path.endswith("/try"):
            page.click("#details summary")  # the folded report too
        width = page_width(page)
        assert width <= 390, f"{path} scrolls sideways: {width} px on a 390 px screen"
        assert str(site["server"].data_dir) not in page.content(), f"{path} shows the server's data folder"
        page.screenshot(path=str(tmp_path / f"phone{path.replace('/', '_').replace('?', '_')}.png"), full_page=True)
    context.close()


def test_a_zip_can_be_uploaded_with_the_keyboard_alone(site, page, tmp_path: Path) -> None:
    from masksmith.data.archive import zip_folder
    from masksmith.data.synthetic import make_sample_dataset

    archive = zip_folder(make_sample_dataset(tmp_path / "kb", n_images=6, size=(96, 72)), tmp_path / "kb.zip")
    page.goto(f"{site['base']}/datasets")
    choosers: list = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))  # intercepted from now on: no race
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "zip-drop":
            break
    else:
        raise AssertionError("the drop zone cannot be reached with Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle + ' ' + "
                            "getComputedStyle(document.activeElement).outlineWidth")
    assert outline.split()[0] != "none" and float(outline.split()[1].rstrip("px")) >= 2, outline
    page.keyboard.press("Enter")
    for _ in range(60):
        if choosers:
            break
        page.wait_for_timeout(500)
    assert choosers, "Enter on the drop zone opened no file chooser"
    choosers[0].set_files(str(archive))
    assert "kb.zip" in page.inner_text("#zip-label")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "zip-name"
    page.keyboard.type("by keyboard")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "zip-upload"
    page.keyboard.press("Enter")
    page.wait_for_url("**/datasets/*", timeout=120_000)
    assert page.inner_text("h1") == "by keyboard"


def test_no_serious_accessibility_findings_on_any_page(site, page, tmp_path: Path) -> None:
    script = axe_script()
    found = {}
    for path in pages(site):
        page.goto(site["base"] + path)
        page.wait_for_load_state("load")
        if path.endswith("/try"):
            page.set_input_files("#photos", str(photo(tmp_path / "car.png")))
            page.wait_for_selector(".result .found")
        if path.startswith("/models/") and not path.endswith("/try"):
            page.click("#details summary")
        problems = serious_findings(page, script)
        if problems:
            found[path] = problems
    assert found == {}, json.dumps(found, indent=1)


# ------------------------------------------------------------------------ 4. a restart, 5. one clock
def test_a_restart_with_a_live_page_open_and_the_clock_across_stop_and_resume(tmp_path: Path, browser) -> None:
    from masksmith.data.synthetic import make_sample_dataset

    server = Server(tmp_path / "data", tmp_path / "server.log").start()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        folder = make_sample_dataset(tmp_path / "cars", n_images=12, size=(96, 72))
        ds = server.api("POST", "/api/datasets/folder", {"path": str(folder), "name": "cars"})
        run = server.api("POST", "/api/runs", {"dataset": ds["id"], "seconds": 240, "size": 64, "batch_size": 4,
                                               "model": "baseline", "pretrained": False})
        page.goto(server.base + run["url"])
        page.wait_for_function("document.querySelector('#epochs').textContent.includes(' 2 epoch')", timeout=240_000)
        # watch the bar and the clock from now on: every value the page shows
        page.evaluate("""() => {
            window.seen = [];
            const note = () => window.seen.push([parseFloat(document.querySelector('#bar').style.width),
                                                 parseFloat(document.querySelector('#elapsed').dataset.seconds),
                                                 document.querySelector('#state').dataset.state]);
            new MutationObserver(note).observe(document.querySelector('#progress'), {subtree: true, attributes: true});
            new MutationObserver(note).observe(document.querySelector('#elapsed'), {childList: true});
        }""")
        # 4. the server stops with the page open: at once, the page says so, and says when it is back
        assert server.stop() < 15, "the server hung on the open event stream"
        page.wait_for_function("!document.querySelector('#connection').hidden && "
                               "document.querySelector('#connection').textContent.includes('reconnecting')",
                               timeout=30_000)
        server.start()
        page.wait_for_function("document.querySelector('#connection').textContent.includes('Reconnected')",
                               timeout=60_000)
        # 5. Stop, then Resume: the clock goes on from where it was
        page.click("#stop")
        page.wait_for_function("document.querySelector('#state').dataset.state === 'stopped'", timeout=120_000)
        stopped_at = page.evaluate("parseFloat(document.querySelector('#elapsed').dataset.seconds)")
        page.click("#resume")
        page.wait_for_function("document.querySelector('#state').dataset.state === 'running'", timeout=60_000)
        page.wait_for_function("!document.querySelector('#resumed').hidden", timeout=60_000)
        epochs = int(re.search(r"(\d+) epoch", page.inner_text("#epochs")).group(1))
        page.wait_for_function(f"document.querySelector('#epochs').textContent.includes(' {epochs + 1} epoch')",
                               timeout=240_000)
        seen = page.evaluate("window.seen")
        page.reload()  # a page opened afresh shows the same clock
        assert float(page.eval_on_selector("#elapsed", "e => e.dataset.seconds")) >= stopped_at
        server.api("POST", f"/api/runs/{run['id']}/stop")
    finally:
        page.close()
        server.kill_trainings()
        if server.proc is not None and server.proc.poll() is None:
            server.stop()
    bars, clocks = [b for b, _, _ in seen], [c for _, c, _ in seen]
    assert len(seen) > 5 and "stopped" in {s for _, _, s in seen}
    assert all(b2 >= b1 for b1, b2 in zip(bars, bars[1:], strict=False)), bars  # the bar never goes back
    assert all(c2 >= c1 for c1, c2 in zip(clocks, clocks[1:], strict=False)), clocks  # nor the clock
