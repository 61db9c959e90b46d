"""Class lists of index-mask folders (issue 22): a plain list names the mask values from 0 or from 1 as the
values present in all masks say, an ambiguous one is refused with both readings, a named class without pixels
is a problem `inspect` and `train` report, and whatever classes.txt / classes.csv masksmith writes it reads
back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from masksmith.core.errors import DatasetError
from masksmith.data import load_dataset
from masksmith.data.convert import convert
from masksmith.data.rasterize import mask_to_rle, semantic_mask
from masksmith.data.schema import Dataset, Region, Sample, make_classes
from masksmith.data.stats import dataset_stats
from masksmith.data.summary import training_summary

W, H = 44, 33
CAMVID = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
          "Bicyclist"]


def index_folder(root: Path, values: list[int], masks: int = 3) -> Path:
    """images/ + masks/ with grey index masks holding exactly `values` (one vertical band each)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(1)
    for k in range(masks):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / "images" / f"f{k}.png")
        mask = np.zeros((H, W), np.uint8)
        for i, v in enumerate(values):
            mask[:, i * W // len(values): (i + 1) * W // len(values)] = v
        Image.fromarray(mask, "L").save(root / "masks" / f"f{k}.png")
    return root


def value_at(ds: Dataset, raw: int, values: list[int]) -> str:
    """The class (or 'background') the pixels of raw value `raw` were read as."""
    col = values.index(raw) * W // len(values) + 1
    sem = semantic_mask(ds.samples[0], ds.class_map.index())
    return ds.class_map.name(int(sem[5, col]))


def test_eleven_names_for_values_0_to_10_name_value_0_first(tmp_path: Path) -> None:
    values = list(range(11))
    root = index_folder(tmp_path / "camvid", values)
    for how in ({"class_names": ",".join(CAMVID)}, {}):
        if not how:
            (root / "classes.txt").write_text("\n".join(CAMVID) + "\n")
        ds = load_dataset(root, **how)
        assert ds.class_names == CAMVID, how
        assert value_at(ds, 0, values) == "Sky" and value_at(ds, 10, values) == "Bicyclist"
        stats = dataset_stats(ds)
        assert all(c.pixels > 0 for c in stats.classes)  # the last class is not trained on zero pixels
        assert not any("is named, but" in p.message for p in stats.problems)
        (note,) = [str(n) for n in ds.notes if "read from value" in str(n)]
        assert ("11 names for mask values 0-10, read from value 0 (0 Sky, 1 Building, ..., 9 Pedestrian, "
                "10 Bicyclist)") in note


def test_names_up_to_the_highest_value_name_values_from_1(tmp_path: Path) -> None:
    values = [0, 1, 2, 3]
    root = index_folder(tmp_path / "roads", values)
    ds = load_dataset(root, class_names=["road", "car", "sign"])
    assert ds.class_names == ["road", "car", "sign"]
    assert value_at(ds, 0, values) == "background" and value_at(ds, 1, values) == "road"
    assert value_at(ds, 3, values) == "sign"
    # value 0 absent: the same
    root = index_folder(tmp_path / "no-zero", [1, 2, 3])
    (root / "classes.txt").write_text("road\ncar\nsign\n")
    ds = load_dataset(root)
    assert ds.class_names == ["road", "car", "sign"] and value_at(ds, 1, [1, 2, 3]) == "road"


def test_an_ambiguous_list_is_refused_with_both_readings(tmp_path: Path, monkeypatch, capsys) -> None:
    values = [0, 1, 2]
    root = index_folder(tmp_path / "few", values)
    names = ["sky", "road", "car", "bus", "tram"]
    with pytest.raises(DatasetError) as info:
        load_dataset(root, class_names=names)
    text = str(info.value)
    assert "\n" not in text and "lists 5 class names for mask values 0-2 (3 values)" in text
    assert text.startswith("option class_names lists") and "masks/" not in text  # the list is at fault, not a mask
    assert "from value 0 (0 sky, 1 road, 2 car, 3 bus, 4 tram)" in text
    assert "from value 1 (0 background, 1 sky, 2 road, 3 car, 4 bus, 5 tram)" in text
    assert '`class_names={"0": "sky", "1": "road", ...}`' in text
    code, _, err = run_cli(monkeypatch, capsys, "dataset", "inspect", str(root), "-o", "class_names=" + ",".join(names))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "-o 'class_names={\"0\": \"sky\"" in err  # the CLI spells the setting as its option
    # the explicit forms choose: a {value: name} map, or a list that starts with the background
    chosen = load_dataset(root, class_names={"0": "sky", "1": "road", "2": "car"})
    assert chosen.class_names == ["sky", "road", "car"] and value_at(chosen, 0, values) == "sky"
    chosen = load_dataset(root, class_names=["background", "road", "car"])
    assert chosen.class_names == ["road", "car"] and value_at(chosen, 0, values) == "background"
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    with pytest.raises(DatasetError, match="classes.txt lists 5 class names"):
        load_dataset(root)


def test_a_named_class_without_pixels_is_a_problem_for_inspect_and_train(tmp_path: Path, monkeypatch,
                                                                          capsys) -> None:
    root = index_folder(tmp_path / "street", [0, 1, 2])
    (root / "classes.txt").write_text("background\nroad\ncar\nsign\n")  # explicit: sign is value 3, never drawn
    ds = load_dataset(root)
    stats = dataset_stats(ds)
    (problem,) = [p for p in stats.problems if "sign" in p.item]
    assert problem.dropped == "" and "none of the 3 image(s) has a pixel of it" in problem.message
    code, out, _ = run_cli(monkeypatch, capsys, "dataset", "inspect", str(root))
    assert code == 0 and "class 'sign': is named, but none of the 3 image(s)" in out
    assert "no problems found" not in out
    lines = training_summary(ds, ds.samples[:2], ds.samples[2:], "test")
    assert any(line.startswith("problem: ") and "class 'sign'" in line and "2 image(s)" in line for line in lines)
    complete = load_dataset(index_folder(tmp_path / "complete", [0, 1, 2]), class_names=["road", "car"])
    assert not [p for p in dataset_stats(complete).problems if "is named" in p.message]


HOSTILE = ["x" * 300, "طريق سريع", "e\u0301\u0302\u0303", "车门", "line\nbreak", "comma, inside", " padded ",
           "#hash", '"quoted"', "background", "__ignore__", "para\u2028sep", "tab\there", "lone \ud800 surrogate",
           "_background_x", "{n} braces"]


def hostile_dataset(root: Path) -> Dataset:
    root.mkdir(parents=True)
    samples = []
    for k in range(2):
        path = root / f"p{k}.png"
        Image.new("RGB", (W, H), (k * 50, 80, 120)).save(path)
        regions = []
        for i, name in enumerate(HOSTILE):
            m = np.zeros((H, W), bool)
            m[(i * 2) % H: (i * 2) % H + 2, k: k + 20] = True
            regions.append(Region(name, rle=mask_to_rle(m), is_instance=False))
        samples.append(Sample(path.name, path, W, H, regions=regions))
    return Dataset(classes=make_classes(HOSTILE), samples=samples, root=root, format="test")


@pytest.mark.parametrize("kind", ["index", "color"])
def test_hostile_class_names_written_to_a_mask_folder_read_back(tmp_path: Path, kind: str) -> None:
    ds = hostile_dataset(tmp_path / "src")
    assert ds.class_names == HOSTILE
    out = convert(ds, "masks", tmp_path / kind, kind=kind)
    back = load_dataset(out)
    assert back.class_names == HOSTILE, kind
    index, back_index = ds.class_map.index(), back.class_map.index()
    for a, b in zip(ds.samples, back.samples, strict=True):
        assert np.array_equal(semantic_mask(a, index), semantic_mask(b, back_index))


@pytest.mark.parametrize("to", ["coco", "voc", "labelme", "cvat", "via"])
def test_every_writer_reads_back_its_class_names_or_refuses_them_first(tmp_path: Path, to: str) -> None:
    """A name each writer can hold comes back as it was; one it cannot is refused, in one line, before a
    file is written (never a traceback, never a file that reads back other classes)."""
    ds = hostile_dataset(tmp_path / "src")
    refused = []
    for name in HOSTILE:
        one = Dataset(classes=make_classes([name]), root=ds.root, format="test",
                      samples=[Sample(s.name, s.image_path, W, H, regions=[r for r in s.regions if r.label == name])
                               for s in ds.samples])
        out = tmp_path / to / str(HOSTILE.index(name))
        try:
            convert(one, to, out)
        except DatasetError as exc:
            assert "\n" not in str(exc).replace(repr(name)[:80], "") and "cannot hold it" in str(exc)
            assert not out.exists(), (to, name)
            refused.append(name)
            continue
        assert load_dataset(out).class_names == [name], (to, name)
    surrogate = "lone \ud800 surrogate"  # no writer stores what UTF-8 cannot carry
    expected = {"coco": ["__ignore__", surrogate], "labelme": ["__ignore__", surrogate],
                "voc": ["line\nbreak", " padded ", "#hash", "background", surrogate], "via": [" padded ", surrogate],
                "cvat": [" padded ", surrogate]}[to]
    assert refused == [n for n in HOSTILE if n in expected], to
