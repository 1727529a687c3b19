"""Proxy evaluators: what scores architectures for a search. A benchmark column (:class:`TableProxy`,
the oracle baselines) or a registered metric measured as ``ntknas correlate`` measures it
(:class:`MetricProxy`), from the run folder's store, a ``--cache`` store, or measured now."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ntknas.data import DatasetInfo
from ntknas.errors import NtknasError
from ntknas.execution.executors import Executor, Task
from ntknas.execution.progress import ProgressHook
from ntknas.groundtruth import Benchmark
from ntknas.metrics import get_metric
from ntknas.runs.correlate import (
    ArchEntry,
    CorrelateConfig,
    CorrelateContext,
    _item_key,
    _measurement_batch,
    measure_item,
)
from ntknas.runs.skeleton import LazyData
from ntknas.search.settings import TABLE_PREFIX, SearchConfig
from ntknas.search.strategies import (
    Evaluation,
)
from ntknas.settings import measure_fields
from ntknas.spaces import SearchSpace
from ntknas.store import ItemRecord, Measurement, ResultStore, TrainingRecord

log = logging.getLogger(__name__)


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
class MeasureCounters:
    """What the proxies of one command measured and copied from caches, for its outputs."""

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
        counters: MeasureCounters, on_progress: ProgressHook | None,
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
