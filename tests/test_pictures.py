"""Pictures whatever the names and however thin the structures (issue 24): hostile class names never stop a
preview, CJK names are drawn with real glyphs, and thin structures keep their colour and their wrong pixels at
the gallery's scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from conftest import run_cli
from masksmith.core.labels import class_color
from masksmith.data.formats import coco
from masksmith.data.schema import Dataset, Region, Sample, make_classes
from masksmith.draw.compare import semantic_row
from masksmith.draw.overlay import DARK, WRONG, overlay, shrink_labels
from masksmith.draw.text import clean, draw_text, fit_text, font_files, text_box, text_width

HOSTILE = ["车门把手", "문 손잡이", "ドア", "מכונית ימין", "سيارة", "door\rhandle", "para\u2029graph",
           "left\u202eright",
           "e" + "\u0301" * 400 + "nd", "Z̸̢̛̗͚̈́a̷̢̜̋l̶̰̓g̴͎̈o̵̧̓", "lone\ud800surrogate", "$\\frac{a}$", "x" * 20000,
           "tab\tand\x1cseparators\x85"]


def ink(pixels: np.ndarray, box, background=(255, 255, 255)) -> int:
    x0, y0, x1, y1 = box
    return int((pixels[max(0, y0):y1, max(0, x0):x1] != background).any(axis=2).sum())


def glyph(text: str, size: int = 24) -> np.ndarray:
    canvas = Image.new("L", (4 * size, 2 * size), 0)
    draw_text(ImageDraw.Draw(canvas), (4, 4), text, size, fill=255)
    return np.asarray(canvas)


# ----------------------------------------------------------------------------------------------------- names
def test_cleaning_keeps_a_name_on_one_drawable_line() -> None:
    assert clean("door\rhandle") == "door handle" and clean("para\u2029graph") == "para graph"
    assert clean("left\u202eright") == "leftright"  # no override reorders what follows
    assert clean("lone\ud800x") == "lone\ufffdx"
    assert clean("e" + "\u0301" * 400) == "e\u0301\u0301"
    assert len(clean("x" * 20000)) == 513 and clean("x" * 20000).endswith("\u2026")
    assert clean("車門 ドア") == "車門 ドア"  # real names pass unchanged


@pytest.mark.parametrize("name", HOSTILE)
def test_no_name_stops_drawing_and_each_fits_its_width(name: str) -> None:
    shown = fit_text(name, 12, 150)
    assert text_width(shown, 12) <= 150
    canvas = Image.new("RGB", (160, 30), (255, 255, 255))
    box = draw_text(ImageDraw.Draw(canvas), (2, 2), shown, 12)
    assert ink(np.asarray(canvas), box) > 5


def test_cjk_names_are_drawn_with_real_glyphs_not_empty_boxes() -> None:
    assert [f.name for f in font_files()] == ["DejaVu Sans", "Noto Sans CJK JP"]
    missing = glyph("\U000f0000")  # a private-use character no font has: the empty box
    drawn = {c: glyph(c) for c in "车门把手문ド"}
    for c, pixels in drawn.items():
        assert pixels.sum() > 0 and not np.array_equal(pixels, missing), c
    assert len({p.tobytes() for p in drawn.values()}) == len(drawn)  # six different glyphs, not six boxes
    mixed = glyph("A车")  # one run per font, on one baseline
    assert mixed.sum() > glyph("A").sum()


def test_a_run_raqm_cannot_lay_out_is_drawn_with_basic_layout(monkeypatch) -> None:
    from masksmith.draw import text

    real = ImageFont.FreeTypeFont.getbbox

    def fails_with_raqm(self, *args, **kwargs):
        if self.layout_engine == ImageFont.Layout.RAQM:
            raise RuntimeError("raqm_layout() failed.")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ImageFont.FreeTypeFont, "getbbox", fails_with_raqm)
    text._font.cache_clear()
    canvas = Image.new("RGB", (200, 30), (255, 255, 255))
    box = draw_text(ImageDraw.Draw(canvas), (2, 2), "door handle", 12)
    assert ink(np.asarray(canvas), box) > 20
    text._font.cache_clear()


def test_dataset_preview_with_hostile_class_names(tmp_path: Path, monkeypatch, capsys) -> None:
    from masksmith.draw import read_picture_info

    # every hostile name a COCO file can store (a lone surrogate is refused by the writer: tests/formats)
    names = [n for n in HOSTILE if n != "lone\ud800surrogate"]
    root = tmp_path / "src"
    root.mkdir()
    samples = []
    for k in range(2):
        path = root / f"photo_{k}.png"
        Image.fromarray(np.full((80, 120, 3), 120, np.uint8)).save(path)
        regions = [Region(n, [np.array([[2 + 8 * j, 2], [8 + 8 * j, 2], [8 + 8 * j, 60], [2 + 8 * j, 60]])])
                   for j, n in enumerate(names)]
        samples.append(Sample(name=path.name, image_path=path, width=120, height=80, regions=regions))
    coco.write(Dataset(classes=make_classes(names), samples=samples, format="test", root=root), tmp_path / "c")
    out = tmp_path / "preview.png"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "dataset", "preview", tmp_path / "c", "--out", out)
    assert code == 0, stdout + stderr
    info = read_picture_info(out)
    pixels = np.asarray(Image.open(out).convert("RGB"))
    assert len(info["legend"]) == len(names)
    for entry, name in zip(info["legend"], names, strict=True):
        shown = entry["name"]
        assert shown == clean(name) or (shown.endswith("\u2026") and clean(name).startswith(shown[:-1].rstrip()))
        x0, y0, x1, y1 = entry["box"]
        assert x1 <= pixels.shape[1] and ink(pixels, (entry["swatch"][2] + 2, y0, x1, y1)) > 5, name


def test_confusion_matrix_labels_take_any_name(tmp_path: Path) -> None:
    from masksmith.core.outputs import OutputFolder
    from masksmith.draw.charts import plot_confusion, tick_label

    names = ["background", *HOSTILE]
    path = plot_confusion(np.eye(len(names)) * 5, names, OutputFolder(tmp_path), "confusion.png")
    assert Image.open(path).size[0] > 100
    assert tick_label("$x$") == r"\$x\$" and len(tick_label("y" * 500)) == 28


def test_object_tags_with_long_names_stay_on_the_picture() -> None:
    from masksmith.core.objects import Instance
    from masksmith.draw.instances import render_instances

    mask = np.zeros((60, 90), bool)
    mask[20:40, 30:60] = True
    _, tags = render_instances(np.zeros((60, 90, 3), np.uint8),
                               [Instance("门" * 3000, 0.9, mask, (30, 20, 60, 40))], {"门" * 3000: (200, 40, 40)})
    (tag,) = tags
    assert tag.box[0] >= 0 and tag.box[2] <= 90 and tag.text.endswith("\u2026")


def test_text_box_matches_what_is_drawn() -> None:
    canvas = Image.new("RGB", (200, 40), (255, 255, 255))
    box = draw_text(ImageDraw.Draw(canvas), (0, 0), "Wheel 车轮", 14)
    assert box == text_box("Wheel 车轮", 14)
    pixels = np.asarray(canvas)
    x0, y0, x1, y1 = box
    outside = pixels.copy()
    outside[y0:y1, x0:x1] = 255
    assert ink(pixels, box) > 30 and ink(outside, (0, 0, 200, 40)) == 0


# ----------------------------------------------------------------------------------------- thin structures
def vessels(size: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """A dark red photo with six lines 1 and 2 pixels wide (class 1) radiating from a disc (class 2)."""
    photo = Image.new("RGB", (size, size), (110, 40, 25))
    truth = Image.new("L", (size, size), 0)
    draw, label = ImageDraw.Draw(photo), ImageDraw.Draw(truth)
    label.ellipse([250, 250, 350, 350], fill=2)
    for k in range(6):
        angle = k * np.pi / 3 + 0.2
        end = (300 + 280 * np.cos(angle), 300 + 280 * np.sin(angle))
        start = (300 + 55 * np.cos(angle), 300 + 55 * np.sin(angle))
        label.line([start, end], fill=1, width=1 + k % 2)
        draw.line([start, end], fill=(190, 70, 50), width=1 + k % 2)
    return np.asarray(photo), np.asarray(truth)


COLORS = [(0, 0, 0), (60, 255, 60), (80, 120, 255)]


def test_thin_lines_keep_their_colour_in_the_full_size_overlay() -> None:
    photo, truth = vessels()
    out = overlay(photo, truth, COLORS, opacity=0.5)
    lines = truth == 1
    assert (out[lines] == COLORS[1]).all()  # solid colour, never the dark outline
    disc = truth == 2
    assert (out[disc] == DARK).all(axis=1).sum() > 100  # wide regions keep their outline


def test_thin_lines_keep_their_colour_and_stay_whole_at_the_gallery_scale() -> None:
    from scipy import ndimage

    photo, truth = vessels()
    row = semantic_row(photo, truth, truth, COLORS, cell=220)
    shrunk = shrink_labels(truth, row[1].shape[:2])
    lines = shrunk == 1
    assert ndimage.label(lines, structure=np.ones((3, 3)))[1] == 6  # six lines, not dashes
    on_colour = (row[1][lines] == COLORS[1]).all(axis=1).mean()
    assert on_colour > 0.95 and not (row[1][lines] == DARK).all(axis=1).any()
    nearest = np.asarray(Image.fromarray(truth).resize(row[1].shape[1::-1], Image.NEAREST)) == 1
    assert lines.sum() > 1.5 * nearest.sum()  # nearest neighbour alone loses most of a 1-pixel line


def test_missed_thin_lines_show_as_wrong_pixels_after_downscaling() -> None:
    photo, truth = vessels()
    prediction = np.where(truth == 1, 0, truth).astype(np.uint8)  # every vessel missed, the disc found
    prediction[10, 10] = 1  # and one wrong pixel far from anything
    diff = semantic_row(photo, truth, prediction, COLORS, cell=220)[3]
    red = (diff == WRONG).all(axis=2)
    lines = shrink_labels(truth, diff.shape[:2]) == 1
    assert red[lines].mean() > 0.95  # the whole of every missed line is marked
    scale = diff.shape[0] / truth.shape[0]
    y, x = int(10 * scale), int(10 * scale)
    assert red[max(0, y - 1):y + 2, max(0, x - 1):x + 2].sum() >= 3  # one wrong pixel grown to be seen
    found = semantic_row(photo, truth, truth, COLORS, cell=220)[3]
    assert not (found == WRONG).all(axis=2).any()


def test_a_thin_object_is_drawn_in_its_colour() -> None:
    from masksmith.core.objects import Instance
    from masksmith.draw.instances import render_instances

    mask = np.zeros((80, 120), bool)
    mask[40, 5:115] = True  # a wire one pixel wide
    pixels, _ = render_instances(np.zeros((80, 120, 3), np.uint8), [Instance("wire", 0.9, mask, (5, 40, 115, 41))],
                                 {"wire": (250, 200, 0)}, show_scores=False)
    assert (pixels[40, 5:115] == (250, 200, 0)).all()


def test_wide_regions_keep_their_outlines_and_corners() -> None:
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 1
    mask[5, 5:35] = 1  # a thin line beside it
    out = overlay(np.zeros((40, 40, 3), np.uint8), mask, [(0, 0, 0), (255, 56, 200)])
    assert (out[10, 10:30] == DARK).all() and (out[10:30, 10] == DARK).all()  # corners included
    assert (out[5, 5:35] == (255, 56, 200)).all()


def test_legend_of_many_cjk_classes_wraps(tmp_path: Path) -> None:
    from masksmith.draw import legend

    names = [f"部件{k}号" for k in range(30)]
    pic = legend(names, [class_color(k + 1) for k in range(30)], width=400)
    assert [e.name for e in pic.legend] == names and len({e.box[1] for e in pic.legend}) > 1
