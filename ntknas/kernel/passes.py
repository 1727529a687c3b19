"""Jacobian passes of a network on one batch, shared by the exact kernel and matrix-free.

J ∈ R^{R×P} stacks the gradients of R scalar outputs (a reduction of the logits of one forward
pass) with respect to the kernel's parameters. Two kinds of pass reach it:

* a **pullback** ω ↦ Jᵀω is one backward pass of the outputs with cotangent ω (a vector-Jacobian
  product) through a retained graph; the exact kernel pulls back the rows of the identity, the
  matrix-free estimators a few chosen rows;
* a **pushforward** v ↦ Jv is one forward-mode pass with parameter tangent v (a Jacobian-vector
  product); on a CPU it runs through a linearized trace of the network.

Either can be vectorized over k rows at once (``is_grads_batched``; ``vmap`` over ``jvp``), which
pays where the device has parallelism to spare. A module without a batching rule refuses it with a
``RuntimeError`` (see :func:`batching_refused`); what to do then is the caller's choice.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.func import functional_call, jvp, linearize, vmap

logger = logging.getLogger(__name__)

ParamBlock = dict[str, torch.Tensor]
"""Parameter-space vectors stacked by row: name → [k, numel of the parameter]."""

OutputReduction = Callable[[torch.Tensor], torch.Tensor]

# Rows per vectorized pass when no chunk size is given: enough to keep a GPU busy, bounded so
# that a 256-sample batch does not hold 256 copies of every activation at once.
DEFAULT_BATCHED_CHUNK = 32

_MEMORY_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory")


def summed_logits(logits: torch.Tensor) -> torch.Tensor:
    """One scalar per sample: the sum of its logits (the metrics' kernel)."""
    return logits.sum(dim=-1)


def all_logits(logits: torch.Tensor) -> torch.Tensor:
    """One scalar per (sample, logit), sample-major (the full per-logit kernel)."""
    return logits.reshape(-1)


def batching_refused(error: BaseException) -> bool:
    """Whether a vectorized pass failed because the network does not support it.

    PyTorch reports a missing batching rule, an in-place update of a captured tensor or an
    ``autograd.Function`` without ``setup_context`` as a plain ``RuntimeError`` with varying
    messages (checked on torch 2.13), so the type cannot be narrowed further; what must never
    count is running out of memory: CUDA's ``torch.OutOfMemoryError`` (a ``RuntimeError``) and the
    CPU allocator's ``RuntimeError`` ("can't allocate memory") propagate, so the caller neither
    hides them nor switches to a slower path that would fail the same way later.
    """
    if not isinstance(error, RuntimeError) or isinstance(error, torch.OutOfMemoryError):
        return False
    message = str(error).lower()
    return not any(text in message for text in _MEMORY_MESSAGES)


class Pullback:
    """Backward passes of ``outputs`` [R] through one retained graph: cotangent rows ω_j ↦ Jᵀω_j."""

    def __init__(self, outputs: torch.Tensor, parameters: dict[str, nn.Parameter]) -> None:
        self.outputs = outputs
        self.names = list(parameters)
        self.tensors = [parameters[name] for name in self.names]

    @classmethod
    def of(
        cls,
        net: nn.Module,
        inputs: torch.Tensor,
        parameters: dict[str, nn.Parameter],
        reduction: OutputReduction = summed_logits,
    ) -> Pullback:
        """One forward pass of ``inputs``, its graph kept for the pullbacks."""
        with torch.enable_grad():
            return cls(reduction(net(inputs)), parameters)

    def zeros(self, rows: int) -> ParamBlock:
        return {
            name: torch.zeros(rows, p.numel(), dtype=p.dtype, device=p.device)
            for name, p in zip(self.names, self.tensors)
        }

    def rows_into(self, block: ParamBlock, cotangents: torch.Tensor, rows: slice, *, vectorized: bool) -> None:
        """Jᵀ of the [k, R] ``cotangents`` into ``block[rows]``: one vectorized pass or k single ones."""
        if vectorized:
            gradients = torch.autograd.grad(
                self.outputs, self.tensors, grad_outputs=cotangents,
                retain_graph=True, allow_unused=True, is_grads_batched=True,
            )
            self._store(block, gradients, rows)
            return
        for offset, row in enumerate(range(rows.start, rows.stop)):
            gradients = torch.autograd.grad(
                self.outputs, self.tensors, grad_outputs=cotangents[offset], retain_graph=True, allow_unused=True
            )
            self._store(block, gradients, slice(row, row + 1))

    def __call__(self, cotangents: torch.Tensor, *, vectorized: bool, chunk: int | None = None) -> ParamBlock:
        """Jᵀω_j for the [k, R] rows ``cotangents``; vectorized in chunks of ``chunk`` rows
        (default :data:`DEFAULT_BATCHED_CHUNK`)."""
        chunk = chunk or DEFAULT_BATCHED_CHUNK
        count = cotangents.shape[0]
        block = self.zeros(count)
        if vectorized and count > 1:
            for start in range(0, count, chunk):
                rows = slice(start, min(start + chunk, count))
                self.rows_into(block, cotangents[rows], rows, vectorized=True)
        else:
            self.rows_into(block, cotangents, slice(0, count), vectorized=False)
        return block

    def _store(self, block: ParamBlock, gradients: tuple[torch.Tensor | None, ...], rows: slice) -> None:
        for name, gradient in zip(self.names, gradients):
            target = block[name][rows]
            if gradient is None:  # a parameter the outputs do not reach has zero gradient
                target.zero_()
            else:
                target.copy_(gradient.reshape(target.shape))


class NetworkPasses:
    """Pullbacks and pushforwards of J for one network on one batch, in the network's current mode.

    The forward pass runs once, on construction; pullbacks go through its retained graph and
    pushforwards are forward-mode passes of the same function (:func:`torch.func.functional_call`
    of the network with the selected parameters).
    """

    def __init__(
        self,
        net: nn.Module,
        inputs: torch.Tensor,
        parameters: dict[str, nn.Parameter],
        reduction: OutputReduction = summed_logits,
    ) -> None:
        self.net = net
        self.inputs = inputs
        self.selected = parameters
        self.reduction = reduction
        self.pullbacks = Pullback.of(net, inputs, parameters, reduction)
        self._linear: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None
        self._linearizable = True

    @property
    def outputs(self) -> torch.Tensor:
        return self.pullbacks.outputs

    def vjp_rows(self, cotangents: torch.Tensor, *, vectorized: bool) -> ParamBlock:
        """[k, R] cotangents ω_j → Jᵀω_j as a parameter block of k rows."""
        cotangents = cotangents.to(device=self.outputs.device, dtype=self.outputs.dtype)
        return self.pullbacks(cotangents, vectorized=vectorized)

    def jvp_rows(self, tangents: ParamBlock, *, vectorized: bool) -> torch.Tensor:
        """A parameter block of k rows v_j → [k, R] rows J v_j."""
        shapes = {name: p.shape for name, p in self.selected.items()}

        def shaped(rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {name: rows[name].reshape(shapes[name]) for name in shapes}

        count = next(iter(tangents.values())).shape[0]
        # no_grad: the transform differentiates by itself; autograd need not record the other parameters.
        with torch.no_grad(), statistics_untouched(self.net):
            if vectorized and count > 1:
                return vmap(
                    lambda rows: jvp(self._outputs_of, (self._primals(),), (shaped(rows),))[1],
                    chunk_size=DEFAULT_BATCHED_CHUNK,
                )(tangents)
            rows = [{name: block[j] for name, block in tangents.items()} for j in range(count)]
            linear = self._linearized()
            if linear is not None:
                return torch.stack([linear(shaped(row)) for row in rows])
            return torch.stack([jvp(self._outputs_of, (self._primals(),), (shaped(row),))[1] for row in rows])

    def _primals(self) -> dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in self.selected.items()}

    def _outputs_of(self, parameters: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.reduction(functional_call(self.net, parameters, (self.inputs,), strict=False))

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
            except torch.OutOfMemoryError:
                raise
            except Exception as error:  # noqa: BLE001 - tracing fails in many ways; jvp still works
                logger.debug("no linearized JVP for this network (%s): using jvp", error)
                self._linearizable = False
        return self._linear


@contextlib.contextmanager
def statistics_untouched(net: nn.Module) -> Iterator[None]:
    """Train-mode BatchNorm layers stop updating running statistics inside the block.

    Function transforms refuse the in-place update of a captured buffer. A train-mode layer
    normalizes with the batch's statistics whether or not it tracks running ones, so its outputs
    (and their derivatives) are unchanged; :func:`ntknas.kernel.modes.kernel_mode` restores the
    buffers anyway.
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
