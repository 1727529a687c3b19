"""The watcher that ends a driver's processes: marked ones, and their descendants whose
environment no longer shows the mark (Ray's renamed agents) or whose parent died first."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ntknas.execution.reaper import Reaper, descendants

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds processes through /proc")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != b"Z"  # a zombie has ended; only its (new) parent's collecting is left


def test_descendants_follow_parents_and_ignore_other_branches() -> None:
    table = {1: (0, "1"), 10: (1, "5"), 11: (10, "6"), 12: (11, "7"), 20: (1, "8"), 21: (20, "9")}
    assert descendants({10}, table) == {10, 11, 12}
    assert descendants({11, 21}, table) == {11, 12, 21}
    assert descendants({99}, table) == set()  # a root that has ended has no family left in the table


def test_the_watcher_ends_an_unmarked_grandchild_whose_marked_parent_died_first(tmp_path: Path) -> None:
    # The parent carries the mark; it starts a child with an empty environment (as setproctitle
    # leaves Ray's agents: no mark to read), then is killed before the driver ends (as the raylet
    # is, by its parent-death signal), so the child is handed to init.
    pid_file = tmp_path / "child"
    parent_code = textwrap.dedent(f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env={{}})
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(120)
    """)
    reaper = Reaper()
    child = 0
    try:
        with reaper.marking():
            parent = subprocess.Popen([sys.executable, "-c", parent_code])
        deadline = time.monotonic() + 60
        while not pid_file.is_file() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the child did not start"
            time.sleep(0.1)
        child = int(pid_file.read_text())
        time.sleep(2.5)  # the watcher looks once a second
        parent.kill()
        parent.wait()
        assert _alive(child)
        reaper.close(wait=30)
        deadline = time.monotonic() + 15
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the watcher left the unmarked grandchild running"
    finally:
        reaper.close()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)
