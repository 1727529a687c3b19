"""How work items run: the executor seam between an experiment's driver and its workers.

An experiment is a pure work function mapped over work items. The function
``work(context, item, done)`` builds, trains and measures one item and yields its results; it
reads and writes no store. ``context`` is what every item shares (settings, the measurement
batch, the training split), sent to each worker once; ``done`` is the set of result keys of
that item already stored, so that a resumed item skips them. The driver alone commits results,
as they arrive, so every executor resumes the same way after a kill.

Executors here: :class:`SerialExecutor` (this process) and :class:`ProcessPoolExecutor`
(``workers`` processes on one machine); :class:`~ntknas.execution.ray_executor.RayExecutor`
(a Ray cluster) implements the same :class:`Executor` interface. :func:`make_executor` picks one
from the command line's choices.
"""

from __future__ import annotations

import os
import pickle
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import ProcessPoolExecutor as _StdProcessPool
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import torch

from ntknas.errors import NtknasError, UnknownNameError
from ntknas.execution.runtime import resolve_device
from ntknas.execution.signals import watch_parent

if TYPE_CHECKING:
    from ntknas.execution.ray_executor import RayOptions

Item = TypeVar("Item")


class WorkContext(Protocol):
    """What every work item of a run shares. :meth:`portable` is the copy sent to other
    processes or machines (tensors on the CPU); :meth:`local` readies it in the process that
    runs the items (e.g. moves its tensors to the device) and is called once per process."""

    def portable(self) -> Any: ...

    def local(self) -> Any: ...


Work = Callable[[Any, Any, frozenset[str]], Iterable[Any]]
"""``work(local_context, item, done) -> results``: a module-level function (workers import it)."""


@dataclass(frozen=True)
class Task(Generic[Item]):
    """One work item and the keys of its results already stored."""

    item: Item
    done: frozenset[str] = frozenset()


class Executor(ABC):
    """Maps a work function over tasks and yields ``(item, results)`` as items finish.

    ``results`` may be a lazy iterable (the serial executor streams each result as the work
    function yields it, so that a long item's early results are committed before its later ones
    are computed). No task starts after ``deadline`` (a ``time.monotonic()`` value); tasks already
    running finish. A worker's user-facing error is raised from the iteration.
    """

    name: str = ""

    def start(self) -> None:
        """Make the executor ready to run items (e.g. connect to a cluster). Experiments call it
        before they store anything, so that an executor that cannot start leaves no trace."""
        return None

    def stop(self) -> None:
        """Release what :meth:`start` acquired (e.g. shut down a Ray instance started for the run)."""
        return None

    def __enter__(self) -> Executor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def driver_device(self, device: str) -> torch.device:
        """Where the driver readies the shared data for the run's ``--device``: that device on
        this machine. An executor whose items run on other machines keeps it on the CPU (the
        workers move it to their device)."""
        return resolve_device(device)

    @abstractmethod
    def map(
        self, work: Work, context: WorkContext, tasks: Sequence[Task[Item]], deadline: float | None = None
    ) -> Iterator[tuple[Item, Iterable[Any]]]: ...


def _started(deadline: float | None) -> bool:
    return deadline is None or time.monotonic() < deadline


class SerialExecutor(Executor):
    """Every item in this process, one after the other."""

    name = "serial"

    def map(
        self, work: Work, context: WorkContext, tasks: Sequence[Task[Item]], deadline: float | None = None
    ) -> Iterator[tuple[Item, Iterable[Any]]]:
        local = context.local()
        for task in tasks:
            if not _started(deadline):
                return
            yield task.item, work(local, task.item, task.done)


# Set once per worker process by the pool's initializer: the pool offers no other way to give a
# process state that outlives one task, and readying the data for each item would cost more
# than measuring it.
_worker_context: Any = None


def _start_worker(context: WorkContext, threads: int, driver_pid: int | None = None) -> None:
    global _worker_context
    if driver_pid is not None:
        watch_parent(driver_pid)  # a worker never outlives its driver, kill -9 included
    torch.set_num_threads(threads)
    _worker_context = context.local()


def _run_in_worker(work: Work, item: Any, done: frozenset[str]) -> list[Any]:
    assert _worker_context is not None, "worker used before its initializer ran"
    return list(work(_worker_context, item, done))


def threads_per_worker(workers: int, device: str | torch.device) -> int:
    """CPU threads for each worker: the cores shared out on a CPU run, one on a GPU run (where
    the threads only launch kernels and more of them would fight over the cores)."""
    if torch.device(device).type != "cpu":
        return 1
    return max(1, (os.cpu_count() or 1) // workers)


def check_picklable(*objects: Any) -> None:
    """Refuse early, in one line, what cannot travel to another process (e.g. a custom space's
    factory defined as a lambda)."""
    try:
        for value in objects:
            pickle.dumps(value)
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        raise NtknasError(
            f"--workers needs architectures that can be sent to another process ({error}): define "
            "custom factories at module level, or use --workers 1"
        ) from None


class ProcessPoolExecutor(Executor):
    """``workers`` spawned processes on this machine sharing one device.

    A small NB201 cell keeps a GPU busy for a few percent of the time Python takes to launch its
    kernels, so one process leaves most of a GPU (and all but one CPU core) idle. At most two
    items per worker are in flight, so a stop wastes little work.
    """

    name = "pool"

    def __init__(self, workers: int, device: str | torch.device = "cpu") -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise NtknasError(f"--workers must be a positive integer, got {workers!r}")
        self.workers = workers
        self.threads = threads_per_worker(workers, device)

    def map(
        self, work: Work, context: WorkContext, tasks: Sequence[Task[Item]], deadline: float | None = None
    ) -> Iterator[tuple[Item, Iterable[Any]]]:
        context = context.portable()
        check_picklable(context, *(task.item for task in tasks))
        pending = iter(tasks)
        in_flight: dict[Future[list[Any]], Any] = {}
        spawn = get_context("spawn")  # CUDA cannot be used in a forked child
        pool = _StdProcessPool(
            max_workers=self.workers, mp_context=spawn, initializer=_start_worker,
            initargs=(context, self.threads, os.getpid()),
        )
        try:
            while True:
                while len(in_flight) < 2 * self.workers and _started(deadline):
                    task = next(pending, None)
                    if task is None:
                        break
                    in_flight[pool.submit(_run_in_worker, work, task.item, task.done)] = task.item
                if not in_flight:
                    return
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = in_flight.pop(future)
                    yield item, future.result()
        except BrokenProcessPool:
            raise NtknasError(
                "a worker process died (out of memory?): rerun with fewer --workers; stored results are kept"
            ) from None
        finally:
            if in_flight:  # left early (an error, Ctrl-C, SIGTERM): what runs would be dropped anyway
                # Not cancelled first: the pool then fails every pending future itself, where
                # Python 3.11 would trip over a cancelled one in its management thread.
                _stop_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool: _StdProcessPool) -> None:
    """End the pool's worker processes now instead of waiting for their items to finish: their
    results would not be stored, and a rerun redoes those items."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)


EXECUTORS = ("serial", "pool", "ray")


def make_executor(
    workers: int = 1, device: str | torch.device = "cpu", *, kind: str | None = None, ray: RayOptions | None = None
) -> Executor:
    """The executor the command line asks for: ``--executor serial|pool|ray``, or without it
    ``--workers N`` processes on this machine (this process alone for N = 1). ``ray`` holds the
    Ray options, given only with ``kind="ray"``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise NtknasError(f"--workers must be at least 1, got {workers!r}")
    if kind is None:
        kind = "serial" if workers == 1 else "pool"
        if ray is not None:
            raise NtknasError("--ray-address, --cpus-per-item, --gpus-per-item and --max-retries need --executor ray")
    if kind not in EXECUTORS:
        raise UnknownNameError(f"unknown executor {kind!r}: use {', '.join(EXECUTORS)}")
    if kind != "ray" and ray is not None:
        raise NtknasError(f"--ray-address, --cpus-per-item, --gpus-per-item and --max-retries need --executor ray, not {kind}")
    if kind == "serial":
        if workers != 1:
            raise NtknasError(f"--executor serial runs one item at a time: drop --workers {workers} or use --executor pool")
        return SerialExecutor()
    if kind == "pool":
        return ProcessPoolExecutor(workers, device)
    if workers != 1:
        raise NtknasError(
            f"--workers {workers} sets the process pool: with --executor ray the cluster's CPUs and GPUs set how "
            "many items run at once (see --cpus-per-item, --gpus-per-item)"
        )
    from ntknas.execution.ray_executor import RayExecutor, RayOptions

    return RayExecutor(ray or RayOptions(), device)
