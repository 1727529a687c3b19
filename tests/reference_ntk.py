"""Deliberately slow reference kernels, independent of the engine, for cross-checks."""

from __future__ import annotations

import torch
from torch import nn


def _set_modes(net: nn.Module, bn_mode: str) -> None:
    net.eval()
    if bn_mode == "train":
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train()


def _kernel_parameters(net: nn.Module, params: str) -> list[nn.Parameter]:
    if params == "all":
        return [p for p in net.parameters()]
    return [
        p for name, p in net.named_parameters()
        if "weight" in name and not name.startswith("classifier.")
    ]


def reference_ntk(net: nn.Module, inputs: torch.Tensor, bn_mode: str, params: str = "weights") -> torch.Tensor:
    """One forward pass, then per sample a backward of f(X)[i].sum() with the graph retained;
    gradients read from ``.grad``; K = J Jᵀ in float64."""
    _set_modes(net, bn_mode)
    chosen = _kernel_parameters(net, params)
    outputs = net(inputs)
    rows = []
    for i in range(inputs.shape[0]):
        net.zero_grad(set_to_none=False)
        outputs[i].sum().backward(retain_graph=True)
        rows.append(torch.cat([p.grad.detach().reshape(-1).clone() for p in chosen]))
    jacobian = torch.stack(rows).double()
    return jacobian @ jacobian.T


def reference_full_ntk(net: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Per-logit per-sample backward loop over all parameters, eval mode; [B·C, B·C]."""
    net.eval()
    chosen = list(net.parameters())
    outputs = net(inputs)
    rows = []
    for i in range(outputs.shape[0]):
        for c in range(outputs.shape[1]):
            net.zero_grad(set_to_none=False)
            outputs[i, c].backward(retain_graph=True)
            rows.append(torch.cat([p.grad.detach().reshape(-1).clone() for p in chosen]))
    jacobian = torch.stack(rows).double()
    return jacobian @ jacobian.T


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())
