"""Instance data sets in the labelling loop (issue 27): a photo's objects (ids + classes) saved atomically and
versioned, read back as instance samples by `load_dataset`, exported to COCO by `dataset convert`; the web
app's routes for them and their refusals."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masksmith import service
from masksmith.core.errors import MasksmithError
from masksmith.core.images import image_size
from masksmith.data import labelling, labelling_objects, load_dataset
from masksmith.data.convert import convert
from masksmith.data.synthetic import make_sample_dataset


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    return make_sample_dataset(tmp_path_factory.mktemp("coco") / "cars", n_images=4, size=(72, 54), seed=3)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    folder = make_sample_dataset(tmp_path_factory.mktemp("more") / "more", n_images=1, size=(64, 48), seed=9)
    return sorted(folder.rglob("*.jpg"))[0]


@pytest.fixture
def lab(coco: Path, photo: Path, tmp_path: Path) -> Path:
    root = service.start_labelling(coco, tmp_path / "lab", objects=True)
    service.add_unlabelled(root, [photo])
    return root


def two_objects(root: Path, name: str) -> tuple[np.ndarray, dict[int, str]]:
    w, h = image_size(labelling.find_photo(root, name).path)
    ids = np.zeros((h, w), np.uint8)
    ids[5:15, 5:20] = 1
    ids[20:30, 30:50] = 2
    names = labelling.class_names(root)
    return ids, {1: names[0], 2: names[1]}


def instances(root: Path, stem: str) -> list[tuple[str, int]]:
    sample = next(s for s in load_dataset(root).samples if Path(s.image_path).stem == stem)
    from pycocotools import mask as mask_utils

    return sorted((r.label, int(mask_utils.area(r.rle))) for r in sample.regions if r.is_instance)


def test_start_keeps_the_source_objects(coco: Path, lab: Path) -> None:
    source = load_dataset(coco)
    assert labelling_objects.is_instance_folder(lab)
    loaded = load_dataset(lab)
    assert loaded.format == "masks"
    by_stem = {Path(s.image_path).stem: s for s in loaded.samples}
    for sample in source.samples:
        got = by_stem[Path(sample.image_path).stem]
        assert all(r.is_instance for r in got.regions)
        assert sorted(r.label for r in got.regions) == sorted(r.label for r in sample.regions if not r.iscrowd)


def test_save_reload_version_and_convert_to_coco(lab: Path, tmp_path: Path) -> None:
    name = labelling.unlabelled_photos(lab)[0].name
    ids, table = two_objects(lab, name)
    first = labelling_objects.save_objects(lab, name, ids, {str(k): v for k, v in table.items()})
    assert first.version == 1 and first.kept is None and labelling.counts(lab)["unlabelled"] == 0
    again, got = labelling_objects.read_objects(lab, name)
    assert np.array_equal(again, ids) and got == table
    # the class mask is drawn from the objects, so the semantic side sees the same photo
    values = {n: v for v, n in labelling.named_values(lab).items()}
    assert labelling.read_mask(lab, name)[10, 10] == values[table[1]]
    assert instances(lab, Path(name).stem) == sorted([(table[1], 150), (table[2], 200)])

    merged = np.where(ids == 2, 1, ids)  # the editor's merge: one object of the first class
    second = labelling_objects.save_objects(lab, name, merged, {"1": table[1], "2": table[2]})
    assert second.version == 2 and second.kept is not None
    key = labelling.version_key(labelling.find_photo(lab, name))
    kept, _ = labelling_objects.read_file(lab / labelling.VERSIONS / f"{key}.1.objects.png")
    assert np.array_equal(kept, ids)  # the previous objects are kept
    assert labelling_objects.read_objects(lab, name)[1] == {1: table[1]}  # an id no pixel holds is dropped
    assert instances(lab, Path(name).stem) == [(table[1], 350)]

    out = convert(load_dataset(lab), "coco", tmp_path / "coco-out")
    written = json.loads(next(Path(out).rglob("*.json")).read_text())
    image = next(i for i in written["images"] if Path(i["file_name"]).stem == Path(name).stem)
    cats = {c["id"]: c["name"] for c in written["categories"]}
    mine = [a for a in written["annotations"] if a["image_id"] == image["id"]]
    assert [(cats[a["category_id"]], a["area"]) for a in mine] == [(table[1], 350)]


def test_refusals_are_one_line(lab: Path) -> None:
    name = labelling.unlabelled_photos(lab)[0].name
    ids, table = two_objects(lab, name)
    cases = [
        (ids[:-1], table, "but the photo is"),
        (ids, {1: table[1], 2: "spaceship"}, "'spaceship', which the data set does not have"),
        (ids, {1: table[1]}, "object id 2 with no class"),
        (ids, {"x": table[1]}, "object id 'x'"),
        (ids.astype(np.int32) * 200, table, "not 8-bit object ids"),
    ]
    for array, given, message in cases:
        with pytest.raises(MasksmithError) as caught:
            labelling_objects.save_objects(lab, name, array, {str(k): v for k, v in given.items()})
        assert message in str(caught.value) and "\n" not in str(caught.value)
    assert labelling.counts(lab)["unlabelled"] == 1  # nothing saved


def test_a_semantic_folder_becomes_one_of_objects(coco: Path, tmp_path: Path) -> None:
    root = service.start_labelling(coco, tmp_path / "lab")
    assert not labelling_objects.is_instance_folder(root)
    with pytest.raises(MasksmithError, match="not an instance data set"):
        labelling_objects.save_objects(root, labelling.photos(root)[0].name, np.zeros((1, 1), np.uint8), {})
    labelling_objects.make_instance_folder(root)
    photo = labelling.photos(root)[0]
    ids, table = labelling_objects.read_objects(root, photo.name)
    values = {n: v for v, n in labelling.named_values(root).items()}
    assert np.array_equal(labelling_objects.class_mask(ids, table, values), labelling.read_mask(root, photo.name))


# -------------------------------------------------------------------------------------- the web app
# `web`: the app fixture in conftest.py, on this module's `coco` data set


def body(ids: np.ndarray, table: dict[int, str]) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(ids, "L").save(buf, "PNG")
    return json.dumps({"objects": {str(k): v for k, v in table.items()},
                       "png": base64.b64encode(buf.getvalue()).decode()}).encode()


def test_web_objects_save_load_and_refusals(web, photo: Path, tmp_path: Path) -> None:
    client, ds = web
    client.post(f"/api/datasets/{ds}/photos?name=new.jpg", content=photo.read_bytes()).raise_for_status()
    url = f"/api/datasets/{ds}/photos/new.jpg/objects"
    refused = client.post(url, content=b"{}")
    assert refused.status_code == 400 and "not an instance data set" in refused.json()["error"]
    assert client.post(f"/api/datasets/{ds}/objects").json()["unlabelled"] == 1
    assert 'data-objects="1"' in client.get(f"/datasets/{ds}/edit/new.jpg").text
    assert client.get(url).json() == {"objects": {}}  # no model, nothing saved: no objects yet
    root = next((tmp_path / "data").rglob("objects")).parent
    ids, table = two_objects(root, "new.jpg")
    saved = client.post(url, content=body(ids, table))
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 1 and saved.json()["labelled"] == 5
    assert client.get(url).json() == {"objects": {"1": table[1], "2": table[2]}}
    answer = client.get(f"/datasets/{ds}/photos/new.jpg/objects.png")  # what the editor opens: ids and classes
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(answer.content))), ids)
    assert json.loads(answer.headers["x-masksmith-objects"]) == {"1": table[1], "2": table[2]}
    assert client.post(url, content=body(ids, table)).json()["version"] == 2
    # refused, each with one sentence: a foreign Origin, the wrong size, an unknown class, a broken body
    foreign = client.post(url, content=body(ids, table), headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403 and "another site" in foreign.json()["error"]
    for sent, message in [(body(ids[:-1], table), "but the photo is"),
                          (body(ids, {1: table[1], 2: "spaceship"}), "'spaceship'"),
                          (b"not json", "not a JSON object")]:
        answer = client.post(url, content=sent)
        assert answer.status_code == 400 and message in answer.json()["error"], answer.text
        assert "\n" not in answer.json()["error"]
    assert np.array_equal(labelling_objects.read_objects(root, "new.jpg")[0], ids)


def test_instance_training_sees_the_saved_objects(lab: Path) -> None:
    """Two touching objects of one class stay two objects for Mask R-CNN (a class mask would make them one)."""
    from masksmith.data.instance_data import InstanceTensors

    name = labelling.unlabelled_photos(lab)[0].name
    ids, table = two_objects(lab, name)
    ids[20:30, 30:50] = 0
    ids[5:15, 20:35] = 2  # touches object 1 along x = 20
    labelling_objects.save_objects(lab, name, ids, {"1": table[1], "2": table[1]})
    dataset = load_dataset(lab)
    sample = next(s for s in dataset.samples if Path(s.image_path).name == name)
    _, target = InstanceTensors(dataset, [sample], max_size=None).raw(0)
    index = dataset.class_map.index()
    assert target["labels"].tolist() == [index[table[1]]] * 2
    assert sorted(int(m.sum()) for m in target["masks"]) == [150, 150]


def test_concurrent_object_saves_keep_one_consistent_version_and_the_previous(lab: Path) -> None:
    import threading

    name = labelling.unlabelled_photos(lab)[0].name
    ids, table = two_objects(lab, name)
    saves = [(np.where(ids > 0, k % 2 + 1, 0).astype(np.uint8), {"1": table[1], "2": table[2]}) for k in range(4)]
    for k, (array, _) in enumerate(saves):
        array[0, : k + 1] = 1  # each save different
    barrier = threading.Barrier(len(saves))
    errors: list[BaseException] = []

    def save(array: np.ndarray, given: dict) -> None:
        barrier.wait()
        try:
            labelling_objects.save_objects(lab, name, array, given)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=s) for s in saves]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    final, got = labelling_objects.read_objects(lab, name)
    values = {n: v for v, n in labelling.named_values(lab).items()}
    assert np.array_equal(labelling.read_mask(lab, name), labelling_objects.class_mask(final, got, values))
    key = labelling.version_key(labelling.find_photo(lab, name))
    kept = sorted((lab / labelling.VERSIONS).glob(f"{key}.*.objects.png"))
    assert len(kept) == len(saves) - 1
    arrays = [labelling_objects.read_file(p)[0] for p in kept] + [final]
    for array, _ in saves:  # each save is the final objects or exactly one kept version
        assert sum(np.array_equal(array, a) for a in arrays) == 1
