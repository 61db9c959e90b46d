"""Work beside the main thread: reading ahead (`prefetch`) and writing behind (`WritePool`), both bounded, so
a stream of thousands of photos never piles up in memory and an interrupted run finishes what it started."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


def prefetch(items: Iterable[Any], load: Callable[[Any], Any], depth: int = 4) -> Iterator[tuple[Any, Any]]:
    """(item, load(item)) in order, `load` running in a background thread at most `depth` items ahead. An
    exception from `load` is handed over in place of its result; stopping early stops the thread."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        for item in items:
            try:
                entry = (item, load(item), None)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
                entry = (item, None, exc)
            if not put(entry):
                return
        put(done)

    thread = threading.Thread(target=work, name="masksmith-reader", daemon=True)
    thread.start()
    try:
        while True:
            entry = q.get()
            if entry is done:
                return
            item, value, exc = entry
            if exc is not None:
                yield item, exc
            else:
                yield item, value
    finally:
        stop.set()
        thread.join(timeout=5)


class WritePool:
    """Runs `submit`ted jobs in `workers` threads and hands their results back in submission order, at most
    `depth` jobs behind: `submit` returns the results that became due (oldest first), `drain` the rest. A
    job's exception is raised when its turn comes. `close` waits for every job already submitted, so an
    interruption loses no finished work (nothing half-written: the jobs write atomically)."""

    def __init__(self, workers: int = 2, depth: int | None = None, name: str = "masksmith-writer") -> None:
        self.executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name)
        self.depth = depth if depth is not None else 2 * max(1, workers)
        self.pending: deque[tuple[Any, Future]] = deque()

    def submit(self, tag: Any, job: Callable[[], Any]) -> list[tuple[Any, Any]]:
        self.pending.append((tag, self.executor.submit(job)))
        due = []
        while len(self.pending) > self.depth or (self.pending and self.pending[0][1].done()):
            tag0, future = self.pending.popleft()
            due.append((tag0, future.result()))
        return due

    def drain(self) -> Iterator[tuple[Any, Any]]:
        while self.pending:
            tag, future = self.pending.popleft()
            yield tag, future.result()

    def close(self) -> None:
        self.executor.shutdown(wait=True)

    def __enter__(self) -> WritePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
