"""Custom search spaces: any callable that returns an ``nn.Module`` mapping images to logits."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from ntknas.errors import NtknasError
from ntknas.spaces.base import SearchSpace

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


def _qualified_name(factory: Any) -> str:
    module = getattr(factory, "__module__", None) or "?"
    name = getattr(factory, "__qualname__", None) or getattr(factory, "__name__", None) or type(factory).__name__
    return f"{module}:{name}"


class CustomSpace(SearchSpace):
    """A user's own networks: each architecture is a callable returning an ``nn.Module``.

    On the command line an architecture is ``module:attribute`` (an importable factory); from
    Python any callable works. It has no fixed order and no neighbourhood: for search over a
    custom space, register a :class:`~ntknas.spaces.base.SearchSpace` of your own.
    """

    name = "custom"
    title = "custom"
    table_key_columns = ("arch",)
    arch_help = "module:attribute naming an importable factory that returns an nn.Module"

    def parse(self, text: str) -> ModuleFactory:
        module_name, _, attribute = str(text).strip().partition(":")
        if not module_name or not attribute:
            raise NtknasError(
                f"custom architecture {text!r} must be module:attribute naming a factory, e.g. mypkg.nets:make_net"
            )
        try:
            target: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as error:
            raise NtknasError(f"cannot import the custom factory {text!r} ({error}): check the module path") from None
        if not callable(target):
            raise NtknasError(f"{text!r} is not callable: name a function or class that returns an nn.Module")
        return target  # type: ignore[no-any-return]

    def key(self, arch: Any) -> str:
        return arch if isinstance(arch, str) else _qualified_name(arch)

    def neighbours(self, arch: Any) -> list[Any]:
        return []

    def build(self, arch: Any, num_classes: int, **options: Any) -> nn.Module:
        from ntknas.spaces.init import InitScheme, initialize

        # The initialization options are ntknas's, applied after the factory, not the factory's.
        scheme = InitScheme(options.pop("init", "study"), options.pop("bias_init", "default"))
        network = build_custom(self.coerce(arch), num_classes, **options)
        return initialize(network, self.name, scheme.weights, scheme.biases)

