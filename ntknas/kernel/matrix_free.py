"""NTK quantities without the B×B kernel: products with J and Jᵀ on the exact kernel's forward.

J ∈ R^{B×P} is the summed-logit Jacobian of :mod:`ntknas.kernel.ntk` (row i: the gradient of
sample i's summed logits through the whole-batch forward, BatchNorm coupling included). The exact
kernel needs one whole-batch backward pass per row; many metrics need far fewer products:

* ``Jᵀω`` — one backward pass of the summed outputs with cotangent ω (a VJP). With ω = 1 this is
  the gradient of Σ_i s_i, so mean(K) = ‖Jᵀ1‖² / B² exactly (SPEC §2); with ω = 1_c (the class
  indicators) it gives LGA's numerator exactly.
* ``Jv`` — one forward-mode pass with parameter tangent v (a JVP); ``K ω = J (Jᵀω)``.

:func:`estimate_kernel` combines them into tr(K), ‖K‖²_F and ‖K − k̄‖²_F, unbiased and with a
standard error, by an exchangeable Nyström estimator (``xnys``, the default: the mean direction and
the class directions the exact sums already paid for, plus m Gaussian probes, each serving both the
low-rank part and its correction; Epperly, Tropp, Webber 2024) or by Hutch++ (Meyer, Musco, Musco,
Woodruff 2021). On NAS-Bench-201 kernels the Nyström estimator ranks architectures as faithfully as
Hutch++ for fewer products (perf/matrix_free_fidelity.py, README).

Operators are the estimator's only view of the network, so the same estimator code runs on a
network (:class:`NetworkOperator`) or on an explicit factor of a known kernel
(:class:`FactorOperator`, K = L Lᵀ), which the fidelity study and the tests use.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Protocol

import torch
from torch import nn
from torch.func import functional_call, jvp, linearize, vmap

from ntknas.errors import NtknasError, UnknownNameError
from ntknas.kernel.modes import kernel_mode
from ntknas.kernel.ntk import DEFAULT_BATCHED_CHUNK, gram_float64, prepare_kernel_inputs, summed_logits
from ntknas.kernel.precision import ieee_float32

logger = logging.getLogger(__name__)

KERNEL_KINDS = ("exact", "matrix-free")
ESTIMATORS = ("xnys", "hutch++")
DEFAULT_ESTIMATOR = "xnys"
DEFAULT_PROBES = 20
"""Random probes per estimate; chosen by ``perf/matrix_free_fidelity.py`` (see the README's
matrix-free section)."""

ParamBlock = dict[str, torch.Tensor]
"""Parameter-space vectors stacked by row: name → [k, numel of the parameter]."""


@dataclass(frozen=True)
class EstimatorSettings:
    """How the randomized parts of a matrix-free run are estimated; part of a run's identity."""

    probes: int = DEFAULT_PROBES
    seed: int = 0
    estimator: str = DEFAULT_ESTIMATOR

    def __post_init__(self) -> None:
        if isinstance(self.probes, bool) or not isinstance(self.probes, int) or self.probes < 2:
            raise NtknasError(f"--probes must be an integer >= 2 (an estimate needs at least two probes), got {self.probes!r}")
        if self.estimator not in ESTIMATORS:
            raise UnknownNameError(f"unknown estimator {self.estimator!r}: use one of {', '.join(ESTIMATORS)}")

    @property
    def range_columns(self) -> int:
        """Hutch++: the range sketch's columns."""
        return self.probes // 2

    @property
    def residual_probes(self) -> int:
        return self.probes - self.range_columns

    def identity(self) -> dict[str, object]:
        return asdict(self)


def check_kernel_kind(kind: str) -> str:
    if kind not in KERNEL_KINDS:
        raise UnknownNameError(f"unknown kernel {kind!r}: use exact or matrix-free")
    return kind


class JacobianOperator(Protocol):
    """Products with a summed-logit Jacobian J ∈ R^{B×P}, rows stacked (k products at once)."""

    @property
    def batch_size(self) -> int: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def parameter_sizes(self) -> dict[str, int]:
        """Name → number of entries of each parameter tensor (the block's columns)."""
        ...

    def pullback(self, cotangents: torch.Tensor) -> ParamBlock:
        """[k, B] cotangents ω_j → Jᵀω_j as a parameter block of k rows."""
        ...

    def pushforward(self, tangents: ParamBlock) -> torch.Tensor:
        """A parameter block of k rows v_j → [k, B] rows J v_j."""
        ...


def block_gram(first: ParamBlock, second: ParamBlock | None = None) -> torch.Tensor:
    """[k1, k2] inner products of two parameter blocks: per tensor in its precision, summed in float64."""
    if second is None or second is first:
        return gram_float64(first)
    names = iter(first)
    name = next(names)
    total = (first[name] @ second[name].T).to(torch.float64)
    for name in names:
        total += (first[name] @ second[name].T).to(torch.float64)
    return total


class NetworkOperator:
    """J of a network on one batch, built on the exact kernel's forward (use :func:`network_operator`).

    Pullbacks are backward passes through one retained graph; pushforwards are forward-mode JVPs
    of the same network in the same mode. ``batched`` vectorizes k products into one pass
    (``is_grads_batched``, ``vmap`` over ``jvp``) — worth it where the device has parallelism to
    spare; a module that does not support it falls back to one product at a time.
    """

    def __init__(
        self, net: nn.Module, inputs: torch.Tensor, selected: dict[str, nn.Parameter], batched: bool
    ) -> None:
        self.net = net
        self.inputs = inputs
        self.selected = selected
        self.batched = batched
        self._names = list(selected)
        self._tensors = [selected[name] for name in self._names]
        self._linear: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None
        self._linearizable = True
        with torch.enable_grad():
            self._outputs = summed_logits(net(inputs))

    @property
    def batch_size(self) -> int:
        return int(self._outputs.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self._outputs.dtype

    @property
    def parameter_sizes(self) -> dict[str, int]:
        return {name: p.numel() for name, p in self.selected.items()}

    def pullback(self, cotangents: torch.Tensor) -> ParamBlock:
        cotangents = cotangents.to(device=self._outputs.device, dtype=self._outputs.dtype)
        rows = cotangents.shape[0]
        block = {
            name: torch.zeros(rows, p.numel(), dtype=p.dtype, device=p.device)
            for name, p in zip(self._names, self._tensors)
        }
        if self.batched and rows > 1:
            try:
                for start in range(0, rows, DEFAULT_BATCHED_CHUNK):  # bounded memory, as the exact kernel
                    chunk = slice(start, min(start + DEFAULT_BATCHED_CHUNK, rows))
                    gradients = torch.autograd.grad(
                        self._outputs, self._tensors, grad_outputs=cotangents[chunk],
                        retain_graph=True, allow_unused=True, is_grads_batched=True,
                    )
                    self._store(block, gradients, chunk)
                return block
            except RuntimeError:  # a module without a batching rule: one product at a time
                self.batched = False
        for row in range(rows):
            gradients = torch.autograd.grad(
                self._outputs, self._tensors, grad_outputs=cotangents[row], retain_graph=True, allow_unused=True
            )
            self._store(block, gradients, slice(row, row + 1))
        return block

    def _store(self, block: ParamBlock, gradients: tuple[torch.Tensor | None, ...], rows: slice) -> None:
        for name, gradient in zip(self._names, gradients):
            if gradient is not None:  # a parameter the outputs do not reach keeps its zero rows
                block[name][rows] = gradient.reshape(block[name][rows].shape)

    def pushforward(self, tangents: ParamBlock) -> torch.Tensor:
        shapes = {name: p.shape for name, p in self.selected.items()}

        def shaped(rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {name: rows[name].reshape(shapes[name]) for name in shapes}

        count = next(iter(tangents.values())).shape[0]
        # no_grad: the transform differentiates by itself; autograd need not record the other parameters.
        with torch.no_grad(), _statistics_untouched(self.net):
            if self.batched and count > 1:
                try:
                    return vmap(
                        lambda rows: jvp(self._outputs_of, (self._primals(),), (shaped(rows),))[1],
                        chunk_size=DEFAULT_BATCHED_CHUNK,
                    )(tangents)
                except RuntimeError:  # e.g. an in-place running-statistics update vmap refuses
                    self.batched = False
            rows = [{name: block[j] for name, block in tangents.items()} for j in range(count)]
            linear = self._linearized()
            if linear is not None:
                return torch.stack([linear(shaped(row)) for row in rows])
            return torch.stack([jvp(self._outputs_of, (self._primals(),), (shaped(row),))[1] for row in rows])

    def _primals(self) -> dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in self.selected.items()}

    def _outputs_of(self, parameters: dict[str, torch.Tensor]) -> torch.Tensor:
        return summed_logits(functional_call(self.net, parameters, (self.inputs,), strict=False))

    def _linearized(self) -> Callable[[dict[str, torch.Tensor]], torch.Tensor] | None:
        """The network's JVP as a traced linear function, built on the first pushforward.

        ``jvp`` reruns the primal forward with every tangent; the linearized function keeps the
        primal values and propagates tangents only: on a CPU each product then costs about one
        backward pass instead of two, for a one-off trace of a few seconds. A network the tracer
        cannot handle keeps ``jvp``.
        """
        if self._linear is None and self._linearizable:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the tracer's notes on constant folding and scripting
                    self._linear = linearize(self._outputs_of, self._primals())[1]
            except Exception as error:  # noqa: BLE001 - tracing fails in many ways; jvp still works
                logger.debug("no linearized JVP for this network (%s): using jvp", error)
                self._linearizable = False
        return self._linear


@contextlib.contextmanager
def _statistics_untouched(net: nn.Module) -> Iterator[None]:
    """Train-mode BatchNorm layers stop updating running statistics inside the block.

    Function transforms refuse the in-place update of a captured buffer. A train-mode layer
    normalizes with the batch's statistics whether or not it tracks running ones, so its outputs
    (and their derivatives) are unchanged; :func:`kernel_mode` restores the buffers anyway.
    """
    changed = [
        module for module in net.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training and module.track_running_stats
    ]
    for module in changed:
        module.track_running_stats = False
    try:
        yield
    finally:
        for module in changed:
            module.track_running_stats = True


@contextlib.contextmanager
def network_operator(
    net: nn.Module,
    inputs: torch.Tensor,
    *,
    bn_mode: str = "train",
    params: str = "weights",
    batched: bool | None = None,
) -> Iterator[NetworkOperator]:
    """J of ``net`` on ``inputs`` as products, valid inside the block.

    Same parameters, BatchNorm mode, IEEE float32 rules and state restoration as
    :func:`ntknas.kernel.compute_ntk`: the network is left as it was. ``batched=None`` vectorizes
    products on a GPU and loops on a CPU (where vectorized backward passes were measured no faster).
    """
    selected, inputs = prepare_kernel_inputs(net, inputs, params)
    if batched is None:
        batched = inputs.device.type == "cuda"
    with ieee_float32(), kernel_mode(net, bn_mode):
        yield NetworkOperator(net, inputs, selected, batched)


class FactorOperator:
    """J given explicitly as a matrix L ∈ R^{B×R} (K = L Lᵀ): the estimators on a known kernel."""

    def __init__(self, factor: torch.Tensor) -> None:
        self.factor = factor

    @classmethod
    def from_kernel(cls, kernel: torch.Tensor) -> FactorOperator:
        """A factor of a symmetric PSD kernel (eigen-decomposition; float rounding's tiny negative
        eigenvalues clipped to zero)."""
        values, vectors = torch.linalg.eigh(0.5 * (kernel + kernel.T).to(torch.float64))
        return cls(vectors * values.clamp_min(0).sqrt())

    @property
    def batch_size(self) -> int:
        return int(self.factor.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.factor.dtype

    @property
    def parameter_sizes(self) -> dict[str, int]:
        return {"factor": int(self.factor.shape[1])}

    def pullback(self, cotangents: torch.Tensor) -> ParamBlock:
        return {"factor": cotangents.to(self.factor.dtype) @ self.factor}

    def pushforward(self, tangents: ParamBlock) -> torch.Tensor:
        return tangents["factor"] @ self.factor.T


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

    ``settings.estimator`` picks how: ``xnys`` (:func:`_exchangeable_nystrom`, the default) or
    ``hutch++`` (:func:`_hutch_plus_plus`). Both are unbiased and report standard errors.
    ``frobenius=False`` lets Hutch++ skip its forward-mode passes; the Nyström estimator needs them
    for the trace too, so it computes all three (a stored trace never depends on what else a run
    measured).
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
    if not norms:
        return KernelEstimates(size, total_sum, classes, class_sums)
    known = _KnownPullbacks(indicators, class_gradients)
    if settings.estimator == "hutch++":
        norm_estimates = _hutch_plus_plus(operator, known, total_sum, settings, frobenius)
    else:
        norm_estimates = _exchangeable_nystrom(operator, known, total_sum, settings)
    return KernelEstimates(size, total_sum, classes, class_sums, *norm_estimates)


@dataclass(frozen=True)
class _KnownPullbacks:
    """Sample-space rows whose pullbacks the exact sums already paid for: the class indicators
    (or the all-ones row without labels) and Jᵀ of each."""

    rows: torch.Tensor
    gradients: ParamBlock

    def ones_gradient(self) -> ParamBlock:
        return {name: block.sum(dim=0, keepdim=True) for name, block in self.gradients.items()}


_NormEstimates = tuple[float, float, float | None, float | None, float | None, float | None]
"""trace, its error, ‖K‖²_F, its error, ‖K − k̄‖²_F, its error."""


def _exchangeable_nystrom(
    operator: JacobianOperator, known: _KnownPullbacks, total_sum: float, settings: EstimatorSettings
) -> _NormEstimates:
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
    README's fidelity bar with about a quarter fewer passes than Hutch++. Cost: m backward passes
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
    return trace, trace_se, centred_sq + mean_term**2, centred_se, centred_sq, centred_se


def _class_directions(known: _KnownPullbacks, size: int, per_class: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
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


def _hutch_plus_plus(
    operator: JacobianOperator,
    known: _KnownPullbacks,
    total_sum: float,
    settings: EstimatorSettings,
    frobenius: bool,
) -> _NormEstimates:
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
        return trace, trace_se, None, None, None, None
    basis_products = operator.pushforward(basis_gradient).to(torch.float64)  # rows (K q_j)ᵀ
    mean = total_sum / size**2
    centred = basis_products - mean * torch.ones(size, dtype=torch.float64) * basis.sum(dim=1, keepdim=True)
    fro_terms = torch.zeros(probes, dtype=torch.float64)
    if residual_gradient is not None:
        fro_terms = operator.pushforward(residual_gradient).to(torch.float64).square().sum(dim=1)
    frobenius_sq, frobenius_se = _mean_and_error(float(basis_products.square().sum()), fro_terms)
    centred_sq, centred_se = _mean_and_error(float(centred.square().sum()), fro_terms)
    return trace, trace_se, frobenius_sq, frobenius_se, centred_sq, centred_se


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
