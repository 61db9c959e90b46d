"""The web app through its HTTP API (FastAPI's TestClient): uploads good and bad, the Host/Origin/token guards,
the data set pages, the store's migrations, trying a model on a photo, and a training that survives a server
restart, is interrupted, resumed and stopped with a usable model."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import stat
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from masksmith.core.errors import MasksmithError  # noqa: E402
from masksmith.data.archive import zip_folder  # noqa: E402
from masksmith.data.synthetic import make_sample_dataset  # noqa: E402
from masksmith.web.app import create_app  # noqa: E402
from masksmith.web.store import MIGRATIONS, Store  # noqa: E402

BASE = "http://127.0.0.1:8765"
HTML = {"accept": "text/html"}


def client(app) -> TestClient:
    return TestClient(app, base_url=BASE)


@pytest.fixture
def app(tmp_path: Path):
    return create_app(tmp_path / "data", load_sample=False, watch=False)


@pytest.fixture
def sample_zip(tmp_path: Path) -> Path:
    folder = make_sample_dataset(tmp_path / "cars", n_images=6, size=(96, 72))
    return zip_folder(folder, tmp_path / "cars.zip")


def upload(c: TestClient, data: bytes, name: str = "cars"):
    return c.post(f"/api/datasets/upload?name={name}", content=data)


def zip_bytes(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ uploads
def test_upload_sample_zip_shows_classes_problems_and_preview(app, sample_zip: Path) -> None:
    with client(app) as c:
        r = upload(c, sample_zip.read_bytes())
        assert r.status_code == 200, r.text
        made = r.json()
        page = c.get(made["url"], headers=HTML)
        assert page.status_code == 200
        for name in ("body", "wheel", "window", "light"):
            assert f'data-class="{name}"' in page.text
        assert "coco" in page.text and "pixel share" in page.text
        png = c.get(f"{made['url']}/preview.png")
        assert png.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(png.content)).size[0] > 300
        listing = c.get("/datasets", headers=HTML).text
        assert "cars" in listing and ">6<" in listing  # six images


def test_second_upload_of_the_same_name_keeps_both(app, sample_zip: Path) -> None:
    with client(app) as c:
        first = upload(c, sample_zip.read_bytes()).json()
        folder = Path(app.state.store.dataset(first["id"])["folder"])
        before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
        second = upload(c, sample_zip.read_bytes()).json()
        assert first["name"] == "cars" and second["name"] == "cars (2)"
        assert first["id"] != second["id"]
        assert app.state.store.dataset(second["id"])["folder"] != str(folder)
        assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


@pytest.mark.parametrize("case", ["not a zip", "zero bytes", "dotdot", "symlink", "bomb", "no image left"])
def test_bad_uploads_are_refused_with_one_sentence(app, case: str, tmp_path: Path) -> None:
    data = {
        "not a zip": b"PK? this is a text file pretending\n" * 20,
        "zero bytes": b"",
        "dotdot": zip_bytes({"data/annotations.json": b"{}", "../../evil.txt": b"owned"}),
        "symlink": zip_bytes({"data/annotations.json": b"{}"}, links={"data/passwd": "/etc/passwd"}),
        "bomb": zip_bytes({"big.bin": bytes(17 * 1024 * 1024)}),
        "no image left": None,
    }[case]
    if data is None:  # a COCO file whose only photo is not an image
        coco = {"images": [{"id": 1, "file_name": "photo.jpg", "width": 20, "height": 20}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25,
                                 "segmentation": [[1, 1, 6, 1, 6, 6, 1, 6]], "iscrowd": 0}],
                "categories": [{"id": 1, "name": "thing"}]}
        data = zip_bytes({"set/annotations.json": json.dumps(coco).encode(), "set/photo.jpg": b"not a jpeg"})
    with client(app) as c:
        r = upload(c, data)
        assert r.status_code in (400, 413), r.text
        message = r.json()["error"]
        assert "\n" not in message and "Traceback" not in message
        expected = {"not a zip": "not a zip", "zero bytes": "empty", "dotdot": "outside the archive",
                    "symlink": "symbolic link", "bomb": "zip bomb", "no image left": "photo.jpg"}[case]
        assert expected in message
        assert app.state.store.datasets() == []
    data_dir = app.state.data_dir
    assert not (tmp_path / "evil.txt").exists() and not (data_dir.parent / "evil.txt").exists()
    assert not list((data_dir / "uploads").glob("*")) if (data_dir / "uploads").exists() else True
    assert not (data_dir / "datasets").exists() or not any((data_dir / "datasets").iterdir())


def test_a_bad_image_among_good_ones_is_a_problem_naming_its_file(app, tmp_path: Path) -> None:
    folder = make_sample_dataset(tmp_path / "cars", n_images=4, size=(96, 72))
    victim = sorted(folder.rglob("*.jpg"))[0]
    victim.write_bytes(b"this is not a jpeg")
    with client(app) as c:
        r = upload(c, zip_folder(folder, tmp_path / "cars.zip").read_bytes())
        assert r.status_code == 200, r.text
        ds = app.state.store.dataset(r.json()["id"])
        problems = [p["text"] for p in ds["stats"]["problems"]]
        assert any(victim.name in p for p in problems), problems
        assert victim.name in c.get(r.json()["url"], headers=HTML).text


def test_upload_size_limit(tmp_path: Path, sample_zip: Path) -> None:
    app = create_app(tmp_path / "data", load_sample=False, watch=False, upload_limit=1000)
    with client(app) as c:
        r = upload(c, sample_zip.read_bytes())
        assert r.status_code == 413 and "MB allowed" in r.json()["error"]


def test_folder_on_this_machine_is_read_in_place_and_never_deleted(app, tmp_path: Path) -> None:
    folder = make_sample_dataset(tmp_path / "mine", n_images=3, size=(96, 72))
    with client(app) as c:
        assert c.post("/api/datasets/folder", json={"path": "relative/path"}).status_code == 400
        r = c.post("/api/datasets/folder", json={"path": str(folder), "name": "mine"})
        assert r.status_code == 200, r.text
        assert c.delete(f"/api/datasets/{r.json()['id']}").status_code == 200
    assert (folder / "annotations.json").is_file() or any(folder.iterdir())
    assert app.state.store.datasets() == []


# --------------------------------------------------------------------------------------- the data set page
def test_colours_split_and_delete(app, sample_zip: Path) -> None:
    with client(app) as c:
        made = upload(c, sample_zip.read_bytes()).json()
        before = c.get(f"{made['url']}/preview.png").content
        r = c.post(f"/api/datasets/{made['id']}/colors", json={"body": "#ff8800"})
        assert r.status_code == 200 and r.json()["colors"]["body"] == [255, 136, 0]
        after = c.get(f"{made['url']}/preview.png").content
        assert after != before
        pixels = np.asarray(Image.open(io.BytesIO(after)).convert("RGB")).reshape(-1, 3)
        assert (pixels == [255, 136, 0]).all(axis=1).any()
        assert c.post(f"/api/datasets/{made['id']}/colors", json={"nope": "#ff8800"}).status_code == 400
        assert c.post(f"/api/datasets/{made['id']}/colors", json={"body": "red"}).status_code == 400
        parts = c.post(f"/api/datasets/{made['id']}/split", json={"val": 2, "test": 1}).json()["parts"]
        images = {p["name"]: app.state.store.dataset(p["id"])["stats"]["images"] for p in parts}
        assert images == {"cars train": 3, "cars val": 2, "cars test": 1}
        folder = Path(app.state.store.dataset(made["id"])["folder"])
        assert c.delete(f"/api/datasets/{made['id']}").status_code == 200
        assert not folder.exists()
        assert c.get(made["url"], headers=HTML).status_code == 404


# ----------------------------------------------------------------------------------------------- safety
def test_foreign_host_is_refused(app) -> None:
    with client(app) as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/health", headers={"host": "localhost:8765"}).status_code == 200
        r = c.get("/api/health", headers={"host": "evil.example:8765"})
        assert r.status_code == 400 and "answers only to" in r.json()["error"]


def test_foreign_origin_is_refused_on_every_state_change(app, sample_zip: Path) -> None:
    with client(app) as c:
        made = upload(c, sample_zip.read_bytes()).json()
        evil = {"origin": "http://evil.example"}
        for method, url, body in (("POST", "/api/datasets/upload?name=x", sample_zip.read_bytes()),
                                  ("POST", f"/api/datasets/{made['id']}/colors", b'{"body": "#000000"}'),
                                  ("POST", "/api/runs", b'{"dataset": 1, "minutes": 1}'),
                                  ("DELETE", f"/api/datasets/{made['id']}", None)):
            r = c.request(method, url, content=body, headers=evil)
            assert r.status_code == 403, (method, url, r.text)
            r = c.request(method, url, content=body, headers={"sec-fetch-site": "cross-site"})
            assert r.status_code == 403
        assert len(app.state.store.datasets()) == 1 and app.state.store.runs() == []
        ok = c.post(f"/api/datasets/{made['id']}/colors", json={"body": "#000000"}, headers={"origin": BASE})
        assert ok.status_code == 200
        assert c.get("/datasets", headers=evil).status_code == 200  # reading is not a state change


def test_token_is_required_beyond_loopback(tmp_path: Path) -> None:
    app = create_app(tmp_path / "data", host="0.0.0.0", token="s3cret", load_sample=False, watch=False)
    with TestClient(app, base_url="http://192.0.2.10:8765") as c:
        assert c.get("/api/health").status_code == 401
        assert c.get("/api/health", headers={"x-masksmith-token": "wrong"}).status_code == 401
        r = c.get("/datasets?token=s3cret", follow_redirects=False)
        assert r.status_code == 303 and "masksmith_token" in r.headers["set-cookie"]
        c.cookies.set("masksmith_token", "s3cret")
        assert c.get("/api/health").status_code == 200


def test_files_are_served_only_from_their_folders(app, tmp_path: Path) -> None:
    run_id, _ = fake_model_run(app)
    with client(app) as c:
        token = c.post(f"/api/models/{run_id}/try?filename=a.png", content=png_bytes()).json()["token"]
        for url in (f"/results/{token}/..%2F..%2Fmasksmith.sqlite", f"/results/{token}/.meta.json",
                    f"/results/{'0' * 32}/a.png", "/results/../masksmith.sqlite",
                    f"/runs/{run_id}/previews/..%2Fconfig.yaml"):
            assert c.get(url).status_code == 404, url


def test_errors_reach_the_page_as_a_sentence(app) -> None:
    with client(app) as c:
        r = c.get("/datasets/999", headers=HTML)
        assert r.status_code == 404 and "no such data set" in r.text and "Traceback" not in r.text
        r = c.post("/api/runs", json={"dataset": 999})
        assert r.status_code == 404 and r.json()["error"].startswith("there is no such data set")


# ------------------------------------------------------------------------------------------------- store
def test_store_migrations_are_numbered_and_applied_once(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.version == len(MIGRATIONS)
    store.close()
    again = Store(tmp_path)  # nothing re-applied: the tables exist, no error
    assert again.version == len(MIGRATIONS)
    again.close()
    db = sqlite3.connect(tmp_path / "masksmith.sqlite")
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(Exception, match="newer masksmith"):
        Store(tmp_path)


def test_first_start_loads_the_sample_once(tmp_path: Path) -> None:
    app = create_app(tmp_path / "data", watch=False)
    names = [d["name"] for d in app.state.store.datasets()]
    assert names == ["sample cars"]
    assert app.state.store.datasets()[0]["stats"]["images"] == 60
    with client(app) as c:
        c.delete(f"/api/datasets/{app.state.store.datasets()[0]['id']}")
    app.state.store.close()
    again = create_app(tmp_path / "data", watch=False)
    assert again.state.store.datasets() == []  # deleted stays deleted


# ------------------------------------------------------------------------------------------------ try it
def png_bytes(w: int = 80, h: int = 60) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def fake_model_run(app) -> tuple[int, Path]:
    """A run folder with a (random, tiny) model file, registered as a finished run: enough to try photos."""
    import torch

    from masksmith.core.outputs import atomic_write_text
    from masksmith.models.artifact import ModelArtifact, save_artifact
    from masksmith.models.semantic import ModelConfig, SegmentationNet, build_model
    from masksmith.train.config import TrainConfig

    torch.manual_seed(0)
    config = ModelConfig(arch="baseline", num_outputs=3, encoder_weights=None)
    net = SegmentationNet(build_model(config, pretrained=False), (0.5,) * 3, (0.5,) * 3)
    state = net.state_dict()
    last_bias = [k for k, v in state.items() if k.endswith("bias") and v.shape == (3,)][-1]
    state[last_bias] = torch.tensor([0.0, 50.0, 0.0])  # "body" everywhere: a mask to see in every picture
    net.load_state_dict(state)
    folder = app.state.data_dir / "runs" / "tiny"
    atomic_write_text(folder / "config.yaml", TrainConfig(data="x", arch="baseline").to_yaml())
    save_artifact(ModelArtifact(task="semantic", model=config.to_dict(), classes=["body", "wheel"],
                                colors=[[0, 0, 0], [255, 0, 0], [0, 0, 255]],
                                preprocessing={"mean": [0.5] * 3, "std": [0.5] * 3, "input_mode": "resize",
                                               "size": [64, 64]}, state_dict=net.state_dict()),
                  folder / "model.masksmith")
    store = app.state.store
    ds_id = store.add_dataset("d", "x", None, "folder", "coco", {})
    run_id = store.add_run("tiny", store.dataset(ds_id), folder, "semantic", "baseline")
    store.update_run(run_id, state="finished")
    return run_id, folder


def test_try_a_photo_mask_overlay_cutouts_and_downloads(app) -> None:
    run_id, _ = fake_model_run(app)
    with client(app) as c:
        page = c.get(f"/models/{run_id}/try", headers=HTML)
        assert page.status_code == 200 and 'id="opacity"' in page.text
        r = c.post(f"/api/models/{run_id}/try?filename=my%20car.png", content=png_bytes())
        assert r.status_code == 200, r.text
        result = r.json()
        assert result["size"] == [80, 60] and result["stem"] == "my car"
        mask = Image.open(io.BytesIO(c.get(result["urls"]["mask"]).content))
        assert mask.mode == "P" and mask.size == (80, 60)
        values = set(np.unique(np.asarray(mask)).tolist())
        assert values <= {0, 1, 2}
        found = {result["classes"][v - 1] for v in values - {0}}
        assert set(result["found"]) == found
        faint = np.asarray(Image.open(io.BytesIO(c.get(f"{result['overlay']}?opacity=0").content)).convert("RGB"))
        photo = np.asarray(Image.open(io.BytesIO(c.get(result["urls"]["photo"]).content)).convert("RGB"))
        strong = np.asarray(Image.open(io.BytesIO(c.get(f"{result['overlay']}?opacity=1").content)).convert("RGB"))
        assert np.abs(faint.astype(int) - photo).mean() < np.abs(strong.astype(int) - photo).mean()
        archive = zipfile.ZipFile(io.BytesIO(c.get(result["zip"]).content))
        names = {Path(n).name for n in archive.namelist()}
        assert {"my car.png", "my car_mask.png", "my car_color.png", "index.csv"} <= names
        assert ".meta.json" not in names


def test_try_refuses_a_photo_that_is_not_one(app) -> None:
    run_id, _ = fake_model_run(app)
    with client(app) as c:
        r = c.post(f"/api/models/{run_id}/try?filename=holiday.jpg", content=b"GIF89a but not really")
        assert r.status_code == 400 and r.json()["error"].startswith("holiday.jpg:")
        assert c.post(f"/api/models/{run_id}/try?filename=x.jpg", content=b"").status_code == 400
    assert not any((app.state.data_dir / "results").iterdir())


def test_recolor_route(app) -> None:
    run_id, _ = fake_model_run(app)
    with client(app) as c:
        result = c.post(f"/api/models/{run_id}/try?filename=a.png", content=png_bytes()).json()
        name = result["found"][0]
        photo = np.asarray(Image.open(io.BytesIO(c.get(result["urls"]["photo"]).content)).convert("RGB")).astype(int)
        mask = np.asarray(Image.open(io.BytesIO(c.get(result["urls"]["mask"]).content))) == \
            result["classes"].index(name) + 1
        for grow in (False, True):
            r = c.post(f"/api/results/{result['token']}/recolor", json={"class": name, "color": "#00ff00",
                                                                        "grow": grow})
            assert r.status_code == 200, r.text
            out = np.asarray(Image.open(io.BytesIO(c.get(r.json()["url"]).content)).convert("RGB")).astype(int)
            assert mask.any() and np.abs(out - photo)[mask].mean() > 5  # the class is recoloured ...
            assert (out == photo)[~mask].all()  # ... and nothing else (the model paints "body" nearly everywhere)
            assert (out[..., 1] - photo[..., 1])[mask].mean() > 0  # towards the green asked for
        assert c.post(f"/api/results/{result['token']}/recolor",
                      json={"class": name, "color": "not a colour"}).status_code == 400


def _draw_result_mask(app, token: str, mask: np.ndarray) -> None:
    """Replace a try result's predicted mask (as if the model had predicted `mask`)."""
    folder = app.state.data_dir / "results" / token
    meta = json.loads((folder / ".meta.json").read_text())
    picture = Image.open(folder / meta["files"]["mask"])
    again = Image.fromarray(mask.astype(np.uint8), "P")
    again.putpalette(picture.getpalette())
    again.save(folder / meta["files"]["mask"])


def test_wheels_route_puts_rims_on_round_wheels_and_says_why_not_on_the_rest(app) -> None:
    run_id, _ = fake_model_run(app)
    with client(app) as c:
        result = c.post(f"/api/models/{run_id}/try?filename=a.png", content=png_bytes()).json()
        # "body" everywhere: a region that is no wheel seen from any side is left alone, with the reason
        r = c.post(f"/api/results/{result['token']}/wheels", json={"class": "body"})
        assert r.status_code == 400 and "mostly hidden" in r.json()["error"], r.text
        # two round wheels and a body: rims go on both wheels, nothing outside them changes
        yy, xx = np.mgrid[:60, :80]
        wheels = ((xx - 20) ** 2 + (yy - 40) ** 2 <= 12 ** 2) | ((xx - 60) ** 2 + (yy - 40) ** 2 <= 12 ** 2)
        _draw_result_mask(app, result["token"], np.where(wheels, 2, 1))
        r = c.post(f"/api/results/{result['token']}/wheels", json={"class": "wheel"})
        assert r.status_code == 200, r.text
        assert r.json()["notes"] == []
        out = np.asarray(Image.open(io.BytesIO(c.get(r.json()["url"]).content)).convert("RGB")).astype(int)
        photo = np.asarray(Image.open(io.BytesIO(c.get(result["urls"]["photo"]).content)).convert("RGB")).astype(int)
        changed = np.abs(out - photo).max(axis=2) > 0
        assert out.shape == (60, 80, 3) and changed[wheels].mean() > 0.2 and not changed[~wheels].any()


# --------------------------------------------------------------------------- training: restart, resume, stop
def wait_for(predicate, timeout: float, what: str, step=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step is not None:
            step()
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_training_survives_a_server_restart_and_is_resumed_and_stopped(tmp_path: Path) -> None:
    from masksmith.infer import open_predictor

    data_dir = tmp_path / "data"
    folder = make_sample_dataset(tmp_path / "cars", n_images=8, size=(96, 72))
    app = create_app(data_dir, load_sample=False, watch=False)
    with client(app) as c:
        ds = c.post("/api/datasets/folder", json={"path": str(folder), "name": "cars"}).json()
        r = c.post("/api/runs", json={"dataset": ds["id"], "epochs": 40, "size": 64, "batch_size": 4,
                                      "pretrained": False})
        assert r.status_code == 200, r.text
        run_id = r.json()["id"]
        run = app.state.store.run(run_id)
        assert run["state"] == "running" and run["pid"]
        metrics = Path(run["folder"]) / "metrics.csv"
        last = Path(run["folder"]) / "checkpoints" / "last.ckpt"
        wait_for(lambda: last.is_file(), 240, "the first checkpoint", step=app.state.jobs.step)
        assert '"epochs": [{' in c.get(f"/runs/{run_id}", headers=HTML).text  # the page starts with epoch 1
    app.state.jobs.shutdown()
    app.state.store.close()
    # the server restarts while the training process goes on: the new server watches it again
    app2 = create_app(data_dir, load_sample=False, watch=False)
    run = app2.state.store.run(run_id)
    assert run["state"] == "running", run
    os.kill(run["pid"], signal.SIGKILL)  # ... and then the machine loses the process as well
    wait_for(lambda: app2.state.store.run(run_id)["state"] == "interrupted", 30, "interrupted",
             step=app2.state.jobs.step)
    with client(app2) as c:
        models = c.get("/models", headers=HTML).text
        assert "interrupted" in models
        page = c.get(f"/runs/{run_id}", headers=HTML).text
        assert "interrupted" in page and "resume it" in page
        rows_before = len(metrics.read_text().splitlines())
        r = c.post(f"/api/runs/{run_id}/resume", json={})
        assert r.status_code == 200, r.text
        assert app2.state.store.run(run_id)["state"] == "running"
        wait_for(lambda: len(metrics.read_text().splitlines()) > rows_before, 240, "an epoch after resuming",
                 step=app2.state.jobs.step)
        assert c.post(f"/api/runs/{run_id}/stop").status_code == 200
        wait_for(lambda: app2.state.store.run(run_id)["state"] == "stopped", 120, "the stop",
                 step=app2.state.jobs.step)
        run = app2.state.store.run(run_id)
        checkpoints = {p.name for p in (Path(run["folder"]) / "checkpoints").glob("*.ckpt")}
        assert checkpoints & {"interrupted.ckpt", "last.ckpt"}
        predictor = open_predictor(Path(run["folder"]) / "model.masksmith")
        assert predictor.predict(np.zeros((40, 50, 3), np.uint8)).shape == (40, 50)
        model_page = c.get(f"/models/{run_id}", headers=HTML)
        assert model_page.status_code == 200 and 'id="training"' in model_page.text
        assert c.get(f"/models/{run_id}/download").content[:2] == b"PK"  # torch.save writes a zip
        assert c.post(f"/api/runs/{run_id}/stop").status_code == 409
        events = c.get(f"/runs/{run_id}/events").text  # a finished stream: one message, then it ends
        assert json.loads(events.split("data: ", 1)[1].split("\n\n")[0])["state"] == "stopped"


def test_old_results_are_cleaned_at_start(app) -> None:
    run_id, _ = fake_model_run(app)
    with client(app) as c:
        old = c.post(f"/api/models/{run_id}/try?filename=a.png", content=png_bytes()).json()["token"]
        new = c.post(f"/api/models/{run_id}/try?filename=b.png", content=png_bytes()).json()["token"]
    results = app.state.data_dir / "results"
    week_ago = time.time() - 8 * 86400
    os.utime(results / old, (week_ago, week_ago))
    app.state.store.close()
    create_app(app.state.data_dir, load_sample=False, watch=False)
    assert not (results / old).exists() and (results / new).is_dir()


def test_class_colours_chosen_in_the_app_reach_training(small_coco: Path) -> None:
    from masksmith.core.errors import DatasetError
    from masksmith.train.config import TrainConfig
    from masksmith.train.samples import split_samples

    split = split_samples(TrainConfig(data=str(small_coco), class_colors={"roof": [1, 2, 3]}))
    assert dict((c.name, c.color) for c in split.dataset.classes)["roof"] == (1, 2, 3)
    with pytest.raises(DatasetError, match="does not have: nope"):
        split_samples(TrainConfig(data=str(small_coco), class_colors={"nope": [1, 2, 3]}))
    with pytest.raises(DatasetError, match="not three values"):
        split_samples(TrainConfig(data=str(small_coco), class_colors={"roof": [1, 2, 300]}))


def test_train_form_plans_what_the_user_leaves_empty(tmp_path: Path) -> None:
    """As `masksmith train`: empty size / shrink / batch fields are planned from the data; given ones win."""
    from masksmith.web.forms import TrainForm

    def _train_config(body, ds, _data_dir):
        return TrainForm.model_validate(body).config(ds["root"], ds["colors"])

    ds = {"root": str(tmp_path), "colors": {}}
    planned = _train_config({"minutes": "2", "size": "", "shrink": "", "batch_size": ""}, ds, tmp_path)
    assert planned.auto_plan and planned.fixed == [] and planned.shrink is None
    assert (planned.size, planned.batch_size, planned.time_budget) == (256, 8, 120.0)
    mine = _train_config({"minutes": "2", "size": "192", "shrink": "2", "batch_size": "4"}, ds, tmp_path)
    assert mine.fixed == ["batch_size", "shrink", "size"] and (mine.size, mine.shrink, mine.batch_size) == (192, 2, 4)
    with pytest.raises(MasksmithError, match="`shrink` is 0.5; it must be a number of at least 1 and at most 64"):
        _train_config({"minutes": "2", "shrink": "0.5"}, ds, tmp_path)


def test_the_budget_picker_shows_the_libraries_plan_passes_and_finish(app, sample_zip: Path) -> None:
    """The train form asks what its budget buys: the same plan `masksmith train --dry-run` prints."""
    import time

    with client(app) as c:
        made = upload(c, sample_zip.read_bytes()).json()
        before = time.time()
        r = c.post("/api/plan", json={"dataset": made["id"], "minutes": "3", "model": "baseline"})
        assert r.status_code == 200, r.text
        plan = r.json()
        assert plan["passes"] > 0 and plan["budget_seconds"] == 180 and plan["finish"] >= before + 180
        assert plan["finish_text"] and plan["train_text"] and any("rule: at least" in line for line in plan["lines"])
        assert app.state.store.runs() == []  # asking starts nothing
        by_epochs = c.post("/api/plan", json={"dataset": made["id"], "epochs": "2", "model": "baseline"}).json()
        assert by_epochs["passes"] is None and by_epochs["finish"] is None
        page = c.get("/train", headers=HTML).text
        assert 'id="plan-button"' in page and 'id="plan-summary"' in page
