"""`masksmith report`: one self-contained HTML page per run. It parses, holds every section, embeds every
picture of the run, shows all of config.yaml, and opens offline in Debian's Chromium (headless screenshot)."""

from __future__ import annotations

import base64
import json
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import TrainedRun, copy_run
from masksmith import service
from masksmith.core.runfolder import evaluation_folder
from masksmith.data.synthetic import make_sample_dataset
from masksmith.html_report import SECTIONS, render_report, report_sections, write_report

CHROMIUM = Path("/usr/bin/chromium")
# the browser set-up the web app's tests use too: the system's Chromium, never a downloaded one
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@pytest.fixture(scope="module")
def run(semantic_run: TrainedRun, tmp_path_factory) -> Path:
    """A copy of the session's semantic run (tests/conftest.py) evaluated on a second data set, with a training
    plan in config.yaml (as the planner records one) that the report must show without knowing its fields."""
    root = tmp_path_factory.mktemp("report")
    street = make_sample_dataset(root / "street", n_images=4, size=(80, 60), seed=6)
    run = copy_run(semantic_run, root / "runs")
    with (run / "config.yaml").open("a", encoding="utf-8") as f:
        f.write("plan:\n  reason: few images\n  phases:\n  - {name: warm-up, epochs: 1}\n")
    service.evaluate(run / "model.masksmith", street, evaluation_folder(run, street), worst=2)
    return run


class Page(HTMLParser):
    """The parts of a page the tests look at; raises on a tag closed out of order."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.ids: list[str] = []
        self.images: list[dict[str, str]] = []
        self.tags: Counter[str] = Counter()
        self.urls: list[str] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()
        assert not self.stack, f"unclosed tags: {self.stack}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags[tag] += 1
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "img":
            self.images.append(a)
        self.urls += [a[k] for k in ("src", "href") if k in a]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else ''}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def expected_pictures(run: Path) -> list[Path]:
    pictures = [run / "curves.png", sorted((run / "previews").glob("epoch_*.png"))[-1]]
    for name in ("validation", "street"):
        pictures += [run / "evaluation" / name / f for f in ("confusion.png", "worst.png", "best.png")]
    return pictures


def test_the_page_parses_and_holds_every_section(run: Path) -> None:
    page = Page(render_report(run))
    sections = [i for i in page.ids if i in SECTIONS]
    assert sections == list(SECTIONS)
    assert {"evaluation-validation", "evaluation-street"} <= set(page.ids)
    assert page.tags["script"] == 0 and page.tags["link"] == 0 and page.tags["iframe"] == 0
    assert all(u.startswith(("data:", "#")) for u in page.urls), [u[:60] for u in page.urls]


def test_every_picture_is_embedded(run: Path) -> None:
    page = Page(render_report(run))
    embedded = Counter()
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,") and img["alt"]
        embedded[base64.b64decode(img["src"].split(",", 1)[1])] += 1
    assert embedded == Counter(p.read_bytes() for p in expected_pictures(run))


def test_sections_show_the_data_configuration_and_scores(run: Path) -> None:
    sections = {s.id: s.html for s in report_sections(run)}
    data = json.loads((run / "data.json").read_text())
    text = " ".join(Page(sections["data"]).text)
    assert "16 in the data set: 12 for training, 4 for validation" in text
    assert all(c["name"] in text for c in data["classes"])
    config = " ".join(Page(sections["configuration"]).text)
    for key in ("data", "arch", "epochs", "plan.reason", "plan.phases[0].name", "plan.phases[0].epochs"):
        assert key in config, key
    assert "warm-up" in config and "few images" in config
    evaluation = Page(sections["evaluation"])
    words = " ".join(evaluation.text)
    for name in ("background", "body", "wheel", "window", "light"):
        assert name in words
    street = json.loads((run / "evaluation" / "street" / "metrics.json").read_text())
    worst = street["worst_images"][0]
    assert worst["image"] in words and f"{worst['score']:.3f}" in words  # the worst examples with their scores
    assert f"{street['at_full_size']['miou']:.3f}" in words


def test_one_renderer_for_the_page_and_the_web_app(run: Path) -> None:
    html = render_report(run)
    for section in report_sections(run):
        assert section.html.strip() and section.html.strip() in html


def test_written_at_the_end_of_training_and_of_evaluate(run: Path) -> None:
    written = (run / "report.html").read_text(encoding="utf-8")
    assert 'id="evaluation-street"' in written  # rewritten by the evaluation that came after training
    assert write_report(run) == run / "report.html"


def test_the_cli_writes_the_report_where_asked(run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from masksmith.cli import main

    def cli(*args: str) -> int:
        monkeypatch.setattr(sys, "argv", ["masksmith", *args])
        try:
            main()
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    assert cli("report", str(run / "model.masksmith"), "--out", str(tmp_path / "share" / "shared.html")) == 0
    assert "shared.html" in capsys.readouterr().out
    assert 'id="evaluation-street"' in (tmp_path / "share" / "shared.html").read_text(encoding="utf-8")
    (tmp_path / "mine.html").write_text("not ours")
    assert cli("report", str(run), "--out", str(tmp_path / "mine.html")) == 2
    assert "not written by masksmith" in capsys.readouterr().err
    assert cli("report", str(tmp_path)) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_evaluations_of_different_data_sets_keep_their_own_folders(run: Path, tmp_path: Path) -> None:
    street = run.parent.parent / "street"
    assert evaluation_folder(run, street) == run / "evaluation" / "street"  # the same data set: its folder
    other = tmp_path / "elsewhere" / "street"
    other.mkdir(parents=True)
    assert evaluation_folder(run, other) == run / "evaluation" / "street-2"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium")
def test_the_page_opens_offline_in_chromium(run: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    outside = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.route("**/*", lambda route: (outside.append(route.request.url), route.abort())
                       if not route.request.url.startswith(("file:", "data:")) else route.continue_())
            page.goto((run / "report.html").resolve().as_uri(), wait_until="load")
            loaded = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
            sections = page.evaluate("Array.from(document.querySelectorAll('main > section')).map(s => s.id)")
            title = page.title()
            shot = tmp_path / "report-screenshot.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert outside == []  # nothing asked of the network
    assert len(loaded) == len(expected_pictures(run)) and all(loaded)
    assert sections == list(SECTIONS) and title == f"masksmith report: {run.name}"
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size[0] == 1200 and im.size[1] > 2000  # the whole page, pictures laid out
