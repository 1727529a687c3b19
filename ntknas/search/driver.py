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
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ntknas.data import DatasetInfo, ImageDataset, dataset_info, load_for_run
from ntknas.errors import DataError, NtknasError, UnknownNameError
from ntknas.execution.executors import Executor, Task, make_executor
from ntknas.execution.progress import ProgressHook
from ntknas.execution.runtime import device_name, environment, resolve_device
from ntknas.groundtruth import Benchmark, load_benchmark
from ntknas.inputs.validation import check_settings
from ntknas.kernel import BN_MODES
from ntknas.kernel.matrix_free import DEFAULT_ESTIMATOR, DEFAULT_PROBES, EstimatorSettings
from ntknas.metrics import check_kernel_choice, get_metric
from ntknas.report.search import SearchRow, SearchSpec, summarize_search, write_search_outputs
from ntknas.runs.correlate import (
    PROTOCOLS,
    ArchEntry,
    CorrelateConfig,
    CorrelateContext,
    _item_key,
    _measurement_batch,
    measure_item,
    protocol_defaults,
)
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
from ntknas.spaces import SearchSpace, get_space
from ntknas.store import STORE_FILE, ItemRecord, Measurement, ResultStore, TrainingRecord

log = logging.getLogger(__name__)

TABLE_PREFIX = "bench:"
"""A proxy named ``bench:COLUMN`` is a column of a benchmark table (an oracle baseline)."""

_IDENTITY = {"identity": True}


@dataclass(frozen=True)
class SearchConfig:
    """Settings of ``ntknas search``. Fields marked identity must agree for two commands to share
    a run folder (they fix how proxies are measured); strategies, proxies and budgets may change,
    and the outputs then describe the last command.

    Seeds: run ``r`` draws with ``numpy.random.default_rng(seed + r)``; ``model_seed`` is the
    network and data seed of the measurements (default: the protocol's).
    """

    space: str = field(default="nb201", metadata=_IDENTITY)
    dataset: str = field(default="cifar10", metadata=_IDENTITY)
    data_dir: str | None = None
    benchmark: str | None = None
    target: str | None = None
    strategies: tuple[str, ...] = ("random",)
    proxies: tuple[str, ...] = ()
    proxy_table: str | None = None
    proxy_epochs: int = 0
    second_proxy: str = "lga"
    second_epochs: int = 1
    top_k: int = 10
    population: int = 10
    tournament: int = 3
    candidates: int | None = 100
    time_budget: float | None = None
    runs: int = 10
    seed: int = 0
    bn: str = field(default="train", metadata=_IDENTITY)
    protocol: str = field(default="study", metadata=_IDENTITY)
    batch_size: int | None = field(default=None, metadata=_IDENTITY)
    model_seed: int | None = field(default=None, metadata=_IDENTITY)
    variant: str = field(default="study", metadata=_IDENTITY)
    params: str = field(default="weights", metadata=_IDENTITY)
    network_options: dict[str, Any] = field(default_factory=dict, metadata=_IDENTITY)
    train_batch_size: int = field(default=1024, metadata=_IDENTITY)
    cache: tuple[str, ...] = ()
    out: str = "runs/search"
    device: str = "cpu"
    workers: int = 1
    force: bool = False
    kernel: str = "exact"
    probes: int = DEFAULT_PROBES
    estimator_seed: int = 0
    estimator: str = DEFAULT_ESTIMATOR

    @property
    def estimator_settings(self) -> EstimatorSettings:
        return EstimatorSettings(probes=self.probes, seed=self.estimator_seed, estimator=self.estimator)

    def checked(self) -> SearchConfig:
        """The config with names normalized and every value checked (no file is read)."""
        named = [s.strip().lower() for s in self.strategies if s.strip()]
        if not named:
            raise UnknownNameError(f"--strategy names no strategy: use one of {', '.join(available_strategies())}")
        repeated = next((name for i, name in enumerate(named) if name in named[:i]), None)
        if repeated is not None:
            raise NtknasError(f"--strategy names {repeated!r} twice: name each strategy once")
        strategies = tuple(named)
        second_stage = any(get_strategy(name).needs_second_proxy for name in strategies)
        proxies = tuple(dict.fromkeys(p.strip() for p in self.proxies if p.strip()))
        if not proxies:
            raise UnknownNameError("--proxy names no proxy: give a metric (e.g. synflow) or bench:COLUMN")
        for proxy in proxies:
            _check_proxy(proxy, "--proxy")
        if second_stage:
            _check_proxy(self.second_proxy, "--second-proxy")
        if self.protocol not in PROTOCOLS:
            raise UnknownNameError(f"unknown protocol {self.protocol!r}: use one of {', '.join(PROTOCOLS)}")
        if self.bn not in BN_MODES:
            raise UnknownNameError(f"unknown BatchNorm mode {self.bn!r} in --bn: use train or eval")
        for flag, value in (("--runs", self.runs), ("--population", self.population),
                            ("--tournament", self.tournament), ("--top-k", self.top_k), ("--workers", self.workers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise NtknasError(f"{flag} must be a positive integer, got {value!r}")
        for flag, value in (("--proxy-epochs", self.proxy_epochs), ("--second-epochs", self.second_epochs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise NtknasError(f"{flag} must be an epoch count >= 0, got {value!r}")
        metric_proxies = [p for p in proxies if not p.startswith(TABLE_PREFIX)]
        if second_stage and not self.second_proxy.startswith(TABLE_PREFIX):
            metric_proxies.append(self.second_proxy.strip())
        check_kernel_choice(self.kernel, metric_proxies)
        self.estimator_settings  # noqa: B018 -- refuses a bad --probes or --estimator
        if self.candidates is None and self.time_budget is None:
            raise NtknasError("no budget: give --candidates N and/or --time-budget SECONDS")
        if self.candidates is not None and (isinstance(self.candidates, bool) or self.candidates < 1):
            raise NtknasError(f"--candidates must be at least 1, got {self.candidates}")
        if self.time_budget is not None and not (math.isfinite(self.time_budget) and self.time_budget > 0):
            raise NtknasError(f"--time-budget must be a number of seconds > 0, got {self.time_budget:g}")
        if self.candidates is None and any(p.startswith(TABLE_PREFIX) for p in proxies):
            raise NtknasError(
                "bench: proxies cost nothing, so --time-budget alone never ends their search: give --candidates"
            )
        check_settings(self)
        return _replace(self, strategies=strategies, proxies=proxies, second_proxy=self.second_proxy.strip())

    def store_settings(self, info: DatasetInfo) -> dict[str, Any]:
        """What must match for two commands to share a run folder: how proxies are measured."""
        batch_size, seed = protocol_defaults(self.protocol, get_space(self.space).name, info)
        settings = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("identity")}
        settings.update(
            space=get_space(self.space).name, dataset=info.name,
            batch_size=self.batch_size or batch_size, model_seed=seed if self.model_seed is None else self.model_seed,
        )
        if self.kernel != "exact":  # absent for the exact kernel: older run folders keep their identity
            settings["kernel"] = {"kind": self.kernel, **self.estimator_settings.identity()}
        return settings


def _replace(config: SearchConfig, **values: Any) -> SearchConfig:
    current = {f.name: getattr(config, f.name) for f in fields(config)}
    return SearchConfig(**(current | values))


def _check_proxy(proxy: str, flag: str) -> None:
    if proxy.startswith(TABLE_PREFIX):
        if not proxy[len(TABLE_PREFIX):].strip():
            raise UnknownNameError(f"{flag} {proxy!r} names no column: use bench:COLUMN, e.g. bench:cifar10_valid_valid_hp12")
        return
    metric = get_metric(proxy)
    if metric.higher_is_better is None:
        raise UnknownNameError(f"{flag} {proxy}: this metric ranks nothing (it is a diagnostic): choose a metric with a direction")


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
class _Data:
    """The run's datasets, loaded on first need (a search whose values are all stored loads none)."""

    dataset: str
    data_dir: str | None
    device: torch.device
    train_set: ImageDataset | None = None
    test_set: ImageDataset | None = None

    def train(self) -> ImageDataset:
        if self.train_set is None:
            self.train_set = load_for_run(self.dataset, self.data_dir, "train", self.device)
        else:
            self.train_set = self.train_set.to(self.device)
        return self.train_set

    def test(self) -> ImageDataset:
        if self.test_set is None:
            self.test_set = load_for_run(self.dataset, self.data_dir, "test", self.device)
        else:
            self.test_set = self.test_set.to(self.device)
        return self.test_set


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
        caches: Sequence[ResultStore], data: _Data, num_classes: int, executor: Executor,
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
            train_set = self.data.train()
            test_set = self.data.test() if config.measured_on == "test_first" else None
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
    the same protocol. Kernel options join here, as correlate's do."""
    return CorrelateConfig(
        space=config.space, dataset=config.dataset, data_dir=config.data_dir, batch_size=config.batch_size,
        bn_modes=(config.bn,), metrics=(metric,), train_epochs=(epochs,), out=config.out, device=config.device,
        protocol=config.protocol, model_seed=config.model_seed, variant=config.variant, params=config.params,
        network_options=dict(config.network_options), train_batch_size=config.train_batch_size,
        workers=config.workers, kernel=config.kernel, probes=config.probes, estimator_seed=config.estimator_seed,
        estimator=config.estimator,
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
    """
    started = time.perf_counter()
    config = config.checked()
    space = get_space(config.space)
    info = train_set.info if train_set is not None else dataset_info(config.dataset)
    config = _replace(config, space=space.name, dataset=info.name)
    device = resolve_device(config.device)
    benchmark: Benchmark | None = None
    table_proxies = any(p.startswith(TABLE_PREFIX) for p in _all_proxies(config))
    if reported is None or (table_proxies and config.proxy_table is None):
        if not config.benchmark:
            raise DataError("search needs --benchmark: the table whose --target column is reported for the choices")
        benchmark = load_benchmark(config.benchmark, space.name, config.target)
    if reported is None:
        assert benchmark is not None
        benchmark.check_rankable()
        reported = TableReported(benchmark, space)
    if proposals is None:
        proposals = SpaceProposals(space) if space.size() is not None or benchmark is None else TableProposals(space, benchmark)
    total = proposals.size()
    if config.candidates is not None and total is not None and config.candidates > total:
        raise NtknasError(f"--candidates {config.candidates} is more than the {total} architectures to search: lower it")
    run_dir = Path(config.out)
    caches = _open_caches(config.cache, run_dir)
    counters = _Counters()
    try:
        with ResultStore(run_dir) as store:
            store.claim_settings("search", config.store_settings(info), force=config.force)
            store.set_meta("last_command", command_line or "")
            store.set_meta("environment", environment(device))
            data = _Data(config.dataset, config.data_dir, device, train_set, test_set)
            runner = executor or make_executor(config.workers, device)
            evaluators: dict[tuple[str, int], ProxyEvaluator] = {}

            def evaluator(proxy: str, epochs: int) -> ProxyEvaluator:
                if proxy.startswith(TABLE_PREFIX):
                    epochs = 0
                if (proxy, epochs) not in evaluators:
                    label = proxy_label(proxy, epochs)
                    if proxy.startswith(TABLE_PREFIX):
                        evaluators[(proxy, epochs)] = _table_proxy(label, proxy, config, benchmark, space)
                    else:
                        evaluators[(proxy, epochs)] = MetricProxy(
                            label, measurement_config(config, proxy, epochs, info), space, store, caches, data,
                            info.num_classes, runner, counters, on_progress,
                        )
                return evaluators[(proxy, epochs)]

            plans = []
            for strategy in map(get_strategy, config.strategies):
                for proxy in config.proxies:
                    stage_proxies = _stage_proxies(config, proxy)
                    stages = {stage: evaluator(*stage_proxies[stage]) for stage in strategy.stages}
                    label = strategy.label([e.label for e in stages.values()], _strategy_settings(config))
                    plans.append(_SearchPlan(strategy.name, label, stages))
            warnings = _strategy_warnings(config)
            runs = _drive(plans, proposals, config)
            rows = _rows(runs, reported, space)
            best, best_key = reported.best()
            spec = SearchSpec(
                space=space.name, dataset=info.name, target=reported.name, benchmark=reported.source,
                best_in_space=best, best_in_space_arch=best_key, candidates=config.candidates,
                time_budget=config.time_budget, runs=config.runs, seed=config.seed,
                settings=_plain_settings(config, info),
            )
            extra = {
                "command": command_line or "",
                "measured_now": {"architectures": counters.measured, "seconds": round(counters.seconds, 3),
                                 "from_cache": counters.from_cache, "device": device_name(device)},
            }
            if warnings:
                extra["warnings"] = warnings
            files = write_search_outputs(run_dir, spec, rows, extra)
            records = summarize_search(rows, spec)
    finally:
        for cache in caches:
            cache.close()
    return SearchOutcome(
        config=config, rows=rows, records=records, measured=counters.measured, from_cache=counters.from_cache,
        seconds=time.perf_counter() - started, run_dir=run_dir, files=files, warnings=warnings,
    )


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
                f"{', '.join(benchmark.columns)}, or name another table with --proxy-table"
            )
        return TableProxy(label, benchmark.with_target(column), space)
    try:
        table = load_benchmark(config.proxy_table, space.name, column)
    except UnknownNameError as error:
        raise UnknownNameError(f"--proxy {proxy}: {error}") from None
    return TableProxy(label, table, space)


def _open_caches(paths: Sequence[str], run_dir: Path) -> list[ResultStore]:
    stores: list[ResultStore] = []
    seen = {run_dir.resolve()}
    try:
        for path in paths:
            folder = Path(path)
            if not (folder / STORE_FILE).is_file():
                raise DataError(f"--cache {folder} holds no {STORE_FILE}: pass the --out folder of a correlate or search run")
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            stores.append(ResultStore(folder, readonly=True))
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
        wanted: dict[int, tuple[ProxyEvaluator, list[Any]]] = {}
        for run in active:
            assert run.ask is not None
            source = run.evaluator(run.ask.stage)
            wanted.setdefault(id(source), (source, []))[1].extend(run.ask.archs)
        scored = {number: source.evaluate(archs) for number, (source, archs) in wanted.items()}
        for run in active:
            assert run.ask is not None
            values = scored[id(run.evaluator(run.ask.stage))]
            answer = [values[proposals.key(arch)] for arch in run.ask.archs]
            try:
                run.ask = run.search.send(answer)
            except StopIteration:
                run.ask = None


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
