"""Processes that must not outlive their driver, ``kill -9`` included: a watcher ends them.

A local Ray instance is started by Ray from the driver. Ray ties its direct children (the GCS
server, the raylet) to the driver through Linux's parent-death signal, but their own children
(the raylet's agents and workers) notice their raylet's end only by polling, a minute or more
later on a busy machine. So the driver marks the processes it lets Ray start with an
environment variable (:meth:`Reaper.marking`), and a small watcher process, in a session of its
own so that a signal to the driver's process group spares it, waits for the driver to end (its
stdin pipe closes, however the driver ends) and kills every process that carries the mark.

The mark alone misses some: Ray renames its agents (``ray::DashboardAgent``) with
setproctitle, which overwrites the memory ``/proc/PID/environ`` shows, so their mark is gone.
While the driver lives, the watcher therefore also keeps, once a second, every descendant of a
marked process (with its start time, so that a reused process id is never taken for it): when
the driver ends, the raylet dies at once and its children are handed to init, but the watcher
still knows them.

The watcher runs this file as a script: the standard library only, so that it starts in a
fraction of a second and holds a few MB. Processes are found through ``/proc``; where there is
none (not Linux) no watcher is started.
"""

from __future__ import annotations

import os
import select
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


def _stat_fields(pid: int | str) -> list[bytes]:
    """The fields of ``/proc/PID/stat`` after the command name (state, parent id, ...); OSError
    where the process is gone."""
    with open(os.path.join(PROC, str(pid), "stat"), "rb") as handle:
        return handle.read().rpartition(b")")[2].split()


def processes() -> dict[int, tuple[int, str]]:
    """Every process's parent id and start time (clock ticks since boot, as ``/proc/PID/stat``
    gives it), by process id; zombies left out (they cannot be killed)."""
    found: dict[int, tuple[int, str]] = {}
    for name in os.listdir(PROC):
        if not name.isdigit():
            continue
        try:
            fields = _stat_fields(name)
            if fields[0] != b"Z":
                found[int(name)] = (int(fields[1]), fields[19].decode())
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
    return found


def parent_of(pid: int) -> int | None:
    """The parent process id of ``pid`` (None where ``/proc`` cannot tell)."""
    try:
        return int(_stat_fields(pid)[1])
    except (OSError, ValueError, IndexError):
        return None


def descendants(roots: set[int], table: dict[int, tuple[int, str]]) -> set[int]:
    """``roots`` and every process below them in ``table`` (:func:`processes`)."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [pid for pid in roots if pid in table]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


class Family:
    """The processes carrying a mark and everything they started, remembered with their start
    times across :meth:`update` calls, so that a descendant whose environment no longer shows
    the mark, or whose parent has died, is still found."""

    def __init__(self, mark: str, spare: frozenset[int] = frozenset()) -> None:
        self.mark, self.spare = mark, spare
        self.known: dict[int, str] = {}

    def update(self) -> list[int]:
        """Look again; the members alive now (the same process ids with the same start times)."""
        table = processes()
        self.known = {pid: start for pid, start in self.known.items() if table.get(pid, (0, ""))[1] == start}
        roots = set(marked(self.mark, self.spare)) | set(self.known)
        for pid in descendants(roots, table) - self.spare:
            self.known[pid] = table[pid][1]
        return sorted(self.known)


def reap(mark: str, spare: frozenset[int] = frozenset(), within: float = 10.0, family: Family | None = None) -> int:
    """Kill every process carrying ``mark`` and their descendants (``family``'s members too;
    never ``spare``), again until none is left or ``within`` seconds have passed (a dying
    parent may start one more child); how many."""
    family = family or Family(mark, spare)
    killed: set[int] = set()
    deadline = time.monotonic() + within
    while True:
        pids = family.update()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
        if not pids or time.monotonic() >= deadline:
            return len(killed)
        time.sleep(0.2)


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


WATCH_INTERVAL = 1.0
"""Seconds between the watcher's looks at the marked processes' descendants while the driver lives."""


def _watch(mark: str, driver: int) -> None:
    """The watcher: follow the marked processes' family until the driver closes the pipe or
    dies, then reap it."""
    family = Family(mark, spare=frozenset({driver, os.getpid()}))
    stdin = sys.stdin.buffer.fileno()
    try:
        while True:
            ready, _, _ = select.select([stdin], [], [], WATCH_INTERVAL)
            if ready and not os.read(stdin, 4096):
                break
            family.update()
    except OSError:
        pass
    reap(mark, family=family)


if __name__ == "__main__":
    _watch(sys.argv[1], int(sys.argv[2]))
