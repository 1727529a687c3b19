"""Work items on a Ray cluster: the :class:`~ntknas.execution.executors.Executor` of ``--executor ray``.

The driver (the ``ntknas`` command) puts the run's shared context into Ray's object store once,
submits one Ray task per work item and commits each item's results to its own store as the task
returns them: the store stays on the driver's disk with a single writer, and a rerun resumes
exactly as with the other executors. Each Ray worker process fetches and readies the shared
context once (for example moves the training split to its GPU) and keeps it for the items it
runs after.

Faults: a task whose worker process or node dies is retried by Ray (``max_retries`` times) and
its item is committed once, when a try returns. A user-facing error in an item
(:class:`~ntknas.errors.NtknasError`) ends the run with one line naming the item. Tasks still
in flight when the run ends (an error, Ctrl-C, the end of the time budget) are cancelled.

Quiet unless it fails: a local instance starts without its dashboard, Ray's own log lines
below ERROR are not shown, a wrong ``--ray-address`` is one line (what answers there is probed
first), and a local instance's processes end with the driver however it ends (see
:mod:`~ntknas.execution.reaper`).

Ray is an optional dependency (``pip install 'ntknas[ray]'``): this module imports it only when
an executor is made.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from ntknas.errors import NtknasError, UnknownNameError, marked_text, option
from ntknas.execution.executors import Executor, Item, Task, Work, WorkContext
from ntknas.execution.reaper import Reaper
from ntknas.plugins import load_worker_plugins, worker_plugins

log = logging.getLogger(__name__)

RAY_EXTRA = "pip install 'ntknas[ray]'"


@dataclass(frozen=True)
class RayOptions:
    """How the run uses Ray.

    ``address``: an existing cluster (``auto`` finds the one ``ray start`` began on this machine,
    or ``host:port`` of its head node); ``None`` starts a local Ray instance for the run and
    shuts it down after (``local_cpus`` CPUs, default all). ``cpus_per_item``/``gpus_per_item``:
    what Ray reserves for each item (fractions of a GPU let several small cells share one;
    ``None`` GPUs: one on a CUDA run, none on a CPU run). ``max_retries``: how many times an item
    whose worker or node died is tried again. ``connect_timeout``: seconds to wait for the
    cluster's head node to answer.
    """

    address: str | None = None
    cpus_per_item: float = 1.0
    gpus_per_item: float | None = None
    max_retries: int = 3
    local_cpus: int | None = None
    connect_timeout: float = 10.0


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise NtknasError(f"{option('kind')} ray needs Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


def _check_quantity(name: str, value: float, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < minimum:
        raise NtknasError(f"{option(name)} must be a number >= {minimum:g}, got {value!r}")
    if value > 1 and value != int(value):
        # Ray shares a CPU or GPU only as a fraction below one; above one it counts whole units.
        raise NtknasError(f"{option(name)} above 1 must be a whole number (Ray shares only fractions of one), got {value:g}")
    return float(value)


def items_at_once(nodes: Iterable[dict[str, Any]], cpus: float, gpus: float) -> int:
    """How many items the cluster's live nodes can run at once with these per-item resources
    (an item runs on one node, so each node's resources count apart)."""
    total = 0
    for node in nodes:
        if not node.get("Alive", False):
            continue
        resources = node.get("Resources", {})
        fits = [math.floor(resources.get("CPU", 0.0) / cpus + 1e-9)] if cpus > 0 else []
        if gpus > 0:
            fits.append(math.floor(resources.get("GPU", 0.0) / gpus + 1e-9))
        total += min(fits) if fits else 0
    return total


def describe_item(item: Any) -> str:
    """The name an error message gives a work item: its architecture key where it has one
    (correlate's entries and track's tasks do), else its text."""
    for candidate in (item, getattr(item, "entry", None)):
        key = getattr(candidate, "key", None)
        if isinstance(key, str):
            return key
    return repr(item)[:120]


@dataclass(frozen=True)
class _Outcome:
    """What a Ray task returns: the item's results, or why it has none."""

    results: list[Any] = field(default_factory=list)
    late: bool = False  # the task began after the deadline and did nothing
    error: str | None = None  # a user-facing error's one line
    node: str = ""


class RayExecutor(Executor):
    """Items as Ray tasks on a cluster (or a local Ray instance), results committed by the driver."""

    name = "ray"

    def __init__(self, options: RayOptions | None = None, device: str | torch.device = "cpu") -> None:
        options = options or RayOptions()
        try:
            self.device = torch.device(device)
        except RuntimeError:
            raise UnknownNameError(f"unknown device {device!r}: use cpu or cuda") from None
        if self.device.type == "cuda" and self.device.index is not None:
            raise NtknasError(f"{option('device')} {device} with {option('kind')} ray: use {option('device')} cuda (Ray gives each item its GPU)")
        cpus = _check_quantity("cpus_per_item", options.cpus_per_item, 0.0)
        default_gpus = 1.0 if self.device.type == "cuda" else 0.0
        gpus = _check_quantity("gpus_per_item", default_gpus if options.gpus_per_item is None else options.gpus_per_item, 0.0)
        if self.device.type == "cuda" and gpus == 0:
            raise NtknasError(f"{option('device')} cuda with {option('gpus_per_item')} 0: give each item a GPU share, e.g. {option('gpus_per_item')} 0.25")
        if self.device.type != "cuda" and gpus > 0:
            raise NtknasError(f"{option('gpus_per_item')} {gpus:g} needs {option('device')} cuda")
        if cpus == 0 and gpus == 0:
            raise NtknasError(f"{option('cpus_per_item')} 0 on a CPU run would let Ray start every item at once: use 1")
        retries = options.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise NtknasError(f"{option('max_retries')} must be an integer >= 0, got {retries!r}")
        if options.connect_timeout <= 0:
            raise NtknasError(f"the Ray connect timeout must be positive, got {options.connect_timeout!r}")
        self.options = options
        self.cpus_per_item = cpus
        self.gpus_per_item = gpus
        # The pool's rule: a CPU item gets the cores it reserved, a GPU item one launching thread.
        self.threads = max(1, int(cpus)) if self.device.type == "cpu" else 1
        self._ray = import_ray()
        self._connected_here = False
        self._reaper: Reaper | None = None
        self._contexts: dict[int, tuple[WorkContext, Any, str]] = {}

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Connect to the cluster (or start a local instance); one line if that fails.

        Quiet unless it fails: Ray's own log lines below ERROR are not shown (among them a
        warning on every local start that token authentication is on, which it stays), and
        the lines Ray's core prints while it retries a connection are kept from the terminal.
        """
        ray = self._ray
        address = self.options.address
        if address is not None:
            _check_reachable(address, self._resolve(address), self.options.connect_timeout)
        if ray.is_initialized():  # the caller (a notebook, a test) connected already: use that
            return
        if address is None:
            self._start_local()
            return
        try:
            with _stderr_kept_from_terminal() as printed:
                ray.init(address=address, logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as error:
            detail = (str(error).strip().splitlines() or printed[-1:] or [type(error).__name__])[0][:160]
            raise NtknasError(
                f"cannot join the Ray cluster at {address} ({detail}): check {option('address')}, and that this "
                "machine runs the same Ray and Python versions as the cluster"
            ) from None
        self._connected_here = True

    def _start_local(self) -> None:
        """A new local instance (even where `ray start` left one running on this machine),
        without its dashboard, whose processes end with this one however it ends (see
        :mod:`~ntknas.execution.reaper`)."""
        reaper = Reaper()
        try:
            with reaper.marking():
                self._ray.init(
                    address="local", num_cpus=self.options.local_cpus, include_dashboard=False,
                    logging_level=logging.ERROR,
                )
        except BaseException:
            reaper.close()
            raise
        self._reaper = reaper
        self._connected_here = True

    def _resolve(self, address: str) -> str:
        """``host:port`` of the head node that ``address`` names. ``auto`` is looked up the way
        ``ray.init`` does (``RAY_ADDRESS``, then the cluster ``ray start`` began on this machine)."""
        if address != "auto":
            return address.removeprefix("ray://")
        try:  # Ray's own lookup; private, so a Ray that moved it falls back to ray.init's
            from ray._private.services import canonicalize_bootstrap_address
        except ImportError:
            return ""
        try:
            found = canonicalize_bootstrap_address("auto")
        except ConnectionError:
            found = None
        if not found:
            raise NtknasError(
                f"{option('address')} auto found no running Ray cluster on this machine: start one with "
                "`ray start --head`, or give the head node's HOST:PORT"
            )
        return str(found)

    def stop(self) -> None:
        """Disconnect; a local instance started for the run is shut down with it."""
        self._contexts.clear()
        if self._connected_here:
            try:
                self._ray.shutdown()
            finally:
                self._connected_here = False
                reaper, self._reaper = self._reaper, None
                if reaper is not None:
                    reaper.close()  # ends what Ray's shutdown left behind

    def driver_device(self, device: str) -> torch.device:
        """The CPU: the shared data travels through the object store, and each worker moves it
        to its own device (the driver may run on a node without a GPU)."""
        return torch.device("cpu")

    # --- running ------------------------------------------------------------------------
    def map(
        self, work: Work, context: WorkContext, tasks: Sequence[Task[Item]], deadline: float | None = None
    ) -> Iterator[tuple[Item, Iterable[Any]]]:
        with self:  # outside a `with executor:` block, connects for this map alone
            yield from self._map(work, context, tasks, deadline)

    def _shared(self, context: WorkContext) -> tuple[Any, str]:
        """The object-store copy of ``context`` and the id its workers keep it under: put once
        per context while the executor is open (a search maps each round's asks with the same
        context)."""
        known = self._contexts.get(id(context))
        if known is None:
            # The context is kept with its copy so that its id is not reused while open.
            known = (context, self._ray.put(context.portable()), uuid.uuid4().hex)
            self._contexts[id(context)] = known
        return known[1], known[2]

    def _map(
        self, work: Work, context: WorkContext, tasks: Sequence[Task[Item]], deadline: float | None
    ) -> Iterator[tuple[Item, Iterable[Any]]]:
        ray = self._ray
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        slots = items_at_once(nodes, self.cpus_per_item, self.gpus_per_item)
        if slots < 1:
            raise NtknasError(
                f"no node of the Ray cluster has {self.cpus_per_item:g} CPU(s) and {self.gpus_per_item:g} GPU(s) "
                f"for one item: lower {option('cpus_per_item')} / {option('gpus_per_item')}, or add nodes"
            )
        log.info("Ray: up to %d item(s) at once on %d node(s)", slots, len(nodes))
        # Once: every task reads this one copy. Ray pickles with cloudpickle, so architectures
        # built by lambdas travel too (the process pool refuses them).
        shared, run_id = self._shared(context)
        # The deadline travels as wall-clock time so that a task queued before it but started
        # after it does nothing (the cluster's clocks are assumed to agree, as NTP keeps them).
        not_after = None if deadline is None else time.time() + (deadline - time.monotonic())
        remote = ray.remote(_run_item).options(
            num_cpus=self.cpus_per_item, num_gpus=self.gpus_per_item, max_retries=self.options.max_retries,
            retry_exceptions=False,
        )
        pending = iter(tasks)
        plugins = worker_plugins()
        in_flight: dict[Any, Task[Item]] = {}
        try:
            while True:
                # Twice the slots: a finished slot finds its next item already queued.
                while len(in_flight) < 2 * slots and (deadline is None or time.monotonic() < deadline):
                    task = next(pending, None)
                    if task is None:
                        break
                    # The shared ref inside a list: Ray passes it unresolved, so a worker fetches
                    # it only the first time (see _ready_context), not for every task.
                    ref = remote.remote(work, run_id, [shared], task.item, task.done, self.threads, not_after, plugins)
                    in_flight[ref] = task
                if not in_flight:
                    return
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    task = in_flight.pop(ref)
                    outcome = self._result(ref, task)
                    if not outcome.late:
                        yield task.item, outcome.results
        finally:
            self._cancel(list(in_flight))

    def _result(self, ref: Any, task: Task[Any]) -> _Outcome:
        ray = self._ray
        label = describe_item(task.item)
        try:
            outcome: _Outcome = ray.get(ref)
        except ray.exceptions.TaskUnschedulableError:
            raise NtknasError(
                f"Ray cannot place {label} on any node: lower {option('cpus_per_item')} / {option('gpus_per_item')}"
            ) from None
        except (
            ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError,
            ray.exceptions.ObjectLostError, ray.exceptions.LocalRayletDiedError,
        ) as error:
            tries = self.options.max_retries + 1
            raise NtknasError(
                f"{label}: its Ray worker died in each of {tries} tries ({type(error).__name__}; out of memory?): "
                f"stored results are kept; rerun to continue, with more {option('max_retries')} or {option('cpus_per_item')}"
            ) from None
        if outcome.error is not None:
            raise NtknasError(f"{label} failed on {outcome.node}: {outcome.error}")
        return outcome

    def _cancel(self, refs: list[Any]) -> None:
        """Cancel tasks still queued or running, and wait (a bounded time) until they are gone,
        so that no task of this run outlives the command."""
        if not refs:
            return
        ray = self._ray
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception as error:  # the cluster may already be gone; nothing left to cancel
                log.debug("could not cancel a Ray task: %s", error)
        try:
            ray.wait(refs, num_returns=len(refs), timeout=10.0, fetch_local=False)
        except Exception as error:
            log.debug("could not wait for cancelled Ray tasks: %s", error)


@contextmanager
def _stderr_kept_from_terminal() -> Iterator[list[str]]:
    """Within the block, what is written to file descriptor 2 (Ray's C++ core logs there
    directly, bypassing Python's logging) goes to a temporary file; its lines are given after
    the block, for an error message to quote."""
    printed: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield printed
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            printed.extend(line for line in sink.read().decode(errors="replace").splitlines() if line.strip())


# An HTTP/2 client's connection preface and an empty SETTINGS frame. A gRPC server (a Ray head
# node's GCS port, or the Ray Client port) answers with a SETTINGS frame of its own; anything
# else there (the dashboard's HTTP port 8265, another service) does not, and ``ray.init`` would
# retry it for many minutes.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS_FRAME = 4


def _check_reachable(address: str, head: str, timeout: float) -> None:
    """Fail within ``timeout`` seconds when nothing listens at the head node, or what listens
    there is not a Ray head node: ``ray.init`` would retry for minutes before it gives up."""
    host, _, port = head.rpartition(":")
    if not head or not host or not (port.isascii() and port.isdigit()):
        if head:
            raise NtknasError(f"{option('address')} {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379) or auto")
        return
    try:
        connection = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else (error.strerror or type(error).__name__)
        raise NtknasError(
            f"no Ray cluster answers at {head} ({reason}): start one with `ray start --head`, or fix {option('address')}"
        ) from None
    with connection:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return  # the plain preface below would not reach a TLS server's gRPC layer
        reply = b""
        try:
            connection.sendall(_HTTP2_PREFACE)
            while len(reply) < 9 and (chunk := connection.recv(9 - len(reply))):
                reply += chunk
        except TimeoutError:
            pass
        except OSError:
            return  # reset or closed mid-probe: ray.init says what is wrong
    if len(reply) < 9 or reply[3] != _SETTINGS_FRAME:
        raise NtknasError(
            f"what answers at {head} is not a Ray head node (it does not speak gRPC; the dashboard's port, 8265, "
            "is not it): give the head node's GCS port (6379 unless `ray start --port` set another)"
        )


# --- in the Ray worker process ------------------------------------------------------------

# The readied shared contexts this worker process last served, keyed by their id, the most
# recently used last. Ray keeps a worker process across tasks but offers a plain task no other
# state that outlives one call, and fetching and readying the data for each item would cost
# more than measuring it. Two entries: a search's two proxies, used in turn each round; a
# worker serving a new run drops the oldest run's data.
_readied: dict[str, Any] = {}
READIED_KEPT = 2


def _ready_context(run_id: str, shared: list[Any]) -> Any:
    context = _readied.pop(run_id, None)
    if context is None:
        import ray

        context = ray.get(shared[0]).local()
    _readied[run_id] = context
    while len(_readied) > READIED_KEPT:
        del _readied[next(iter(_readied))]
    return context


def _run_item(
    work: Work, run_id: str, shared: list[Any], item: Any, done: frozenset[str], threads: int, not_after: float | None,
    plugins: Sequence[str] = (),
) -> _Outcome:
    """One work item in a Ray worker: its results, or why it has none."""
    if not_after is not None and time.time() >= not_after:
        return _Outcome(late=True)
    load_worker_plugins(plugins)  # the driver's --plugin registrations, once per worker process
    torch.set_num_threads(threads)
    try:
        context = _ready_context(run_id, shared)
        return _Outcome(results=list(work(context, item, done)))
    except NtknasError as error:
        return _Outcome(error=marked_text(error), node=f"{socket.gethostname()} (pid {os.getpid()})")
