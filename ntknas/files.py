"""Output files written whole or not at all, and output folders checked before use.

Every output file (scores.csv, summary.json, summary.md, search.csv, track.csv, report.html,
report.md, PNG plots…) is built in memory, written to a temporary file in its own folder and
renamed over the target with :func:`os.replace`. A kill, a full disk or an I/O error therefore
leaves the previous file intact (or no file), never a file cut off mid-line, and the temporary
file is removed. The rename is atomic only within one file system, hence the same folder.

A failure is raised as :class:`OSError` whose ``filename`` is the TARGET (not the temporary
file, and not ``None`` as a failed ``write`` would give), so the command line's one-line fault
(:func:`ntknas.store.faults.os_fault`) names the file the user asked for. It stays an
``OSError`` rather than an :class:`~ntknas.errors.NtknasError` so that callers which word the
fault for their command (``--summary-only``, ``ntknas report``) keep doing so.

All bytes go through :func:`os.write` on one descriptor: the single place a test injects a
fault of the disk.
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ntknas.errors import DataError
from ntknas.errors import option as parameter

_TEMPORARY_TAG = ".ntknas-tmp-"


def temporary_name(path: Path) -> Path:
    """A fresh hidden name beside ``path`` (same folder, hence same file system)."""
    return path.with_name(f".{path.name}{_TEMPORARY_TAG}{secrets.token_hex(4)}")


def _named(error: OSError, path: Path) -> OSError:
    """The same fault, naming the target file (OSError picks the subclass from the errno)."""
    if error.errno is None:
        return error
    return OSError(error.errno, error.strerror or os.strerror(error.errno), str(path))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` by ``data`` atomically; returns ``path``.

    On any failure the previous file (if any) is left as it was, the temporary file is removed,
    and an :class:`OSError` naming ``path`` is raised.
    """
    target = Path(path)
    temporary = temporary_name(target)
    try:
        # 0o666 and O_EXCL: the file gets the same permissions as open(path, "w") would give
        # (the umask applies), and a name collision fails instead of clobbering.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as error:
        raise _named(error, target) from None
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)  # the data on disk before the rename makes it visible
        finally:
            os.close(fd)
        os.replace(temporary, target)
    except BaseException as error:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise _named(error, target) from None
        raise
    return target


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Replace ``path`` by ``text`` atomically (newlines written as given, no translation)."""
    return atomic_write_bytes(path, text.encode(encoding))


@contextmanager
def atomic_text(path: str | Path, *, encoding: str = "utf-8") -> Iterator[io.StringIO]:
    """A text buffer that replaces ``path`` atomically when the block ends without an error
    (nothing is written if it raises). Newlines are kept as written: ``csv.writer``'s ``\\r\\n``
    stays, as with ``open(path, "w", newline="")``."""
    buffer = io.StringIO(newline="")
    yield buffer
    atomic_write_text(path, buffer.getvalue(), encoding=encoding)


@contextmanager
def atomic_binary(path: str | Path) -> Iterator[io.BytesIO]:
    """A byte buffer that replaces ``path`` atomically when the block ends without an error
    (e.g. ``figure.savefig(buffer, format="png")``, ``torch.save(state, buffer)``)."""
    buffer = io.BytesIO()
    yield buffer
    atomic_write_bytes(path, buffer.getvalue())


def output_folder(path: str | Path, option: str = parameter("out")) -> Path:
    """Create the output folder ``path`` (and its parents) if needed; returns it.

    A path that is a regular file, or runs through one, is the user's mistake (exit 2), not a
    fault of the disk; any other failure is raised as the :class:`OSError` it is, naming the folder.
    ``option`` names the folder in the message (the parameter ``out`` unless told).
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{option} {folder} is a file, not a folder: pass a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        if blocker is None:
            raise
        raise DataError(
            f"{option} {folder}: {blocker} is a file, not a folder: pass a folder path"
        ) from None
    except OSError as error:
        raise _named(error, folder) from None
    return folder
