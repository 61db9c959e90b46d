"""The shared foundation: names from data into paths, the output folder guard, atomic writes, image reading."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masksmith.core.images import ImageReadError, image_size, read_image
from masksmith.core.outputs import OutputError, OutputFolder, atomic_write_text
from masksmith.core.paths import UnsafePath, resolve_under, safe_filename, safe_relative, unique_stems


@pytest.mark.parametrize("name", ["../x.jpg", "a/../../x.jpg", "/etc/passwd", "\\\\server\\share\\x.jpg",
                                  "C:\\photos\\x.jpg", "c:x.jpg", "file:///home/u/x.jpg", "", "a\x00b.jpg"])
def test_resolve_under_refuses_names_that_leave_the_root(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafePath):
        resolve_under(tmp_path, name)


def test_resolve_under_keeps_plain_names_and_flattens_on_request(tmp_path: Path) -> None:
    assert resolve_under(tmp_path, "images\\a b/c.jpg") == tmp_path / "images" / "a b" / "c.jpg"
    assert safe_relative("../../photo.jpg") == "photo.jpg"
    assert safe_relative("/home/user/private.jpg") == "private.jpg"
    assert safe_relative("file:/Users/me/data/img 1.jpg") == "img 1.jpg"
    assert safe_relative("C:\\data\\x.png") == "x.png"
    assert safe_relative("sub/./a/../b.jpg") == "b.jpg"
    assert resolve_under(tmp_path, "../../photo.jpg", flatten=True) == tmp_path / "photo.jpg"


def test_resolve_under_refuses_links_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePath, match="through a link"):
        resolve_under(root, "link/x.jpg")


@pytest.mark.parametrize(("text", "expected"), [("front/left wheel", "front_left wheel"), ("../x", "_x"),
                                                ("..", "item"), ("", "item"), ("a:b*c?", "a_b_c_"),
                                                ("con", "_con"), ("Räder", "Räder")])
def test_safe_filename(text: str, expected: str) -> None:
    assert safe_filename(text) == expected


def test_safe_filename_bounds_the_length() -> None:
    assert len(safe_filename("x" * 1000).encode()) <= 200


def test_unique_stems_tell_colliding_inputs_apart() -> None:
    assert unique_stems([Path("a/car.jpg"), Path("b/car.jpg"), Path("c/bus.jpg")]) == ["a_car", "b_car", "bus"]
    assert unique_stems([Path("car.jpg"), Path("car.png")]) == ["car_jpg", "car_png"]
    assert unique_stems([Path("x/Car.jpg"), Path("x/car.jpg")]) == ["Car", "car-2"]
    stems = unique_stems([Path("car.jpg")] * 3)
    assert len({s.lower() for s in stems}) == 3


def test_output_folder_refuses_the_input_around_or_inside_it(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"x")
    for out in (photos, photos / "preds", tmp_path):
        with pytest.raises(OutputError):
            OutputFolder(out, inputs=[photos])
    with pytest.raises(OutputError):
        OutputFolder(tmp_path, inputs=[photos / "a.jpg"])  # the folder holds the input file
    OutputFolder(tmp_path / "preds", inputs=[photos])  # beside it is fine


def test_output_folder_never_replaces_a_file_it_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.png").write_bytes(b"the user's own file")
    folder = OutputFolder(out)
    with pytest.raises(OutputError, match="not written by masksmith"):
        folder.write_bytes("mine.png", b"ours")
    assert (out / "mine.png").read_bytes() == b"the user's own file"
    folder.write_text("result.txt", "one")
    again = OutputFolder(out)  # a later run may replace its own outputs
    again.write_text("result.txt", "two")
    assert (out / "result.txt").read_text() == "two"
    assert again.exists("result.txt") and not again.exists("mine.png")
    OutputFolder(out, overwrite=True).write_bytes("mine.png", b"replaced on request")
    assert (out / "mine.png").read_bytes() == b"replaced on request"


def test_output_names_cannot_leave_the_folder(tmp_path: Path) -> None:
    folder = OutputFolder(tmp_path / "out")
    with pytest.raises(UnsafePath):
        folder.write_text("../escape.txt", "x")
    assert not (tmp_path / "escape.txt").exists()


def test_atomic_files_get_the_users_normal_mode_and_leave_no_temporary_file(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "hello")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_unwritable_output_folder_is_one_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "a_file"
    target.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        OutputFolder(target)
    with pytest.raises(Exception, match="Not a directory|cannot write"):
        OutputFolder(target / "sub")


def test_exif_orientation_is_applied_and_sizes_follow_it(tmp_path: Path) -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :10] = 255  # a white band on the left of the stored picture
    im = Image.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    im.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    assert image_size(tmp_path / "rotated.jpg") == (20, 40)
    upright = read_image(tmp_path / "rotated.jpg")
    assert upright.shape == (40, 20, 3)
    assert upright[:10].mean() > 200 and upright[-10:].mean() < 50  # the band is now on top


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.full((8, 8), 70 * 257, np.uint16)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    rgb = read_image(tmp_path / "grey16.png")
    assert rgb.shape == (8, 8, 3) and abs(float(rgb.mean()) - 70) < 1


def test_decompression_bomb_is_our_error(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("1", (50000, 50000)).save(buf, "PNG")  # small file, 2.5 gigapixels declared
    (tmp_path / "bomb.png").write_bytes(buf.getvalue())
    with pytest.raises(ImageReadError, match="more pixels than masksmith reads"):
        read_image(tmp_path / "bomb.png")
    with pytest.raises(ImageReadError, match="more pixels"):
        image_size(tmp_path / "bomb.png")


def test_git_lfs_pointer_is_named(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    with pytest.raises(ImageReadError, match="Git LFS pointer.*git lfs pull"):
        read_image(tmp_path / "photo.jpg")


def test_a_killed_writers_temporary_file_is_discarded_and_nothing_else(tmp_path: Path) -> None:
    """A process killed between writing and renaming leaves `.NAME.XXXXXXXX.tmp`; the folder removes only those
    (its own naming), never a user's file that merely looks alike."""
    import tempfile

    from masksmith.core.outputs import OutputFolder, partial_writes

    folder = OutputFolder(tmp_path / "out")
    folder.write_bytes("photo[1]_mask.png", b"done")
    fd, left = tempfile.mkstemp(prefix=".photo[1]_mask.png.", suffix=".tmp", dir=tmp_path / "out")
    os.close(fd)
    theirs = [tmp_path / "out" / n for n in (".photo[1]_mask.png.backup.tmp", ".photo[1]_mask.png.tmp",
                                              ".photo_mask.png.abcdefgh.tmp", "photo[1]_mask.png.abcdefgh.tmp")]
    for p in theirs:
        p.write_bytes(b"user")
    assert partial_writes(tmp_path / "out", ["photo[1]_mask.png"]) == [Path(left)]
    assert folder.discard_partial(["photo[1]_mask.png"]) == 1
    assert not Path(left).exists() and all(p.read_bytes() == b"user" for p in theirs)
    assert (tmp_path / "out" / "photo[1]_mask.png").read_bytes() == b"done"
