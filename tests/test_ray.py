"""The Ray executor on a real local Ray instance (2 CPUs, started once for the module): stored
values identical to a serial run, a worker killed mid-item, the driver killed mid-run, user
errors, cancellation, and the one-line errors of a start that cannot succeed."""

import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures_data import TINY_NB201 as TINY
from fixtures_data import write_cifar10

from ntknas.cli import main
from ntknas.errors import NtknasError
from ntknas.execution.executors import Task, make_executor
from ntknas.execution.ray_executor import (
    RayExecutor,
    RayOptions,
    _run_item,
    _stderr_kept_from_terminal,
    describe_item,
    items_at_once,
)
from ntknas.runs.correlate import CorrelateConfig, measure_item, run_correlate
from ntknas.runs.track import TrackConfig, run_track
from ntknas.spaces import get_space

ray = pytest.importorskip("ray")  # the dev extra installs it; without it these tests cannot run

pytestmark = pytest.mark.usefixtures("one_thread")  # the serial runs match a 1-CPU Ray item

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def cluster():
    """One local Ray instance for the module; its workers can import this test module."""
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)])}},
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory) -> Path:
    return write_cifar10(tmp_path_factory.mktemp("cifar"), per_class=2).parent


def _config(cifar_dir, nb201_csv, out, **overrides) -> CorrelateConfig:
    settings = dict(dataset="cifar10", data_dir=str(cifar_dir), benchmark=str(nb201_csv), archs="0:4",
                    batch_size=6, out=str(out), network_options=TINY, metrics=("knas", "tenas", "lga"))
    settings.update(overrides)
    return CorrelateConfig(**settings)


def _stored(out: Path, table: str = "measurements") -> dict:
    query = {
        "measurements": "SELECT arch, bn_mode, train_epochs, metric, value, reason, device FROM measurements",
        "tracking": "SELECT arch, epoch, quantity, value, NULL, NULL, NULL FROM tracking "
                    "WHERE quantity NOT IN ('train_seconds', 'kernel_seconds')",
    }[table]
    with sqlite3.connect(out / "results.sqlite") as db:
        return {row[:-3]: row[-3:] for row in db.execute(query)}


def _item_count(out: Path) -> int:
    with sqlite3.connect(out / "results.sqlite", timeout=5) as db:
        return db.execute("SELECT COUNT(*) FROM items").fetchone()[0]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free now, and nothing listens on it once closed


# ---------------------------------------------------------------------- no cluster needed


def test_without_ray_the_executor_is_a_one_line_error_naming_the_extra(monkeypatch, tmp_path, nb201_csv, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does where Ray is not installed
    code = main(["correlate", "--dataset", "digits", "--benchmark", str(nb201_csv), "--archs", "0:2",
                 "--out", str(tmp_path / "run"), "--executor", "ray", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'ntknas[ray]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_an_unreachable_cluster_is_a_one_line_error_that_stores_nothing(tmp_path, nb201_csv, capsys):
    started = time.monotonic()
    code = main(["correlate", "--dataset", "digits", "--benchmark", str(nb201_csv), "--archs", "0:2",
                 "--out", str(tmp_path / "run"), "--executor", "ray", "--ray-address", f"127.0.0.1:{_closed_port()}",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "no Ray cluster answers at 127.0.0.1:" in err and len(err.strip().splitlines()) == 1
    assert time.monotonic() - started < 60 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind, flags, message", [
    ("ray", dict(workers=3), "workers 3 sets the process pool"),
    ("serial", dict(workers=2), "kind serial runs one item at a time"),
    (None, dict(ray=RayOptions(address="auto")), "need kind ray"),
    ("ray", dict(ray=RayOptions(gpus_per_item=0.5)), "gpus_per_item 0.5 needs device cuda"),
    ("ray", dict(ray=RayOptions(cpus_per_item=1.5)), "above 1 must be a whole number"),
    ("ray", dict(ray=RayOptions(max_retries=-1)), "max_retries must be an integer >= 0"),
    ("ray", dict(device="cuda:1"), "use device cuda"),
])
def test_executor_choices_are_checked_in_one_line(kind, flags, message):
    with pytest.raises(NtknasError, match=message) as caught:
        make_executor(kind=kind, **flags)
    assert "\n" not in str(caught.value)


def test_items_at_once_counts_each_node_apart():
    nodes = [
        {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0}},
        {"Alive": True, "Resources": {"CPU": 3.0, "GPU": 2.0}},
        {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}},
        {"Alive": True, "Resources": {"CPU": 16.0}},
    ]
    assert items_at_once(nodes, cpus=1, gpus=0.25) == 4 + 3  # GPU-bound on the first, CPU-bound on the second
    assert items_at_once(nodes, cpus=2, gpus=0) == 4 + 1 + 8
    assert items_at_once(nodes, cpus=1, gpus=0.3) == 3 + 3  # 1 / 0.3 = 3.33 shares of a GPU
    assert items_at_once(nodes[2:3], cpus=1, gpus=0) == 0


def test_a_task_that_begins_after_the_deadline_does_nothing():
    def never(context, item, done):  # pragma: no cover - the point is that it is not called
        raise AssertionError("ran after the deadline")

    outcome = _run_item(never, "run", [None], "item", frozenset(), 1, time.time() - 1)
    assert outcome.late and outcome.results == []


# ---------------------------------------------------------------------- on the local instance


def test_correlate_on_ray_stores_what_one_process_stores(cluster, cifar_dir, nb201_csv, tmp_path):
    serial, on_ray = tmp_path / "serial", tmp_path / "ray"
    run_correlate(_config(cifar_dir, nb201_csv, serial, train_epochs=(0, 1), train_batch_size=8))
    progress = []
    outcome = run_correlate(_config(cifar_dir, nb201_csv, on_ray, train_epochs=(0, 1), train_batch_size=8),
                            executor=RayExecutor(RayOptions(cpus_per_item=1)),
                            on_progress=lambda done, total, key: progress.append((done, total)))
    assert (outcome.measured, outcome.skipped) == (4, 0) and progress[0] == (0, 4) and progress[-1] == (4, 4)
    expected, got = _stored(serial), _stored(on_ray)
    assert len(expected) == 4 * 2 * 2 * 3 and got == expected  # bit for bit, and the same device text


def test_track_on_ray_stores_what_one_process_stores(cluster, cifar_dir, tmp_path):
    config = dict(dataset="cifar10", data_dir=str(cifar_dir), archs="0,1", epochs=2, every=1,
                  network_options=TINY, train_batch_size=16)
    run_track(TrackConfig(out=str(tmp_path / "serial"), **config))
    outcome = run_track(TrackConfig(out=str(tmp_path / "ray"), **config), executor=RayExecutor())
    assert outcome.tracked == 2
    expected, got = _stored(tmp_path / "serial", "tracking"), _stored(tmp_path / "ray", "tracking")
    assert len(expected) == 2 * 3 * 8 and got == expected  # 8 quantities per epoch, the norm ratio included
    assert sorted(p.name for p in (tmp_path / "ray" / "checkpoints").iterdir()) == ["nb201_00000.pt", "nb201_00001.pt"]


@dataclass(frozen=True)
class StallOnce:
    """measure_item, except that the first try of ``victim`` records its pid and waits to be killed."""

    folder: str
    victim: str

    def __call__(self, context, entry, done):
        Path(self.folder, f"{entry.key == self.victim}-{os.getpid()}").touch()
        if entry.key == self.victim and not Path(self.folder, "killed").exists():
            time.sleep(120)
        return measure_item(context, entry, done)


class KillableRayExecutor(RayExecutor):
    def __init__(self, stall: StallOnce, **options):
        super().__init__(RayOptions(**options))
        self.stall = stall

    def map(self, work, context, tasks, deadline=None):
        return super().map(self.stall, context, tasks, deadline)


def _wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_worker_killed_mid_item_is_retried_and_the_item_stored_once(cluster, cifar_dir, nb201_csv, tmp_path):
    import threading

    folder = tmp_path / "pids"
    folder.mkdir()
    victim = get_space("nb201").key(get_space("nb201").arch_at(2))
    stall = StallOnce(str(folder), victim)

    def kill_the_victim():
        marker = _wait_for(lambda: [p for p in folder.iterdir() if p.name.startswith("True-")], 240, "the victim")
        (folder / "killed").touch()
        os.kill(int(marker[0].name.split("-")[1]), signal.SIGKILL)

    killer = threading.Thread(target=kill_the_victim, daemon=True)
    killer.start()
    finished = []
    outcome = run_correlate(_config(cifar_dir, nb201_csv, tmp_path / "run"), executor=KillableRayExecutor(stall),
                            on_progress=lambda done, total, key: key and finished.append(key))
    killer.join(timeout=1)
    tries = sorted(p.name for p in folder.iterdir() if p.name.startswith("True-"))
    assert len(tries) == 2, tries  # the killed try and the retry, in two worker processes
    assert outcome.measured == 4 and len(finished) == 4 and len(set(finished)) == 4 and victim in finished
    assert _item_count(tmp_path / "run") == 4 and len(_stored(tmp_path / "run")) == 4 * 2 * 3


def test_a_killed_driver_loses_nothing_and_a_rerun_adds_the_rest(cluster, cifar_dir, nb201_csv, tmp_path):
    out = tmp_path / "run"
    settings = dict(dataset="cifar10", data_dir=str(cifar_dir), benchmark=str(nb201_csv), archs="0:24",
                    batch_size=6, out=str(out), network_options=TINY, metrics=("knas", "lga"))
    script = textwrap.dedent(f"""
        from ntknas.runs.correlate import CorrelateConfig, run_correlate
        from ntknas.execution.ray_executor import RayExecutor, RayOptions
        run_correlate(CorrelateConfig(**{settings!r}), executor=RayExecutor(RayOptions(address={cluster!r})))
    """)
    driver = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        _wait_for(lambda: driver.poll() is not None or ((out / "results.sqlite").exists() and _item_count(out) >= 2),
                  240, "two stored items")
        assert driver.poll() is None, "the run finished before it could be killed"
        os.kill(driver.pid, signal.SIGKILL)
    finally:
        driver.wait()
    stored = _item_count(out)
    with sqlite3.connect(out / "results.sqlite") as db:
        rows = db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    assert stored >= 2 and rows == stored * 2 * 2  # whole items only
    finished = []
    outcome = run_correlate(CorrelateConfig(**settings), executor=RayExecutor(),
                            on_progress=lambda done, total, key: key and finished.append(key))
    assert outcome.skipped == stored and outcome.measured == 24 - stored == len(set(finished)) == len(finished)
    assert _item_count(out) == 24 and len(_stored(out)) == 24 * 2 * 2


class Named:
    def __init__(self, key: str) -> None:
        self.key = key


class Nothing:
    def portable(self):
        return self

    def local(self):
        return self


def fail_on_b(context, item, done):
    if item.key == "b":
        raise NtknasError("the thing is wrong: fix it")
    return [item.key]


# Long enough that a cancel delayed by a loaded machine still lands before a task could finish.
ITEM_SLEEP = 20


def touch_then_sleep(context, item, done):
    Path(item.key + ".start").touch()
    if not item.key.endswith("0"):
        time.sleep(ITEM_SLEEP)
    Path(item.key + ".end").touch()
    return [item.key]


def test_a_user_error_in_an_item_is_one_line_naming_it(cluster):
    with pytest.raises(NtknasError) as caught:
        list(RayExecutor().map(fail_on_b, Nothing(), [Task(Named("a")), Task(Named("b"))]))
    message = str(caught.value)
    assert message.startswith("b failed on ") and message.endswith(": the thing is wrong: fix it")
    assert "\n" not in message and describe_item(Named("x")) == "x"


def test_an_abandoned_run_leaves_no_task_running(cluster, tmp_path):
    names = [str(tmp_path / f"item{i}") for i in range(6)]
    results = RayExecutor().map(touch_then_sleep, Nothing(), [Task(Named(n)) for n in names])
    first, _ = next(results)
    assert first.key == names[0]
    results.close()  # what an error or Ctrl-C in the driver does: cancels the tasks in flight
    started = {n for n in names if Path(n + ".start").exists()}
    time.sleep(ITEM_SLEEP + 3)  # a task left running would have finished by now
    # No queued task starts once the run is abandoned. Ray's cancellation of a task already
    # running is best effort (one of them finished here now and then), so that is not asserted.
    assert {n for n in names if Path(n + ".start").exists()} == started
    assert {n for n in names if Path(n + ".end").exists()} <= started < set(names)


def test_the_command_line_runs_on_ray_and_honours_a_spent_budget(cluster, tmp_path, nb201_csv, capsys):
    out = tmp_path / "run"
    code = main(["correlate", "--dataset", "digits", "--benchmark", str(nb201_csv), "--archs", "0:2",
                 "--batch-size", "8", "--metrics", "knas", "--out", str(out), "--no-progress",
                 "--executor", "ray", "--cpus-per-item", "1", "--max-retries", "1", "--time-budget", "0"])
    captured = capsys.readouterr()
    assert code == 3 and "0 architectures measured" in captured.out
    assert "stopped by the time budget, 0 of 2 done; rerun to continue" in captured.err
    with sqlite3.connect(out / "results.sqlite") as db:
        environment = db.execute("SELECT value FROM meta WHERE key = 'environment'").fetchone()[0]
    assert '"executor": "ray"' in environment


# ---------------------------------------------------------------------- quiet, and gone with the driver


def _serve(reply: bytes):
    """A TCP server on 127.0.0.1 that answers every connection with ``reply`` (then reads until
    the client leaves): what sits at a wrong --ray-address. Returns its port and a stopper."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stopping = threading.Event()

    def answer():
        server.settimeout(0.2)
        while not stopping.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(2)
                try:
                    connection.sendall(reply)
                    while connection.recv(65536):
                        pass
                except OSError:
                    pass

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()

    def stop():
        stopping.set()
        thread.join(5)
        server.close()

    return server.getsockname()[1], stop


def _command_line(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """The ntknas command in a process of its own: what its terminal shows, file descriptor 2
    included (Ray's core writes there directly)."""
    code = "import sys; from ntknas.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


def _correlate_args(nb201_csv, out, *extra: str) -> list[str]:
    return ["correlate", "--dataset", "digits", "--benchmark", str(nb201_csv), "--archs", "0:2", "--batch-size", "8",
            "--metrics", "knas", "--out", str(out), "--no-progress", "--executor", "ray", *extra]


def test_a_port_that_does_not_speak_grpc_is_one_line_at_once(tmp_path, nb201_csv):
    port, stop = _serve(b"HTTP/1.0 400 Bad Request\r\n\r\n")  # e.g. the dashboard's port
    try:
        started = time.monotonic()
        result = _command_line(*_correlate_args(nb201_csv, tmp_path / "run", "--ray-address", f"127.0.0.1:{port}"))
    finally:
        stop()
    assert result.returncode == 2 and time.monotonic() - started < 60
    assert result.stderr.strip().splitlines() == [
        f"ntknas correlate: error: what answers at 127.0.0.1:{port} is not a Ray head node (it does not speak gRPC; "
        "the dashboard's port, 8265, is not it): give the head node's GCS port (6379 unless `ray start --port` set another)"
    ]
    assert not (tmp_path / "run").exists()


def test_what_ray_prints_on_descriptor_2_while_connecting_is_kept_from_the_terminal(capfd):
    # Ray's core retries a connection about 20 times, a line on file descriptor 2 each (a peer
    # that speaks HTTP/2 but is no GCS, e.g. behind a proxy): the lines are kept for the error.
    with _stderr_kept_from_terminal() as printed:
        os.write(2, b"[W gcs_client.cc:210] Failed to get cluster ID\n" * 20)
    assert capfd.readouterr().err == ""
    assert len(printed) == 20 and printed[0].endswith("Failed to get cluster ID")
    print("after", file=sys.stderr)
    os.write(2, b"restored\n")
    assert capfd.readouterr().err == "after\nrestored\n"


def _children() -> dict[int, list[int]]:
    """Each process's children, from /proc (no psutil)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, queue = _children(), set(), [pid]
    while queue:
        for child in tree.get(queue.pop(), []):
            if child not in found:
                found.add(child)
                queue.append(child)
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie is dead, waiting to be collected


def _session_processes(session: str) -> list[int]:
    """Processes that name the Ray session's folder on their command line (gcs_server, raylet,
    the dashboard, the log monitor)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if session.encode() in (entry / "cmdline").read_bytes() and _running(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def busy(context, item, done):
    Path(item.key).touch()
    until = time.monotonic() + 120
    while time.monotonic() < until:  # computing, as a measuring worker does: it polls nothing
        pass
    return [item.key]
