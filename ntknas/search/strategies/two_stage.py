"""A two-stage search: random search by a cheap proxy, then its best few by a second proxy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ntknas.errors import NtknasError, option
from ntknas.search.strategies.base import (
    FIRST,
    SECOND,
    Ask,
    Ledger,
    Proposals,
    Search,
    Strategy,
    StrategySettings,
)
from ntknas.search.strategies.random import random_search


def two_stage(space: Proposals, rng: np.random.Generator, ledger: Ledger, settings: StrategySettings) -> Search:
    """Random search by the (cheap) proxy, then the ``top_k`` best by it are scored by the second
    proxy (typically after a few epochs of training) and the best by that is chosen.

    The budget bounds the first stage; the second stage's cost comes on top of it.
    """
    if settings.top_k < 1:
        raise NtknasError(f"{option('top_k')} must be at least 1, got {settings.top_k}")
    yield from random_search(space, rng, ledger, settings)
    finalists = [step.arch for step in ledger.ranked(FIRST)[: settings.top_k]]
    if not finalists:
        return
    evaluations = yield Ask(SECOND, finalists)
    for arch, evaluation in zip(finalists, evaluations):
        ledger.record(SECOND, arch, evaluation)


def two_stage_label(labels: Sequence[str], settings: StrategySettings) -> str:
    first, second = labels
    return f"{first} → {second} (top {settings.top_k})"


TWO_STAGE = Strategy(
    "two-stage", two_stage, stages=(FIRST, SECOND), label=two_stage_label,
    description="random search by --proxy, then its --top-k best by --second-proxy after --second-epochs",
)
