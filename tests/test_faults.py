"""Storage faults, one run per folder, signals, time budgets and --summary-only (issue 14).

Each fault ends with exactly one line on stderr naming the file and the cause, no traceback, a
documented exit status (2 input, 3 time budget, 4 environment, 5 folder in use, 143 SIGTERM),
and leaves every committed item in the store: a rerun resumes. Faults of the machine are
simulated so that the tests also hold when they run as root (whom chmod does not restrict);
the real read-only folder is tested too where the tests do not run as root.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
from fixtures_data import TINY_NB201 as TINY
from fixtures_data import write_cifar10

from ntknas.cli import main
from ntknas.execution.reaper import processes
from ntknas.runs.correlate import CorrelateConfig
from ntknas.store import ResultStore
from ntknas.store.lock import LOCK_FILE

REPO = Path(__file__).resolve().parents[1]
TINY_CLI = REPO / "tests" / "tiny_cli.py"
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory) -> Path:
    return write_cifar10(tmp_path_factory.mktemp("cifar"), per_class=2).parent


@pytest.fixture
def tiny(monkeypatch):
    """In-process runs build the tests' tiny NB201 networks (as tests/tiny_cli.py does)."""
    real = CorrelateConfig.resolved
    monkeypatch.setattr(CorrelateConfig, "resolved", lambda self, info: replace(real(self, info), network_options=dict(TINY)))


def _args(cifar_dir, nb201_csv, out, archs="0:4", *extra) -> list[str]:
    return ["correlate", "--data-dir", str(cifar_dir), "--benchmark", str(nb201_csv), "--archs", archs,
            "--batch-size", "6", "--metrics", "knas,lga", "--out", str(out), "--no-progress", *extra]


def _cli(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _counts(out: Path) -> tuple[int, int]:
    """(items, measurement rows) of a store, read without writing."""
    uri = (out / "results.sqlite").resolve().as_uri() + "?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=10) as db:
        items = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        rows = db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    db.close()
    return items, rows


def _snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


# ---------------------------------------------------------------------------------------------
# Damaged and unreadable stores: input faults, exit 2, the file left as it was
# ---------------------------------------------------------------------------------------------


def _damage(store_file: Path) -> None:
    """Keep SQLite's header, overwrite the pages after it: 'database disk image is malformed'."""
    data = bytearray(store_file.read_bytes())
    data[4096:] = b"\xa5" * (len(data) - 4096)
    store_file.write_bytes(bytes(data))


def test_damaged_store_is_one_line_exit_2_and_left_as_it_was(cifar_dir, nb201_csv, tmp_path, capsys, tiny):
    out = tmp_path / "run"
    assert _cli(_args(cifar_dir, nb201_csv, out, "0:2"), capsys)[0] == 0
    store_file = out / "results.sqlite"
    _damage(store_file)
    before = store_file.read_bytes()
    for argv in (_args(cifar_dir, nb201_csv, out, "0:2"), ["correlate", "--out", out, "--summary-only"],
                 ["report", out, "--out", tmp_path / "report"]):
        code, _, err = _cli(argv, capsys)
        line = _one_line(err)
        assert code == 2, err
        assert str(store_file) in line and "is damaged" in line and "malformed" in line
        assert "remove the file" not in line
    assert store_file.read_bytes() == before


def test_a_file_that_is_no_database_is_one_line_exit_2(cifar_dir, nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"not sqlite at all, " * 300)
    code, _, err = _cli(_args(cifar_dir, nb201_csv, out, "0:2"), capsys)
    assert code == 2 and "file is not a database" in _one_line(err)


def test_a_store_that_cannot_be_opened_is_an_environment_fault(cifar_dir, nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "results.sqlite").mkdir(parents=True)  # as unreadable as a file can be, even for root
    code, _, err = _cli(_args(cifar_dir, nb201_csv, out, "0:2"), capsys)
    line = _one_line(err)
    assert code == 4 and "results.sqlite" in line and "cannot be opened" in line


# ---------------------------------------------------------------------------------------------
# Environment faults: exit 4, every committed item kept, the rerun resumes
# ---------------------------------------------------------------------------------------------


def _fail_after(monkeypatch, commits: int, pragma: str) -> None:
    """After ``commits`` items are stored, run ``pragma`` on the store's connection."""
    real = ResultStore.commit_item
    seen = {"n": 0}

    def commit(self, *args, **kwargs):
        if seen["n"] == commits:
            page_count = self._db.execute("PRAGMA page_count").fetchone()[0]
            self._db.execute(pragma.format(page_count=page_count))
        seen["n"] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ResultStore, "commit_item", commit)


@pytest.mark.parametrize("kind, pragma, cause", [
    ("full disk", "PRAGMA max_page_count = {page_count}", "the disk is full"),
    ("folder read-only mid-run", "PRAGMA query_only = 1", "read-only"),
])
def test_store_fault_mid_run_keeps_committed_items_and_a_rerun_resumes(
    kind, pragma, cause, cifar_dir, nb201_csv, tmp_path, capsys, monkeypatch, tiny
):
    out = tmp_path / "run"
    argv = _args(cifar_dir, nb201_csv, out, "0:12")
    _fail_after(monkeypatch, 2, pragma)
    code, _, err = _cli(argv, capsys)
    line = _one_line(err)
    assert code == 4, err
    assert str(out / "results.sqlite") in line and cause in line and "stored results are kept" in line
    items, rows = _counts(out)
    assert items >= 2 and rows == items * 2 * 2
    monkeypatch.undo()
    real = CorrelateConfig.resolved
    monkeypatch.setattr(CorrelateConfig, "resolved", lambda self, info: replace(real(self, info), network_options=dict(TINY)))
    code, stdout, err = _cli(argv, capsys)
    assert code == 0, err
    assert stdout.startswith(f"{12 - items} architectures measured, {items} already stored")
    assert _counts(out) == (12, 12 * 4)


def _target(path: Path) -> Path | None:
    """The output file that ``path`` is the temporary file of (ntknas.files), if it is one."""
    name = path.name
    if not name.startswith(".") or ".ntknas-tmp-" not in name:
        return None
    return path.with_name(name[1:].split(".ntknas-tmp-")[0])


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if _target(p) is not None)


def _fail_output(monkeypatch, matches, error_number: int, *, at_creation: bool = False) -> list[Path]:
    """Writing an output file for which ``matches(target)`` holds fails with ``error_number``: at
    the creation of its temporary file, or (a disk filling up) after its first bytes are written.
    Returns the targets hit."""
    real_open, real_write = os.open, os.write
    started: dict[int, bool] = {}
    hit: list[Path] = []

    def open_(path, flags, *args, **kwargs):
        target = _target(Path(path))
        if target is None or not matches(target):
            return real_open(path, flags, *args, **kwargs)
        hit.append(target)
        if at_creation:
            raise OSError(error_number, os.strerror(error_number), str(path))
        fd = real_open(path, flags, *args, **kwargs)
        started[fd] = False
        return fd

    def write(fd, data):
        if fd not in started:
            return real_write(fd, data)
        if started[fd]:
            raise OSError(error_number, os.strerror(error_number))  # as write(2) reports it: no file name
        started[fd] = True
        return real_write(fd, bytes(data)[: max(1, len(data) // 2)])

    def close(fd):
        started.pop(fd, None)
        return real_close(fd)

    real_close = os.close
    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "close", close)
    return hit


@pytest.mark.parametrize("error_number, at_creation, cause", [
    (errno.EACCES, True, "not writable"),
    (errno.ENOSPC, False, "the disk is full"),
])
def test_an_output_that_cannot_be_written_is_one_line_exit_4(error_number, at_creation, cause, cifar_dir, nb201_csv,
                                                             tmp_path, capsys, monkeypatch, tiny):
    out = tmp_path / "run"
    hit = _fail_output(monkeypatch, lambda target: target.name == "scores.csv", error_number, at_creation=at_creation)
    code, _, err = _cli(_args(cifar_dir, nb201_csv, out, "0:2"), capsys)
    line = _one_line(err)
    assert hit and code == 4 and str(out / "scores.csv") in line and cause in line, err
    assert ".ntknas-tmp-" not in line  # the file the user knows, not the temporary one
    assert not (out / "scores.csv").exists() and _temporaries(out) == []
    assert _counts(out) == (2, 2 * 4)  # measured and kept: fix the cause, then --summary-only or rerun
    monkeypatch.undo()
    real = CorrelateConfig.resolved
    monkeypatch.setattr(CorrelateConfig, "resolved", lambda self, info: replace(real(self, info), network_options=dict(TINY)))
    code, stdout, err = _cli(_args(cifar_dir, nb201_csv, out, "0:2"), capsys)
    assert code == 0 and stdout.startswith("0 architectures measured, 2 already stored"), err


def test_a_disk_full_mid_file_leaves_the_previous_outputs_whole(cifar_dir, nb201_csv, tmp_path, capsys, monkeypatch,
                                                               tiny):
    out = tmp_path / "run"
    argv = _args(cifar_dir, nb201_csv, out, "0:3")
    assert _cli(argv, capsys)[0] == 0
    names = ("scores.csv", "summary.json", "summary.md", "scatter_knas.png")
    before = {name: _snapshot(out / name) for name in names}
    for name in names:
        with monkeypatch.context() as patch:
            hit = _fail_output(patch, lambda target, name=name: target.name == name, errno.ENOSPC)
            code, _, err = _cli(argv, capsys)
        line = _one_line(err)
        assert hit and code == 4 and str(out / name) in line and "the disk is full" in line, err
        assert _snapshot(out / name) == before[name]  # the old file, whole and untouched
        assert {n: (out / n).read_bytes() for n in names} == {n: data for n, (data, _) in before.items()}
        assert _temporaries(out) == []


def test_a_disk_full_mid_search_csv_leaves_the_previous_one_whole(nb201_csv, tmp_path, capsys, monkeypatch):
    out = tmp_path / "search"
    argv = ["search", "--dataset", "digits", "--benchmark", nb201_csv, "--proxy", "bench:cifar10_test",
            "--target", "cifar10_valid_test", "--strategy", "random", "--candidates", "20", "--runs", "2",
            "--out", out, "--no-progress"]
    assert _cli(argv, capsys)[0] == 0
    before = _snapshot(out / "search.csv")
    _fail_output(monkeypatch, lambda target: target.name == "search.csv", errno.ENOSPC)
    code, _, err = _cli(argv, capsys)
    line = _one_line(err)
    assert code == 4 and str(out / "search.csv") in line and "the disk is full" in line, err
    assert _snapshot(out / "search.csv") == before and _temporaries(out) == []


def _mount_small_disk(folder: Path) -> bool:
    folder.mkdir()
    if not AS_ROOT or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True,
                          check=False)
    return done.returncode == 0


def test_a_report_onto_a_full_disk_names_the_file_and_keeps_the_old_one(cifar_dir, nb201_csv, tmp_path, capsys,
                                                                       monkeypatch, tiny):
    """A real full disk (a 64 KiB tmpfs) where the tests may mount one, else the fault injected."""
    run = tmp_path / "run"
    assert _cli(_args(cifar_dir, nb201_csv, run, "0:2"), capsys)[0] == 0
    disk = tmp_path / "small"
    mounted = _mount_small_disk(disk)
    try:
        (disk / "report.html").write_text("the previous report\n")
        if mounted:
            with (disk / "filler").open("wb", buffering=0) as handle:  # fill what is left
                try:
                    while True:
                        handle.write(b"\0" * 4096)
                except OSError as error:
                    assert error.errno == errno.ENOSPC
        else:
            _fail_output(monkeypatch, lambda target: target.parent == disk, errno.ENOSPC)
        code, _, err = _cli(["report", run, "--out", disk], capsys)
        line = _one_line(err)
        assert code == 4 and str(disk / "report.html") in line and "the disk is full" in line, err
        assert (disk / "report.html").read_text() == "the previous report\n"
        assert _temporaries(disk) == [] and not (disk / "report.md").exists()
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=False)


def test_a_run_that_stored_nothing_does_not_pin_its_settings(cifar_dir, nb201_csv, tmp_path, capsys, tiny):
    out = tmp_path / "run"
    code, _, err = _cli(["correlate", "--data-dir", tmp_path / "no-such-data", "--benchmark", nb201_csv,
                         "--archs", "0:2", "--batch-size", "5", "--metrics", "knas", "--out", out, "--no-progress"],
                        capsys)
    assert code == 2, err
    code, _, err = _cli(_args(cifar_dir, nb201_csv, out, "0:2"), capsys)  # other batch size and metrics
    assert code == 0, err
    code, _, err = _cli(_args(cifar_dir, nb201_csv, out, "0:2", "--bn", "eval"), capsys)
    assert code == 2 and "other settings" in _one_line(err)  # now it holds results: pinned


# ---------------------------------------------------------------------------------------------
# Read-only folders: readers open the store with mode=ro and never write the folder
# ---------------------------------------------------------------------------------------------


def test_report_reads_without_writing_the_run_folder(cifar_dir, nb201_csv, tmp_path, capsys, tiny):
    out = tmp_path / "run"
    assert _cli(_args(cifar_dir, nb201_csv, out, "0:2"), capsys)[0] == 0
    (out / LOCK_FILE).unlink()
    before = {p.name: _snapshot(p) for p in out.iterdir()}
    code, stdout, err = _cli(["report", out, "--out", tmp_path / "elsewhere"], capsys)
    assert code == 0, err
    assert {p.name: _snapshot(p) for p in out.iterdir()} == before  # no lock, no journal, nothing changed
    code, stdout, err = _cli(["correlate", "--out", out, "--summary-only"], capsys)
    assert code == 0, err
    assert not (out / LOCK_FILE).exists() and _snapshot(out / "results.sqlite") == before["results.sqlite"]


def test_report_into_a_folder_that_cannot_be_written_names_the_file_and_the_fix(
    cifar_dir, nb201_csv, tmp_path, capsys, monkeypatch, tiny
):
    out = tmp_path / "run"
    assert _cli(_args(cifar_dir, nb201_csv, out, "0:2"), capsys)[0] == 0
    _fail_output(monkeypatch, lambda target: target.parent == out, errno.EACCES, at_creation=True)
    code, _, err = _cli(["report", out], capsys)
    line = _one_line(err)
    assert code == 4 and str(out / "report.html") in line and "another --out folder" in line
    code, _, err = _cli(["correlate", "--out", out, "--summary-only"], capsys)
    line = _one_line(err)
    assert code == 4 and f"ntknas report {out} --out" in line


def test_an_out_that_is_a_file_is_exit_2_and_an_uncreatable_report_folder_exit_4(
    cifar_dir, nb201_csv, tmp_path, capsys, monkeypatch, tiny
):
    run = tmp_path / "run"
    assert _cli(_args(cifar_dir, nb201_csv, run, "0:2"), capsys)[0] == 0
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    for argv in (_args(cifar_dir, nb201_csv, a_file, "0:2"), _args(cifar_dir, nb201_csv, a_file / "sub", "0:2"),
                 ["report", run, "--out", a_file], ["report", run, "--out", a_file / "sub"]):
        code, _, err = _cli(argv, capsys)
        line = _one_line(err)
        assert code == 2 and f"{a_file} is a file, not a folder: pass a folder path" in line, err
        assert "check the disk" not in line
    assert a_file.read_text() == "mine\n"
    # a folder the report cannot create is the machine's fault, as for every other command
    locked = tmp_path / "locked" / "report"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, _, err = _cli(["report", run, "--out", locked], capsys)
    line = _one_line(err)
    assert code == 4 and str(locked) in line and "not writable" in line, err


@pytest.mark.skipif(AS_ROOT or not hasattr(os, "geteuid"), reason="chmod does not restrict root")
def test_a_read_only_run_folder_is_read_and_never_called_unreadable(cifar_dir, nb201_csv, tmp_path, capsys, tiny):
    out = tmp_path / "run"
    assert _cli(_args(cifar_dir, nb201_csv, out, "0:2"), capsys)[0] == 0
    for path in [*out.iterdir(), out]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        code, _, err = _cli(["report", out, "--out", tmp_path / "elsewhere"], capsys)
        assert code == 0, err
        code, _, err = _cli(_args(cifar_dir, nb201_csv, out, "0:3"), capsys)
        line = _one_line(err)
        assert code == 4 and "not writable" in line or "read-only" in line
        assert "remove the file" not in line and "not a readable" not in line
    finally:
        out.chmod(0o755)
        for path in out.iterdir():
            path.chmod(0o644)
    assert _counts(out) == (2, 2 * 4)


# ---------------------------------------------------------------------------------------------
# One run per folder
# ---------------------------------------------------------------------------------------------


def _hold_lock(folder: Path) -> subprocess.Popen:
    script = textwrap.dedent(f"""
        import sys, time
        from ntknas.store.lock import RunLock
        RunLock({str(folder)!r}).acquire()
        print("locked", flush=True)
        time.sleep(120)
    """)
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_a_second_process_on_the_folder_is_refused_until_the_first_dies(cifar_dir, nb201_csv, tmp_path, capsys, tiny):
    out = tmp_path / "run"
    holder = _hold_lock(out)
    try:
        for extra in ([], ["--workers", "2"]):
            code, _, err = _cli(_args(cifar_dir, nb201_csv, out, "0:2", *extra), capsys)
            line = _one_line(err)
            assert code == 5, err
            assert f"in use by process {holder.pid} on host" in line and "another --out folder" in line
        assert not (out / "results.sqlite").exists()  # refused before touching the store
        code, _, err = _cli(["report", out], capsys)  # a reader needs no lock (here: no store yet)
        assert code == 2 and "results.sqlite" in _one_line(err)
    finally:
        holder.kill()  # kill -9: the kernel releases the lock
        holder.wait()
    code, _, err = _cli(_args(cifar_dir, nb201_csv, out, "0:2"), capsys)
    assert code == 0, err


def _start(argv, env_seconds: float | None = None, started: Path | None = None, **kwargs) -> subprocess.Popen:
    env = dict(os.environ)
    if env_seconds is not None:
        env["NTKNAS_TEST_ITEM_SECONDS"] = str(env_seconds)
    if started is not None:
        env["NTKNAS_TEST_ITEM_STARTED"] = str(started)
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE} | kwargs
    return subprocess.Popen([sys.executable, str(TINY_CLI), *map(str, argv)], env=env, cwd=REPO, text=True, **streams)


def _wait_for_items(process: subprocess.Popen, out: Path, count: int, timeout: float = 180) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
        if (out / "results.sqlite").exists():
            try:
                items = _counts(out)[0]
            except sqlite3.Error:
                continue
            if items >= count:
                return items
    raise AssertionError(f"the run did not store {count} items in time: {process.poll()=}")


def test_two_correlate_processes_on_one_folder(cifar_dir, nb201_csv, tmp_path, capsys, tiny):
    out = tmp_path / "run"
    first = _start(_args(cifar_dir, nb201_csv, out, "0:6"), env_seconds=0.3)
    try:
        _wait_for_items(first, out, 1)
        code, _, err = _cli(_args(cifar_dir, nb201_csv, out, "0:6"), capsys)
        line = _one_line(err)
        assert code == 5 and f"process {first.pid}" in line, err
        _, err = first.communicate(timeout=180)
        assert first.returncode == 0, err
    finally:
        first.kill()
    assert _counts(out) == (6, 6 * 4)  # measured once, by the first process


# ---------------------------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------------------------


def test_sigterm_stops_like_ctrl_c_and_the_rerun_redoes_nothing_stored(cifar_dir, nb201_csv, tmp_path, capsys, tiny):
    out = tmp_path / "run"
    argv = _args(cifar_dir, nb201_csv, out, "0:8")
    process = _start(argv, env_seconds=0.4)
    try:
        _wait_for_items(process, out, 2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert _one_line(err) == "ntknas correlate: stopped by SIGTERM; rerun the same command to resume"
    items, rows = _counts(out)
    assert 2 <= items < 8 and rows == items * 4
    code, stdout, err = _cli(argv, capsys)
    assert code == 0, err
    assert stdout.startswith(f"{8 - items} architectures measured, {items} already stored")


def _pool_processes(pid: int) -> tuple[list[int], list[int]]:
    """The pool's worker processes of driver ``pid`` and the fork server that forked them (none
    where the workers are spawned), from the reaper's /proc process table: no psutil."""
    table = processes()

    def command(process: int) -> bytes:
        try:
            return Path(f"/proc/{process}/cmdline").read_bytes()
        except OSError:
            return b""

    children = [p for p, (parent, _) in table.items() if parent == pid]
    servers = [p for p in children if b"multiprocessing.forkserver" in command(p)]
    workers = [p for p in children if b"spawn_main" in command(p)]
    workers += [p for p, (parent, _) in table.items() if parent in servers]
    return workers, servers


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its parent's reaping is left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="scans /proc")
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_worker_processes_never_outlive_their_driver(how, cifar_dir, nb201_csv, tmp_path):
    out = tmp_path / "run"
    # Each measurement sleeps 30 s in the workers too (they re-run tiny_cli.py's setup): a worker
    # that waited for its item to end would outlive the driver by half a minute.
    stderr = tmp_path / "stderr.txt"  # not a pipe: a surviving worker would hold it open
    started = tmp_path / "started"
    started.mkdir()
    with stderr.open("w") as handle:
        process = _start(_args(cifar_dir, nb201_csv, out, "0:4", "--workers", "2"), env_seconds=30,
                         started=started, stdout=subprocess.DEVNULL, stderr=handle)
    workers: list[int] = []
    try:
        deadline = time.time() + 120
        while len((found := _pool_processes(process.pid))[0]) < 2 and time.time() < deadline:
            time.sleep(0.2)
        workers, servers = found
        assert len(workers) == 2, workers
        while {str(pid) for pid in workers} - {p.name for p in started.iterdir()} and time.time() < deadline:
            time.sleep(0.1)  # until both workers are mid-item
        assert {str(pid) for pid in workers} <= {p.name for p in started.iterdir()}, "the workers took no items"
        workers += servers  # a fork server must not outlive the driver either
        process.send_signal(getattr(signal, how))
        process.wait(timeout=60)
        deadline = time.time() + 5
        while time.time() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)], "worker processes outlived their driver"
    finally:
        process.kill()
        process.wait()
        for pid in workers:  # whatever the outcome, leave no process behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    err = stderr.read_text()
    if how == "SIGTERM":
        assert process.returncode == 143 and _one_line(err).endswith("rerun the same command to resume"), err
    else:
        assert process.returncode == -signal.SIGKILL
    items, rows = _counts(out)
    assert items == 0 and rows == 0  # the items in flight were dropped whole: a rerun redoes them


# ---------------------------------------------------------------------------------------------
# Time budget, --summary-only
# ---------------------------------------------------------------------------------------------


def test_a_time_budget_stop_exits_3_with_one_line(cifar_dir, nb201_csv, tmp_path, capsys, tiny):
    out = tmp_path / "run"
    assert _cli(_args(cifar_dir, nb201_csv, out, "0:2"), capsys)[0] == 0
    code, stdout, err = _cli(_args(cifar_dir, nb201_csv, out, "0:5", "--time-budget", "0"), capsys)
    assert code == 3
    assert _one_line(err) == "stopped by the time budget, 2 of 5 done; rerun to continue"
    assert "0 architectures measured, 2 already stored" in stdout
    code, _, err = _cli(_args(cifar_dir, nb201_csv, out, "0:5"), capsys)
    assert code == 0 and err == ""


def test_summary_only_needs_only_the_folder_and_never_summarizes_a_subset(cifar_dir, nb201_csv, tmp_path, capsys, tiny):
    out = tmp_path / "run"
    assert _cli(_args(cifar_dir, nb201_csv, out, "0:4", "--target", "cifar10_valid_test"), capsys)[0] == 0
    outputs = {name: (out / name).read_text() for name in ("scores.csv", "summary.json")}
    code, stdout, err = _cli(["correlate", "--out", out, "--summary-only"], capsys)
    assert code == 0 and stdout.startswith("0 architectures measured, 4 already stored"), err
    assert {name: (out / name).read_text() for name in outputs} == outputs
    # another selection and other settings on the command line change nothing: the folder's own
    code, stdout, err = _cli(["correlate", "--out", out, "--summary-only", "--archs", "0:2", "--batch-size", "3",
                              "--benchmark", tmp_path / "absent.csv", "--no-progress"], capsys)
    assert code == 0, err
    assert {name: (out / name).read_text() for name in outputs} == outputs
    with (out / "scores.csv").open() as handle:
        assert len({row["arch"] for row in csv.DictReader(handle)}) == 4
    assert all(r["n"] == 4 for r in json.loads((out / "summary.json").read_text()))


def test_summary_only_of_a_folder_without_a_store_is_one_line(tmp_path, capsys):
    code, _, err = _cli(["correlate", "--out", tmp_path / "empty", "--summary-only"], capsys)
    assert code == 2 and "nothing to summarize" in _one_line(err)
    assert not (tmp_path / "empty").exists()


# ---------------------------------------------------------------------------------------------
# Output files: written whole through a temporary file, or not at all
# ---------------------------------------------------------------------------------------------


def test_atomic_writes_replace_whole_files_with_the_usual_permissions(tmp_path):
    from ntknas.files import atomic_text, atomic_write_text

    path = tmp_path / "summary.md"
    assert atomic_write_text(path, "a\r\nb — τ\n") == path
    assert path.read_bytes() == "a\r\nb — τ\n".encode()  # newlines as given, UTF-8
    with open(tmp_path / "reference", "w") as handle:
        handle.write("x")
    assert path.stat().st_mode == (tmp_path / "reference").stat().st_mode
    with atomic_text(path) as handle:
        csv.writer(handle).writerow(["index", "arch"])
    assert path.read_bytes() == b"index,arch\r\n"  # csv's line ends kept, as with newline=""
    with pytest.raises(ValueError), atomic_text(path) as handle:
        handle.write("half a table")
        raise ValueError("the caller failed mid-way")
    assert path.read_bytes() == b"index,arch\r\n" and _temporaries(tmp_path) == []


def test_an_interrupted_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    from ntknas.files import atomic_write_bytes

    path = tmp_path / "search.csv"
    path.write_bytes(b"old\n")
    real_write = os.write

    def write(fd, data):
        real_write(fd, bytes(data)[:3])
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"new content\n" * 100)
    monkeypatch.undo()
    assert path.read_bytes() == b"old\n" and _temporaries(tmp_path) == []
    hit = _fail_output(monkeypatch, lambda target: target == path, errno.ENOSPC)
    with pytest.raises(OSError) as raised:
        atomic_write_bytes(path, b"new content\n" * 100)
    assert hit and raised.value.errno == errno.ENOSPC and raised.value.filename == str(path)
    assert path.read_bytes() == b"old\n" and _temporaries(tmp_path) == []
