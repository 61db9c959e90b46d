"""The order `rank` lists photos in (issue 27): the diverse rule on generated descriptions, its determinism, small
pools, the photos labelled meanwhile, and the CSV. The model's half (scores, descriptions) is in test_apps.py."""

from __future__ import annotations

import csv
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from masksmith.apps.rank import Ranked, layout, order, write_ranking
from masksmith.core.errors import MasksmithError


def pool(seed: int = 0) -> list[Ranked]:
    """Four kinds of photos: kind a, five near-duplicates, the most unsure of all (0.90 .. 0.86); kinds b, c, d,
    two photos each, less unsure (0.6, 0.5, 0.4 and a little less), each far from the others."""
    rng = np.random.default_rng(seed)
    centres = {k: np.eye(12)[i] * 10 for i, k in enumerate("abcd")}  # 14 apart
    rows = [Ranked(f"a{i}", 0.90 - 0.01 * i, "entropy", feature=centres["a"] + rng.normal(size=12) * 0.01)
            for i in range(5)]
    for kind, u in (("b", 0.6), ("c", 0.5), ("d", 0.4)):
        rows += [Ranked(f"{kind}{i}", u - 0.05 * i, "entropy", feature=centres[kind] + rng.normal(size=12) * 0.3)
                 for i in range(2)]
    return rows


def names(rows: list[Ranked]) -> list[str]:
    return [r.image for r in rows]


def test_a_batch_takes_one_of_near_duplicates_and_then_other_kinds() -> None:
    rows = pool()
    assert names(order(rows, "uncertain"))[:5] == ["a0", "a1", "a2", "a3", "a4"]  # what plain uncertainty picks
    diverse = order(rows, "diverse")
    assert names(diverse)[:4] == ["a0", "b0", "c0", "d0"]  # the most unsure of each kind, most unsure kind first
    assert all(r.distinct > 0.9 for r in diverse[:4])
    assert set(names(diverse)[4:7]) == {"b1", "c1", "d1"}  # a second photo of a kind, far from its twin
    assert set(names(diverse)[7:]) == {"a1", "a2", "a3", "a4"}  # the near-duplicates last
    a_later = [r for r in diverse if r.image[0] == "a"][1:]
    assert all(r.distinct < 1e-3 for r in a_later)  # near-duplicates of a0 count for almost nothing
    assert sorted(names(diverse)) == sorted(names(rows)) and all(r.score == s.score for r in diverse
                                                                 for s in rows if s.image == r.image)


def test_the_order_is_the_same_whatever_the_input_order_and_ties_go_by_name() -> None:
    rows = pool(3)
    expected = names(order(rows))
    for seed in range(5):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert names(order(shuffled)) == expected
    twins = [Ranked(n, 0.5, "entropy", feature=np.zeros(3)) for n in ("z", "m", "a")]
    assert names(order(twins)) == ["a", "m", "z"] == names(order(twins, "uncertain"))


def test_small_pools_and_pools_described_alike() -> None:
    assert order([]) == []
    one = [Ranked("only", 0.3, "entropy", feature=np.ones(4))]
    assert names(order(one)) == ["only"]
    two = [Ranked("low", 0.1, "entropy", feature=np.zeros(4)), Ranked("high", 0.2, "entropy", feature=np.zeros(4))]
    assert names(order(two)) == ["high", "low"]  # identical descriptions: r = 0, most unsure first
    alike = [Ranked(f"p{i}", u, "entropy", feature=np.full(6, 0.25)) for i, u in enumerate((0.2, 0.7, 0.4))]
    assert names(order(alike)) == ["p1", "p2", "p0"] == names(order(alike, "uncertain"))
    three = [Ranked("x", 0.9, "entropy", feature=np.array([0.0, 0.0])),
             Ranked("x2", 0.8, "entropy", feature=np.array([0.0, 0.01])),
             Ranked("y", 0.2, "entropy", feature=np.array([5.0, 5.0]))]
    assert names(order(three)) == ["x", "y", "x2"]


def test_labelling_from_the_top_leaves_the_rest_of_the_list_as_it_was() -> None:
    """The web app lists the photos again after every save: the photos labelled since count as picked."""
    for seed in range(4):
        rows = pool(seed)
        full = order(rows)
        for k in (1, 3, 6):
            done = {r.image for r in full[:k]}
            rest = order([r for r in rows if r.image not in done], covered=[r.feature for r in full[:k]])
            assert names(rest) == names(full[k:]), (seed, k)
    rows = pool()
    after_a0 = order([r for r in rows if r.image != "a0"], covered=[rows[0].feature])
    assert names(after_a0)[:3] == ["b0", "c0", "d0"]  # a0's near-duplicates wait


def test_only_the_first_photos_are_ordered_for_diversity_when_asked() -> None:
    rows = pool()
    head = order(rows, most=2)
    assert names(head) == ["a0", "b0", "a1", "a2", "a3", "a4", "b1", "c0", "c1", "d0", "d1"]
    assert all(r.distinct > 0.9 for r in head[:2]) and all(r.distinct is None for r in head[2:])


def test_bad_strategy_and_rows_without_descriptions_are_refused() -> None:
    with pytest.raises(MasksmithError, match="unknown ranking strategy 'random'"):
        order(pool(), "random")
    bare = [replace(r, feature=None) for r in pool()]
    assert names(order(bare, "uncertain"))[:2] == ["a0", "a1"]
    with pytest.raises(MasksmithError, match="without a description"):
        order(bare)


def test_layout_describes_where_the_classes_are() -> None:
    probs = np.zeros((2, 6, 6), np.float32)
    probs[0] = 1.0
    probs[0, :, :2], probs[1, :, :2] = 0.0, 1.0  # class 1 fills the left third
    f = layout(probs).reshape(2, 3, 3)
    assert np.allclose(f[1, :, 0], 1) and np.allclose(f[1, :, 1:], 0) and np.allclose(f.sum(0), 1)
    assert layout(np.ones((3, 1, 1)) / 3).shape == (27,)  # smaller than the grid: still 3 x 3 cells


def test_the_csv_says_how_distinct_each_photo_was(tmp_path: Path) -> None:
    path = write_ranking(order(pool()), tmp_path / "out", "ranking.csv")
    rows = list(csv.DictReader(path.open()))
    assert [x["image"] for x in rows[:4]] == ["a0", "b0", "c0", "d0"]
    assert rows[0]["distinct"] == "1.000000" and float(rows[-1]["distinct"]) < 0.01
    plain = list(csv.DictReader(write_ranking(order(pool(), "uncertain"), tmp_path / "out", "plain.csv").open()))
    assert all(x["distinct"] == "" for x in plain)


def test_instance_models_rank_photos_by_their_objects(instance_run) -> None:
    """Mask R-CNN (the session's shared run): each photo scored by its doubtful objects and described by its
    objects per class; the diverse and the plain orders hold the same photos, most unsure first."""
    from masksmith.apps.rank import object_uncertainty, rank_images
    from masksmith.data.synthetic import sample_dataset
    from masksmith.infer import open_predictor

    predictor = open_predictor(instance_run.run / "model.masksmith")
    images = [(f"car{k}", s.load_image()) for k, s in enumerate(sample_dataset(4, (128, 96), seed=21).samples)]
    images.append(("blank", np.full_like(images[0][1], 128)))
    plain = rank_images(predictor, images, strategy="uncertain")
    diverse = rank_images(predictor, images)
    assert {r.image for r in diverse} == {r.image for r in plain} and diverse[0].image == plain[0].image
    classes = len(predictor.classes.names)
    for r in diverse:
        assert r.measure == "objects" and r.objects is not None and r.feature.shape == (2 * classes,)
        assert (r.feature >= 0).all()
        assert (r.objects == 0) == (r.feature.sum() == 0)
    kept = predictor.score_threshold
    predictor.score_threshold = 0.05
    try:  # the score is the doubt of the objects proposed above the floor, as instance_row found them
        objects = predictor.predict(images[0][1])
    finally:
        predictor.score_threshold = kept
    row = next(r for r in diverse if r.image == "car0")
    assert row.objects == len(objects)
    assert abs(row.score - object_uncertainty([o.score for o in objects], max(kept, 0.05))) < 1e-6
    assert abs(sum(row.feature[0::2]) - sum(o.score for o in objects)) < 1e-6
