"""Format registry. Each format is one module with NAME, DESCRIPTION, detect(path) and read(path, log, **opts);
writable formats add write(dataset, out, **opts). Adding a format is one new module and one line here.

Detection order matters where layouts overlap: specific JSON/XML layouts first, folder conventions last.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from types import ModuleType

from masksmith.errors import DatasetError, FormatNotRecognised

# module names, in detection order
_MODULES = ["coco", "vott", "via", "labelme", "cvat", "voc", "masks"]


def all_formats() -> list[ModuleType]:
    return [import_module(f"masksmith.data.formats.{name}") for name in _MODULES]


def get_format(name: str) -> ModuleType:
    """The module of format `name` (a module's NAME is its file name)."""
    if name not in _MODULES:
        raise DatasetError(f"unknown format {name!r}.", fix=f"use one of: {', '.join(_MODULES)}.")
    return import_module(f"masksmith.data.formats.{name}")


def writable_formats() -> list[str]:
    return [m.NAME for m in all_formats() if hasattr(m, "write")]


def detect_format(path: Path) -> ModuleType:
    """The first format whose detect() recognises `path` (a file or a folder)."""
    for name in _MODULES:
        module = get_format(name)  # imported one at a time: detection stops at the first match
        try:
            if module.detect(path):
                return module
        except DatasetError:
            raise
        except (OSError, ValueError):
            continue
    known = ", ".join(f"{m.NAME} ({m.DESCRIPTION})" for m in all_formats())
    raise FormatNotRecognised(
        "no annotation format recognised here.", path=path,
        fix=f"point at the annotation file or its folder, or name the format with --format. Known: {known}.")
