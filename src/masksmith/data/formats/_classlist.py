"""Class lists of index masks: classes.txt (read and written so that every name comes back as it was) and the
rule that decides which mask value each name of a plain list names.

A list is *explicit* when it says where it starts: a `{value: name}` map (which may name 0), or a list whose
first entry is a background name (`background`, `_background_`, ...: value 0 is the background, the next name
is value 1). A *plain* list (`Sky,Building,...`, or a classes.txt without a background line) is read against
the mask values present in all masks, void left out (`resolve`):

- its length equals the number of values present, 0 included, and the values are 0..N-1: it names them from 0
  (value 0 gets the first name and is a class like the others);
- its length equals the highest value (0 absent, or the background): it names values 1..N, as a list always did;
- when only one of the two readings covers every value present, that one;
- when both cover them and neither is complete, it is refused with one line that shows both readings and how to
  choose (the `{value: name}` form, or a leading background name).

classes.txt lines are the names; `#` starts a comment; a leading `__ignore__` line (LabelMe's labels.txt) is
skipped. A name that would not read back as itself on a plain line (a line break inside it, spaces at its ends,
a leading `#` or `"`, a background or ignore name, characters UTF-8 cannot hold) is written as a JSON string
(`"..."`, ASCII-escaped), which the reader takes literally.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from masksmith.core.errors import DatasetError
from masksmith.core.labels import BACKGROUND, BACKGROUND_NAMES, MAX_CLASSES

IGNORE_NAMES = frozenset({"__ignore__", "_ignore_"})
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")  # control characters and Unicode line breaks
SHOWN = 2  # names shown at each end of a reading in messages


@dataclass
class ClassList:
    """Class names as a file or an option gives them. `values` is the explicit {mask value: name} map when
    the list says where it starts; None for a plain list, which `resolve` reads against the values present."""

    names: list[str]
    source: str  # what to name in messages: the file, or the option
    values: dict[int, str] | None = None

    @property
    def plain(self) -> bool:
        return self.values is None

    def first_name(self) -> str | None:
        """The first class name (a binary mask's class)."""
        if self.values is not None:
            named = [n for v, n in sorted(self.values.items()) if v > 0]
            return named[0] if named else self.values.get(0)
        return self.names[0] if self.names else None


def _is_background(name: str) -> bool:
    return name.lower() in BACKGROUND_NAMES


def _check_unique(names: list[str], where: Path | str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise DatasetError(f"names class {n!r} twice.", path=where, fix="give each class one line.")
        seen.add(n)


def _from_lines(entries: list[tuple[str, bool]], source: str, where: Path | str) -> ClassList:
    """entries: (name, literal). A leading background name (not written literally) makes the list explicit."""
    if entries and not entries[0][1] and entries[0][0] in IGNORE_NAMES:
        entries = entries[1:]  # labelme's labels.txt puts __ignore__ (-1) before _background_
    names = [n for n, _ in entries]
    if entries and not entries[0][1] and _is_background(entries[0][0]):
        _check_unique(names[1:], where)
        return ClassList(names[1:], source, {i: n for i, n in enumerate(names[1:], start=1)})
    _check_unique(names, where)
    return ClassList(names, source)


# ---------------------------------------------------------------- classes.txt

def read_classes_txt(path: Path) -> ClassList:
    """The class list of a classes.txt (see the module docstring)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot be read as UTF-8 text ({exc}).", path=path) from None
    entries: list[tuple[str, bool]] = []
    for lineno, raw in enumerate(_LINE_BREAK.split(text), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith('"'):
            try:
                name = json.loads(line)
            except ValueError:
                name = None
            if not isinstance(name, str) or not name:
                raise DatasetError(f"line {lineno} starts with a quote but is not one quoted name.", path=path,
                                   fix='write the name as a JSON string ("name") or without the quote.')
            entries.append((name, True))
        else:
            entries.append((line, False))
    return _from_lines(entries, str(path), path)


def _needs_quotes(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True  # a lone surrogate: only its JSON escape can be written
    return (name != name.strip() or name.startswith(("#", '"')) or bool(_UNSAFE.search(name)) or
            _is_background(name) or name in IGNORE_NAMES or name.startswith("\ufeff"))


def classes_txt_line(name: str) -> str:
    return json.dumps(name, ensure_ascii=True) if _needs_quotes(name) else name


def classes_txt(names: list[str]) -> str:
    """classes.txt for class values 1..N: the background on line 0, then one name a line (quoted when needed)."""
    return "\n".join([BACKGROUND, *(classes_txt_line(n) for n in names)]) + "\n"


# ---------------------------------------------------------------- the option

def option_class_list(value: Any, what: str = "class_names") -> ClassList:
    """The class list option `what`: a list or comma-separated string, or {value: name} (which may name 0)."""
    source = f"option {what}"
    if isinstance(value, dict):
        named: dict[int, str] = {}
        for k, v in value.items():
            key = int(k) if isinstance(k, int) or (isinstance(k, str) and k.strip().isdigit()) else None
            if key is None or not 0 <= key <= MAX_CLASSES or not isinstance(v, str) or not v.strip():
                raise DatasetError(f"option {what} maps {k!r:.20} to {v!r:.40}.",
                                   fix=f"map mask values 0..{MAX_CLASSES} to names, e.g. `{what}="
                                       '{"0": "sky", "1": "road"}`.')
            named[key] = v.strip()
        if 0 in named and _is_background(named[0]):
            del named[0]
        _check_unique(list(named.values()), what)
        return ClassList([named[k] for k in sorted(named)], source, named)
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise DatasetError(f"option {what} must be a list of class names, not {value!r:.60}.",
                           fix=f"give `{what}=cat,dog` (a list) or `{what}=" + '{"1": "cat", "2": "dog"}`.')
    return _from_lines([(v, False) for v in value], source, what)


# ---------------------------------------------------------------- which value each name names

def value_ranges(values: list[int]) -> str:
    """'0-10, 12' for [0, 1, ..., 10, 12]."""
    out: list[str] = []
    for v in sorted(values):
        if out and out[-1].split("-")[-1] == str(v - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{v}"
        else:
            out.append(str(v))
    return ", ".join(out)


def _reading(names: list[str], start: int) -> str:
    pairs = [f"{start + i} {n}" for i, n in enumerate(names)]
    if len(pairs) > 2 * SHOWN + 1:
        pairs = [*pairs[:SHOWN], "...", *pairs[-SHOWN:]]
    head = "0 background, " if start == 1 else ""
    return head + ", ".join(pairs)


def resolve(classes: ClassList, present: set[int]) -> tuple[dict[int, str], str]:
    """({mask value: name}, a note saying how a plain list was read, or "") for the values `present` in the
    masks (void left out). A plain list that fits two ways and neither completely is refused."""
    if classes.values is not None:
        return dict(classes.values), ""
    names = classes.names
    count = len(names)
    top = max(present - {0}, default=0)
    from_zero_fits = bool(present) and max(present) <= count - 1
    from_one_fits = top <= count
    from_zero_complete = from_zero_fits and count == len(present)
    from_one_complete = from_one_fits and count == top and top > 0
    shown = value_ranges(sorted(present)) or "none"
    if from_zero_complete and not from_one_complete:
        start = 0
    elif from_one_complete and not from_zero_complete:
        start = 1
    elif from_zero_fits != from_one_fits:
        start = 0 if from_zero_fits else 1
    elif not from_zero_fits:
        raise DatasetError(f"{classes.source} names {count} classes, but the masks hold values {shown}; value "
                           f"{max(present)} has no name either way (from value 0 or from value 1).",
                           fix="add the missing names, or set `ignore_value` to the value that marks void pixels.")
    else:
        example = ", ".join(f'"{i}": "{n}"' for i, n in enumerate(names[:SHOWN]))
        raise DatasetError(
            f"{classes.source} lists {count} class names for mask values {shown} ({len(present)} values), which "
            f"fits two ways and neither completely: from value 0 ({_reading(names, 0)}) or from value 1 "
            f"({_reading(names, 1)}); masksmith does not guess.",
            fix=f"name the values with `class_names={{{example}, ...}}`, or put 'background' first in the list to "
                "read it from value 1.")
    mapping = {start + i: n for i, n in enumerate(names)}
    note = (f"{classes.source}: {count} names for mask values {shown}, read from value {start} "
            f"({_reading(names, start)})")
    return mapping, note
