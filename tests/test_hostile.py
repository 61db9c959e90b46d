"""Hostile and careless input (issue 13): each case ends in one clear line naming the file and the fix, writes
nothing outside its output folder, leaves the inputs as they were, and never crashes or shows a traceback."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TrainedRun, copy_run
from conftest import run_cli as run_in_process
from masksmith.core.errors import DatasetError
from masksmith.data import load_dataset


# ---------------------------------------------------------------------------------------------------- helpers
def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """The CLI in process: (exit code, stdout + stderr). An exception escaping main() fails the test."""
    code, out, err = run_in_process(monkeypatch, capsys, *args)
    return code, out + err


def checksums(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def coco_doc(images: list[dict], annotations: list[dict] | None = None, categories: list[dict] | None = None):
    return {"images": images, "annotations": annotations or [],
            "categories": categories if categories is not None else [{"id": 1, "name": "part"}]}


def write_coco(folder: Path, doc: dict, images: dict[str, tuple[int, int]] | None = None) -> Path:
    """folder/annotations.json and the named images (w, h) beside it."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, (w, h) in (images or {}).items():
        Image.new("RGB", (w, h), (90, 120, 150)).save(folder / name)
    (folder / "annotations.json").write_text(json.dumps(doc))
    return folder / "annotations.json"


# ---------------------------------------------------------------------------------------- 3. silently wrong data
def test_coco_duplicate_image_ids_name_both_files(tmp_path: Path) -> None:
    file = write_coco(tmp_path / "d", coco_doc([{"id": 1, "file_name": "a.png", "width": 8, "height": 8},
                                                {"id": 1, "file_name": "b.png", "width": 8, "height": 8}]),
                      {"a.png": (8, 8), "b.png": (8, 8)})
    for strict in (True, False):  # lenient too: which masks belong to which photo is unknown
        with pytest.raises(DatasetError) as err:
            load_dataset(file, strict=strict)
        text = str(err.value)
        assert str(file) in text and "image id 1" in text and "'a.png'" in text and "'b.png'" in text
        assert "Fix: give each image its own id" in text


def test_coco_duplicate_category_ids_are_an_error(tmp_path: Path) -> None:
    file = write_coco(tmp_path / "d", coco_doc([{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
                                               categories=[{"id": 3, "name": "door"}, {"id": 3, "name": "hood"}]),
                      {"a.png": (8, 8)})
    with pytest.raises(DatasetError, match=r"category id 3 is declared twice, as 'door' and as 'hood'.*Fix: "):
        load_dataset(file, strict=False)


# ----------------------------------------------------------------------------------------------- 4. RLE bombs
def rle_doc(segmentation: dict, w: int = 8, h: int = 8) -> dict:
    return coco_doc([{"id": 1, "file_name": "a.png", "width": w, "height": h}],
                    [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": segmentation, "iscrowd": 1}])


@pytest.mark.parametrize(("segmentation", "words"), [
    ({"size": [200000, 200000], "counts": "PPYo1"}, "RLE size is 200000x200000 but its image is 8x8"),
    ({"size": [8, 8], "counts": [10**10]}, "do not add up"),
    ({"size": [8, 8], "counts": [64, -1, 1]}, "do not add up"),
    ({"size": [8, 8], "counts": "0000zzzz"}, "cannot be decoded"),
    ({"size": [8, 8], "counts": "\u00e9t\u00e9"}, "cannot be decoded"),
    ({"size": [0, 8], "counts": ""}, "is empty"),
])
def test_rle_sizes_and_counts_are_checked_before_decoding(tmp_path: Path, segmentation: dict, words: str) -> None:
    file = write_coco(tmp_path / "d", rle_doc(segmentation), {"a.png": (8, 8)})
    with pytest.raises(DatasetError) as err:
        load_dataset(file)
    assert words in str(err.value) and str(file) in str(err.value) and "annotation 1" in str(err.value)
    ds = load_dataset(file, strict=False)  # lenient: the region is dropped, the photo kept
    assert len(ds.samples) == 1 and ds.samples[0].regions == [] and ds.problems[0].dropped == "region"


def test_rle_larger_than_any_photo_is_refused_when_the_image_size_is_unknown(tmp_path: Path) -> None:
    doc = rle_doc({"size": [200000, 200000], "counts": "PPYo1"}, w=0, h=0)
    file = write_coco(tmp_path / "d", doc)
    with pytest.raises(DatasetError, match="more than the 178 megapixels"):
        load_dataset(file, need_pixels=False)


def test_inspect_of_a_200000_pixel_rle_does_not_crash_the_process(tmp_path: Path) -> None:
    """It segfaulted in pycocotools once: run in a child process, so a regression cannot take pytest down."""
    file = write_coco(tmp_path / "d", rle_doc({"size": [200000, 200000], "counts": "PPYo1"}, w=0, h=0))
    done = subprocess.run([sys.executable, "-m", "masksmith.cli", "dataset", "inspect", str(file)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: {file}") and "megapixels" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_valid_rles_still_read(tmp_path: Path) -> None:
    import numpy as np
    from pycocotools import mask as mask_utils

    m = np.zeros((8, 8), np.uint8, order="F")
    m[2:5, 1:7] = 1
    packed = mask_utils.encode(m)
    for seg in ({"size": [8, 8], "counts": packed["counts"].decode()}, {"size": [8, 8], "counts": [17, 3, 5, 3, 5,
                                                                                              3, 28]}):
        ds = load_dataset(write_coco(tmp_path / "ok", rle_doc(seg), {"a.png": (8, 8)}))
        assert len(ds.samples[0].regions) == 1


# ------------------------------------------------------------------------------- 2. resume and the model file
@pytest.fixture(scope="module")
def tiny_cars(tmp_path_factory) -> Path:
    from masksmith.data.synthetic import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("cars") / "cars", n_images=8, size=(64, 48), seed=3)


@pytest.fixture(scope="module")
def trained_run(semantic_run: TrainedRun) -> Path:
    """The session's shared semantic run (read only): model.masksmith and checkpoints/last.ckpt."""
    return semantic_run.run


@pytest.fixture
def run_copy(semantic_run: TrainedRun, tmp_path: Path) -> Path:
    return copy_run(semantic_run, tmp_path / "runs")


def resume(run: Path):
    """One epoch more than the run has trained."""
    from masksmith.train.config import TrainConfig
    from masksmith.train.semantic import train_semantic

    config = TrainConfig.from_yaml(run / "config.yaml")
    config.epochs += 1
    return train_semantic(config, run, resume=True)


def test_a_damaged_checkpoint_stops_the_resume_and_touches_nothing(run_copy: Path) -> None:
    from masksmith.core.errors import MasksmithError

    last = run_copy / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:200])  # cut short, as a full disk or a kill leaves it
    before, files = checksums(run_copy), listing(run_copy)
    with pytest.raises(MasksmithError) as err:
        resume(run_copy)
    text = str(err.value)
    assert text.startswith(f"{last}: cannot be read as a training checkpoint") and "nothing was changed" in text
    assert "Fix: delete it" in text and "\n" not in text
    assert checksums(run_copy) == before and listing(run_copy) == files  # no interrupted.ckpt, model untouched


def test_a_damaged_checkpoint_is_one_line_from_the_cli(run_copy: Path, monkeypatch, capsys) -> None:
    last = run_copy / "checkpoints" / "last.ckpt"
    last.write_bytes(b"\x80\x02 not a checkpoint")
    before = checksums(run_copy)
    code, out = run_cli(monkeypatch, capsys, "train", "--resume", run_copy)
    assert code == 2 and out.strip() == out.strip().splitlines()[0] and "Traceback" not in out
    assert f"error: {last}: cannot be read as a training checkpoint" in out
    assert checksums(run_copy) == before


def test_resume_takes_the_checkpoint_furthest_along_in_training_not_the_newest_file(run_copy: Path) -> None:
    import os

    import torch

    from masksmith.train.run import resume_checkpoint

    ckpts = run_copy / "checkpoints"
    state = torch.load(ckpts / "last.ckpt", weights_only=True)
    older = dict(state, global_step=0, epoch=0)
    torch.save(older, ckpts / "interrupted.ckpt")  # written later, but from earlier in training
    os.utime(ckpts / "last.ckpt", (1, 1))
    assert resume_checkpoint(run_copy) == ckpts / "last.ckpt"
    torch.save(dict(state, global_step=state["global_step"] + 1), ckpts / "interrupted.ckpt")
    os.utime(ckpts / "interrupted.ckpt", (0, 0))  # older file, further in training
    assert resume_checkpoint(run_copy) == ckpts / "interrupted.ckpt"


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_a_checkpoint_carrying_code_is_refused_even_when_torch_is_told_to_trust_it(run_copy: Path, monkeypatch
                                                                                 ) -> None:
    import torch

    from masksmith.core.errors import MasksmithError

    monkeypatch.chdir(run_copy)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # switches torch's default to full pickle
    last = run_copy / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    state["callbacks"]["evil"] = _Payload()
    torch.save(state, last)
    before = checksums(run_copy)
    with pytest.raises(MasksmithError, match="cannot be read as a training checkpoint"):
        resume(run_copy)
    assert not (run_copy / "pwned").exists() and checksums(run_copy) == before


def test_a_checkpoint_of_another_model_leaves_the_model_file_alone(run_copy: Path) -> None:
    import torch

    from masksmith.core.errors import MasksmithError

    last = run_copy / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    state["state_dict"] = {"net.other.weight": torch.zeros(3)}
    torch.save(state, last)
    before, files = checksums(run_copy), listing(run_copy)
    with pytest.raises(MasksmithError, match="does not fit this run's model.*nothing in the run folder was changed"):
        resume(run_copy)  # asks for 2 epochs: a resume that went ahead would record that in config.yaml
    assert checksums(run_copy) == before and listing(run_copy) == files  # config.yaml and data.json too
    assert not (run_copy / "checkpoints" / "interrupted.ckpt").exists()


def test_the_model_file_is_written_only_from_trained_states_never_worse_ones() -> None:
    from types import SimpleNamespace

    from masksmith.train.callbacks import KeepModelFile

    saved = []
    keep = KeepModelFile(lambda module, reason: saved.append(reason), "val_miou")
    keep.load_state_dict({"best": 0.5})  # a resumed run remembers its best
    module = SimpleNamespace(current_epoch=3)
    trainer = SimpleNamespace(is_global_zero=True, callback_metrics={"val_miou": 0.3})
    keep.on_exception(trainer, module, RuntimeError("at start"))  # no step yet: nothing written
    keep.on_train_epoch_end(trainer, module)
    assert saved == []
    keep.on_train_batch_end(trainer, module, None, None, 0)
    keep.on_train_epoch_end(trainer, module)  # worse than the best: kept as it is
    keep.on_exception(trainer, module, KeyboardInterrupt())  # a model is already kept: not replaced
    assert saved == []
    trainer.callback_metrics["val_miou"] = 0.7
    keep.on_train_epoch_end(trainer, module)
    assert saved == ["best"] and keep.saved == ("best", 4)


class _CtrlC:
    def __call__(self, trainer, module, outputs, batch, batch_idx) -> None:
        if batch_idx == 1:
            raise KeyboardInterrupt


def test_ctrl_c_exits_130_saying_what_was_kept_and_how_to_resume(tiny_cars: Path, tmp_path: Path,
                                                                  monkeypatch, capsys) -> None:
    from masksmith.models.artifact import load_artifact
    from masksmith.train.callbacks import History

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(History, "on_train_batch_end", _CtrlC(), raising=False)
    code, out = run_cli(monkeypatch, capsys, "train", tiny_cars, "--model", "baseline", "--size", "32",
                        "--epochs", "1", "--batch-size", "2", "--weights", "none", "--name", "c")
    run = Path("runs") / "c"
    assert code == 130 and "Traceback" not in out
    line = out.strip().splitlines()[-1]
    assert line == (f"interrupted: training stopped by Ctrl-C in epoch 1 (step 2). Kept: {run / 'model.masksmith'} "
                    f"(interrupted, epoch 1) and the checkpoint {run / 'checkpoints' / 'interrupted.ckpt'}. "
                    f"Fix: resume with: masksmith train --resume {run}")
    assert load_artifact(run).training["reason"] == "interrupted"
    assert (run / "config.yaml").exists()  # written when training started: the run can be understood
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    code, out = run_cli(monkeypatch, capsys, "train", "--resume", str(run))
    assert code == 0, out
    assert load_artifact(run).training["epoch"] == 1 and load_artifact(run).training["reason"] != "interrupted"


# ------------------------------------------------------------------------------------------------------ zips
def zip_folder(folder: Path, out: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    return out


def crafted_zip(path: Path, members: int, size: int) -> Path:
    """A zip of `members` members of `size` zero bytes each, written from one deflated stream (building it
    with zipfile would compress gigabytes)."""
    import struct
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = packer.compress(bytes(size)) + packer.flush()
    crc = zlib.crc32(bytes(size))
    central, offset = b"", 0
    with path.open("wb") as f:
        for k in range(members):
            name = f"zeros_{k:03d}.bin".encode()
            head = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 33, crc, len(data), size, len(name), 0)
            f.write(head + name + data)
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 33, crc, len(data), size,
                                   len(name), 0, 0, 0, 0, 0, offset) + name
            offset += len(head) + len(name) + len(data)
        f.write(central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, members, members, len(central), offset, 0))
    return path


@pytest.mark.parametrize(("members", "size", "words"), [
    (512, 16 << 20, "entry 'zeros_000.bin' inflates"),  # 8 MB declaring 8 GiB, each member a bomb
    (600, 1 << 20, "would unpack 0.6 MiB into 600.0 MiB"),  # no member above the floor: the whole zip counts
])
def test_512_members_of_16_mib_are_refused_before_anything_is_written(tmp_path: Path, monkeypatch, members: int,
                                                                      size: int, words: str) -> None:
    from masksmith.core.errors import ArchiveError

    monkeypatch.setenv("MASKSMITH_CACHE", str(tmp_path / "cache"))
    bomb = crafted_zip(tmp_path / "photos.zip", members, size)
    assert bomb.stat().st_size < 10 << 20
    with pytest.raises(ArchiveError) as err:
        load_dataset(bomb)
    text = str(err.value)
    assert text.startswith(f"{bomb}: ") and words in text and "zip bomb" in text and "cache" not in text
    assert not (tmp_path / "cache").exists() or listing(tmp_path / "cache") in ([], ["zips"])


def test_a_zip_that_breaks_mid_extraction_leaves_no_partial_folder(tmp_path: Path, monkeypatch) -> None:
    import zipfile

    from masksmith.core.errors import ArchiveError

    monkeypatch.setenv("MASKSMITH_CACHE", str(tmp_path / "cache"))
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.txt", "first member, fine")
        zf.writestr("b.txt", "the second member, which gets damaged " * 50)
    raw = bytearray(archive.read_bytes())
    at = raw.index(b"b.txt") + 5 + 10  # inside b.txt's compressed data
    raw[at:at + 8] = b"\xff" * 8
    archive.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match=rf"^{archive}: is damaged and cannot be extracted"):
        load_dataset(archive)
    assert listing(tmp_path / "cache") == ["zips"]  # no .extract-* folder, no half extraction


def test_a_full_disk_while_extracting_names_the_zip_and_says_no_space_left(small_coco: Path, tmp_path: Path,
                                                                          monkeypatch) -> None:
    import errno

    from masksmith.core.errors import ArchiveError
    from masksmith.data import archive as archive_module

    monkeypatch.setenv("MASKSMITH_CACHE", str(tmp_path / "cache"))
    data = zip_folder(small_coco, tmp_path / "data.zip")
    real_open = Path.open

    def full(self, mode="r", *args, **kwargs):
        if "w" in mode and ".extract-" in str(self):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", full)
    with pytest.raises(ArchiveError) as err:
        archive_module.extract_zip(data)
    text = str(err.value)
    assert text.startswith(f"{data}: cannot be extracted into the cache") and "No space left on device, ENOSPC" in text
    assert "MASKSMITH_CACHE" in text
    assert listing(tmp_path / "cache") == ["zips"]


def test_the_cache_keeps_the_most_recently_used_extractions(small_coco: Path, tmp_path: Path, monkeypatch) -> None:
    import os
    import time
    import zipfile

    from masksmith.data import archive as archive_module

    monkeypatch.setenv("MASKSMITH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(archive_module, "MAX_CACHE_ENTRIES", 2)
    zips = []
    for k in range(3):
        z = zip_folder(small_coco, tmp_path / f"data{k}.zip")
        with zipfile.ZipFile(z, "a") as zf:
            zf.writestr("note.txt", f"copy {k}")  # another content, another cache entry
        zips.append(z)
    first = archive_module.extract_zip(zips[0])
    second = archive_module.extract_zip(zips[1])
    old = time.time() - 100
    os.utime(second / ".masksmith-used", (old, old))
    archive_module.extract_zip(zips[0])  # used again: now the most recent
    third = archive_module.extract_zip(zips[2])
    assert first.exists() and third.exists() and not second.exists()
    assert len(list((tmp_path / "cache" / "zips").iterdir())) == 2
    monkeypatch.setattr(archive_module, "MAX_CACHE_BYTES", 1)  # by size: all but the one in use go
    archive_module.extract_zip(zips[1])
    assert [p.name for p in (tmp_path / "cache" / "zips").iterdir()] == [second.name]


def test_two_processes_extracting_one_zip_both_get_the_complete_folder(small_coco: Path, tmp_path: Path) -> None:
    import os
    import zipfile


    data = zip_folder(small_coco, tmp_path / "data.zip")
    with zipfile.ZipFile(data, "a") as zf:  # enough members that the two extractions overlap
        for k in range(400):
            zf.writestr(f"extra/{k:03d}.txt", "x" * 2000)
    env = {**os.environ, "MASKSMITH_CACHE": str(tmp_path / "cache")}
    code = ("import sys; from masksmith.data.archive import extract_zip; "
            "print(extract_zip(sys.argv[1]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(data)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert results[0][0] == results[1][0]
    folder = Path(results[0][0].strip())
    assert len(list((folder / "extra").iterdir())) == 400
    assert [p.name for p in (tmp_path / "cache" / "zips").iterdir()] == [folder.name]


def test_the_loser_of_an_extraction_race_uses_the_winners_folder(small_coco: Path, tmp_path: Path,
                                                                 monkeypatch) -> None:
    import os

    from masksmith.data import archive as archive_module

    monkeypatch.setenv("MASKSMITH_CACHE", str(tmp_path / "cache"))
    data = zip_folder(small_coco, tmp_path / "data.zip")
    real_replace = os.replace
    calls = []

    def slow_replace(src, dst):
        calls.append(dst)
        if len(calls) == 1:  # another process finishes first
            monkeypatch.setattr(archive_module.os, "replace", real_replace)
            winner = archive_module.extract_zip(data)
            (winner / "winner.txt").write_text("w")
        return real_replace(src, dst)

    monkeypatch.setattr(archive_module.os, "replace", slow_replace)
    folder = archive_module.extract_zip(data)
    assert (folder / "winner.txt").exists()
    assert [p.name for p in (tmp_path / "cache" / "zips").iterdir()] == [folder.name]


def test_problems_inside_a_zip_name_the_zip_not_the_cache(tmp_path: Path, monkeypatch) -> None:
    import zipfile

    monkeypatch.setenv("MASKSMITH_CACHE", str(tmp_path / "cache"))
    doc = coco_doc([{"id": 1, "file_name": "a.png", "width": 8, "height": 8},
                    {"id": 1, "file_name": "b.png", "width": 8, "height": 8}])
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("set/annotations.json", json.dumps(doc))
    with pytest.raises(DatasetError) as err:
        load_dataset(archive)
    assert str(err.value).startswith(f"{archive}:set/annotations.json: image id 1") and "cache" not in str(err.value)


# ----------------------------------------------------------------------------------------------- model files
@pytest.mark.parametrize(("change", "words"), [
    (lambda p: p["preprocessing"].update(size=[40000, 40000]), "asks for 40000x40000 inputs, more than the 8192"),
    (lambda p: p.update(flip_pairs=[["left_door", "right_door"]]), "names 'left_door', which is not one of"),
    (lambda p: p.update(classes="body"), "classes must be a list"),
    (lambda p: p.update(colors=[[0, 0, 0]]), "colors must be"),
    (lambda p: p["preprocessing"].update(std=[0, 1, 1]), "std [0, 1, 1] must be above 0"),
    (lambda p: p["preprocessing"].update(size=["64", 64]), "size must be [height, width]"),
    (lambda p: p["preprocessing"].update(input_mode="stretch"), "input_mode 'stretch'"),
    (lambda p: p.update(task=["semantic"]), "task is ['semantic']"),
    (lambda p: p.update(state_dict={"w": [1, 2]}), "state_dict must map names to tensors"),
])
def test_model_file_fields_are_checked_when_it_is_opened(trained_run: Path, tmp_path: Path, change, words: str,
                                                         monkeypatch, capsys) -> None:
    import torch

    from masksmith.core.errors import ModelError
    from masksmith.models.artifact import load_artifact

    payload = torch.load(trained_run / "model.masksmith", weights_only=True)
    change(payload)
    bad = tmp_path / "model.masksmith"
    torch.save(payload, bad)
    with pytest.raises(ModelError) as err:
        load_artifact(bad)
    assert str(err.value).startswith(f"{bad}: ") and words in str(err.value) and "Fix: " in str(err.value)
    photo = tmp_path / "photos"
    photo.mkdir()
    from PIL import Image

    Image.new("RGB", (20, 20)).save(photo / "a.png")
    code, out = run_cli(monkeypatch, capsys, "predict", bad, photo, "--out", tmp_path / "preds")
    assert code == 2 and words in out and "Traceback" not in out and not (tmp_path / "preds").exists()


# ------------------------------------------------------------------------------------- command-line ranges
@pytest.mark.parametrize(("args", "words"), [
    (["--batch-size", "0"], "--batch-size must be a whole number from 1 to 4096, not 0."),
    (["--epochs", "-2"], "--epochs must be a whole number from 1 to 1000000, not -2."),
    (["--epochs", "0"], "--epochs must be a whole number from 1 to 1000000, not 0."),
    (["--size", "0"], "--size must be a whole number from 16 to 8192, not 0."),
    (["--val", "1.5"], "--val must be a number from 0 to 0.95, not 1.5."),
    (["--lr", "nan"], "--lr must be a number from 0 to 10, not nan."),
    (["--shrink", "inf"], "--shrink must be a number from 1 to 64, not inf."),
])
def test_training_values_out_of_range_are_usage_errors(tmp_path: Path, monkeypatch, capsys, args: list[str],
                                                         words: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = run_cli(monkeypatch, capsys, "train", tmp_path / "does-not-matter", *args)
    assert code == 2 and "Traceback" not in out
    assert out.strip().splitlines() == ["Usage: masksmith train [OPTIONS] [data]", f"error: {words}"]
    assert listing(tmp_path) == []  # no runs/ folder either


@pytest.mark.parametrize(("args", "words"), [
    (["--time", "-5m"], "--time is -300.0; it must be a number above 0"),
    (["--time", "999999h"], "--time is 3599996400.0; it must be a number of at most 31622400"),
    (["--lr", "0"], "--lr is 0.0; it must be a number above 0"),
    (["--time", "soon"], "time 'soon' is not a duration"),
])
def test_training_values_the_library_refuses_are_one_line_before_the_data_is_read(
        tmp_path: Path, monkeypatch, capsys, args: list[str], words: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = run_cli(monkeypatch, capsys, "train", tmp_path / "does-not-matter", *args)
    assert code == 2 and words in out and "Fix: " in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1 and listing(tmp_path) == []  # no runs/ folder either


def test_runs_that_is_a_file_is_refused_before_training(tiny_cars: Path, tmp_path: Path, monkeypatch,
                                                        capsys) -> None:
    runs = tmp_path / "runs"
    runs.write_text("my notes")
    code, out = run_cli(monkeypatch, capsys, "train", tiny_cars, "--model", "baseline", "--epochs", "1",
                        "--runs", runs)
    assert code == 2 and out.strip() == f"error: {runs}: is a file, not a folder. Fix: choose a folder for the " \
                                        "outputs."
    assert runs.read_text() == "my notes"


def test_a_read_only_output_folder_is_refused_before_work_starts(small_coco: Path, tmp_path: Path, monkeypatch,
                                                                 capsys) -> None:
    import errno
    import tempfile

    out = tmp_path / "readonly"
    out.mkdir()
    real = tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):  # the tests run as root, whom chmod does not stop
        if dir is not None and Path(dir) == out:
            raise PermissionError(errno.EACCES, "Permission denied", str(out))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code, text = run_cli(monkeypatch, capsys, "dataset", "convert", small_coco, out, "--to", "voc")
    assert code == 2 and text.strip() == (f"error: {out}: cannot write (Permission denied, EACCES). Fix: choose a "
                                          "folder you may write to.")
    assert listing(out) == []


def test_a_full_disk_says_no_space_left(small_coco: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import errno

    from masksmith.core import outputs

    real = outputs.os.replace
    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs.os, "replace", full)
    out = tmp_path / "out"
    code, text = run_cli(monkeypatch, capsys, "dataset", "convert", small_coco, out, "--to", "masks")
    monkeypatch.setattr(outputs.os, "replace", real)
    assert code == 2 and "Traceback" not in text
    line = text.strip().splitlines()[-1]
    assert line.startswith(f"error: {out}/") and "cannot write (No space left on device, ENOSPC)" in line
    assert "Fix: free some disk space" in line
    assert [p for p in listing(out) if p.endswith(".tmp")] == []  # no temporary file is left behind


def test_os_error_names_the_errno_even_without_a_message() -> None:
    import errno

    from masksmith.core.outputs import os_error

    text = str(os_error(OSError(errno.ENOSPC, ""), "/data/out.png"))
    assert text == "/data/out.png: cannot write (No space left on device, ENOSPC). Fix: free some disk space or " \
                   "choose a folder on another disk."


@pytest.fixture
def tiles(small_coco: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A tiles.json from `dataset tile` and a folder of per-tile masks (the tiles' own masks)."""
    from masksmith.data.tiles import tile_dataset, write_manifest

    ds = load_dataset(small_coco)
    tiled, manifest = tile_dataset(ds, 32)
    out = tmp_path / "tiles"
    write_manifest(manifest, out)
    preds = tmp_path / "preds"
    preds.mkdir()
    from PIL import Image

    for t in manifest["tiles"]:
        Image.new("L", (32, 32), 1).save(preds / Path(t["name"]).with_suffix(".png").name)
    return out / "tiles.json", preds


@pytest.mark.parametrize(("change", "words"), [
    (lambda m: m["tiles"][0].update(x=10_000), "starts at (10000, 0), outside its"),
    (lambda m: m["tiles"][0].update(x=True), "lacks a name, a listed source or x/y"),
    (lambda m: m["tiles"][0].update(source=["a"]), "lacks a name, a listed source or x/y"),
    (lambda m: m["sources"].update({next(iter(m["sources"])): [100_000, 100_000]}), "more than the 178 megapixels"),
    (lambda m: m["sources"].update({next(iter(m["sources"])): "big"}), "not [width, height]"),
    (lambda m: m.update(tiles={}), "it needs 'sources' and 'tiles'"),
])
def test_stitch_with_a_bad_tiles_json_is_one_line(tiles, tmp_path: Path, monkeypatch, capsys, change,
                                                  words: str) -> None:
    manifest_path, preds = tiles
    manifest = json.loads(manifest_path.read_text())
    change(manifest)
    bad = tmp_path / "bad_tiles.json"
    bad.write_text(json.dumps(manifest))
    code, out = run_cli(monkeypatch, capsys, "dataset", "stitch", bad, preds, tmp_path / "full")
    assert code == 2 and out.startswith(f"error: {bad}: is not a tiles.json") and words in out
    assert "Traceback" not in out and not any((tmp_path / "full").glob("*.png"))


def test_stitch_with_a_tile_mask_unlike_the_others_is_one_line(tiles, tmp_path: Path, monkeypatch, capsys) -> None:
    from PIL import Image

    manifest_path, preds = tiles
    odd = sorted(preds.iterdir())[1]
    Image.new("RGB", (32, 32)).save(odd)
    code, out = run_cli(monkeypatch, capsys, "dataset", "stitch", manifest_path, preds, tmp_path / "full")
    assert code == 2 and out.startswith(f"error: {odd}: the tile's mask is uint8 32x32x3, unlike") and \
        "Traceback" not in out


def test_preview_with_another_suffix_is_refused_before_reading(small_coco: Path, tmp_path: Path, monkeypatch,
                                                               capsys) -> None:
    code, out = run_cli(monkeypatch, capsys, "dataset", "preview", tmp_path / "nothing-here", "--out",
                        tmp_path / "p.txt")
    assert code == 2 and out.strip() == (f"error: {tmp_path / 'p.txt'}: the preview is a PNG picture; .txt is "
                                         "another kind of file. Fix: name the output like p.png.")
    assert not (tmp_path / "p.txt").exists()


def test_preview_with_no_image_left_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    file = write_coco(tmp_path / "d", coco_doc([{"id": 1, "file_name": "gone.png", "width": 8, "height": 8}]))
    code, out = run_cli(monkeypatch, capsys, "dataset", "preview", file, "--lenient", "--out", tmp_path / "p.png")
    assert code == 2 and "holds no image left to use" in out and "gone.png" in out and "Traceback" not in out
    assert not (tmp_path / "p.png").exists()


# ----------------------------------------------------------------------- 1. and 2. paths, files, outputs
def photo_set(folder: Path, names: list[str], size: tuple[int, int] = (24, 20)) -> Path:
    from PIL import Image

    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (200, 40, 40)).save(folder / name)
    return folder


def escaping_coco(tmp_path: Path) -> Path:
    """A COCO set whose file_name climbs out with ../ (the photo itself sits beside the annotations)."""
    doc = coco_doc([{"id": 1, "file_name": "../../photo.jpg", "width": 24, "height": 20}],
                   [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[2, 2, 20, 2, 20, 15, 2, 15]]}])
    data = write_coco(tmp_path / "work" / "data", doc).parent
    photo_set(data, ["photo.jpg"])
    return data


@pytest.mark.parametrize("command", [["convert", "--to", "coco"], ["tile", "--to", "coco", "--size", "16"],
                                     ["split", "--to", "coco", "--val", "0"]])
def test_names_that_climb_out_never_write_outside_the_output(tmp_path: Path, monkeypatch, capsys,
                                                            command: list[str]) -> None:
    data = escaping_coco(tmp_path)
    out = tmp_path / "work" / "out"
    around = listing(tmp_path)
    inputs = checksums(data)
    code, text = run_cli(monkeypatch, capsys, "dataset", command[0], data, out, *command[1:])
    assert code == 0, text
    assert [p for p in listing(tmp_path) if not p.startswith("work/out")] == around  # nothing beside or above
    assert checksums(data) == inputs
    written = json.loads(next(out.rglob("annotations.json")).read_text())
    assert all(".." not in img["file_name"] and not img["file_name"].startswith("/") for img in written["images"])


def test_an_absolute_file_name_never_copies_a_file_from_outside_the_data_set(tmp_path: Path, monkeypatch,
                                                                             capsys) -> None:
    private = photo_set(tmp_path / "home", ["private.jpg"]) / "private.jpg"
    doc = coco_doc([{"id": 1, "file_name": str(private), "width": 24, "height": 20}])
    data = write_coco(tmp_path / "data", doc)
    code, text = run_cli(monkeypatch, capsys, "dataset", "convert", data, tmp_path / "out", "--to", "coco")
    assert code == 2 and "1 of 1 image(s) is missing: private.jpg" in text and "Traceback" not in text
    assert not any(p.name == "private.jpg" for p in (tmp_path / "out").rglob("*"))


def test_convert_into_the_folder_holding_the_source_is_refused(small_coco: Path, monkeypatch, capsys) -> None:
    before = checksums(small_coco)
    code, text = run_cli(monkeypatch, capsys, "dataset", "convert", small_coco / "annotations.json", small_coco,
                         "--to", "coco")
    assert code == 2 and text.startswith(f"error: {small_coco}: ") and "Fix: choose an output folder" in text
    assert checksums(small_coco) == before


def test_convert_never_replaces_foreign_files_without_overwrite(small_coco: Path, tmp_path: Path, monkeypatch,
                                                                capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "annotations.json").write_text("the user's own")
    code, text = run_cli(monkeypatch, capsys, "dataset", "convert", small_coco, out, "--to", "coco")
    assert code == 2 and "was not written by masksmith" in text and "--overwrite" in text
    assert (out / "annotations.json").read_text() == "the user's own"
    code, _ = run_cli(monkeypatch, capsys, "dataset", "convert", small_coco, out, "--to", "coco", "--overwrite")
    assert code == 0 and json.loads((out / "annotations.json").read_text())["images"]


def test_predict_into_the_photo_folder_is_refused_and_same_stems_stay_apart(trained_run: Path, tmp_path: Path,
                                                                          monkeypatch, capsys) -> None:
    import os

    photos = photo_set(tmp_path / "photos", ["a/car.jpg", "b/car.jpg", "car.png", "car_mask.png"])
    before = checksums(photos)
    inputs = [photos / "a", photos / "b", photos]
    code, text = run_cli(monkeypatch, capsys, "predict", trained_run, *inputs, "--out", photos)
    assert code == 2 and text.startswith(f"error: {photos}: ") and "the input" in text
    assert "Fix: choose an output" in text
    assert checksums(photos) == before
    out = tmp_path / "preds"
    code, text = run_cli(monkeypatch, capsys, "predict", trained_run, *inputs, "--out", out)
    assert code == 0 and "predicted 4 image(s)" in text
    masks = sorted(p.name for p in out.glob("*_mask.png"))
    assert len(masks) == 4 and len(set(masks)) == 4  # a/car.jpg, b/car.jpg, car.png and car_mask.png
    umask = os.umask(0)
    os.umask(umask)
    assert {p.stat().st_mode & 0o777 for p in out.glob("*.png")} == {0o666 & ~umask}  # not mkstemp's 0600
    code, text = run_cli(monkeypatch, capsys, "predict", trained_run, *inputs, "--out", out)  # again: replaces its
    assert code == 0 and len(list(out.glob("*_mask.png"))) == 4  # own files, never reads them as photos


def test_class_names_become_safe_file_names_in_extract(trained_run: Path, tmp_path: Path, monkeypatch,
                                                       capsys) -> None:
    import torch

    payload = torch.load(trained_run / "model.masksmith", weights_only=True)
    payload["classes"] = ["front/left wheel", "../x", "window", "light"]
    payload["flip_pairs"] = []
    model = tmp_path / "model.masksmith"
    torch.save(payload, model)
    photos = photo_set(tmp_path / "photos", ["car.jpg"], (64, 48))
    around = listing(tmp_path)
    code, text = run_cli(monkeypatch, capsys, "extract", model, photos, "--out", tmp_path / "cut", "--min-pixels",
                         "1")
    assert code == 0, text
    assert [p for p in listing(tmp_path) if not p.startswith("cut")] == around
    assert all(".." not in p.name and "/" not in p.name for p in (tmp_path / "cut").iterdir())


# ------------------------------------------------------------------------------------------ 4. image bombs
def bomb_png(path: Path, side: int = 50_000) -> Path:
    """A PNG whose header declares side x side pixels (the data is a few bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) +
                     chunk(b"IEND", b""))
    return path


def test_a_png_declaring_50000_pixels_a_side_is_skipped_with_lenient_and_one_line_without(
        trained_run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    photos = photo_set(tmp_path / "photos", ["good.jpg"])
    bomb = bomb_png(photos / "huge.png")
    code, text = run_cli(monkeypatch, capsys, "predict", trained_run, photos, "--out", tmp_path / "p1")
    assert code == 2 and f"error: {bomb}: declares more pixels than masksmith reads" in text
    assert "Traceback" not in text
    code, text = run_cli(monkeypatch, capsys, "predict", trained_run, photos, "--out", tmp_path / "p2",
                         "--lenient")
    assert code == 0 and "predicted 1 image(s)" in text and "1 photo(s) skipped" in text and "huge.png" in text


# ------------------------------------------------------------------------- the CLI over every case at once
def test_the_cli_never_shows_a_traceback_for_any_hostile_case(trained_run: Path, tiny_cars: Path, small_coco: Path,
                                                              tmp_path: Path, monkeypatch, capsys) -> None:
    import shutil

    import torch

    t = tmp_path
    cases: list[list] = []
    dup = write_coco(t / "dup", coco_doc([{"id": 1, "file_name": "a.png", "width": 8, "height": 8},
                                          {"id": 1, "file_name": "b.png", "width": 8, "height": 8}]))
    cat = write_coco(t / "cat", coco_doc([{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
                                         categories=[{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]))
    rle = write_coco(t / "rle", rle_doc({"size": [200000, 200000], "counts": "PPYo1"}))
    count = write_coco(t / "count", rle_doc({"size": [100000, 100000], "counts": [10**10]}, 100000, 100000))
    bomb = crafted_zip(t / "bomb.zip", 512, 16 << 20)
    import zipfile

    slip = t / "slip.zip"
    with zipfile.ZipFile(slip, "w") as zf:
        zf.writestr("../../escaped.txt", "x")
    broken = t / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 cut short")
    photos = photo_set(t / "photos", ["a.jpg"])
    bomb_png(photos / "huge.png")
    payload = torch.load(trained_run / "model.masksmith", weights_only=True)
    payload["preprocessing"]["size"] = [40000, 40000]
    big_model = t / "big.masksmith"
    torch.save(payload, big_model)
    run = Path(shutil.copytree(trained_run, t / "run"))
    (run / "checkpoints" / "last.ckpt").write_bytes(b"damaged")
    runs_file = t / "runs_file"
    runs_file.write_text("x")
    tiles = t / "tiles.json"
    tiles.write_text(json.dumps({"sources": {"a": [10, 10]}, "tiles": [{"name": "t", "source": "a", "x": 50,
                                                                         "y": 0}]}))
    cases += [
        ["dataset", "inspect", dup], ["dataset", "inspect", cat], ["dataset", "inspect", rle],
        ["dataset", "inspect", count], ["dataset", "inspect", bomb], ["dataset", "inspect", slip],
        ["dataset", "inspect", broken], ["dataset", "inspect", escaping_coco(t / "esc")],
        ["predict", trained_run, photos, "--out", t / "p"], ["predict", trained_run, photos, "--out", photos],
        ["predict", trained_run, photos, "--out", t / "pl", "--lenient"],
        ["predict", big_model, photos, "--out", t / "pb"], ["predict", t / "no-model", photos],
        ["extract", big_model, photos, "--out", t / "x"],
        ["train", "--resume", run], ["train", "--resume", t / "photos"],
        ["train", tiny_cars, "--batch-size", "0"], ["train", tiny_cars, "--epochs", "-1"],
        ["train", tiny_cars, "--time", "-1m"], ["train", tiny_cars, "--runs", runs_file],
        ["dataset", "stitch", tiles, photos, t / "st"], ["dataset", "stitch", photos / "a.jpg", photos, t / "st2"],
        ["dataset", "preview", small_coco, "--out", t / "p.txt"],
        ["dataset", "preview", write_coco(t / "gone", coco_doc([{"id": 1, "file_name": "gone.png"}])),
         "--lenient", "--out", t / "gone.png"],
        ["dataset", "convert", small_coco, small_coco, "--to", "coco"],
        ["dataset", "convert", small_coco, photos / "a.jpg", "--to", "masks"],
    ]
    for args in cases:
        code, out = run_cli(monkeypatch, capsys, *args)
        assert "Traceback" not in out, (args, out)
        assert code in (0, 2), (args, code, out)
        if code == 2:
            errors = [line for line in out.splitlines() if line.startswith("error: ")]
            usage = out.startswith(f"Usage: masksmith {args[0]} ")  # a value out of range: the usage line first
            assert len(errors) == 1 and ("Fix: " in errors[0] or "does not exist" in errors[0] or usage), (args, out)


def test_compressed_rle_counting_agrees_with_pycocotools() -> None:
    import numpy as np
    from pycocotools import mask as mask_utils

    from masksmith.data.formats.coco import compressed_rle_total

    rng = np.random.default_rng(0)
    for _ in range(100):
        h, w = (int(v) for v in rng.integers(1, 200, 2))
        m = np.asfortranarray((rng.random((h, w)) < rng.random()).astype(np.uint8))
        counts = mask_utils.encode(m)["counts"].decode()
        assert compressed_rle_total(counts) == h * w
        decoded = mask_utils.decode({"size": [h, w], "counts": counts.encode()})
        assert np.array_equal(decoded, m)
    for bad in ("a", "0000zzzz", "\u00e9", "~~~~~~~~~~~~~~~0"):
        assert compressed_rle_total(bad) is None


def test_lightnings_checkpoint_reader_is_weights_only_and_reads_lightning_checkpoints(run_copy: Path,
                                                                                     monkeypatch) -> None:
    import pickle

    import torch

    from masksmith.train.run import SafeCheckpointIO

    io = SafeCheckpointIO()
    last = run_copy / "checkpoints" / "last.ckpt"
    state = io.load_checkpoint(last, weights_only=False)  # what Lightning may ask for; refused quietly
    assert {"state_dict", "optimizer_states", "loops", "callbacks", "epoch", "global_step"} <= set(state)
    monkeypatch.chdir(run_copy)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    state["callbacks"]["evil"] = _Payload()
    torch.save(state, last)
    with pytest.raises(pickle.UnpicklingError):
        io.load_checkpoint(last, weights_only=False)
    assert not (run_copy / "pwned").exists()
    io.save_checkpoint({"epoch": 1}, run_copy / "checkpoints" / "x.ckpt")
    assert not [p for p in (run_copy / "checkpoints").iterdir() if p.name.endswith(".tmp")]


def test_a_labelling_folder_whose_unlabelled_folder_links_out_is_refused(tmp_path: Path, monkeypatch,
                                                                         capsys) -> None:
    """Photos added to a data set (issue 27) never land outside it, even when its unlabelled/ is a link."""
    from masksmith import service
    from masksmith.data.synthetic import make_sample_dataset

    lab = service.start_labelling(make_sample_dataset(tmp_path / "cars", n_images=2, size=(64, 48)),
                                  tmp_path / "work" / "lab")
    outside = tmp_path / "outside"
    outside.mkdir()
    (lab / "unlabelled").symlink_to(outside, target_is_directory=True)
    photos = photo_set(tmp_path / "photos", ["new.jpg"])
    before = checksums(lab)
    code, text = run_cli(monkeypatch, capsys, "dataset", "add-unlabelled", lab, photos)
    assert code == 2 and "leads out of the folder through a link" in text and "Traceback" not in text
    assert len(text.strip().splitlines()) == 1
    after = {k: v for k, v in checksums(lab).items() if k != ".labelling.lock"}  # the lock file is ours
    assert list(outside.iterdir()) == [] and after == before


@pytest.mark.parametrize(("change", "words"), [
    ("table", "object id 'x'"),
    ("class", "'spaceship'"),
    ("plain", "is not an objects file"),
    ("link", "leads out of the folder through a link"),
])
def test_hostile_objects_of_an_instance_labelling_folder(tmp_path: Path, monkeypatch, capsys, change: str,
                                                         words: str) -> None:
    """An instance data set's objects file (issue 27) with a broken table, an unknown class, no table, or an
    objects/ folder that links out: one line naming it, nothing written, the folder unchanged."""
    import io

    import numpy as np
    from PIL import Image, PngImagePlugin

    from masksmith import service
    from masksmith.data.synthetic import make_sample_dataset

    lab = service.start_labelling(make_sample_dataset(tmp_path / "cars", n_images=2, size=(64, 48)),
                                  tmp_path / "work" / "lab", objects=True)
    first = sorted((lab / "objects").glob("*.png"))[0]
    ids = np.asarray(Image.open(first))
    if change == "link":
        outside = tmp_path / "outside"
        (lab / "objects").rename(outside)
        (lab / "objects").symlink_to(outside, target_is_directory=True)
    else:
        info = PngImagePlugin.PngInfo()
        if change != "plain":
            info.add_text("masksmith-objects", '{"x": "body"}' if change == "table" else '{"1": "spaceship"}')
        buf = io.BytesIO()
        Image.fromarray(np.where(ids > 0, 1, 0).astype(np.uint8), "L").save(buf, "PNG", pnginfo=info)
        first.write_bytes(buf.getvalue())
    before = checksums(lab)
    code, text = run_cli(monkeypatch, capsys, "dataset", "convert", lab, tmp_path / "out", "--to", "coco")
    assert code == 2 and words in text and "Traceback" not in text, text
    assert len(text.strip().splitlines()) == 1
    assert checksums(lab) == before and not (tmp_path / "out" / "annotations.json").exists()
