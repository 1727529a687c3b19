"""Regularized (aging) evolution, Real et al. 2019, with the proxy as fitness."""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import numpy as np

from ntknas.errors import NtknasError, option
from ntknas.search.strategies.base import (
    FIRST,
    MAX_STALE_PROPOSALS,
    Ask,
    Budget,
    Evaluation,
    Ledger,
    ProposalOrder,
    Proposals,
    Search,
    Strategy,
    StrategySettings,
    better,
)

log = logging.getLogger(__name__)


def regularized_evolution(
    space: Proposals, rng: np.random.Generator, ledger: Ledger, settings: StrategySettings
) -> Search:
    """Regularized (aging) evolution, Real et al. 2019, Algorithm 1, with the proxy as fitness.

    The population starts as the first ``population`` architectures of the run's random order.
    Each cycle draws ``tournament`` members uniformly with replacement, mutates the fittest (one
    op or edge, uniformly: :meth:`SearchSpace.mutate`), adds the child and removes the oldest
    member. A child the run has already scored re-enters the population with its known score,
    at no cost, and does not count toward the candidate budget.
    """
    if settings.population < 1 or settings.tournament < 1:
        raise NtknasError(f"{option('population')} and {option('tournament')} must be at least 1")
    order = ProposalOrder(space, rng)
    wanted = min(settings.population, len(order))
    if ledger.budget.candidates is not None:
        wanted = min(wanted, ledger.budget.candidates)
    initial = order.take(0, wanted)
    population: deque[tuple[Any, float | None]] = deque()
    known: dict[str, Evaluation] = {}
    evaluations = yield Ask(FIRST, initial)
    for arch, evaluation in zip(initial, evaluations):
        if ledger.exhausted():
            return
        ledger.record(FIRST, arch, evaluation)
        known[ledger.key(arch)] = evaluation
        population.append((arch, evaluation.fitness))
    stale = 0
    while not ledger.exhausted():
        if stale >= MAX_STALE_PROPOSALS:
            log.warning(
                "regularized evolution stopped before spending its budget: its last %d children "
                "had all been scored already", stale,
            )
            return
        contenders = [population[int(rng.integers(len(population)))] for _ in range(settings.tournament)]
        parent = contenders[0]
        for contender in contenders[1:]:
            if better(contender[1], parent[1]):
                parent = contender
        child = space.mutate(parent[0], rng)
        key = ledger.key(child)
        if key in known:
            evaluation = known[key]
            stale += 1
        else:
            stale = 0
            (evaluation,) = yield Ask(FIRST, [child])
            known[key] = evaluation
        ledger.record(FIRST, child, evaluation)
        population.append((child, evaluation.fitness))
        population.popleft()


def rea_caveats(settings: StrategySettings, budget: Budget) -> list[str]:
    """A candidate budget the random initial population uses up leaves nothing to evolve."""
    if budget.candidates is not None and budget.candidates <= settings.population:
        return [
            f"rea with --candidates {budget.candidates} <= --population {settings.population} is random "
            f"search: its random initial population uses the whole budget and it never mutates; "
            f"give --candidates above {settings.population} or a smaller --population"
        ]
    return []


REA = Strategy(
    "rea", regularized_evolution, caveats=rea_caveats,
    description="regularized evolution (REA): aging population, tournament selection, one-change mutation",
)
