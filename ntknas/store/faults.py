"""Storage faults as one-line errors: what failed (the file) and why, and what to do.

A fault of the input (a damaged or foreign results file) is a :class:`~ntknas.errors.DataError`
(exit status 2); a fault of the machine (a full disk, a folder that is not writable, an I/O
error) is a :class:`~ntknas.errors.StorageError` (exit status 4). Either way every item already
committed stays in the store, so rerunning the same command once the cause is fixed resumes.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from ntknas.errors import DataError, NtknasError, StorageError, option

KEPT = "stored results are kept, rerun the same command to resume"

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
_NOT_FOUND = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}


def os_fault(error: OSError, path: str | Path | None = None, *, kept: bool = True) -> NtknasError:
    """One line for a file the command could not read or write (``kept``: say that the stored
    results survive, for a command that stores them)."""
    name = error.filename if error.filename is not None else path
    where = f"{name}: " if name is not None else ""
    cause = error.strerror or str(error) or type(error).__name__
    suffix = f" ({KEPT})" if kept else ""
    if error.errno in _FULL:
        return StorageError(f"{where}{cause}: the disk is full; free some space and rerun{suffix}")
    if error.errno in _NOT_WRITABLE:
        return StorageError(
            f"{where}{cause}: the file or its folder is not writable; make it writable or use another "
            f"{option('out')} folder{suffix}"
        )
    if error.errno in _NOT_FOUND:
        return DataError(f"{where}{cause}: check the path")
    return StorageError(f"{where}{cause}: check the disk and rerun{suffix}")


def sqlite_fault(error: sqlite3.Error, path: Path, *, writing: bool) -> NtknasError:
    """One line for an error of the results store at ``path``."""
    code = getattr(error, "sqlite_errorname", "") or ""
    text = str(error)
    lowered = text.lower()
    if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in lowered or "not a database" in lowered:
        return DataError(
            f"{path} is damaged ({text}): its results cannot be read; move it aside (sqlite3's .recover "
            f"may save what is intact) and rerun, or use another {option('out')} folder"
        )
    if "no such table" in lowered or "no such column" in lowered:
        return DataError(
            f"{path} is not an ntknas results store ({text}): pass the --out folder of ntknas correlate, "
            "track or search"
        )
    if code == "SQLITE_FULL" or "disk is full" in lowered:
        return StorageError(f"{path}: the disk is full ({text}); free some space and rerun ({KEPT})")
    if code.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")) or "readonly" in lowered:
        return StorageError(
            f"{path} cannot be written ({text}): the file or its folder is read-only; make the folder "
            f"writable and rerun ({KEPT}), or read it with ntknas report"
        )
    if code.startswith("SQLITE_CANTOPEN") or "unable to open" in lowered:
        action = "written" if writing else "read"
        return StorageError(
            f"{path} cannot be opened ({text}): check that its folder exists and can be {action}"
        )
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in lowered:
        return StorageError(f"{path} is locked by another process ({text}): wait for it to finish and rerun")
    if code.startswith("SQLITE_IOERR") or "i/o error" in lowered:
        return StorageError(f"{path}: disk I/O error ({text}); check the disk and rerun ({KEPT})")
    return StorageError(f"{path}: {text} ({KEPT})")
