"""Random search: architectures in a seeded random order; the incumbent is the best by the proxy."""

from __future__ import annotations

import numpy as np

from ntknas.search.strategies.base import (
    FIRST,
    Ask,
    Ledger,
    ProposalOrder,
    Proposals,
    Search,
    Strategy,
    StrategySettings,
)


def random_search(space: Proposals, rng: np.random.Generator, ledger: Ledger, settings: StrategySettings) -> Search:
    """Score architectures in a random order until the budget is spent; the incumbent is the best
    by the proxy. With only a candidate budget all candidates are asked for at once."""
    order = ProposalOrder(space, rng)
    position = 0
    while not ledger.exhausted() and position < len(order):
        if ledger.budget.seconds is None and ledger.budget.candidates is not None:
            take = ledger.budget.candidates - ledger.evaluations
        else:
            take = settings.chunk
            if ledger.budget.candidates is not None:
                take = min(take, ledger.budget.candidates - ledger.evaluations)
        archs = order.take(position, position + take)
        position += len(archs)
        evaluations = yield Ask(FIRST, archs)
        for arch, evaluation in zip(archs, evaluations):
            if ledger.exhausted():
                break
            ledger.record(FIRST, arch, evaluation)


RANDOM = Strategy("random", random_search, description="random search: a seeded random order of the space")
