"""Processes that must not outlive their driver, ``kill -9`` included: a watcher ends them.

A local Ray instance is started by Ray from the driver. Ray ties its direct children (the GCS
server, the raylet) to the driver through Linux's parent-death signal, but their own children
(the raylet's agents and workers) notice their raylet's end only by polling, a minute or more
later on a busy machine. So the driver marks the processes it lets Ray start with an
environment variable (:meth:`Reaper.marking`), and a small watcher process, in a session of its
own so that a signal to the driver's process group spares it, waits for the driver to end (its
stdin pipe closes, however the driver ends) and kills every process that carries the mark.

The watcher runs this file as a script: the standard library only, so that it starts in a
fraction of a second and holds a few MB. Processes are found through ``/proc``; where there is
none (not Linux) no watcher is started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

MARK_VARIABLE = "NTKNAS_PROCESS_OWNER"
PROC = "/proc"


def marked(mark: str, spare: frozenset[int] = frozenset()) -> list[int]:
    """The processes whose environment, as they were started, carries ``mark``."""
    needle = f"{MARK_VARIABLE}={mark}".encode()
    found = []
    for name in os.listdir(PROC):
        if not name.isdigit() or int(name) in spare:
            continue
        try:
            with open(os.path.join(PROC, name, "environ"), "rb") as handle:
                variables = handle.read().split(b"\0")
        except OSError:  # gone meanwhile, or another user's
            continue
        if needle in variables:
            found.append(int(name))
    return found


def reap(mark: str, spare: frozenset[int] = frozenset(), within: float = 10.0) -> int:
    """Kill every process carrying ``mark`` (except ``spare``), again until none is left or
    ``within`` seconds have passed (a dying parent may start one more child); how many."""
    killed: set[int] = set()
    deadline = time.monotonic() + within
    while True:
        pids = [pid for pid in marked(mark, spare) if not _zombie(pid)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
        if not pids or time.monotonic() >= deadline:
            return len(killed)
        time.sleep(0.2)


def _zombie(pid: int) -> bool:
    """A process already dead and waiting for its parent to collect it (it cannot be killed)."""
    try:
        with open(os.path.join(PROC, str(pid), "stat"), "rb") as handle:
            return handle.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


class Reaper:
    """The driver's side: start the watcher, mark the processes started within
    :meth:`marking`, and :meth:`close` (the watcher then ends what is left and exits)."""

    def __init__(self) -> None:
        self.mark = uuid.uuid4().hex
        self._watcher: subprocess.Popen[bytes] | None = None
        if os.path.isdir(PROC):
            self._watcher = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), self.mark, str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )

    @contextmanager
    def marking(self) -> Iterator[None]:
        """Processes started within the block (and their descendants) carry the mark."""
        previous = os.environ.get(MARK_VARIABLE)
        os.environ[MARK_VARIABLE] = self.mark
        try:
            yield
        finally:
            if previous is None:
                del os.environ[MARK_VARIABLE]
            else:
                os.environ[MARK_VARIABLE] = previous

    def close(self, wait: float = 0.0) -> None:
        """Let the watcher end what is left of the marked processes; wait up to ``wait``
        seconds for it (it is collected later otherwise)."""
        watcher, self._watcher = self._watcher, None
        if watcher is None or watcher.stdin is None:
            return
        watcher.stdin.close()
        try:
            watcher.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass


def _watch(mark: str, driver: int) -> None:
    """The watcher: block until the driver closes the pipe or dies, then reap."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except OSError:
        pass
    reap(mark, spare=frozenset({driver, os.getpid()}))


if __name__ == "__main__":
    _watch(sys.argv[1], int(sys.argv[2]))
