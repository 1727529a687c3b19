"""Fidelity of the matrix-free NTK metrics against the exact kernel, over NB201 cells.

For each cell (a seeded random sample of NAS-Bench-201, the study's network and initialization,
seed 42, one shared augmented CIFAR-10 training batch drawn with seed 42, train-mode BatchNorm):

1. the exact kernel K (B whole-batch backward passes), cached to ``--cache`` so a rerun or a
   second phase reuses it;
2. the matrix-free values of knas, trace, fnorm and lga at each estimator size in ``--probes``.

Then per metric and size: Kendall tau between the matrix-free and the exact values across the
cells, and each version's Kendall tau with test accuracy, with bootstrap 95 % intervals
(``ntknas.analysis.statistics``).

Two ways to get the matrix-free values (``--estimates``):

``network``
    the product's path: the network's own VJPs and JVPs (:func:`ntknas.kernel.matrix_free`), one
    run per cell and size — as a user would run it, but it repeats the forward and backward passes
    for every size.
``kernel``
    the same estimator code, with the same seeds, fed by a factor L of the cached exact kernel
    (K = L Lᵀ) instead of the network's Jacobian. The estimator only ever sees products with J and
    Jᵀ, and L gives the same products up to float rounding (tests/test_matrix_free.py checks both
    paths agree), so this measures the estimator's fidelity at every size for the price of one
    exact kernel per cell. ``--check-network N`` reruns the first N cells through the network path
    and prints the largest relative difference.

    python perf/matrix_free_fidelity.py --data-dir DIR --benchmark nb201_accuracies.csv \\
        --cells 200 --batch-size 64 --probes 8,12,16,20,24,32 --cache .devdata/fidelity

``--estimator xnys|hutch++`` and ``--estimator-seed S`` pick the estimator and its probes' seed (the
README's table is the lowest tau over seeds 0-3 of each).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ntknas.analysis.statistics import rank_correlation  # noqa: E402
from ntknas.groundtruth import load_benchmark  # noqa: E402
from ntknas.kernel import compute_ntk  # noqa: E402
from ntknas.metrics.ntk_metrics import (  # noqa: E402
    frobenius_norm,
    kernel_mean,
    kernel_trace,
    label_gradient_alignment,
)
from ntknas.metrics.registry import MetricUnavailable  # noqa: E402
from ntknas.scoring import study_batch  # noqa: E402
from ntknas.spaces import build_network  # noqa: E402
from ntknas.spaces.nb201 import arch_from_index  # noqa: E402

METRICS = ("knas", "trace", "fnorm", "lga")
NUM_ARCHS = 15625


def exact_values(kernel: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    formulas = {
        "knas": kernel_mean,
        "trace": kernel_trace,
        "fnorm": frobenius_norm,
        "lga": lambda k: label_gradient_alignment(k, labels),
    }
    return {name: _or_nan(formula, kernel) for name, formula in formulas.items()}


def _or_nan(formula, kernel: np.ndarray) -> float:
    """A metric the kernel does not define (e.g. LGA of a disconnected cell's constant kernel) is
    missing, as the product stores it; such cells drop out of the correlations pairwise."""
    try:
        return float(formula(kernel))
    except MetricUnavailable:
        return float("nan")


def cell_indices(count: int, seed: int) -> list[int]:
    """A seeded random sample, in random order: any prefix of it is a random sample too (a run cut
    short by time still measures an unbiased set of cells)."""
    return [int(i) for i in np.random.default_rng(seed).choice(NUM_ARCHS, size=count, replace=False)]


def build(index: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # the study's model seed, set before building each network
    return build_network("nb201", arch_from_index(index), 10)


def exact_phase(indices: list[int], inputs: torch.Tensor, cache: Path, bn_mode: str, seed: int) -> None:
    for done, index in enumerate(indices):
        path = cache / f"exact_{bn_mode}_{index}.npz"
        if path.exists():
            continue
        net = build(index, seed)
        result = compute_ntk(net, inputs, bn_mode=bn_mode)
        np.savez(path.with_suffix(".tmp.npz"), kernel=result.kernel.numpy(), seconds=result.seconds)
        path.with_suffix(".tmp.npz").rename(path)
        print(f"exact {done + 1}/{len(indices)} index {index}: {result.seconds:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder holding cifar-10-batches-py")
    parser.add_argument("--benchmark", required=True, help="nb201_accuracies.csv (or the official .pth)")
    parser.add_argument("--target", default=None, help="accuracy column (default the study's cifar10_valid_test)")
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--cell-seed", type=int, default=0, help="seed of the random sample of cells")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--bn", default="train", choices=["train", "eval"])
    parser.add_argument("--seed", type=int, default=42, help="model and data seed (the study's)")
    parser.add_argument("--probes", default="4,8,16,32,64", help="estimator sizes to compare")
    parser.add_argument("--estimator-seed", type=int, default=0)
    parser.add_argument("--estimator", default="xnys", choices=["xnys", "hutch++"])
    parser.add_argument("--estimates", default="kernel", choices=["kernel", "network"])
    parser.add_argument("--check-network", type=int, default=0, help="cells rerun through the network path")
    parser.add_argument("--cache", default=".devdata/fidelity")
    parser.add_argument("--exact-only", action="store_true", help="only fill the exact-kernel cache")
    parser.add_argument("--shard", default="0/1",
                        help="K/N: this process fills the cache for every N-th cell from the K-th (run N at once)")
    parser.add_argument("--cached-only", action="store_true",
                        help="compute no exact kernel: compare on the cells already cached (e.g. while "
                             "an --exact-only run is still filling the cache)")
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    indices = cell_indices(args.cells, args.cell_seed)
    inputs, targets = study_batch("cifar10", args.data_dir, batch_size=args.batch_size, seed=args.seed)
    labels = targets.numpy()
    if not args.cached_only:
        shard, shards = (int(part) for part in args.shard.split("/"))
        exact_phase(indices[shard::shards], inputs, cache, args.bn, args.seed)
    if args.exact_only:
        return
    estimate_phase(args, indices, inputs, targets, labels, cache)


def estimate_phase(
    args: argparse.Namespace,
    indices: list[int],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    labels: np.ndarray,
    cache: Path,
) -> None:
    from ntknas.kernel.matrix_free import EstimatorSettings, FactorOperator, estimate_kernel
    from ntknas.metrics.ntk_metrics import metrics_from_estimates
    from ntknas.scoring import run_metrics

    def via_kernel(kernel: np.ndarray, settings: EstimatorSettings) -> dict[str, float]:
        estimates = estimate_kernel(FactorOperator.from_kernel(torch.from_numpy(kernel)), targets, settings)
        try:
            return {name: value for name, (value, _) in metrics_from_estimates(estimates, labels).items()}
        except MetricUnavailable:  # LGA of a constant kernel; the other three stay defined
            # a zero kernel (a disconnected cell) has trace and fnorm 0, as the exact values do
            trace, frobenius_sq = estimates.trace, estimates.frobenius_sq
            return {"knas": estimates.mean, "trace": float("nan") if trace is None else trace,
                    "fnorm": float("nan") if frobenius_sq is None else float(np.sqrt(frobenius_sq)),
                    "lga": float("nan")}

    def via_network(index: int, settings: EstimatorSettings) -> dict[str, float]:
        run = run_metrics(build(index, args.seed), inputs, targets, METRICS, args.bn, kernel="matrix-free",
                          estimator=settings)
        return {name: float("nan") if v.value is None else v.value for name, v in run.values.items()}

    benchmark = load_benchmark(args.benchmark, "nb201", args.target)
    sizes = [int(s) for s in args.probes.split(",")]
    exact: dict[str, list[float]] = {m: [] for m in METRICS}
    approx: dict[int, dict[str, list[float]]] = {s: {m: [] for m in METRICS} for s in sizes}
    accuracy: list[float] = []
    exact_seconds: list[float] = []
    approx_seconds: dict[int, list[float]] = {s: [] for s in sizes}
    available = [i for i in indices if (cache / f"exact_{args.bn}_{i}.npz").exists()]
    if len(available) < len(indices):
        print(f"# {len(indices) - len(available)} of {len(indices)} cells have no exact kernel yet: "
              f"using the {len(available)} that do")
    indices = available
    for index in indices:
        with np.load(cache / f"exact_{args.bn}_{index}.npz") as stored:
            kernel, seconds = stored["kernel"], float(stored["seconds"])
        exact_seconds.append(seconds)
        for name, value in exact_values(kernel, labels).items():
            exact[name].append(value)
        accuracy.append(benchmark.accuracy(benchmark.keys()[index]))
        for size in sizes:
            settings = EstimatorSettings(probes=size, seed=args.estimator_seed, estimator=args.estimator)
            start = time.perf_counter()
            values = via_kernel(kernel, settings) if args.estimates == "kernel" else via_network(index, settings)
            approx_seconds[size].append(time.perf_counter() - start)
            for name in METRICS:
                approx[size][name].append(values[name])
    if args.check_network:
        worst = 0.0
        for index in indices[: args.check_network]:
            with np.load(cache / f"exact_{args.bn}_{index}.npz") as stored:
                kernel = stored["kernel"]
            for size in sizes:
                settings = EstimatorSettings(probes=size, seed=args.estimator_seed, estimator=args.estimator)
                from_kernel, from_net = via_kernel(kernel, settings), via_network(index, settings)
                for name in METRICS:
                    a, b = from_kernel[name], from_net[name]
                    worst = max(worst, abs(a - b) / max(abs(b), 1e-30))
        print(f"# network path vs kernel path on {args.check_network} cells x {len(sizes)} sizes: "
              f"largest relative difference {worst:.1e}")
    report(args, indices, exact, approx, np.asarray(accuracy), exact_seconds, approx_seconds)


def report(
    args: argparse.Namespace,
    indices: list[int],
    exact: dict[str, list[float]],
    approx: dict[int, dict[str, list[float]]],
    accuracy: np.ndarray,
    exact_seconds: list[float],
    approx_seconds: dict[int, list[float]],
) -> None:
    print(f"# matrix-free fidelity: {len(indices)} NB201 cells (seeded sample {args.cell_seed}), CIFAR-10, "
          f"B={args.batch_size}, BN {args.bn}, estimates via {args.estimates}, {args.estimator} estimator, "
          f"estimator seed {args.estimator_seed}")
    print(f"# exact kernel: median {np.median(exact_seconds):.1f} s per cell (cached)")
    print(f"{'metric':<7}{'probes':>7}{'tau(mf,exact)':>15}{'tau(exact,acc) [95% CI]':>28}"
          f"{'tau(mf,acc) [95% CI]':>28}{'median rel.err':>16}")
    rows = []
    for name in METRICS:
        truth = np.asarray(exact[name])
        exact_corr = rank_correlation(truth, accuracy)
        for size in sorted(approx):
            values = np.asarray(approx[size][name])
            agree = rank_correlation(values, truth, resamples=1).kendall
            corr = rank_correlation(values, accuracy)
            with np.errstate(divide="ignore", invalid="ignore"):  # a disconnected cell's zero kernel
                error = float(np.nanmedian(np.abs(values - truth) / np.abs(truth)))
            print(f"{name:<7}{size:>7}{agree:>15.4f}"
                  f"{_tau(exact_corr.kendall, exact_corr.kendall_ci):>28}{_tau(corr.kendall, corr.kendall_ci):>28}"
                  f"{error:>16.2e}", flush=True)
            rows.append({"metric": name, "probes": size, "tau_mf_exact": agree, "tau_exact_acc": exact_corr.kendall,
                         "tau_mf_acc": corr.kendall, "median_rel_error": error})
    for name in METRICS:
        ok = [r["probes"] for r in rows if r["metric"] == name and r["tau_mf_exact"] >= 0.95]
        print(f"# {name}: smallest size with tau(mf, exact) >= 0.95: {min(ok) if ok else 'none'}")
    (Path(args.cache) / f"fidelity_{args.bn}_{args.estimates}_{args.estimator}.json").write_text(json.dumps(rows, indent=1))


def _tau(value: float, interval: tuple[float, float]) -> str:
    return f"{value:+.3f} [{interval[0]:+.3f}, {interval[1]:+.3f}]"


if __name__ == "__main__":
    main()
