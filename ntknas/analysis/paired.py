"""Paired comparisons: two Kendall τ over the same architectures, two sets of search runs.

A paired bootstrap resamples the shared units once and recomputes both statistics on that same
resample, so what the two have in common (the same cells, the same run seeds) cancels out of their
difference instead of widening two separate intervals that are then compared by eye.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ntknas.analysis.statistics import BOOTSTRAP_RESAMPLES, percentile_interval

BLOCK_ENTRIES = 4_000_000
"""Pair-matrix entries built at a time (cells × column block): bounds memory for large cell sets."""


@dataclass(frozen=True)
class PairedTau:
    """Kendall τ-b of two scores with one accuracy over the ``n`` cells where all three are finite,
    each τ multiplied by its score's ranking direction, and their difference ``first − second``."""

    n: int
    first: float
    second: float
    delta: float
    delta_ci: tuple[float, float]


@dataclass(frozen=True)
class MeanDifference:
    """Mean of ``first`` minus mean of ``second`` with a bootstrap 95 % interval; ``paired`` when
    the two were resampled together (the same run seeds on both sides)."""

    n_first: int
    n_second: int
    first_mean: float
    second_mean: float
    delta: float
    delta_ci: tuple[float, float]
    paired: bool


def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """How often each of ``n`` units appears in each of ``resamples`` draws with replacement
    (the draws :func:`ntknas.analysis.statistics.rank_correlation` makes for the same seed)."""
    rows = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    flat = rows + n * np.arange(resamples)[:, None]
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


def paired_kendall(
    first: np.ndarray,
    second: np.ndarray,
    accuracy: np.ndarray,
    *,
    first_sign: float = 1.0,
    second_sign: float = 1.0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> PairedTau:
    """Δτ = sign₁·τ(first, accuracy) − sign₂·τ(second, accuracy) over the cells where all three are
    finite, with a paired percentile bootstrap: cells are resampled once per draw (``resamples``
    draws, seeded) and both τ recomputed on that same resample. Signs put each score in its own
    ranking direction (−1 for a score that ranks by lower values). Fewer than 3 cells gives NaN."""
    a, b, acc = (np.asarray(v, dtype=np.float64) for v in (first, second, accuracy))
    keep = np.isfinite(a) & np.isfinite(b) & np.isfinite(acc)
    a, b, acc = a[keep], b[keep], acc[keep]
    n = int(keep.sum())
    if n < 3:
        return PairedTau(n, math.nan, math.nan, math.nan, (math.nan, math.nan))
    ones = np.ones((1, n))
    tau_a = first_sign * float(weighted_kendall(a, acc, ones)[0])
    tau_b = second_sign * float(weighted_kendall(b, acc, ones)[0])
    counts = resample_counts(n, resamples, seed)
    delta = first_sign * weighted_kendall(a, acc, counts) - second_sign * weighted_kendall(b, acc, counts)
    return PairedTau(n, tau_a, tau_b, tau_a - tau_b, percentile_interval(delta))


def mean_difference(
    first: np.ndarray,
    second: np.ndarray,
    *,
    paired: bool,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> MeanDifference:
    """mean(first) − mean(second) with a percentile bootstrap interval, the test for a handful of
    runs: ``paired`` (equal lengths, element i of both from the same run seed) resamples the
    per-seed differences; otherwise each side is resampled on its own. NaN values are dropped
    (pairs with one NaN too). An empty side gives NaN."""
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    if paired:
        if a.shape != b.shape:
            raise ValueError(f"paired samples need equal lengths, got {a.size} and {b.size}")
        keep = np.isfinite(a) & np.isfinite(b)
        a, b = a[keep], b[keep]
    else:
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return MeanDifference(a.size, b.size, math.nan, math.nan, math.nan, (math.nan, math.nan), paired)
    rng = np.random.default_rng(seed)
    if paired:
        rows = rng.integers(0, a.size, size=(resamples, a.size))
        draws = (a - b)[rows].mean(axis=1)
    else:
        draws = (a[rng.integers(0, a.size, size=(resamples, a.size))].mean(axis=1)
                 - b[rng.integers(0, b.size, size=(resamples, b.size))].mean(axis=1))
    return MeanDifference(a.size, b.size, float(a.mean()), float(b.mean()), float(a.mean() - b.mean()),
                          percentile_interval(draws), paired)
