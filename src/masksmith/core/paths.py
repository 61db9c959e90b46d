"""Names that come from data (image file names in annotations, class names, zip entries) turned into paths.

Every such name is hostile until this module has placed it under its root. One place decides, for every reader
that resolves images and every writer that names outputs:

- `resolve_under(root, name)`: `root / name`, refused when the name is absolute (`/x`, `\\x`, `C:\\x`,
  `//server/x`, `file:/x`), climbs out (`..`), holds a NUL byte, or leads out of `root` through a link.
  With `flatten=True` such a name is not refused but reduced to what lies safely under the root
  (`../../photo.jpg` -> `photo.jpg`, `/home/u/a/photo.jpg` -> `photo.jpg`), which is how readers look an
  image up by base name and writers keep a data set's own file names.
- `safe_filename(text)`: one file-name component from any text (a class name such as `front/left wheel`);
  `is_plain_name(text)` says whether a name given for something masksmith creates (a run) is one.
- `unique_stems(paths)`: output names for input files that stay distinct when stems collide
  (`a/car.jpg` + `b/car.jpg`, or `car.jpg` + `car.png`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from masksmith.core.errors import MasksmithError


class UnsafePath(MasksmithError):
    """A name from data that would lead outside the folder it belongs to."""


_DRIVE = re.compile(r"^[A-Za-z]:")
_URL = re.compile(r"^file:/*", re.IGNORECASE)
_BAD_CHARS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}
MAX_COMPONENT_BYTES = 200  # below every file system's 255, leaving room for suffixes we add


def _split(name: str) -> tuple[bool, list[str]]:
    """(is absolute, parts) of a name as data writes it: either slash, drive letters and file: URLs."""
    text = name.replace("\\", "/")
    absolute = False
    if _URL.match(text):
        text, absolute = _URL.sub("", text), True
    if _DRIVE.match(text):
        text, absolute = text[2:], True
    if text.startswith("/"):
        absolute = True
    return absolute, [p for p in text.split("/") if p not in ("", ".")]


def relative_parts(name: str, *, flatten: bool = False, what: str = "name") -> list[str]:
    """The parts of `name` as a path relative to some root, or UnsafePath.

    Strict (the default) refuses absolute names and `..`; `flatten` keeps only the parts after the last `..`
    or of an absolute name the last part (a path from another machine: its base name is all that can apply)."""
    if not isinstance(name, str) or not name.strip():
        raise UnsafePath(f"the {what} is empty.", item=repr(name), fix="give every item a file name.")
    if "\x00" in name:
        raise UnsafePath(f"the {what} {name!r} holds a NUL byte.", fix="correct the name in the annotations.")
    absolute, parts = _split(name)
    if not flatten:
        if absolute:
            raise UnsafePath(f"the {what} {name!r} is an absolute path, outside the data set's folder.",
                             fix="use names relative to the annotation file's folder.")
        if ".." in parts:
            raise UnsafePath(f"the {what} {name!r} climbs out of its folder ('..').",
                             fix="use names relative to the annotation file's folder, without '..'.")
    else:
        if ".." in parts:
            parts = parts[len(parts) - parts[::-1].index(".."):]
        if absolute:
            parts = parts[-1:]
    if not parts:
        raise UnsafePath(f"the {what} {name!r} names no file.", fix="correct the name in the annotations.")
    return parts


def safe_relative(name: str, *, what: str = "name") -> str:
    """`name` flattened to a relative POSIX path that cannot leave its root (see relative_parts)."""
    return PurePosixPath(*relative_parts(name, flatten=True, what=what)).as_posix()


def resolve_under(root: str | Path, name: str, *, flatten: bool = False, what: str = "name") -> Path:
    """`root / name`, guaranteed to lie under `root` also after following links; UnsafePath otherwise."""
    root = Path(root)
    target = root.joinpath(*relative_parts(name, flatten=flatten, what=what))
    try:
        real_root, real = root.resolve(), target.resolve()
    except (OSError, RuntimeError):  # a link loop
        raise UnsafePath(f"the {what} {name!r} cannot be resolved (a link loop?).", path=root) from None
    if real != real_root and real_root not in real.parents:
        raise UnsafePath(f"the {what} {name!r} leads out of the folder through a link.", path=root,
                         fix="replace the link with the file itself.")
    return target


def is_under(path: str | Path, root: str | Path) -> bool:
    """Whether `path` (after following links) is `root` or lies below it."""
    try:
        real, real_root = Path(path).resolve(), Path(root).resolve()
    except (OSError, RuntimeError):
        return False
    return real == real_root or real_root in real.parents


def safe_filename(text: str, fallback: str = "item") -> str:
    """One file-name component from any text: separators, control and reserved characters become '_',
    leading dots and trailing dots/spaces go, length is bounded; never empty, '.' or '..'."""
    text = unicodedata.normalize("NFC", str(text))
    out = _BAD_CHARS.sub("_", text).strip().lstrip(".").rstrip(". ")
    if not out:
        out = fallback
    if out.split(".")[0].lower() in _WINDOWS_RESERVED:
        out = "_" + out
    encoded = out.encode("utf-8")
    if len(encoded) > MAX_COMPONENT_BYTES:
        out = encoded[:MAX_COMPONENT_BYTES].decode("utf-8", "ignore").rstrip(". ") or fallback
    return out


def is_plain_name(text: str) -> bool:
    """Whether `text` is a plain name for one file or folder, the one `safe_filename` leaves as it is (no
    separator, `..`, leading dot, control or reserved character, not too long). A name given for something
    masksmith creates (a run) must be one: a name, never a path."""
    return isinstance(text, str) and bool(text.strip()) and safe_filename(text) == text


def unique_stems(paths: Sequence[str | Path]) -> list[str]:
    """A distinct, safe output stem for each input file, in order.

    The stem is the file's own where it is unique; where two inputs share one (case-insensitively, as some
    file systems compare), the suffix is added (`car_jpg`, `car_png`), then parent folders (`a_car`, `b_car`),
    and as a last resort a counter."""
    paths = [Path(p) for p in paths]

    def candidates(p: Path) -> list[str]:
        stem = safe_filename(p.stem, "image")
        suffix = p.suffix.lstrip(".").lower()
        with_suffix = f"{stem}_{suffix}" if suffix else stem
        out = [stem, with_suffix]
        parents = [safe_filename(x, "_") for x in p.parent.parts if x not in ("/", "", ".")]
        for k in range(1, len(parents) + 1):
            out.append("_".join([*parents[-k:], stem]))
            out.append("_".join([*parents[-k:], with_suffix]))
        return out

    options = [candidates(p) for p in paths]
    chosen = [""] * len(paths)
    level = [0] * len(paths)
    pending = set(range(len(paths)))
    while pending:
        groups: dict[str, list[int]] = {}
        for i in range(len(paths)):
            name = options[i][min(level[i], len(options[i]) - 1)]
            groups.setdefault(name.lower(), []).append(i)
        pending = set()
        for members in groups.values():
            if len(members) > 1:
                for i in members:
                    if level[i] < len(options[i]) - 1:
                        level[i] += 1
                        pending.add(i)
        if not pending:
            break
    names = [options[i][min(level[i], len(options[i]) - 1)] for i in range(len(paths))]
    counts: dict[str, int] = {}
    for name in names:
        counts[name.lower()] = counts.get(name.lower(), 0) + 1
    taken: set[str] = set()
    for i, name in enumerate(names):
        if counts[name.lower()] > 1:  # nothing tells them apart (same path up to case): number them
            name = options[i][0]
        base, k = name, 2
        while name.lower() in taken:
            name, k = f"{base}-{k}", k + 1
        taken.add(name.lower())
        chosen[i] = name
    return chosen
