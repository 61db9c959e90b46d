"""Pictures say what they show: palette, outlined overlays, the difference view, legends, titled sheets,
truth and prediction drawn alike, object tags, and the metadata a saved picture carries."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from masksmith.core.labels import CLASS_PALETTE, MAX_CLASSES, VOID_COLOR, ClassMap, class_color
from masksmith.data.schema import make_classes
from masksmith.draw import (
    COLUMNS,
    comparison_sheet,
    difference,
    instance_row,
    legend,
    overlay,
    read_picture_info,
    render_instances,
    semantic_row,
    sheet,
)
from masksmith.draw.overlay import DARK, WRONG
from masksmith.draw.sheet import BACKGROUND
from masksmith.evaluate.metrics import describe_confusions, top_confusions


def _lab(colors) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(colors, np.float64)[None] / 255.0)[0]


def _contrast(color, other) -> float:
    """WCAG contrast ratio between two sRGB colours."""
    def lum(c):
        c = np.asarray(c, np.float64) / 255.0
        c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    a, b = sorted((lum(color), lum(other)), reverse=True)
    return (a + 0.05) / (b + 0.05)


# ------------------------------------------------------------------------------------------------ palette
def test_default_palette_is_bright_and_well_separated() -> None:
    colors = [class_color(i) for i in range(1, 21)]
    lab = _lab(colors)
    assert (lab[:, 0] >= 50).all(), "every default colour is light enough to read on a dark photo"
    assert (np.hypot(lab[:, 1], lab[:, 2]) >= 25).all(), "no grey: every default colour is a colour"
    neighbours = np.linalg.norm(lab[1:] - lab[:-1], axis=1)
    assert neighbours.min() >= 35, neighbours
    d = np.linalg.norm(lab[:, None] - lab[None], axis=2) + np.eye(20) * 1e3
    assert d[:18, :18].min() >= 35  # 18 classes (car parts) all far apart: no five near-identical blues
    assert d.min() >= 30  # no two of the first 20 alike
    hues = np.degrees(np.arctan2(lab[:18, 2], lab[:18, 1])) % 360
    blue = (hues > 200) & (hues < 300)
    assert blue.sum() <= 4, colors  # blues are easy to confuse: few of them


def test_every_class_up_to_the_limit_has_its_own_colour() -> None:
    colors = [class_color(i) for i in range(1, MAX_CLASSES + 1)]
    assert len(set(colors)) == MAX_CLASSES  # colour masks need it
    assert (0, 0, 0) not in colors and VOID_COLOR not in colors
    assert class_color(0) == (0, 0, 0) and tuple(colors[:20]) == CLASS_PALETTE


def test_a_single_class_stands_out_on_dark_and_light_photos() -> None:
    (only,) = make_classes(["scratch"])
    assert only.color == class_color(1)
    assert _contrast(only.color, (0, 0, 0)) >= 4.5 and _contrast(only.color, (255, 255, 255)) >= 3.0


def test_the_data_sets_own_colours_win() -> None:
    classes = make_classes(["car", "road", "sky"], {"road": (10, 20, 30)})
    assert [c.color for c in classes] == [class_color(1), (10, 20, 30), class_color(3)]


# ----------------------------------------------------------------------------------------------- overlays
def _square_mask(size: int = 40, lo: int = 10, hi: int = 30) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[lo:hi, lo:hi] = 1
    return mask


@pytest.mark.parametrize("shade", [0, 255])
def test_overlay_outlines_each_region_dark_then_in_its_colour(shade: int) -> None:
    image = np.full((40, 40, 3), shade, np.uint8)
    color = (255, 56, 200)
    out = overlay(image, _square_mask(), [(0, 0, 0), color], opacity=0.5)
    assert (out[:10] == shade).all() and (out[:, :10] == shade).all()  # background keeps the photo
    assert (out[10, 10:30] == DARK).all() and (out[29, 10:30] == DARK).all()  # the region's outermost pixels
    assert (out[11, 11:29] == color).all() and (out[11:29, 11] == color).all()  # a solid line of the colour
    inner = out[12:28, 12:28].reshape(-1, 3)
    expected = np.round(0.5 * shade + 0.5 * np.asarray(color)).astype(np.uint8)
    assert (np.abs(inner.astype(int) - expected) <= 1).all()  # the blend inside


def test_overlay_outline_grows_with_the_picture() -> None:
    mask = _square_mask(900, 100, 800)
    out = overlay(np.zeros((900, 900, 3), np.uint8), mask, [(0, 0, 0), (0, 200, 255)])
    assert (out[100:102, 400] == DARK).all() and (out[102:104, 400] == (0, 200, 255)).all()


def test_difference_marks_exactly_the_wrong_pixels() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    truth = rng.integers(0, 3, (30, 40)).astype(np.uint8)
    truth[:5] = 255  # void: never wrong
    pred = truth.copy()
    pred[10:20, 10:30] = (pred[10:20, 10:30] + 1) % 3
    pred[:5] = 1
    out = difference(image, truth, pred)
    wrong = np.zeros(truth.shape, bool)
    wrong[10:20, 10:30] = True
    marked = (out == WRONG).all(axis=2) | (out == DARK).all(axis=2)
    assert np.array_equal(marked, wrong)
    assert (out[~wrong][:, 0] == out[~wrong][:, 1]).all()  # the rest is the photo in grey
    assert not (difference(image, truth, truth) == WRONG).all(axis=2).any()


def test_truth_and_prediction_panels_have_the_same_size_and_rendering() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (90, 150, 3), dtype=np.uint8)
    truth = np.zeros((90, 150), np.uint8)
    truth[20:70, 30:120] = 1
    truth[40:60, 50:80] = 2
    colors = [(0, 0, 0), class_color(1), class_color(2)]
    photo, drawn_truth, drawn_pred, diff = semantic_row(image, truth, truth, colors, cell=120)
    assert photo.shape == drawn_truth.shape == drawn_pred.shape == diff.shape == (72, 120, 3)
    assert np.array_equal(drawn_truth, drawn_pred)  # same mask -> the same picture: one way of drawing
    assert not (diff == WRONG).all(axis=2).any()
    pred = np.zeros_like(truth)
    pred[20:70, 30:120] = 1
    row = semantic_row(image, truth, pred, colors, cell=120)
    assert np.array_equal(row[1], drawn_truth) and not np.array_equal(row[2], drawn_truth)
    assert (row[3] == WRONG).all(axis=2).any()


# ------------------------------------------------------------------------------------- legends and sheets
def test_legend_entries_equal_the_class_list_and_wrap_for_many_classes() -> None:
    names = [f"class_{k:02d}_part" for k in range(25)]
    colors = [class_color(k + 1) for k in range(25)]
    pic = legend(names, colors, width=500)
    assert [e.name for e in pic.legend] == names
    assert len({e.box[1] for e in pic.legend}) > 1  # wrapped onto several lines
    for e in pic.legend:
        x0, y0, x1, y1 = e.box
        assert 0 <= x0 < x1 <= 500 and y1 <= pic.pixels.shape[0]
        sx0, sy0, sx1, sy1 = e.swatch
        assert (pic.pixels[sy0 + 2:sy1 - 2, sx0 + 2:sx1 - 2] == e.color).all()  # the swatch is the colour
    boxes = [e.box for e in pic.legend]
    for i, a in enumerate(boxes):  # no two entries overlap
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_a_long_class_name_is_shortened_to_fit() -> None:
    pic = legend(["a" * 200], [(255, 0, 0)], width=200)
    assert pic.legend[0].name.endswith("\u2026") and pic.legend[0].box[2] <= 200


def test_sheet_has_its_title_column_titles_captions_and_legend(tmp_path: Path) -> None:
    panels = [[np.full((50, 80, 3), 90, np.uint8)] * 3, [np.full((80, 40, 3), 160, np.uint8)] * 3]
    pic = sheet(panels, ["photo", "truth", "prediction"], title="epoch 3/10 \u00b7 validation mIoU 0.612",
                captions=["car_1.jpg \u00b7 mIoU 0.50", "car_2.jpg \u00b7 mIoU 0.70"],
                classes=ClassMap(("body", "wheel"), ((0, 0, 255), (255, 0, 0))), cell=96)
    roles = {}
    for t in pic.texts:
        roles.setdefault(t.role, []).append(t.text)
    assert roles == {"title": ["epoch 3/10 \u00b7 validation mIoU 0.612"], "column": ["photo", "truth", "prediction"],
                     "caption": ["car_1.jpg \u00b7 mIoU 0.50", "car_2.jpg \u00b7 mIoU 0.70"]}
    for t in pic.texts:  # something is drawn where each text is said to be
        x0, y0, x1, y1 = t.box
        assert (pic.pixels[y0:y1, x0:x1] != BACKGROUND).any(axis=2).sum() > 10, t.text
    assert [e.name for e in pic.legend] == ["body", "wheel"]
    for p in pic.panels:  # each panel is where the picture says
        x0, y0, x1, y1 = p.box
        assert (pic.pixels[y0:y1, x0:x1] == (90 if p.row == 0 else 160)).all()
    assert [p.title for p in pic.panels[:3]] == ["photo", "truth", "prediction"]

    path = tmp_path / "sheet.png"
    Image.fromarray(pic.pixels).save(path, **pic.save_options())
    assert read_picture_info(path) == pic.info()
    with Image.open(path) as im:
        assert im.text["Title"] == pic.title and "classes: body, wheel" in im.text["Description"]


def test_comparison_sheet_uses_the_shared_column_titles() -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    mask = _square_mask()
    pic = comparison_sheet([semantic_row(image, mask, mask, [(0, 0, 0), (255, 0, 0)], 64)], title="t",
                           captions=["a.png"], classes=ClassMap(("box",), ((255, 0, 0),)), cell=200)
    assert [t.text for t in pic.texts if t.role == "column"] == list(COLUMNS)


# ---------------------------------------------------------------------------------------------- instances
def _objects():
    wheel = np.zeros((60, 100), bool)
    wheel[30:50, 10:30] = True
    body = np.zeros((60, 100), bool)
    body[10:40, 20:90] = True
    return [SimpleNamespace(label="wheel", score=0.93, mask=wheel, box=(10, 30, 30, 50)),
            SimpleNamespace(label="body", score=0.5, mask=body, box=(20, 10, 90, 40))]


def test_each_object_is_tagged_with_its_class_and_score() -> None:
    image = np.full((60, 100, 3), 128, np.uint8)
    pixels, tags = render_instances(image, _objects(), {"wheel": (255, 0, 0), "body": (0, 0, 255)})
    assert sorted(t.text for t in tags) == ["body 0.50", "wheel 0.93"]
    for t in tags:
        x0, y0, x1, y1 = t.box
        assert (pixels[y0:y1, x0:x1] != 128).any()
    _, truth_tags = render_instances(image, _objects(), show_scores=False)
    assert sorted(t.text for t in truth_tags) == ["body", "wheel"]
    assert (pixels[45, 15] != 128).all() and (pixels[45, 15, 0] > pixels[45, 15, 2])  # the wheel in red


def test_instance_rows_draw_truth_and_prediction_alike() -> None:
    image = np.full((60, 100, 3), 128, np.uint8)
    objects = _objects()
    truth = [SimpleNamespace(label=o.label, score=o.score, mask=o.mask, box=o.box) for o in objects]
    masks = np.zeros((60, 100), np.uint8)
    masks[objects[1].mask] = 1
    masks[objects[0].mask] = 2
    colors = {"body": (0, 0, 255), "wheel": (255, 0, 0)}
    panels, texts = instance_row(image, truth, objects, masks, masks, colors, cell=200)
    assert panels[1].shape == panels[2].shape == (120, 200, 3)
    # same objects -> same masks and outlines; only the tags differ (scores on the prediction)
    differs = (panels[1] != panels[2]).any(axis=2)
    tag_area = np.zeros_like(differs)
    for t in texts[1] + texts[2]:
        x0, y0, x1, y1 = t.box
        tag_area[y0:y1, x0:x1] = True
    assert not (differs & ~tag_area).any()
    assert [t.text for t in texts[2]] and all(" 0." in t.text for t in texts[2])
    assert not (panels[3] == WRONG).all(axis=2).any()


# ------------------------------------------------------------------------------------------- confusions
def test_top_confusions_name_the_largest_mistakes_with_their_share() -> None:
    m = np.array([[100, 5, 0], [30, 60, 10], [0, 0, 50]])
    found = top_confusions(m, ["background", "window", "body"], count=2)
    assert found == [{"true": "window", "predicted": "background", "pixels": 30, "share": 0.3},
                     {"true": "window", "predicted": "body", "pixels": 10, "share": 0.1}]
    assert describe_confusions(found) == "window\u2192background 30 %, window\u2192body 10 %"
    assert top_confusions(np.diag([5, 5]), ["a", "b"]) == []


def test_tags_of_neighbouring_objects_do_not_cover_each_other_and_stay_readable() -> None:
    image = np.full((80, 120, 3), 200, np.uint8)
    mask = np.zeros((80, 120), bool)
    mask[30:60, 30:90] = True
    same_box = [SimpleNamespace(label=n, score=s, mask=mask, box=(30, 30, 90, 60))
                for n, s in (("body", 0.9), ("door", 0.8), ("hood", 0.7))]
    pixels, tags = render_instances(image, same_box, {"body": (0, 0, 140), "door": (255, 230, 0), "hood": (0, 200, 0)})
    boxes = [t.box for t in tags]
    for i, a in enumerate(boxes):
        assert a[0] >= 0 and a[2] <= 120 and a[1] >= 0 and a[3] <= 80
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    dark_tag = next(t for t in tags if t.text.startswith("body")).box
    light_tag = next(t for t in tags if t.text.startswith("door")).box
    assert (pixels[dark_tag[1]:dark_tag[3], dark_tag[0]:dark_tag[2]] == 255).all(axis=2).any()  # white on navy
    assert (pixels[light_tag[1]:light_tag[3], light_tag[0]:light_tag[2]] < 60).all(axis=2).any()  # dark on yellow


@pytest.mark.parametrize("side", [1, 3, 5, 9, 21, 41])
def test_square_filters_equal_scipys(side: int) -> None:
    """The outlines' max/min filters (numpy, so predict never imports scipy) give scipy.ndimage's answers."""
    from scipy import ndimage

    from masksmith.draw.overlay import _square_filter

    rng = np.random.default_rng(side)
    for shape in ((37, 53), (5, 80), (60, 3)):
        m = rng.integers(0, 5, shape).astype(np.uint8)
        assert (_square_filter(m, side, np.maximum, True) == ndimage.maximum_filter(m, size=side, mode="nearest")).all()
        assert (_square_filter(m, side, np.minimum, True) == ndimage.minimum_filter(m, size=side, mode="nearest")).all()
        b = m > 3
        assert (_square_filter(b, side, np.maximum, False)
                == ndimage.maximum_filter(b, size=side, mode="constant", cval=False)).all()
