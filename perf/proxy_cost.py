"""Seconds per cell of the training-free proxies, measured side by side in one process.

On the largest NB201 cell (all 3×3 convs, the study variant at full size) and a random batch of
CIFAR-shaped images, for each batch size: the 2021 set (grad_norm, snip, synflow, jacob_cov,
naswot, params, flops) and the full proxy set (every metric of the zero-cost and size families)
in one evaluation each, alternated ``--repeats`` times (median), and their ratio against the
issue's goal (the full set within 2× the 2021 set), with the full set less grasp beside them;
then ``--metrics all`` (every registered metric, the NTK metrics included) once; then each metric
asked alone. Seconds are CPU seconds of
this process (``time.process_time``) unless ``--wall``; one torch thread unless ``--threads``.

    python perf/proxy_cost.py
    python perf/proxy_cost.py --batch-sizes 32 --repeats 1 --no-alone
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ntknas.metrics import available_metrics, get_metric  # noqa: E402
from ntknas.scoring import score_run  # noqa: E402
from ntknas.spaces.nb201 import build_nb201  # noqa: E402

LARGEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SET_2021 = ("grad_norm", "snip", "synflow", "jacob_cov", "naswot", "params", "flops")


def proxy_set() -> list[str]:
    """Every registered zero-cost and size metric that one network can have (no aggregates)."""
    return [
        name for name in available_metrics()
        if get_metric(name).family in ("zero-cost", "size") and not get_metric(name).is_aggregate
    ]


def seconds(run: Callable[[], object], wall: bool) -> float:
    clock = time.perf_counter if wall else time.process_time
    start = clock()
    run()
    return clock() - start


def measure(net: torch.nn.Module, batch: int, names: Sequence[str], wall: bool) -> float:
    generator = torch.Generator().manual_seed(batch)
    inputs = torch.randn(batch, 3, 32, 32, generator=generator)
    targets = torch.randint(0, 10, (batch,), generator=generator)

    def evaluate() -> None:
        values = score_run(net, inputs, targets, list(names), "train").values
        missing = {n: v.reason for n, v in values.items() if v.value is None and not get_metric(n).is_aggregate}
        if missing:
            print(f"    missing: {missing}")

    return seconds(evaluate, wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="32,64")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--wall", action="store_true", help="wall-clock seconds instead of CPU seconds")
    parser.add_argument("--no-alone", action="store_true", help="skip the per-metric times")
    parser.add_argument("--no-all", action="store_true", help="skip --metrics all (the exact NTK is slow on a CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = build_nb201(LARGEST, num_classes=10, variant="study")
    full = proxy_set()
    without_grasp = [name for name in full if name != "grasp"]  # its exact Hessian-gradient product is the largest share
    unit = "wall s" if args.wall else "CPU s"
    print(f"largest NB201 cell, study variant, {args.threads} thread(s), torch {torch.__version__}; {unit} per cell")
    print(f"2021 set: {', '.join(SET_2021)}")
    print(f"full proxy set: {', '.join(full)}")
    measure(net, 8, full, args.wall)  # warm-up: first-call costs of every kernel
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        old, new, lighter = [], [], []
        for _ in range(args.repeats):
            old.append(measure(net, batch, SET_2021, args.wall))
            new.append(measure(net, batch, full, args.wall))
            lighter.append(measure(net, batch, without_grasp, args.wall))
        old_s, new_s, lighter_s = (statistics.median(v) for v in (old, new, lighter))
        verdict = "within" if new_s <= 2 * old_s else "OVER"
        print(f"batch {batch}: 2021 set {old_s:.2f}, full proxy set {new_s:.2f}, ratio {new_s / old_s:.2f} "
              f"({verdict} the 2x goal); without grasp {lighter_s:.2f}, ratio {lighter_s / old_s:.2f}")
        if not args.no_all:
            every = measure(net, batch, available_metrics(), args.wall)
            print(f"batch {batch}: --metrics all {every:.2f} ({every / old_s:.1f}x the 2021 set)")
        if not args.no_alone:
            for name in available_metrics():
                if get_metric(name).is_aggregate:
                    continue
                print(f"    batch {batch} {name:>18}: {measure(net, batch, [name], args.wall):.3f}")


if __name__ == "__main__":
    main()
