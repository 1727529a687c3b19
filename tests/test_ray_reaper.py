"""A local Ray instance ends with its driver, kill -9 included (issue 22.7).

In its own module: test_ray.py keeps an in-process Ray cluster alive for its whole module, and a
driver killed while that one runs is not the situation this test is about.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from test_ray import REPO, TESTS, _descendants, _running, _session_processes, _wait_for  # noqa: E402


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds processes through /proc")
def test_a_local_ray_instance_is_quiet_and_ends_with_a_driver_killed_mid_item(tmp_path):
    started, session_file = tmp_path / "started", tmp_path / "session"
    script = textwrap.dedent(f"""
        from pathlib import Path
        import ray
        from ntknas.execution.executors import Task
        from ntknas.execution.ray_executor import RayExecutor, RayOptions
        from test_ray import Named, Nothing, busy
        executor = RayExecutor(RayOptions(local_cpus=1))
        with executor:
            Path({str(session_file)!r}).write_text(ray._private.worker.global_worker.node.get_session_dir_path())
            list(executor.map(busy, Nothing(), [Task(Named({str(started)!r}))]))
    """)
    # A clean environment: nothing an earlier test's in-process Ray instance or reaper left in
    # this process's variables reaches the driver.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "NTKNAS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(REPO)])  # Ray's workers import busy
    stderr = tmp_path / "stderr.txt"  # not a pipe: a surviving process would hold it open
    with stderr.open("w") as sink:
        driver = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=env, stderr=sink)
    ray_processes: set[int] = set()
    try:
        _wait_for(lambda: driver.poll() is not None or started.exists(), 240, "the item to start")
        assert driver.poll() is None, stderr.read_text()[-2000:]
        session = session_file.read_text()
        ray_processes = _descendants(driver.pid) | set(_session_processes(session))
        assert len(ray_processes) >= 4  # gcs_server, raylet, their agents, the busy worker
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        killed = time.monotonic()
        # 40 s: the reaper needs a few (more beside a parallel test worker); unreaped agents lived about
        # 55 s (measured before the reaper)
        while time.monotonic() - killed < 40 and [p for p in ray_processes if _running(p)]:
            time.sleep(0.5)
        left = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:60] for p in ray_processes if _running(p)}
        assert not left and not _session_processes(session), f"Ray processes outlived their driver: {left}"
    finally:
        for pid in ray_processes:  # whatever the outcome, leave no process behind
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    printed = stderr.read_text()
    assert "Token authentication" not in printed and "WARNING" not in printed, printed[-2000:]
