"""Shared by the benchmarks: where the car-parts data lives, and writing figures into docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
CAR_PARTS = Path(os.environ.get("MASKSMITH_CAR_PARTS", REPO.parent / "shared" / "data" / "car-parts"))


def car_parts_or_exit() -> Path:
    """The car-parts data set, or a clear skip (exit 0) when it is not on this machine."""
    if not (CAR_PARTS / "trainingset" / "annotations.json").exists():
        print(f"SKIPPED: the car-parts data set is not at {CAR_PARTS} (set MASKSMITH_CAR_PARTS to its folder).")
        sys.exit(0)
    return CAR_PARTS


def machine() -> str:
    blas = os.environ.get("OPENBLAS_CORETYPE")
    note = f", OPENBLAS_CORETYPE={blas} (numpy matrix code runs slower)" if blas else ""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}{note}"


def write_section(key: str, title: str, body: str) -> None:
    """Replace (or add) the section `key` of docs/benchmarks.md, stamped with the exact command and date."""
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    block = (f"<!-- bench:{key} -->\n## {title}\n\nCommand: `{command}` ({date.today().isoformat()}; {machine()})\n\n"
             f"{body.strip()}\n<!-- /bench:{key} -->")
    DOC.parent.mkdir(exist_ok=True)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nFigures measured by the scripts in benchmarks/.\n"
    pattern = re.compile(rf"<!-- bench:{key} -->.*?<!-- /bench:{key} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
    print(f"updated {DOC.relative_to(REPO)} ({key})")


def cpu_flags() -> str:
    """The vector extensions this CPU has (they decide torch's speed), from /proc/cpuinfo."""
    try:
        line = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
    have = set(line.split(":", 1)[1].split())
    return " ".join(f for f in wanted if f in have) or "none of the vector extensions"


def load_average() -> float:
    """The 1-minute load average (nan where the system has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def refuse_when_loaded(force: bool, limit: float = 1.5) -> float:
    """Print the CPU flags and the load average; exit when the load is above `limit` (other jobs would slow the
    figures) unless `force` (development runs, whose output is then marked as not a result). Returns the load."""
    load = load_average()
    print(f"CPU flags: {cpu_flags()}; load average (1 min) before: {load:.2f} on {os.cpu_count()} cores")
    if load > limit and not force:
        print(f"REFUSED: the load average is {load:.2f} (above {limit}): other jobs would slow the figures. Wait "
              "for a quiet machine, or pass --force for a development run (its output is marked not a result).")
        sys.exit(3)
    return load
