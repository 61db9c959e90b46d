"""One fuzz suite over every registered format: random files, files cut short, valid files of the format's own
layouts with values changed and files moved, and all of these zipped. Whatever the files hold, reading them
raises nothing but masksmith's own errors, writes nothing (beside the data, in the current folder, in the cache
but for a complete extraction of a zip), stays within a bounded amount of memory, and the images it finds lie
inside the data set's folder.

Each format brings only `FUZZ_EXAMPLES` beside its own tests (test_<format>.py; see fuzzing.py): adding a format
adds an example, no fuzz code. The examples are drawn the same way on every run (the `ci` profile in
tests/conftest.py); HYPOTHESIS_PROFILE=explore draws new ones."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import resource
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzzing import DAMAGE, Draw, Example, cut
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from masksmith.core.errors import MasksmithError
from masksmith.data import load_dataset
from masksmith.data.formats import all_formats

FORMATS = [m.NAME for m in all_formats()]
MEMORY = 1 << 30  # a read of a few kilobytes may reserve this much more address space, no more
# examples drawn per kind of damage and per example of a format (a format with fewer than three examples gets
# the draws of three: every format is fuzzed about as much as it was by its own copy of these tests)
BUDGET = {"random": 10, "truncated": 12, "mutated": 30, "zipped": 8}


def examples_of(name: str) -> list[Example]:
    return list(getattr(importlib.import_module(f"test_{name}"), "FUZZ_EXAMPLES", []))


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_brings_valid_examples(name: str, tmp_path: Path) -> None:
    """The examples are the format's own and valid: read as it, strictly, with images found, from every point."""
    examples = examples_of(name)
    assert examples, f"tests/formats/test_{name}.py has no FUZZ_EXAMPLES: the fuzz suite cannot reach {name}"
    for example in examples:
        root = tmp_path / example.name
        root.mkdir()
        example.write(root)
        assert all((root / f).is_file() for f in example.files), example.name
        for point in example.points:
            if (root / point).exists():
                ds = load_dataset(root / point, **example.valid_with(root))
                assert ds.format == name and ds.samples, (example.name, point)


# ------------------------------------------------------------------------------------------- the checks
def files_of(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "/"
            for p in sorted(folder.rglob("*"))}


def address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


@contextlib.contextmanager
def bounded_memory(extra: int = MEMORY) -> Iterator[None]:
    """An allocation past `extra` more bytes of address space fails (MemoryError) instead of taking the machine
    (Linux; elsewhere the reads run unbounded)."""
    if not Path("/proc/self/statm").exists():
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = address_space() + extra
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def scratch(base: Path) -> Iterator[Path]:
    """A new folder for one example, with the current folder and the cache inside it, put back afterwards (the
    folders stay for pytest to remove with its temporary folder: removing thousands of them one by one is slow)."""
    before, cache = Path.cwd(), os.environ.get("MASKSMITH_CACHE")
    folder = Path(tempfile.mkdtemp(dir=base))
    for sub in ("data", "cwd", "cache"):
        (folder / sub).mkdir()
    os.chdir(folder / "cwd")
    os.environ["MASKSMITH_CACHE"] = str(folder / "cache")
    try:
        yield folder
    finally:
        os.chdir(before)
        if cache is None:
            os.environ.pop("MASKSMITH_CACHE", None)
        else:
            os.environ["MASKSMITH_CACHE"] = cache


def read_and_check(draw: Draw, name: str, example: Example, folder: Path, target: Path) -> None:
    options = draw(example.options(folder / "data"), label="options")
    kwargs: dict[str, Any] = dict(format=draw(st.sampled_from([None, name]), label="format"),
                                  strict=draw(st.booleans(), label="strict"),
                                  need_pixels=draw(st.booleans(), label="need_pixels"), **options)
    inputs = {k: v for k, v in files_of(folder).items() if not k.startswith(("cwd", "cache"))}
    try:
        with bounded_memory():
            ds = load_dataset(target, **kwargs)
    except MasksmithError:
        ds = None
    except MemoryError:
        pytest.fail(f"reading {target.relative_to(folder)} with {kwargs} wanted more than {MEMORY >> 20} MiB")
    assert {k: v for k, v in files_of(folder).items() if not k.startswith(("cwd", "cache"))} == inputs, \
        "reading changed the files read"
    assert files_of(folder / "cwd") == {}, "reading wrote into the current folder"
    cache = files_of(folder / "cache")
    assert all(k == "zips" or k.startswith("zips/") for k in cache), f"reading wrote into the cache: {cache}"
    assert not [k for k in cache if "/.extract-" in k], "a partial extraction was left in the cache"
    if ds is not None and ds.root is not None:
        for sample in ds.samples:  # every image a sample points at lies under the data set's root
            if sample.image_path is not None:
                assert ds.root in sample.image_path.parents or sample.image_path == ds.root, sample.image_path


def zip_of(draw: Draw, folder: Path) -> Path:
    """The data folder zipped (flat, or in one top folder), the zip maybe cut short."""
    root, archive = folder / "data", folder / "upload.zip"
    top = draw(st.sampled_from(["", "data/"]), label="zip top folder")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, top + path.relative_to(root).as_posix())
    if draw(st.sampled_from(["whole", "whole", "cut", "whole", "whole"]), label="the zip") == "cut":
        archive.write_bytes(cut(draw, archive.read_bytes()))
    return archive


# ------------------------------------------------------------------------------------------- the suite
@pytest.mark.parametrize("kind", list(BUDGET))
@pytest.mark.parametrize("name", FORMATS)
def test_damaged_files_raise_only_our_error_and_write_nothing(name: str, kind: str, tmp_path: Path) -> None:
    examples = examples_of(name)

    @settings(max_examples=BUDGET[kind] * max(3, len(examples)), deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def read_damaged(data: st.DataObject) -> None:
        example = data.draw(st.sampled_from(examples), label="example")
        with scratch(tmp_path) as folder:
            root = folder / "data"
            example.write(root)
            if kind == "zipped":
                damage = data.draw(st.sampled_from([None, *DAMAGE]), label="damage before zipping")
                if damage:
                    DAMAGE[damage](data.draw, root, example)
                target = zip_of(data.draw, folder)
            else:
                DAMAGE[kind](data.draw, root, example)
                points = [p for p in example.points if (root / p).exists()] or [""]
                target = root / data.draw(st.sampled_from(points), label="point")
            read_and_check(data.draw, name, example, folder, target)

    read_damaged()
