"""Validate training-free proxies against their published NAS-Bench-201 correlations.

    python perf/proxy_validation.py [--cells 1000] [--batch 64] [--metrics grasp,fisher,...]
                                    [--data-dir DIR] [--out runs/proxy_validation.csv]

For a seeded sample of NB201 cells (the benchmark's own network variant, which the zero-cost
papers measured; PyTorch's initialization under model seed 42), scores each cell through
ntknas's normal scoring path (:func:`ntknas.scoring.score_run`) on ONE augmented CIFAR-10
training batch drawn with data seed 42 (the ``--protocol zc`` batch), BatchNorm in train mode.
Each cell's values and seconds are appended to the CSV as soon as it is measured; rerunning
with the same --out skips the cells already there. Then it prints, per metric, the signed
Spearman ρ with ``cifar10_valid_test`` and its bootstrap 95 % CI beside the published value,
and the mean seconds per cell.

Seconds are as scored together: a pass that several metrics share (the cross-entropy pass of
grad_norm/snip/plain/fisher/grasp, jacob_cov's Jacobians that epe_nas reuses) is counted in the
first metric of --metrics that needs it. The "all" line is the mean total per cell.

CIFAR-10 comes from DIR/cifar-10-batches-py; when absent, the shared data folder's
make_cifar10.py writes it there first (a minute or two).
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package

from ntknas.analysis.aggregate import log_rank_sum  # noqa: E402
from ntknas.analysis.statistics import rank_correlation  # noqa: E402
from ntknas.data import draw_batch, load_for_run  # noqa: E402
from ntknas.groundtruth import load_benchmark  # noqa: E402
from ntknas.inputs.selection import select_positions  # noqa: E402
from ntknas.metrics import available_metrics, get_metric, parse_metric_list  # noqa: E402
from ntknas.scoring import score_run  # noqa: E402
from ntknas.spaces.nb201 import build_nb201  # noqa: E402

SHARED_DATA = REPO.parent / "shared" / "data"
TARGET = "cifar10_valid_test"
MODEL_SEED = 42
DATA_SEED = 42

# Published Spearman ρ on NAS-Bench-201 CIFAR-10 (SPEC §6). "|ρ|": the source prints absolute
# values, so compare the magnitude. AZ-NAS is all cells, MeCo is NATS-Bench TSS (the same cells).
PUBLISHED: dict[str, tuple[float, str]] = {
    "synflow": (0.74, "ρ, all 15,625 (Abdelfattah et al. 2021)"),
    "jacob_cov": (0.73, "ρ, all 15,625 (Abdelfattah et al. 2021)"),
    "snip": (0.60, "ρ, all 15,625 (Abdelfattah et al. 2021)"),
    "grad_norm": (0.59, "ρ, all 15,625 (Abdelfattah et al. 2021)"),
    "grasp": (0.514, "|ρ|, all 15,625, batch 64 (Abdelfattah et al. 2021)"),
    "fisher": (0.360, "|ρ|, all 15,625, batch 64 (Abdelfattah et al. 2021)"),
    "az_nas": (0.913, "ρ, all cells (AZ-NAS, CVPR 2024)"),
    "meco": (0.89, "ρ, NATS-Bench TSS (MeCo abstract)"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1000, help="seeded sample of this many NB201 cells (default 1000)")
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of the sample of cells (default 0)")
    parser.add_argument("--batch", type=int, default=64, help="images in the one measurement batch (default 64)")
    parser.add_argument("--metrics", default=None, help="comma-separated metrics (default: every zero-cost proxy)")
    parser.add_argument("--benchmark", type=Path, default=SHARED_DATA / "nb201" / "nb201_accuracies.csv")
    parser.add_argument("--data-dir", type=Path, default=REPO / "runs" / "proxy_validation" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "proxy_validation" / "scores.csv")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    metrics = parse_metric_list(args.metrics) if args.metrics else available_metrics("zero-cost")
    benchmark = load_benchmark(args.benchmark, "nb201", TARGET)
    keys = benchmark.keys()
    cells = [keys[p] for p in select_positions(len(keys), None, args.cells, args.sample_seed)]
    done = read_done(args.out, metrics)
    todo = [cell for cell in cells if int(cell) not in done]
    print(f"{len(cells)} cells (sample seed {args.sample_seed}), {len(cells) - len(todo)} already in {args.out}")
    if todo:
        inputs, targets = measurement_batch(args.data_dir, args.batch, args.device)
        measure(todo, benchmark, metrics, inputs, targets, args.out, args.device)
    summarize(read_done(args.out, metrics), {int(c) for c in cells}, metrics)
    return 0


def measurement_batch(data_dir: Path, batch: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not (data_dir / "cifar-10-batches-py").is_dir():
        data_dir.mkdir(parents=True, exist_ok=True)
        print(f"writing CIFAR-10 to {data_dir} with {SHARED_DATA / 'make_cifar10.py'} ...")
        subprocess.run([sys.executable, str(SHARED_DATA / "make_cifar10.py"), str(data_dir)], check=True)
    train = load_for_run("cifar10", str(data_dir), "train", device=device)
    return draw_batch(train, batch, seed=DATA_SEED, augment=True)


def columns(metrics: list[str]) -> list[str]:
    return ["index", "accuracy", *metrics, *(f"{m}_seconds" for m in metrics), "seconds"]


def read_done(path: Path, metrics: list[str]) -> dict[int, dict[str, str]]:
    """The rows of a CSV this script wrote with the same metrics, by cell index."""
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != columns(metrics):
            raise SystemExit(f"{path} holds other metrics ({reader.fieldnames}): pass another --out for these")
        return {int(row["index"]): row for row in reader}


def measure(cells, benchmark, metrics, inputs, targets, out: Path, device: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.is_file()
    with open(out, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns(metrics))
        if new:
            writer.writeheader()
        for count, cell in enumerate(cells, 1):
            started = time.perf_counter()
            torch.manual_seed(MODEL_SEED)
            net = build_nb201(int(cell), num_classes=10, variant="benchmark").to(device)
            values = score_run(net, inputs, targets, metrics, "train").values
            row: dict[str, object] = {"index": int(cell), "accuracy": benchmark.accuracy(cell)}
            for name, result in values.items():
                row[name] = "" if result.value is None else repr(result.value)
                row[f"{name}_seconds"] = f"{result.seconds:.4f}"
            row["seconds"] = f"{time.perf_counter() - started:.4f}"
            writer.writerow(row)
            handle.flush()
            missing = [name for name, result in values.items() if result.missing]
            note = f"; missing {', '.join(missing)}" if missing else ""
            print(f"[{count}/{len(cells)}] cell {int(cell)}: {row['seconds']} s{note}", flush=True)


def summarize(rows: dict[int, dict[str, str]], cells: set[int], metrics: list[str]) -> None:
    chosen = [rows[i] for i in sorted(cells) if i in rows]
    accuracy = np.array([float(row["accuracy"]) for row in chosen])
    print(f"\nSpearman ρ with {TARGET} over {len(chosen)} cells (bootstrap 95 % CI); seconds per cell")
    print(f"{'metric':<11} {'ranks':<6} {'n':>5} {'ρ':>7}  {'95 % CI':<17} {'published':<54} {'s/cell':>7}")
    def column(name: str) -> np.ndarray:
        return np.array([float(row[name]) if row[name] else math.nan for row in chosen])

    for name in metrics:
        components = get_metric(name).aggregate_of
        # A set-level aggregate (az_nas) ranks the cells measured here, from its components.
        values = log_rank_sum([column(c) for c in components]) if components else column(name)
        seconds = np.array([float(row[f"{name}_seconds"]) for row in chosen])
        correlation = rank_correlation(values, accuracy)
        low, high = correlation.spearman_ci
        published, source = PUBLISHED.get(name, (math.nan, "—"))
        shown = "—" if math.isnan(published) else f"{published:.3f} {source}"
        direction = {True: "higher", False: "lower", None: "—"}[get_metric(name).higher_is_better]
        print(
            f"{name:<11} {direction:<6} {correlation.n:>5} {correlation.spearman:>+7.3f}  [{low:+.3f}, {high:+.3f}]"
            f"  {shown:<54} {np.mean(seconds) if len(seconds) else math.nan:>7.3f}"
        )
    totals = [float(row["seconds"]) for row in chosen]
    print(f"{'all':<11} {'':<6} {len(chosen):>5} {'':>7}  {'':<17} {'(build + every metric)':<54} "
          f"{np.mean(totals) if totals else math.nan:>7.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
