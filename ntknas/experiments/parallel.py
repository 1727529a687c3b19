"""Correlate's work items in several worker processes on one device.

A small NB201 cell keeps a GPU busy for a few percent of the time it takes Python to launch its
kernels, so one process leaves most of a GPU (and all but one CPU core) idle. The pool maps the
pure worker :func:`~ntknas.experiments.correlate.measure_architecture` over architectures in
``workers`` spawned processes; only the parent touches the store, committing each item as it
arrives, so a killed run resumes exactly as a single-process one does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import TYPE_CHECKING

import torch

from ntknas.data import ImageDataset
from ntknas.errors import NtknasError

if TYPE_CHECKING:
    from ntknas.experiments.correlate import ArchEntry, CorrelateConfig, ItemResult, MeasurementBatch


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker process needs, sent once when it starts (all tensors on the CPU)."""

    config: CorrelateConfig
    num_classes: int
    batch: MeasurementBatch
    train_set: ImageDataset | None
    device: str
    threads: int


@dataclass
class _WorkerContext:
    setup: WorkerSetup
    build: object
    batch: MeasurementBatch
    train_set: ImageDataset | None
    device: torch.device


# Set once per worker process by the pool's initializer: the pool offers no other way to give a
# process state that outlives one task, and reloading the data for each architecture would cost
# more than measuring it.
_context: _WorkerContext | None = None


def _start_worker(setup: WorkerSetup) -> None:
    global _context
    from ntknas.experiments.correlate import MeasurementBatch, network_factory

    torch.set_num_threads(setup.threads)
    device = torch.device(setup.device)
    batch = MeasurementBatch(setup.batch.inputs.to(device), setup.batch.targets.to(device))
    train_set = setup.train_set.to(device) if setup.train_set is not None else None
    build = network_factory(setup.config, setup.num_classes)
    _context = _WorkerContext(setup, build, batch, train_set, device)


def _measure(entry: ArchEntry, done: frozenset[str]) -> list[ItemResult]:
    from ntknas.experiments.correlate import measure_architecture

    assert _context is not None, "worker used before its initializer ran"
    ctx = _context
    return list(
        measure_architecture(ctx.setup.config, entry, ctx.build, ctx.batch, ctx.train_set, set(done), ctx.device)
    )


def threads_per_worker(workers: int, device: torch.device) -> int:
    """CPU threads for each worker: the cores shared out on a CPU run, one on a GPU run (where
    the threads only launch kernels and more of them would fight over the cores)."""
    if device.type != "cpu":
        return 1
    return max(1, (os.cpu_count() or 1) // workers)


def run_parallel(
    setup: WorkerSetup,
    entries: Sequence[ArchEntry],
    done_by_entry: Mapping[str, frozenset[str]],
    workers: int,
    deadline: float | None = None,
) -> Iterator[tuple[ArchEntry, list[ItemResult]]]:
    """Yield ``(entry, its item results)`` as workers finish them, in completion order.

    ``done_by_entry`` maps each entry's key to its item keys already stored (stages to skip).

    At most two architectures per worker are in flight, so a stop (an error, or ``deadline``, a
    ``time.monotonic()`` value after which no new architecture starts) wastes little work. A
    worker's error is raised here after the pool is shut down.
    """
    if workers < 1:
        raise NtknasError(f"--workers must be at least 1, got {workers}")
    pending = iter(entries)
    in_flight: dict[Future[list[ItemResult]], ArchEntry] = {}
    context = get_context("spawn")  # CUDA cannot be used in a forked child
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker, initargs=(setup,)) as pool:
        try:
            while True:
                while len(in_flight) < 2 * workers and (deadline is None or time.monotonic() < deadline):
                    entry = next(pending, None)
                    if entry is None:
                        break
                    in_flight[pool.submit(_measure, entry, done_by_entry[entry.key])] = entry
                if not in_flight:
                    return
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    entry = in_flight.pop(future)
                    yield entry, future.result()
        finally:
            for future in in_flight:
                future.cancel()
