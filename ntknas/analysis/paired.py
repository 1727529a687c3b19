"""Paired comparisons: two Kendall τ over the same architectures, two sets of search runs.

A paired bootstrap resamples the shared units once and recomputes both statistics on that same
resample, so what the two have in common (the same cells, the same run seeds) cancels out of their
difference instead of widening two separate intervals that are then compared by eye.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ntknas.analysis.statistics import BOOTSTRAP_RESAMPLES, percentile_interval, resample_counts, weighted_kendall

__all__ = ["MeanDifference", "PairedTau", "mean_difference", "paired_kendall", "resample_counts", "weighted_kendall"]


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
