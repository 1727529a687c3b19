"""The estimators' only view of J: products with J and Jᵀ, of a network or of a known factor.

The same estimator code runs on a network (:class:`NetworkOperator`, the passes of
:mod:`ntknas.kernel.passes` on the exact kernel's forward) or on an explicit factor of a known
kernel (:class:`FactorOperator`, K = L Lᵀ), which the fidelity study and the tests use.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Protocol

import torch
from torch import nn

from ntknas.kernel.modes import kernel_mode
from ntknas.kernel.ntk import gram_float64, prepare_kernel_inputs
from ntknas.kernel.passes import NetworkPasses, ParamBlock, batching_refused
from ntknas.kernel.precision import ieee_float32

logger = logging.getLogger(__name__)


class JacobianOperator(Protocol):
    """Products with a summed-logit Jacobian J ∈ R^{B×P}, rows stacked (k products at once)."""

    @property
    def batch_size(self) -> int: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device:
        """Where the products' parameter blocks are allocated (the memory check looks there)."""
        ...

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


class NetworkOperator(NetworkPasses):
    """J of a network on one batch, built on the exact kernel's forward (use :func:`network_operator`).

    ``batched`` vectorizes k products into one pass (``is_grads_batched``, ``vmap`` over ``jvp``) —
    worth it where the device has parallelism to spare. A network that does not support it gets
    that call's products one at a time, and the log says so once per operator; running out of
    memory is never taken for that (:func:`ntknas.kernel.passes.batching_refused`) and propagates.
    Each call tries the vectorized pass again: the fallback is a property of the call that failed,
    not a switch that leaves the rest of a run on the slow path.
    """

    def __init__(
        self, net: nn.Module, inputs: torch.Tensor, selected: dict[str, nn.Parameter], batched: bool
    ) -> None:
        super().__init__(net, inputs, selected)
        self.batched = batched
        self._fallback_logged = False

    @property
    def batch_size(self) -> int:
        return int(self.outputs.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.outputs.dtype

    @property
    def device(self) -> torch.device:
        return self.outputs.device

    @property
    def parameter_sizes(self) -> dict[str, int]:
        return {name: p.numel() for name, p in self.selected.items()}

    def pullback(self, cotangents: torch.Tensor) -> ParamBlock:
        if self.batched and cotangents.shape[0] > 1:
            try:
                return self.vjp_rows(cotangents, vectorized=True)
            except RuntimeError as error:
                if not batching_refused(error):
                    raise
                self._log_fallback("backward", error)
        return self.vjp_rows(cotangents, vectorized=False)

    def pushforward(self, tangents: ParamBlock) -> torch.Tensor:
        if self.batched and next(iter(tangents.values())).shape[0] > 1:
            try:
                return self.jvp_rows(tangents, vectorized=True)
            except RuntimeError as error:
                if not batching_refused(error):
                    raise
                self._log_fallback("forward-mode", error)
        return self.jvp_rows(tangents, vectorized=False)

    def _log_fallback(self, kind: str, error: RuntimeError) -> None:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        level = logging.DEBUG if self._fallback_logged else logging.INFO
        logger.log(level, "this network refuses vectorized %s passes (%s): one product at a time", kind, first_line)
        self._fallback_logged = True


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
    def device(self) -> torch.device:
        return self.factor.device

    @property
    def parameter_sizes(self) -> dict[str, int]:
        return {"factor": int(self.factor.shape[1])}

    def pullback(self, cotangents: torch.Tensor) -> ParamBlock:
        return {"factor": cotangents.to(self.factor.dtype) @ self.factor}

    def pushforward(self, tangents: ParamBlock) -> torch.Tensor:
        return tangents["factor"] @ self.factor.T
