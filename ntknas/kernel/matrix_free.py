"""NTK quantities without the B×B kernel: products with J and Jᵀ on the exact kernel's forward.

J ∈ R^{B×P} is the summed-logit Jacobian of :mod:`ntknas.kernel.ntk` (row i: the gradient of
sample i's summed logits through the whole-batch forward, BatchNorm coupling included). The exact
kernel needs one whole-batch backward pass per row; many metrics need far fewer products:

* ``Jᵀω`` — one backward pass of the summed outputs with cotangent ω (a VJP). With ω = 1 this is
  the gradient of Σ_i s_i, so mean(K) = ‖Jᵀ1‖² / B² exactly (SPEC §2); with ω = 1_c (the class
  indicators) it gives LGA's numerator exactly.
* ``Jv`` — one forward-mode pass with parameter tangent v (a JVP); ``K ω = J (Jᵀω)``.

:func:`estimate_kernel` combines them into tr(K), ‖K‖²_F and ‖K − k̄‖²_F by a Hutch++ estimator
(Meyer, Musco, Musco, Woodruff 2021): an exact part on a subspace Q spanned by the all-ones vector
and a random range sketch KS, plus a Hutchinson estimate of the rest with Rademacher probes
projected off Q. It is unbiased, and the residual probes give its standard error.

Operators are the estimator's only view of the network, so the same estimator code runs on a
network (:class:`NetworkOperator`) or on an explicit factor of a known kernel
(:class:`FactorOperator`, K = L Lᵀ), which the fidelity study and the tests use.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Protocol

import torch
from torch import nn
from torch.func import functional_call, jvp, vmap

from ntknas.errors import NtknasError, UnknownNameError
from ntknas.kernel.modes import kernel_mode
from ntknas.kernel.ntk import gram_float64, prepare_kernel_inputs, summed_logits
from ntknas.kernel.precision import ieee_float32

KERNEL_KINDS = ("exact", "matrix-free")
ESTIMATORS = ("hutch++",)
DEFAULT_PROBES = 32
"""Products per estimate (half range sketch, half residual probes); chosen by
``perf/matrix_free_fidelity.py`` (see the README's matrix-free section)."""

ParamBlock = dict[str, torch.Tensor]
"""Parameter-space vectors stacked by row: name → [k, numel of the parameter]."""


@dataclass(frozen=True)
class EstimatorSettings:
    """How the randomized parts of a matrix-free run are estimated; part of a run's identity."""

    probes: int = DEFAULT_PROBES
    seed: int = 0
    estimator: str = "hutch++"

    def __post_init__(self) -> None:
        if isinstance(self.probes, bool) or not isinstance(self.probes, int) or self.probes < 2:
            raise NtknasError(f"--probes must be an integer >= 2 (range sketch + residual probes), got {self.probes!r}")
        if self.estimator not in ESTIMATORS:
            raise UnknownNameError(f"unknown estimator {self.estimator!r}: use one of {', '.join(ESTIMATORS)}")

    @property
    def range_columns(self) -> int:
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
                gradients = torch.autograd.grad(
                    self._outputs, self._tensors, grad_outputs=cotangents,
                    retain_graph=True, allow_unused=True, is_grads_batched=True,
                )
                self._store(block, gradients, slice(0, rows))
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
        primals = {name: p.detach() for name, p in self.selected.items()}
        shapes = {name: p.shape for name, p in self.selected.items()}

        def outputs(parameters: dict[str, torch.Tensor]) -> torch.Tensor:
            return summed_logits(functional_call(self.net, parameters, (self.inputs,), strict=False))

        def one(rows: dict[str, torch.Tensor]) -> torch.Tensor:
            shaped = {name: rows[name].reshape(shapes[name]) for name in primals}
            return jvp(outputs, (primals,), (shaped,))[1]

        count = next(iter(tangents.values())).shape[0]
        # no_grad: the transform differentiates by itself; autograd need not record the other parameters.
        with torch.no_grad(), _statistics_untouched(self.net):
            if self.batched and count > 1:
                try:
                    return vmap(one)(tangents)
                except RuntimeError:  # e.g. an in-place running-statistics update vmap refuses
                    self.batched = False
            return torch.stack([one({name: block[j] for name, block in tangents.items()}) for j in range(count)])


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
    labels = labels.reshape(-1).cpu()
    if labels.shape[0] != operator.batch_size:
        raise NtknasError(f"{labels.shape[0]} labels for a batch of {operator.batch_size}")
    classes = tuple(int(c) for c in torch.unique(labels))
    indicators = torch.stack([(labels == c).to(torch.float64) for c in classes])
    return classes, operator.pullback(indicators)


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
    """Exact 1ᵀK1 and class sums, and (``norms``) Hutch++ estimates of tr(K), ‖K‖²_F, ‖K − k̄‖²_F.

    Hutch++ with s = probes/2 range columns and g = probes − s residual probes: Q = orth([1, K S])
    for Gaussian S; then tr(K) = ‖JᵀQ‖²_F + tr(PKP) and ‖K‖²_F = ‖KQ‖²_F + ‖KP‖²_F with P = I − QQᵀ,
    the second terms estimated with Rademacher G as ‖JᵀPG‖²/g and ‖KPG‖²/g. Since 1 lies in Q,
    K − k̄11ᵀ agrees with K on P's range, so ‖K − k̄‖²_F = ‖(K − k̄11ᵀ)Q‖²_F + ‖KP‖²_F with no
    cancellation (a kernel dominated by its mean loses nothing). Cost: C + 2s + g backward passes
    and, with ``frobenius``, 1 + 2s + g forward-mode passes (C = classes present).
    """
    size = operator.batch_size
    if labels is not None:
        classes, class_gradients = class_sum_gradients(operator, labels)
        class_gram = block_gram(class_gradients)
        class_sums = tuple(float(v) for v in torch.diagonal(class_gram))
        total_sum = float(class_gram.sum())  # ‖Σ_c Jᵀ1_c‖²: 1 = Σ_c 1_c
        ones_gradient = {name: block.sum(dim=0, keepdim=True) for name, block in class_gradients.items()}
    else:
        classes, class_sums = (), ()
        ones_gradient = summed_gradient(operator)
        total_sum = float(block_gram(ones_gradient)[0, 0])
    if not norms:
        return KernelEstimates(size, total_sum, classes, class_sums)
    generator = torch.Generator().manual_seed(settings.seed)

    def rademacher(rows: int) -> torch.Tensor:
        return (torch.randint(0, 2, (rows, size), generator=generator) * 2 - 1).to(torch.float64)

    unit = torch.full((1, size), 1 / math.sqrt(size), dtype=torch.float64)
    unit_gradient = {name: block / math.sqrt(size) for name, block in ones_gradient.items()}
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
        return KernelEstimates(size, total_sum, classes, class_sums, trace, trace_se)
    basis_products = operator.pushforward(basis_gradient).to(torch.float64)  # rows (K q_j)ᵀ
    mean = total_sum / size**2
    centred = basis_products - mean * torch.ones(size, dtype=torch.float64) * basis.sum(dim=1, keepdim=True)
    fro_terms = torch.zeros(probes, dtype=torch.float64)
    if residual_gradient is not None:
        fro_terms = operator.pushforward(residual_gradient).to(torch.float64).square().sum(dim=1)
    frobenius_sq, frobenius_se = _mean_and_error(float(basis_products.square().sum()), fro_terms)
    centred_sq, centred_se = _mean_and_error(float(centred.square().sum()), fro_terms)
    return KernelEstimates(
        size, total_sum, classes, class_sums, trace, trace_se, frobenius_sq, frobenius_se, centred_sq, centred_se
    )


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
