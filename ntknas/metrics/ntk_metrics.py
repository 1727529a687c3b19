"""NTK metrics (docs/protocol.md, "Metrics") as pure functions of a kernel and registered adapters.

The pure functions take a symmetric PSD kernel K (a float64 numpy array) and raise
:class:`MetricUnavailable` when the quantity is undefined, so the store records a reason instead
of a made-up number.
"""

from __future__ import annotations

import numpy as np

from ntknas.kernel.matrix_free import KernelEstimates
from ntknas.metrics.registry import MetricContext, MetricOutput, MetricUnavailable, register_metric

FLOAT32_EPS = float(np.finfo(np.float32).eps)


def kernel_mean(kernel: np.ndarray) -> float:
    """KNAS score: the mean of all entries of K."""
    return float(kernel.mean())


def frobenius_norm(kernel: np.ndarray) -> float:
    return float(np.linalg.norm(kernel, "fro"))


def kernel_trace(kernel: np.ndarray) -> float:
    return float(np.trace(kernel))


def eigenvalues(kernel: np.ndarray) -> np.ndarray:
    """Ascending eigenvalues of the symmetric kernel, from a symmetric solver in float64."""
    symmetric = 0.5 * (kernel + kernel.T)
    return np.linalg.eigvalsh(symmetric.astype(np.float64))


def default_eigen_cutoff(batch_size: int) -> float:
    """Relative cutoff B·ε₃₂: eigenvalues below cutoff·λ_max are float32 noise, not signal.

    The kernel's entries come from float32 gradients, so an eigenvalue smaller than the rounding
    error of a B-term float32 sum relative to the largest eigenvalue cannot be told from zero.
    """
    return batch_size * FLOAT32_EPS


def numerical_rank(values: np.ndarray, relative_cutoff: float) -> int:
    """How many eigenvalues exceed ``relative_cutoff · λ_max``."""
    top = float(values[-1])
    if not np.isfinite(top) or top <= 0:
        return 0
    return int((values > relative_cutoff * top).sum())


def condition_number(values: np.ndarray, relative_cutoff: float) -> float:
    """TE-NAS condition number λ_max / max(λ_min, c·λ_max) (see docs/protocol.md, "Metrics").

    λ_min is floored at the noise level ``c · λ_max`` (``c = relative_cutoff``, see
    :func:`default_eigen_cutoff`): a full-rank kernel gets λ_max / λ_min, a numerically
    singular one the worst finite value 1/c — never a better one than a full-rank kernel (a
    batch of identical images gives a rank-1 kernel, which the smallest eigenvalue *above* the
    cutoff would score 1, the best possible). :func:`numerical_rank` (``ntk_rank``) says how
    singular the kernel is.
    """
    top = float(values[-1])
    if not np.isfinite(top) or top <= 0:
        raise MetricUnavailable("the NTK is numerically zero: no eigenvalue above the cutoff")
    floor = max(float(values[0]), relative_cutoff * top)
    if not floor > 0:
        raise MetricUnavailable("the NTK is singular and the eigenvalue cutoff is 0: set a cutoff > 0")
    return float(top / floor)


def condition_number_reference(kernel: np.ndarray) -> float:
    """The reference implementation's condition number, for reproduction only.

    Real parts from a general eigen-solver in float32, exact zeros dropped, max / min. Tiny or
    negative λ_min gives huge or negative numbers; that is the reference's behaviour.
    """
    values = np.linalg.eigvals(kernel.astype(np.float32)).real
    values = values[values != 0]
    if values.size == 0:
        raise MetricUnavailable("the NTK has only zero eigenvalues")
    return float(values.max() / values.min())


def label_target(labels: np.ndarray) -> tuple[np.ndarray, float, float]:
    """LGA's target: Y − ȳ (Y_ij = +1 if y_i = y_j else −1), ȳ, and ‖Y − ȳ‖_F (unavailable if 0)."""
    labels = np.asarray(labels).reshape(-1)
    same = labels[:, None] == labels[None, :]
    target = np.where(same, 1.0, -1.0)
    centred_target = target - target.mean()
    target_norm = float(np.linalg.norm(centred_target))
    if target_norm == 0:
        raise MetricUnavailable("LGA needs at least two classes in the batch; all labels are equal")
    return centred_target, float(target.mean()), target_norm


def label_gradient_alignment(kernel: np.ndarray, labels: np.ndarray) -> float:
    """LGA: ⟨K − k̄, Y − ȳ⟩_F / (‖K − k̄‖_F ‖Y − ȳ‖_F), Y_ij = +1 if y_i = y_j else −1."""
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != kernel.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for a kernel of {kernel.shape[0]} samples")
    centred_target, _, target_norm = label_target(labels)
    centred_kernel = kernel - kernel.mean()
    kernel_norm = np.linalg.norm(centred_kernel)
    if kernel_norm == 0:
        raise MetricUnavailable("LGA is undefined for a constant kernel")
    return float((centred_kernel * centred_target).sum() / (kernel_norm * target_norm))


def _spectrum(context: MetricContext) -> np.ndarray:
    return context.cached("eigenvalues", lambda: eigenvalues(context.kernel))


def _cutoff(context: MetricContext) -> float:
    if context.eigen_cutoff is not None:
        return context.eigen_cutoff
    return default_eigen_cutoff(context.kernel.shape[0])


def matrix_free_lga(estimates: KernelEstimates, labels: np.ndarray) -> tuple[float, float]:
    """LGA and its standard error from matrix-free sums (see docs/protocol.md, "Metrics").

    Numerator, exact: ⟨K − k̄, Y − ȳ⟩ = ⟨K, Y − ȳ⟩ = 2 Σ_c ‖Jᵀ1_c‖² − (1 + ȳ) ‖Jᵀ1‖². Denominator:
    the estimate of ‖K − k̄‖²_F (no cancellation, see :func:`estimate_kernel`); its standard error
    carries over by the delta method.
    """
    _, target_mean, target_norm = label_target(labels)
    numerator = 2 * sum(estimates.class_sums) - (1 + target_mean) * estimates.total_sum
    centred = estimates.centred_frobenius_sq
    assert centred is not None and estimates.centred_frobenius_sq_se is not None, "estimated with frobenius=True"
    if not centred > 0:
        raise MetricUnavailable("LGA is undefined for a constant kernel")
    value = numerator / (np.sqrt(centred) * target_norm)
    return float(value), float(abs(value) * estimates.centred_frobenius_sq_se / (2 * centred))


def _finite(name: str, value: float) -> float:
    if not np.isfinite(value):
        raise MetricUnavailable(
            f"{name} is not finite: the network's outputs or gradients overflow on this batch"
        )
    return value


@register_metric(
    "knas", higher_is_better=True, family="ntk", needs_kernel=True, matrix_free=True,
    formula="mean of all entries of K (matrix-free: ‖Jᵀ1‖²/B², one backward pass, exact)",
)
def _knas(context: MetricContext) -> float:
    if context.matrix_free:
        return _finite("knas", context.estimates.mean)
    return kernel_mean(context.kernel)


@register_metric(
    "tenas",
    higher_is_better=False,
    family="ntk",
    needs_kernel=True,
    formula="λ_max(K) / max(λ_min(K), B·ε₃₂·λ_max): a singular K gets the worst finite value 1/(B·ε₃₂) (eigvalsh, float64)",
)
def _tenas(context: MetricContext) -> float:
    return condition_number(_spectrum(context), _cutoff(context))


@register_metric(
    "tenas_ref",
    higher_is_better=False,
    family="ntk",
    needs_kernel=True,
    formula="reference TE-NAS: real parts of float32 eigvals, zeros dropped, max / min",
)
def _tenas_reference(context: MetricContext) -> float:
    return condition_number_reference(context.kernel)


@register_metric(
    "ntk_rank",
    higher_is_better=None,
    family="ntk",
    needs_kernel=True,
    formula="number of eigenvalues of K above B·ε₃₂·λ_max (the spectrum behind tenas)",
)
def _ntk_rank(context: MetricContext) -> float:
    return float(numerical_rank(_spectrum(context), _cutoff(context)))


@register_metric(
    "fnorm", higher_is_better=True, family="ntk", needs_kernel=True, matrix_free=True,
    formula="‖K‖_F (matrix-free: randomized estimate of ‖K‖²_F, square-rooted)",
)
def _fnorm(context: MetricContext) -> MetricOutput:
    if context.matrix_free:
        estimates = context.estimates
        assert estimates.frobenius_sq is not None and estimates.frobenius_sq_se is not None
        value = _finite("fnorm", float(np.sqrt(estimates.frobenius_sq)))
        # The delta method's error of √x is undefined at x = 0: none is reported there.
        return value, estimates.frobenius_sq_se / (2 * value) if value > 0 else None
    return frobenius_norm(context.kernel)


@register_metric(
    "trace", higher_is_better=True, family="ntk", needs_kernel=True, matrix_free=True,
    formula="tr(K) (NASI-style; matrix-free: randomized estimate)",
)
def _trace(context: MetricContext) -> MetricOutput:
    if context.matrix_free:
        estimates = context.estimates
        assert estimates.trace is not None and estimates.trace_se is not None
        return _finite("trace", estimates.trace), estimates.trace_se
    return kernel_trace(context.kernel)


@register_metric(
    "lga",
    higher_is_better=True,
    family="ntk",
    needs_kernel=True,
    needs_labels=True,
    matrix_free=True,
    formula="⟨K − k̄, Y − ȳ⟩_F / (‖K − k̄‖_F ‖Y − ȳ‖_F), Y_ij = ±1 for same/different label "
    "(matrix-free: numerator exact from class sums, ‖K − k̄‖_F estimated)",
)
def _lga(context: MetricContext) -> MetricOutput:
    if context.matrix_free:
        value, error = matrix_free_lga(context.estimates, context.labels)
        return _finite("lga", value), error
    return label_gradient_alignment(context.kernel, context.labels)


def metrics_from_estimates(estimates: KernelEstimates, labels: np.ndarray) -> dict[str, tuple[float, float]]:
    """knas, trace, fnorm and lga with standard errors (0 where exact) from one set of estimates,
    as the registered metrics compute them under ``--kernel matrix-free`` (for studies that feed
    the estimator something other than a network, e.g. ``perf/matrix_free_fidelity.py``)."""
    assert estimates.trace is not None and estimates.trace_se is not None
    assert estimates.frobenius_sq is not None and estimates.frobenius_sq_se is not None
    fnorm = float(np.sqrt(estimates.frobenius_sq))
    return {
        "knas": (estimates.mean, 0.0),
        "trace": (estimates.trace, estimates.trace_se),
        "fnorm": (fnorm, estimates.frobenius_sq_se / (2 * fnorm) if fnorm > 0 else float("nan")),
        "lga": matrix_free_lga(estimates, labels),
    }
