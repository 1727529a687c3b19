"""Where a search's architectures come from: a space's official order, the rows of a benchmark
table (spaces without an order), or a given list."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ntknas.errors import NtknasError
from ntknas.groundtruth import Benchmark
from ntknas.spaces import SearchSpace


class SpaceProposals:
    """A registered space as strategies see it (its official order, neighbourhood, mutation
    and encoding)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def size(self) -> int | None:
        return self.space.size()

    def arch_at(self, position: int) -> Any:
        return self.space.arch_at(position)

    def neighbours(self, arch: Any) -> list[Any]:
        return self.space.neighbours(arch)

    def mutate(self, arch: Any, rng: np.random.Generator) -> Any:
        return self.space.mutate(arch, rng)

    def key(self, arch: Any) -> str:
        return self.space.key(arch)

    def encode(self, arch: Any) -> np.ndarray:
        return self.space.encode(arch)


MUTATION_TRIES = 100
"""Mutations drawn for one child before a table search falls back to the table's neighbours."""


class TableProposals(SpaceProposals):
    """A space without an official order (NAS-Bench-101): draws from the rows of its benchmark
    table; mutation is the space's own."""

    def __init__(self, space: SearchSpace, benchmark: Benchmark) -> None:
        super().__init__(space)
        self.benchmark = benchmark
        self.row_keys = benchmark.keys()
        self._rows = set(self.row_keys)

    def size(self) -> int:
        return len(self.row_keys)

    def arch_at(self, position: int) -> Any:
        return self.benchmark.arch(self.row_keys[position])

    def neighbours(self, arch: Any) -> list[Any]:
        """The space's neighbours that are rows of the table (the only architectures this
        search draws from)."""
        return [n for n in self.space.neighbours(arch) if self.space.table_key(n) in self._rows]

    def mutate(self, arch: Any, rng: np.random.Generator) -> Any:
        """The space's mutation, redrawn until the child is a row of the table (a partial table
        is searched as its rows: a child with no accuracy would be chosen blind); failing that, a
        neighbour in the table, and at worst a random row."""
        for _ in range(MUTATION_TRIES):
            child = self.space.mutate(arch, rng)
            if self.space.table_key(child) in self._rows:
                return child
        neighbours = self.neighbours(arch)
        if neighbours:
            return neighbours[int(rng.integers(len(neighbours)))]
        return self.arch_at(int(rng.integers(self.size())))


class SubsetProposals(SpaceProposals):
    """Search among a given list of architectures only (e.g. cells already measured).

    Drawing is from the list; mutation moves to another member of the list, a member at
    ``distance`` d with probability proportional to 4^−d: mostly to the nearest ones (a
    one-op change where the list has one), yet every member stays reachable."""

    def __init__(self, space: SearchSpace, archs: Sequence[Any], distance: Callable[[Any, Any], float]) -> None:
        super().__init__(space)
        self.archs = list(archs)
        self.distance = distance
        self._members = {space.key(a): a for a in self.archs}
        if len({space.key(a) for a in self.archs}) < 2:
            raise NtknasError("a subset search needs at least two distinct architectures")

    def size(self) -> int:
        return len(self.archs)

    def arch_at(self, position: int) -> Any:
        return self.archs[position]

    def neighbours(self, arch: Any) -> list[Any]:
        """The space's neighbours that are members of the list (as the list holds them)."""
        keys = dict.fromkeys(self.space.key(n) for n in self.space.neighbours(arch))
        return [self._members[k] for k in keys if k in self._members]

    def mutate(self, arch: Any, rng: np.random.Generator) -> Any:
        key = self.space.key(arch)
        others = [a for a in self.archs if self.space.key(a) != key]
        distances = np.array([self.distance(arch, a) for a in others], dtype=float)
        weights = 4.0 ** -(distances - distances.min())
        return others[int(rng.choice(len(others), p=weights / weights.sum()))]
