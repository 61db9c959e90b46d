"""Safe zip extraction: no path escapes, no links, bounded size, atomic, cached by content."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from masksmith.errors import ArchiveError

MAX_TOTAL_BYTES = 8 * 1024**3  # uncompressed
MAX_FILES = 200_000
MAX_RATIO = 200  # a member that inflates more than this is a zip bomb, not a photo


def cache_dir() -> Path:
    return Path(os.environ.get("MASKSMITH_CACHE", Path.home() / ".cache" / "masksmith"))


def _file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def check_members(zf: zipfile.ZipFile, path: Path, max_total: int = MAX_TOTAL_BYTES) -> list[zipfile.ZipInfo]:
    """The members to extract, or an ArchiveError naming the first unsafe one."""
    infos = zf.infolist()
    if len(infos) > MAX_FILES:
        raise ArchiveError(f"holds {len(infos)} entries, more than the {MAX_FILES} allowed.", path=path)
    total = 0
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
            raise ArchiveError(f"entry {name!r} points outside the archive folder.", path=path,
                               fix="re-create the zip from the data set folder itself.")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveError(f"entry {name!r} is a symbolic link, which is not extracted.", path=path,
                               fix="zip the files themselves, not links to them.")
        total += info.file_size
        if total > max_total:
            raise ArchiveError(f"would unpack to more than {max_total / 1024**3:.1f} GiB.", path=path,
                               fix="split the data set into smaller zips or extract it yourself.")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 2**24:
            raise ArchiveError(f"entry {name!r} inflates {info.file_size // info.compress_size}x; this looks "
                               "like a zip bomb.", path=path)
    return infos


def extract_zip(path: Path, dest: Path | None = None, max_total: int = MAX_TOTAL_BYTES) -> Path:
    """Extract `path` safely and return the folder holding the data set.

    Without `dest`, extracts once into the cache (keyed by the zip's content) and reuses it.
    A single top-level folder in the zip is stepped into.
    """
    path = Path(path)
    if dest is None:
        dest = cache_dir() / "zips" / f"{path.stem}-{_file_digest(path)}"
    if not dest.exists():
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ArchiveError(f"is not a readable zip ({exc}).", path=path,
                               fix="re-create the archive; only .zip is supported.") from None
        with zf:
            infos = check_members(zf, path, max_total)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest.parent))
            try:
                for info in infos:
                    if info.filename.startswith("__MACOSX/"):
                        continue
                    target = tmp.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, target.open("wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                os.replace(tmp, dest)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                raise ArchiveError(f"is damaged and cannot be extracted ({exc}).", path=path) from None
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest


def zip_folder(folder: str | Path, out: str | Path, *, arcname: str | None = None) -> Path:
    """Zip every regular file under `folder` (links and hidden files left out) into `out`, atomically, the
    entries under `arcname/` (default: the folder's name) so that `extract_zip` steps into it again."""
    from masksmith.outputs import atomic_save

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
