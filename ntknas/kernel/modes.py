"""Normalization modes for kernel computation, and whether they couple the samples of a batch."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ntknas.errors import UnknownNameError

BN_MODES = ("train", "eval")

_NORMALIZATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)


def check_bn_mode(bn_mode: str) -> str:
    if bn_mode not in BN_MODES:
        raise UnknownNameError(f"unknown BatchNorm mode {bn_mode!r}: use 'train' or 'eval'")
    return bn_mode


def uses_batch_statistics(module: nn.Module) -> bool:
    """True for a BatchNorm layer that normalizes with the current batch's statistics.

    That is train mode, and also eval mode for layers built with ``track_running_stats=False``
    (the study's NB201 cells), which keep no running statistics to fall back on.
    """
    if not isinstance(module, nn.modules.batchnorm._BatchNorm):
        return False
    return module.training or module.running_mean is None


@contextlib.contextmanager
def kernel_mode(net: nn.Module, bn_mode: str) -> Iterator[nn.Module]:
    """Put normalization layers in ``bn_mode`` and everything else in eval mode; restore after.

    Only normalization layers follow ``bn_mode`` so that a custom network's dropout cannot make
    the kernel random. Running statistics that a train-mode forward updates are restored too,
    so computing a kernel never changes the network.
    """
    check_bn_mode(bn_mode)
    training_flags = {module: module.training for module in net.modules()}
    saved_buffers = {
        name: buffer.detach().clone() for name, buffer in net.named_buffers() if buffer is not None
    }
    try:
        net.eval()
        if bn_mode == "train":
            for module in net.modules():
                if isinstance(module, _NORMALIZATION_TYPES):
                    module.train()
        yield net
    finally:
        for module, flag in training_flags.items():
            module.training = flag
        with torch.no_grad():
            for name, buffer in net.named_buffers():
                if name in saved_buffers:
                    buffer.copy_(saved_buffers[name])


def couples_samples(net: nn.Module, inputs: torch.Tensor) -> bool:
    """Whether one sample's outputs depend on other samples of the batch, in the current mode.

    BatchNorm layers that use batch statistics couple the samples by construction. Any other
    coupling (a custom layer mixing the batch) is detected by a probe: the gradient of sample 0's
    outputs with respect to sample 1's input.
    """
    if any(uses_batch_statistics(module) for module in net.modules()):
        return True
    if inputs.shape[0] < 2:
        return False
    probe = inputs[:2].detach().clone().requires_grad_(True)
    with torch.enable_grad():
        output = net(probe)
        (gradient,) = torch.autograd.grad(output[0].sum(), probe, allow_unused=True)
    return gradient is not None and bool(gradient[1].abs().max() > 0)
