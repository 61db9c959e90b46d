"""What the browser tests share: Debian's Chromium (never `playwright install`), a real `masksmith serve` in a
process of its own on a free loopback port (stopped and started again on the same port and data folder, as a
user restarts it), and axe-core from npm, installed once into a test cache outside the repository."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]
SRC = Path(__file__).resolve().parents[1] / "src"
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at "
                                    "/usr/bin/chromium (apt-get install -y chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`masksmith serve --data-dir DATA --port PORT` (the sample data set left out unless `sample`)."""

    def __init__(self, data_dir: Path, log: Path, sample: bool = False, port: int | None = None,
                 cache: Path | None = None) -> None:
        self.data_dir, self.log, self.sample = data_dir, log, sample
        self.cache = cache or data_dir.parent / "cache"  # never the user's cache
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> Server:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
               "MASKSMITH_CACHE": str(self.cache)}
        command = [sys.executable, "-m", "masksmith.cli", "serve", "--data-dir", str(self.data_dir), "--port",
                   str(self.port), *([] if self.sample else ["--no-sample"])]
        out = self.log.open("a")
        self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.base}/api/health", timeout=2)
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(self.log.read_text()) from None
                time.sleep(0.3)
        self.proc.terminate()
        raise AssertionError("the server did not start: " + self.log.read_text())

    def stop(self, timeout: float = 20) -> float:
        """Stop it as Ctrl-C does (SIGINT would be the terminal's; SIGTERM is what a service manager sends);
        returns the seconds it took."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.terminate()
        self.proc.wait(timeout=timeout)
        return time.monotonic() - began

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method,
                                         headers={"content-type": "application/json"} if data else {})
        with urllib.request.urlopen(request, timeout=120) as answer:
            return json.loads(answer.read())

    def kill_trainings(self) -> None:
        for status in (self.data_dir / "runs").glob("*/status.json"):
            pid = json.loads(status.read_text()).get("pid")
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)


def axe_script() -> Path:
    """axe-core's axe.min.js from npm, installed once into a cache outside the repository (skips when npm or
    the registry cannot be reached)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "masksmith-tests" / "axe"
    script = cache / "node_modules" / "axe-core" / "axe.min.js"
    if not script.is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot fetch axe-core")
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", "axe-core@4"],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not script.is_file():
            pytest.skip(f"npm could not install axe-core: {done.stderr[-300:]}")
    return script


def serious_findings(page, script: Path) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    page.add_script_tag(path=str(script))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['impact']}: {v['id']} ({v['help']}) at {[n['target'] for n in v['nodes'][:3]]}"
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def page_width(page) -> int:
    """The widest the page lays out (a phone's browser zooms out to show a page wider than the screen, so
    the width to compare with is the screen's, not window.innerWidth)."""
    return page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
