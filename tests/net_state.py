"""A network's full state (weights, buffers, modes, .grad, requires_grad), to check that scoring left it as it was."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def snapshot(net: nn.Module) -> tuple[Any, ...]:
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    modes = {name: module.training for name, module in net.named_modules()}
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in net.named_parameters()}
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    return state, modes, grads, flags


def assert_same(before: tuple[Any, ...], after: tuple[Any, ...]) -> None:
    state_a, modes_a, grads_a, flags_a = before
    state_b, modes_b, grads_b, flags_b = after
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    assert modes_a == modes_b
    assert flags_a == flags_b
    for name, grad in grads_a.items():
        if grad is None:
            assert grads_b[name] is None, name
        else:
            assert torch.equal(grad, grads_b[name]), name
