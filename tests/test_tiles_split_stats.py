"""Tiles cut and stitch back exactly; splits are seeded and complete; inspect counts what is there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masksmith.core.errors import DatasetError
from masksmith.core.labels import IGNORE_INDEX
from masksmith.data import load_dataset
from masksmith.data.convert import convert
from masksmith.data.rasterize import semantic_mask
from masksmith.data.split import split_dataset, write_split_lists
from masksmith.data.stats import dataset_stats
from masksmith.data.tiles import stitch, stitch_folder, tile_dataset, tile_grid, tile_origins, write_manifest


@pytest.mark.parametrize(("length", "tile", "mode", "expected"), [
    (100, 32, "pad", [0, 32, 64, 96]), (100, 32, "shift", [0, 32, 64, 68]), (100, 32, "drop", [0, 32, 64]),
    (64, 32, "pad", [0, 32]), (20, 32, "pad", [0]), (20, 32, "shift", [0]), (20, 32, "drop", []),
])
def test_tile_origins(length: int, tile: int, mode: str, expected: list[int]) -> None:
    assert tile_origins(length, tile, mode) == expected


@pytest.mark.parametrize("mode", ["pad", "shift"])
def test_cut_and_stitch_round_trip_any_size(mode: str) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)
    from masksmith.data.tiles import cut

    tiles = [(x, y, cut(image, x, y, 16)) for x, y in tile_grid(53, 37, 16, mode)]
    assert np.array_equal(stitch(tiles, 53, 37), image)


def test_tile_dataset_masks_and_void_padding(small_coco: Path, tmp_path: Path) -> None:
    ds = load_dataset(small_coco)
    tiles, manifest = tile_dataset(ds, 32, "pad")
    # 70x50 -> 3x2, 64x64 -> 2x2, 33x47 -> 2x2
    assert len(tiles.samples) == 6 + 4 + 4 == len(manifest["tiles"])
    index = ds.class_map.index()
    full = semantic_mask(ds.samples[0], index)
    parts = []
    for t, info in zip(tiles.samples, manifest["tiles"], strict=True):
        if info["source"] != ds.samples[0].name:
            continue
        m = semantic_mask(t, index)
        # padding past the 70x50 border is void, the rest is the original mask
        x, y = info["x"], info["y"]
        inside = m[: max(0, 50 - y), : max(0, 70 - x)]
        assert np.array_equal(inside, full[y:y + 32, x:x + 32])
        assert (m[max(0, 50 - y):, :] == IGNORE_INDEX).all() and (m[:, max(0, 70 - x):] == IGNORE_INDEX).all()
        parts.append((x, y, m))
    assert np.array_equal(stitch(parts, 70, 50), full)


def test_tile_write_and_stitch_folder(small_coco: Path, tmp_path: Path) -> None:
    ds = load_dataset(small_coco)
    tiles, manifest = tile_dataset(ds, 24, "shift")
    convert(tiles, "coco", tmp_path / "tiles")
    write_manifest(manifest, tmp_path / "tiles")
    # stand-in "predictions": the true tile masks written as PNGs named like the tiles
    preds = tmp_path / "preds"
    preds.mkdir()
    index = ds.class_map.index()
    for t in load_dataset(tmp_path / "tiles").samples:
        Image.fromarray(semantic_mask(t, index)).save(preds / t.name)
    written = stitch_folder(tmp_path / "tiles" / "tiles.json", preds, tmp_path / "full")
    assert len(written) == 3
    for sample in ds.samples:
        got = np.asarray(Image.open(tmp_path / "full" / (Path(sample.name).stem + ".png")))
        assert np.array_equal(got, semantic_mask(sample, index))


def test_stitch_reports_missing_tile(tmp_path: Path, small_coco: Path) -> None:
    ds = load_dataset(small_coco)
    _, manifest = tile_dataset(ds, 32)
    path = write_manifest(manifest, tmp_path)
    with pytest.raises(DatasetError, match="tile's mask is missing"):
        stitch_folder(path, tmp_path / "nothing", tmp_path / "out")


def test_split_is_seeded_complete_and_disjoint(small_coco: Path, tmp_path: Path) -> None:
    ds = load_dataset(small_coco)
    ds.samples = ds.samples * 10  # 30 samples
    parts = split_dataset(ds, {"train": 0.7, "val": 0.2, "test": 0.1}, seed=3)
    assert [len(p.samples) for p in parts.values()] == [21, 6, 3]
    again = split_dataset(ds, {"train": 0.7, "val": 0.2, "test": 0.1}, seed=3)
    assert all([id(s) for s in parts[k].samples] == [id(s) for s in again[k].samples] for k in parts)
    other = split_dataset(ds, {"train": 0.7, "val": 0.2, "test": 0.1}, seed=4)
    assert [id(s) for s in other["val"].samples] != [id(s) for s in parts["val"].samples]
    files = write_split_lists(parts, tmp_path / "lists")
    assert [f.name for f in files] == ["train.txt", "val.txt", "test.txt"]
    with pytest.raises(DatasetError, match="add up to 1"):
        split_dataset(ds, {"train": 0.7, "val": 0.7})


def test_stats_counts_instances_pixels_and_unannotated(small_coco: Path) -> None:
    ds = load_dataset(small_coco)
    ds.samples[2].regions = []
    stats = dataset_stats(ds)
    assert stats.images == 3 and stats.instances == 4
    assert [c.instances for c in stats.classes] == [2, 2]
    assert stats.unannotated == [ds.samples[2].name]
    index = ds.class_map.index()
    masks = [semantic_mask(s, index) for s in ds.samples]
    total = sum(m.size for m in masks)
    roof = sum(int((m == 2).sum()) for m in masks)
    assert stats.classes[1].pixel_share == pytest.approx(roof / total)
    assert stats.background.pixel_share + sum(c.pixel_share for c in stats.classes) == pytest.approx(1.0)
