"""The apps on generated data: recolour, paste, cluster, colours, pre-annotations, rank; and their CLI."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TrainedRun, run_cli
from masksmith.apps.cluster import cluster_image, palette_strip
from masksmith.apps.colors import dominant_colors, nearest_color_name
from masksmith.apps.colorspace import feather_weights, parse_color, to_lab, to_rgb
from masksmith.apps.paste import demo_rim, ellipse_of, paste_all, regions
from masksmith.apps.rank import object_uncertainty, pixel_uncertainty, rank_images
from masksmith.apps.recolor import recolor
from masksmith.apps.selection import read_groups, resolve_classes
from masksmith.core.errors import MasksmithError
from masksmith.core.labels import ClassMap
from masksmith.data.polygons import mask_polygons
from masksmith.data.rasterize import polygons_to_rle
from masksmith.data.synthetic import make_sample_dataset, sample_dataset


def shaded_car(h: int = 90, w: int = 140) -> tuple[np.ndarray, np.ndarray]:
    """A grey-blue 'body' with a lightness gradient, a highlight and a shadow, on a green background."""
    yy, xx = np.mgrid[:h, :w]
    image = np.zeros((h, w, 3), np.uint8)
    image[:] = (40, 140, 60)
    mask = ((xx - w / 2) / (w * 0.4)) ** 2 + ((yy - h / 2) / (h * 0.35)) ** 2 < 1
    shade = np.clip(60 + 120 * (1 - yy / h) + 20 * np.sin(xx / 7.0), 0, 255)
    body = np.stack([shade * 0.9, shade * 0.95, shade * 1.05], -1)
    body[(np.abs(xx - 50) < 6) & (np.abs(yy - 30) < 3)] = 250  # a highlight
    image[mask] = np.clip(body[mask], 0, 255).astype(np.uint8)
    return image, mask


# ------------------------------------------------------------------------------------------------ recolour
def test_recolor_changes_only_the_mask_keeps_lightness_and_hits_the_hue() -> None:
    image, mask = shaded_car()
    out = recolor(image, mask, "#c0392b")
    assert (out[~mask] == image[~mask]).all()  # byte-identical outside
    assert (out[mask] != image[mask]).any(axis=1).mean() > 0.95
    L0, L1 = to_lab(image[mask])[:, 0], to_lab(out[mask])[:, 0]
    assert np.corrcoef(L0, L1)[0, 1] >= 0.95
    core = feather_weights(mask, 3) == 1
    lab = to_lab(out[core & (to_lab(out)[..., 0] < 85)])
    target = to_lab(np.array(parse_color("#c0392b"), np.uint8))
    hue = np.degrees(np.arctan2(lab[:, 2].mean(), lab[:, 1].mean()))
    assert abs(hue - np.degrees(np.arctan2(target[2], target[1]))) < 8
    assert np.hypot(lab[:, 1].mean(), lab[:, 2].mean()) > 0.6 * np.hypot(target[1], target[2])


def test_recolor_keeps_the_photos_lightness_exactly_when_asked_and_shifts_hue() -> None:
    image, mask = shaded_car()
    kept = recolor(image, mask, "navy", lightness=0.0, feather=0)
    L0, L1 = to_lab(image[mask])[:, 0], to_lab(kept[mask])[:, 0]
    assert np.abs(L0 - L1).mean() < 3.0
    turned = recolor(np.full_like(image, (150, 100, 95)), mask, hue_shift=120, feather=0)
    lab0 = to_lab(np.array([150, 100, 95], np.uint8))
    lab1 = to_lab(turned[mask][:1])[0]
    turn = np.degrees(np.arctan2(lab1[2], lab1[1]) - np.arctan2(lab0[2], lab0[1])) % 360
    assert abs(turn - 120) < 6


def test_two_cars_of_different_colours_both_reach_the_target() -> None:
    image = np.full((40, 80, 3), 128, np.uint8)
    mask = np.zeros((40, 80), bool)
    mask[10:30, 5:35] = True
    mask[10:30, 45:75] = True
    image[10:30, 5:35] = (60, 160, 60)  # a green car
    image[10:30, 45:75] = (170, 170, 180)  # a silver one
    out = recolor(image, mask, "red", feather=0)
    target = to_lab(np.array([255, 0, 0], np.uint8))
    for car in (out[20, 20], out[20, 60]):
        lab = to_lab(car[None])[0]
        assert abs(np.degrees(np.arctan2(lab[2], lab[1]) - np.arctan2(target[2], target[1]))) < 8


def test_feather_is_soft_inside_and_zero_outside() -> None:
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    w = feather_weights(mask, 3)
    assert (w[~mask] == 0).all() and w[10, 10] == 1.0
    assert abs(w[5, 10] - 0.5) < 1e-6 and abs(w[6, 10] - 0.75) < 1e-6 and w[7, 10] == 1.0


def test_colour_conversion_agrees_with_skimage() -> None:
    from skimage.color import rgb2lab

    rgb = np.random.default_rng(0).integers(0, 256, (5000, 3), dtype=np.uint8)
    ours = to_lab(rgb)
    assert np.abs(ours - rgb2lab(rgb.reshape(-1, 1, 3)).reshape(-1, 3)).max() < 1e-3
    assert (to_rgb(ours) == rgb).all()


def test_parse_color() -> None:
    assert parse_color("red") == (255, 0, 0)
    assert parse_color("Rebecca Purple") == (102, 51, 153)
    assert parse_color("#c0392b") == (192, 57, 43)
    assert parse_color("#abc") == (170, 187, 204)
    for bad in ("reddish", "#12345", "#ggg", ""):
        with pytest.raises(MasksmithError):
            parse_color(bad)


# ------------------------------------------------------------------------------------------------ paste
def wheel_photo() -> tuple[np.ndarray, np.ndarray]:
    h, w = 100, 160
    yy, xx = np.mgrid[:h, :w]
    image = np.full((h, w, 3), (90, 30, 30), np.uint8)
    left = ((xx - 40) / 25) ** 2 + ((yy - 60) / 22) ** 2 < 1
    t = 0.4
    u, v = (xx - 115) * np.cos(t) + (yy - 50) * np.sin(t), -(xx - 115) * np.sin(t) + (yy - 50) * np.cos(t)
    right = (u / 30) ** 2 + (v / 14) ** 2 < 1
    image[left | right] = (20, 20, 20)
    return image, left | right


@pytest.mark.parametrize("fit", ["box", "ellipse"])
def test_paste_changes_only_wheel_pixels(fit: str) -> None:
    image, wheels = wheel_photo()
    parts = regions(wheels)
    assert len(parts) == 2
    out = paste_all(image, parts, demo_rim(64), fit)
    assert (out[~wheels] == image[~wheels]).all()
    assert (out[wheels] != image[wheels]).any(axis=1).mean() > 0.5


def test_ellipse_fit_finds_the_axes() -> None:
    yy, xx = np.mgrid[:200, :200]
    t = 0.5
    u, v = (xx - 100) * np.cos(t) + (yy - 90) * np.sin(t), -(xx - 100) * np.sin(t) + (yy - 90) * np.cos(t)
    cx, cy, major, minor, angle = ellipse_of((u / 60) ** 2 + (v / 25) ** 2 < 1)
    assert abs(cx - 100.5) < 1 and abs(cy - 90.5) < 1
    assert abs(major - 120) < 3 and abs(minor - 50) < 3
    assert abs(np.sin(angle - t)) < 0.03


def test_demo_rim_and_bad_sprite() -> None:
    rim = demo_rim(64)
    assert rim.shape == (64, 64, 4) and rim[0, 0, 3] == 0 and rim[32, 32, 3] == 255
    image, wheels = wheel_photo()
    with pytest.raises(MasksmithError, match="alpha"):
        paste_all(image, [wheels], rim[..., :3])


# ------------------------------------------------------------------------------------------------ cluster
def test_cluster_is_deterministic_and_returns_k_labels() -> None:
    image = sample_dataset(1, (120, 90), seed=3).samples[0].load_image()
    a, b = cluster_image(image, 4, seed=1), cluster_image(image, 4, seed=1)
    assert a.k == 4 and set(np.unique(a.labels)) == {0, 1, 2, 3}
    assert (a.labels == b.labels).all() and (a.colors == b.colors).all()
    assert abs(a.shares.sum() - 1) < 1e-9 and (np.diff(a.shares) <= 0).all()
    assert a.image().shape == image.shape
    with_position = cluster_image(image, 4, seed=1, position_weight=1.0)
    assert with_position.k == 4 and (with_position.labels != a.labels).any()
    strip = palette_strip(a.colors, a.shares)
    assert strip.shape[2] == 3 and tuple(strip[50, 2]) == tuple(a.colors[0])


def test_large_photos_are_assigned_through_the_colour_table_like_the_exact_way(monkeypatch) -> None:
    import masksmith.apps.cluster as cluster

    rng = np.random.default_rng(0)
    image = np.repeat(rng.integers(0, 256, (8, 3), dtype=np.uint8), 2000, axis=0)  # 8 colours, 16000 px
    image = np.clip(image.astype(int) + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
    image = image.reshape(160, 100, 3)
    exact = cluster_image(image, 5, seed=0)
    monkeypatch.setattr(cluster, "TABLE_FROM", 100)
    table = cluster_image(image, 5, seed=0)
    assert (exact.labels == table.labels).mean() > 0.98


def test_colors_names_a_red_sprite_red() -> None:
    image = np.full((30, 30, 3), (40, 90, 200), np.uint8)
    mask = np.zeros((30, 30), bool)
    mask[5:25, 5:25] = True
    image[mask] = (250, 5, 0)
    image[5:10, 5:25] = (255, 20, 10)
    found = dominant_colors(image, mask, k=3)
    assert found[0].name == "red" and abs(sum(c.share for c in found) - 1) < 1e-3
    assert all(c.name in ("red",) for c in found)
    assert nearest_color_name((0, 0, 128)) == "navy"


# ------------------------------------------------------------------------------------------------ polygons
def test_polygons_keep_holes_and_drop_specks() -> None:
    m = np.zeros((60, 80), bool)
    m[5:50, 10:70] = True
    m[15:30, 20:40] = False  # a hole
    m[18:22, 25:30] = True  # an island in the hole
    m[55, 2] = True  # a speck
    polys = mask_polygons(m, tolerance=0.0, min_area=4)
    assert len(polys) == 2
    from pycocotools import mask as mask_utils

    back = mask_utils.decode(polygons_to_rle(polys, 60, 80)).astype(bool)
    expected = m.copy()
    expected[55, 2] = False
    assert (back == expected).all()
    simple = mask_polygons(m, tolerance=0.4, min_area=4)
    assert sum(map(len, simple)) < sum(map(len, polys)) / 3


# ------------------------------------------------------------------------------------------------ rank
def test_uncertainty_measures() -> None:
    uniform = np.full((4, 5, 5), 0.25)
    sure = np.zeros((4, 5, 5))
    sure[1] = 1
    for m in ("entropy", "margin"):
        assert abs(pixel_uncertainty(uniform, m) - 1) < 1e-6 and pixel_uncertainty(sure, m) < 1e-6
    assert object_uncertainty([]) == 0 and object_uncertainty([0.5]) == 1 and object_uncertainty([0.99]) < 0.02
    assert object_uncertainty([0.5, 0.55]) > object_uncertainty([0.99, 0.98, 0.5])


# ------------------------------------------------------------------------------------------------ with a model
@pytest.fixture(scope="module")
def model(semantic_run: TrainedRun) -> Path:
    """The session's small semantic model on sample cars (body, wheel, window, light; tests/conftest.py)."""
    return semantic_run.run / "model.masksmith"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return make_sample_dataset(tmp_path_factory.mktemp("unseen") / "cars", n_images=3, size=(96, 72), seed=9)


def test_rank_puts_a_blank_image_last_and_noise_above_it(model: Path) -> None:
    from masksmith.infer import open_predictor

    predictor = open_predictor(model)
    photo = sample_dataset(1, (80, 60), seed=9).samples[0].load_image()
    blank = np.full_like(photo, 128)
    noise = np.random.default_rng(0).integers(0, 256, photo.shape, dtype=np.uint8)
    for measure in ("entropy", "margin"):
        three = [("blank", blank), ("photo", photo), ("noise", noise)]
        rows = rank_images(predictor, three, measure, strategy="uncertain")
        order = [r.image for r in rows]
        assert order[-1] == "blank", rows
        assert rows[0].score > rows[-1].score + 0.1
        diverse = rank_images(predictor, three[::-1], measure)
        assert diverse[0].image == order[0] and {r.image for r in diverse} == set(order)
        assert all(r.feature is not None and r.feature.shape == (5 * 9,) for r in diverse)  # background + 4 parts


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(monkeypatch, capsys):
    """The masksmith command run in this process (as tests/test_cli.py does): exit code, stdout, stderr."""
    def run(*args: str | Path) -> Result:
        return Result(*run_cli(monkeypatch, capsys, *args))

    return run


def one_line_error(result: Result, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for w in words:
        assert w in lines[0], lines[0]


def without_specks(mask: np.ndarray, min_area: int) -> np.ndarray:
    """The class-index mask with 8-connected parts under `min_area` pixels set to background, as the
    pre-annotations drop them."""
    from scipy import ndimage

    out = mask.copy()
    for c in np.unique(mask[mask > 0]):
        labelled, n = ndimage.label(mask == c, structure=np.ones((3, 3), int))
        sizes = np.bincount(labelled.ravel())
        out[(labelled > 0) & (sizes[labelled] < min_area)] = 0
    return out


@pytest.mark.parametrize("fmt", ["coco", "via", "labelme", "cvat"])
def test_preannotations_round_trip(model: Path, photos: Path, tmp_path: Path, fmt: str, cli) -> None:
    from masksmith.data import load_dataset
    from masksmith.data.rasterize import semantic_mask

    out = tmp_path / "pred"
    result = cli("predict", model, photos / "images", "--out", out, "--to", fmt)
    assert result.returncode == 0, result.stderr
    back = load_dataset(out / fmt)
    assert back.format == fmt and len(back.samples) == 3
    from masksmith.models.artifact import load_artifact

    classes = load_artifact(model).classes
    index = {c: i + 1 for i, c in enumerate(classes)}
    regions_total = 0
    for sample in back.samples:
        regions_total += len(sample.regions)
        stem = Path(sample.name).stem
        predicted = without_specks(np.asarray(Image.open(out / f"{stem}_mask.png")), min_area=16)
        read = semantic_mask(sample, index)
        inter = sum(((predicted == c) & (read == c)).sum() for c in index.values())
        union = sum(((predicted == c) | (read == c)).sum() for c in index.values())
        assert union == 0 or inter / union >= 0.97, (sample.name, inter / union)
    assert regions_total > 0
    inspect = cli("dataset", "inspect", out / fmt)
    assert inspect.returncode == 0 and fmt in inspect.stdout


def test_recolor_paste_colors_and_rank_from_the_cli(model: Path, photos: Path, tmp_path: Path, cli) -> None:
    photo = photos / "images" / "car_0000.jpg"
    groups = tmp_path / "groups.yaml"
    groups.write_text("paint: [body]\nglass: window\n")
    r = cli("recolor", model, photo, "--classes", "paint", "--group", groups, "--color", "red", "--color", "#2e86de",
            "--out", tmp_path / "rc")
    assert r.returncode == 0, r.stderr
    for name in ("car_0000_red.png", "car_0000_red_before_after.png", "car_0000_2e86de.png"):
        assert (tmp_path / "rc" / name).is_file()
    out = np.asarray(Image.open(tmp_path / "rc" / "car_0000_red.png"))
    assert out.shape[:2] == Image.open(photo).size[::-1]

    r = cli("paste", model, photo, "--class", "wheel", "--fit", "ellipse", "--min-pixels", "4",
            "--out", tmp_path / "ps")
    assert r.returncode == 0 and (tmp_path / "ps" / "car_0000_pasted.png").is_file(), r.stderr

    r = cli("colors", model, photo, "--classes", "body", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report[0]["classes"] == ["body"]

    r = cli("rank", model, photos / "images", "--out", tmp_path / "ranking.csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((tmp_path / "ranking.csv").open()))
    assert [int(x["rank"]) for x in rows] == [1, 2, 3] and "each unlike those above it" in r.stdout
    assert float(rows[0]["score"]) == max(float(x["score"]) for x in rows) and rows[0]["distinct"] == "1.000000"
    assert "distinct 1.00" in r.stdout.splitlines()[0]
    r = cli("rank", model, photos / "images", "--out", tmp_path / "plain.csv", "--strategy", "uncertain")
    assert r.returncode == 0, r.stderr
    plain = list(csv.DictReader((tmp_path / "plain.csv").open()))
    assert [float(x["score"]) for x in plain] == sorted((float(x["score"]) for x in rows), reverse=True)
    assert {x["image"] for x in plain} == {x["image"] for x in rows} and all(x["distinct"] == "" for x in plain)
    assert "distinct" not in r.stdout
    r = cli("rank", model, photos / "images", "--out", tmp_path / "no.csv", "--strategy", "random")
    assert r.returncode == 2 and "unknown ranking strategy 'random'" in r.stderr and not (tmp_path / "no.csv").exists()


def test_cli_with_a_mask_file_and_cluster(tmp_path: Path, cli) -> None:
    image, mask = shaded_car()
    Image.fromarray(image).save(tmp_path / "car.png")
    Image.fromarray((mask * 255).astype(np.uint8)).save(tmp_path / "car_mask.png")
    photos = tmp_path / "in"
    photos.mkdir()
    Image.fromarray(image).save(photos / "car.png")
    r = cli("recolor", "--mask", tmp_path / "car_mask.png", photos / "car.png", "--color", "green",
            "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    out = np.asarray(Image.open(tmp_path / "out" / "car_green.png"))
    assert (out[~mask] == image[~mask]).all() and (out[mask] != image[mask]).any()

    r = cli("cluster", photos, "--k", "3", "--out", tmp_path / "cl")
    assert r.returncode == 0, r.stderr
    labels = np.asarray(Image.open(tmp_path / "cl" / "car_labels.png"))
    palette = json.loads((tmp_path / "cl" / "car_palette.json").read_text())
    assert set(np.unique(labels)) == {0, 1, 2} and len(palette["colors"]) == 3

    one_line_error(cli("cluster", photos, "--out", photos / "sub"), "input")  # refuses the input folder


def test_bad_input_stops_with_one_clear_line(model: Path, photos: Path, tmp_path: Path, cli) -> None:
    photo = photos / "images" / "car_0000.jpg"
    one_line_error(cli("recolor", model, photo, "--classes", "roof", "--color", "red", "--out", tmp_path / "a"),
                   "no class roof", "body")
    one_line_error(cli("recolor", model, photo, "--classes", "body", "--color", "reddish", "--out", tmp_path / "a"),
                   "reddish")
    Image.new("RGB", (16, 16), (255, 0, 0)).save(tmp_path / "flat.png")
    one_line_error(cli("paste", model, photo, "--class", "wheel", "--sprite", tmp_path / "flat.png",
                       "--out", tmp_path / "b"), "flat.png", "alpha")
    (tmp_path / "not_a_photo.jpg").write_text("hello")
    one_line_error(cli("recolor", model, tmp_path / "not_a_photo.jpg", "--classes", "body", "--color", "red",
                       "--out", tmp_path / "c"), "not_a_photo.jpg")
    one_line_error(cli("cluster", tmp_path / "not_a_photo.jpg", "--out", tmp_path / "d"), "not_a_photo.jpg")
    one_line_error(cli("predict", model, photo, "--out", tmp_path / "e", "--to", "yolo"), "yolo")
    one_line_error(cli("recolor", model, photo, "--classes", "body", "--color", "red", "--out", photos / "images"),
                   "input")
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").glob("*.png"))


def test_group_files_and_class_lists() -> None:
    names = ["body", "wheel", "window", "light"]
    assert resolve_classes(["light,body"], names) == ["body", "light"]
    assert resolve_classes(["paint", "wheel"], names, {"paint": ["body", "light"]}) == ["body", "wheel", "light"]
    with pytest.raises(MasksmithError, match="roof"):
        resolve_classes(["glass"], names, {"glass": ["window", "roof"]})
    with pytest.raises(MasksmithError):
        read_groups(Path("/nonexistent/groups.yaml"))


@pytest.mark.parametrize("fmt", ["coco", "labelme", "cvat"])
def test_instance_predictions_become_one_region_per_object(tmp_path: Path, fmt: str) -> None:
    """What an instance model's predict writes (<stem>_instances.json, RLE masks) read back as
    pre-annotations: one region per object, its two parts together, the masks the same."""
    from masksmith.apps.annotate import predictions_from_outputs, write_preannotations
    from masksmith.data import load_dataset
    from masksmith.data.rasterize import region_mask
    from masksmith.infer.instance import Instance, instances_json

    photos = tmp_path / "photos"
    photos.mkdir()
    image = np.full((50, 70, 3), 90, np.uint8)
    Image.fromarray(image).save(photos / "shop.png")
    bag = np.zeros((50, 70), bool)
    bag[5:20, 5:25] = True
    bag[5:20, 30:40] = True  # one bag seen in two parts (a strap in front)
    boot = np.zeros((50, 70), bool)
    boot[25:45, 40:65] = True
    boot[30:35, 45:50] = False  # with a hole
    objects = [Instance("bag", 0.91, bag, (5, 5, 40, 20)), Instance("boot", 0.62, boot, (40, 25, 65, 45))]
    record = tmp_path / "shop_instances.json"
    record.write_text(json.dumps(instances_json(photos / "shop.png", image, objects)))
    predictions = predictions_from_outputs([{"image": str(photos / "shop.png"), "json": str(record)}])
    out = write_preannotations(predictions, ClassMap.from_names(["bag", "boot"]), fmt, tmp_path / fmt)
    back = load_dataset(out)
    regions = back.samples[0].regions
    assert [r.label for r in regions] == ["bag", "boot"]
    assert len(regions[0].polygons) == 2 and len(regions[1].polygons) == 1
    for region, truth in zip(regions, (bag, boot), strict=True):
        assert (region_mask(region, 50, 70) == truth).all()
