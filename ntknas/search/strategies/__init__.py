"""Search strategies: random search, regularized evolution and a two-stage search.

A strategy is a generator. It yields an :class:`Ask` (architectures it wants scored) and is sent
back one :class:`Evaluation` per architecture; it records each evaluation it uses in its run's
:class:`Ledger`, which keeps the steps, the incumbent and the cost. Strategies see only fitness
(the proxy value oriented so that higher is better), never a benchmark accuracy: the driver
attaches the reported accuracy to the steps after the search has chosen (see
:mod:`ntknas.search.driver`).

Written as generators, the strategies of many runs (and many proxies) advance in lockstep, so
the driver scores the architectures that all of them asked for in one batch, through one
executor; each run still sees exactly the sequence it would see alone, so a run's choices
depend only on its seed and on the proxy values.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ntknas.errors import NtknasError, UnknownNameError

log = logging.getLogger(__name__)

FIRST = "proxy"
"""Stage of an evaluation by the search's proxy."""
SECOND = "second"
"""Stage of an evaluation by a two-stage search's second proxy (after training)."""

STRATEGIES = ("random", "rea", "two-stage")

#: Proposals in a row without a new architecture after which regularized evolution gives up (a
#: tiny space whose every architecture is scored would otherwise loop for ever at no cost).
MAX_STALE_PROPOSALS = 1000


class Proposals(Protocol):
    """What a strategy needs of a space: an ordered, finite list to draw from, and mutation."""

    def size(self) -> int | None: ...

    def arch_at(self, position: int) -> Any: ...

    def mutate(self, arch: Any, rng: np.random.Generator) -> Any: ...

    def key(self, arch: Any) -> str: ...


@dataclass(frozen=True)
class Ask:
    """Architectures a strategy wants scored at one stage."""

    stage: str
    archs: list[Any]


@dataclass(frozen=True)
class Evaluation:
    """One architecture's score and what getting it cost.

    ``value`` is the proxy as measured (``None``: missing, ``reason`` says why); ``fitness`` is
    the value oriented so that higher is better. ``proxy_seconds`` and ``train_seconds`` are the
    device seconds measured when the value was first computed (0 for a table lookup);
    ``epochs`` the training epochs it took.
    """

    value: float | None
    fitness: float | None
    reason: str | None = None
    proxy_seconds: float = 0.0
    train_seconds: float = 0.0
    epochs: int = 0


@dataclass(frozen=True)
class Budget:
    """A run stops proposing when ``candidates`` distinct architectures have been scored or its
    cost reaches ``seconds`` (whichever comes first; ``None``: no limit of that kind)."""

    candidates: int | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class Step:
    """One scored proposal of a run, with the run's state after it."""

    step: int
    stage: str
    arch: Any
    key: str
    evaluation: Evaluation
    new: bool
    """Whether the run scored this architecture (at this stage) for the first time: only then is
    its cost charged."""
    incumbent: Any
    incumbent_key: str
    evaluations: int
    proxy_seconds: float
    train_seconds: float
    epochs: int

    @property
    def cost(self) -> float:
        return self.proxy_seconds + self.train_seconds


def _better(fitness: float | None, than: float | None) -> bool:
    """Strictly better: a missing score never wins, and ties keep the earlier architecture."""
    return fitness is not None and (than is None or fitness > than)


@dataclass
class Ledger:
    """A run's record: every step, the incumbent of the current stage, and the cost so far.

    The incumbent is the best architecture by fitness among the steps of the current stage (the
    first one when none has a score); a two-stage search's second stage starts afresh. Cost is
    charged once per architecture and stage, however often the run proposes it.
    """

    key: Callable[[Any], str]
    budget: Budget = Budget()
    steps: list[Step] = field(default_factory=list)
    _seen: dict[str, set[str]] = field(default_factory=dict)
    _incumbent: dict[str, tuple[Any, str, float | None]] = field(default_factory=dict)
    evaluations: int = 0
    proxy_seconds: float = 0.0
    train_seconds: float = 0.0
    epochs: int = 0

    @property
    def cost(self) -> float:
        return self.proxy_seconds + self.train_seconds

    def exhausted(self) -> bool:
        budget = self.budget
        return (budget.candidates is not None and self.evaluations >= budget.candidates) or (
            budget.seconds is not None and self.cost >= budget.seconds
        )

    def seen(self, stage: str, arch: Any) -> bool:
        return self.key(arch) in self._seen.get(stage, set())

    def record(self, stage: str, arch: Any, evaluation: Evaluation) -> Step:
        key = self.key(arch)
        seen = self._seen.setdefault(stage, set())
        new = key not in seen
        if new:
            seen.add(key)
            self.proxy_seconds += evaluation.proxy_seconds
            self.train_seconds += evaluation.train_seconds
            self.epochs += evaluation.epochs
            if stage == FIRST:
                self.evaluations += 1
        current = self._incumbent.get(stage)
        if current is None or _better(evaluation.fitness, current[2]):
            self._incumbent[stage] = (arch, key, evaluation.fitness)
        incumbent, incumbent_key, _ = self._incumbent[stage]
        step = Step(
            len(self.steps) + 1, stage, arch, key, evaluation, new, incumbent, incumbent_key,
            self.evaluations, self.proxy_seconds, self.train_seconds, self.epochs,
        )
        self.steps.append(step)
        return step

    def best(self) -> Step | None:
        """The last step (it carries the run's final incumbent), or None before any step."""
        return self.steps[-1] if self.steps else None

    def ranked(self, stage: str) -> list[Step]:
        """The stage's first step of each architecture, best fitness first (ties: earlier first;
        missing scores last)."""
        firsts: dict[str, Step] = {}
        for step in self.steps:
            if step.stage == stage and step.key not in firsts:
                firsts[step.key] = step
        scored = [s for s in firsts.values() if s.evaluation.fitness is not None]
        missing = [s for s in firsts.values() if s.evaluation.fitness is None]
        scored.sort(key=lambda s: -s.evaluation.fitness)  # type: ignore[operator]  # sort is stable
        return scored + missing


Search = Generator[Ask, list[Evaluation], None]


@dataclass(frozen=True)
class StrategySettings:
    """Parameters of the strategies (defaults: the NAS-Bench-201 paper's REA, population 10 and
    tournament 3, as in its R-EA script)."""

    population: int = 10
    tournament: int = 3
    top_k: int = 10
    chunk: int = 16
    """Architectures a time-budgeted random search asks for at once (it may score a few more
    than it uses; those are stored, not charged)."""


class ProposalOrder:
    """A run's random order of a space: a seeded permutation whose architectures are built only
    when taken, so that a longer search of the same seed proposes the shorter one's first."""

    def __init__(self, space: Proposals, rng: np.random.Generator) -> None:
        total = space.size()
        if total is None:
            raise NtknasError("this space has no finite list of architectures to draw from: pass --benchmark")
        self._space = space
        self._order = rng.permutation(total)

    def __len__(self) -> int:
        return len(self._order)

    def take(self, start: int, stop: int) -> list[Any]:
        return [self._space.arch_at(int(p)) for p in self._order[start:stop]]


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
        raise NtknasError("--population and --tournament must be at least 1")
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
            if _better(contender[1], parent[1]):
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


def two_stage(space: Proposals, rng: np.random.Generator, ledger: Ledger, settings: StrategySettings) -> Search:
    """Random search by the (cheap) proxy, then the ``top_k`` best by it are scored by the second
    proxy (typically after a few epochs of training) and the best by that is chosen.

    The budget bounds the first stage; the second stage's cost comes on top of it.
    """
    if settings.top_k < 1:
        raise NtknasError(f"--top-k must be at least 1, got {settings.top_k}")
    yield from random_search(space, rng, ledger, settings)
    finalists = [step.arch for step in ledger.ranked(FIRST)[: settings.top_k]]
    if not finalists:
        return
    evaluations = yield Ask(SECOND, finalists)
    for arch, evaluation in zip(finalists, evaluations):
        ledger.record(SECOND, arch, evaluation)


Strategy = Callable[[Proposals, np.random.Generator, Ledger, StrategySettings], Search]

_STRATEGIES: dict[str, Strategy] = {
    "random": random_search,
    "rea": regularized_evolution,
    "two-stage": two_stage,
}


def get_strategy(name: str) -> Strategy:
    strategy = _STRATEGIES.get(name.strip().lower())
    if strategy is None:
        raise UnknownNameError(f"unknown search strategy {name!r}: use one of {', '.join(STRATEGIES)}")
    return strategy
