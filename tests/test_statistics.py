import math

import numpy as np
import pytest
from scipy import stats

from ntknas.analysis import statistics
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


def test_whole_array_bootstrap_hand_computed():
    x, y = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])
    samples = np.array([[0, 1, 2], [0, 0, 2], [1, 1, 1]])
    kendall, spearman = statistics._bootstrap_whole_array(x, y, samples)
    # [0,1,2]: pairs (1,3)(1,2) concordant, (3,2) discordant: tau (2-1)/3; ranks 1,2,3 vs 1,3,2: rho 1/2.
    # [0,0,2]: x 1,1,3 and y 1,1,2: one pair tied in both, two concordant: tau 2/sqrt(2·2) = 1; rho 1.
    # [1,1,1]: constant: no correlation.
    np.testing.assert_allclose(kendall[:2], [1 / 3, 1.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(spearman[:2], [0.5, 1.0], rtol=0, atol=1e-15)
    assert math.isnan(kendall[2]) and math.isnan(spearman[2])


@pytest.mark.parametrize("n", [3, 7, 24, 61])
def test_whole_array_bootstrap_equals_one_scipy_call_per_resample(n):
    """Ties (repeated values, and the repeats every resample draws) and constant resamples included."""
    rng = np.random.default_rng(n)
    x = rng.integers(0, max(2, n // 3), size=n).astype(float)
    y = x + rng.normal(size=n).round(1)
    samples = rng.integers(0, n, size=(300, n))
    samples[:3] = 0  # constant resamples
    fast = statistics._bootstrap_whole_array(x, y, samples)
    slow = statistics._bootstrap_one_by_one(x, y, samples)
    for vectorized, reference in zip(fast, slow):
        assert np.array_equal(np.isnan(vectorized), np.isnan(reference)) and np.isnan(reference[:3]).all()
        np.testing.assert_allclose(vectorized, reference, rtol=0, atol=1e-12)


def test_chunked_bootstrap_equals_one_chunk(monkeypatch):
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=30), rng.normal(size=30)
    samples = rng.integers(0, 30, size=(50, 30))
    whole = statistics._bootstrap_whole_array(x, y, samples)
    monkeypatch.setattr(statistics, "_RANKS_PER_CHUNK", 60)  # 30 ranks a resample: chunks of 2
    for chunked, reference in zip(statistics._bootstrap_whole_array(x, y, samples), whole):
        np.testing.assert_array_equal(chunked, reference)


def test_both_bootstrap_paths_give_the_same_intervals(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    whole = rank_correlation(x, y)
    monkeypatch.setattr(statistics, "WHOLE_ARRAY_MAX_N", 10)
    one_by_one = rank_correlation(x, y)
    assert whole.kendall == one_by_one.kendall and whole.spearman == one_by_one.spearman
    np.testing.assert_allclose(whole.kendall_ci, one_by_one.kendall_ci, rtol=0, atol=1e-12)
    np.testing.assert_allclose(whole.spearman_ci, one_by_one.spearman_ci, rtol=0, atol=1e-12)


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
