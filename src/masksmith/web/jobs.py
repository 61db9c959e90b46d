"""Training jobs for the web app: each run trains in a process of its own (`python -m masksmith.web.jobs RUN`),
which makes the same library call as `masksmith train` (`masksmith.service.train`), so the server stays responsive and a
closed page changes nothing. One job trains at a time (two cores); the others wait in the queue.

The process tells how it is doing through its run folder only: status.json (state, process id, error),
metrics.csv and previews/ (written by training itself). The server reads them; nothing else passes between the
two, so a server restarted mid-training finds each run as its folder says: still training (the process is
alive: watched again), finished, or interrupted (the process is gone: resume it from its checkpoint).

Stop sends SIGINT: Lightning stops at once, writes checkpoints/interrupted.ckpt and the model file keeps the
best epoch so far, so a stopped run is usable and can be resumed."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from masksmith.core import runfolder
from masksmith.web.store import ACTIVE, Store

log = logging.getLogger("masksmith.web")
WORKER = "masksmith.web.jobs"
LOG_FILE = "train.log"


class JobRunner:
    """Starts, watches, stops and resumes training processes; a thread polls them twice a second."""

    def __init__(self, store: Store, poll: float = 0.5) -> None:
        self.store = store
        self.poll = poll
        self._children: dict[int, subprocess.Popen] = {}  # run id -> process we started
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.recover()

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start_watching(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="masksmith-jobs", daemon=True)
            self._thread.start()

    def shutdown(self) -> None:
        """Stop watching; training processes go on (a restarted server finds them)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def recover(self) -> None:
        """After a (re)start: runs the database believes active are checked against their processes."""
        for run in self.store.runs():
            if run["state"] in ACTIVE and run["state"] != "queued":
                if run["id"] in self._children or process_alive(run["pid"], run["folder"]):
                    continue
                self._finish(run)

    # -- commands ----------------------------------------------------------------------------------------
    def submit(self, run_id: int) -> None:
        """Queue a run (new or to resume); it starts when no other run trains."""
        self.store.update_run(run_id, state="queued", error=None, ended=None)
        self.step()

    def stop(self, run_id: int) -> bool:
        """Ask a run to stop (SIGINT: checkpoint, model file kept). False when it is not training."""
        run = self.store.run(run_id)
        if run is None or run["state"] not in ACTIVE:
            return False
        if run["state"] == "queued":
            self.store.update_run(run_id, state="stopped", ended=time.time())
            return True
        if run["pid"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(run["pid"], signal.SIGINT)
        self.store.update_run(run_id, state="stopping")
        return True

    def step(self) -> None:
        """One round of watching: finished processes recorded, the next queued run started."""
        with self._lock:
            active = None
            for run in self.store.runs():
                if run["state"] in ("running", "stopping"):
                    if self._alive(run):
                        active = run
                    else:
                        self._finish(run)
            if active is None:
                queued = [r for r in self.store.runs() if r["state"] == "queued"]
                if queued:
                    self._launch(min(queued, key=lambda r: r["id"]))

    def _alive(self, run: dict[str, Any]) -> bool:
        child = self._children.get(run["id"])
        if child is not None:
            return child.poll() is None
        return process_alive(run["pid"], run["folder"])

    def _launch(self, run: dict[str, Any]) -> None:
        folder = Path(run["folder"])
        resume = (folder / "checkpoints").is_dir() and any((folder / "checkpoints").glob("*.ckpt"))
        command = [sys.executable, "-m", WORKER, str(folder), *(["--resume"] if resume else [])]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        src = str(Path(__file__).resolve().parents[2])  # the masksmith this server runs, not another install
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])
        # one clock for the whole job: the wall time of earlier sessions is carried into this one
        status = runfolder.read_status(folder)
        wall = float(status.get("wall_before") or 0.0) if resume else 0.0
        began, ended = status.get("started") or run.get("started"), status.get("ended") or run.get("ended")
        if resume and began and ended and ended > began:
            wall += ended - began
        epochs = len(runfolder.run_progress(folder)["epochs"]) if resume else 0
        runfolder.write_status(folder, state="starting", pid=None, error=None, resumed=resume, wall_before=wall,
                               resumed_at=epochs if resume else None, started=time.time(), ended=None)
        with (folder / LOG_FILE).open("a", encoding="utf-8") as out:
            child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        self._children[run["id"]] = child
        self.store.update_run(run["id"], state="running", pid=child.pid, started=time.time(), ended=None)
        log.info("run %s: training in process %d (%s)", run["name"], child.pid, " ".join(command))

    def _finish(self, run: dict[str, Any]) -> None:
        """Record how a run whose process is gone ended, from what its status.json says."""
        child = self._children.pop(run["id"], None)
        if child is not None:
            child.wait()
        status = runfolder.read_status(Path(run["folder"]))
        said = status.get("state")
        if said in ("finished", "stopped", "failed"):
            state = said
        elif run["state"] == "stopping":
            state = "stopped"
        else:
            state = "interrupted"
        error = status.get("error") if state == "failed" else None
        if state == "interrupted":
            error = "training was interrupted (the server or the machine stopped); resume it to go on."
        self.store.update_run(run["id"], state=state, pid=None, error=error,
                              ended=status.get("ended") or time.time())
        log.info("run %s: %s%s", run["name"], state, f" ({error})" if error else "")

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.step()
            except Exception:  # the watcher must not die; the log keeps the detail
                log.exception("watching the training jobs failed")


def process_alive(pid: int | None, folder: str | Path) -> bool:
    """Whether `pid` is a live training process of this run folder (not a reused process id)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":  # a zombie has finished
            return False
    except (OSError, IndexError):
        pass
    return WORKER.encode() in cmdline and str(folder).encode() in cmdline


def run_progress(run: dict[str, Any], images: int | None = None) -> dict[str, Any]:
    """What the live page shows: state, epochs so far, the newest preview, and the job's one clock
    (`service.run_clock`: elapsed over every session, time left, fraction done, phase)."""
    from masksmith import service
    from masksmith.web.common import plain
    from masksmith.web.forms import web_message

    folder = Path(run["folder"])
    progress = runfolder.run_progress(folder)
    clock = service.run_clock(folder, run["state"], images=images)
    error = plain(web_message(run["error"]), folder.parents[1]) if run["error"] else None  # worded for the page
    return {"id": run["id"], "state": run["state"], "error": error, "epochs": progress["epochs"],
            "preview": progress["preview"], "previews": progress["previews"], "model": progress["model"],
            **clock, "time_left": clock["left_text"] if run["state"] in ACTIVE else None,
            **planned_finish(folder)}


def planned_finish(folder: Path) -> dict[str, Any]:
    """The finish time a budgeted run keeps to (its start plus the budget: the whole wait) and the passes over
    the data its plan predicted, for the run page."""
    from masksmith.train.config import TrainConfig

    try:
        config = TrainConfig.from_yaml(folder / runfolder.CONFIG)
    except Exception:  # noqa: BLE001 - a run folder being written or damaged: the page shows no finish
        return {"finish": None, "planned_passes": None}
    budget = ((config.plan or {}).get("budget") or {}).get("value") or {}
    started = runfolder.read_status(folder).get("started")
    finish = started + config.time_budget if config.time_budget and started else None
    return {"finish": time.strftime("%H:%M:%S", time.localtime(finish)) if finish else None,
            "planned_passes": budget.get("passes")}


# ---------------------------------------------------------------------------------------------- the worker
def _interrupt(signum: int, frame: Any) -> None:
    from masksmith.core.errors import Stopped

    raise Stopped(signum)  # stops like Ctrl-C, and the training's last line names SIGTERM


def worker_main(argv: list[str] | None = None) -> int:
    """The training process: read the run folder's config.yaml, train (or resume), say how it ended."""
    parser = argparse.ArgumentParser(prog=f"python -m {WORKER}")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir
    signal.signal(signal.SIGTERM, _interrupt)  # terminate like Ctrl-C: a checkpoint is written
    said = runfolder.read_status(run_dir)  # the clock started when the server launched this session
    began = said.get("started") if said.get("state") == "starting" else None
    runfolder.write_status(run_dir, state="running", pid=os.getpid(), started=began or time.time(), error=None)
    state, error = "failed", None
    try:
        from masksmith import service
        from masksmith.core.errors import MasksmithError, TrainingInterrupted
        from masksmith.train.config import TrainConfig

        config = TrainConfig.from_yaml(run_dir / runfolder.CONFIG)
        from masksmith.train.budget import process_started

        service.train(config, run_dir, resume=args.resume, announce=lambda text: print(text, flush=True),
                      started=process_started())  # the budget is the whole wait, from this worker's start
        state = "finished"
    except (KeyboardInterrupt, SystemExit, TrainingInterrupted):  # SIGINT: interrupted.ckpt and the model kept
        state = "stopped"
    except MasksmithError as exc:
        error = str(exc)
        print(f"error: {exc}", flush=True)
    except Exception as exc:  # the page gets one sentence; the log keeps the traceback
        import traceback

        traceback.print_exc()
        error = f"training failed: {type(exc).__name__}: {exc} (the run folder's {LOG_FILE} has the details)"
    runfolder.write_status(run_dir, state=state, error=error, ended=time.time(), pid=None)
    return 0 if state != "failed" else 1


if __name__ == "__main__":
    sys.exit(worker_main())
