"""Measure which kernel is faster per NTK metric and batch size: the rule behind ``--kernel auto``.

For each NB201 cell (small and largest), batch size and metric (knas, trace, fnorm, lga) this times
one evaluation with ``--kernel exact`` (the B×B kernel; its cost is the kernel's, shared by every
kernel metric, so it is timed once per batch for the four together) and with ``--kernel matrix-free``
(each metric alone, as ``--kernel auto`` would run it), in train-mode BatchNorm on the study variant.
It prints a side-by-side table and, per metric, the crossover: the largest measured batch at which
the exact kernel is still faster and the smallest at which matrix-free is. ``ntknas.kernel.choice``
encodes the result (docs/kernel.md, "Choosing the kernel: --kernel auto").

    OMP_NUM_THREADS=1 python perf/kernel_choice.py --device cpu
    python perf/kernel_choice.py --device cuda --batch-sizes 16,32,64,128,256,512

On a CPU the times are the process's CPU seconds with one thread (``OMP_NUM_THREADS=1``), which
other work on a shared machine does not inflate; larger batches of a cell are skipped once one
evaluation passes --max-seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "perf"))
sys.path.insert(0, str(ROOT / "tests"))

from ntk_speed import LARGEST, SMALL  # noqa: E402

from ntknas.execution.runtime import device_name  # noqa: E402
from ntknas.kernel.matrix_free import DEFAULT_ESTIMATOR, DEFAULT_PROBES, EstimatorSettings  # noqa: E402
from ntknas.scoring import run_metrics  # noqa: E402
from ntknas.spaces.nb201 import build_nb201  # noqa: E402

METRICS = ("knas", "trace", "fnorm", "lga")
"""The NTK metrics matrix-free computes; trace, fnorm and lga pay for the same C + m passes, so
``--metrics knas,lga`` measures the two costs there are in less time."""
CELLS = {"small": SMALL, "largest": LARGEST}


def seconds_of(net: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, names: tuple[str, ...],
               kernel: str, settings: EstimatorSettings, device: torch.device) -> float:
    # CPU: the process's CPU time, so that other work on a shared machine does not count (one
    # thread, so it is the wall time of an idle core); a GPU: the wall time.
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    start = clock()
    run = run_metrics(net, inputs, labels, names, "train", kernel=kernel, estimator=settings)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    missing = [name for name, value in run.values.items() if value.missing]
    if missing:
        raise SystemExit(f"{kernel} left {missing} missing: {run.values}")
    return clock() - start


def measure(args: argparse.Namespace, device: torch.device) -> list[dict]:
    metrics = tuple(args.metrics.split(","))
    settings = EstimatorSettings(probes=args.probes, estimator=args.estimator)
    rows = []
    warm = build_nb201(SMALL, 10, variant="study").to(device)  # one-off costs of the process (imports, tracing)
    warm_inputs = torch.randn(4, 3, 32, 32).to(device)
    for kernel in ("exact", "matrix-free"):
        seconds_of(warm, warm_inputs, torch.arange(4).to(device), metrics, kernel, settings, device)
    for cell in args.cells.split(","):
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            torch.manual_seed(42)
            net = build_nb201(CELLS[cell], 10, variant="study").to(device)
            inputs = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(device)
            labels = (torch.arange(batch) % 10).to(device)
            if device.type == "cuda":  # the first evaluation on a GPU pays for kernels' compilation
                seconds_of(net, inputs, labels, metrics, "matrix-free", settings, device)
                seconds_of(net, inputs, labels, metrics, "exact", settings, device)
            row = {"cell": cell, "batch": batch, "exact": seconds_of(net, inputs, labels, metrics, "exact", settings, device)}
            for metric in metrics:
                row[metric] = seconds_of(net, inputs, labels, (metric,), "matrix-free", settings, device)
            rows.append(row)
            print(line(row), flush=True)
            if device.type != "cuda" and max(row["exact"], *(row[m] for m in metrics)) > args.max_seconds:
                break
    return rows


def header(metrics: tuple[str, ...]) -> str:
    columns = "".join(f"{f'mf {m} s':>12}" for m in metrics)
    return f"{'cell':<9}{'B':>5}{'exact s':>10}{columns}  faster"


def line(row: dict) -> str:
    metrics = [m for m in METRICS if m in row]
    columns = "".join(f"{row[m]:>12.2f}" for m in metrics)
    faster = ", ".join(f"{m}: {'mf' if row[m] < row['exact'] else 'exact'}" for m in metrics)
    return f"{row['cell']:<9}{row['batch']:>5}{row['exact']:>10.2f}{columns}  {faster}"


def crossovers(rows: list[dict]) -> list[str]:
    lines = []
    for cell in dict.fromkeys(row["cell"] for row in rows):
        for metric in (m for m in METRICS if m in rows[0]):
            measured = [row for row in rows if row["cell"] == cell]
            exact_wins = [row["batch"] for row in measured if row["exact"] <= row[metric]]
            mf_wins = [row["batch"] for row in measured if row[metric] < row["exact"]]
            lines.append(
                f"{cell:<9}{metric:<7} exact faster up to B = {max(exact_wins) if exact_wins else '-'}, "
                f"matrix-free faster from B = {min(mf_wins) if mf_wins else '-'}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", default="16,32,64,128")
    parser.add_argument("--cells", default="small,largest")
    parser.add_argument("--metrics", default=",".join(METRICS), help="matrix-free metrics timed one by one")
    parser.add_argument("--max-seconds", type=float, default=90.0, help="CPU: stop a cell's batches past this")
    parser.add_argument("--probes", type=int, default=DEFAULT_PROBES)
    parser.add_argument("--estimator", default=DEFAULT_ESTIMATOR)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"# exact vs matrix-free per metric on {device_name(device)}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.estimator} estimator, {args.probes} probes, train-mode BN, "
          f"NB201 study variant; {'wall' if device.type == 'cuda' else 'CPU'} seconds per evaluation (mf: the metric alone)")
    print(header(tuple(args.metrics.split(","))), flush=True)
    rows = measure(args, device)
    print("# crossover")
    for text in crossovers(rows):
        print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
