import math

import numpy as np
import pytest
from scipy import stats

from ntknas.analysis.statistics import rank_correlation
from ntknas.errors import InvalidArchError
from ntknas.inputs.selection import select_positions


def test_matches_scipy_and_keeps_sign():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    y = -x + 0.5 * rng.normal(size=60)
    result = rank_correlation(x, y)
    assert result.n == 60
    assert result.kendall == pytest.approx(stats.kendalltau(x, y).statistic)
    assert result.spearman == pytest.approx(stats.spearmanr(x, y).statistic)
    assert result.kendall < 0 and result.spearman < 0
    assert result.kendall_ci[0] <= result.kendall <= result.kendall_ci[1]
    assert result.spearman_ci[0] <= result.spearman <= result.spearman_ci[1]


def test_missing_values_are_dropped_pairwise():
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    y = np.array([1.0, 2.0, 3.0, np.inf, 5.0])
    assert rank_correlation(x, y).n == 3
    assert rank_correlation(x, y).kendall == pytest.approx(1.0)


def test_degenerate_inputs_give_nan_not_numbers():
    assert math.isnan(rank_correlation(np.ones(5), np.arange(5.0)).kendall)
    assert math.isnan(rank_correlation(np.arange(2.0), np.arange(2.0)).spearman)


def test_selection_ranges_lists_and_samples():
    assert select_positions(10, "2:5", None, 0) == [2, 3, 4]
    assert select_positions(10, ":3,7", None, 0) == [0, 1, 2, 7]
    assert select_positions(10, "all", None, 0) == list(range(10))
    sample = select_positions(100, None, 5, seed=3)
    assert len(set(sample)) == 5 and sample == select_positions(100, None, 5, seed=3)
    assert sample != select_positions(100, None, 5, seed=4)
    assert set(select_positions(100, "0:10", 4, 0)) <= set(range(10))
    for bad in ("5:2", "x", "10", "0:11"):
        with pytest.raises(InvalidArchError):
            select_positions(10, bad, None, 0)
    with pytest.raises(InvalidArchError, match="more than"):
        select_positions(10, None, 11, 0)
