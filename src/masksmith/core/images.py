"""Reading photos: the one place every image is opened (training, preview, predict, extract, the apps).

- EXIF orientation is applied, because every viewer and annotation tool shows the photo upright and the
  annotations are drawn on that upright picture; sizes are reported after it.
- 16-bit greyscale (and 32-bit integer or float) images are scaled to 8 bits by the range their values use
  (0..1, 0..255, 0..65535, else their own lowest to highest), instead of being clipped to near-white by
  Pillow's plain conversion.
- Pillow's decompression-bomb refusal, truncated files, Git LFS pointer files and non-images become one
  MasksmithError naming the file and the fix.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from masksmith.core.errors import MasksmithError

# Pillow's own refusal threshold (twice MAX_IMAGE_PIXELS, ~179 megapixels): far above any photo, far below
# what fills memory.
MAX_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)
_ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_LFS_HEAD = b"version https://git-lfs"


class ImageReadError(MasksmithError):
    """A file that cannot be used as an image."""


def _source(source: str | Path | bytes) -> tuple[object, str | Path]:
    if isinstance(source, bytes | bytearray):
        return io.BytesIO(source), "embedded image"
    return source, source


def _failure(source: str | Path | bytes, where: str | Path, exc: BaseException) -> ImageReadError:
    if isinstance(exc, FileNotFoundError):
        return ImageReadError("the image file is missing.", path=where,
                              fix="put the image where the annotations expect it, or correct its name.")
    if isinstance(exc, Image.DecompressionBombError):
        return ImageReadError(f"declares more pixels than masksmith reads ({exc}).", path=where,
                              fix=f"downscale the image below {MAX_PIXELS // 1_000_000} megapixels.")
    if not isinstance(source, bytes | bytearray) and is_lfs_pointer(source):
        return ImageReadError("is a Git LFS pointer, not the image itself.", path=where,
                              fix="fetch the real files with `git lfs pull` in the repository you cloned.")
    return ImageReadError(f"cannot be read as an image ({exc}).", path=where,
                          fix="replace it with a valid JPEG or PNG.")


def is_lfs_pointer(path: str | Path) -> bool:
    """Whether the file is a Git LFS pointer (a clone without `git lfs pull`) instead of the file itself."""
    try:
        with open(path, "rb") as f:
            return f.read(64).startswith(_LFS_HEAD)
    except OSError:
        return False


def open_image(source: str | Path | bytes, *, orient: bool = True) -> Image.Image:
    """The decoded image (Pillow), EXIF orientation applied unless `orient` is False."""
    handle, where = _source(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(handle)  # type: ignore[arg-type]
            if im.width * im.height > MAX_PIXELS:
                raise Image.DecompressionBombError(f"{im.width}x{im.height} pixels")
            im.load()
        im = _upright(im) if orient else im
    except Image.DecompressionBombWarning:
        return _open_large(source, orient)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError) as exc:
        raise _failure(source, where, exc) from None
    return im


def _open_large(source: str | Path | bytes, orient: bool) -> Image.Image:
    """Images between Pillow's warning and refusal thresholds are legitimate (large scans): read them quietly."""
    handle, where = _source(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(handle)  # type: ignore[arg-type]
            im.load()
        return _upright(im) if orient else im
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError) as exc:
        raise _failure(source, where, exc) from None


def _upright(im: Image.Image) -> Image.Image:
    if im.getexif().get(0x0112, 1) in (1, None):
        return im  # exif_transpose would copy the pixels for nothing
    return ImageOps.exif_transpose(im)


def to_rgb(im: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any Pillow mode; high bit depths are scaled, not clipped."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        values = np.asarray(im).astype(np.float64)
        grey = np.clip(np.rint(_to_8bit(values, im)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)


def _to_8bit(values: np.ndarray, im: Image.Image) -> np.ndarray:
    """Grey values of a 16-bit, 32-bit integer or 32-bit float image on 0..255, by the range they use: 0..1
    (float), 0..255, 0..65535 (16-bit, and float or integer images holding 16-bit values); anything else
    (negative values, or above 65535) is stretched from its lowest to its highest value. NaN and infinities
    are black. Never clipped: a float TIFF of 0..65535 is a picture, not a white page."""
    finite = np.isfinite(values)
    if not finite.all():
        values = np.where(finite, values, np.nan)
    low = float(np.nanmin(values)) if finite.any() else 0.0
    high = float(np.nanmax(values)) if finite.any() else 0.0
    if im.mode.startswith("I;16") or (im.mode == "I" and im.format == "PNG"):
        out = values / 257.0  # 0..65535 -> 0..255
    elif low < 0 or high > 65535:
        out = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    elif high > 255:
        out = values / 257.0
    elif im.mode == "F" and high <= 1.0:
        out = values * 255.0
    else:
        out = values
    return np.nan_to_num(out, nan=0.0)


def read_image(source: str | Path | bytes) -> np.ndarray:
    """An image file (or its bytes) as an upright (H, W, 3) uint8 RGB array."""
    return to_rgb(open_image(source))


def image_size(source: str | Path | bytes) -> tuple[int, int]:
    """(width, height) of the upright image, from the header alone; ImageReadError when it is not one."""
    handle, where = _source(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(handle) as im:  # type: ignore[arg-type]
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise Image.DecompressionBombError(f"{w}x{h} pixels")
                orientation = im.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError) as exc:
        raise _failure(source, where, exc) from None
    return (h, w) if orientation in _ROTATED else (w, h)
