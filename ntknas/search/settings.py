"""Settings of ``ntknas search``: :class:`SearchConfig` and the checks of its proxy names."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ntknas.data import DatasetInfo
from ntknas.errors import NtknasError, UnknownNameError, option
from ntknas.inputs import validation as check
from ntknas.metrics import get_metric
from ntknas.runs.correlate import (
    protocol_defaults,
)
from ntknas.search.strategies import (
    available_strategies,
    get_strategy,
)
from ntknas.settings import MeasureSettings, check_fields, setting
from ntknas.spaces import get_space

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
                                      help="table for bench:COLUMN proxies (default: --benchmark), e.g. the nb201_hp12.csv that "
                                           "ntknas export-benchmark --hp 12 writes (docs/data.md)")
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
        self.check_metrics(metric_proxies)
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
