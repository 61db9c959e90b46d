"""One error family. Every message names the file, the item and the fix, so the CLI can print it as is."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path


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
    """Training stopped by Ctrl-C; the message says what was kept and how to resume (the CLI exits 130)."""


# Messages name settings in backticks: `size`, or `ignore_value=11` with a value. The library never writes a
# command-line flag or a form field: each front spells a setting its own way (`--size` in the CLI, the field's
# label on a web page), through `spell_settings`.
SETTING = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)(?:=([^`]*))?`")


def spell_settings(text: str, spell: Callable[[str, str | None], str]) -> str:
    """`text` with every `setting` / `setting=value` replaced by spell(setting, value or None)."""
    return SETTING.sub(lambda m: spell(m.group(1), m.group(2)), text)
