"""Exact empirical Neural Tangent Kernels of a minibatch (see docs/protocol.md, "The kernel").

A kernel is K = J Jᵀ where the rows of J are gradients of scalar network outputs with respect to
the chosen parameters. The summed-logit kernel (the one the NTK metrics use) has one row per
sample, the gradient of that sample's summed logits computed with the whole batch in one forward
pass; the full kernel has one row per (sample, logit).

Four exact strategies compute J:

``per_sample``
    A vectorized per-sample gradient (``torch.func.vmap`` of ``jacrev``), about the cost of one
    backward pass in all. Exact only when the samples are independent, so it is refused when
    they are coupled (BatchNorm with batch statistics).
``batched``
    One forward pass, then many one-hot cotangents through one vectorized backward
    (``is_grads_batched``), in chunks of rows. Exact for coupled samples; fast where the device
    has parallelism to spare (GPUs).
``loop``
    One forward pass, then one backward pass per row with the graph retained. Exact for coupled
    samples; the least memory.
``adaptive``
    For coupled samples: times a vectorized block against single rows on the first rows of the
    batch and computes the rest with the faster. Which wins on a CPU depends on the network,
    batch size and cores (measured both ways here), so the engine measures instead of guessing.

``auto`` picks ``per_sample`` for independent samples, else ``batched`` on a GPU and ``loop`` on
a CPU, where ``perf/ntk_speed.py`` measured the vectorized backward as no faster than single rows
on 2 cores (``adaptive`` still lets a machine with more cores find out for itself). The result
names the method that computed the rows.

J is accumulated into K per parameter tensor in the network's precision and summed in float64,
which costs nothing extra and is about 100× more accurate than one float32 product.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from ntknas.errors import NtknasError, UnknownNameError
from ntknas.kernel.modes import couples_samples, kernel_mode
from ntknas.kernel.params import select_parameters
from ntknas.kernel.passes import DEFAULT_BATCHED_CHUNK, OutputReduction, Pullback, all_logits, summed_logits
from ntknas.kernel.precision import ieee_float32

STRATEGIES = ("auto", "per_sample", "batched", "loop", "adaptive")
FORWARDS = ("batch", "per-image")
"""How the samples reach the network: all in one forward pass (``batch``; batch-statistics
BatchNorm then couples them), or each image in a forward pass of its own (``per-image``)."""

# The adaptive CPU strategy times one vectorized block of this many rows against single rows.
ADAPTIVE_CHUNK = 16
ADAPTIVE_LOOP_TRIAL = 2

@dataclass(frozen=True)
class NTKResult:
    """A kernel and how it was computed."""

    kernel: torch.Tensor
    strategy: str
    coupled: bool
    num_parameters: int
    seconds: float


def choose_strategy(coupled: bool, device: torch.device, strategy: str = "auto") -> str:
    """The exact strategy to use; refuses an inexact request with a one-line error."""
    if strategy not in STRATEGIES:
        raise UnknownNameError(
            f"unknown kernel strategy {strategy!r}: use one of {', '.join(STRATEGIES)}"
        )
    if strategy == "per_sample" and coupled:
        raise NtknasError(
            "strategy 'per_sample' would be inexact here: BatchNorm couples the samples of the "
            "batch; use strategy 'auto', 'batched' or 'loop'"
        )
    if strategy != "auto":
        return strategy
    if not coupled:
        return "per_sample"
    return "batched" if device.type == "cuda" else "loop"


def compute_ntk(
    net: nn.Module,
    inputs: torch.Tensor,
    *,
    bn_mode: str = "train",
    params: str = "weights",
    chunk_size: int | None = None,
    strategy: str = "auto",
    reduction: OutputReduction = summed_logits,
    forward: str = "batch",
) -> NTKResult:
    """Compute K = J Jᵀ exactly and report the strategy used.

    ``forward="per-image"`` computes each image's rows of J with a forward pass of that image
    alone (the study's kernel tracking with several images), so no sample sees another through
    batch statistics; ``"batch"`` (default) runs the whole batch at once (see docs/protocol.md, "The kernel").
    The network is left as it was: its modes and running statistics are restored.
    """
    if chunk_size is not None and chunk_size < 1:
        raise NtknasError(f"chunk_size must be a positive integer, got {chunk_size}")
    if forward not in FORWARDS:
        raise UnknownNameError(f"unknown forward mode {forward!r}: use one of {', '.join(FORWARDS)}")
    start = time.perf_counter()
    selected, inputs = prepare_kernel_inputs(net, inputs, params)
    groups = [inputs] if forward == "batch" else [inputs[i:i + 1] for i in range(inputs.shape[0])]
    with ieee_float32():  # the Jacobian and its Gram product (a user's TF32 matmul setting too)
        with kernel_mode(net, bn_mode):
            parts = [_jacobian(net, group, selected, reduction, chunk_size, strategy) for group in groups]
        coupled = any(part[2] for part in parts)
        chosen = parts[0][1]
        jacobian = parts[0][0] if len(parts) == 1 else {
            name: torch.cat([part[0][name] for part in parts]) for name in selected
        }
        kernel = gram_float64(jacobian)
    if kernel.device.type == "cuda":
        torch.cuda.synchronize(kernel.device)
    return NTKResult(
        kernel=kernel,
        strategy=chosen,
        coupled=coupled,
        num_parameters=sum(p.numel() for p in selected.values()),
        seconds=time.perf_counter() - start,
    )


def prepare_kernel_inputs(
    net: nn.Module, inputs: torch.Tensor, params: str
) -> tuple[dict[str, nn.Parameter], torch.Tensor]:
    """The kernel's parameters and the inputs on their device and in their dtype: shared by the
    exact kernel and the matrix-free products so both differentiate the same function."""
    selected = select_parameters(net, params)
    first = next(iter(selected.values()))
    return selected, inputs.to(device=first.device, dtype=first.dtype)


def _jacobian(
    net: nn.Module,
    inputs: torch.Tensor,
    selected: dict[str, nn.Parameter],
    reduction: OutputReduction,
    chunk_size: int | None,
    strategy: str,
) -> tuple[dict[str, torch.Tensor], str, bool]:
    """J of one forward pass of ``inputs``, the strategy that computed it, and whether the
    samples were coupled."""
    coupled = couples_samples(net, inputs)
    chosen = choose_strategy(coupled, inputs.device, strategy)
    if chosen == "per_sample":
        return _per_sample_jacobian(net, inputs, selected, reduction, chunk_size), chosen, coupled
    jacobian, chosen = _coupled_jacobian(net, inputs, selected, reduction, chunk_size, chosen)
    return jacobian, chosen, coupled


def empirical_ntk(
    net: nn.Module,
    inputs: torch.Tensor,
    bn_mode: str = "train",
    params: str = "weights",
    chunk_size: int | None = None,
    strategy: str = "auto",
) -> torch.Tensor:
    """The summed-logit NTK (docs/protocol.md, "The kernel") as a float64 tensor [B, B].

    Row i of J is the gradient of sample i's summed logits with respect to ``params``
    (``"weights"``: weights without the classifier, the study's choice; ``"all"``), computed with
    the whole batch in one forward pass so train-mode BatchNorm couples the samples exactly as in
    the study. ``chunk_size`` bounds how many rows are computed at once (memory).
    """
    return compute_ntk(
        net, inputs, bn_mode=bn_mode, params=params, chunk_size=chunk_size, strategy=strategy
    ).kernel


def full_ntk(
    net: nn.Module,
    inputs: torch.Tensor,
    bn_mode: str = "eval",
    params: str = "all",
    chunk_size: int | None = None,
    strategy: str = "auto",
    forward: str = "batch",
) -> torch.Tensor:
    """The per-logit NTK Θ as a float64 tensor [B·C, B·C] (docs/protocol.md, "The kernel"; used for kernel tracking).

    Block (i, j) is the C×C matrix J_i J_jᵀ; rows are ordered sample-major. Defaults follow the
    study: eval mode, all parameters. ``forward="per-image"`` takes each J_i from a forward pass
    of image i alone, as the study's kernel tracking did with several images (where BatchNorm
    keeps no running statistics, a joint forward would couple them); with one image both forms
    are the same kernel.
    """
    return compute_ntk(
        net,
        inputs,
        bn_mode=bn_mode,
        params=params,
        chunk_size=chunk_size,
        strategy=strategy,
        reduction=all_logits,
        forward=forward,
    ).kernel


def gram_float64(jacobian: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ_l J_l J_lᵀ: each product in J's precision, the sum in float64."""
    blocks = iter(jacobian.values())
    first = next(blocks)
    kernel = (first @ first.T).to(torch.float64)
    for block in blocks:
        kernel += (block @ block.T).to(torch.float64)
    return kernel


def _per_sample_jacobian(
    net: nn.Module,
    inputs: torch.Tensor,
    selected: dict[str, nn.Parameter],
    reduction: OutputReduction,
    chunk_size: int | None,
) -> dict[str, torch.Tensor]:
    detached = {name: p.detach() for name, p in selected.items()}

    def sample_outputs(parameters: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return reduction(functional_call(net, parameters, (x.unsqueeze(0),), strict=False))

    per_sample = vmap(jacrev(sample_outputs), in_dims=(None, 0), chunk_size=chunk_size)
    # The transform differentiates with respect to ``detached`` even under no_grad; no_grad only
    # stops autograd from also recording a graph through the parameters left out of the kernel.
    with torch.no_grad():
        jacobian = per_sample(detached, inputs)
    # [B, rows per sample, *shape] -> [B·rows per sample, numel], sample-major.
    return {
        name: block.reshape(-1, selected[name].numel()) for name, block in jacobian.items()
    }


def _coupled_jacobian(
    net: nn.Module,
    inputs: torch.Tensor,
    selected: dict[str, nn.Parameter],
    reduction: OutputReduction,
    chunk_size: int | None,
    strategy: str,
) -> tuple[dict[str, torch.Tensor], str]:
    """J from one forward pass and backward passes of row blocks; returns J and the method used.

    ``adaptive`` times the first rows both ways (a vectorized block, then single rows) and
    computes the rest with the faster: which one wins on a CPU depends on the network, the batch
    and the core count, and the rows timed are part of the result, so the choice is free.
    """
    pullback = Pullback.of(net, inputs, selected, reduction)
    rows = pullback.outputs.shape[0]
    jacobian = pullback.zeros(rows)
    identity = torch.eye(rows, dtype=pullback.outputs.dtype, device=pullback.outputs.device)

    def backward_rows(block: slice, batched: bool) -> None:
        pullback.rows_into(jacobian, identity[block], block, vectorized=batched)

    step = chunk_size or DEFAULT_BATCHED_CHUNK
    done = 0
    if strategy == "adaptive":
        step = chunk_size or ADAPTIVE_CHUNK
        trial = min(step, rows)
        begin = time.perf_counter()
        backward_rows(slice(0, trial), batched=True)
        batched_per_row = (time.perf_counter() - begin) / trial
        single = min(ADAPTIVE_LOOP_TRIAL, rows - trial)
        begin = time.perf_counter()
        backward_rows(slice(trial, trial + single), batched=False)
        loop_per_row = (time.perf_counter() - begin) / max(single, 1)
        done = trial + single
        strategy = "batched" if single == 0 or batched_per_row < loop_per_row else "loop"
    for begin_row in range(done, rows, step):
        backward_rows(slice(begin_row, min(begin_row + step, rows)), strategy == "batched")
    return jacobian, strategy

