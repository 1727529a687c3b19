"""Wall seconds to start process pools and run one small item in each worker: workers spawned (each
imports torch and ntknas itself) against workers started as ``ProcessPoolExecutor`` starts them
(:func:`ntknas.execution.executors.worker_start_method`: forked from one fork server on Linux),
alternated in one run, and their ratio. Each pool's workers import the module a correlate item
runs in, as real workers do. The first forked pool also starts the fork server; later pools
reuse it, as a search's rounds or a study's parts do.

    python perf/worker_start.py
    python perf/worker_start.py --pools 5 --workers 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ntknas.execution.executors import worker_start_method  # noqa: E402

WORK_MODULE = "ntknas.runs.correlate"


def item(value: int) -> int:
    __import__(WORK_MODULE)  # what unpickling a correlate item imports in a worker
    return value


def pool_seconds(context: BaseContext, workers: int) -> float:
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(item, range(workers)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=int, default=3, help="pools started of each kind (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="workers per pool (default 2)")
    args = parser.parse_args()
    kinds = {"spawn": get_context("spawn"), "executor": worker_start_method(WORK_MODULE)}
    print(f"executor's start method: {kinds['executor'].get_start_method()}")
    seconds: dict[str, list[float]] = {name: [] for name in kinds}
    for _ in range(args.pools):
        for name, context in kinds.items():
            seconds[name].append(pool_seconds(context, args.workers))
    for name, values in seconds.items():
        print(f"{name:>8}: " + ", ".join(f"{v:.2f}" for v in values) + f" s a pool (median {statistics.median(values):.2f})")
    ratio = statistics.median(seconds["spawn"]) / statistics.median(seconds["executor"])
    print(f"spawned / executor's: {ratio:.1f}x (pools of {args.workers} workers, median of {args.pools})")


if __name__ == "__main__":
    main()
