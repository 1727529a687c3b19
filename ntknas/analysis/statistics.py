"""Rank correlations with bootstrap confidence intervals, always signed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95
# Up to this many architectures the bootstrap runs over all resamples at once (O(n²) pairs each);
# above it, one resample at a time (O(n log n) each) is faster.
WHOLE_ARRAY_MAX_N = 300
_RANKS_PER_CHUNK = 2_000_000
BLOCK_ENTRIES = 4_000_000
"""Pair-matrix entries built at a time (cells × column block): bounds memory for large cell sets."""


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
    if n <= WHOLE_ARRAY_MAX_N:
        kendall_boot, spearman_boot = _bootstrap_whole_array(x, y, samples)
    else:
        kendall_boot, spearman_boot = _bootstrap_one_by_one(x, y, samples)
    return Correlation(
        n, kendall, spearman, percentile_interval(kendall_boot), percentile_interval(spearman_boot)
    )


def _bootstrap_one_by_one(x: np.ndarray, y: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kendall tau-b and Spearman rho of each resample (a row of ``samples``; NaN where a resample
    is constant), one scipy call at a time: O(n log n) each, the way for many architectures."""
    kendall_boot = np.empty(len(samples))
    spearman_boot = np.empty(len(samples))
    for i, rows in enumerate(samples):
        bx, by = x[rows], y[rows]
        if np.ptp(bx) == 0 or np.ptp(by) == 0:
            kendall_boot[i] = spearman_boot[i] = math.nan
            continue
        kendall_boot[i] = stats.kendalltau(bx, by).statistic
        spearman_boot[i] = _spearman_fast(bx, by)
    return kendall_boot, spearman_boot


def _bootstrap_whole_array(x: np.ndarray, y: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`_bootstrap_one_by_one` computes, for all resamples in whole-array operations:
    O(n²) per resample, but no per-call overhead (a scipy call costs ~1 ms, which dominated every
    small run's summary). Kendall's τ-b from each resample's multiplicities
    (:func:`weighted_kendall`); Spearman's ρ chunked so that the rank arrays stay near
    ``_RANKS_PER_CHUNK`` entries."""
    kendall_boot = np.clip(weighted_kendall(x, y, _multiplicities(samples)), -1.0, 1.0)
    chunk = max(1, _RANKS_PER_CHUNK // samples.shape[1])
    spearman_boot = np.empty(len(samples))
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant resample: 0/0, NaN as intended
        for start in range(0, len(samples), chunk):
            bx, by = x[samples[start : start + chunk]], y[samples[start : start + chunk]]
            rank_x = stats.rankdata(bx, axis=1)
            rank_y = stats.rankdata(by, axis=1)
            rank_x -= rank_x.mean(axis=1, keepdims=True)
            rank_y -= rank_y.mean(axis=1, keepdims=True)
            rho = (rank_x * rank_y).sum(axis=1) / np.sqrt((rank_x**2).sum(axis=1) * (rank_y**2).sum(axis=1))
            spearman_boot[start : start + chunk] = np.where(np.isfinite(rho), np.clip(rho, -1.0, 1.0), math.nan)
    return kendall_boot, spearman_boot


def _spearman_fast(x: np.ndarray, y: np.ndarray) -> float:
    rx = stats.rankdata(x)
    ry = stats.rankdata(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """How often each of ``n`` units appears in each of ``resamples`` draws with replacement
    (the draws :func:`rank_correlation` makes for the same seed)."""
    return _multiplicities(np.random.default_rng(seed).integers(0, n, size=(resamples, n)))


def _multiplicities(samples: np.ndarray) -> np.ndarray:
    """How often each of the n units appears in each row of ``samples`` (resamples × n positions)."""
    resamples, n = samples.shape
    flat = samples + n * np.arange(resamples)[:, None]
    return np.bincount(flat.ravel(), minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def weighted_kendall(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Kendall τ-b of (x, y) for each row of ``weights`` (unit multiplicities, e.g. bootstrap counts).

    A resample repeats cell i w_i times; its τ-b is wᵀCw / sqrt(wᵀXw · wᵀYw), with C_ij the
    concordance sign(x_i − x_j)·sign(y_i − y_j), X_ij = [x_i ≠ x_j] and Y_ij = [y_i ≠ y_j] (copies of
    one cell tie in both, so they add nothing anywhere). One matrix product per block of columns
    replaces a sort per resample. NaN where a resample is constant in x or y.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.size
    concordant = np.zeros(weights.shape[0])
    untied_x = np.zeros(weights.shape[0])
    untied_y = np.zeros(weights.shape[0])
    block = max(1, BLOCK_ENTRIES // max(n, 1))
    for start in range(0, n, block):
        columns = slice(start, min(n, start + block))
        dx = np.sign(x[:, None] - x[None, columns])
        dy = np.sign(y[:, None] - y[None, columns])
        local = weights[:, columns]
        concordant += np.einsum("rc,rc->r", weights @ (dx * dy), local)
        untied_x += np.einsum("rc,rc->r", weights @ (dx != 0), local)
        untied_y += np.einsum("rc,rc->r", weights @ (dy != 0), local)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = concordant / np.sqrt(untied_x * untied_y)
    tau[(untied_x == 0) | (untied_y == 0)] = math.nan
    return tau


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """The central 95 % of the finite values (NaN, NaN when none is finite)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (math.nan, math.nan)
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return (float(low), float(high))
