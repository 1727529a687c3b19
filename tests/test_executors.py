"""Executors opened once per command: nested ``with`` blocks start and stop once, maps inside a
block share one process pool (whatever their context), and a map outside any block opens and
closes the executor around itself."""

import os
import sys
from concurrent.futures import ProcessPoolExecutor as StdPool

import pytest

from ntknas.execution import executors
from ntknas.execution.executors import Executor, ProcessPoolExecutor, SerialExecutor, Task, worker_start_method
from ntknas.execution.reaper import parent_of


class Tagged:
    """A context that names itself, so that an item shows which context its worker used."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def portable(self):
        return self

    def local(self):
        return self.tag


def tag_and_pid(context, item, done):
    return [(context, item, os.getpid())]


@pytest.fixture
def pools(monkeypatch):
    """Every process pool the executors create, counted."""
    created: list[StdPool] = []

    class Counted(StdPool):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append(self)

    monkeypatch.setattr(executors, "_StdProcessPool", Counted)
    return created


def _run(executor: Executor, context, items) -> list:
    return sorted(r for _, results in executor.map(tag_and_pid, context, [Task(i) for i in items]) for r in results)


def test_maps_inside_one_with_share_one_pool_whatever_their_context(pools):
    executor = ProcessPoolExecutor(1)
    first, second = Tagged("a"), Tagged("b")
    with executor:
        runs = [_run(executor, first, [1, 2]), _run(executor, second, [3]), _run(executor, first, [4])]
        assert executor.is_open
    assert len(pools) == 1 and not executor.is_open and executor._pool is None
    assert [[(tag, item) for tag, item, _ in run] for run in runs] == [[("a", 1), ("a", 2)], [("b", 3)], [("a", 4)]]
    assert len({pid for run in runs for _, _, pid in run}) == 1  # one worker process served all three


def test_a_map_outside_a_with_opens_and_closes_its_own_pool(pools):
    executor = ProcessPoolExecutor(1)
    assert [(t, i) for t, i, _ in _run(executor, Tagged("a"), [1])] == [("a", 1)]
    assert len(pools) == 1 and executor._pool is None and not executor.is_open
    _run(executor, Tagged("a"), [2])
    assert len(pools) == 2


def test_a_map_left_early_ends_the_pool_and_the_next_map_starts_another(pools):
    executor = ProcessPoolExecutor(1)
    with executor:
        results = executor.map(tag_and_pid, Tagged("a"), [Task(i) for i in range(4)])
        next(results)
        results.close()  # what an error or Ctrl-C in the driver does
        assert executor._pool is None
        assert [(t, i) for t, i, _ in _run(executor, Tagged("b"), [9])] == [("b", 9)]
    assert len(pools) == 2


class Counting(SerialExecutor):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")


def test_nested_withs_and_maps_start_and_stop_once():
    executor = Counting()
    with executor:
        with executor:
            assert list(executor.map(tag_and_pid, Tagged("a"), [Task(1)]))
        assert executor.calls == ["start"]
    assert executor.calls == ["start", "stop"]
    list(executor.map(tag_and_pid, Tagged("a"), [Task(1)]))  # on its own: opened around the map
    assert executor.calls == ["start", "stop", "start", "stop"]


def environment_and_parent(context, item, done):
    return [(os.environ.get(item), os.getppid())]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux: fork server and process file descriptors")
def test_workers_fork_from_one_server_and_see_the_environment_the_driver_has_when_their_pool_starts(monkeypatch):
    """Workers come from a fork server that imported torch and ntknas once (not 2-3 s of imports
    each); a later pool forks from the same server, and its workers see the driver's environment
    as it is then, as spawned workers would, not as it was when the server started."""
    assert worker_start_method().get_start_method() == "forkserver"
    runs = []
    for value in ("first", "second"):
        monkeypatch.setenv("NTKNAS_TEST_POOL_VALUE", value)
        tasks = [Task("NTKNAS_TEST_POOL_VALUE")]
        runs.append([r for _, results in ProcessPoolExecutor(1).map(environment_and_parent, Tagged("a"), tasks) for r in results])
    (first, first_server), (second, second_server) = runs[0][0], runs[1][0]
    assert (first, second) == ("first", "second")
    assert first_server == second_server != os.getpid()
    assert parent_of(first_server) == os.getpid()  # the server is the driver's child


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_parent_of_reads_the_parent_process_id_and_none_for_a_process_that_is_gone():
    assert parent_of(os.getpid()) == os.getppid()
    assert parent_of(2**22 + 1) is None  # above Linux's largest process id
