"""One error family. Every message names the file, the item and the fix, so the CLI can print it as is."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any


class MasksmithError(Exception):
    """Base of every error masksmith raises on purpose; the CLI prints it without a traceback."""

    def __init__(self, message: str, *, path: str | Path | None = None, item: str | None = None,
                 fix: str | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.item = item
        self.fix = fix
        self.problem = message
        super().__init__(self._compose())

    def _compose(self) -> str:
        parts = []
        if self.path:
            parts.append(f"{self.path}")
        if self.item:
            parts.append(f"{self.item}")
        where = ": ".join(parts)
        text = f"{where}: {self.problem}" if where else self.problem
        if self.fix:
            text += f" Fix: {self.fix}"
        return text


class DatasetError(MasksmithError):
    """An annotation file, image or mask that cannot be used as it is."""


class FormatNotRecognised(DatasetError):
    """No reader recognises the path."""


class ArchiveError(DatasetError):
    """A zip that is unsafe or broken."""


class ModelError(MasksmithError):
    """A model file or model configuration that cannot be used."""


class TrainingInterrupted(MasksmithError):
    """Training stopped by a signal (Ctrl-C, SIGTERM); the message names the signal and says what was kept and
    how to resume. `signum` is the signal (the CLI exits 128 + signum: 130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, message: str, *, signum: int = signal.SIGINT, **kwargs: Any) -> None:
        self.signum = int(signum)
        super().__init__(message, **kwargs)


class Stopped(KeyboardInterrupt):
    """A stop asked by a signal other than Ctrl-C (SIGTERM), raised where Ctrl-C raises KeyboardInterrupt, so
    everything that stops cleanly on Ctrl-C (Lightning's checkpoint on interruption, atomic writes, the
    prediction loop) stops the same way, and the message can still name the signal that came."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(signal_words(signum))


def signal_words(signum: int) -> str:
    """How a message names a signal: "Ctrl-C" for SIGINT, else its name ("SIGTERM")."""
    if signum == signal.SIGINT:
        return "Ctrl-C"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def stop_signal(exc: BaseException | None) -> int | None:
    """The signal behind an interruption: a `Stopped`'s own, SIGINT for any other KeyboardInterrupt, found on
    `exc` or the exceptions it was raised from or during (Lightning turns Ctrl-C into SystemExit); None when
    no interruption is among them."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, Stopped):
            return exc.signum
        if isinstance(exc, KeyboardInterrupt):
            return int(signal.SIGINT)
        exc = exc.__cause__ or exc.__context__
    return None


# Messages name settings in backticks: `size`, or `ignore_value=11` with a value. The library never writes a
# command-line flag or a form field: each front spells a setting its own way (`--size` in the CLI, the field's
# label on a web page), through `spell_settings`.
SETTING = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)(?:=([^`]*))?`")


def spell_settings(text: str, spell: Callable[[str, str | None], str]) -> str:
    """`text` with every `setting` / `setting=value` replaced by spell(setting, value or None)."""
    return SETTING.sub(lambda m: spell(m.group(1), m.group(2)), text)
