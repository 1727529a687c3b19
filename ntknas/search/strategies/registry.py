"""The registry of search strategies: ``--strategy NAME`` and :func:`get_strategy` look names up
here, so a new strategy is one module with one :func:`register_strategy` call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace as dataclass_replace
from typing import overload

from ntknas.errors import UnknownNameError
from ntknas.search.strategies.base import FIRST, Strategy, StrategyFunction

_STRATEGIES: dict[str, Strategy] = {}


@overload
def register_strategy(
    name: str, strategy: None = None, *, stages: tuple[str, ...] = ..., description: str = ..., replace: bool = ...
) -> Callable[[StrategyFunction], StrategyFunction]: ...


@overload
def register_strategy(
    name: str, strategy: Strategy | StrategyFunction, *, stages: tuple[str, ...] = ..., description: str = ...,
    replace: bool = ...,
) -> Strategy: ...


def register_strategy(
    name: str,
    strategy: Strategy | StrategyFunction | None = None,
    *,
    stages: tuple[str, ...] = (FIRST,),
    description: str = "",
    replace: bool = False,
) -> Strategy | Callable[[StrategyFunction], StrategyFunction]:
    """Make a strategy available as ``--strategy NAME``.

    ``strategy`` is a :class:`Strategy` (registered under ``name``) or a generator function
    ``(proposals, rng, ledger, settings) -> Search`` (wrapped in one with ``stages`` and
    ``description``); without it, the call is a decorator for such a function. A name already
    registered is refused unless ``replace`` (re-running a notebook cell, say).
    """
    if strategy is None:
        def decorate(function: StrategyFunction) -> StrategyFunction:
            register_strategy(name, function, stages=stages, description=description, replace=replace)
            return function

        return decorate
    key = str(name).strip().lower()
    if isinstance(strategy, Strategy):
        entry = strategy if strategy.name == key else dataclass_replace(strategy, name=key)
    else:
        entry = Strategy(key, strategy, stages=tuple(stages), description=description or (strategy.__doc__ or "").strip())
    _load_builtin_strategies()  # so that a user's strategy never collides with a builtin loaded later
    if key in _STRATEGIES and not replace:
        raise ValueError(f"search strategy {key!r} is registered twice (pass replace=True to override)")
    _STRATEGIES[key] = entry
    return entry


def _load_builtin_strategies() -> None:
    # Imported for their registration side effect, whichever module a caller imports first.
    from ntknas.search.strategies import builtin  # noqa: F401


def get_strategy(name: str | Strategy) -> Strategy:
    """The registered strategy called ``name`` (a strategy object is returned as it is)."""
    if isinstance(name, Strategy):
        return name
    _load_builtin_strategies()
    strategy = _STRATEGIES.get(str(name).strip().lower())
    if strategy is None:
        raise UnknownNameError(f"unknown search strategy {name!r}: use one of {', '.join(available_strategies())}")
    return strategy


def available_strategies() -> list[str]:
    """Names of the registered strategies, in registration order."""
    _load_builtin_strategies()
    return list(_STRATEGIES)
