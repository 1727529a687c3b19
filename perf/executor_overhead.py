"""The same work items through the three executors, side by side: serial, process pool, Ray.

    python perf/executor_overhead.py [--items 24] [--batch-size 32] [--workers 2] [--noop 200]
                                     [--channels 8] [--cells-per-stage 1] [--reference-items 2]

Each executor runs ``correlate`` on the same ``--items`` small NAS-Bench-201 cells (``--channels``
stem channels, ``--cells-per-stage`` cells per stage; the default metrics in both BatchNorm modes;
a batch of ``--batch-size`` images of the built-in digits dataset, so no download) into its own
run folder on the CPU. The pool and Ray get ``--workers`` processes/CPUs (Ray: a local instance
started here with that many CPUs), one torch thread each, and so does the serial run (the same
arithmetic everywhere). Printed for each: wall time of the run (outputs included, the same work
for all), items/s, and whether its stored values equal the serial run's.

Ray's overhead per item is then measured apart from the work: ``--noop`` items that do nothing
through the same Ray instance (warm workers), as milliseconds of one slot per item
(wall time x slots / items). It is set against the time of one item of the study's network
(C=16, N=5) on a batch of ``--batch-size``: the mean ``seconds`` stored for ``--reference-items``
such items measured serially. Ray's start-up (``ray.init``) is printed apart: it is paid once per
command.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package

from ntknas.execution.executors import Executor, ProcessPoolExecutor, SerialExecutor, Task  # noqa: E402
from ntknas.runs.correlate import ArchEntry, CorrelateConfig, run_correlate  # noqa: E402
from ntknas.spaces import get_space  # noqa: E402


class _Nothing:
    """A shared context with nothing in it, for the no-op items."""

    def portable(self) -> _Nothing:
        return self

    def local(self) -> _Nothing:
        return self


def _noop(context: object, item: int, done: frozenset[str]) -> list[int]:
    return [item]


def _values(run_dir: Path) -> dict[tuple, float | None]:
    with sqlite3.connect(run_dir / "results.sqlite") as db:
        rows = db.execute("SELECT arch, bn_mode, train_epochs, metric, value FROM measurements").fetchall()
    return {row[:4]: row[4] for row in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--noop", type=int, default=200)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells-per-stage", type=int, default=1)
    parser.add_argument("--reference-items", type=int, default=2)
    args = parser.parse_args(argv)

    import ray

    from ntknas.execution.ray_executor import RayExecutor, RayOptions

    space = get_space("nb201")
    step = space.size() // args.items
    entries = [
        ArchEntry(space.key(space.arch_at(i * step)), i * step, space.arch_at(i * step), float(i))
        for i in range(args.items)
    ]
    small = {"channels": args.channels, "cells_per_stage": args.cells_per_stage}
    print(f"{args.items} NB201 cells (C={args.channels}, N={args.cells_per_stage}), batch {args.batch_size} of digits, "
          f"default metrics, BN train+eval; CPU, {torch.get_num_threads()} torch threads available, "
          f"torch {torch.__version__}, ray {ray.__version__}")

    started = time.perf_counter()
    ray.init(address="local", num_cpus=args.workers, include_dashboard=False, logging_level=logging.WARNING)
    ray_start = time.perf_counter() - started

    executors: list[tuple[str, Executor]] = [
        ("serial", SerialExecutor()),
        (f"pool x{args.workers}", ProcessPoolExecutor(args.workers)),
        (f"ray x{args.workers}", RayExecutor(RayOptions(cpus_per_item=1))),
    ]
    results: dict[str, float] = {}
    torch.set_num_threads(1)  # the serial run's arithmetic is then a worker's
    with tempfile.TemporaryDirectory() as folder:
        reference = None
        for name, executor in executors:
            out = Path(folder) / name.split()[0]
            config = CorrelateConfig(dataset="digits", batch_size=args.batch_size, out=str(out), network_options=small)
            begin = time.perf_counter()
            outcome = run_correlate(config, entries=entries, executor=executor)
            seconds = time.perf_counter() - begin
            assert outcome.measured == args.items
            values = _values(out)
            reference = values if reference is None else reference
            results[name] = seconds
            print(f"{name:>8}: {seconds:7.1f} s, {args.items / seconds:6.3f} items/s, "
                  f"values {'identical to serial' if values == reference else 'DIFFER from serial'}")

        executor = RayExecutor(RayOptions(cpus_per_item=1))
        list(executor.map(_noop, _Nothing(), [Task(i) for i in range(2 * args.workers)]))  # warm workers
        begin = time.perf_counter()
        done = list(executor.map(_noop, _Nothing(), [Task(i) for i in range(args.noop)]))
        noop_seconds = time.perf_counter() - begin
        assert len(done) == args.noop

        out = Path(folder) / "reference"
        config = CorrelateConfig(dataset="digits", batch_size=args.batch_size, out=str(out))
        run_correlate(config, entries=entries[: args.reference_items], executor=SerialExecutor())
        with sqlite3.connect(out / "results.sqlite") as db:
            per_item = db.execute("SELECT AVG(seconds) FROM items").fetchone()[0]
    ray.shutdown()

    overhead_ms = 1000 * noop_seconds * args.workers / args.noop
    print(f"ray start-up (once per command): {ray_start:.1f} s")
    for name in results:
        print(f"{name} vs serial: {results['serial'] / results[name]:.2f}x items/s")
    print(f"ray overhead per item ({args.noop} no-op items, warm): {overhead_ms:.1f} ms of one slot "
          f"= {100 * overhead_ms / 1000 / per_item:.2f} % of a batch-{args.batch_size} NB201 item "
          f"({per_item:.2f} s: C=16, N=5, mean of {args.reference_items} serial items, 1 thread)")
    ray_vs_pool = results[f"ray x{args.workers}"] / results[f"pool x{args.workers}"]
    print(f"ray / pool wall time on the {args.items} items: {ray_vs_pool:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
