"""How much memory this machine can give a process now: the training plan sizes batches by it, and a model file
is refused when one image through its network would need more (models/footprint.py)."""

from __future__ import annotations

import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """What the cgroup v2 limit still allows (memory.max - memory.current), when there is a limit."""
    try:
        limit = (CGROUP / "memory.max").read_text(encoding="ascii").strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((CGROUP / "memory.current").read_text(encoding="ascii").strip()))
    except (OSError, ValueError):
        return None


def _physical() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes this process can allocate now: MemAvailable (Linux), lowered to a cgroup's limit when a container
    sets one; the machine's physical memory where the system says nothing else; None when nothing is known."""
    known = [v for v in (_meminfo_available(), _cgroup_room()) if v is not None]
    if known:
        return min(known)
    return _physical()
