"""Stopping cleanly: SIGTERM like Ctrl-C in the driver, and workers that die with their driver.

Batch schedulers and ``timeout`` stop a job with SIGTERM. :func:`stop_on_signals` turns SIGTERM
(and SIGHUP, a closed terminal) into :class:`Terminated`, a :class:`KeyboardInterrupt`, so the
driver unwinds exactly as on Ctrl-C: the item in flight is rolled back (it is redone on rerun),
worker processes are stopped, and the command line prints one line naming how to resume.

A worker process calls :func:`watch_driver` when it starts: it then dies with its driver however
the driver ends (``kill -9`` included) — through Linux's parent-death signal where available, and
a thread that polls the parent's process id everywhere; a worker forked by the driver's fork
server, through a process file descriptor of the driver.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from ntknas.execution.reaper import parent_of

STOPPING_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by a signal (SIGTERM, SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """The shell's convention: 128 + the signal number (143 for SIGTERM)."""
        return 128 + self.signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread (once:
    a repeated signal while unwinding is ignored). Outside the main thread it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal raised
        if raised:
            return
        raised = True
        raise Terminated(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOPPING_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


PR_SET_PDEATHSIG = 1


def watch_driver(driver_pid: int) -> None:
    """Make this worker end when its driver ends, however it ends: the driver is its parent (a
    spawned worker, :func:`watch_parent`) or started the fork server that forked it. A fork server
    outlives its driver while any worker it forked holds the pipe that tells it its driver is
    gone, so a forked worker watches the driver itself, through a process file descriptor that
    becomes readable the moment the driver ends."""
    server = os.getppid()
    if server == driver_pid:
        watch_parent(driver_pid)
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        driver = os.pidfd_open(driver_pid)
    except ProcessLookupError:
        os._exit(1)
    if parent_of(server) not in (driver_pid, None):  # the driver ended and its process id went to another
        os._exit(1)

    def wait() -> None:
        select.select([driver], [], [])
        os._exit(1)

    threading.Thread(target=wait, name="ntknas-watch-driver", daemon=True).start()


def forked_workers_can_watch_their_driver() -> bool:
    """Whether :func:`watch_driver` can watch a driver that is not the worker's parent (Linux 5.3
    and later: process file descriptors)."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


def watch_parent(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """Make this process end when ``parent_pid`` (its parent) ends, however it ends.

    Ctrl-C in a terminal reaches the whole process group: a worker ignores SIGINT and lets its
    driver decide (the driver stops its workers itself)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the thread below suffices
            pass
    if os.getppid() != parent_pid:  # the driver died before the line above took effect
        os._exit(1)

    def poll() -> None:
        while True:
            time.sleep(poll_seconds)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=poll, name="ntknas-watch-parent", daemon=True).start()
