"""Validate training-free proxies against their published NAS-Bench-201 correlations.

    python perf/proxy_validation.py [--cells 1000] [--batch 64] [--metrics grasp,fisher,...]
                                    [--data-dir DIR] [--out runs/proxy_validation.csv]
                                    [--variant benchmark|study] [--target COLUMN]
                                    [--inputs batch|fresh-batch|gaussian] [--reinit none|kaiming]
                                    [--zero-conv-bias] [--compare OTHER.csv]

For a seeded sample of NB201 cells (by default the benchmark's own network variant, as MeCo and
AZ-NAS measured; the zero-cost paper's own model is ``--variant study``, whose cell convolutions
carry a bias before a non-affine BatchNorm; PyTorch's initialization under model seed 42), scores each cell through
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

The protocol options reproduce where a published number's protocol departs from this one, one
difference at a time (docs/metrics.md, "Every proxy together"): ``--inputs fresh-batch`` scores
each cell on its own augmented batch, as the zero-cost paper's data loader draws;
``--inputs gaussian`` scores each cell on its own N(0, 1) batch and ``--reinit kaiming`` re-draws
each cell's conv/linear weights Kaiming-normal (fan-in) with zero biases (``--init kaiming
--bias-init zero``; BatchNorm keeps its construction-time 1 and 0), both seeded by the cell
index, as AZ-NAS's code does; ``--zero-conv-bias`` zeroes the biases of the study variant's cell convolutions (the
control for fisher). The protocol is recorded beside the CSV (OUT.protocol.json) and a rerun with
another is refused. ``--compare OTHER.csv`` then prints, per metric, the paired difference
ρ(OUT) − ρ(OTHER) over the cells both hold, with a paired bootstrap 95 % CI (cells resampled once
per draw, both ρ recomputed on it).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package

from ntknas.analysis.aggregate import log_rank_sum  # noqa: E402
from ntknas.analysis.statistics import percentile_interval, rank_correlation  # noqa: E402
from ntknas.data import draw_batch, load_for_run  # noqa: E402
from ntknas.groundtruth import load_benchmark  # noqa: E402
from ntknas.inputs.selection import select_positions  # noqa: E402
from ntknas.metrics import available_metrics, get_metric, parse_metric_list  # noqa: E402
from ntknas.scoring import score_run  # noqa: E402
from ntknas.spaces.init import initialize  # noqa: E402
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
    parser.add_argument("--variant", choices=("benchmark", "study"), default="benchmark",
                        help="NB201 network variant (default benchmark; the zero-cost paper's model: study)")
    parser.add_argument("--target", default=TARGET, help=f"accuracy column (default {TARGET}; AZ-NAS's: cifar10_test)")
    parser.add_argument("--inputs", choices=("batch", "fresh-batch", "gaussian"), default="batch",
                        help="batch: one CIFAR-10 batch for every cell; fresh-batch: each cell its own (the "
                             "zero-cost paper's loader); gaussian: each cell its own N(0,1) batch (AZ-NAS)")
    parser.add_argument("--reinit", choices=("none", "kaiming"), default="none",
                        help="kaiming: each cell re-drawn as AZ-NAS's code initializes (default none)")
    parser.add_argument("--zero-conv-bias", action="store_true", help="zero the cell convolutions' biases (study variant)")
    parser.add_argument("--compare", type=Path, default=None, help="another CSV of this script: paired Δρ per metric")
    args = parser.parse_args(argv)

    metrics = parse_metric_list(args.metrics) if args.metrics else available_metrics("zero-cost")
    protocol = Protocol(args.variant, args.inputs, args.reinit, args.zero_conv_bias, args.batch)
    protocol.claim(args.out)
    benchmark = load_benchmark(args.benchmark, "nb201", args.target)
    keys = benchmark.keys()
    cells = [keys[p] for p in select_positions(len(keys), None, args.cells, args.sample_seed)]
    done = read_done(args.out, metrics)
    todo = [cell for cell in cells if int(cell) not in done]
    print(f"{len(cells)} cells (sample seed {args.sample_seed}), {len(cells) - len(todo)} already in {args.out}")
    if todo:
        train = training_split(args.data_dir, args.device)
        measure(todo, benchmark, metrics, protocol, train, args.out, args.device)
    accuracy = {int(c): benchmark.accuracy(c) for c in cells}
    summarize(read_done(args.out, metrics), accuracy, metrics, args.target)
    if args.compare is not None:
        compare(read_done(args.out, metrics), read_done(args.compare, metrics), accuracy, metrics, args.target)
    return 0


@dataclass(frozen=True)
class Protocol:
    """How each cell is built and fed: what a published number's protocol may change."""

    variant: str
    inputs: str
    reinit: str
    zero_conv_bias: bool
    batch: int

    def claim(self, out: Path) -> None:
        """Record the protocol beside OUT; refuse OUT when it holds another protocol's rows."""
        sidecar = out.with_name(out.name + ".protocol.json")
        mine = asdict(self)
        if sidecar.is_file():
            theirs = json.loads(sidecar.read_text())
            if theirs != mine:
                raise SystemExit(f"{out} holds rows of another protocol ({theirs}): pass another --out for {mine}")
        elif out.is_file():
            raise SystemExit(f"{out} has no {sidecar.name}: pass another --out")
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            sidecar.write_text(json.dumps(mine))

    def network(self, cell: int, device: str) -> torch.nn.Module:
        torch.manual_seed(MODEL_SEED)
        net = build_nb201(cell, num_classes=10, variant=self.variant)
        if self.reinit == "kaiming":
            torch.manual_seed(cell)
            initialize(net, "nb201", weights="kaiming", biases="zero")
        with torch.no_grad():
            if self.zero_conv_bias:
                for module in net.modules():
                    if isinstance(module, torch.nn.Conv2d) and module.bias is not None:
                        module.bias.zero_()
        return net.to(device)

    def batches(self, train: Any) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
        """Cell index → (inputs, targets): the one shared batch (data seed 42), the cell's own
        augmented batch (data seed = the cell index), or its own N(0, 1) inputs (seed = the cell
        index) with the shared batch's labels."""
        shared = draw_batch(train, self.batch, seed=DATA_SEED, augment=True)

        def batch_for(cell: int) -> tuple[torch.Tensor, torch.Tensor]:
            if self.inputs == "fresh-batch":
                return draw_batch(train, self.batch, seed=cell, augment=True)
            if self.inputs == "gaussian":
                noise = torch.randn(shared[0].shape, generator=torch.Generator().manual_seed(cell))
                return noise.to(shared[0].device), shared[1]
            return shared

        return batch_for


def training_split(data_dir: Path, device: str) -> Any:
    if not (data_dir / "cifar-10-batches-py").is_dir():
        data_dir.mkdir(parents=True, exist_ok=True)
        print(f"writing CIFAR-10 to {data_dir} with {SHARED_DATA / 'make_cifar10.py'} ...")
        subprocess.run([sys.executable, str(SHARED_DATA / "make_cifar10.py"), str(data_dir)], check=True)
    return load_for_run("cifar10", str(data_dir), "train", device=device)


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


def measure(cells, benchmark, metrics, protocol: Protocol, train: Any, out: Path, device: str) -> None:
    batch_for = protocol.batches(train)
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.is_file()
    with open(out, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns(metrics))
        if new:
            writer.writeheader()
        for count, cell in enumerate(cells, 1):
            started = time.perf_counter()
            net = protocol.network(int(cell), device)
            values = score_run(net, *batch_for(int(cell)), metrics, "train").values
            row: dict[str, object] = {"index": int(cell), "accuracy": benchmark.accuracy(cell)}
            for name, result in values.items():
                row[name] = "" if result.value is None else repr(result.value)
                row[f"{name}_seconds"] = f"{result.seconds:.4f}"
            row["seconds"] = f"{time.perf_counter() - started:.4f}"
            writer.writerow(row)
            handle.flush()
            missing = [name for name, result in values.items() if result.missing and not get_metric(name).is_aggregate]
            note = f"; missing {', '.join(missing)}" if missing else ""
            print(f"[{count}/{len(cells)}] cell {int(cell)}: {row['seconds']} s{note}", flush=True)


def scores(chosen: list[dict[str, str]], name: str, missing_last: bool = False) -> np.ndarray:
    """A metric's column over the chosen rows; a set-level aggregate (az_nas) ranks these cells
    from its components, leaving out a cell that misses one (ntknas's rule) or, ``missing_last``,
    ranking the missing value below every other (its authors' −∞)."""
    def column(key: str) -> np.ndarray:
        values = np.array([float(row[key]) if row[key] else math.nan for row in chosen])
        return np.where(np.isnan(values), -np.inf, values) if missing_last else values

    components = get_metric(name).aggregate_of
    return log_rank_sum([column(c) for c in components]) if components else column(name)


def variants(metrics: list[str]) -> list[tuple[str, str, bool]]:
    """(label, metric, missing_last) per printed row: an aggregate also under its authors' rule."""
    rows = []
    for name in metrics:
        rows.append((name, name, False))
        if get_metric(name).is_aggregate:
            rows.append((f"{name}, missing last", name, True))
    return rows


def summarize(rows: dict[int, dict[str, str]], accuracy_of: dict[int, float], metrics: list[str], target: str) -> None:
    chosen = [rows[i] for i in sorted(accuracy_of) if i in rows]
    accuracy = np.array([accuracy_of[int(row["index"])] for row in chosen])
    print(f"\nSpearman ρ with {target} over {len(chosen)} cells (bootstrap 95 % CI); seconds per cell")
    print(f"{'metric':<11} {'ranks':<6} {'n':>5} {'ρ':>7}  {'95 % CI':<17} {'published':<54} {'s/cell':>7}")
    for label, name, missing_last in variants(metrics):
        values = scores(chosen, name, missing_last)
        seconds = np.array([float(row[f"{name}_seconds"]) for row in chosen])
        correlation = rank_correlation(values, accuracy)
        low, high = correlation.spearman_ci
        published, source = PUBLISHED.get(name, (math.nan, "—"))
        shown = "—" if math.isnan(published) else f"{published:.3f} {source}"
        direction = {True: "higher", False: "lower", None: "—"}[get_metric(name).higher_is_better]
        print(
            f"{label:<11} {direction:<6} {correlation.n:>5} {correlation.spearman:>+7.3f}  [{low:+.3f}, {high:+.3f}]"
            f"  {shown:<54} {np.mean(seconds) if len(seconds) else math.nan:>7.3f}"
        )
    totals = [float(row["seconds"]) for row in chosen]
    print(f"{'all':<11} {'':<6} {len(chosen):>5} {'':>7}  {'':<17} {'(build + every metric)':<54} "
          f"{np.mean(totals) if totals else math.nan:>7.3f}")


def compare(rows: dict[int, dict[str, str]], other: dict[int, dict[str, str]], accuracy_of: dict[int, float],
            metrics: list[str], target: str, resamples: int = 2000, seed: int = 0) -> None:
    """Paired Δρ = ρ(rows) − ρ(other) per metric over the cells both hold and both score."""
    shared = sorted(set(rows) & set(other) & set(accuracy_of))
    accuracy = np.array([accuracy_of[i] for i in shared])
    print(f"\npaired Δρ with {target}: this file minus the compared one, over their {len(shared)} shared cells "
          f"(paired bootstrap 95 % CI, {resamples} draws)")
    for label, name, missing_last in variants(metrics):
        first = scores([rows[i] for i in shared], name, missing_last)
        second = scores([other[i] for i in shared], name, missing_last)
        keep = np.isfinite(first) & np.isfinite(second)
        a, b, y = first[keep], second[keep], accuracy[keep]
        if a.size < 3:
            print(f"{label:<11} n={a.size}: too few cells")
            continue
        rho_a, rho_b = spearman(a, y), spearman(b, y)
        draws = np.random.default_rng(seed).integers(0, a.size, size=(resamples, a.size))
        boot = np.array([spearman(a[d], y[d]) - spearman(b[d], y[d]) for d in draws])
        low, high = percentile_interval(boot)
        print(f"{label:<11} n={a.size:>4}  ρ {rho_a:+.3f} vs {rho_b:+.3f}  Δρ {rho_a - rho_b:+.3f} [{low:+.3f}, {high:+.3f}]")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(stats.spearmanr(x, y).statistic)


if __name__ == "__main__":
    raise SystemExit(main())
