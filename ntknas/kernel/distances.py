"""Distances between two kernels of the same images (see docs/protocol.md, "Experiment 3"): how far training moved Θ_t
from the initial kernel Θ_0. Pure functions of two arrays."""

from __future__ import annotations

import math
from typing import Any

import torch

from ntknas.errors import NtknasError

REFERENCE_EPSILON = 1e-4
"""The reference implementation's guard against division by zero in the element-wise ratio."""




def _pair(theta_0: Any, theta_t: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.as_tensor(theta_0, dtype=torch.float64)
    b = torch.as_tensor(theta_t, dtype=torch.float64, device=a.device)
    if a.shape != b.shape:
        raise NtknasError(
            f"kernels of different shapes {tuple(a.shape)} and {tuple(b.shape)}: compare kernels of the same images"
        )
    return a, b


def relative_difference_reference(theta_0: Any, theta_t: Any, epsilon: float = REFERENCE_EPSILON) -> float:
    """‖ |Θ_0 − Θ_t| ⊘ (|Θ_0| + ε) ‖_F, the element-wise form the reference implementation reported.

    Entries of Θ_0 near zero dominate it (each is divided by about ε), so it measures the change
    of the small entries far more than that of the kernel as a whole.
    """
    a, b = _pair(theta_0, theta_t)
    return float(torch.linalg.vector_norm((a - b).abs() / (a.abs() + epsilon)))


def relative_difference(theta_0: Any, theta_t: Any) -> float:
    """‖Θ_t − Θ_0‖_F / ‖Θ_0‖_F; NaN when Θ_0 is zero."""
    a, b = _pair(theta_0, theta_t)
    scale = float(torch.linalg.vector_norm(a))
    if scale == 0.0:
        return math.nan
    return float(torch.linalg.vector_norm(b - a)) / scale


def kernel_correlation(theta_0: Any, theta_t: Any) -> float:
    """Pearson correlation of the entries of Θ_0 and Θ_t; NaN when either has constant entries."""
    a, b = _pair(theta_0, theta_t)
    x = a.reshape(-1) - a.mean()
    y = b.reshape(-1) - b.mean()
    denominator = float(torch.linalg.vector_norm(x)) * float(torch.linalg.vector_norm(y))
    if denominator == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float(x @ y) / denominator))  # rounding can step past ±1


def kernel_cosine(theta_0: Any, theta_t: Any) -> float:
    """⟨Θ_0, Θ_t⟩_F / (‖Θ_0‖_F ‖Θ_t‖_F); NaN when either kernel is zero."""
    a, b = _pair(theta_0, theta_t)
    denominator = float(torch.linalg.vector_norm(a)) * float(torch.linalg.vector_norm(b))
    if denominator == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float((a * b).sum()) / denominator))  # Cauchy–Schwarz bound


def kernel_distances(theta_0: Any, theta_t: Any) -> dict[str, float]:
    """All four kernel distances, by name (the track run's kernel quantities)."""
    return {
        "rel_diff_ref": relative_difference_reference(theta_0, theta_t),
        "rel_diff": relative_difference(theta_0, theta_t),
        "kernel_corr": kernel_correlation(theta_0, theta_t),
        "kernel_cos": kernel_cosine(theta_0, theta_t),
    }
