"""NTK metrics on hand-computed kernels, and the registry's behaviour."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from ntknas import NtknasError, available_metrics, evaluate_metrics, score
from ntknas.metrics import MetricUnavailable, get_metric
from ntknas.metrics.ntk_metrics import (
    condition_number,
    condition_number_reference,
    default_eigen_cutoff,
    eigenvalues,
    frobenius_norm,
    kernel_mean,
    kernel_trace,
    label_gradient_alignment,
    numerical_rank,
)

# K = [[2, 1], [1, 2]]: eigenvalues 1 and 3.
K2 = np.array([[2.0, 1.0], [1.0, 2.0]])


def test_hand_computed_two_by_two():
    assert kernel_mean(K2) == 1.5
    assert frobenius_norm(K2) == pytest.approx(math.sqrt(10))
    assert kernel_trace(K2) == 4.0
    assert eigenvalues(K2) == pytest.approx([1.0, 3.0])
    assert condition_number(eigenvalues(K2), 1e-6) == pytest.approx(3.0)


def test_lga_hand_computed():
    # Labels (0, 0, 1): Y = [[1,1,-1],[1,1,-1],[-1,-1,1]], mean ȳ = 1/9.
    kernel = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    labels = np.array([0, 0, 1])
    y = np.array([[1, 1, -1], [1, 1, -1], [-1, -1, 1]], dtype=float)
    kc, yc = kernel - kernel.mean(), y - y.mean()
    expected = (kc * yc).sum() / (np.linalg.norm(kc) * np.linalg.norm(yc))
    assert label_gradient_alignment(kernel, labels) == pytest.approx(expected)
    # A kernel that IS the label matrix aligns perfectly; its negation anti-aligns.
    assert label_gradient_alignment(y, labels) == pytest.approx(1.0)
    assert label_gradient_alignment(-y, labels) == pytest.approx(-1.0)


def test_lga_undefined_cases_are_missing_not_numbers():
    with pytest.raises(MetricUnavailable, match="two classes"):
        label_gradient_alignment(K2, np.array([1, 1]))
    with pytest.raises(MetricUnavailable, match="constant"):
        label_gradient_alignment(np.ones((2, 2)), np.array([0, 1]))


def test_condition_number_floors_float_noise_eigenvalues_at_the_cutoff():
    # Rank-2 kernel of a 4-sample batch plus float32-sized noise in the null space (see docs/protocol.md, "Metrics").
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
    spectrum = np.array([1e-12, -1e-12, 2.0, 10.0])
    kernel = basis @ np.diag(spectrum) @ basis.T
    values = eigenvalues(kernel)
    cutoff = default_eigen_cutoff(4)
    assert numerical_rank(values, cutoff) == 2
    # λ_min is floored at cutoff·λ_max: a singular kernel gets the worst finite value 1/cutoff,
    # worse than any full-rank kernel of the batch, never the flattering 10/2 of its nonzero part.
    assert condition_number(values, cutoff) == pytest.approx(1 / cutoff)
    full_rank = basis @ np.diag([0.5, 1.0, 2.0, 10.0]) @ basis.T
    assert condition_number(eigenvalues(full_rank), cutoff) == pytest.approx(20.0)
    assert condition_number(eigenvalues(full_rank), cutoff) < condition_number(values, cutoff)
    # The reference behaviour divides by the noise: a huge or negative number.
    assert abs(condition_number_reference(kernel)) > 1e6
    # Above the floor, tenas is the plain λ_max / λ_min, as the reference computes it.
    assert condition_number(eigenvalues(full_rank), cutoff) == pytest.approx(condition_number_reference(full_rank), rel=1e-5)


def test_identical_images_give_the_worst_tenas_and_rank_one():
    # Four identical images: every row of J is the same, K has rank 1. The smallest eigenvalue
    # above the cutoff would give tenas = 1, the best possible score; floored, it is the worst.
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3),
    )
    x = torch.randn(1, 3, 8, 8).repeat(4, 1, 1, 1)
    y = torch.tensor([0, 1, 2, 0])
    values = score(net, x, y, metrics=("tenas", "ntk_rank"), bn_mode="eval")
    assert values["ntk_rank"] == 1
    assert values["tenas"] == pytest.approx(1 / default_eigen_cutoff(4), rel=1e-9)
    distinct = score(net, torch.randn(4, 3, 8, 8), y, metrics=("tenas", "ntk_rank"), bn_mode="eval")
    assert distinct["tenas"] < values["tenas"]


def test_condition_number_of_zero_kernel_is_missing():
    with pytest.raises(MetricUnavailable):
        condition_number(eigenvalues(np.zeros((3, 3))), 1e-6)


def test_registry_lists_and_directions():
    names = available_metrics()
    for name in ("knas", "tenas", "fnorm", "trace", "lga"):
        assert name in names
    assert get_metric("tenas").higher_is_better is False
    assert get_metric("lga").higher_is_better is True
    with pytest.raises(NtknasError, match="available metrics"):
        get_metric("accuracy")


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    net.add_module("classifier", nn.Linear(4, 3))
    return net


def test_score_matches_pure_functions_on_the_engine_kernel():
    from ntknas import empirical_ntk

    net, x, y = _net(), torch.randn(6, 3, 6, 6), torch.tensor([0, 1, 2, 0, 1, 2])
    values = score(net, x, y, metrics=("knas", "fnorm", "trace", "lga", "tenas"))
    kernel = empirical_ntk(net, x, bn_mode="train").numpy()
    assert values["knas"] == pytest.approx(kernel.mean())
    assert values["fnorm"] == pytest.approx(np.linalg.norm(kernel))
    assert values["trace"] == pytest.approx(np.trace(kernel))
    assert values["lga"] == pytest.approx(label_gradient_alignment(kernel, y.numpy()))


def test_non_finite_kernel_is_missing_with_reason():
    net = _net()
    with torch.no_grad():
        net[0].weight.fill_(float("nan"))
    results = evaluate_metrics(net, torch.randn(4, 3, 6, 6), torch.tensor([0, 1, 0, 1]), "knas,lga")
    for result in results.values():
        assert result.value is None and "non-finite" in result.reason


def test_mismatched_targets_is_a_one_line_error():
    with pytest.raises(NtknasError, match="one label per image"):
        evaluate_metrics(_net(), torch.randn(4, 3, 6, 6), torch.tensor([0, 1]), "knas")
