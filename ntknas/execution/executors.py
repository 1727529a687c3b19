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

import multiprocessing
import os
import pickle
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import ProcessPoolExecutor as _StdProcessPool
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import torch

from ntknas.errors import NtknasError, UnknownNameError, option
from ntknas.execution.runtime import resolve_device
from ntknas.execution.signals import forked_workers_can_watch_their_driver, watch_driver
from ntknas.plugins import load_worker_plugins, worker_plugins

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
    _opened: int = 0  # how many ``with`` blocks (and running maps) hold the executor open

    def start(self) -> None:
        """Make the executor ready to run items (e.g. connect to a cluster). Experiments call it
        before they store anything, so that an executor that cannot start leaves no trace."""
        return None

    def stop(self) -> None:
        """Release what :meth:`start` acquired (e.g. shut down a Ray instance started for the run)."""
        return None

    def __enter__(self) -> Executor:
        """Open the executor for a whole command: :meth:`start` runs on the outermost ``with``
        only, so nested blocks (a command's, then each ``map``'s own) share one pool or one
        cluster connection, and :meth:`stop` runs when the outermost block ends."""
        if self._opened == 0:
            self.start()
        self._opened += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._opened -= 1
        if self._opened == 0:
            self.stop()

    @property
    def is_open(self) -> bool:
        """Whether a ``with`` block holds the executor open."""
        return self._opened > 0

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
        with self:
            local = context.local()
            for task in tasks:
                if not _started(deadline):
                    return
                yield task.item, work(local, task.item, task.done)


# The readied contexts of a pool worker process, by token, the most recently used last. Set by
# the pool's initializer (and filled by later maps of the same pool): the pool offers no other
# way to give a process state that outlives one task, and readying the data for each item would
# cost more than measuring it.
_worker_contexts: dict[str, Any] = {}
WORKER_CONTEXTS_KEPT = 2  # e.g. a search's two proxies, used in turn each round


def _start_worker(
    token: str, context: WorkContext, threads: int, driver_pid: int | None = None, plugins: Sequence[str] = (),
    environment: dict[str, str] | None = None,
) -> None:
    if driver_pid is not None:
        watch_driver(driver_pid)  # a worker never outlives its driver, kill -9 included
    if environment is not None:  # the driver's now, as a spawned worker has it, not its fork server's
        os.environ.clear()
        os.environ.update(environment)
    load_worker_plugins(plugins)  # the driver's --plugin registrations (spaces, metrics, ...) exist here too
    torch.set_num_threads(threads)
    _worker_contexts[token] = context.local()


def _worker_context(token: str, source: str | None) -> Any:
    """The readied context ``token`` names: kept from an earlier item, or read from ``source``
    (a file the driver wrote once for the pool's workers)."""
    context = _worker_contexts.pop(token, None)
    if context is None:
        assert source is not None, "a pool's only context is given to its workers when they start"
        with open(source, "rb") as handle:
            context = pickle.load(handle).local()
    _worker_contexts[token] = context
    while len(_worker_contexts) > WORKER_CONTEXTS_KEPT:
        del _worker_contexts[next(iter(_worker_contexts))]
    return context


def _run_in_worker(work: Work, token: str, source: str | None, item: Any, done: frozenset[str]) -> list[Any]:
    return list(work(_worker_context(token, source), item, done))


def worker_start_method(work_module: str | None = None) -> BaseContext:
    """How pool workers start: forked by a fork server that imported torch, ntknas and the work's
    module once, where the platform has one and a worker can watch its driver (Linux); spawned
    elsewhere, each worker importing them itself (2-3 s of CPU a worker). Never plain ``fork``:
    the driver may hold CUDA, which a forked child cannot use; the fork server never touches it.
    As with ``spawn``, the server imports the driver's main script (``__main__``), so that work
    and factories defined there unpickle."""
    if "forkserver" not in multiprocessing.get_all_start_methods() or not forked_workers_can_watch_their_driver():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # Read once, when this process starts its fork server (the first pool): later pools fork
    # from the same server.
    context.set_forkserver_preload(["__main__", __name__] + ([work_module] if work_module else []))
    return context


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
            f"{option('workers')} needs architectures that can be sent to another process ({error}): define "
            f"custom factories at module level, or use {option('workers')} 1"
        ) from None


class ProcessPoolExecutor(Executor):
    """``workers`` processes on this machine sharing one device (:func:`worker_start_method`).

    A small NB201 cell keeps a GPU busy for a few percent of the time Python takes to launch its
    kernels, so one process leaves most of a GPU (and all but one CPU core) idle. At most two
    items per worker are in flight, so a stop wastes little work.

    Opened with ``with executor:``, one pool serves every :meth:`map` of the block (a search
    maps each round's asks): its processes start once. The first map's context reaches the
    workers as they start; a later map with another context (another proxy of a search) writes
    it once to a file the workers read when they first need it. A map outside a ``with`` block
    starts a pool for itself and shuts it down after.
    """

    name = "pool"

    def __init__(self, workers: int, device: str | torch.device = "cpu", threads: int | None = None) -> None:
        """``threads``: torch threads of each worker (default :func:`threads_per_worker`)."""
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise NtknasError(f"{option('workers')} must be a positive integer, got {workers!r}")
        self.workers = workers
        self.threads = threads or threads_per_worker(workers, device)
        self._pool: _StdProcessPool | None = None
        # The contexts the open pool has served, by id, with their tokens (the context is kept
        # so that its id is not reused), and the files that carry them to the workers.
        self._contexts: dict[int, tuple[WorkContext, str]] = {}
        self._sources: dict[str, str] = {}
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def stop(self) -> None:
        """Shut the pool down (its processes finish their items first) and delete its files."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._forget()

    def _forget(self) -> None:
        self._contexts.clear()
        self._sources.clear()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def _token(self, work: Work, context: WorkContext, portable: Any) -> tuple[_StdProcessPool, str, str | None]:
        """The pool to submit to, the token its workers know ``context`` by, and the file to
        read it from where a worker may not hold it (None while the pool has served only it)."""
        known = self._contexts.get(id(context))
        token = known[1] if known is not None else uuid.uuid4().hex
        if known is None:
            self._contexts[id(context)] = (context, token)
        if self._pool is None:
            self._pool = _StdProcessPool(
                max_workers=self.workers, mp_context=worker_start_method(getattr(work, "__module__", None)),
                initializer=_start_worker,
                initargs=(token, portable, self.threads, os.getpid(), worker_plugins(), dict(os.environ)),
            )
        if len(self._contexts) == 1:
            return self._pool, token, None
        if token not in self._sources:
            if self._folder is None:
                self._folder = tempfile.TemporaryDirectory(prefix="ntknas-pool-")
            path = os.path.join(self._folder.name, f"{token}.pickle")
            with open(path, "wb") as handle:
                pickle.dump(portable, handle, protocol=pickle.HIGHEST_PROTOCOL)
            self._sources[token] = path
        return self._pool, token, self._sources[token]

    def map(
        self, work: Work, context: WorkContext, tasks: Sequence[Task[Item]], deadline: float | None = None
    ) -> Iterator[tuple[Item, Iterable[Any]]]:
        portable = context.portable()
        check_picklable(portable, *(task.item for task in tasks))
        with self:
            pool, token, source = self._token(work, context, portable)
            pending = iter(tasks)
            in_flight: dict[Future[list[Any]], Any] = {}
            try:
                while True:
                    while len(in_flight) < 2 * self.workers and _started(deadline):
                        task = next(pending, None)
                        if task is None:
                            break
                        future = pool.submit(_run_in_worker, work, token, source, task.item, task.done)
                        in_flight[future] = task.item
                    if not in_flight:
                        return
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in finished:
                        item = in_flight.pop(future)
                        yield item, future.result()
            except BrokenProcessPool:
                in_flight.clear()
                self._discard()
                raise NtknasError(
                    f"a worker process died (out of memory?): rerun with fewer {option('workers')}; stored results are kept"
                ) from None
            finally:
                if in_flight:  # left early (an error, Ctrl-C, SIGTERM): what runs would be dropped anyway
                    self._discard()

    def _discard(self) -> None:
        """End the pool's worker processes now instead of waiting for their items to finish:
        their results would not be stored, and a rerun redoes those items. A later map of the
        same ``with`` block starts a new pool."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # Not cancelled first: the pool then fails every pending future itself, where Python
        # 3.11 would trip over a cancelled one in its management thread.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=10)
        pool.shutdown(wait=True, cancel_futures=True)
        self._forget()


EXECUTORS = ("serial", "pool", "ray")


def make_executor(
    workers: int = 1, device: str | torch.device = "cpu", *, kind: str | None = None, ray: RayOptions | None = None
) -> Executor:
    """The executor the command line asks for: ``--executor serial|pool|ray``, or without it
    ``--workers N`` processes on this machine (this process alone for N = 1). ``ray`` holds the
    Ray options, given only with ``kind="ray"``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise NtknasError(f"{option('workers')} must be at least 1, got {workers!r}")
    if kind is None:
        kind = "serial" if workers == 1 else "pool"
        if ray is not None:
            raise NtknasError(f"{option('address')}, {option('cpus_per_item')}, {option('gpus_per_item')} and {option('max_retries')} need {option('kind')} ray")
    if kind not in EXECUTORS:
        raise UnknownNameError(f"unknown executor {kind!r}: use {', '.join(EXECUTORS)}")
    if kind != "ray" and ray is not None:
        raise NtknasError(f"{option('address')}, {option('cpus_per_item')}, {option('gpus_per_item')} and {option('max_retries')} need {option('kind')} ray, not {kind}")
    if kind == "serial":
        if workers != 1:
            raise NtknasError(f"{option('kind')} serial runs one item at a time: drop {option('workers')} {workers} or use {option('kind')} pool")
        return SerialExecutor()
    if kind == "pool":
        return ProcessPoolExecutor(workers, device)
    if workers != 1:
        raise NtknasError(
            f"{option('workers')} {workers} sets the process pool: with {option('kind')} ray the cluster's CPUs and GPUs set how "
            f"many items run at once (see {option('cpus_per_item')}, {option('gpus_per_item')})"
        )
    from ntknas.execution.ray_executor import RayExecutor, RayOptions

    return RayExecutor(ray or RayOptions(), device)
