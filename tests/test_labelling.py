"""The labelling loop (issue 27): photos without annotations in a data set, corrected masks saved as real,
versioned annotations (also two at once), the web app's routes for them, and fine-tuning from a model file."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from masksmith import service
from masksmith.core.errors import MasksmithError
from masksmith.core.images import image_size
from masksmith.data import labelling, load_dataset
from masksmith.data.rasterize import semantic_mask
from masksmith.data.synthetic import make_sample_dataset


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    return make_sample_dataset(tmp_path_factory.mktemp("coco") / "cars", n_images=6, size=(72, 54), seed=3)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    folder = make_sample_dataset(tmp_path_factory.mktemp("more") / "more", n_images=3, size=(64, 48), seed=9)
    return sorted(folder.rglob("*.jpg"))


@pytest.fixture
def lab(coco: Path, photos: list[Path], tmp_path: Path) -> Path:
    root = service.start_labelling(coco, tmp_path / "lab")
    service.add_unlabelled(root, photos)
    return root


def png(mask: np.ndarray, mode: str = "L") -> bytes:
    """A class-value mask as PNG bytes: grey, or RGBA with R = G = B and full alpha (what a canvas saves)."""
    buf = io.BytesIO()
    if mode == "RGBA":
        rgba = np.repeat(mask[..., None], 4, 2)
        rgba[..., 3] = 255
        Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    else:
        Image.fromarray(mask, "L").save(buf, "PNG")
    return buf.getvalue()


def blank(root: Path, name: str) -> np.ndarray:
    w, h = image_size(labelling.find_photo(root, name).path)
    return np.zeros((h, w), np.uint8)


# -------------------------------------------------------------------------------------- unlabelled photos
def test_add_unlabelled_counts_and_hostile_names(lab: Path, photos: list[Path], monkeypatch, capsys) -> None:
    assert labelling.counts(lab) == {"labelled": 6, "unlabelled": 3}
    # a name that climbs out and one that is taken: both land inside unlabelled/ under new names
    added = service.add_unlabelled(lab, [("../../escape.jpg", photos[0].read_bytes()),
                                         (photos[0].name, photos[0].read_bytes())])
    assert added[0] == "escape.jpg" and added[1] != photos[0].name
    assert all((lab / "unlabelled" / name).is_file() for name in added)
    assert not (lab.parent / "escape.jpg").exists()
    with pytest.raises(MasksmithError, match="cannot be read|not an image|cannot"):
        service.add_unlabelled(lab, [("fake.jpg", b"not a photo")])
    summary = service.inspect_dataset(lab)  # inspect and the data set page count both kinds
    assert summary["images"] == 6 and summary["unlabelled"] == 5
    assert len(load_dataset(lab).samples) == 6  # readers see the labelled photos only
    result = run_cli(monkeypatch, capsys, "dataset", "add-unlabelled", lab, photos[1])
    assert result.code == 0, result.err
    assert "6 labelled, 6 unlabelled" in result.out
    result = run_cli(monkeypatch, capsys, "dataset", "inspect", lab, "--no-pixels")
    assert "photos: 6 labelled, 6 unlabelled" in result.out


def test_add_unlabelled_needs_a_labelling_folder(coco: Path, photos: list[Path], monkeypatch, capsys) -> None:
    result = run_cli(monkeypatch, capsys, "dataset", "add-unlabelled", coco, photos[0])
    assert result.code == 2 and "--to masks" in result.err and len(result.err.strip().splitlines()) == 1


# -------------------------------------------------------------------------------------- saving masks
def test_save_reload_version_and_export(lab: Path, tmp_path: Path) -> None:
    name = labelling.unlabelled_photos(lab)[0].name
    first = blank(lab, name)
    first[4:20, 6:30] = 1
    saved = labelling.save_mask(lab, name, png(first))
    assert saved.version == 1 and saved.kept is None
    assert np.array_equal(labelling.read_mask(lab, name), first)
    assert (lab / "images" / name).is_file() and not (lab / "unlabelled" / name).exists()
    second = first.copy()
    second[30:40, 10:20] = 2
    second[0, 0] = 255  # void is allowed
    saved = labelling.save_mask(lab, name, png(second, "RGBA"))  # what a canvas sends: R = G = B, opaque
    assert saved.version == 2 and saved.kept is not None
    assert np.array_equal(np.asarray(Image.open(saved.kept)), first)  # the previous annotation is kept
    assert np.array_equal(labelling.read_mask(lab, name), second)
    # a labelled sample every reader sees, exported to another format and read back pixel for pixel
    dataset = load_dataset(lab)
    assert len(dataset.samples) == 7
    service.start_labelling(lab, tmp_path / "again")  # masks -> masks
    from masksmith.data.convert import convert

    convert(dataset, "coco", tmp_path / "as-coco")
    back = load_dataset(tmp_path / "as-coco")
    sample = next(s for s in back.samples if Path(s.name).name == name)
    painted = second != 255  # COCO has no void pixels to write
    assert np.array_equal(semantic_mask(sample, back.class_map.index())[painted], second[painted])


def test_wrong_masks_refused_with_one_line(lab: Path) -> None:
    name = labelling.unlabelled_photos(lab)[0].name
    mask = blank(lab, name)
    h, w = mask.shape
    cases = {f"is {w + 1}x{h} but the photo is {w}x{h}": np.zeros((mask.shape[0], mask.shape[1] + 1), np.uint8),
             "holds value 9, which name no class": np.full(mask.shape, 9, np.uint8)}
    for message, bad in cases.items():
        with pytest.raises(MasksmithError) as info:
            labelling.save_mask(lab, name, png(bad))
        assert message in str(info.value) and "\n" not in str(info.value)
    colour = np.zeros((*mask.shape, 3), np.uint8)
    colour[..., 0] = 1
    buf = io.BytesIO()
    Image.fromarray(colour).save(buf, "PNG")
    with pytest.raises(MasksmithError, match="colour image, not class values"):
        labelling.save_mask(lab, name, buf.getvalue())
    with pytest.raises(MasksmithError, match="climbs out"):
        labelling.save_mask(lab, "../images/x.jpg", png(mask))
    assert labelling.read_mask(lab, name) is None and not list((lab / "masks").glob(".*tmp"))


def test_concurrent_saves_keep_one_consistent_version_and_the_previous(lab: Path) -> None:
    name = labelling.unlabelled_photos(lab)[0].name
    masks = []
    for k in range(6):
        m = blank(lab, name)
        m[: 5 + 5 * k] = 1 + k % 4
        masks.append(m)
    barrier = threading.Barrier(len(masks))
    errors: list[BaseException] = []

    def save(m: np.ndarray) -> None:
        barrier.wait()
        try:
            labelling.save_mask(lab, name, png(m))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(m,)) for m in masks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    final = labelling.read_mask(lab, name)
    assert any(np.array_equal(final, m) for m in masks)
    kept = labelling.versions(lab, Path(name).stem)
    assert len(kept) == len(masks) - 1  # every earlier save is kept, none lost or overwritten
    kept_arrays = [np.asarray(Image.open(p)) for p in kept]
    for m in masks:  # each save is the final mask or exactly one kept version
        assert sum(np.array_equal(m, k) for k in [*kept_arrays, final]) == 1
    assert not [p for p in lab.rglob("*.tmp")]


# -------------------------------------------------------------------------------------- the web app
# `web`: the app fixture in conftest.py, on this module's `coco` data set


def test_web_add_photo_label_next_save_reload(web, photos: list[Path], coco: Path) -> None:
    client, ds = web
    answer = client.post(f"/api/datasets/{ds}/photos?name=..%2F..%2Fa%20b.jpg", content=photos[0].read_bytes())
    assert answer.status_code == 200, answer.text
    assert answer.json()["added"] == ["a b.jpg"] and answer.json()["unlabelled"] == 1
    assert not list(coco.rglob("unlabelled"))  # the person's folder is left as it was: we label a copy
    page = client.get(f"/datasets/{ds}", headers={"accept": "text/html"}).text
    assert "<b>6</b> labelled, <b>1</b> unlabelled" in page
    listed = client.get(f"/api/datasets/{ds}/next").json()
    assert [p["name"] for p in listed["photos"]] == ["a b.jpg"]
    assert client.get(listed["photos"][0]["thumb"]).headers["content-type"] == "image/png"
    assert "editor.js" in client.get(listed["photos"][0]["edit"]).text
    w, h = Image.open(photos[0]).size
    mask = np.zeros((h, w), np.uint8)
    mask[10:20, 5:25] = 3
    url = f"/api/datasets/{ds}/photos/a%20b.jpg/mask"
    assert client.post(url, content=png(mask)).json()["version"] == 1
    again = np.asarray(Image.open(io.BytesIO(client.get(f"/datasets/{ds}/photos/a%20b.jpg/mask.png").content)))
    assert np.array_equal(again, mask)
    # refused: a foreign Origin, the wrong size, an unknown value; each with one sentence
    foreign = client.post(url, content=png(mask), headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403 and "another site" in foreign.json()["error"]
    small = client.post(url, content=png(mask[:-1]))
    assert small.status_code == 400 and "but the photo is" in small.json()["error"]
    mask[0, 0] = 17
    odd = client.post(url, content=png(mask))
    assert odd.status_code == 400 and "value 17" in odd.json()["error"] and "\n" not in odd.json()["error"]
    assert client.get(f"/api/datasets/{ds}/next").json()["labelled"] == 7


def test_web_concurrent_saves(web, photos: list[Path]) -> None:
    client, ds = web
    client.post(f"/api/datasets/{ds}/photos?name=p.jpg", content=photos[1].read_bytes())
    w, h = Image.open(photos[1]).size
    masks = [np.full((h, w), v, np.uint8) for v in (1, 2)]
    url = f"/api/datasets/{ds}/photos/p.jpg/mask"
    answers: list[int] = []
    threads = [threading.Thread(target=lambda m=m: answers.append(client.post(url, content=png(m)).status_code))
               for m in masks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200, 200]
    final = np.asarray(Image.open(io.BytesIO(client.get(f"/datasets/{ds}/photos/p.jpg/mask.png").content)))
    root = Path(client.app.state.store.dataset(ds)["root"])
    kept = [np.asarray(Image.open(p)) for p in labelling.versions(root, "p")]
    assert len(kept) == 1 and {int(final[0, 0]), int(kept[0][0, 0])} == {1, 2}


# -------------------------------------------------------------------------------------- fine-tuning
@pytest.fixture(scope="module")
def trained(coco: Path, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    config = service.training_config(coco, model="baseline", size=32, epochs=1, batch_size=4, name="base",
                                     runs_dir=str(runs), plan=False)
    return service.train(config)


def test_train_from_model_starts_from_its_weights(trained: Path, lab: Path) -> None:
    import lightning as L

    from masksmith.models.artifact import load_artifact
    from masksmith.train.semantic import train_semantic

    start = load_artifact(trained)
    seen: dict[str, dict] = {}

    class FirstStep(L.Callback):
        def on_train_start(self, trainer, module) -> None:
            seen["weights"] = {k: v.detach().clone() for k, v in module.net.state_dict().items()}

    config = service.training_config(lab, from_model=str(trained), epochs=1, batch_size=4, size=32,
                                     runs_dir=str(lab.parent / "runs"), name="more", plan=False)
    assert config.arch == "baseline"  # the model's network, whatever the defaults are
    run = train_semantic(config, extra_callbacks=[FirstStep()])
    assert seen["weights"].keys() == start.state_dict.keys()
    assert all(np.allclose(seen["weights"][k].float(), v.float()) for k, v in start.state_dict.items())
    assert (run / "model.masksmith").is_file() and "from_model" in (run / "config.yaml").read_text()
    # the web's "continue training" is the same use case on the run folder
    assert service.finetune_config(trained, lab, time_budget=30).from_model.endswith("model.masksmith")


def test_train_from_refuses_other_classes_and_missing_files(trained: Path, tmp_path: Path, monkeypatch,
                                                            capsys) -> None:
    other = make_sample_dataset(tmp_path / "thin", n_images=3, kind="thin", seed=1)
    config = service.training_config(other, from_model=str(trained), epochs=1, size=32, batch_size=2,
                                     runs_dir=str(tmp_path / "runs"), plan=False)
    with pytest.raises(MasksmithError, match="the model to start from has the classes"):
        service.train(config)
    result = run_cli(monkeypatch, capsys, "train", other, "--from", tmp_path / "nothing.masksmith")
    assert result.code == 2 and "does not exist" in result.err and len(result.err.strip().splitlines()) == 1


def test_web_label_next_ranked_by_a_model_and_continue_training(web, trained: Path, photos: list[Path]) -> None:
    import time

    client, ds = web
    for photo in photos:
        client.post(f"/api/datasets/{ds}/photos?name={photo.name}", content=photo.read_bytes())
    store, jobs = client.app.state.store, client.app.state.jobs
    run_id = store.add_run("base", store.dataset(ds), trained, "semantic", "baseline")
    store.update_run(run_id, state="finished")
    listed = client.get(f"/api/datasets/{ds}/next?model={run_id}").json()["photos"]
    scores = [p["score"] for p in listed]
    assert len(listed) == 3 and all(s is not None for s in scores) and scores[0] == max(scores)  # rank's order
    assert Image.open(io.BytesIO(client.get(listed[0]["thumb"]).content)).size[0] <= 160
    proposed = np.asarray(Image.open(io.BytesIO(client.get(
        f"/datasets/{ds}/photos/{listed[0]['name']}/mask.png?model={run_id}").content)))
    assert proposed.dtype == np.uint8 and set(np.unique(proposed).tolist()) <= {0, 1, 2, 3, 4}
    assert f'value="{run_id}"' in client.get(f"/datasets/{ds}", headers={"accept": "text/html"}).text
    # accept the proposal as is: it becomes the photo's annotation
    url = f"/api/datasets/{ds}/photos/{listed[0]['name']}/mask"
    assert client.post(url, content=png(proposed)).json()["labelled"] == 7
    # continue training: a new run that starts from the model, on the data set as it is now
    started = client.post(f"/api/models/{run_id}/continue", json={"dataset": ds, "minutes": 0.05})
    assert started.status_code == 200, started.text
    new = started.json()["id"]
    deadline = time.monotonic() + 240
    while store.run(new)["state"] not in ("finished", "failed") and time.monotonic() < deadline:
        jobs.step()
        time.sleep(0.5)
    run = store.run(new)
    assert run["state"] == "finished", run
    config = (Path(run["folder"]) / "config.yaml").read_text()
    assert f"from_model: {trained / 'model.masksmith'}" in config
    assert (Path(run["folder"]) / "model.masksmith").is_file()
    page = client.get(f"/models/{new}", headers={"accept": "text/html"}).text
    assert 'id="score-before"' in page and "the model it started from scores" in page
    bad = client.post(f"/api/models/{run_id}/continue", json={"dataset": ds, "minutes": -1})
    assert bad.status_code == 400


def test_a_fine_tuned_run_scores_the_model_it_started_from_on_the_same_photos(trained: Path, lab: Path) -> None:
    config = service.training_config(lab, from_model=str(trained), epochs=1, batch_size=4, size=32,
                                     runs_dir=str(lab.parent / "runs"), name="card", plan=False)
    run = service.train(config)
    card = service.model_card(run, "semantic")
    assert card["before"] is not None and card["before"]["name"] == card["headline"]["name"]
    from masksmith.core import runfolder
    from masksmith.evaluate.result import Evaluation

    before = Evaluation.from_dict(runfolder.read_evaluation(run / "evaluation" / runfolder.STARTED_FROM))
    after = Evaluation.from_dict(runfolder.read_evaluation(run / "evaluation" / runfolder.VALIDATION))
    assert before.images == after.images > 0  # the same held-out photos
    assert service.model_card(trained, "semantic")["before"] is None  # a run from scratch has none


def test_superpixels_for_snapping_follow_edges_at_any_size() -> None:
    from masksmith.apps.labelling import encode_ids, superpixels

    image = np.zeros((120, 160, 3), np.uint8)
    image[:, 80:] = 255  # one vertical edge
    ids = superpixels(image, segments=40)
    assert ids.shape == (120, 160) and 10 < len(np.unique(ids)) <= 60
    left, right = set(np.unique(ids[:, :80]).tolist()), set(np.unique(ids[:, 80:]).tolist())
    assert not left & right  # no superpixel crosses the edge
    big = np.kron(image, np.ones((8, 8, 1), np.uint8))  # 960x1280: segmented shrunk, ids scaled back
    assert superpixels(big, segments=40).shape == (960, 1280)
    rgb = encode_ids(np.array([[0, 70000]], np.int32)).astype(np.int64)
    assert (rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]).tolist() == [[0, 70000]]


def test_photos_in_sub_folders_are_found_saved_and_versioned(lab: Path) -> None:
    first = sorted((lab / "images").glob("*.jpg"))[0]
    (lab / "images" / "part").mkdir()
    (lab / "masks" / "part").mkdir()
    first.rename(lab / "images" / "part" / first.name)
    (lab / "masks" / f"{first.stem}.png").rename(lab / "masks" / "part" / f"{first.stem}.png")
    name = f"part/{first.name}"
    assert labelling.counts(lab) == {"labelled": 6, "unlabelled": 3}
    assert labelling.find_photo(lab, name).labelled
    old = labelling.read_mask(lab, name)
    saved = labelling.save_mask(lab, name, np.zeros_like(old))
    assert saved.kept is not None and saved.kept.name == f"part__{first.stem}.1.png"
    assert np.array_equal(np.asarray(Image.open(saved.kept)), old)
    assert len(load_dataset(lab).samples) == 6  # the reader pairs images/part/ with masks/part/


def test_label_next_ranks_only_the_photos_it_has_not_seen(trained: Path, lab: Path, photos: list[Path]) -> None:
    from dataclasses import replace

    from masksmith.apps.labelling import label_next
    from masksmith.apps.rank import rank_images
    from masksmith.core.images import read_image
    from masksmith.infer import open_predictor

    predictor = open_predictor(trained)
    known: dict = {}
    first = label_next(lab, predictor, known=known)
    assert sorted(known) == sorted(p.name for p in first) and len(first) == 3
    known[first[-1].name] = replace(known[first[-1].name], score=2.0)  # a remembered score is used, not recomputed
    service.add_unlabelled(lab, [photos[0]])
    again = label_next(lab, predictor, known=known)
    assert len(known) == 4 and again[0].name == first[-1].name and again[0].score == 2.0
    fresh = rank_images(predictor, [(p.name, read_image(p)) for p in labelling.unlabelled_photos(lab)])
    assert {r.image for r in fresh} == {p.name for p in again}
    assert all(abs(known[r.image].score - r.score) < 1e-6 for r in fresh if r.image != first[-1].name)


def test_label_next_is_rank_s_order_and_labelling_its_top_photo_leaves_the_rest(trained: Path, lab: Path,
                                                                                photos: list[Path]) -> None:
    """The web app lists the photos again after each save: the one saved counts as picked, so the others keep
    their places (`rank.order`'s diverse rule); the list is what `rank_images` (the CLI's) gives."""
    from masksmith.apps.labelling import label_next
    from masksmith.apps.rank import rank_images
    from masksmith.core.images import read_image
    from masksmith.infer import open_predictor

    predictor = open_predictor(trained)
    service.add_unlabelled(lab, photos[:2])
    known: dict = {}
    listed = label_next(lab, predictor, known=known)
    assert len(listed) == 5
    cli_order = rank_images(predictor, [(p.name, read_image(p)) for p in labelling.unlabelled_photos(lab)])
    assert [p.name for p in listed] == [r.image for r in cli_order]
    assert [p.name for p in label_next(lab, predictor, limit=2)] == [p.name for p in listed[:2]]
    plain = label_next(lab, predictor, strategy="uncertain")
    assert [p.score for p in plain] == sorted((p.score for p in listed), reverse=True)
    w, h = image_size(labelling.find_photo(lab, listed[0].name).path)
    labelling.save_mask(lab, listed[0].name, np.zeros((h, w), np.uint8))  # the person labels the top photo
    assert [p.name for p in label_next(lab, predictor, known=known)] == [p.name for p in listed[1:]]
    with pytest.raises(MasksmithError, match="unknown ranking strategy"):
        label_next(lab, predictor, strategy="random")


def test_continue_training_on_other_classes_is_refused_before_any_run(trained: Path, tmp_path: Path) -> None:
    other = make_sample_dataset(tmp_path / "thin", n_images=3, kind="thin", seed=1)
    with pytest.raises(MasksmithError, match="are not the model's"):
        service.finetune_config(trained, other, time_budget=30)
    assert not (tmp_path / "runs").exists()
