"""The parts of the one fuzz suite (test_fuzz.py). A format contributes `FUZZ_EXAMPLES` beside its own tests
(test_<format>.py): small valid data sets of its layouts, the values worth trying in them and its reading
options. The damage done to them is chosen by the kind of file (JSON, XML, CSV, an image, a text list), never by
the format, so adding a format adds an example and no fuzz code."""

from __future__ import annotations

import copy
import csv
import functools
import io
import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st
from PIL import Image

Draw = Callable[..., Any]  # hypothesis' data.draw

# What people's files hold where a file name goes: relative, climbing out, absolute on three systems, URLs,
# Windows separators, a video frame, accents, nothing at all.
NAMES = st.sampled_from(["a.jpg", "b.png", "../a.jpg", "/home/u/a.jpg", "file:/Users/x/b.png", "C:\\x\\a.jpg",
                         "sub/a.jpg", "", "a", "x.json", "clip.mp4#t=1.5", "a.jpg\\..\\..\\b.png", "é é.jpg"])


@dataclass(frozen=True)
class Example:
    """A small valid data set of one layout of a format, as the fuzz suite starts from it."""

    name: str
    write: Callable[[Path], object]  # writes the data set into the (existing, empty) folder given
    files: tuple[str, ...]  # the files the fuzz damages, relative to that folder
    points: tuple[str, ...] = ("",)  # what a user points at: the folder ("") or a path inside it
    options: Callable[[Path], st.SearchStrategy[dict[str, Any]]] = lambda root: st.just({})  # good and bad
    values: st.SearchStrategy[Any] = st.nothing()  # values of this layout worth putting into its files
    moves: tuple[str, ...] = ()  # other places (relative file paths) its files are found at in people's copies
    valid_with: Callable[[Path], dict[str, Any]] = lambda root: {}  # the options it needs to be read (when any)


# ------------------------------------------------------------------------------------------------ JSON
@functools.lru_cache(maxsize=256)
def json_values(keys: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """Any JSON value, its objects keyed mostly by the keys the document itself uses."""
    scalars = (st.none() | st.booleans() | st.integers(-5, 100) | st.integers() | st.just(10**400) | st.floats()
               | st.text(max_size=12))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), inner, max_size=4),
                        max_leaves=16)


def node_paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += node_paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += node_paths(v, (*prefix, i))
    return out


def mutate_json(draw: Draw, data: bytes, values: st.SearchStrategy[Any]) -> bytes:
    """One value of the document (anywhere, the root included) replaced by any JSON value or one of the
    layout's own."""
    try:
        doc = json.loads(data)
    except ValueError:
        return cut(draw, data)
    paths = node_paths(doc)
    keys = tuple(sorted({k for p in paths for k in p if isinstance(k, str)})) or ("id",)
    where = draw(st.sampled_from(paths), label="json node")
    value = copy.deepcopy(draw(json_values(keys) | values, label="json value"))
    if not where:
        doc = value
    else:
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        parent[where[-1]] = value
    return json.dumps(doc).encode()


# ------------------------------------------------------------------------------------------------- XML
PRINTABLE = st.text(alphabet="0123456789,;.-e #xyzé", max_size=12)
XML_VALUES = PRINTABLE | st.sampled_from(["0", "1", "64", "48", "-3", "1e400", "nan", "2,3;4,5", "1,2;3,4;5,1",
                                          "1, 2, 3", "frame_000000.png", "car", "true", "False", ""])


def printable(text: str) -> str:
    return "".join(c for c in text if c.isprintable())


@functools.lru_cache(maxsize=64)
def xml_trees(tags: tuple[str, ...], keys: tuple[str, ...]) -> st.SearchStrategy[ET.Element]:
    """Random elements of the document's own tags and attribute names."""
    def element(kids: st.SearchStrategy) -> st.SearchStrategy:
        return st.builds(make_element, st.sampled_from(tags), st.dictionaries(st.sampled_from(keys), XML_VALUES,
                                                                              max_size=6), PRINTABLE, kids)
    return st.recursive(element(st.just([])), lambda inner: element(st.lists(inner, max_size=4)), max_leaves=12)


def make_element(tag: str, attrs: dict[str, str], text: str, kids: list[ET.Element]) -> ET.Element:
    el = ET.Element(tag, {k: printable(v) for k, v in attrs.items()})
    el.text = printable(text)
    el.extend(copy.deepcopy(kids))
    return el


def mutate_xml(draw: Draw, data: bytes, values: st.SearchStrategy[Any]) -> bytes:
    """An attribute or a text set to another value, an element removed or copied, or a new one inserted
    (random, or one of the layout's own snippets)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return cut(draw, data)
    elements = list(root.iter())
    parents = {child: parent for parent in elements for child in parent}
    tags = tuple(sorted({e.tag for e in elements}))
    keys = tuple(sorted({k for e in elements for k in e.attrib})) or ("name",)
    el = draw(st.sampled_from(elements), label="xml element")
    op = draw(st.sampled_from(["attribute", "text", "remove", "copy", "insert", "snippet"]), label="xml change")
    text_values = XML_VALUES | values.filter(lambda v: not str(v).startswith("<")).map(lambda v: printable(str(v)))
    if op == "attribute":
        el.set(draw(st.sampled_from(keys)), draw(text_values))
    elif op == "text":
        el.text = draw(text_values)
    elif op in ("remove", "copy") and el in parents:
        parent = parents[el]
        if op == "remove":
            parent.remove(el)
        else:
            parent.insert(draw(st.integers(0, len(parent))), copy.deepcopy(el))
    elif op == "snippet":
        snippets = values.map(str).filter(lambda v: v.startswith("<"))
        text = draw(snippets | st.just(f"<{tags[0]}/>"))
        el.insert(draw(st.integers(0, len(el))), ET.fromstring(text))
    else:
        el.insert(draw(st.integers(0, len(el))), draw(xml_trees(tags, keys)))
    return ET.tostring(root)


# ------------------------------------------------------------------------------------------------- CSV
CELLS = st.text(max_size=20) | json_values(("name", "x", "y")).map(json.dumps)


def mutate_csv(draw: Draw, data: bytes, values: st.SearchStrategy[Any]) -> bytes:
    """A cell set to any text, a JSON value or one of the layout's own; a row dropped, copied or added."""
    try:
        rows = list(csv.reader(io.StringIO(data.decode())))
    except (UnicodeDecodeError, csv.Error):
        return cut(draw, data)
    cell = CELLS | values.map(str)
    op = draw(st.sampled_from(["cell", "drop", "copy", "add"]) if rows else st.just("add"), label="csv change")
    if op == "add":
        rows.insert(draw(st.integers(0, len(rows))), draw(st.lists(cell, max_size=8)))
    else:
        k = draw(st.integers(0, len(rows) - 1))
        if op == "drop":
            rows.pop(k)
        elif op == "copy":
            rows.insert(k, list(rows[k]))
        elif rows[k]:
            rows[k][draw(st.integers(0, len(rows[k]) - 1))] = draw(cell)
        else:
            rows[k] = [draw(cell)]
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode()


# ---------------------------------------------------------------------------------------------- images
MODES = ["same", "L", "P", "RGB", "1", "I;16", "RGBA", "LA"]


def mutate_image(draw: Draw, data: bytes, values: st.SearchStrategy[Any]) -> bytes:
    """Another picture in its place: of the values (colours, indices) the file holds or of random ones, in the
    same or another mode (palette, grey, RGB, 1-bit, 16-bit, with alpha), at its size or another."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            size, mode, fmt = im.size, im.mode, im.format
            pixels = np.asarray(im)
    except Exception:
        return cut(draw, data)
    target = draw(st.sampled_from(MODES), label="image mode")
    target = mode if target == "same" else target
    w, h = draw(st.sampled_from([size, size, (5, 4), (1, 1), (size[0] * 2, size[1])]), label="image size")
    rng = np.random.default_rng(draw(st.integers(0, 999), label="image seed"))
    some = pixels[::3, ::3]  # the values the picture holds (a thin grid of its pixels finds them)
    known = np.unique(some.reshape(-1, some.shape[-1]) if some.ndim == 3 else some.ravel(), axis=0)
    if draw(st.booleans(), label="values it holds"):
        arr = known[rng.integers(0, len(known), (h, w))]
        if arr.ndim == 3 and target in ("L", "P", "1", "I;16"):
            arr = arr[..., 0]
        elif arr.ndim == 2 and target in ("RGB", "RGBA", "LA"):
            arr = np.repeat(arr[..., None], len(target), axis=2)
        elif arr.ndim == 3 and arr.shape[2] != len(target):
            arr = np.repeat(arr[..., :1], len(target), axis=2)
    else:
        channels = len(target) if target in ("RGB", "RGBA", "LA") else 0
        arr = rng.integers(0, 70000 if target == "I;16" else 256, (h, w, channels) if channels else (h, w))
    arr = arr.clip(0, 65535).astype(np.uint16 if target == "I;16" else np.uint8)
    im = Image.fromarray(arr) if target in ("RGB", "RGBA", "LA", "I;16") else Image.fromarray(arr, "L")
    if target in ("P", "1"):
        im = im.convert(target) if target == "1" else Image.fromarray(arr, "P")
        if target == "P" and mode == "P":
            with Image.open(io.BytesIO(data)) as original:
                im.putpalette(original.getpalette() or [])
    buf = io.BytesIO()
    try:
        im.save(buf, fmt or "PNG")
    except (OSError, ValueError, KeyError):  # JPEG has no palette, alpha or 16 bits: such files come as PNG
        buf = io.BytesIO()
        im.save(buf, "PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------------------- text lists
def mutate_lines(draw: Draw, data: bytes, values: st.SearchStrategy[Any]) -> bytes:
    lines = data.decode(errors="replace").splitlines()
    line = st.text(alphabet="x ./-1_:#,\\", max_size=12) | values.map(str)
    k = draw(st.integers(0, len(lines)))
    if draw(st.booleans()) and k < len(lines):
        lines[k] = draw(line)
    else:
        lines.insert(k, draw(line))
    return "\n".join(lines).encode()


MUTATORS = {".json": mutate_json, ".xml": mutate_xml, ".csv": mutate_csv, ".txt": mutate_lines,
            **dict.fromkeys((".png", ".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".bmp"), mutate_image)}


# ---------------------------------------------------------------------------------------------- damage
def cut(draw: Draw, data: bytes) -> bytes:
    """The file cut short somewhere, with a few bytes of junk after it or none."""
    at = draw(st.integers(0, 1000), label="cut at (per mille)")
    return data[: at * len(data) // 1000] + draw(st.binary(max_size=8), label="junk")


def present(root: Path, files: tuple[str, ...]) -> list[str]:
    return [f for f in files if (root / f).is_file()]


def random_file(draw: Draw, root: Path, example: Example) -> None:
    """One of its files replaced by random bytes."""
    path = root / draw(st.sampled_from(example.files), label="file")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(draw(st.binary(max_size=300), label="bytes"))


def truncated_file(draw: Draw, root: Path, example: Example) -> None:
    """One of its files cut short (with junk after it or not)."""
    path = root / draw(st.sampled_from(present(root, example.files)), label="file")
    path.write_bytes(cut(draw, path.read_bytes()))


def mutated(draw: Draw, root: Path, example: Example) -> None:
    """One to three changes: a value inside one of its files (by the kind of file), or the layout itself (a file
    removed, or copied or moved where people's copies keep it)."""
    for _ in range(draw(st.integers(1, 3), label="changes")):
        files = sorted(p for p in root.rglob("*") if p.is_file())
        kinds = ["content", "content", "delete", "content"] + ["copy", "move", "content"] * bool(example.moves)
        kind = draw(st.sampled_from(kinds if files else ["copy"] if example.moves else ["none"]), label="change")
        if kind == "content":
            choices = present(root, example.files) or [str(p.relative_to(root)) for p in files]
            path = root / draw(st.sampled_from(choices), label="file")
            change = MUTATORS.get(path.suffix.lower())
            path.write_bytes(change(draw, path.read_bytes(), example.values) if change else
                             draw(st.binary(max_size=300)))
        elif kind == "delete":
            draw(st.sampled_from(files), label="file").unlink()
        elif kind in ("copy", "move") and files:
            source = draw(st.sampled_from(files), label="file")
            target = root / draw(st.sampled_from(example.moves), label="to")
            if target != source and not target.is_dir():
                target.parent.mkdir(parents=True, exist_ok=True)
                (shutil.move if kind == "move" else shutil.copyfile)(source, target)


DAMAGE: dict[str, Callable[[Draw, Path, Example], None]] = {
    "random": random_file, "truncated": truncated_file, "mutated": mutated}
