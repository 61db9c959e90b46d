"""Writing files: atomically, with the user's normal file mode, into output folders that protect the user.

- `atomic_write_bytes/text`, `atomic_save_image`, `atomic_copy`, `atomic_save` (any writer callback),
  `atomic_writing` (a `with` block that fills the file while other work streams): the data
  goes to a temporary file in the target's folder, then `os.replace` puts it in place, so a reader (or a second
  process writing the same name) never sees half a file and an interrupted write leaves the old file whole.
  The file gets the mode a plain `open()` would give (0666 minus the umask), not mkstemp's 0600.
- `OutputFolder`: the one guard every command that writes a folder of results goes through. It refuses a
  folder that is, contains or lies inside an input; checks that the folder can be written before any work
  starts; never overwrites a file it did not write itself unless `overwrite=True`; and keeps a list of what it
  wrote (`.masksmith-written`) so a re-run may replace its own outputs and readers can skip them.
- `os_error(exc, path)`: an OSError (full disk, read-only folder, ...) as one MasksmithError line with errno
  (a `WriteError`); `storage_error(exc)` finds a full disk behind any exception, also one a writer such as
  torch.save reported in its own words.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from masksmith.core.errors import MasksmithError
from masksmith.core.paths import is_under, resolve_under

_umask_lock = threading.Lock()
_umask: int | None = None


def _file_mode() -> int:
    """0666 minus the process umask (read once; os.umask can only be read by setting it)."""
    global _umask
    with _umask_lock:
        if _umask is None:
            _umask = os.umask(0o022)
            os.umask(_umask)
    return 0o666 & ~_umask


class OutputError(MasksmithError):
    """An output folder or file that masksmith will not write."""


class WriteError(OutputError):
    """A file that could not be read or written for a reason of the system (a full disk, a read-only folder);
    `errno` says which."""

    def __init__(self, message: str, *, errno: int | None = None, **kwargs: Any) -> None:
        self.errno = errno
        super().__init__(message, **kwargs)


FULL_DISK = (errno.ENOSPC, errno.EDQUOT)
LOW_SPACE = 1 << 20  # a writer that fails with less than this free beside its file ran out of space


# errors about the file being written, whichever file the system call names (shutil's copy names the source
# photo when the disk fills up under the copy)
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def os_error(exc: OSError, path: str | Path | None = None, action: str = "write", *,
             output: bool = False) -> WriteError:
    """One line for an OSError: the path, what failed, the system's words and the errno name. With `output`,
    `path` is the file being written and is named when the disk (or a quota, or a size limit) has no room."""
    where = path if output and path is not None and exc.errno in _NO_ROOM else (exc.filename or path)
    name = errno.errorcode.get(exc.errno or 0, "")
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
    fixes = {errno.ENOSPC: "free some disk space or choose a folder on another disk.",
             errno.EDQUOT: "free some space in your quota or choose another folder.",
             errno.EACCES: "choose a folder you may write to.", errno.EPERM: "choose a folder you may write to.",
             errno.EROFS: "choose a folder on a writable disk.",
             errno.EFBIG: "the file is larger than this disk or your limits allow; choose another folder.",
             errno.ENOTDIR: "a part of the path is a file; choose another path.",
             errno.EISDIR: "the path is a folder; give a file name."}
    return WriteError(f"cannot {action} ({reason}{f', {name}' if name else ''}).", path=where,
                      fix=fixes.get(exc.errno or 0), errno=exc.errno)


def storage_error(exc: BaseException | None) -> WriteError | None:
    """The WriteError (or OSError, as one) of a full disk or quota behind `exc` (itself or what it was raised
    from or during), or None: how a long job tells "the disk is full" from its own failures."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, WriteError) and exc.errno in FULL_DISK:
            return exc
        if isinstance(exc, OSError) and exc.errno in FULL_DISK:
            return os_error(exc)
        exc = exc.__cause__ or exc.__context__
    return None


def _out_of_space(path: Path) -> bool:
    """Whether the disk holding `path` has (almost) no room left."""
    try:
        return shutil.disk_usage(path.parent).free < LOW_SPACE
    except OSError:
        return False


def _temp_prefix(path: Path) -> str:
    return f".{path.name[:100]}."


def partial_writes(folder: str | Path, names: Iterable[str]) -> list[Path]:
    """The temporary files in `folder` that atomic writes of `names` (file names in it) left when their process
    was killed between writing and renaming (a SIGKILL runs no clean-up): `.NAME.XXXXXXXX.tmp`, named as only
    `atomic_writing` names them. One listing of the folder, however many names."""
    wanted = {_temp_prefix(Path(n)) for n in names}
    pattern = re.compile(r"(\..*\.)[a-z0-9_]{8}\.tmp")
    try:
        entries = [e.name for e in os.scandir(folder) if e.name.endswith(".tmp")]
    except OSError:
        return []
    return sorted(Path(folder, n) for n in entries if (m := pattern.fullmatch(n)) and m.group(1) in wanted)


def atomic_save(path: str | Path, write: Callable[[Path], Any], *,
                before_replace: Callable[[], Any] | None = None) -> Path:
    """Call `write(tmp_path)` to fill a temporary file beside `path`, then rename it into place."""
    with atomic_writing(path, before_replace=before_replace) as tmp:
        write(tmp)
    return Path(path)


@contextlib.contextmanager
def atomic_writing(path: str | Path, *, before_replace: Callable[[], Any] | None = None) -> Iterator[Path]:
    """A temporary path beside `path` to fill inside the `with` block (for files written while work streams,
    such as a summary CSV); it replaces `path` only when the block completes, and is removed otherwise.
    `before_replace` runs just before the rename (an output folder records the file as its own there, so an
    interruption never leaves a file of ours that the folder does not know)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise os_error(exc, path) from None
    try:
        yield Path(tmp)
        os.chmod(tmp, _file_mode())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename == tmp:
            exc.filename = str(path)  # the temporary name means nothing to the user
        raise os_error(exc, path, output=True) from None
    except Exception as exc:
        # some writers (torch.save) report a full disk as their own error, without the errno
        full = _out_of_space(path)
        Path(tmp).unlink(missing_ok=True)
        if full and not isinstance(exc, MasksmithError):
            raise os_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), path) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_save(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_copy(src: str | Path, dst: str | Path) -> Path:
    """Copy a file's bytes (and times) atomically; nothing is done when `dst` is `src`."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and src.resolve() == dst.resolve():
        return dst
    return atomic_save(dst, lambda tmp: shutil.copy2(src, tmp))


_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}


def atomic_save_image(image: Any, path: str | Path, format: str | None = None, *,
                      before_replace: Callable[[], Any] | None = None, **options: Any) -> Path:
    """Save a PIL image or an (H, W[, C]) uint8 array; the format follows the suffix unless given."""
    import numpy as np
    from PIL import Image

    path = Path(path)
    picture = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    # the common suffixes without Image.registered_extensions(), which loads every Pillow plug-in (0.1-0.3 s)
    fmt = format or _FORMATS.get(path.suffix.lower()) or Image.registered_extensions().get(path.suffix.lower()) \
        or "PNG"
    return atomic_save(path, lambda tmp: picture.save(tmp, format=fmt, **options), before_replace=before_replace)


def atomic_save_figure(figure: Any, path: str | Path, *, before_replace: Callable[[], Any] | None = None,
                       **options: Any) -> Path:
    """A matplotlib figure saved atomically (format from the suffix)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    return atomic_save(path, lambda tmp: figure.savefig(tmp, format=fmt, **options), before_replace=before_replace)


def check_writable(folder: str | Path) -> Path:
    """Create `folder` if needed and prove it takes a file, before any long work starts."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError("is a file, not a folder.", path=folder, fix="choose a folder for the outputs.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".masksmith-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise os_error(exc, folder) from None
    return folder


class OutputFolder:
    """A folder masksmith writes results into, and the rules for writing there (see the module docstring).

    `inputs`: files or folders the command reads; the output folder may not be one of them, lie inside one,
    or hold one. `overwrite`: replace files masksmith did not write. Names passed to `path()` and the write
    methods are relative to the folder and resolved through `masksmith.core.paths` (never outside it).
    """

    MANIFEST = ".masksmith-written"

    def __init__(self, root: str | Path, *, inputs: Iterable[str | Path | None] = (), overwrite: bool = False,
                 create: bool = True, may_hold_inputs: bool = False) -> None:
        self.root = Path(root)
        self.overwrite = overwrite
        for source in inputs:
            if source is None:
                continue
            source = Path(source)
            if is_under(self.root, source) and (source.is_dir() or self.root.resolve() == source.resolve()):
                raise OutputError(f"is, or lies inside, the input {source}; writing there could overwrite "
                                  "or mix with the originals.", path=self.root,
                                  fix="choose an output folder outside the input.")
            if not may_hold_inputs and self.root.exists() and is_under(source, self.root):
                raise OutputError(f"holds the input {source}; writing there could overwrite the originals.",
                                  path=self.root, fix="choose an output folder that does not hold the input.")
        if create:
            check_writable(self.root)
        self._written = self._read_manifest()
        self._lock = threading.Lock()

    @classmethod
    def for_file(cls, path: str | Path, *, inputs: Iterable[str | Path | None] = (), overwrite: bool = False
                 ) -> tuple[OutputFolder, str]:
        """(folder, name) for a command that writes one file (a preview, a report): the file may sit beside
        the inputs but not inside an input folder, and replaces only a file masksmith wrote."""
        path = Path(path)
        if path.is_dir():
            raise OutputError("is a folder; a file name is needed here.", path=path,
                              fix=f"give a file name, e.g. {path / 'out.png'}.")
        return cls(path.parent, inputs=inputs, overwrite=overwrite, may_hold_inputs=True), path.name

    # -- what is ours -----------------------------------------------------------------------------------
    def _manifest(self) -> Path:
        return self.root / self.MANIFEST

    def _read_manifest(self) -> set[str]:
        try:
            return {line for line in self._manifest().read_text(encoding="utf-8").splitlines() if line}
        except (FileNotFoundError, NotADirectoryError):
            return set()
        except (OSError, UnicodeDecodeError):
            return set()

    def _record(self, rel: str) -> None:
        with self._lock:
            if rel in self._written:
                return
            self._written.add(rel)
            try:  # one O_APPEND write per line: safe when several processes write into the folder
                fd = os.open(self._manifest(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, _file_mode())
                try:
                    os.write(fd, (rel + "\n").encode("utf-8"))
                finally:
                    os.close(fd)
            except OSError as exc:
                raise os_error(exc, self._manifest()) from None

    def relative(self, path: str | Path) -> str:
        """`path` relative to the folder (links followed), or ValueError when it lies elsewhere."""
        return Path(path).resolve().relative_to(self.root.resolve()).as_posix()

    def owns(self, path: str | Path) -> bool:
        """Whether masksmith wrote `path` (a file in this folder) on this or an earlier run."""
        try:
            rel = self.relative(path)
        except (ValueError, OSError):
            return False
        if rel in self._written:
            return True
        self._written |= self._read_manifest()  # another process may have written it meanwhile
        return rel in self._written

    def is_output(self, path: str | Path) -> bool:
        """Whether `path` is the manifest or a file masksmith wrote here: never to be read as an input."""
        return Path(path).name == self.MANIFEST or self.owns(path)

    # -- names and writing ------------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """The path of output `name` (relative, '/'-separated) inside the folder; UnsafePath otherwise."""
        return resolve_under(self.root, name, what="output name")

    def claim(self, name: str) -> Path:
        """The path for output `name`, refused when a file (or link) there was not written by masksmith."""
        path = self.path(name)
        if (path.exists() or path.is_symlink()) and not self.overwrite and not self.owns(path):
            raise OutputError("exists and was not written by masksmith; it is left as it is.", path=path,
                              fix="choose an empty output folder, or set `overwrite` to replace it.")
        return path

    def exists(self, name: str) -> bool:
        """Whether output `name` is already there from an earlier run of ours (for skipping finished work)."""
        path = self.path(name)
        return path.is_file() and self.owns(path)

    def discard_partial(self, names: Iterable[str]) -> int:
        """Remove what interrupted writes of `names` left behind (`partial_writes`: only masksmith's own temporary
        files), one listing per folder; returns how many."""
        by_folder: dict[Path, list[str]] = {}
        for name in names:
            path = self.path(name)
            by_folder.setdefault(path.parent, []).append(path.name)
        removed = 0
        for folder, files in by_folder.items():
            for tmp in partial_writes(folder, files):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                    removed += 1
        return removed

    def write_bytes(self, name: str, data: bytes) -> Path:
        return self.save(name, lambda tmp: tmp.write_bytes(data))

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode("utf-8"))

    def save_image(self, name: str, image: Any, format: str | None = None, **options: Any) -> Path:
        path = self.claim(name)
        return atomic_save_image(image, path, format, before_replace=self._recorder(path), **options)

    def save_figure(self, name: str, figure: Any, **options: Any) -> Path:
        path = self.claim(name)
        return atomic_save_figure(figure, path, before_replace=self._recorder(path), **options)

    def copy(self, name: str, src: str | Path) -> Path:
        path = self.claim(name)
        if path.exists() and Path(src).resolve() == path.resolve():
            return path
        return self.save(name, lambda tmp: shutil.copy2(src, tmp))

    def save(self, name: str, write: Callable[[Path], Any]) -> Path:
        """Any writer: `write(tmp_path)` fills a temporary file that then replaces output `name`."""
        path = self.claim(name)
        return atomic_save(path, write, before_replace=self._recorder(path))

    @contextlib.contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        """A temporary path to fill while work streams; output `name` appears only when the block completes."""
        path = self.claim(name)
        with atomic_writing(path, before_replace=self._recorder(path)) as tmp:
            yield tmp

    def _recorder(self, path: Path) -> Callable[[], None]:
        """Records `path` as ours just before it appears, so an interruption never leaves an unknown file."""
        return lambda: self._record(self.relative(path))


def as_output_folder(out: str | Path | OutputFolder, *, inputs: Iterable[str | Path | None] = (),
                     overwrite: bool = False) -> OutputFolder:
    """`out` itself when it is already an OutputFolder (its caller chose the inputs and --overwrite), else a
    new one guarding `inputs`."""
    return out if isinstance(out, OutputFolder) else OutputFolder(out, inputs=inputs, overwrite=overwrite)
