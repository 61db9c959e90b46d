"""Prediction end to end (issue 29, and issue 23's inference): masks computed at the network's resolution
agree with the full-resolution path, `save` writes only what is asked, the optimised ONNX graph is cached and
rebuilt when the model changes, `auto` says which backend it took and why, export prints its parity and speed,
the stage profile, ONNX prediction without torch, and evaluation that reads beside the network on every core
and decodes each image once."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import run_cli
from masksmith.infer import open_predictor
from masksmith.infer.backend import choose_backend
from masksmith.infer.batch import predict_batch
from masksmith.infer.export import export_onnx, with_facts
from masksmith.infer.runtime import OPTIMIZED_SUFFIX, every_core, export_facts, read_onnx_props
from masksmith.infer.scores import classes_at, resize_scores
from masksmith.models.artifact import save_artifact

sys.path.insert(0, str(Path(__file__).parent))
from test_onnx import photos, tiny_artifact, trained_baseline  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return save_artifact(tiny_artifact("baseline", net=trained_baseline()), tmp_path / "m" / "model.masksmith")


def torch_reference_mask(predictor, image: np.ndarray) -> np.ndarray:
    """The mask as masksmith computed it before issue 29: the photo resized in float by torch (antialiased),
    every class score resized to the photo's size, then the argmax."""
    pixels = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float()
    x = F.interpolate(pixels, size=predictor.artifact.input_size, mode="bilinear", antialias=True,
                      align_corners=False)
    probs = torch.from_numpy(predictor._probabilities(x.numpy()))
    return F.interpolate(probs, size=image.shape[:2], mode="bilinear", align_corners=False)[0].argmax(0).numpy()


# -------------------------------------------------------------------------- masks at the network's size
@pytest.mark.parametrize(("shape", "classes"), [((19, 23, 31), 19), ((5, 64, 64), 5), ((3, 40, 30), 3)])
@pytest.mark.parametrize("size", [(480, 640), (97, 61), (40, 30), (700, 1000)])
def test_classes_at_equals_the_argmax_of_every_score_resized(shape, classes, size) -> None:
    rng = np.random.default_rng(sum(shape) + sum(size))
    coarse = torch.from_numpy(rng.normal(size=(1, classes, max(2, shape[1] // 4), max(2, shape[2] // 4))))
    scores = F.interpolate(coarse.float(), size=shape[1:], mode="bilinear", align_corners=False)[0].softmax(0)
    expected = F.interpolate(scores[None], size=size, mode="bilinear", align_corners=False)[0].argmax(0).numpy()
    got = classes_at(scores.numpy(), size)
    assert got.shape == size and got.dtype == np.uint8
    assert (got == expected).mean() >= 0.9999  # only float rounding at exact ties may differ
    assert np.abs(resize_scores(scores.numpy(), size) - F.interpolate(scores[None], size=size, mode="bilinear",
                                                                       align_corners=False)[0].numpy()).max() < 1e-5


def test_argmax_first_masks_agree_with_the_full_resolution_path_on_generated_photos(model: Path,
                                                                                      tmp_path: Path) -> None:
    """Tolerance: at least 99.5 % of pixels equal to the old path's, photo by photo, up- and downscaled."""
    predictor = open_predictor(model)
    folder = photos(tmp_path / "small", 3, size=(40, 52))  # smaller than the network's 64 px: upscaled
    folder = photos(tmp_path / "large", 3, seed=4, size=(700, 1000))  # downscaled about 15x
    for path in [*sorted((tmp_path / "small").iterdir()), *sorted(folder.iterdir())]:
        image = np.asarray(Image.open(path).convert("RGB"))
        ours, theirs = predictor.predict(image), torch_reference_mask(predictor, image)
        assert ours.shape == image.shape[:2] and (ours == 1).any()
        assert (ours == theirs).mean() >= 0.995, path.name


# ------------------------------------------------------------------------------------------ save, profile
def test_save_writes_only_what_is_asked(model: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    src = photos(tmp_path / "photos", 3)
    predictor = open_predictor(model)
    rows = list(predict_batch(predictor, [src], tmp_path / "a", save="mask"))
    assert sorted(p.name for p in (tmp_path / "a").glob("*.png")) == [f"photo_0{k}_mask.png" for k in range(3)]
    assert all(set(r) >= {"mask", "pixels_box"} and "overlay" not in r for r in rows)
    again = list(predict_batch(predictor, [src], tmp_path / "a", save="mask"))
    assert [r["status"] for r in again] == ["existing"] * 3  # what was asked is there: nothing to redo
    more = list(predict_batch(predictor, [src], tmp_path / "a", save=["mask", "color"]))
    assert [r["status"] for r in more] == ["predicted"] * 3  # the colour masks were missing
    assert len(list((tmp_path / "a").glob("*_color.png"))) == 3 and not list((tmp_path / "a").glob("*_overlay*"))

    code, out, err = run_cli(monkeypatch, capsys, "predict", model, src, "--out", tmp_path / "b", "--save",
                             "overlay", "--backend", "torch")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "b").iterdir() if not p.name.startswith(".")) == \
        [f"photo_0{k}_overlay.jpg" for k in range(3)]
    code, _, err = run_cli(monkeypatch, capsys, "predict", model, src, "--out", tmp_path / "c", "--save", "mask,json")
    assert code == 2 and "--save names 'json'; this model writes mask, overlay, color" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "c").exists()  # refused before anything


def test_profile_prints_every_stage(model: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    src = photos(tmp_path / "photos", 4)
    code, out, err = run_cli(monkeypatch, capsys, "predict", model, src, "--out", tmp_path / "o", "--profile")
    assert code == 0, err
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    for stage in ("read", "preprocess", "network", "postprocess", "write", "wall"):
        assert stage in table, out
        assert float(table[stage][0]) >= 0 and float(table[stage][1]) >= 0
    assert float(table["network"][1]) > 0 and float(table["write"][1]) > 0  # ms per photo
    assert "(4 photo(s);" in out


# ------------------------------------------------------------------------- the ONNX graph and auto backend
def test_cached_onnx_graph_is_reused_and_rebuilt_when_the_model_changes(model: Path, tmp_path: Path) -> None:
    report = export_onnx(model)
    assert report.ok and "cached in" in report.graph  # the export optimised the graph once, beside the file
    caches = list(model.parent.glob(f"model.onnx{OPTIMIZED_SUFFIX}*"))
    assert len(caches) == 1
    first = caches[0].stat().st_ino, caches[0].stat().st_mtime_ns
    predictor = open_predictor(report.path)
    assert predictor.backend_note.endswith(f"cached graph {caches[0]})")
    assert (caches[0].stat().st_ino, caches[0].stat().st_mtime_ns) == first  # read, not written again
    image = np.asarray(Image.open(sorted(photos(tmp_path / "p", 1).iterdir())[0]).convert("RGB"))
    uncached = open_predictor(model, backend="torch").predict(image)
    assert np.array_equal(predictor.predict(image), uncached)

    # a different model under the same name: its graph is optimised again, the stale one removed
    other = save_artifact(tiny_artifact("baseline"), model)
    export_onnx(other, overwrite=True)
    now = list(model.parent.glob(f"model.onnx{OPTIMIZED_SUFFIX}*"))
    assert len(now) == 1 and now[0].name != caches[0].name
    assert open_predictor(report.path).backend_note.endswith(f"cached graph {now[0]})")


def test_the_graph_cache_goes_to_the_user_cache_when_the_model_folder_takes_no_file(model: Path,
                                                                                     tmp_path: Path) -> None:
    report = export_onnx(model)
    for p in model.parent.glob(f"*{OPTIMIZED_SUFFIX}*"):
        p.unlink()
    model.parent.chmod(0o555)
    try:
        if (model.parent / "probe").exists() or _writable(model.parent):
            pytest.skip("running as a user who may write into read-only folders")
        note = open_predictor(report.path).backend_note
    finally:
        model.parent.chmod(0o755)
    assert "cached in" in note and str(model.parent) not in note.split("cached in")[1]


def _writable(folder: Path) -> bool:
    try:
        (folder / "probe").write_text("x")
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


def _set_speed(onnx_path: Path, torch_ms: float, onnx_ms: float) -> None:
    props = read_onnx_props(onnx_path)
    facts = export_facts(props)
    facts["speed"] = {**facts["speed"], "torch_ms": torch_ms, "onnx_ms": onnx_ms}
    onnx_path.write_bytes(with_facts(onnx_path.read_bytes(), facts))


def test_auto_reports_its_choice(model: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    src = photos(tmp_path / "photos", 1)

    def backend_line(*extra: str) -> str:
        code, out, err = run_cli(monkeypatch, capsys, "predict", model, src, "--out", tmp_path / "o", "--overwrite",
                                 *extra)
        assert code == 0, err
        return next(line for line in out.splitlines() if line.startswith("backend:"))

    assert backend_line() == ("backend: PyTorch (no model.onnx exported beside model.masksmith; `masksmith "
                              "export` writes one)")
    report = export_onnx(model)
    _set_speed(report.path, torch_ms=10.0, onnx_ms=4.0)
    assert backend_line().startswith("backend: ONNX Runtime (model.onnx: 2.5x PyTorch's speed at 64x64 when exported")
    _set_speed(report.path, torch_ms=4.0, onnx_ms=10.0)
    assert backend_line() == "backend: PyTorch (model.onnx ran at 0.4x PyTorch's speed at 64x64 when exported, not " \
                             "faster)"
    assert backend_line("--backend", "onnx").startswith("backend: ONNX Runtime (model.onnx: 0.4x")  # asked for
    save_artifact(tiny_artifact("baseline"), model)  # retrained: the export no longer matches it
    choice = choose_backend(model)
    assert choice.backend == "torch" and "model.onnx was not exported from this model.masksmith" in choice.reason
    assert backend_line("--backend", "onnx").startswith("backend: ONNX Runtime (exported in memory; model.onnx was "
                                                        "not exported from this model.masksmith")


def test_export_prints_parity_and_speed(model: Path, monkeypatch, capsys) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "export", model)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("parity ONNX float vs PyTorch: max abs logit difference ")
    assert "equal mask pixels 100.000 % of" in lines[0]
    assert lines[1].startswith("speed: network alone at 64x64 on ") and "PyTorch " in lines[1] and "x)" in lines[1]
    facts = export_facts(read_onnx_props(model.with_suffix(".onnx")))
    assert facts["source"] == "model.masksmith" and len(facts["source_sha256"]) == 64
    assert facts["speed"]["torch_ms"] > 0 and facts["parity"]["equal_share"] == 1.0


# --------------------------------------------------------------------------------------------- start-up
def test_onnx_prediction_and_the_help_never_import_torch(model: Path, tmp_path: Path) -> None:
    """Nor, from the exported file, the onnx package: the file is parsed once, by ONNX Runtime."""
    report = export_onnx(model)
    src = photos(tmp_path / "photos", 2)
    script = (f"import sys; from masksmith.cli import main; sys.argv = ['masksmith', 'predict', {str(report.path)!r}, "
              f"{str(src)!r}, '--out', {str(tmp_path / 'o')!r}]\n"
              "try:\n    main()\nexcept SystemExit:\n    pass\n"
              "print('ONNX' if 'onnx' in sys.modules else 'NO ONNX',\n"
              "      'TORCH' if 'torch' in sys.modules else 'NO TORCH')")
    env = {"PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert run.stdout.strip().endswith("NO ONNX NO TORCH"), run.stdout + run.stderr
    assert len(list((tmp_path / "o").glob("*_mask.png"))) == 2
    for args in (["--help"], ["predict", "--help"]):
        script = (f"import sys; from masksmith.cli import main; sys.argv = ['masksmith', *{args!r}]\n"
                  "try:\n    main()\nexcept SystemExit:\n    pass\n"
                  "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')")
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
        assert run.stdout.strip().endswith("NO TORCH"), args


# ------------------------------------------------------------------------------------------- evaluation
def test_evaluation_uses_more_than_one_thread_and_decodes_each_image_once(tmp_path: Path) -> None:
    from masksmith import service
    from masksmith.data import load_dataset
    from masksmith.data.schema import Sample
    from masksmith.data.synthetic import make_sample_dataset
    from masksmith.models.artifact import ModelArtifact
    from masksmith.models.semantic import ModelConfig, SegmentationNet, build_model

    data = make_sample_dataset(tmp_path / "cars", n_images=6, size=(96, 72), seed=3)
    dataset = load_dataset(data)
    config = ModelConfig(arch="baseline", num_outputs=len(dataset.class_names) + 1, extra={"width": 8})
    net = SegmentationNet(build_model(config, pretrained=False), (0.5,) * 3, (0.5,) * 3)
    artifact = ModelArtifact("semantic", config.to_dict(), list(dataset.class_names),
                             [[0, 0, 0], *([[255, 0, 0]] * len(dataset.class_names))],
                             {"mean": [0.5] * 3, "std": [0.5] * 3, "input_mode": "resize", "size": [64, 64]},
                             state_dict=net.state_dict())
    predictor = open_predictor(save_artifact(artifact, tmp_path / "model.masksmith"))
    network_calls: list[tuple[int, int]] = []
    net = predictor.net

    def network(x):
        network_calls.append((threading.get_ident(), torch.get_num_threads()))
        return net(x)

    predictor.net = network
    loads: list[tuple[str, int]] = []
    original = Sample.load_image

    def counting(self):
        loads.append((self.name, threading.get_ident()))
        return original(self)

    Sample.load_image = counting
    try:
        evaluation = service.evaluate(predictor, dataset, tmp_path / "eval", worst=2)
    finally:
        Sample.load_image = original
    names = [s.name for s in dataset.samples]
    assert sorted(n for n, _ in loads) == sorted(evaluation_names(evaluation, names))  # each image decoded once
    assert len(network_calls) == evaluation.images  # and predicted once: the galleries reuse the predictions
    assert (tmp_path / "eval" / "worst.png").exists() and (tmp_path / "eval" / "best.png").exists()
    network_threads = {t for t, _ in network_calls}
    assert not network_threads & {t for _, t in loads}  # photos are decoded beside the network, not before it
    if every_core() > 1:
        assert {n for _, n in network_calls} == {every_core()}  # the network computes on every core


def evaluation_names(evaluation, names: list[str]) -> list[str]:
    scored = [i.image for i in evaluation.image_scores]
    assert set(scored) <= set(names)
    return scored


def test_gallery_keeper_keeps_what_ranked_would_show() -> None:
    from masksmith.evaluate.gallery import GalleryKeeper
    from masksmith.evaluate.result import ImageScore, ranked

    rng = np.random.default_rng(5)
    for trial in range(30):
        count = int(rng.integers(0, 5))
        scores = [float(v) for v in rng.choice([0.1, 0.2, 0.5, 0.7, np.nan], size=int(rng.integers(0, 15)))]
        scores = [None if k % 7 == 3 else s for k, s in enumerate(scores)]
        keeper = GalleryKeeper(count)
        for k, s in enumerate(scores):
            keeper.offer(f"im{k}", s, lambda k=k: f"row{k}")
        worst, best = ranked([ImageScore(f"im{k}", s, []) for k, s in enumerate(scores)])
        wanted = {i.image for i in worst[:count]} | {i.image for i in best[:count]}
        assert set(keeper.rows) == wanted, trial
        assert all(keeper.row(n, lambda: None) == f"row{n[2:]}" for n in wanted)
        assert len(keeper.rows) <= 2 * count
