"""Search spaces: NAS-Bench-201, NAS-Bench-101, custom ``nn.Module`` factories, and any space a
user registers with :func:`register_space` (see :mod:`ntknas.spaces.base`)."""

from __future__ import annotations

from typing import Any

from torch import nn

from ntknas.spaces.base import SearchSpace, SpaceProtocol, available_spaces, get_space, register_space


def check_space(space: str) -> str:
    """The name of a registered space (raises a one-line error naming the valid ones)."""
    return get_space(space).name


def build_network(space: str | SearchSpace, arch: Any, num_classes: int = 10, **options: Any) -> nn.Module:
    """Build the network of ``arch`` in ``space`` (a registered name or a space object).

    - ``"nb201"``: ``arch`` is an arch string, a 6-digit op-code string, an official index or an
      ``NB201Arch``; options ``variant`` ("study" | "benchmark"), ``channels``, ``cells_per_stage``.
    - ``"nb101"``: ``arch`` is ``(adjacency, ops)`` with NB101 op names, or an ``NB101Spec``;
      options ``stem_channels`` (default 128), ``num_stacks``, ``cells_per_stack``.
    - ``"custom"``: ``arch`` is a callable returning an ``nn.Module``; it receives
      ``num_classes`` (and the options) where its signature accepts them.

    The built-in spaces take ``init`` ("study" by default | "default" | "xavier" | "kaiming" | "zero")
    and ``bias_init`` ("default" | "zero"), applied after construction
    (:mod:`ntknas.spaces.init`): "study" re-initializes NB101 networks as the study did and keeps
    PyTorch's initialization elsewhere.
    """
    return get_space(space).build(arch, num_classes, **options)


__all__ = [
    "SearchSpace",
    "SpaceProtocol",
    "available_spaces",
    "build_network",
    "check_space",
    "get_space",
    "register_space",
]
