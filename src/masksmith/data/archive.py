"""Safe zip extraction: no path escapes, no links, bounded size and ratio, atomic, cached by content.

- Before a byte is written, the members are checked: names that leave the folder or are links, two entries
  for one file (a zip may hold both; extracting would keep one without a word), more than
  MAX_FILES entries, more than `max_total` bytes unpacked in all, a member or the whole zip inflating more
  than MAX_RATIO times (512 members of 16 MiB of zeros is 8 GiB from 8 MB: refused). While extracting, the
  bytes are counted again, so sizes the zip lies about change nothing.
- Extraction goes into a temporary folder beside the target, renamed into place when complete: any failure
  (a damaged member, a full disk, Ctrl-C) removes the temporary folder, and two processes extracting the same
  zip at once both end with the winner's complete folder.
- The cache (MASKSMITH_CACHE, else ~/.cache/masksmith/zips) keeps at most MAX_CACHE_ENTRIES extractions and
  MAX_CACHE_BYTES in all; the least recently used go first. Messages name the zip, never the cache folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import tempfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from masksmith.core.errors import ArchiveError

MAX_TOTAL_BYTES = 4 * 1024**3  # uncompressed, all members together
MAX_FILES = 200_000
MAX_RATIO = 100  # a member (above 1 MiB) or a whole zip that inflates more than this is a bomb, not photos
RATIO_FLOOR = 1 << 20  # small members (annotation JSON) may compress better than that
MAX_CACHE_ENTRIES = 8
MAX_CACHE_BYTES = 16 * 1024**3
_STAMP = ".masksmith-used"  # touched on every use: the cache evicts the least recently used first


def cache_dir() -> Path:
    return Path(os.environ.get("MASKSMITH_CACHE", Path.home() / ".cache" / "masksmith"))


def zips_cache() -> Path:
    return cache_dir() / "zips"


def _file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _size(n: float) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


def check_members(zf: zipfile.ZipFile, path: Path, max_total: int = MAX_TOTAL_BYTES) -> list[zipfile.ZipInfo]:
    """The members to extract, or an ArchiveError naming the zip and the first unsafe member."""
    infos = zf.infolist()
    if len(infos) > MAX_FILES:
        raise ArchiveError(f"holds {len(infos)} entries, more than the {MAX_FILES} allowed.", path=path,
                           fix="split the data set into smaller zips or extract it yourself.")
    total = 0
    seen: dict[tuple[str, ...], str] = {}
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if not info.is_dir() and parts in seen:  # zip allows it; extracting would keep one without a word
            raise ArchiveError(f"holds two entries for the same file {name!r}"
                               f"{f' (as {seen[parts]!r})' if seen[parts] != name else ''}; which one is meant "
                               "is unknown.", path=path,
                               fix="re-create the zip with one file of each name (a zip tool that appends adds a "
                                   "second copy instead of replacing the first).")
        seen[parts] = name
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts or "\0" in name:
            raise ArchiveError(f"entry {name!r} points outside the archive folder.", path=path,
                               fix="re-create the zip from the data set folder itself.")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveError(f"entry {name!r} is a symbolic link, which is not extracted.", path=path,
                               fix="zip the files themselves, not links to them.")
        total += info.file_size
        if total > max_total:
            raise ArchiveError(f"would unpack to more than {_size(max_total)}.", path=path,
                               fix="split the data set into smaller zips or extract it yourself.")
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(1, info.compress_size):
            raise ArchiveError(f"entry {name!r} inflates {info.file_size // max(1, info.compress_size)}x; this "
                               "looks like a zip bomb.", path=path, fix="use the original files, not this zip.")
    packed = max(1, path.stat().st_size)
    if total > RATIO_FLOOR and total > MAX_RATIO * packed:
        raise ArchiveError(f"would unpack {_size(packed)} into {_size(total)} ({total // packed}x); this looks "
                           "like a zip bomb.", path=path, fix="use the original files, not this zip.")
    return infos


def extract_zip(path: Path, dest: Path | None = None, max_total: int = MAX_TOTAL_BYTES) -> Path:
    """Extract `path` safely and return the folder holding the data set.

    Without `dest`, extracts once into the cache (keyed by the zip's content) and reuses it.
    A single top-level folder in the zip is stepped into.
    """
    path = Path(path)
    cached = dest is None
    if dest is None:
        try:
            dest = zips_cache() / f"{path.stem[:80]}-{_file_digest(path)}"
        except OSError as exc:
            raise ArchiveError(f"cannot be read ({exc.strerror or exc}).", path=path) from None
    if not dest.exists():
        _extract(path, dest, max_total)
        if cached:
            prune_cache(keep=dest)
    if cached:
        _touch(dest)
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest


def _extract(path: Path, dest: Path, max_total: int) -> None:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"is not a readable zip ({exc}).", path=path,
                           fix="re-create the archive; only .zip is supported.") from None
    with zf:
        infos = check_members(zf, path, max_total)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest.parent))
        except OSError as exc:
            raise _write_error(exc, path, dest) from None
        try:
            written = 0
            for info in infos:
                if info.filename.startswith("__MACOSX/"):
                    continue
                target = tmp.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as out:
                    left = info.file_size  # never more than the member declares, whatever its stream holds
                    while chunk := src.read(min(1 << 20, left + 1)):
                        left -= len(chunk)
                        written += len(chunk)
                        if left < 0 or written > max_total:
                            raise ArchiveError(f"entry {info.filename!r} holds more bytes than the zip "
                                               "declares; it is damaged or crafted.", path=path,
                                               fix="re-create the archive.")
                        out.write(chunk)
            _publish(tmp, dest)
        except (NotImplementedError, RuntimeError) as exc:  # an unknown compression, a password
            shutil.rmtree(tmp, ignore_errors=True)
            raise ArchiveError(f"cannot be extracted ({exc}).", path=path,
                               fix="re-create it as a plain zip (deflate, no password).") from None
        except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, zlib.error) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ArchiveError(f"is damaged and cannot be extracted ({exc}).", path=path,
                               fix="re-create or download the archive again.") from None
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise _write_error(exc, path, dest) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _publish(tmp: Path, dest: Path) -> None:
    """Rename the complete extraction into place; when another process got there first, keep its folder."""
    try:
        os.replace(tmp, dest)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and dest.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)  # the same content, already complete: use the winner's
            return
        raise


def _write_error(exc: OSError, zip_path: Path, dest: Path) -> ArchiveError:
    from masksmith.core.outputs import os_error

    reason = os_error(exc, dest, "extract")
    return ArchiveError(f"cannot be extracted into the cache {dest.parent} ({exc.strerror or exc}"
                        f"{', ' + errno.errorcode.get(exc.errno or 0, '') if exc.errno else ''}).", path=zip_path,
                        fix=(reason.fix + " " if reason.fix else "") + "Or set MASKSMITH_CACHE to a folder with "
                        "room, or unzip it yourself and pass the folder.")


def _touch(folder: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only cache still serves
        (folder / _STAMP).touch()


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _last_used(folder: Path) -> float:
    try:
        return (folder / _STAMP).stat().st_mtime
    except OSError:
        try:
            return folder.stat().st_mtime
        except OSError:
            return 0.0


def prune_cache(keep: Path | None = None, max_entries: int | None = None, max_bytes: int | None = None
                ) -> list[Path]:
    """Remove the least recently used extractions until at most `max_entries` remain and they hold at most
    `max_bytes`; `keep` (the one in use) stays. Temporary folders of extractions that died more than a day ago
    go too. Returns the folders removed."""
    max_entries = MAX_CACHE_ENTRIES if max_entries is None else max_entries
    max_bytes = MAX_CACHE_BYTES if max_bytes is None else max_bytes
    root = zips_cache()
    try:
        children = list(root.iterdir())
    except OSError:
        return []
    removed = []
    now = time.time()
    for tmp in (c for c in children if c.name.startswith(".extract-")):
        try:
            if now - tmp.stat().st_mtime > 86400:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass
    entries = sorted((c for c in children if c.is_dir() and not c.name.startswith(".")), key=_last_used)
    sizes = {c: _folder_bytes(c) for c in entries}
    total = sum(sizes.values())
    for folder in entries:
        if len(entries) - len(removed) <= max_entries and total <= max_bytes:
            break
        if keep is not None and folder == keep:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
        total -= sizes[folder]
    return removed


def zip_name(text: str, extracted: Path, zip_path: Path) -> str:
    """`text` (a path or a message) with the cache folder of an extraction replaced by the zip's own name:
    `data.zip:annotations.json`, so the user reads what they passed, not where masksmith unpacked it."""
    root = str(extracted)
    if root not in text:
        return text
    out = text.replace(root + os.sep, f"{zip_path}:").replace(root, str(zip_path))
    return out


def zip_folder(folder: str | Path, out: str | Path, *, arcname: str | None = None) -> Path:
    """Zip every regular file under `folder` (links and hidden files left out) into `out`, atomically, the
    entries under `arcname/` (default: the folder's name) so that `extract_zip` steps into it again."""
    from masksmith.core.outputs import atomic_save

    folder = Path(folder)
    if not folder.is_dir():
        raise ArchiveError("is not a folder to zip.", path=folder)
    top = arcname if arcname is not None else folder.name
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in files:
                name = p.relative_to(folder).as_posix()
                zf.write(p, f"{top}/{name}" if top else name)

    return atomic_save(out, write)
