"""Set-level metrics that combine per-network metrics by their ranks across the networks (no torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def log_rank_sum(columns: Sequence[Sequence[float] | np.ndarray]) -> np.ndarray:
    """Σ over columns of log(rank/N): AZ-NAS's aggregate of its components.

    Each column holds one component's values for the same N networks; ranks are ascending
    (the largest value has rank N, so every component counts as higher-is-better), ties get
    their average rank (``scipy.stats.rankdata``'s default, as the authors'). A network with a
    missing (NaN) value in any column gets NaN and is left out of the ranking: N counts the
    networks with every value.
    """
    table = np.asarray([np.asarray(column, dtype=np.float64) for column in columns])
    if table.ndim != 2:
        raise ValueError("log_rank_sum takes columns of equal length")
    result = np.full(table.shape[1], np.nan)
    complete = ~np.isnan(table).any(axis=0)
    count = int(complete.sum())
    if count == 0:
        return result
    ranks = np.array([stats.rankdata(column[complete]) for column in table])
    result[complete] = np.log(ranks / count).sum(axis=0)
    return result
