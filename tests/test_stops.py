"""Commands that are stopped, and trainings that meet each other or a full disk: Ctrl-C exits 130 and SIGTERM
143, each with one line saying what was finished and how to go on (signals sent to real processes mid-run);
a run name is a name, never a path; a run folder is held by one training at a time; a refused resume changes
nothing; a full disk ends training in one line with the last good model kept."""

from __future__ import annotations

import errno
import hashlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import run_cli

sys.path.insert(0, str(Path(__file__).parent))
from test_onnx import photos, tiny_artifact  # noqa: E402


def checksums(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def stop_midway(args: list[str], ready: Callable[[], bool], signum: int, cwd: Path, *,
                wait_for_output: bool = False, timeout: float = 300) -> tuple[int, str, str]:
    """Run `masksmith ARGS` in a process of its own, send it `signum` once `ready()` (or, with
    `wait_for_output`, once it printed its first line), and return (exit status, stdout, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "masksmith.cli", *map(str, args)], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline() if wait_for_output else ""
        deadline = time.monotonic() + timeout
        while not wait_for_output and not ready():
            assert proc.poll() is None, f"finished before it could be stopped: {proc.communicate()}"
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"never got ready: {proc.communicate()}")
            time.sleep(0.05)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return proc.returncode, first + out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def tiny_cars(tmp_path_factory) -> Path:
    from masksmith.data.synthetic import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("cars") / "cars", n_images=8, size=(64, 48), seed=3)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from masksmith.models.artifact import save_artifact

    return save_artifact(tiny_artifact("baseline"), tmp_path_factory.mktemp("model") / "model.masksmith")


@pytest.fixture(scope="module")
def many_photos(tmp_path_factory) -> Path:
    return photos(tmp_path_factory.mktemp("many") / "photos", PHOTOS, size=(96, 128))


PHOTOS = 80
TRAIN = ["--model", "baseline", "--size", "32", "--batch-size", "2", "--weights", "none"]


# ------------------------------------------------------------------------------------------- interruptions
@pytest.mark.parametrize(("signum", "code", "words"), [(signal.SIGINT, 130, "Ctrl-C"),
                                                         (signal.SIGTERM, 143, "SIGTERM")])
def test_predict_stopped_midway_says_how_far_it_got_and_a_rerun_finishes(model: Path, many_photos: Path,
                                                                          tmp_path: Path, signum: int, code: int,
                                                                          words: str) -> None:
    out = tmp_path / "preds"
    status, _, err = stop_midway(["predict", model, many_photos, "--out", out],
                                 lambda: len(list(out.glob("*_color.png"))) >= 3, signum, tmp_path)
    line = one_line(err)
    found = re.fullmatch(rf"interrupted by {words}: predicted (\d+) of {PHOTOS} photo\(s\) into {re.escape(str(out))}; "
                         r"run the same command again to predict the rest \(photos already done are skipped\)\.",
                         line)
    assert status == code and found, line
    done = int(found.group(1))
    # photos whose files the writer threads were writing when the signal came may be done but not yet counted
    assert 1 <= done < PHOTOS and done <= len(list(out.glob("*_color.png")))
    if signum == signal.SIGINT:  # and going on as the line says finishes the job
        proc = subprocess.run([sys.executable, "-m", "masksmith.cli", "predict", model, many_photos, "--out", out],
                              capture_output=True, text=True, timeout=600, cwd=tmp_path)
        # photos the writer threads finished after the count was said are kept too (never fewer than said)
        kept = re.search(r"(\d+) already there, kept", proc.stdout)
        assert proc.returncode == 0 and kept and int(kept.group(1)) >= done, proc.stdout
        assert len(list(out.glob("*_overlay.jpg"))) == PHOTOS


def test_cluster_stopped_by_sigterm_counts_the_photos_it_finished(many_photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "clusters"
    status, _, err = stop_midway(["cluster", many_photos, "--out", out, "--k", "3"],
                                 lambda: len(list(out.glob("*_palette.json"))) >= 2, signal.SIGTERM, tmp_path)
    line = one_line(err)
    assert status == 143 and re.fullmatch(
        rf"interrupted by SIGTERM: \d+ of {PHOTOS} photo\(s\) finished, their files are in {re.escape(str(out))}; "
        r"run the same command again to do them all \(it replaces the files it wrote\)\.", line), line


def test_dataset_convert_stopped_by_ctrl_c_says_the_output_is_incomplete(tmp_path: Path) -> None:
    from masksmith.data.synthetic import make_sample_dataset

    data = make_sample_dataset(tmp_path / "cars", n_images=150, seed=1)
    out = tmp_path / "masks"
    status, _, err = stop_midway(["dataset", "convert", data, out, "--to", "masks"],
                                 lambda: len(list(out.rglob("*.png"))) >= 4, signal.SIGINT, tmp_path)
    assert status == 130 and one_line(err) == (f"interrupted by Ctrl-C: {out} is incomplete; run the same command "
                                               "again to write it whole (it replaces the files it wrote).")
    again = subprocess.run([sys.executable, "-m", "masksmith.cli", "dataset", "convert", data, out, "--to", "masks"],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0 and "wrote 150 images" in again.stdout


def test_training_stopped_by_sigterm_is_called_sigterm_and_a_stopped_resume_changes_nothing(
        tiny_cars: Path, tmp_path: Path) -> None:
    run = Path("runs") / "t"
    status, _, err = stop_midway(["train", tiny_cars, *TRAIN, "--epochs", "500", "--name", "t"],
                                 lambda: (tmp_path / run / "metrics.csv").exists(), signal.SIGTERM, tmp_path)
    line = one_line(err)
    assert status == 143 and line.startswith("interrupted: training stopped by SIGTERM in epoch "), line
    assert "Ctrl-C" not in line and line.endswith(f"Fix: resume with: masksmith train --resume {run}")
    assert (tmp_path / run / "model.masksmith").exists()

    before = checksums(tmp_path / run)
    status, out, err = stop_midway(["train", "--resume", run, "--epochs", "600"], lambda: True, signal.SIGINT,
                                   tmp_path, wait_for_output=True)
    line = one_line(err)
    assert out.startswith("data: ") and status == 130 and line.startswith("interrupted") and "Ctrl-C" in line, line
    if "before it started" in line:  # the usual case: the signal came while the data was read
        assert line == ("interrupted: training stopped by Ctrl-C before it started; the run folder is as it was. "
                        f"Fix: resume with: masksmith train --resume {run}")
        assert checksums(tmp_path / run) == before  # config.yaml still says 500 epochs


def test_a_stop_before_a_new_training_starts_leaves_no_folder(tiny_cars: Path, tmp_path: Path, monkeypatch,
                                                             capsys) -> None:
    import masksmith.train.semantic as semantic

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(semantic, "prepare_data", lambda *a, **k: signal.raise_signal(signal.SIGTERM))
    code, out, err = run_cli(monkeypatch, capsys, "train", tiny_cars, *TRAIN, "--epochs", "1", "--name", "early")
    assert code == 143 and one_line(err) == ("interrupted: training stopped by SIGTERM before it started; nothing "
                                             "was written. Fix: start the run again.")
    assert not (tmp_path / "runs" / "early").exists()


@pytest.mark.parametrize(("target", "args", "signum", "line"), [
    ("masksmith.service.evaluate", ["evaluate", "RUN", "DATA"], signal.SIGTERM,
     "interrupted by SIGTERM: the evaluation did not finish (its scores are written at the end); run the same "
     "command again."),
    ("masksmith.infer.export.export_onnx", ["export", "RUN"], signal.SIGINT,
     "interrupted by Ctrl-C: nothing was written (an ONNX file is written only after its parity check); run the "
     "same command again."),
])
def test_evaluate_and_export_stopped_say_what_is_left(target: str, args: list[str], signum: int, line: str,
                                                      monkeypatch, capsys) -> None:
    monkeypatch.setattr(target, lambda *a, **k: signal.raise_signal(signum))
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 128 + signum and one_line(err) == line


def test_the_web_app_stopped_by_sigterm_ends_like_every_command(tmp_path: Path) -> None:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def up() -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2).status == 200
        except OSError:
            return False

    status, _, err = stop_midway(["serve", "--data-dir", tmp_path / "web", "--no-sample", "--port", port], up,
                                 signal.SIGTERM, tmp_path, timeout=120)
    assert status == 143 and one_line(err) == ("interrupted by SIGTERM: the web app stopped; trainings under way "
                                               "go on, and masksmith serve finds them again.")


# -------------------------------------------------------------------------------------------- run folders
def test_a_run_name_is_a_name_never_a_path(tiny_cars: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from masksmith import service
    from masksmith.core.errors import MasksmithError

    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    for name in ("../../X", "/tmp/X", "..", "a\\b", ".hidden"):
        code, out, err = run_cli(monkeypatch, capsys, "train", tiny_cars, *TRAIN, "--epochs", "1", "--name", name)
        assert code == 2 and one_line(err).startswith(f"error: --name is {name!r}; a run name is one folder name "
                                                      "under --runs, never a path"), err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b"]  # no runs/ and no X anywhere
    with pytest.raises(MasksmithError, match=r"`name` is 'x/y'.*Fix: give `name` a plain name, e\.g\. `name=x_y`"):
        service.training_config(tiny_cars, name="x/y")  # the web app's way in meets the same rule


def test_a_run_folder_is_held_by_one_training(tiny_cars: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import os

    from masksmith.train.config import TrainConfig
    from masksmith.train.run import RunLock, new_run_dir

    config = TrainConfig(data=str(tiny_cars), arch="baseline", runs_dir=str(tmp_path / "runs"), name="same")
    said: list[str] = []
    first, first_lock = new_run_dir(config, said.append)
    second, second_lock = new_run_dir(config, said.append)  # a second training with the same name, at once
    assert (first.name, second.name) == ("same", "same-2") and first_lock.fd and second_lock.fd
    assert said == [f"{tmp_path / 'runs' / 'same'} exists (another run has that name), so this run is {second}."]
    assert not RunLock(first).try_acquire()  # held: a third training of this folder is refused
    assert f"process {os.getpid()}" in (first / "training.lock").read_text()
    first_lock.release()
    second_lock.release()
    again = RunLock(first)
    assert not (first / "training.lock").exists() and again.try_acquire()
    again.release()


def test_resuming_a_run_another_training_holds_is_refused_and_changes_nothing(tiny_cars: Path, tmp_path: Path,
                                                                              monkeypatch, capsys) -> None:
    import os

    from masksmith.train.run import RunLock

    monkeypatch.chdir(tmp_path)
    code, _, _ = run_cli(monkeypatch, capsys, "train", tiny_cars, *TRAIN, "--epochs", "1", "--name", "r")
    run = tmp_path / "runs" / "r"
    assert code == 0 and not (run / "training.lock").exists()
    held = RunLock(run).acquire()  # another training is under way in this folder
    before = checksums(run)
    try:
        code, _, err = run_cli(monkeypatch, capsys, "train", "--resume", run, "--epochs", "2")
        assert code == 2 and one_line(err).startswith(f"error: {run}: is in use by another training (process "
                                                      f"{os.getpid()} on ")
        assert "nothing was changed" in err and checksums(run) == before
    finally:
        held.release()


# --------------------------------------------------------------------------------------------- full disk
def test_a_full_disk_ends_training_in_one_line_keeping_the_last_good_model(tiny_cars: Path, tmp_path: Path,
                                                                           monkeypatch, capsys) -> None:
    import torch

    from masksmith.models.artifact import load_artifact
    from masksmith.train.callbacks import History

    monkeypatch.chdir(tmp_path)
    full = {"now": False}
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if full["now"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    def epoch_start(self, trainer, module):
        full["now"] = trainer.current_epoch >= 1  # the disk fills up during epoch 2

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(History, "on_train_epoch_start", epoch_start, raising=False)
    # without validation the model file is written after every epoch: in epoch 2 that write meets the full disk
    code, out, err = run_cli(monkeypatch, capsys, "train", tiny_cars, *TRAIN, "--epochs", "3", "--name", "full",
                             "--val", "0")
    run = Path("runs") / "full"
    line = one_line(err)
    assert code == 2 and len(err) < 600, err
    assert re.fullmatch(r"error: \S+: training stopped in epoch 2 \(step \d+\): cannot write \(No space left on "
                        rf"device, ENOSPC\)\. Kept: {re.escape(str(run / 'model.masksmith'))} \(last, epoch 1\) and "
                        rf"the checkpoint {re.escape(str(run / 'checkpoints' / 'last.ckpt'))}\. "
                        r"Fix: free some disk space or choose a folder on another disk\.", line), line
    monkeypatch.undo()
    assert load_artifact(tmp_path / run).training["epoch"] == 1  # the model of epoch 1, whole
    assert torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0  # resumable
    assert not list((tmp_path / run).rglob(".*.tmp"))


def test_a_writer_that_hides_a_full_disk_in_its_own_error_is_read_as_a_full_disk(tmp_path: Path,
                                                                                monkeypatch) -> None:
    import shutil
    from types import SimpleNamespace

    from masksmith.core import outputs

    def torch_like(tmp: Path) -> None:  # torch.save on a full disk: "unexpected pos 576 vs 534", no errno
        tmp.write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=10, used=10, free=0))
    with pytest.raises(outputs.WriteError, match="No space left on device, ENOSPC") as err:
        outputs.atomic_save(tmp_path / "last.ckpt", torch_like)
    assert outputs.storage_error(err.value) is err.value and list(tmp_path.iterdir()) == []
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=10, used=0, free=10 ** 9))
    with pytest.raises(RuntimeError, match="unexpected pos"):  # with room on the disk it is the writer's own
        outputs.atomic_save(tmp_path / "last.ckpt", torch_like)
