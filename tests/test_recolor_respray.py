"""Respray and new wheels on generated photos with known paint, glass, lights, highlights and wheels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from skimage.color import deltaE_ciede2000, rgb2lab

from masksmith.apps.colorspace import parse_color, to_lab
from masksmith.apps.paste import demo_rim, ellipse_of, find_rim, new_wheels, paste_all, regions
from masksmith.apps.recolor import recolor
from masksmith.apps.respray import find_paint, respray, respray_masks
from masksmith.core.errors import MasksmithError
from masksmith.core.labels import ClassMap


@dataclass
class Car:
    image: np.ndarray
    door: np.ndarray  # the chosen part: a door with its window and a light inside it
    fender: np.ndarray  # the same paint beside the door, in no class (growth should reach it)
    glass: np.ndarray  # the window inside the door
    light: np.ndarray  # an orange light inside the door
    highlight: np.ndarray  # a specular highlight on the door's paint
    shadow: np.ndarray  # the door's lower band, in shade
    wheels: np.ndarray  # predicted, not chosen
    lamps: np.ndarray  # head and tail lights at the ends: predicted, not chosen
    background: np.ndarray

    @property
    def car(self) -> np.ndarray:
        return self.door | self.wheels | self.lamps

    @property
    def keep(self) -> np.ndarray:
        return self.wheels | self.lamps

    @property
    def paint(self) -> np.ndarray:
        return self.door & ~self.glass & ~self.light


def car_photo(paint: tuple[int, int, int] = (236, 236, 234), h: int = 150, w: int = 260, seed: int = 0) -> Car:
    """A side view: a body and a narrower cabin of one paint (shaded from a lit roof to a darker sill, with a
    fine texture and a specular highlight), a door (the chosen part) holding a dark bluish window and an orange
    light, the fender beside it in the same paint but in no class, two dark wheels, on a green-grey
    background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    image = np.empty((h, w, 3), np.float32)
    image[:] = (95, 120, 90)
    background = np.ones((h, w), bool)
    body = ((yy >= 60) & (yy < 110) & (xx >= 20) & (xx < 240)) | ((yy >= 28) & (yy < 60) & (xx >= 70) & (xx < 190))
    shade = 1.0 - 0.4 * (yy - 28) / 82.0  # lit roof to a darker sill
    linear = (np.asarray(paint, np.float32) / 255.0) ** 2.2
    body_rgb = 255.0 * np.clip(linear[None, None, :] * shade[..., None], 0, 1) ** (1 / 2.2)
    body_rgb += rng.normal(0, 1.5, body_rgb.shape)  # the paint's fine texture
    image[body] = body_rgb[body]
    background &= ~body
    door = body & (xx >= 90) & (xx < 180)
    fender = body & (xx >= 185) & (xx < 236) & (yy >= 60)  # beside the door, a 5-pixel band of paint between
    glass = door & (yy >= 34) & (yy < 58) & (xx >= 98) & (xx < 172)
    image[glass] = (38, 44, 52) + rng.normal(0, 1.5, (int(glass.sum()), 3))
    light = door & (yy >= 70) & (yy < 80) & (xx >= 160) & (xx < 176)
    image[light] = (235, 120, 30)
    highlight = door & ((xx - 125) ** 2 / 100 + (yy - 72) ** 2 / 9 <= 1)
    image[highlight] = (252, 252, 252)
    shadow = door & (yy >= 100)
    wheels = np.zeros((h, w), bool)
    for cx in (60, 205):
        disc = (xx - cx) ** 2 + (yy - 112) ** 2 < 22 ** 2
        image[disc] = (28, 28, 30)
        wheels |= disc
    background &= ~wheels
    lamps = ((xx < 28) | (xx >= 232)) & (yy >= 64) & (yy < 78) & body
    image[lamps & (xx < 28)] = (240, 240, 215)
    image[lamps & (xx >= 232)] = (200, 30, 30)
    return Car(np.clip(np.rint(image), 0, 255).astype(np.uint8), door & ~wheels, fender & ~wheels & ~lamps, glass,
               light, highlight, shadow & ~wheels, wheels, lamps, background)


def delta_e(pixels: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    target = rgb2lab(np.array([[rgb]], np.uint8))[0, 0]
    return deltaE_ciede2000(rgb2lab(pixels.reshape(-1, 1, 3))[:, 0], target[None, :])


def mid_tones(car: Car) -> np.ndarray:
    """The paint pixels between the 25th and 75th percentile of the photo's lightness (no highlight)."""
    paint = car.paint & ~car.highlight
    lightness = to_lab(car.image)[..., 0]
    lo, hi = np.percentile(lightness[paint], [25, 75])
    return paint & (lightness >= lo) & (lightness <= hi)


# ------------------------------------------------------------------------------------------------ respray
@pytest.mark.parametrize(("paint", "target"), [
    ((236, 236, 234), "navy"),  # white -> navy looks navy, not lavender
    ((236, 236, 234), "#c0392b"),  # white -> deep red, not salmon pink
    ((170, 25, 30), "navy"),
    ((45, 47, 50), "white"),  # a black car resprayed white is not grey
    ((150, 152, 156), "#2e86de"),
])
def test_mid_tones_reach_the_target(paint, target) -> None:
    car = car_photo(paint)
    out = respray(car.image, car.door, target, car_mask=car.car, keep=car.keep)
    rgb = parse_color(target)
    assert np.median(delta_e(out[mid_tones(car)], rgb)) <= 10.0
    # the old way (half-way lightness) did not get there from white: that is what the issue is about
    if paint[0] > 200 and target == "navy":
        half = respray(car.image, car.door, target, car_mask=car.car, keep=car.keep, lightness=0.5)
        assert np.median(delta_e(half[mid_tones(car)], rgb)) > 15.0


def test_glass_and_lights_inside_the_part_are_untouched() -> None:
    for paint in ((236, 236, 234), (170, 25, 30), (150, 152, 156)):
        car = car_photo(paint)
        out = respray(car.image, car.door, "navy", car_mask=car.car, keep=car.keep, feather=0)
        for kept in (car.glass, car.light):
            assert (out[kept] == car.image[kept]).all(), paint
        # ... with the default soft edge, only the outermost ring of the window and light may change, a little
        soft = respray(car.image, car.door, "navy", car_mask=car.car, keep=car.keep)
        from scipy import ndimage

        core = ndimage.binary_erosion(car.glass | car.light, iterations=2)
        assert (soft[core] == car.image[core]).all()
        assert (out[car.paint & ~car.highlight] != car.image[car.paint & ~car.highlight]).any(axis=1).mean() > 0.97


def test_highlights_stay_bright_and_shadows_dark() -> None:
    car = car_photo((236, 236, 234))
    out = respray(car.image, car.door, "navy", car_mask=car.car, keep=car.keep)
    lightness = to_lab(out)[..., 0]
    mids = mid_tones(car) & ~car.shadow
    assert lightness[car.highlight].mean() >= 70  # a reflection on navy paint is still bright
    assert lightness[car.highlight].mean() > lightness[mids].mean() + 40
    assert lightness[car.shadow].mean() < lightness[mids].mean() - 1  # the shading keeps its order
    # texture: the paint's fine variation survives (not one flat colour)
    assert lightness[mids].std() > 0.3


def test_growth_reaches_an_unlabelled_panel_of_the_same_paint_and_stops_at_the_car() -> None:
    car = car_photo((236, 236, 234))
    grown = respray(car.image, car.door, "navy", car_mask=car.car, keep=car.keep)
    changed = (grown != car.image).any(axis=2)
    assert changed[car.fender].mean() > 0.9
    assert not changed[car.background & ~_near(car.fender | car.door, 3)].any()
    assert not changed[car.keep].any()
    kept = respray(car.image, car.door, "navy", car_mask=car.car, keep=car.keep, grow=False)
    assert (kept[car.fender] == car.image[car.fender]).all()
    assert (kept[~car.door] == car.image[~car.door]).all()  # without growth nothing outside the part changes
    # without a car mask there is nowhere to grow: nothing outside the part changes either
    alone = respray(car.image, car.door, "navy")
    assert (alone[~car.door] == car.image[~car.door]).all()


def wall_photo() -> tuple[Car, np.ndarray]:
    """(car, wall): the white car before a pale grey wall of the paint's own colour family (as light as the paint
    in the shade of the sill), beside its cabin and above its fender and bonnet: what the geometry of the car's
    parts takes for car (a car is widest low down), and only the step at the car's outline tells apart."""
    car = car_photo((236, 236, 234))
    yy, xx = np.mgrid[:car.image.shape[0], :car.image.shape[1]]
    wall = car.background & (yy < 60) & (yy >= 8)
    rng = np.random.default_rng(1)
    car.image[wall] = np.clip(np.rint(np.array([204, 205, 207]) + rng.normal(0, 1.5, (int(wall.sum()), 3))), 0, 255)
    return car, wall


def test_growth_stops_at_the_cars_outline_before_a_wall_of_the_paints_colour() -> None:
    """A wall of the paint's colour beside the cabin is inside the car's geometric region: the paint still stops,
    pixel by pixel, at the car's outline (before issue 28's fix it was painted in blocks), and the fender and the
    cabin beside the door, of the same paint and in no class, are painted."""
    car, wall = wall_photo()
    out = respray(car.image, car.door, "navy", car_mask=car.car, keep=car.keep)
    changed = (out != car.image).any(axis=2)
    body = ~car.background & ~car.keep & ~car.glass & ~car.light & ~car.highlight
    assert wall.sum() > 2000
    assert not changed[wall & ~_near(body, 2)].any()  # at most the feathered edge, two pixels wide
    assert changed[car.fender].mean() > 0.9
    assert changed[car.paint & ~car.highlight].mean() > 0.97
    # the body's top beside the cabin, the same paint in no class, next to the wall
    top = body & ~car.door & (np.mgrid[:body.shape[0], :body.shape[1]][0] < 66) & ~car.fender
    assert changed[top].mean() > 0.7


def test_the_outline_is_placed_per_pixel_on_a_coarse_grid(monkeypatch) -> None:
    """On a large photo the car's outline is found on every f-th pixel, then placed per pixel: the extent follows
    the car's silhouette within a pixel, not the grid's blocks (here 3 x 3 cells, the body's edges between them)."""
    from masksmith.apps import respray as module

    car, wall = wall_photo()
    silhouette = ~car.background
    regions, _ = module.car_regions(car.car, car.door)
    fine, _ = module.car_extent(car.image, car.car, regions, part=car.door)
    monkeypatch.setattr(module, "EXTENT_SIDE", 90)  # 260 pixels wide: every third pixel
    monkeypatch.setattr(module, "EXTENT_FULL", 0)
    coarse, _ = module.car_extent(car.image, car.car, regions, part=car.door)
    for extent in (fine, coarse):
        assert (extent & wall).sum() <= 0.002 * wall.sum()
        assert silhouette[extent].mean() > 0.99
        assert extent[car.fender].mean() > 0.9
    # the cells alone (the cabin's edges lie between them) would take in a row or column of the wall
    blocks = np.repeat(np.repeat(coarse[::3, ::3], 3, 0), 3, 1)[:wall.shape[0], :wall.shape[1]]
    assert (blocks & wall).sum() > 0.002 * wall.sum()


def test_a_part_drawn_over_a_road_of_the_paints_colour_stops_at_the_car() -> None:
    """A silver car on a light grey road (the paint's colour a little lit), the model's door drawn 8 pixels down
    over the road (as car-parts photos show bumpers and lights drawn over the road beside the car): the road is
    not painted, the door's paint is."""
    car = car_photo((150, 152, 156))
    yy, xx = np.mgrid[:car.image.shape[0], :car.image.shape[1]]
    road = car.background & (yy >= 110)
    rng = np.random.default_rng(2)
    car.image[road] = np.clip(np.rint(np.array([176, 177, 178]) + rng.normal(0, 2.0, (int(road.sum()), 3))), 0, 255)
    over = car.door | ((yy >= 110) & (yy < 118) & (xx >= 90) & (xx < 180) & car.background)
    out = respray(car.image, over, "navy", car_mask=car.car | over, keep=car.keep)
    changed = (out != car.image).any(axis=2)
    body = ~car.background & ~car.keep
    assert changed[over & road & ~_near(body, 2)].mean() < 0.02
    assert changed[car.paint & ~car.highlight].mean() > 0.97


def test_growth_reaches_a_fender_beyond_the_last_predicted_part() -> None:
    """The model found the door and the wheels but not the lamps: the fender above the front wheel lies outside
    the hull of what it found, and is painted all the same; the background beside it is not."""
    car = car_photo((236, 236, 234))
    yy, xx = np.mgrid[:car.image.shape[0], :car.image.shape[1]]
    found = car.door | car.wheels
    out = respray(car.image, car.door, "navy", car_mask=found, keep=car.wheels)
    changed = (out != car.image).any(axis=2)
    from skimage.morphology import convex_hull_image

    beyond = car.fender & ~convex_hull_image(found) & (xx < 224)
    assert beyond.sum() > 100
    assert changed[beyond].mean() > 0.9
    assert not changed[car.background & ~_near(car.fender | car.door, 3)].any()
    assert not changed[car.wheels].any()


def test_a_black_paint_grows_within_the_hull_only() -> None:
    """Black paint looks like the asphalt and shadows around the car: beside what the model found (above the
    front wheel, outside the hull of the door and wheels), a dark background is not painted."""
    car = car_photo((45, 47, 50))
    yy, xx = np.mgrid[:car.image.shape[0], :car.image.shape[1]]
    found = car.door | car.wheels
    from skimage.morphology import convex_hull_image

    beside = car.fender & ~convex_hull_image(found) & (xx >= 200) & (xx < 224)
    image = car.image.copy()
    image[beside] = (40, 41, 43)  # a dark wall where a white car's fender would be
    out = respray(image, car.door, "white", car_mask=found, keep=car.wheels)
    changed = (out != image).any(axis=2)
    assert beside.sum() > 50
    assert changed[beside & ~_near(car.door, 3)].mean() < 0.05
    assert changed[car.paint & ~car.highlight].mean() > 0.9


def test_a_black_paints_reflections_are_paint_and_its_lights_are_not() -> None:
    """A warm sky reflected on a black door is the paint (white paint shows no dark patch there); the orange
    light inside the door stays (the window, as dark as the paint, is left to the model's glass)."""
    car = car_photo((40, 41, 44))
    yy, xx = np.mgrid[:car.image.shape[0], :car.image.shape[1]]
    sky = car.paint & ~car.highlight & (xx >= 100) & (xx < 140) & (yy >= 84) & (yy < 96)
    image = car.image.copy()
    image[sky] = (150, 124, 104)
    out = respray(image, car.door, "white", car_mask=car.car, keep=car.keep | car.glass, feather=0)
    assert (out[sky] != image[sky]).any(axis=1).mean() > 0.9
    assert to_lab(out[sky])[:, 0].mean() > 80  # white, not a dark patch
    assert (out[car.light] == image[car.light]).all()


def test_a_pixel_predicted_as_glass_inside_the_chosen_part_is_never_painted() -> None:
    car = car_photo((236, 236, 234))
    image = car.image.copy()
    yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
    sky = car.glass & (xx < 120)  # the sky reflected in the window: as white as the paint
    image[sky] = (232, 233, 232)
    glass = car.glass  # the model calls the window glass; the door's mask holds it too
    out = respray(image, car.door, "navy", car_mask=car.car, keep=car.keep | glass)
    assert (out[car.glass] == image[car.glass]).all()
    # without the prediction the white reflection passes as paint
    blind = respray(image, car.door, "navy", car_mask=car.car, keep=car.keep)
    assert (blind[sky] != image[sky]).any(axis=1).mean() > 0.5


def headlight_photo() -> tuple[Car, np.ndarray, np.ndarray]:
    """(car, the model's light (the lamp's bright inside only), the chrome ring around it): a silver car whose
    door holds a headlight: a bright lamp, a 3-pixel chrome ring as grey as the paint, a dark 2-pixel gap."""
    car = car_photo((150, 152, 156))
    yy, xx = np.mgrid[:car.image.shape[0], :car.image.shape[1]]
    r = np.hypot((xx - 135) / 2.0, yy - 80)
    lamp, ring, gap = r < 6, (r >= 6) & (r < 9), (r >= 9) & (r < 11)
    car.image[lamp] = (250, 250, 244)
    car.image[ring] = (168, 170, 174)
    car.image[gap] = (22, 22, 24)
    return car, lamp, ring


def test_the_kept_parts_outlines_snap_to_the_photos_edges() -> None:
    car, lamp, ring = headlight_photo()
    keep = car.keep | lamp
    out = respray(car.image, car.door, "navy", car_mask=car.car, keep=keep)
    assert (out[ring] == car.image[ring]).all()  # the chrome ring belongs to the light: its edge is the gap
    paint = car.paint & ~car.highlight & ~_near(ring, 3)
    assert (out[paint] != car.image[paint]).any(axis=1).mean() > 0.97  # ... and the paint beyond is painted
    # the model's outline as given: the ring passes as the silver paint
    given = respray(car.image, car.door, "navy", car_mask=car.car, keep=keep, snap=0)
    assert (given[ring] != car.image[ring]).any(axis=1).mean() > 0.5
    with pytest.raises(MasksmithError, match="snap"):
        respray(car.image, car.door, "navy", car_mask=car.car, keep=keep, snap=-1)


def _near(mask: np.ndarray, pixels: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=pixels)


def test_find_paint_names_the_paint_and_what_grew() -> None:
    car = car_photo((170, 25, 30))
    paint = find_paint(car.image, car.door, car.car, car.keep)
    assert len(paint.paints) == 1
    info = paint.paints[1]
    assert info.grown > 0.8 * car.fender.sum()
    assert abs(info.rgb[0] - 170) < 30 and info.rgb[1] < 60
    assert not paint.mask[car.glass].any() and paint.mask[car.paint].mean() > 0.97


def test_the_fast_pixel_helpers_agree_with_numpy_and_scipy() -> None:
    """The respray's shortcuts over a 12-megapixel photo give what the plain numpy and scipy calls give: pixels
    gathered and written as 3-byte items, the 3 x 3 dilation by shifted ORs, the median colour from histograms,
    the luminance from per-channel tables (to float32 rounding)."""
    from scipy import ndimage

    from masksmith.apps import respray as module
    from masksmith.apps.colorspace import LINEAR

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (41, 57, 3), dtype=np.uint8)
    mask = rng.random((41, 57)) < 0.4
    crop = (slice(5, 33), slice(7, 50))
    assert np.array_equal(module._gather(image, mask), image[mask])
    assert np.array_equal(module._gather(image, mask[crop], crop), image[crop][mask[crop]])
    assert np.array_equal(module._gather(image[mask], mask[mask]), image[mask])  # (N, 3) pixels too
    out, expected = image.copy(), image.copy()
    values = rng.integers(0, 256, (int(mask[crop].sum()), 3), dtype=np.uint8)
    module._put(out[crop], mask[crop], values)
    expected[crop][mask[crop]] = values
    assert np.array_equal(out, expected)
    for density in (0.02, 0.3, 0.9):
        sparse = rng.random((30, 44)) < density
        assert np.array_equal(module._dilate8(sparse), ndimage.binary_dilation(sparse, np.ones((3, 3), bool)))
    for n in (1, 2, 7, 1000, 1001):
        values = rng.integers(0, 256, (n, 3), dtype=np.uint8)
        assert module._medians(values) == tuple(int(v) for v in np.median(values, axis=0))
    pixels = image[mask]
    assert np.allclose(module._luminance(pixels), LINEAR[pixels] @ module._Y, rtol=1e-6, atol=1e-7)


def test_lightness_override_and_the_whole_mask() -> None:
    car = car_photo((236, 236, 234))
    kept = respray(car.image, car.door, "navy", lightness=0.0, car_mask=car.car, keep=car.keep)
    paint = car.paint & ~car.highlight
    assert np.abs(to_lab(kept[paint])[:, 0] - to_lab(car.image[paint])[:, 0]).mean() < 2.0
    assert (respray(car.image, car.door, "navy", lightness=1.0) == respray(car.image, car.door, "navy")).all()
    everything = respray(car.image, car.door, "navy", paint_only=False, feather=0)
    assert (everything[car.glass] != car.image[car.glass]).any(axis=1).all()  # the old recolour: glass too
    with pytest.raises(MasksmithError, match="lightness"):
        respray(car.image, car.door, "navy", lightness=1.5)
    with pytest.raises(MasksmithError, match="car mask"):
        respray(car.image, car.door, "navy", car_mask=np.zeros((3, 3), bool))


def test_recolor_is_the_respray_and_turns_hues_of_the_paint_only() -> None:
    car = car_photo((170, 25, 30))
    same = recolor(car.image, car.door, "navy", car_mask=car.car, keep=car.keep)
    assert (same == respray(car.image, car.door, "navy", car_mask=car.car, keep=car.keep)).all()
    car = car_photo((160, 100, 95))  # a dusty red: turned half way round it stays within sRGB
    turned = recolor(car.image, car.door, hue_shift=180, feather=0)
    assert (turned[car.glass] == car.image[car.glass]).all()
    before, after = to_lab(car.image[mid_tones(car)]), to_lab(turned[mid_tones(car)])
    assert np.median(before[:, 1]) > 10 and np.median(after[:, 1]) < -10  # red turned to a cyan-green
    assert np.abs(after[:, 0] - before[:, 0]).mean() < 2


def test_two_cars_of_different_paint_each_reach_the_target() -> None:
    left, right = car_photo((236, 236, 234)), car_photo((170, 25, 30))
    image = np.concatenate([left.image, right.image], axis=1)
    door = np.concatenate([left.door, right.door], axis=1)
    car = np.concatenate([left.car, right.car], axis=1)
    out = respray(image, door, "navy", car_mask=car)
    for half, one in ((out[:, :260], left), (out[:, 260:], right)):
        assert np.median(delta_e(half[mid_tones(one)], parse_color("navy"))) <= 10.0


def test_respray_masks_from_a_semantic_prediction() -> None:
    names = ["door", "glass", "wheel"]
    prediction = np.zeros((4, 5), np.uint8)
    prediction[0, :2] = 1
    prediction[1, :2] = 2
    prediction[2, :2] = 3
    prediction[3, 0] = 255  # void: not the car
    masks = respray_masks(prediction, ClassMap.from_names(names), ["door"])
    assert masks.part.sum() == 2 and masks.car.sum() == 6 and masks.keep.sum() == 4
    assert not (masks.keep & masks.part).any() and not masks.car[3, 0]


# ------------------------------------------------------------------------------------------------ wheels
def wheel_photo(tilt: float = 0.4, hidden: float = 0.0, gradient: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image, wheel region, rim, tyre): a wheel seen at an angle (an ellipse turned by `tilt`), a dark tyre
    around a light rim, optionally lit from below; `hidden`: the share of its width behind a bumper on its
    right (not in the region)."""
    h, w = 200, 260
    yy, xx = np.mgrid[:h, :w]
    cx, cy = 130.0, 100.0
    u = (xx + 0.5 - cx) * np.cos(tilt) + (yy + 0.5 - cy) * np.sin(tilt)
    v = -(xx + 0.5 - cx) * np.sin(tilt) + (yy + 0.5 - cy) * np.cos(tilt)
    wheel = (u / 90) ** 2 + (v / 50) ** 2 < 1
    rim = (u / 60) ** 2 + (v / 33) ** 2 < 1
    image = np.full((h, w, 3), (150, 40, 40), np.float32)  # red paint around
    image[wheel] = (30, 30, 32)
    image[rim] = (190, 192, 196)
    if gradient:
        image[wheel] *= (0.5 + 0.8 * (yy[wheel] - 50) / 100)[:, None]
    region = wheel.copy()
    if hidden > 0:
        edge = cx + 90 - hidden * 180
        bumper = xx >= edge
        image[bumper] = (150, 40, 40)
        region &= ~bumper
    return np.clip(image, 0, 255).astype(np.uint8), region, rim & region, wheel & ~rim & region


def test_the_rim_follows_a_tilted_wheel_and_keeps_the_tyre() -> None:
    image, region, rim, tyre = wheel_photo(tilt=0.4)
    result = new_wheels(image, regions(region))
    assert len(result.placed) == 1 and not result.notes
    fit = result.placed[0]
    assert abs(np.sin(fit.angle - 0.4)) < 0.05  # the ellipse turns with the wheel
    assert abs(fit.major - 120) < 8 and abs(fit.minor - 66) < 6  # ... and is the rim's, inside the tyre
    assert abs(fit.rim_scale - np.sqrt(120 * 66 / (180 * 100))) < 0.05
    out = result.image
    changed = (out != image).any(axis=2)
    assert not changed[~region].any()  # nothing outside the wheel
    from scipy import ndimage

    assert changed[ndimage.binary_erosion(rim, iterations=3)].mean() > 0.8
    assert changed[ndimage.binary_erosion(tyre, iterations=4)].mean() < 0.02  # the tyre stays the photo's
    # the plain paste stretches the sprite over the tyre
    plain = paste_all(image, regions(region), demo_rim(), "ellipse")
    assert (plain != image).any(axis=2)[ndimage.binary_erosion(tyre, iterations=4)].mean() > 0.5


def test_without_a_visible_rim_the_wheel_ellipse_is_scaled() -> None:
    image, region, rim, tyre = wheel_photo(tilt=-0.3)
    image[region] = (30, 30, 32)  # a dark rim: nothing to find
    assert find_rim(image, region) is None
    result = new_wheels(image, regions(region))
    fit = result.placed[0]
    cx, cy, major, minor, angle = ellipse_of(region)
    assert abs(np.sin(fit.angle - angle)) < 0.01 and abs(fit.major - major) < 1
    assert fit.rim_scale == pytest.approx(0.68)
    changed = (result.image != image).any(axis=2)
    from scipy import ndimage

    assert changed[ndimage.binary_erosion(tyre, iterations=4)].mean() < 0.05


def test_a_mostly_hidden_wheel_is_skipped_with_a_note() -> None:
    image, region, _, _ = wheel_photo(tilt=0.0, hidden=0.55)
    visible, _, _, _ = wheel_photo(tilt=0.0)
    parts = regions(region) + [np.zeros_like(region)]
    result = new_wheels(image, parts)
    assert result.placed == [] and len(result.notes) == 1
    assert "hidden" in result.notes[0] and "wheel 1" in result.notes[0]
    assert (result.image == image).all()
    # a wheel hidden a little (the arch over its tyre) still gets its rim
    _, a_little, _, _ = wheel_photo(tilt=0.0, hidden=0.1)
    assert len(new_wheels(visible, regions(a_little)).placed) == 1


def test_the_photos_light_falls_on_the_rim() -> None:
    image, region, rim, _ = wheel_photo(tilt=0.0, gradient=True)
    shaded = new_wheels(image, regions(region)).image
    flat = new_wheels(image, regions(region), shade=0.0).image
    yy = np.mgrid[:image.shape[0], :image.shape[1]][0]
    top, bottom = rim & (yy < 85), rim & (yy > 115)
    lum = to_lab(shaded)[..., 0]
    flat_lum = to_lab(flat)[..., 0]
    assert lum[bottom].mean() - lum[top].mean() > 10 + (flat_lum[bottom].mean() - flat_lum[top].mean())
    with pytest.raises(MasksmithError, match="shade"):
        new_wheels(image, regions(region), shade=2.0)
