"""Matrix-free estimators of tr(K), ‖K‖²_F and ‖K − k̄‖²_F from products with J and Jᵀ.

:func:`estimate_kernel` computes the exact sums (1ᵀK1 and the class sums, from backward passes)
and hands the norms to an estimator of :data:`ESTIMATORS`, looked up by the settings' name: the
exchangeable Nyström estimator (``xnys``, the default; Epperly, Tropp, Webber 2024) or Hutch++
(Meyer, Musco, Musco, Woodruff 2021). Each returns a :class:`NormEstimates`, every estimate with
its standard error. An estimator is a function of the operator, the pullbacks the exact sums
already paid for, 1ᵀK1 and the (batch-bounded) settings; adding one is a function and a table entry
(and its name in :data:`ntknas.kernel.estimator_settings.ESTIMATOR_NAMES`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from ntknas.errors import NtknasError, option
from ntknas.kernel.estimator_settings import ESTIMATOR_NAMES, EstimatorSettings, effective_settings
from ntknas.kernel.operators import JacobianOperator, block_gram
from ntknas.kernel.passes import ParamBlock

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class NormEstimates:
    """What an estimator of :data:`ESTIMATORS` returns: tr(K), ‖K‖²_F and ‖K − k̄‖²_F, each with its
    standard error (NaN: none); the Frobenius norms are None when not asked for."""

    trace: float
    trace_se: float
    frobenius_sq: float | None = None
    frobenius_sq_se: float | None = None
    centred_frobenius_sq: float | None = None
    centred_frobenius_sq_se: float | None = None


@dataclass(frozen=True)
class KernelEstimates:
    """Exact sums and estimated norms of K, each estimate with its standard error (NaN: none).

    ``class_sums[c]`` = ‖Jᵀ1_c‖² for each class present, in ``classes`` order; ``total_sum`` =
    ‖Jᵀ1‖² = 1ᵀK1. Estimates are None when not asked for.
    """

    batch_size: int
    total_sum: float
    classes: tuple[int, ...]
    class_sums: tuple[float, ...]
    trace: float | None = None
    trace_se: float | None = None
    frobenius_sq: float | None = None
    frobenius_sq_se: float | None = None
    centred_frobenius_sq: float | None = None
    centred_frobenius_sq_se: float | None = None

    @property
    def mean(self) -> float:
        return self.total_sum / self.batch_size**2

    def with_norms(self, norms: NormEstimates) -> KernelEstimates:
        """These sums with an estimator's norms, field by field."""
        return replace(
            self,
            trace=norms.trace,
            trace_se=norms.trace_se,
            frobenius_sq=norms.frobenius_sq,
            frobenius_sq_se=norms.frobenius_sq_se,
            centred_frobenius_sq=norms.centred_frobenius_sq,
            centred_frobenius_sq_se=norms.centred_frobenius_sq_se,
        )


def summed_gradient(operator: JacobianOperator) -> ParamBlock:
    """Jᵀ1: the gradient of Σ_i s_i through the coupled forward (one backward pass)."""
    return operator.pullback(torch.ones(1, operator.batch_size, dtype=torch.float64))


def class_sum_gradients(operator: JacobianOperator, labels: torch.Tensor) -> tuple[tuple[int, ...], ParamBlock]:
    """The classes present and Jᵀ1_c for each (one backward pass per class)."""
    classes, indicators = _class_indicators(operator, labels)
    return classes, operator.pullback(indicators)


def _class_indicators(operator: JacobianOperator, labels: torch.Tensor) -> tuple[tuple[int, ...], torch.Tensor]:
    """The classes present and their indicator rows 1_c, [C, B] float64."""
    labels = labels.reshape(-1).cpu()
    if labels.shape[0] != operator.batch_size:
        raise NtknasError(f"{labels.shape[0]} labels for a batch of {operator.batch_size}")
    classes = tuple(int(c) for c in torch.unique(labels))
    return classes, torch.stack([(labels == c).to(torch.float64) for c in classes])


def kernel_products(operator: JacobianOperator, vectors: torch.Tensor) -> torch.Tensor:
    """[k, B] rows K v_j = J (Jᵀ v_j): one VJP then one JVP per vector, float64."""
    return operator.pushforward(operator.pullback(vectors)).to(torch.float64)


def kernel_sketch(operator: JacobianOperator, columns: int, seed: int) -> torch.Tensor:
    """An unbiased k-column sketch K̂ = (JS)(JS)ᵀ / k with S ∈ R^{P×k} Rademacher (k JVPs), float64.

    Every entry at once, but each with relative variance about 2/k: good for a look at K, not for
    ranking (the estimators below are far more accurate for the same number of products).
    """
    generator = torch.Generator().manual_seed(seed)
    tangents = {
        name: (torch.randint(0, 2, (columns, size), generator=generator) * 2 - 1).to(operator.dtype)
        for name, size in operator.parameter_sizes.items()
    }
    sketch = operator.pushforward(tangents).to(torch.float64)  # [k, B] = (J S)ᵀ
    return sketch.T @ sketch / columns


def estimate_kernel(
    operator: JacobianOperator,
    labels: torch.Tensor | None,
    settings: EstimatorSettings,
    *,
    norms: bool = True,
    frobenius: bool = True,
) -> KernelEstimates:
    """Exact 1ᵀK1 and class sums, and (``norms``) estimates of tr(K), ‖K‖²_F and ‖K − k̄‖²_F.

    ``settings.estimator`` names the estimator in :data:`ESTIMATORS`: ``xnys``
    (:func:`exchangeable_nystrom`, the default) or ``hutch++`` (:func:`hutch_plus_plus`). Both are
    unbiased and report standard errors. ``frobenius=False`` lets Hutch++ skip its forward-mode
    passes; the Nyström estimator needs them for the trace too, so it computes all three (a stored
    trace never depends on what else a run measured).

    More probes than the batch can use (:func:`~ntknas.kernel.estimator_settings.probe_bound`) are
    clamped to that bound with a warning: they would only add passes and memory to estimates that
    are exact already. Requests within the bound run exactly as asked. A probe block that would
    clearly not fit in the device's memory is refused before it is allocated.
    """
    size = operator.batch_size
    if labels is not None:
        classes, indicators = _class_indicators(operator, labels)
        class_gradients = operator.pullback(indicators)
        class_gram = block_gram(class_gradients)
        class_sums = tuple(float(v) for v in torch.diagonal(class_gram))
        total_sum = float(class_gram.sum())  # ‖Σ_c Jᵀ1_c‖²: 1 = Σ_c 1_c
    else:
        classes, class_sums, indicators = (), (), torch.ones(1, size, dtype=torch.float64)
        class_gradients = summed_gradient(operator)
        total_sum = float(block_gram(class_gradients)[0, 0])
    sums = KernelEstimates(size, total_sum, classes, class_sums)
    if not norms:
        return sums
    used = bounded_settings(settings, size)
    check_probe_memory(operator, indicators.shape[0] + used.probes, used)
    known = KnownPullbacks(indicators, class_gradients)
    return sums.with_norms(ESTIMATORS[used.estimator](operator, known, total_sum, used, frobenius))


def bounded_settings(settings: EstimatorSettings, batch_size: int) -> EstimatorSettings:
    """The settings an estimate on ``batch_size`` samples runs with, saying so when they differ.

    The run's identity keeps what was asked (:class:`EstimatorSettings` is never replaced there),
    so a folder resumes under the same command; the warning names the probes used instead.
    """
    used = effective_settings(settings, batch_size)
    if used is not settings:
        logger.warning(
            "--probes %d is more than %s can use on a batch of %d: using %d (beyond that the estimates "
            "are exact already and more probes only cost passes and memory)",
            settings.probes, settings.estimator, batch_size, used.probes,
        )
    return used


# A probe block is held at least twice at once (the pullbacks and their concatenation with the
# class directions'), and the estimators' other temporaries come on top: a request whose two
# copies alone exceed the free memory cannot succeed, so refusing it early only saves the wait.
_BLOCK_COPIES = 2


def check_probe_memory(operator: JacobianOperator, rows: int, settings: EstimatorSettings) -> None:
    """Refuse, with a one-line fix, an estimate whose parameter blocks of ``rows`` rows clearly do
    not fit in the free memory of the operator's device (unknown free memory: no check)."""
    itemsize = torch.empty((), dtype=operator.dtype).element_size()
    needed = _BLOCK_COPIES * rows * sum(operator.parameter_sizes.values()) * itemsize
    free = available_memory(operator.device)
    if free is not None and needed > free:
        raise NtknasError(
            f"matrix-free estimate with {settings.probes} probes needs about {needed / 2**30:.1f} GiB for its "
            f"{rows} parameter-space rows but {operator.device.type} has {free / 2**30:.1f} GiB free: "
            f"use fewer {option('probes')} or a smaller {option('batch_size')}"
        )


def available_memory(device: torch.device) -> int | None:
    """Bytes that can still be allocated on ``device``, or None where that is not known.

    A GPU: free memory plus what PyTorch's cache holds unused. A CPU (Linux): MemAvailable, and
    the cgroup's remaining limit where a container sets one.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    if device.type != "cpu":
        return None
    limits = []
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as limit, open(
            "/sys/fs/cgroup/memory.current", encoding="ascii"
        ) as current:
            maximum = limit.read().strip()
            if maximum != "max":
                limits.append(int(maximum) - int(current.read().strip()))
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


@dataclass(frozen=True)
class KnownPullbacks:
    """Sample-space rows whose pullbacks the exact sums already paid for: the class indicators
    (or the all-ones row without labels) and Jᵀ of each."""

    rows: torch.Tensor
    gradients: ParamBlock

    def ones_gradient(self) -> ParamBlock:
        return {name: block.sum(dim=0, keepdim=True) for name, block in self.gradients.items()}


def exchangeable_nystrom(
    operator: JacobianOperator,
    known: KnownPullbacks,
    total_sum: float,
    settings: EstimatorSettings,
    frobenius: bool = True,
) -> NormEstimates:
    """tr(K), ‖K‖²_F, ‖K − k̄‖²_F by an exchangeable Nyström estimator on the kernel off the mean.

    With P = I − 11ᵀ/B, the all-ones direction is exact (it is 1ᵀK1, already known) and
    ‖K‖²_F = (1ᵀK1/B)² + 2‖PK1‖²/B + ‖A‖²_F, ‖K − k̄‖²_F = 2‖PK1‖²/B + ‖A‖²_F, tr(K) = 1ᵀK1/B + tr(A),
    for A = PKP: the mean never enters by cancellation. A is estimated from the sketch
    Ω = [class directions P1_c (their pullbacks are already paid for), m Gaussian probes Pg_i]:
    M = ΩᵀAΩ from the pullbacks' inner products and Y = AΩ from one forward-mode pass each. For each
    probe i, the Nyström approximation N₋ᵢ = Y₋ᵢ M₋ᵢ⁺ Y₋ᵢᵀ built without it is corrected at it:
    tr(N₋ᵢ²) + ‖Aωᵢ‖² − ‖N₋ᵢωᵢ‖² is unbiased for ‖A‖²_F (ωᵢ is independent of N₋ᵢ), likewise for the
    trace; the estimate is the mean over i and its standard error their spread (the XTrace /
    XNysTrace construction of Epperly, Tropp and Webber 2024, here for tr(A²) as well). Every probe
    serves both the low-rank part and the correction; on NAS-Bench-201 kernels this reaches the
    fidelity bar of docs/kernel.md with about a quarter fewer passes than Hutch++. Cost: m backward passes
    and C + m forward-mode passes beyond the C class sums (C = classes present; 1 without labels).
    """
    size = operator.batch_size
    count = settings.probes
    generator = torch.Generator().manual_seed(settings.seed)
    probes = torch.randn(count, size, generator=generator, dtype=torch.float64)
    probes -= probes.mean(dim=1, keepdim=True)  # P g
    fixed = _class_directions(known, size, known.rows, torch.ones(1, size, dtype=torch.float64))
    ones_gradient = known.ones_gradient()
    fixed_gradient = {
        name: _class_directions(known, size, block, ones_gradient[name]) for name, block in known.gradients.items()
    }
    probe_gradient = operator.pullback(probes)
    sketch = torch.cat([fixed, probes])
    sketch_gradient = {name: torch.cat([fixed_gradient[name], probe_gradient[name]]) for name in probe_gradient}
    # One pushforward batch: K1_c for the known rows (K1 is their sum), then K ω_j for the probes.
    products = operator.pushforward(
        {name: torch.cat([known.gradients[name], probe_gradient[name]]) for name in probe_gradient}
    ).to(torch.float64)
    known_products, probe_products = products[: known.rows.shape[0]], products[known.rows.shape[0]:]
    ones_product = known_products.sum(dim=0)  # K1
    fixed_products = _class_directions(known, size, known_products, ones_product[None])
    images = _centre_rows(torch.cat([fixed_products, probe_products]))  # rows (A ω_j)ᵀ
    inner = block_gram(sketch_gradient)  # ΩᵀAΩ (Jᵀ of a centred row is Jᵀ P of it)
    mean_term = total_sum / size
    cross = 2 * float(_centre_rows(ones_product[None]).square().sum()) / size
    trace_terms, square_terms = _leave_one_out_terms(sketch, images, inner, fixed.shape[0], operator.dtype)
    trace, trace_se = _mean_and_error(mean_term, trace_terms)
    centred_sq, centred_se = _mean_and_error(cross, square_terms)
    del frobenius  # the trace needs the same passes: all three, whatever was asked
    return NormEstimates(trace, trace_se, centred_sq + mean_term**2, centred_se, centred_sq, centred_se)


def _class_directions(known: KnownPullbacks, size: int, per_class: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """x_c − (n_c/B)·x_total, scaled by √(B/n_c), for every class but the last.

    x is any linear image of the class indicators: the rows themselves (x_total the all-ones row),
    their pullbacks or their products with K. The result is the same image of the directions
    P1_c off the mean, scaled to norm about √B, so no new pass is needed. The last class is left
    out because the full set sums to zero.
    """
    count = known.rows.shape[0] - 1
    members = known.rows[:count].sum(dim=1)
    share = (members / size).to(per_class.dtype)[:, None]
    scale = torch.sqrt(size / members).to(per_class.dtype)[:, None]
    return (per_class[:count] - share * total) * scale


def _centre_rows(rows: torch.Tensor) -> torch.Tensor:
    return rows - rows.mean(dim=1, keepdim=True)


def _leave_one_out_terms(
    sketch: torch.Tensor, images: torch.Tensor, inner: torch.Tensor, fixed: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per random probe i ≥ ``fixed``: tr(N₋ᵢ) + ωᵢᵀAωᵢ − ωᵢᵀN₋ᵢωᵢ and tr(N₋ᵢ²) + ‖Aωᵢ‖² − ‖N₋ᵢωᵢ‖².

    N₋ᵢ = Y₋ᵢ M₋ᵢ⁺ Y₋ᵢᵀ with Y's rows ``images`` and M = ``inner``; ωᵢᵀAωᵢ = Mᵢᵢ = ‖Jᵀωᵢ‖².
    Directions of M at the products' rounding level are left out of the pseudo-inverse: N₋ᵢ is then
    the Nyström approximation of a sub-sketch, still independent of ωᵢ, so the terms stay unbiased.
    """
    cutoff = 1e-6 if torch.finfo(dtype).bits <= 32 else 1e-12
    inner = 0.5 * (inner + inner.T)
    everything = torch.arange(sketch.shape[0])
    trace_terms, square_terms = [], []
    for i in range(fixed, sketch.shape[0]):
        keep = everything[everything != i]
        kept_images = images[keep]
        pseudo_inverse = _symmetric_pseudo_inverse(inner[keep][:, keep], cutoff)
        gram = kept_images @ kept_images.T
        weighted = pseudo_inverse @ gram
        seen = kept_images @ sketch[i]  # Y₋ᵢᵀωᵢ
        coefficients = pseudo_inverse @ seen  # N₋ᵢωᵢ = Y₋ᵢᵀ-combination of these
        trace_terms.append(torch.trace(weighted) + inner[i, i] - seen @ coefficients)
        square_terms.append(
            torch.trace(weighted @ weighted) + images[i] @ images[i] - coefficients @ gram @ coefficients
        )
    return torch.stack(trace_terms), torch.stack(square_terms)


def _symmetric_pseudo_inverse(matrix: torch.Tensor, cutoff: float) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    largest = float(values.max())  # never empty: at least one other column is kept
    if largest <= 0:
        return torch.zeros_like(matrix)
    keep = values > cutoff * largest
    kept = vectors[:, keep]
    return (kept / values[keep]) @ kept.T


def hutch_plus_plus(
    operator: JacobianOperator,
    known: KnownPullbacks,
    total_sum: float,
    settings: EstimatorSettings,
    frobenius: bool = True,
) -> NormEstimates:
    """Hutch++ (Meyer, Musco, Musco, Woodruff 2021) with s = probes/2 range columns and
    g = probes − s residual probes.

    Q = orth([1, K S]) for Gaussian S; then tr(K) = ‖JᵀQ‖²_F + tr(PKP) and ‖K‖²_F = ‖KQ‖²_F + ‖KP‖²_F
    with P = I − QQᵀ, the second terms estimated with Rademacher G as ‖JᵀPG‖²/g and ‖KPG‖²/g. Since
    1 lies in Q, K − k̄11ᵀ agrees with K on P's range, so ‖K − k̄‖²_F = ‖(K − k̄11ᵀ)Q‖²_F + ‖KP‖²_F with
    no cancellation. Cost: 2s + g backward passes and, with ``frobenius``, 1 + 2s + g forward-mode
    passes, beyond the C class sums.
    """
    size = operator.batch_size
    generator = torch.Generator().manual_seed(settings.seed)

    def rademacher(rows: int) -> torch.Tensor:
        return (torch.randint(0, 2, (rows, size), generator=generator) * 2 - 1).to(torch.float64)

    unit = torch.full((1, size), 1 / math.sqrt(size), dtype=torch.float64)
    unit_gradient = {name: block / math.sqrt(size) for name, block in known.ones_gradient().items()}
    span = [unit]
    range_columns = min(settings.range_columns, size - 1)
    if range_columns > 0:
        # Gaussian: a random range sketch of full rank (Rademacher rows can repeat at small B).
        gaussian = torch.randn(range_columns, size, generator=generator, dtype=torch.float64)
        span.append(kernel_products(operator, gaussian))
    basis = _orthonormal_rows(torch.cat(span))
    extra = basis[1:]  # the first row is ±1/√B: its pullback is known
    basis_gradient = unit_gradient
    if extra.shape[0]:
        extra_gradient = operator.pullback(extra)
        basis_gradient = {name: torch.cat([unit_gradient[name], extra_gradient[name]]) for name in unit_gradient}
    trace_exact = float(torch.trace(block_gram(basis_gradient)))
    probes = settings.residual_probes
    residual_rows = rademacher(probes)
    residual_rows = residual_rows - (residual_rows @ basis.T) @ basis  # P g
    has_residual = basis.shape[0] < size
    trace_terms = torch.zeros(probes, dtype=torch.float64)
    residual_gradient: ParamBlock | None = None
    if has_residual:
        residual_gradient = operator.pullback(residual_rows)
        trace_terms = torch.diagonal(block_gram(residual_gradient))
    trace, trace_se = _mean_and_error(trace_exact, trace_terms)
    if not frobenius:
        return NormEstimates(trace, trace_se)
    basis_products = operator.pushforward(basis_gradient).to(torch.float64)  # rows (K q_j)ᵀ
    mean = total_sum / size**2
    centred = basis_products - mean * torch.ones(size, dtype=torch.float64) * basis.sum(dim=1, keepdim=True)
    fro_terms = torch.zeros(probes, dtype=torch.float64)
    if residual_gradient is not None:
        fro_terms = operator.pushforward(residual_gradient).to(torch.float64).square().sum(dim=1)
    frobenius_sq, frobenius_se = _mean_and_error(float(basis_products.square().sum()), fro_terms)
    centred_sq, centred_se = _mean_and_error(float(centred.square().sum()), fro_terms)
    return NormEstimates(trace, trace_se, frobenius_sq, frobenius_se, centred_sq, centred_se)


def _orthonormal_rows(rows: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis (as rows) of the span of ``rows``, in their order; directions that add
    nothing beyond rounding are dropped (a rank-deficient K gives dependent sketch columns)."""
    norms = rows.norm(dim=1, keepdim=True)
    rows = rows[norms[:, 0] > 0] / norms[norms[:, 0] > 0]  # scale-free: a tiny kernel keeps its directions
    q, r = torch.linalg.qr(rows.T)
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1
    q = q * signs  # the first row is then +rows[0] exactly (the estimator relies on its sign)
    keep = torch.diagonal(r).abs() > 1e-13  # only directions lost to float64 rounding
    return q.T[keep]


def _mean_and_error(exact_part: float, terms: torch.Tensor) -> tuple[float, float]:
    """Exact part + mean of the residual probe terms, and the standard error of that mean."""
    count = terms.shape[0]
    value = exact_part + float(terms.mean())
    error = float(terms.std(unbiased=True)) / math.sqrt(count) if count > 1 else math.nan
    return value, error



Estimator = Callable[[JacobianOperator, KnownPullbacks, float, EstimatorSettings, bool], NormEstimates]
"""(operator, known pullbacks, 1ᵀK1, settings bounded by the batch, whether ‖K‖_F is wanted) → norms."""

ESTIMATORS: dict[str, Estimator] = {"xnys": exchangeable_nystrom, "hutch++": hutch_plus_plus}
"""Estimator name (``--estimator``) → function, in the CLI's order."""
assert tuple(ESTIMATORS) == ESTIMATOR_NAMES, "a new estimator needs its name in estimator_settings too"
