"""``ntknas search``: find architectures with a proxy (an NTK metric, a zero-cost proxy, or a
benchmark column), report what they reach and what finding them cost.

A search is a strategy (:mod:`ntknas.search.strategies`) guided by a proxy. Proxy values
are measured exactly as ``ntknas correlate`` measures them (:func:`measure_item` through an
:class:`~ntknas.execution.executors.Executor`) and stored in the run folder's results store
under the same keys (space, arch, dataset, BN mode, epochs, seed, batch, protocol, metric), so:

* a value already in the run folder, or in a ``--cache`` folder (a correlate run, another
  search) measured under the same protocol is reused, never recomputed;
* a killed search resumes: a rerun replays every run from its seed and the stored values and
  measures only what is missing.

The reported accuracy (``--target``) is looked up only after the strategies have chosen, for
the outputs; strategies see nothing but the proxy.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ntknas.data import DatasetInfo, ImageDataset, dataset_info
from ntknas.errors import DataError, NtknasError, UnknownNameError, marked_text, option
from ntknas.execution.executors import Executor, Task, make_executor
from ntknas.execution.progress import ProgressHook
from ntknas.execution.runtime import device_name, resolve_device
from ntknas.groundtruth import Benchmark, load_benchmark
from ntknas.inputs import validation as check
from ntknas.metrics import check_kernel_choice, get_metric
from ntknas.report.search import SearchRow, SearchSpec, missing_proxy_values, summarize_search, write_search_outputs
from ntknas.runs.correlate import (
    ArchEntry,
    CorrelateConfig,
    CorrelateContext,
    _item_key,
    _measurement_batch,
    measure_item,
    protocol_defaults,
)
from ntknas.runs.skeleton import LazyData, Run, open_run
from ntknas.search.strategies import (
    FIRST,
    SECOND,
    Ask,
    Budget,
    Evaluation,
    Ledger,
    Proposals,
    Search,
    StrategySettings,
    available_strategies,
    get_strategy,
)
from ntknas.settings import MeasureSettings, check_fields, measure_fields, setting
from ntknas.spaces import SearchSpace, get_space
from ntknas.store import STORE_FILE, ItemRecord, Measurement, ResultStore, TrainingRecord

log = logging.getLogger(__name__)

TABLE_PREFIX = "bench:"
"""A proxy named ``bench:COLUMN`` is a column of a benchmark table (an oracle baseline)."""

SEARCH_IDENTITY_NAMES = {"bn_modes": "bn"}
"""Identity keys search folders have always stored under another name than today's field."""


@dataclass(frozen=True)
class SearchConfig(MeasureSettings):
    """Settings of ``ntknas search``: :class:`~ntknas.settings.MeasureSettings` (how proxies are
    measured: they must agree for two commands to share a run folder) plus the strategies,
    proxies, budgets and runs, which may change (the outputs then describe the last command).

    Seeds: run ``r`` draws with ``numpy.random.default_rng(seed + r)``; ``model_seed`` is the
    network and data seed of the measurements (default: the protocol's).
    """

    bn_modes: tuple[str, ...] = setting(("train",), flag="--bn", parse=check.name_list, identity=True,
                                        help="BatchNorm mode of the proxies: train or eval (default train)")
    data_dir: str | None = setting(
        None, flag="--data-dir", parse=check.nonempty_text,
        help="folder with the dataset in its official format (needed only for values not stored yet)",
    )
    benchmark: str | None = setting(None, flag="--benchmark", parse=check.nonempty_text,
                                    help="ground truth table: NB201 CSV/.pth or NB101 table (.npz/.csv)")
    target: str | None = setting(
        None, flag="--target", parse=check.nonempty_text,
        help="reported accuracy column (default: cifar10_valid_test for NB201; for NB101 test_max from the .tfrecord or an .npz exported from it, test_acc_seed0 from the compact table; else the table's only column)",
    )
    strategies: tuple[str, ...] = setting(("random",), flag="--strategy", parse=check.name_list,
                                          help="random | rea | two-stage | any registered strategy, or a comma-separated list (default random)")
    proxies: tuple[str, ...] = setting((), flag="--proxy", parse=check.name_list,
                                       help="metric name(s), e.g. synflow,naswot, or bench:COLUMN (comma-separated)")
    proxy_table: str | None = setting(None, flag="--proxy-table", parse=check.nonempty_text,
                                      help="table for bench:COLUMN proxies (default: --benchmark), e.g. nb201_supplementary.csv")
    proxy_epochs: int = setting(0, flag="--proxy-epochs", parse=check.nonnegative_int,
                                help="train each network this many epochs before measuring the proxy (default 0: at initialization)")
    second_proxy: str = setting("lga", flag="--second-proxy", parse=check.nonempty_text,
                                help="two-stage: metric measured after training (default lga)")
    second_epochs: int = setting(1, flag="--second-epochs", parse=check.nonnegative_int,
                                 help="two-stage: epochs trained before the second proxy (default 1)")
    top_k: int = setting(10, flag="--top-k", parse=check.positive_int,
                         help="two-stage: candidates kept for the second proxy (default 10)")
    population: int = setting(10, flag="--population", parse=check.positive_int,
                              help="REA population (default 10, the NAS-Bench-201 paper's)")
    tournament: int = setting(3, flag="--tournament", parse=check.positive_int,
                              help="REA tournament sample (default 3, the NAS-Bench-201 paper's)")
    candidates: int | None = setting(100, flag="--candidates", parse=check.positive_int,
                                     help="architectures scored per run (default 100 unless only --time-budget is given)")
    time_budget: float | None = setting(
        None, flag="--time-budget", parse=check.positive_seconds, metavar="SECONDS",
        help="stop a run once its accounted cost (device seconds of proxies and training) reaches this",
    )
    runs: int = setting(10, flag="--runs", parse=check.positive_int,
                        help="independent runs; run r uses seed --seed + r (default 10)")
    seed: int = setting(0, flag="--seed", parse=check.seed, help="seed of run 0 (default 0)")
    cache: tuple[str, ...] = setting((), flag="--cache", action="append", metavar="RUN_DIR", parse=check.nonempty_text,
                                     help="reuse values stored in another correlate or search run folder (repeatable)")
    out: str = setting("runs/search", flag="--out", parse=check.nonempty_text,
                       help="run folder (results.sqlite, search.csv, summary.json, summary.md, plot)")
    device: str = setting("cpu", flag="--device", parse=check.nonempty_text, help="cpu | cuda | cuda:N")
    workers: int = setting(1, flag="--workers", parse=check.positive_int,
                           help="worker processes measuring proxies (default 1)")
    force: bool = setting(False, flag="--force", action="store_true",
                          help="write into a run folder that holds other settings")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fields(self, [f.name for f in fields(SearchConfig) if f.name not in _MEASURE_NAMES])
        for name in ("strategies", "proxies", "cache"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        if len(self.bn_modes) != 1:
            raise UnknownNameError(f"{option('bn_modes')} {','.join(self.bn_modes)}: a search measures its proxies in one BatchNorm mode, train or eval")

    @property
    def bn(self) -> str:
        """The one BatchNorm mode of the proxies."""
        return self.bn_modes[0]

    def checked(self) -> SearchConfig:
        """The config with names normalized and every value checked (no file is read)."""
        named = [s.strip().lower() for s in self.strategies if s.strip()]
        if not named:
            raise UnknownNameError(f"{option('strategies')} names no strategy: use one of {', '.join(available_strategies())}")
        repeated = next((name for i, name in enumerate(named) if name in named[:i]), None)
        if repeated is not None:
            raise NtknasError(f"{option('strategies')} names {repeated!r} twice: name each strategy once")
        strategies = tuple(named)
        second_stage = any(get_strategy(name).needs_second_proxy for name in strategies)
        proxies = tuple(dict.fromkeys(p.strip() for p in self.proxies if p.strip()))
        if not proxies:
            raise UnknownNameError(f"{option('proxies')} names no proxy: give a metric (e.g. synflow) or bench:COLUMN")
        for proxy in proxies:
            _check_proxy(proxy, "proxies")
        if second_stage:
            _check_proxy(self.second_proxy, "second_proxy")
        metric_proxies = [p for p in proxies if not p.startswith(TABLE_PREFIX)]
        if second_stage and not self.second_proxy.startswith(TABLE_PREFIX):
            metric_proxies.append(self.second_proxy.strip())
        check_kernel_choice(self.kernel, metric_proxies)
        if self.candidates is None and self.time_budget is None:
            raise NtknasError(f"no budget: give {option('candidates')} N and/or {option('time_budget')} SECONDS")
        if self.candidates is None and any(p.startswith(TABLE_PREFIX) for p in proxies):
            raise NtknasError(
                f"bench: proxies cost nothing, so {option('time_budget')} alone never ends their search: give {option('candidates')}"
            )
        return replace(self, strategies=strategies, proxies=proxies, second_proxy=self.second_proxy.strip())

    def store_settings(self, info: DatasetInfo) -> dict[str, Any]:
        """What must match for two commands to share a run folder: how proxies are measured.
        The initialization and NB101 stem join only when not the defaults, so folders written
        before search took them keep their identity."""
        batch_size, seed = protocol_defaults(self.protocol, get_space(self.space).name, info)
        settings: dict[str, Any] = {
            SEARCH_IDENTITY_NAMES.get(f.name, f.name): getattr(self, f.name)
            for f in fields(self) if f.metadata.get("identity") and f.name != "nb101_stem_channels"
        }
        settings.update(
            space=get_space(self.space).name, dataset=info.name, bn=self.bn, network_options=dict(self.network_options),
            batch_size=self.batch_size or batch_size, model_seed=seed if self.model_seed is None else self.model_seed,
        )
        if self.nb101_stem_channels != _DEFAULT_STEM:
            settings["nb101_stem_channels"] = self.nb101_stem_channels
        if self.init_identity is not None:
            settings["init"] = self.init_identity
        if self.kernel_identity is not None:  # absent for the exact kernel: older run folders keep their identity
            settings["kernel"] = self.kernel_identity
        return settings


_MEASURE_NAMES = frozenset(f.name for f in fields(MeasureSettings))
_DEFAULT_STEM = next(f.default for f in fields(MeasureSettings) if f.name == "nb101_stem_channels")


def _check_proxy(proxy: str, name: str) -> None:
    if proxy.startswith(TABLE_PREFIX):
        if not proxy[len(TABLE_PREFIX):].strip():
            raise UnknownNameError(f"{option(name)} {proxy!r} names no column: use bench:COLUMN, e.g. bench:cifar10_valid_valid_hp12")
        return
    metric = get_metric(proxy)
    if metric.higher_is_better is None:
        raise UnknownNameError(f"{option(name)} {proxy}: this metric ranks nothing (it is a diagnostic): choose a metric with a direction")
    if metric.is_aggregate:
        raise UnknownNameError(
            f"{option(name)} {proxy}: a set-level aggregate has no value for one network: guide the search "
            f"with one of its components ({', '.join(metric.aggregate_of)})"
        )


# ----------------------------------------------------------------------------------------------
# Where proposals come from, and what is reported
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Proxies
# ----------------------------------------------------------------------------------------------


class ProxyEvaluator(ABC):
    """Scores architectures by one proxy; each value carries what it cost to get."""

    label: str = ""

    @abstractmethod
    def evaluate(self, archs: Sequence[Any]) -> dict[str, Evaluation]: ...

    def ready(self, key: str) -> bool:
        """Whether ``key``'s value can be had without measuring (stored, cached, a table)."""
        return True


class TableProxy(ProxyEvaluator):
    """A benchmark column as the proxy (higher is better): the oracle baselines. A lookup costs
    nothing."""

    def __init__(self, label: str, table: Benchmark, space: SearchSpace) -> None:
        self.label = label
        self.table = table
        self.space = space

    def evaluate(self, archs: Sequence[Any]) -> dict[str, Evaluation]:
        out = {}
        for arch in archs:
            key = self.space.key(arch)
            try:
                value: float | None = self.table.accuracy(key)
                reason = None
            except NtknasError as error:
                value, reason = None, str(error)
            out[key] = Evaluation(value, value, reason)
        return out


@dataclass
class _Counters:
    measured: int = 0
    from_cache: int = 0
    seconds: float = 0.0


def _stored_values(store: ResultStore, config: CorrelateConfig) -> dict[str, Evaluation]:
    """The values of ``config``'s one metric, BN mode and stage stored in ``store``, by arch."""
    assert config.seed is not None and config.batch_size is not None
    metric, bn, epochs = config.metric_names[0], config.bn_modes[0], config.train_epochs[0]
    rows = store.measurements(
        space=config.space, dataset=config.dataset, bn_mode=bn, train_epochs=epochs, seed=config.seed,
        batch_size=config.batch_size, protocol=config.protocol_tag, metric=metric,
    )
    training: dict[str, list[TrainingRecord]] = {}
    if epochs > 0:
        for record in store.training_records():
            if record.space == config.space and record.seed == config.seed and 1 <= record.epoch <= epochs:
                training.setdefault(record.arch, []).append(record)
    direction = get_metric(metric).higher_is_better
    return {m.arch: _evaluation(m, training.get(m.arch, []), direction) for m in rows}


def _evaluation(measurement: Measurement, training: Sequence[TrainingRecord], higher_is_better: bool | None) -> Evaluation:
    value = measurement.value
    fitness = None if value is None else (value if higher_is_better else -value)
    return Evaluation(
        value, fitness, measurement.reason, measurement.seconds,
        float(sum(t.seconds for t in training)), len(training),
    )


class MetricProxy(ProxyEvaluator):
    """A registered metric measured as ``ntknas correlate`` measures it, at ``E`` epochs of the
    study's training recipe. Values come, in this order, from the run folder's store, from the
    ``--cache`` stores (copied into the run folder when used), or are measured through the
    executor and committed as they arrive."""

    def __init__(
        self, label: str, config: CorrelateConfig, space: SearchSpace, store: ResultStore,
        caches: Sequence[ResultStore], data: LazyData, num_classes: int, executor: Executor,
        counters: _Counters, on_progress: ProgressHook | None,
    ) -> None:
        self.label = label
        self.config = config
        self.space = space
        self.store = store
        self.data = data
        self.num_classes = num_classes
        self.executor = executor
        self.counters = counters
        self.on_progress = on_progress
        self.known = _stored_values(store, config)
        self.cached: dict[str, tuple[Evaluation, ResultStore]] = {}
        for cache in caches:
            for key, evaluation in _stored_values(cache, config).items():
                if key not in self.known and key not in self.cached:
                    self.cached[key] = (evaluation, cache)
        self._context: CorrelateContext | None = None

    def evaluate(self, archs: Sequence[Any]) -> dict[str, Evaluation]:
        pending: dict[str, Any] = {}
        for arch in archs:
            key = self.space.key(arch)
            if key in self.known or key in pending:
                continue
            if key in self.cached:
                self._copy_from_cache(key)
            else:
                pending[key] = arch
        if pending:
            self._measure(pending)
        return {self.space.key(a): self.known[self.space.key(a)] for a in archs}

    def ready(self, key: str) -> bool:
        return key in self.known or key in self.cached

    def _entry(self, key: str, arch: Any) -> ArchEntry:
        # No accuracy: what is measured for a search never carries the target.
        return ArchEntry(key, self.space.index(arch), arch, None)

    def _copy_from_cache(self, key: str) -> None:
        """Store a cached value in this run folder too, so the folder alone replays the search."""
        evaluation, cache = self.cached.pop(key)
        config = self.config
        assert config.seed is not None and config.batch_size is not None
        epochs = config.train_epochs[0]
        rows = [
            m for m in cache.measurements(
                space=config.space, arch=key, dataset=config.dataset, bn_mode=config.bn_modes[0], train_epochs=epochs,
                seed=config.seed, batch_size=config.batch_size, protocol=config.protocol_tag, metric=config.metric_names[0],
            )
        ]
        training = [
            t for t in cache.training_records()
            if t.space == config.space and t.arch == key and t.seed == config.seed and 1 <= t.epoch <= epochs
        ] if epochs > 0 else []
        entry = ArchEntry(key, None, None, None)
        record = ItemRecord(
            item=_item_key(config, entry, epochs), space=config.space, arch=key, arch_index=None,
            train_epochs=epochs, accuracy=None, seconds=evaluation.proxy_seconds + evaluation.train_seconds,
            device=rows[0].device if rows else "?", info={"copied_from": str(cache.run_dir.resolve())},
        )
        self.store.commit_item(record, rows, training)
        self.known[key] = evaluation
        self.counters.from_cache += 1

    def _context_for_run(self) -> CorrelateContext:
        if self._context is None:
            config = self.config
            train_set = self.data.train
            test_set = self.data.test if config.measured_on == "test_first" else None
            trains = config.train_epochs[0] > 0
            self._context = CorrelateContext(
                config, self.num_classes, _measurement_batch(config, train_set, test_set),
                train_set if trains else None, str(self.data.device),
            )
        return self._context

    def _measure(self, pending: dict[str, Any]) -> None:
        log.debug("measuring %s of %d architectures", self.label, len(pending))
        started = time.perf_counter()
        context = self._context_for_run()
        tasks = [Task(self._entry(key, arch), frozenset()) for key, arch in pending.items()]
        direction = get_metric(self.config.metric_names[0]).higher_is_better
        done = 0
        if self.on_progress is not None:
            self.on_progress(0, len(tasks), "")
        for entry, results in self.executor.map(measure_item, context, tasks):
            for result in results:
                self.store.commit_item(result.record, result.measurements, result.training)
                (measurement,) = [m for m in result.measurements if m.metric == self.config.metric_names[0]]
                self.known[entry.key] = _evaluation(measurement, result.training, direction)
            done += 1
            if self.on_progress is not None:
                self.on_progress(done, len(tasks), entry.key)
        missing = [key for key in pending if key not in self.known]
        if missing:  # an executor that stops early must not make the search guess
            raise NtknasError(f"{len(missing)} architectures were not measured: rerun the same command to continue")
        self.counters.measured += len(pending)
        self.counters.seconds += time.perf_counter() - started


def proxy_label(proxy: str, epochs: int) -> str:
    """How a proxy is named in the outputs: ``lga@1ep`` for a metric after one epoch."""
    if proxy.startswith(TABLE_PREFIX) or epochs == 0:
        return proxy
    return f"{proxy}@{epochs}ep"


def measurement_config(config: SearchConfig, metric: str, epochs: int, info: DatasetInfo) -> CorrelateConfig:
    """How one metric proxy is measured: correlate's settings for one metric, one BN mode and one
    training stage, so that the values (and their store keys) are those of a correlate run with
    the same protocol."""
    return CorrelateConfig(
        **measure_fields(config), data_dir=config.data_dir, metrics=(metric,), train_epochs=(epochs,),
        out=config.out, device=config.device, workers=config.workers,
    ).resolved(info)


# ----------------------------------------------------------------------------------------------
# The driver
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SearchPlan:
    strategy: str
    label: str
    evaluators: dict[str, ProxyEvaluator]
    """The proxy of each stage the strategy declares."""


@dataclass
class _Run:
    plan: _SearchPlan
    run: int
    seed: int
    ledger: Ledger
    search: Search
    ask: Ask | None = None

    def evaluator(self, stage: str) -> ProxyEvaluator:
        evaluator = self.plan.evaluators.get(stage)
        if evaluator is None:
            raise NtknasError(
                f"search strategy {self.plan.strategy!r} asked for stage {stage!r}, which it does not declare: "
                f"add it to the strategy's stages (declared: {', '.join(self.plan.evaluators)})"
            )
        return evaluator


@dataclass
class SearchOutcome:
    config: SearchConfig
    rows: list[SearchRow]
    records: list[dict[str, Any]]
    measured: int
    from_cache: int
    seconds: float
    run_dir: Path
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """What the strategies said a user should know about these settings (also logged, and in
    summary.json)."""


def run_search(
    config: SearchConfig,
    *,
    proposals: Proposals | None = None,
    reported: Reported | None = None,
    train_set: ImageDataset | None = None,
    test_set: ImageDataset | None = None,
    executor: Executor | None = None,
    on_progress: ProgressHook | None = None,
    command_line: str | None = None,
) -> SearchOutcome:
    """Run (or resume) every strategy × proxy search of ``config`` and write the outputs.

    ``proposals`` restricts where architectures are drawn from (default: the space's official
    order, or the benchmark's rows); ``reported`` supplies the reported accuracy (default: the
    ``--target`` column of ``--benchmark``); the datasets can be given directly (the demo does).
    The executor is opened once for the whole command: one process pool (or one Ray connection)
    serves every round of every run.
    """
    started = time.perf_counter()
    config = config.checked()
    info = train_set.info if train_set is not None else dataset_info(config.dataset)
    config = replace(config, space=get_space(config.space).name, dataset=info.name)
    sources = _sources(config, proposals, reported)
    device = resolve_device(config.device)
    runner = executor or make_executor(config.workers, device)
    counters = _Counters()
    with ExitStack() as stack:
        caches = [stack.enter_context(cache) for cache in _open_caches(config.cache, Path(config.out))]
        run = stack.enter_context(open_run(config.out, "search", config.store_settings(info), runner=runner,
                                           device=device, force=config.force, command_line=command_line))
        data = LazyData(config.dataset, config.data_dir, device, train_set, test_set)
        evaluators = _Evaluators(config, sources, info, run, caches, data, counters, on_progress)
        runs = _drive(_plans(config, evaluators), sources.proposals, config)
        rows = _rows(runs, sources.reported, sources.space)
        best, best_key = sources.reported.best()
        guided_by_target = _target_proxies(config, sources)
        spec = SearchSpec(
            space=config.space, dataset=info.name, target=sources.reported.name, benchmark=sources.reported.source,
            best_in_space=best, best_in_space_arch=best_key, candidates=config.candidates,
            time_budget=config.time_budget, runs=config.runs, seed=config.seed, settings=_plain_settings(config, info),
            guided_by_target=guided_by_target,
        )
        warnings = _strategy_warnings(config) + _missing_warnings(rows) + _target_warnings(guided_by_target)
        extra: dict[str, Any] = {
            "command": command_line or "",
            "measured_now": {"architectures": counters.measured, "seconds": round(counters.seconds, 3),
                             "from_cache": counters.from_cache, "device": device_name(device)},
        } | ({"warnings": warnings} if warnings else {})
        files = write_search_outputs(run.run_dir, spec, rows, extra)
    return SearchOutcome(
        config=config, rows=rows, records=summarize_search(rows, spec), measured=counters.measured,
        from_cache=counters.from_cache, seconds=time.perf_counter() - started, run_dir=Path(config.out),
        files=files, warnings=warnings,
    )


@dataclass(frozen=True)
class _Sources:
    """Where a search's architectures come from and what is reported for them."""

    space: SearchSpace
    proposals: Proposals
    reported: Reported
    benchmark: Benchmark | None


def _sources(config: SearchConfig, proposals: Proposals | None, reported: Reported | None) -> _Sources:
    """The proposals and reported accuracy (the benchmark's unless given), checked against the budget."""
    space = get_space(config.space)
    benchmark: Benchmark | None = None
    table_proxies = any(p.startswith(TABLE_PREFIX) for p in _all_proxies(config))
    if reported is None or (table_proxies and config.proxy_table is None):
        if not config.benchmark:
            raise DataError(f"search needs {option('benchmark')}: the table whose {option('target')} column is reported for the choices")
        benchmark = load_benchmark(config.benchmark, space.name, config.target)
    if reported is None:
        assert benchmark is not None
        benchmark.check_rankable()
        reported = TableReported(benchmark, space)
    if proposals is None:
        proposals = SpaceProposals(space) if space.size() is not None or benchmark is None else TableProposals(space, benchmark)
    total = proposals.size()
    if config.candidates is not None and total is not None and config.candidates > total:
        raise NtknasError(f"{option('candidates')} {config.candidates} is more than the {total} architectures to search: lower it")
    return _Sources(space, proposals, reported, benchmark)


class _Evaluators:
    """One proxy evaluator per (proxy, epochs), made on first use and shared by every run."""

    def __init__(
        self, config: SearchConfig, sources: _Sources, info: DatasetInfo, run: Run, caches: list[ResultStore],
        data: LazyData, counters: _Counters, on_progress: ProgressHook | None,
    ) -> None:
        self.config, self.sources, self.info, self.run = config, sources, info, run
        self.caches, self.data, self.counters, self.on_progress = caches, data, counters, on_progress
        self.made: dict[tuple[str, int], ProxyEvaluator] = {}

    def __call__(self, proxy: str, epochs: int) -> ProxyEvaluator:
        if proxy.startswith(TABLE_PREFIX):
            epochs = 0
        if (proxy, epochs) not in self.made:
            label = proxy_label(proxy, epochs)
            if proxy.startswith(TABLE_PREFIX):
                made: ProxyEvaluator = _table_proxy(label, proxy, self.config, self.sources.benchmark, self.sources.space)
            else:
                made = MetricProxy(
                    label, measurement_config(self.config, proxy, epochs, self.info), self.sources.space,
                    self.run.store, self.caches, self.data, self.info.num_classes, self.run.runner, self.counters,
                    self.on_progress,
                )
            self.made[(proxy, epochs)] = made
        return self.made[(proxy, epochs)]


def _plans(config: SearchConfig, evaluator: _Evaluators) -> list[_SearchPlan]:
    """One plan per strategy × proxy, each stage with its evaluator."""
    plans = []
    for strategy in map(get_strategy, config.strategies):
        for proxy in config.proxies:
            stage_proxies = _stage_proxies(config, proxy)
            stages = {stage: evaluator(*stage_proxies[stage]) for stage in strategy.stages}
            label = strategy.label([e.label for e in stages.values()], _strategy_settings(config))
            plans.append(_SearchPlan(strategy.name, label, stages))
    return plans


def _stage_proxies(config: SearchConfig, proxy: str) -> dict[str, tuple[str, int]]:
    """The proxy and training epochs of each stage a strategy may declare, for one --proxy."""
    return {FIRST: (proxy, config.proxy_epochs), SECOND: (config.second_proxy, config.second_epochs)}


def _all_proxies(config: SearchConfig) -> list[str]:
    """Every proxy the strategies' declared stages use."""
    stages = {stage for name in config.strategies for stage in get_strategy(name).stages}
    return list(dict.fromkeys(
        proxy for first in config.proxies
        for stage, (proxy, _) in _stage_proxies(config, first).items() if stage in stages
    ))


def _strategy_settings(config: SearchConfig) -> StrategySettings:
    return StrategySettings(population=config.population, tournament=config.tournament, top_k=config.top_k)


def _target_proxies(config: SearchConfig, sources: _Sources) -> tuple[str, ...]:
    """The proxies that are the reported column of the reported table itself."""
    if sources.benchmark is None or config.proxy_table not in (None, config.benchmark):
        return ()
    return tuple(p for p in _all_proxies(config) if p == f"{TABLE_PREFIX}{sources.reported.name}")


def _target_warnings(proxies: Sequence[str]) -> list[str]:
    lines = [
        f"--proxy {proxy} is the reported --target column itself: the search is guided by what it reports "
        "(an upper bound, not a search); for the oracle baseline use another column, e.g. "
        "bench:cifar10_valid_valid_hp12 with --proxy-table nb201_supplementary.csv"
        for proxy in proxies
    ]
    for line in lines:
        log.warning("%s", line)
    return lines


def _missing_warnings(rows: Sequence[SearchRow]) -> list[str]:
    """One line per search whose proxy values are partly missing (they rank below every value)."""
    reasons: dict[str, str] = {}
    for row in rows:
        if row.new and row.value is None and row.reason:
            reasons.setdefault(f"{row.strategy}, {row.proxy}", row.reason)
    lines = []
    for label, (missing, scored) in missing_proxy_values(rows).items():
        if missing:
            why = reasons.get(f"{label.strategy}, {label.proxy}", "no reason recorded")
            lines.append(f"{label.strategy}, {label.proxy}: {missing} of {scored} proxy values are missing "
                         f"(e.g. {why}); they rank below every measured value")
    for line in lines:
        log.warning("%s", line)
    return lines


def _strategy_warnings(config: SearchConfig) -> list[str]:
    """Each strategy's caveats for these settings, logged once per command (not once per run)."""
    budget = Budget(config.candidates, config.time_budget)
    warnings = [
        line for name in config.strategies for line in get_strategy(name).caveats(_strategy_settings(config), budget)
    ]
    for line in warnings:
        log.warning("%s", line)
    return warnings


def _table_proxy(label: str, proxy: str, config: SearchConfig, benchmark: Benchmark | None, space: SearchSpace) -> TableProxy:
    column = proxy[len(TABLE_PREFIX):].strip()
    if config.proxy_table is None:
        assert benchmark is not None
        if column not in benchmark.columns:
            raise UnknownNameError(
                f"proxy column {column!r} is not in {benchmark.source}: use bench: with one of "
                f"{', '.join(benchmark.columns)}, or name another table with {option('proxy_table')}"
            )
        return TableProxy(label, benchmark.with_target(column), space)
    try:
        table = load_benchmark(config.proxy_table, space.name, column)
    except UnknownNameError as error:
        raise UnknownNameError(f"{option('proxies')} {proxy}: {marked_text(error)}") from None
    return TableProxy(label, table, space)


def _open_caches(paths: Sequence[str], run_dir: Path) -> list[ResultStore]:
    stores: list[ResultStore] = []
    seen = {run_dir.resolve()}
    try:
        for path in paths:
            folder = Path(path)
            if not (folder / STORE_FILE).is_file():
                raise DataError(f"{option('cache')} {folder} holds no {STORE_FILE}: pass the {option('out')} folder of a correlate or search run")
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            try:
                stores.append(ResultStore(folder, readonly=True))
            except DataError as error:  # a damaged cache: the fix is about --cache, not --out
                reason = marked_text(error).split(": its results", 1)[0].split(f", or use another {option('out')} folder")[0]
                raise DataError(f"{option('cache')} {folder}: {reason}: drop this {option('cache')}, or move the damaged file aside") from None
    except NtknasError:
        for store in stores:
            store.close()
        raise
    return stores


def _drive(plans: Sequence[_SearchPlan], proposals: Proposals, config: SearchConfig) -> list[_Run]:
    """Advance every run of every search in lockstep, scoring each round's asks in one batch
    per proxy."""
    budget = Budget(config.candidates, config.time_budget)
    settings = _strategy_settings(config)
    runs = []
    for plan in plans:
        strategy = get_strategy(plan.strategy)
        for number in range(config.runs):
            seed = config.seed + number
            ledger = Ledger(key=proposals.key, budget=budget)
            search = strategy(proposals, np.random.default_rng(seed), ledger, settings)
            runs.append(_Run(plan, number, seed, ledger, search, next(search, None)))
    while True:
        active = [run for run in runs if run.ask is not None]
        if not active:
            return runs
        if config.time_budget is None:
            answers = _answers(active, proposals)
        else:
            answers = _answers_within_budget(active, proposals, config.time_budget)
        for run in active:
            answer = answers[id(run)]
            try:
                run.ask = run.search.send(answer)
            except StopIteration:
                run.ask = None


OVER_BUDGET = "not measured: the run's --time-budget was spent"


def _answers(active: Sequence[_Run], proposals: Proposals) -> dict[int, list[Evaluation]]:
    """Each run's answer, the round's asks scored in one batch per proxy."""
    wanted: dict[int, tuple[ProxyEvaluator, list[Any]]] = {}
    for run in active:
        assert run.ask is not None
        source = run.evaluator(run.ask.stage)
        wanted.setdefault(id(source), (source, []))[1].extend(run.ask.archs)
    scored = {number: source.evaluate(archs) for number, (source, archs) in wanted.items()}
    answers = {}
    for run in active:
        assert run.ask is not None
        values = scored[id(run.evaluator(run.ask.stage))]
        answers[id(run)] = [values[proposals.key(arch)] for arch in run.ask.archs]
    return answers


def _answers_within_budget(active: Sequence[_Run], proposals: Proposals, seconds: float) -> dict[int, list[Evaluation]]:
    """Each run's answer, measuring only while its budget lasts: a run's asked architectures are
    settled in order, values that cost nothing to have (stored, cached, a table) at once, the
    others measured one per run and round, batched across runs; once a run's accounted cost
    reaches its budget its remaining architectures are left unmeasured (the ledger, exhausted,
    records none of them). At most one measurement per run goes beyond the budget."""
    answers: dict[int, list[Evaluation]] = {id(run): [] for run in active}
    spent = {id(run): run.ledger.cost for run in active}
    charged: dict[int, set[str]] = {id(run): set() for run in active}
    while True:
        wanted: dict[int, tuple[ProxyEvaluator, list[Any]]] = {}
        for run in active:
            assert run.ask is not None
            source, answer = run.evaluator(run.ask.stage), answers[id(run)]
            while len(answer) < len(run.ask.archs):
                arch = run.ask.archs[len(answer)]
                key = proposals.key(arch)
                if spent[id(run)] >= seconds:
                    answer.append(Evaluation(None, None, OVER_BUDGET))
                elif source.ready(key):
                    (evaluation,) = source.evaluate([arch]).values()
                    if not run.ledger.seen(run.ask.stage, arch) and key not in charged[id(run)]:
                        charged[id(run)].add(key)
                        spent[id(run)] += evaluation.proxy_seconds + evaluation.train_seconds
                    answer.append(evaluation)
                else:
                    wanted.setdefault(id(source), (source, []))[1].append(arch)
                    break
        if not wanted:
            return answers
        for source, archs in wanted.values():
            source.evaluate(archs)  # measured and kept by the source: settled in the next round


def _rows(runs: Sequence[_Run], reported: Reported, space: SearchSpace) -> list[SearchRow]:
    accuracy: dict[str, float | None] = {}

    def lookup(key: str) -> float | None:
        if key not in accuracy:
            accuracy[key] = reported.accuracy(key)
        return accuracy[key]

    rows = []
    for run in runs:
        for step in run.ledger.steps:
            index = space.index(step.arch) if step.arch is not None else None
            rows.append(SearchRow(
                strategy=run.plan.strategy, proxy=run.plan.label, run=run.run, seed=run.seed, step=step.step,
                stage=step.stage, arch=step.key, index=index, value=step.evaluation.value,
                reason=step.evaluation.reason, new=step.new, accuracy=lookup(step.key),
                best_arch=step.incumbent_key, best_accuracy=lookup(step.incumbent_key),
                evaluations=step.evaluations, epochs=step.epochs, proxy_seconds=step.proxy_seconds,
                train_seconds=step.train_seconds,
            ))
    return rows


def _plain_settings(config: SearchConfig, info: DatasetInfo) -> dict[str, Any]:
    settings: dict[str, Any] = {
        f.name: list(v) if isinstance(v := getattr(config, f.name), tuple) else v for f in fields(config)
    }
    settings.update(config.store_settings(info))
    return settings


__all__ = [
    "FIRST",
    "SECOND",
    "MappingReported",
    "MetricProxy",
    "ProxyEvaluator",
    "Reported",
    "SearchConfig",
    "SearchOutcome",
    "SpaceProposals",
    "SubsetProposals",
    "TableProposals",
    "TableProxy",
    "TableReported",
    "measurement_config",
    "proxy_label",
    "run_search",
]
