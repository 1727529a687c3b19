"""Search spaces: NAS-Bench-201, NAS-Bench-101 and custom ``nn.Module`` factories."""

from __future__ import annotations

from typing import Any

from torch import nn

from ntknas.errors import UnknownNameError

SPACES = ("nb201", "nb101", "custom")


def check_space(space: str) -> str:
    if space not in SPACES:
        raise UnknownNameError(f"unknown search space {space!r}: use one of {', '.join(SPACES)}")
    return space


def build_network(space: str, arch: Any, num_classes: int = 10, **options: Any) -> nn.Module:
    """Build the network of ``arch`` in ``space``.

    - ``"nb201"``: ``arch`` is an arch string, a 6-digit op-code string, an official index or an
      ``NB201Arch``; options ``variant`` ("study" | "benchmark"), ``channels``, ``cells_per_stage``.
    - ``"nb101"``: ``arch`` is ``(adjacency, ops)`` with NB101 op names, or an ``NB101Spec``;
      options ``stem_channels`` (default 128), ``num_stacks``, ``cells_per_stack``.
    - ``"custom"``: ``arch`` is a callable returning an ``nn.Module``; it receives
      ``num_classes`` (and the options) where its signature accepts them.
    """
    check_space(space)
    if space == "nb201":
        from ntknas.spaces.nb201 import build_nb201

        return build_nb201(arch, num_classes=num_classes, **options)
    if space == "nb101":
        from ntknas.spaces.nb101 import build_nb101

        return build_nb101(arch, num_classes=num_classes, **options)
    from ntknas.spaces.custom import build_custom

    return build_custom(arch, num_classes, **options)


__all__ = ["SPACES", "build_network", "check_space"]
