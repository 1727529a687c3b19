"""The search-space seam: one object per space, registered by name.

Everything above the spaces (benchmarks, experiments, search, the CLI) reaches a space only
through :class:`SearchSpace`, so adding a space is one module with one :func:`register_space`
call. An architecture ("arch") is whatever object the space chooses (``NB201Arch``,
``NB101Spec``, a callable); the rest of ntknas only passes it back to the space.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from ntknas.errors import InvalidArchError, NtknasError, UnknownNameError


@dataclass(frozen=True)
class SpaceProtocol:
    """A space's measurement defaults (see docs/protocol.md, "Experiment 1").

    ``batch_size`` ``None`` means the dataset's study batch (256; 512 for ImageNet16-120).
    ``build_options`` are passed to :meth:`SearchSpace.build` unless a run overrides them.
    """

    batch_size: int | None = None
    seed: int = 42
    build_options: Mapping[str, Any] = field(default_factory=dict)


class SearchSpace(ABC):
    """A search space: how to name, enumerate, vary and build its architectures.

    Subclasses set :attr:`name` (the ``--space`` value), :attr:`title` (for messages) and
    implement the abstract methods. Spaces with a fixed, ordered set of architectures (the
    benchmarks) also implement :meth:`size` and :meth:`arch_at`; the default :meth:`sample`,
    :meth:`archs` and :meth:`index` then work from those.

    The table codec (:attr:`table_key_columns`, :meth:`table_key`, :meth:`keys_from_columns`,
    :meth:`arch_from_table`) lets :mod:`ntknas.groundtruth` read an accuracy table of the space
    without knowing how the space names its architectures.
    """

    name: str = ""
    title: str = ""
    protocol: SpaceProtocol = SpaceProtocol()
    #: CSV columns that identify an architecture (the first present wins); never targets.
    table_key_columns: tuple[str, ...] = ("arch",)
    #: Target chosen when a run names none (first present in the table wins).
    default_targets: tuple[str, ...] = ()
    #: Where a user gets the space's benchmark table, for "file not found" messages.
    table_source: str = "a CSV with an 'arch' column and one column per accuracy"
    #: Whether ``--archs-file`` may list the space's cells as a JSON graph file (NB101's all_graphs.json).
    lists_graphs: bool = False
    #: Whether accuracy columns stored as fractions in [0, 1] are scaled to percent.
    fraction_accuracies: bool = False
    #: How ``--arch`` spells an architecture of the space, for messages.
    arch_help: str = "the space's architecture text"
    #: The architecture ``ntknas score`` measures when none is named (None: ``--arch`` is required).
    default_arch: str | None = None

    # ------------------------------------------------------------------ naming

    @abstractmethod
    def parse(self, text: str) -> Any:
        """The architecture a user wrote (``--arch``, a line of ``--archs-file``)."""

    def coerce(self, value: Any) -> Any:
        """An architecture from an architecture object, its text, or its index."""
        if isinstance(value, str):
            return self.parse(value)
        return value

    @abstractmethod
    def key(self, arch: Any) -> str:
        """The canonical id stored in results: equal architectures, equal keys."""

    def index(self, arch: Any) -> int | None:
        """The architecture's position in the space's official order, or None if it has none."""
        return None

    # ------------------------------------------------------------------ enumeration

    def size(self) -> int | None:
        """How many architectures the space holds (None: not enumerable)."""
        return None

    def arch_at(self, position: int) -> Any:
        """The architecture at ``position`` of the official order."""
        raise InvalidArchError(f"the {self.title or self.name} space has no official order to index")

    def archs(self) -> Iterator[Any]:
        """Every architecture in the official order."""
        total = self._require_size("enumerate")
        return (self.arch_at(position) for position in range(total))

    def sample(self, rng: np.random.Generator, n: int) -> list[Any]:
        """``n`` distinct architectures drawn uniformly."""
        total = self._require_size("sample")
        if not 0 < n <= total:
            raise InvalidArchError(f"cannot draw {n} of the {total} architectures of {self.title or self.name}")
        return [self.arch_at(int(p)) for p in rng.choice(total, size=n, replace=False)]

    # ------------------------------------------------------------------ neighbourhood (search)

    @abstractmethod
    def neighbours(self, arch: Any) -> list[Any]:
        """Every architecture one elementary change (one op, one edge) away, in a fixed order."""

    def mutate(self, arch: Any, rng: np.random.Generator) -> Any:
        """One neighbour drawn uniformly (regularized evolution's mutation)."""
        options = self.neighbours(arch)
        if not options:
            raise InvalidArchError(f"architecture {self.key(arch)} has no neighbour to mutate to")
        return options[int(rng.integers(len(options)))]

    def encode(self, arch: Any) -> np.ndarray:
        """A fixed-length float vector of ``arch``, the same length for every architecture of the
        space (for model-based strategies). Optional: a space without one says so."""
        raise NtknasError(
            f"the {self.title or self.name} space has no numeric encoding of its architectures: "
            "implement encode(arch) in its SearchSpace to use a model-based strategy"
        )

    # ------------------------------------------------------------------ network

    @abstractmethod
    def build(self, arch: Any, num_classes: int, **options: Any) -> nn.Module:
        """The network of ``arch``, mapping N×C×H×W images to N×``num_classes`` logits."""

    def options_with(self, **values: Any) -> dict[str, Any]:
        """The protocol's build options, each replaced by the run's value of the same name when
        one is given (not None); values for options the space does not take are ignored."""
        return {
            name: default if values.get(name) is None else values[name]
            for name, default in self.protocol.build_options.items()
        }

    # ------------------------------------------------------------------ benchmark table codec

    def table_key(self, value: Any) -> Hashable:
        """The table row key of ``value`` (an arch, its text or its key); raises
        :class:`InvalidArchError` for text that names no architecture."""
        return self.key(self.coerce(value))

    def keys_from_columns(self, cells: Mapping[str, Sequence[str]], source: str) -> tuple[np.ndarray, dict[str, Any]]:
        """Row keys of a CSV table from its identifying columns, and extra table fields."""
        column = next(c for c in self.table_key_columns if c in cells)
        keys = [self.table_key(text) for text in cells[column]]
        return np.array(keys, dtype=object), {}

    def arch_from_table(self, table: Any, row: int) -> Any:
        """The architecture of a table row (``table`` is a :class:`~ntknas.groundtruth.Benchmark`)."""
        return self.coerce(table.row_keys[row])

    # ------------------------------------------------------------------ helpers

    def _require_size(self, what: str) -> int:
        total = self.size()
        if total is None:
            raise InvalidArchError(f"cannot {what} the {self.title or self.name} space: it has no finite list of architectures")
        return total

    def __repr__(self) -> str:
        return f"<search space {self.name!r}>"


_SPACES: dict[str, SearchSpace] = {}


def register_space(space: SearchSpace, *, replace: bool = False) -> SearchSpace:
    """Make ``space`` available under ``space.name`` (``--space NAME``, ``get_space(NAME)``)."""
    if not space.name:
        raise ValueError("a search space needs a non-empty name")
    _load_builtin_spaces()  # so that a user's space never collides with a builtin loaded later
    if space.name in _SPACES and not replace:
        raise ValueError(f"search space {space.name!r} is registered twice (pass replace=True to override)")
    _SPACES[space.name] = space
    return space


def _load_builtin_spaces() -> None:
    # Imported for their registration side effect, whichever module a caller imports first.
    from ntknas.spaces import builtin  # noqa: F401


def get_space(name: str | SearchSpace) -> SearchSpace:
    """The registered space called ``name`` (a space object is returned as it is)."""
    if isinstance(name, SearchSpace):
        return name
    _load_builtin_spaces()
    space = _SPACES.get(str(name).strip().lower())
    if space is None:
        raise UnknownNameError(f"unknown search space {name!r}: use one of {', '.join(available_spaces())}")
    return space


def available_spaces() -> list[str]:
    """Names of the registered spaces, in registration order."""
    _load_builtin_spaces()
    return list(_SPACES)

