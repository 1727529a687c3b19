"""Size metrics: trainable parameters and per-image FLOPs, counted from the module graph.

FLOPs follow NAS-Bench-201's published convention (the benchmark authors' flop counter): the
multiply-accumulates of convolution and linear layers, plus one addition per output element for
a layer with a bias, per image, at the input size of the batch. BatchNorm, activations, pooling
and elementwise additions count nothing. With that convention the benchmark variant of the
NB201 network gives the benchmark's published extremes (7.78305 and 220.11969 MFLOPs on
CIFAR-10), which the tests check.

Only work done inside ``nn.Conv1d/2d/3d``, ``nn.ConvTranspose*`` and ``nn.Linear`` modules is
seen; a network that calls ``torch.nn.functional.conv2d`` directly is under-counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ntknas.kernel.modes import kernel_mode
from ntknas.metrics.registry import MetricContext, MetricUnavailable, register_metric

__all__ = ["FlopCount", "count_parameters", "count_flops", "context_flops"]


@dataclass(frozen=True)
class FlopCount:
    """Per-image operation counts of one forward pass.

    ``macs`` are multiply-accumulates of conv/linear weights; ``bias_adds`` one per output
    element of a layer with a bias; ``flops = macs + bias_adds`` is NAS-Bench-201's "FLOPs"
    (reported there in units of 1e6).
    """

    macs: float
    bias_adds: float
    layers: int

    @property
    def flops(self) -> float:
        return self.macs + self.bias_adds


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameter entries (``requires_grad``); shared tensors count once."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def _layer_counts(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> tuple[int, int]:
    """(MACs, bias adds) of one call of a conv or linear module, summed over the batch."""
    bias_adds = output.numel() if getattr(module, "bias", None) is not None else 0
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features, bias_adds
    assert isinstance(module, nn.modules.conv._ConvNd)
    kernel = math.prod(module.kernel_size)
    if module.transposed:
        # Every input element is scattered through a kernel into out_channels / groups maps.
        return inputs.numel() * (module.out_channels // module.groups) * kernel, bias_adds
    return output.numel() * (module.in_channels // module.groups) * kernel, bias_adds


def count_flops(net: nn.Module, inputs: torch.Tensor) -> FlopCount:
    """Per-image MACs and bias adds of one forward pass of ``net`` at ``inputs``' image size.

    Runs one forward of (at most) the first two images under ``torch.no_grad`` with every layer
    in eval mode and divides by the number of images; the network's modes and buffers are
    restored afterwards. Two images rather than one so that a batch-statistics BatchNorm1d has
    more than one value per channel.
    """
    if inputs.dim() < 1 or inputs.shape[0] == 0:
        raise MetricUnavailable("FLOPs need at least one input image; the batch is empty")
    probe = inputs[: min(2, inputs.shape[0])]
    totals = [0, 0, 0]

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        macs, adds = _layer_counts(module, args[0], output)
        totals[0] += macs
        totals[1] += adds
        totals[2] += 1

    handles = [
        module.register_forward_hook(hook)
        for module in net.modules()
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd))
    ]
    try:
        with kernel_mode(net, "eval"), torch.no_grad():
            net(probe)
    finally:
        for handle in handles:
            handle.remove()
    images = probe.shape[0]
    return FlopCount(macs=totals[0] / images, bias_adds=totals[1] / images, layers=totals[2])


@register_metric(
    "params",
    higher_is_better=True,
    family="size",
    uses_bn_mode=False,
    formula="number of trainable parameters, Σ numel(θ) over θ with requires_grad",
)
def _params(context: MetricContext) -> float:
    """Trainable parameter count; ignores the batch and ``bn_mode``.

    Registered higher-is-better: in NAS-Bench-201 and -101 larger networks are the more accurate
    ones, which is why parameter count is the baseline every zero-cost proxy is compared with.
    """
    return float(count_parameters(context.net))


@register_metric(
    "flops",
    higher_is_better=True,
    family="size",
    uses_bn_mode=False,
    formula=(
        "per-image MACs of conv and linear layers + one add per output element of a biased "
        "layer (NAS-Bench-201's FLOPs convention), at the batch's image size"
    ),
)
def _flops(context: MetricContext) -> float:
    """Per-image FLOPs in NAS-Bench-201's convention (see the module docstring); ignores ``bn_mode``.

    Higher-is-better for the same reason as ``params``.
    """
    return context_flops(context)


def context_flops(context: MetricContext) -> float:
    """The context's network's FLOPs, counted once per context (``flops`` and ``az_complexity``)."""
    count = context.cached("size/flop_count", lambda: count_flops(context.net, context.inputs))
    if count.layers == 0:
        raise MetricUnavailable(
            "the network has no conv or linear module that ran in the forward pass; FLOPs are "
            "counted from nn.Conv*/nn.Linear modules only"
        )
    return count.flops
