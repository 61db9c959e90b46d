"""Zips: data sets inside a zip load like folders; unsafe or broken zips are refused with a clear message."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from masksmith.core.errors import ArchiveError, DatasetError
from masksmith.data import load_dataset
from masksmith.data.archive import extract_zip


def zip_folder(folder: Path, out: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, prefix + p.relative_to(folder).as_posix())
    return out


@pytest.mark.parametrize("prefix", ["", "my_dataset/"])
def test_dataset_in_zip_loads_with_format_detected(small_coco: Path, tmp_path: Path, prefix: str) -> None:
    archive = zip_folder(small_coco, tmp_path / "data.zip", prefix)
    ds = load_dataset(archive)
    assert ds.format == "coco"
    assert len(ds.samples) == 3 and ds.class_names == ["box", "roof"]
    assert all(s.image_path.exists() for s in ds.samples)


def test_second_load_reuses_the_extraction(small_coco: Path, tmp_path: Path) -> None:
    archive = zip_folder(small_coco, tmp_path / "data.zip")
    first = extract_zip(archive)
    marker = first / "marker.txt"
    marker.write_text("x")
    assert extract_zip(archive) == first and marker.exists()


def test_path_escape_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "evil.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../../escaped.txt", "gotcha")
    with pytest.raises(ArchiveError, match=r"evil\.zip.*'\.\./\.\./escaped\.txt' points outside"):
        load_dataset(bad)
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_absolute_path_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "abs.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("/etc/passwd_copy", "x")
    with pytest.raises(ArchiveError, match="points outside"):
        extract_zip(bad, tmp_path / "out")


def test_huge_uncompressed_size_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (4 << 20))
    with pytest.raises(ArchiveError, match="more than"):
        extract_zip(bomb, tmp_path / "out", max_total=1 << 20)
    assert not (tmp_path / "out").exists()


def test_high_ratio_member_is_refused_as_bomb(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (40 << 20))
    with pytest.raises(ArchiveError, match="zip bomb"):
        extract_zip(bomb, tmp_path / "out")


def test_not_a_zip(tmp_path: Path) -> None:
    fake = tmp_path / "data.zip"
    fake.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DatasetError, match=r"data\.zip: is not a valid zip"):
        load_dataset(fake)


def test_zip_without_annotations_names_known_formats(tmp_path: Path) -> None:
    archive = tmp_path / "empty.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    with pytest.raises(DatasetError, match="no annotation format recognised.*Known: coco"):
        load_dataset(archive)
