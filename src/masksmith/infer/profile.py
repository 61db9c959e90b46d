"""Where prediction spends its time: seconds per stage (read, preprocess, network, postprocess, write), summed
over photos and threads (`masksmith predict --profile`).

Reading and writing run in their own threads, beside the network, so the stages' seconds add up to more than
the wall time when they overlap; the table shows both, and the share of the wall time the network ran.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

STAGES = ("read", "preprocess", "network", "postprocess", "write")


@dataclass
class StageTime:
    stage: str
    seconds: float
    calls: int


@dataclass
class Profile:
    """Seconds per stage; `with profile("network"): ...` times one step. Thread-safe."""

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    photos: int = 0
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
            self.calls[stage] = self.calls.get(stage, 0) + 1

    def start(self) -> None:
        self.started, self.ended = time.perf_counter(), None

    def stop(self) -> None:
        self.ended = time.perf_counter()

    @property
    def wall(self) -> float:
        return (self.ended or time.perf_counter()) - self.started

    def stages(self) -> list[StageTime]:
        names = [*STAGES, *sorted(set(self.seconds) - set(STAGES))]
        return [StageTime(n, self.seconds.get(n, 0.0), self.calls.get(n, 0)) for n in names]

    def lines(self) -> list[str]:
        """The stage table as text lines (for the CLI and the benchmark)."""
        photos = max(1, self.photos)
        wall = self.wall
        out = [f"{'stage':<12} {'seconds':>9} {'ms/photo':>9} {'of wall':>8}"]
        for s in self.stages():
            out.append(f"{s.stage:<12} {s.seconds:>9.2f} {1000 * s.seconds / photos:>9.1f} "
                       f"{100 * s.seconds / max(wall, 1e-9):>7.0f}%")
        out.append(f"{'wall':<12} {wall:>9.2f} {1000 * wall / photos:>9.1f}    "
                   f"({self.photos} photo(s); read and write run in threads beside the network)")
        return out


class _Off:
    """A profile that records nothing (the default)."""

    photos = 0

    def __call__(self, stage: str) -> contextlib.nullcontext:
        return contextlib.nullcontext()

    def add(self, stage: str, seconds: float) -> None:
        pass


OFF = _Off()
