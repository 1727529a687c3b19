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

This module is the driving loop (:func:`run_search`: plans, rounds of answers, output rows); the
search's parts live beside it and stay importable from here: :mod:`~ntknas.search.settings`
(:class:`SearchConfig`), :mod:`~ntknas.search.proposals` (where architectures come from),
:mod:`~ntknas.search.reported` (the reported accuracy) and :mod:`~ntknas.search.proxies` (the proxy
evaluators).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ntknas.data import DatasetInfo, ImageDataset, dataset_info
from ntknas.errors import DataError, NtknasError, UnknownNameError, marked_text, option
from ntknas.execution.executors import Executor, make_executor
from ntknas.execution.progress import ProgressHook
from ntknas.execution.runtime import device_name, resolve_device
from ntknas.groundtruth import Benchmark, load_benchmark
from ntknas.report.search import SearchRow, SearchSpec, missing_proxy_values, summarize_search, write_search_outputs
from ntknas.runs.skeleton import LazyData, Run, open_run
from ntknas.search.proposals import MUTATION_TRIES, SpaceProposals, SubsetProposals, TableProposals
from ntknas.search.proxies import (
    MeasureCounters,
    MetricProxy,
    ProxyEvaluator,
    TableProxy,
    measurement_config,
    proxy_label,
)
from ntknas.search.reported import MappingReported, Reported, TableReported
from ntknas.search.settings import SEARCH_IDENTITY_NAMES, TABLE_PREFIX, SearchConfig
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
    get_strategy,
)
from ntknas.spaces import SearchSpace, get_space
from ntknas.store import STORE_FILE, ResultStore

log = logging.getLogger(__name__)


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
    counters = MeasureCounters()
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
        if choices := evaluators.kernel_choices():
            extra["kernel_auto"] = choices
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
        data: LazyData, counters: MeasureCounters, on_progress: ProgressHook | None,
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

    def kernel_choices(self) -> dict[str, dict[str, str]]:
        """What ``--kernel auto`` chose for each metric proxy and why (its values are stored under
        that kernel's identity, so they are shared with runs that named it)."""
        return {
            made.label: {"kind": made.config.kernel, "why": made.config.kernel_choice}
            for made in self.made.values() if isinstance(made, MetricProxy) and made.config.kernel_choice
        }


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
        "bench:cifar10_valid_valid_hp12 with --proxy-table nb201_hp12.csv (ntknas export-benchmark OFFICIAL.pth "
        "--hp 12 --out nb201_hp12.csv; docs/data.md)"
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
    "MUTATION_TRIES",
    "OVER_BUDGET",
    "SEARCH_IDENTITY_NAMES",
    "SECOND",
    "TABLE_PREFIX",
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
