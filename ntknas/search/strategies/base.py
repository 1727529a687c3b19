"""What every search strategy shares: the protocol of proposals, the ask/evaluate exchange, the
run's ledger and budget, and :class:`Strategy`, a strategy's declared description.

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

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ntknas.errors import NtknasError, option

FIRST = "proxy"
"""Stage of an evaluation by the search's proxy."""
SECOND = "second"
"""Stage of an evaluation by a second proxy (``--second-proxy`` after ``--second-epochs``)."""

STAGES = (FIRST, SECOND)
"""The stages the driver can score: each has its own proxy and training epochs."""

#: Proposals in a row without a new architecture after which a strategy gives up (a tiny space
#: whose every architecture is scored would otherwise loop for ever at no cost).
MAX_STALE_PROPOSALS = 1000


class Proposals(Protocol):
    """What a strategy needs of a space: an ordered, finite list to draw from, its
    neighbourhood (one elementary change), mutation (a random neighbour), keys, and a numeric
    encoding for model-based strategies."""

    def size(self) -> int | None: ...

    def arch_at(self, position: int) -> Any: ...

    def neighbours(self, arch: Any) -> list[Any]: ...

    def mutate(self, arch: Any, rng: np.random.Generator) -> Any: ...

    def key(self, arch: Any) -> str: ...

    def encode(self, arch: Any) -> np.ndarray: ...


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


def better(fitness: float | None, than: float | None) -> bool:
    """Strictly better: a missing score never wins, and ties keep the earlier architecture."""
    return fitness is not None and (than is None or fitness > than)


@dataclass
class Ledger:
    """A run's record: every step, the incumbent of the current stage, and the cost so far.

    The incumbent is the best architecture by fitness among the steps of the current stage (the
    first one when none has a score); a second stage starts afresh. Cost is charged once per
    architecture and stage, however often the run proposes it.
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
        if current is None or better(evaluation.fitness, current[2]):
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
            raise NtknasError(f"this space has no finite list of architectures to draw from: pass {option('benchmark')}")
        self._space = space
        self._order = rng.permutation(total)

    def __len__(self) -> int:
        return len(self._order)

    def take(self, start: int, stop: int) -> list[Any]:
        return [self._space.arch_at(int(p)) for p in self._order[start:stop]]


StrategyFunction = Callable[[Proposals, np.random.Generator, Ledger, StrategySettings], Search]
"""A strategy's generator function: ``(proposals, rng, ledger, settings) -> Search``."""


def _no_caveats(settings: StrategySettings, budget: Budget) -> list[str]:
    return []


def _joined_labels(labels: Sequence[str], settings: StrategySettings) -> str:
    return " → ".join(labels)


@dataclass(frozen=True)
class Strategy:
    """A search strategy as the driver sees it: what it is called, how it searches and what it
    needs, so that the driver asks the strategy instead of comparing names.

    ``stages`` are the stages it asks to have scored, in order (each has its own proxy: the
    first ``--proxy`` at ``--proxy-epochs``, the second ``--second-proxy`` at
    ``--second-epochs``). ``label`` names a search of it in the outputs from the labels of its
    stages' proxies; ``caveats`` lists, for the run's settings and budget, what a user should
    know before trusting its result (each a one-line warning; empty: nothing).
    """

    name: str
    search: StrategyFunction
    stages: tuple[str, ...] = (FIRST,)
    description: str = ""
    label: Callable[[Sequence[str], StrategySettings], str] = _joined_labels
    caveats: Callable[[StrategySettings, Budget], list[str]] = _no_caveats

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip().lower():
            raise ValueError(f"a search strategy needs a non-empty lower-case name, got {self.name!r}")
        if not callable(self.search):
            raise TypeError(f"search strategy {self.name!r}: its search must be a generator function")
        if not self.stages or self.stages[0] != FIRST or any(s not in STAGES for s in self.stages) \
                or len(set(self.stages)) != len(self.stages):
            raise ValueError(
                f"search strategy {self.name!r}: stages must start with {FIRST!r} and use each of "
                f"{', '.join(map(repr, STAGES))} at most once, got {self.stages!r}"
            )

    @property
    def needs_second_proxy(self) -> bool:
        return SECOND in self.stages

    def __call__(
        self, proposals: Proposals, rng: np.random.Generator, ledger: Ledger, settings: StrategySettings
    ) -> Search:
        return self.search(proposals, rng, ledger, settings)
