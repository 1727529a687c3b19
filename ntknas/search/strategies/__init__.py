"""Search strategies, registered by name like spaces and metrics: random search
(:mod:`~ntknas.search.strategies.random`), regularized evolution
(:mod:`~ntknas.search.strategies.rea`), a two-stage search
(:mod:`~ntknas.search.strategies.two_stage`), and any a user adds with
:func:`register_strategy` (``examples/add_strategy.py``).

What they share (proposals, asks, evaluations, the ledger, :class:`Strategy`) is in
:mod:`ntknas.search.strategies.base`.
"""

from ntknas.search.strategies.base import (
    FIRST,
    MAX_STALE_PROPOSALS,
    SECOND,
    STAGES,
    Ask,
    Budget,
    Evaluation,
    Ledger,
    ProposalOrder,
    Proposals,
    Search,
    Step,
    Strategy,
    StrategyFunction,
    StrategySettings,
    better,
)
from ntknas.search.strategies.random import random_search
from ntknas.search.strategies.rea import regularized_evolution
from ntknas.search.strategies.registry import available_strategies, get_strategy, register_strategy
from ntknas.search.strategies.two_stage import two_stage

__all__ = [
    "FIRST",
    "MAX_STALE_PROPOSALS",
    "SECOND",
    "STAGES",
    "Ask",
    "Budget",
    "Evaluation",
    "Ledger",
    "ProposalOrder",
    "Proposals",
    "Search",
    "Step",
    "Strategy",
    "StrategyFunction",
    "StrategySettings",
    "available_strategies",
    "better",
    "get_strategy",
    "random_search",
    "regularized_evolution",
    "register_strategy",
    "two_stage",
]
