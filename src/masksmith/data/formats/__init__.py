"""Format registry. Each format is one module with NAME, DESCRIPTION, OPTIONS, detect(path) and
read(path, log, **opts); writable formats add write(dataset, out, **opts). Adding a format is one new module
and one line here.

detect(path, **options) returns False, True, or how deep below `path` its evidence lies (1: in the folder itself
or the file, 2: in a sub-folder, 3: two levels down). When several formats match a folder, the one whose layout is the
folder's own wins (a VOC folder with a LabelMe JSON in a sub-folder is read as VOC); ties go to the order
below, specific JSON/XML layouts first, folder conventions last. The others are named in the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any

from masksmith.core.errors import DatasetError, FormatNotRecognised

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


def check_options(module: ModuleType, options: dict[str, Any]) -> None:
    """Refuse a reading option the format does not take, listing the ones it does."""
    known = {o.name for o in getattr(module, "OPTIONS", ())}
    unknown = sorted(k for k in options if k not in known)
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        raise DatasetError(f"format {module.NAME} takes no option {', '.join(repr(k) for k in unknown)}.",
                           fix=f"its options are: {listed} (see `masksmith dataset formats`).")


@dataclass
class Detected:
    module: ModuleType
    depth: float
    error: DatasetError | None = None


def detect_formats(path: Path, options: dict[str, Any] | None = None) -> list[Detected]:
    """Every format that recognises `path`, best first (shallowest evidence, then module order). Reading
    options a format's detect() takes (its DETECT_OPTIONS, such as `masks=NAME` for mask folders) are passed
    to it, so that what settles the layout while reading settles it while detecting too."""
    found: list[Detected] = []
    for name in _MODULES:
        module = get_format(name)
        given = {k: v for k, v in (options or {}).items() if k in getattr(module, "DETECT_OPTIONS", ())}
        try:
            result = module.detect(path, **given)
        except DatasetError as exc:  # it recognises the layout but finds it ambiguous: said if it wins, after
            found.append(Detected(module, 1.5, exc))  # the formats that recognise the folder's own layout cleanly
            continue
        except (OSError, ValueError):
            continue
        if result:
            found.append(Detected(module, 1 if result is True else int(result)))
    return sorted(found, key=lambda d: d.depth)  # stable: module order within one depth


def detect_format(path: Path) -> ModuleType:
    """The format that best recognises `path` (a file or a folder)."""
    found = detect_formats(path)
    if not found:
        known = ", ".join(f"{m.NAME} ({m.DESCRIPTION})" for m in all_formats())
        raise FormatNotRecognised(
            "no annotation format recognised here.", path=path,
            fix=f"point at the annotation file or its folder, or name the `format`. Known: {known}.")
    if found[0].error is not None:
        raise found[0].error
    return found[0].module
