"""How a command ends when it is stopped. Ctrl-C (SIGINT) and SIGTERM both stop the work where it is, as a
KeyboardInterrupt (SIGTERM as `core.errors.Stopped`, so the library can name it), and the command's last line
says which signal came, what was finished and how to go on; the exit status is 128 + the signal (130 for
Ctrl-C, 143 for SIGTERM). A command says what it has finished with `on_stop` as it goes."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from masksmith.core.errors import Stopped, signal_words

Note = str | Callable[[], str]
NOTHING_WRITTEN = "nothing was written; run the command again."


class Stops:
    """The signal handlers a command runs under, and what an interruption would leave behind now."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.note: Note = "the command did not finish; run it again."
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> Stops:
        self.signum = None
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._saved[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        self._saved.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Stopped(signum)

    def line(self, signum: int | None = None) -> str:
        """'interrupted by Ctrl-C: predicted 6 of 400 photo(s) into preds; run the same command again ...'"""
        signum = signum or self.signum or signal.SIGINT
        note = self.note() if callable(self.note) else self.note
        return f"interrupted by {signal_words(signum)}: {note}"


STOPS = Stops()


def on_stop(note: Note) -> None:
    """What an interruption from now on leaves: what is finished and how to go on (a text, or a function that
    says it at the moment of the interruption)."""
    STOPS.note = note


def partial(out: Any) -> str:
    """The note of a command that writes a folder of outputs as it goes."""
    return f"{out} is incomplete; run the same command again to write it whole (it replaces the files it wrote)."


class Tally:
    """Photos a command has finished writing into `out`, for the line an interruption prints."""

    def __init__(self, out: Any, total: int | None = None,
                 again: str = "run the same command again to do them all (it replaces the files it wrote)") -> None:
        self.out, self.total, self.again, self.done = out, total, again, 0
        on_stop(self.note)

    def add(self, count: int = 1) -> None:
        self.done += count

    def note(self) -> str:
        of = f" of {self.total}" if self.total is not None else ""
        if not self.done:
            return f"no photo was finished; {self.again}."
        return f"{self.done}{of} photo(s) finished, their files are in {self.out}; {self.again}."
