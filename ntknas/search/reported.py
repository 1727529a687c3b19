"""The accuracy a search reports for what it chose (never what guides it): a benchmark column or a
given mapping."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ntknas.errors import NtknasError
from ntknas.groundtruth import Benchmark
from ntknas.spaces import SearchSpace


class Reported(ABC):
    """The accuracy a search reports (never what guides it)."""

    name: str = ""
    source: str | None = None

    @abstractmethod
    def accuracy(self, key: str) -> float | None: ...

    @abstractmethod
    def best(self) -> tuple[float | None, str | None]:
        """The best accuracy in the space and its architecture's key."""


class TableReported(Reported):
    def __init__(self, benchmark: Benchmark, space: SearchSpace) -> None:
        self.benchmark = benchmark
        self.space = space
        self.name = benchmark.target
        self.source = benchmark.source

    def accuracy(self, key: str) -> float | None:
        try:
            return self.benchmark.accuracy(key)
        except NtknasError:
            return None

    def best(self) -> tuple[float | None, str | None]:
        values = self.benchmark.columns[self.benchmark.target]
        if not np.isfinite(values).any():
            return None, None
        row = int(np.nanargmax(values))
        key = self.benchmark.row_keys[row]
        key = key.item() if isinstance(key, np.generic) else key
        return float(values[row]), self.space.key(self.benchmark.arch(key))


class MappingReported(Reported):
    """Accuracies given as a mapping key → accuracy (e.g. the demo's own trained cells)."""

    def __init__(self, accuracies: dict[str, float], name: str, source: str | None = None) -> None:
        self.accuracies = dict(accuracies)
        self.name = name
        self.source = source

    def accuracy(self, key: str) -> float | None:
        return self.accuracies.get(key)

    def best(self) -> tuple[float | None, str | None]:
        if not self.accuracies:
            return None, None
        key = max(self.accuracies, key=lambda k: self.accuracies[k])
        return self.accuracies[key], key
