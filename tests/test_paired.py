"""Paired statistics: the vectorized weighted Kendall τ against scipy on explicit resamples, a
hand-computed case, the paired Δτ and the mean difference of search runs against slow loops."""

import math
import time

import numpy as np
import pytest
from scipy import stats

from ntknas.analysis import mean_difference, paired_kendall, rank_correlation
from ntknas.analysis.paired import resample_counts, weighted_kendall


def test_weighted_kendall_equals_scipy_on_each_resample_with_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, 40).astype(float)  # many ties in x
    y = rng.normal(size=40)
    y[:6] = y[6]  # ties in y too
    counts = resample_counts(40, 25, seed=5)
    rows = np.random.default_rng(5).integers(0, 40, size=(25, 40))  # the same draws, as index rows
    expected = [stats.kendalltau(x[r], y[r]).statistic for r in rows]
    assert weighted_kendall(x, y, counts) == pytest.approx(expected, abs=1e-12)


def test_weighted_kendall_by_hand():
    # x = (1, 2, 3), y = (1, 3, 2): pairs (1,2) and (1,3) concordant, (2,3) discordant: τ = (2 − 1) / 3.
    x, y = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])
    assert weighted_kendall(x, y, np.ones((1, 3)))[0] == pytest.approx(1 / 3)
    # cell 0 twice: its copies tie in both; pairs of distinct cells: (0,1)×2 and (0,2)×2 concordant,
    # (1,2) discordant: 4 − 1 = 3 of 5 untied pairs in x and in y.
    assert weighted_kendall(x, y, np.array([[2.0, 1.0, 1.0]]))[0] == pytest.approx(3 / 5)
    assert math.isnan(weighted_kendall(x, y, np.array([[3.0, 0.0, 0.0]]))[0])  # one cell only: constant


def test_paired_delta_is_the_difference_of_taus_on_shared_resamples():
    rng = np.random.default_rng(0)
    accuracy = rng.normal(size=60)
    good = accuracy + 0.3 * rng.normal(size=60)
    poor = -(accuracy + 2.0 * rng.normal(size=60))  # ranks by lower values
    poor[4] = math.nan  # dropped from both
    result = paired_kendall(good, poor, accuracy, second_sign=-1.0, resamples=200, seed=1)
    keep = np.isfinite(poor)
    assert result.n == 59
    assert result.first == pytest.approx(stats.kendalltau(good[keep], accuracy[keep]).statistic)
    assert result.second == pytest.approx(-stats.kendalltau(poor[keep], accuracy[keep]).statistic)
    rows = np.random.default_rng(1).integers(0, 59, size=(200, 59))
    a, b, acc = good[keep], -poor[keep], accuracy[keep]
    slow = [stats.kendalltau(a[r], acc[r]).statistic - stats.kendalltau(b[r], acc[r]).statistic for r in rows]
    assert result.delta_ci == pytest.approx(tuple(np.percentile(slow, [2.5, 97.5])), abs=1e-12)
    assert result.delta_ci[0] > 0  # the good score is better beyond the paired interval


def test_pairing_sees_a_difference_two_separate_intervals_cannot():
    rng = np.random.default_rng(2)
    accuracy = rng.normal(size=150)
    base = accuracy + rng.normal(size=150)
    better = base + 0.15 * (accuracy - base)  # the same noise, a little less of it
    result = paired_kendall(better, base, accuracy)
    assert result.delta > 0 and result.delta_ci[0] > 0
    separate = [rank_correlation(score, accuracy).kendall_ci for score in (better, base)]
    assert separate[0][0] < separate[1][1]  # the two unpaired intervals overlap


def test_a_thousand_cells_take_seconds_not_minutes():
    rng = np.random.default_rng(4)
    accuracy = rng.normal(size=1000)
    started = time.perf_counter()
    result = paired_kendall(accuracy + rng.normal(size=1000), accuracy + rng.normal(size=1000), accuracy)
    assert time.perf_counter() - started < 20
    assert result.n == 1000 and math.isfinite(result.delta_ci[0])


def test_mean_difference_paired_and_unpaired_against_slow_loops():
    first = np.array([90.1, 89.5, 91.0, 90.7, 88.9])
    second = np.array([89.0, 89.4, 90.2, 90.1, 88.0])
    paired = mean_difference(first, second, paired=True, resamples=300, seed=2)
    rows = np.random.default_rng(2).integers(0, 5, size=(300, 5))
    slow = [(first[r] - second[r]).mean() for r in rows]
    assert paired.delta == pytest.approx(first.mean() - second.mean())
    assert paired.delta_ci == pytest.approx(tuple(np.percentile(slow, [2.5, 97.5])))
    assert paired.paired and paired.delta_ci[0] > 0  # every seed's difference is positive
    unpaired = mean_difference(first, second[:4], paired=False, resamples=300, seed=2)
    assert not unpaired.paired and (unpaired.n_first, unpaired.n_second) == (5, 4)
    assert unpaired.delta_ci[1] - unpaired.delta_ci[0] > paired.delta_ci[1] - paired.delta_ci[0]
    with pytest.raises(ValueError):
        mean_difference(first, second[:4], paired=True)
    assert math.isnan(mean_difference(first, np.array([math.nan]), paired=False).delta)
