"""Custom search spaces: any callable that returns an ``nn.Module`` mapping images to logits."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from ntknas.errors import NtknasError

ModuleFactory = Callable[..., nn.Module]


def build_custom(factory: ModuleFactory, num_classes: int, **options: Any) -> nn.Module:
    """Call ``factory``, passing ``num_classes`` (and ``options``) where it accepts them."""
    if not callable(factory):
        raise NtknasError(
            f"space 'custom' needs a callable that returns an nn.Module, got {type(factory).__name__}"
        )
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without a signature: call as given
        signature = None
    accepts_any = signature is None or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()
    )
    arguments = dict(options)
    if accepts_any or "num_classes" in signature.parameters:  # type: ignore[union-attr]
        arguments["num_classes"] = num_classes
    network = factory(**arguments)
    if not isinstance(network, nn.Module):
        raise NtknasError(
            f"the custom factory returned {type(network).__name__}, not a torch.nn.Module"
        )
    return network
