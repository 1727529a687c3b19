"""One table of the GPU figures issue 11 asks for (run by perf/gpu_check.sh; see there).

Rows: exact coupled kernel batched vs loop per batch size; independent per-sample vs loop; matrix-free
(knas, lga, fnorm, trace) vs exact; the study's init protocol throughput (archs/s, both BN modes, all
five default metrics, exact kernel). ``--tiny`` shrinks every size for a CPU smoke test of the script.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ntknas.execution.runtime import device_name  # noqa: E402
from ntknas.kernel import compute_ntk  # noqa: E402
from ntknas.kernel.matrix_free import EstimatorSettings  # noqa: E402
from ntknas.metrics import DEFAULT_METRICS  # noqa: E402
from ntknas.scoring import run_metrics  # noqa: E402
from ntknas.spaces.nb201 import arch_from_index, build_nb201  # noqa: E402

LARGEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def seconds(device: torch.device, run: Callable[[], object]) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def row(what: str, batch: int, first: str, first_s: float, second: str, second_s: float, goal: str) -> None:
    print(f"| {what:<34} | {batch:>4} | {first:<12} {first_s:>8.3f} s | {second:<12} {second_s:>8.3f} s "
          f"| {second_s / first_s:>7.1f}x | {goal:<24} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke test: small batches, few archs")
    parser.add_argument("--archs", type=int, default=20, help="architectures for the throughput row")
    args = parser.parse_args()
    device = torch.device(args.device)
    sizes = (8, 16) if args.tiny else (64, 128, 256)
    archs = 2 if args.tiny else args.archs
    top = sizes[-1]
    print(f"# gpu_check on {device_name(device)}, torch {torch.__version__}{' (TINY smoke test)' if args.tiny else ''}")
    print("| measurement                        |    B | fast                    | slow                    | speed-up | goal                     |")
    print("|---|---|---|---|---|---|")

    def net(variant: str = "study", arch: str = LARGEST) -> torch.nn.Module:
        torch.manual_seed(42)
        return build_nb201(arch, 10, variant=variant).to(device)

    def batch(size: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(0)
        return (torch.randn(size, 3, 32, 32, generator=generator).to(device),
                (torch.arange(size) % 10).to(device))

    for size in sizes:
        inputs, _ = batch(size)
        model = net()
        compute_ntk(model, inputs[:8], bn_mode="train", strategy="batched")  # warm-up
        fast = seconds(device, lambda m=model, x=inputs: compute_ntk(m, x, bn_mode="train", strategy="batched"))
        slow = seconds(device, lambda m=model, x=inputs: compute_ntk(m, x, bn_mode="train", strategy="loop"))
        row("exact coupled: batched vs loop", size, "batched", fast, "loop", slow, ">= 5x (issue 2)")
    inputs, labels = batch(top)
    model = net("benchmark")
    fast = seconds(device, lambda: compute_ntk(model, inputs, bn_mode="eval", strategy="per_sample"))
    slow = seconds(device, lambda: compute_ntk(model, inputs, bn_mode="eval", strategy="loop"))
    row("independent: per-sample vs loop", top, "per_sample", fast, "loop", slow, ">= 100x at B=256")
    for size in sizes:
        inputs, labels = batch(size)
        model = net()
        names = ("knas", "lga", "fnorm", "trace")
        exact = seconds(device, lambda m=model, x=inputs, y=labels: run_metrics(
            m, x, y, names, "train", strategy="batched"))
        knas = seconds(device, lambda m=model, x=inputs, y=labels: run_metrics(
            m, x, y, ("knas",), "train", kernel="matrix-free"))
        four = seconds(device, lambda m=model, x=inputs, y=labels: run_metrics(
            m, x, y, names, "train", kernel="matrix-free", estimator=EstimatorSettings()))
        row("matrix-free knas vs exact", size, "matrix-free", knas, "exact", exact, ">= 50x at B=256")
        row("matrix-free 4 metrics vs exact", size, "matrix-free", four, "exact", exact, ">= 5x at B=256")
    inputs, labels = batch(top)
    for bn_mode in ("train", "eval"):
        start = time.perf_counter()
        for index in range(archs):
            run_metrics(net(arch=arch_from_index(index).to_string()), inputs, labels, DEFAULT_METRICS, bn_mode,
                        strategy="auto")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        print(f"| init protocol throughput, BN {bn_mode:<5} | {top:>4} | {archs / elapsed:>8.2f} archs/s | "
              f"1000 archs: {1000 * elapsed / archs / 60:>6.1f} min | | 1000 in <= 10 min |", flush=True)


if __name__ == "__main__":
    main()
