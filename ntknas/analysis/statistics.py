"""Rank correlations with bootstrap confidence intervals, always signed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Correlation:
    """Kendall tau and Spearman rho of one metric with accuracy over ``n`` architectures."""

    n: int
    kendall: float
    spearman: float
    kendall_ci: tuple[float, float]
    spearman_ci: tuple[float, float]


def rank_correlation(
    metric: np.ndarray,
    accuracy: np.ndarray,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> Correlation:
    """Signed Kendall tau-b and Spearman rho over pairs where both values are finite.

    Confidence intervals are percentile bootstraps over architectures (resampled with
    replacement, ``resamples`` times, seeded). Fewer than 3 pairs, or a constant column, gives NaN.
    """
    metric = np.asarray(metric, dtype=np.float64)
    accuracy = np.asarray(accuracy, dtype=np.float64)
    keep = np.isfinite(metric) & np.isfinite(accuracy)
    x, y = metric[keep], accuracy[keep]
    n = int(keep.sum())
    nan_ci = (math.nan, math.nan)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(n, math.nan, math.nan, nan_ci, nan_ci)
    kendall = float(stats.kendalltau(x, y).statistic)
    spearman = float(stats.spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, n, size=(resamples, n))
    kendall_boot = np.empty(resamples)
    spearman_boot = np.empty(resamples)
    for i, rows in enumerate(samples):
        bx, by = x[rows], y[rows]
        if np.ptp(bx) == 0 or np.ptp(by) == 0:
            kendall_boot[i] = spearman_boot[i] = math.nan
            continue
        kendall_boot[i] = stats.kendalltau(bx, by).statistic
        spearman_boot[i] = _spearman_fast(bx, by)
    return Correlation(
        n, kendall, spearman, percentile_interval(kendall_boot), percentile_interval(spearman_boot)
    )


def _spearman_fast(x: np.ndarray, y: np.ndarray) -> float:
    rx = stats.rankdata(x)
    ry = stats.rankdata(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """The central 95 % of the finite values (NaN, NaN when none is finite)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (math.nan, math.nan)
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return (float(low), float(high))
