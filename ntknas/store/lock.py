"""One run per folder at a time: an OS-level lock on a file in the run folder.

The lock is ``fcntl.flock`` on ``results.lock``: the kernel releases it when the holding process
ends, however it ends (``kill -9`` included), so a stale lock never needs removing by hand. The
file also names its holder (process id, host, start time) for the message that refuses
a second process. Where ``flock`` does not exist (not a POSIX system) the folder is not locked.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from ntknas.errors import RunFolderInUseError, StorageError, option
from ntknas.store.faults import os_fault

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "results.lock"


class RunLock:
    """The exclusive lock of a run folder, held from :meth:`acquire` until :meth:`release`."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if fcntl is None or self._fd is not None:  # pragma: no cover - not a POSIX system
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise os_fault(error, self.path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_read_holder(fd))
            os.close(fd)
            raise RunFolderInUseError(
                f"{self.run_dir} is in use by {holder}: one run per folder at a time; wait for it to "
                f"finish (or stop it), or use another {option('out')} folder"
            ) from None
        except OSError as error:  # e.g. a network file system without locks
            os.close(fd)
            raise StorageError(
                f"{self.path}: cannot lock the run folder ({error.strerror}): use a folder on a local disk"
            ) from None
        self._fd = fd
        _write_holder(fd)
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _write_holder(fd: int) -> None:
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    except OSError:  # a full disk: the lock holds all the same, only its label is missing
        pass


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data.decode() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    if "pid" not in holder:
        return "another process"
    text = f"process {holder['pid']} on host {holder.get('host', '?')}"
    if holder.get("started"):
        text += f" (started {holder['started']})"
    return text
