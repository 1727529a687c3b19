"""A correlate run's outputs: scores.csv, summary.json, summary.md and the plots."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ntknas.analysis.aggregate import log_rank_sum
from ntknas.analysis.statistics import rank_correlation
from ntknas.files import atomic_text, atomic_write_text
from ntknas.store import ResultStore

SCORES_FILE = "scores.csv"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"


@dataclass(frozen=True)
class SummarySpec:
    """What a correlate summary reports on: the run's settings as the report needs them.

    ``protocol_tag`` is the stored protocol column the measurements are selected by;
    ``directions`` maps each metric to whether it ranks by higher values (None: ranks nothing).
    """

    space: str
    dataset: str
    protocol: str
    protocol_tag: str
    measured_on: str
    batch_size: int
    seed: int
    variant: str
    params: str
    benchmark: str | None
    target: str | None
    metrics: tuple[str, ...]
    bn_modes: tuple[str, ...]
    train_epochs: tuple[int, ...]
    directions: dict[str, bool | None]
    initialization: str = "PyTorch default"
    aggregates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Set-level metrics among ``metrics`` → the per-network metrics each combines by
    Σ log(rank/N) (``az_nas``); computed here, per BN mode and training stage, never stored."""


class ScoredArch(Protocol):
    """An architecture of the summary: its stored key, index and benchmark accuracy."""

    @property
    def key(self) -> str: ...
    @property
    def index(self) -> int | None: ...
    @property
    def accuracy(self) -> float | None: ...


@dataclass(frozen=True)
class ScoreRow:
    index: int | None
    arch: str
    bn: str
    train_epochs: int
    accuracy: float | None
    values: dict[str, float | None]
    reasons: dict[str, str]


def score_table(store: ResultStore, config: SummarySpec, entries: Sequence[ScoredArch]) -> list[ScoreRow]:
    """One row per (architecture, BN mode, training stage) of this run's settings."""
    wanted = {entry.key: entry for entry in entries}
    grouped: dict[tuple[str, str, int], dict[str, Any]] = defaultdict(dict)
    reasons: dict[tuple[str, str, int], dict[str, str]] = defaultdict(dict)
    for m in store.measurements(
        space=config.space, dataset=config.dataset, seed=config.seed,
        batch_size=config.batch_size, protocol=config.protocol_tag,
    ):
        if m.arch not in wanted or m.metric not in config.metrics:
            continue
        key = (m.arch, m.bn_mode, m.train_epochs)
        grouped[key][m.metric] = m.value
        if m.reason:
            reasons[key][m.metric] = m.reason
    rows = []
    for entry in entries:
        for epochs in config.train_epochs:
            for bn in config.bn_modes:
                key = (entry.key, bn, epochs)
                if key in grouped:
                    rows.append(ScoreRow(entry.index, entry.key, bn, epochs, entry.accuracy,
                                         grouped[key], reasons.get(key, {})))
    return _with_aggregates(rows, config)


def _with_aggregates(rows: list[ScoreRow], config: SummarySpec) -> list[ScoreRow]:
    """``rows`` with each aggregate's value, computed over the rows of the same BN mode and
    training stage (the cells of that subset); a row lacking a component gets none, with why."""
    if not config.aggregates:
        return rows
    rows = [replace(row, values=dict(row.values), reasons=dict(row.reasons)) for row in rows]
    for epochs in config.train_epochs:
        for bn in config.bn_modes:
            subset = [row for row in rows if row.bn == bn and row.train_epochs == epochs]
            for name, components in config.aggregates.items():
                columns = [[_finite_or_nan(row.values.get(c)) for row in subset] for c in components]
                for row, value in zip(subset, log_rank_sum(columns)):
                    row.values[name] = None if math.isnan(value) else float(value)
                    lacking = [c for c in components if not math.isfinite(_finite_or_nan(row.values.get(c)))]
                    if lacking:
                        row.reasons[name] = f"{name} needs every component: {', '.join(lacking)} missing"
    return rows


def summarize(rows: Sequence[ScoreRow], config: SummarySpec) -> list[dict[str, Any]]:
    """One record per (metric, BN mode, training stage): signed Kendall/Spearman with 95% CIs."""
    records = []
    for epochs in config.train_epochs:
        for bn in config.bn_modes:
            subset = [r for r in rows if r.bn == bn and r.train_epochs == epochs]
            if not subset:
                continue
            accuracy = np.array([np.nan if r.accuracy is None else r.accuracy for r in subset])
            for metric in config.metrics:
                values = np.array([_finite_or_nan(r.values.get(metric)) for r in subset])
                result = rank_correlation(values, accuracy)
                direction = config.directions.get(metric)
                records.append({
                    "target": config.target,
                    "metric": metric,
                    "bn": bn,
                    "train_epochs": epochs,
                    "n": result.n,
                    "kendall": _json_float(result.kendall),
                    "spearman": _json_float(result.spearman),
                    "kendall_ci": [_json_float(v) for v in result.kendall_ci],
                    "spearman_ci": [_json_float(v) for v in result.spearman_ci],
                    "missing": int(np.sum(~np.isfinite(values))),
                    "missing_reasons": dict(Counter(
                        r.reasons.get(metric, "no value stored") for r in subset if r.values.get(metric) is None
                    ).most_common()),
                    "higher_is_better": direction,
                    **_constant_note(values),
                })
    return records


def write_correlation_outputs(
    store: ResultStore, config: SummarySpec, entries: Sequence[ScoredArch]
) -> list[Path]:
    """scores.csv, summary.json, summary.md and the plots of the stored items of ``entries``."""
    run_dir = store.run_dir
    rows = score_table(store, config, entries)
    records = summarize(rows, config)
    files = [
        _write_scores(run_dir / SCORES_FILE, rows, config),
        _write_json(run_dir / SUMMARY_JSON, records),
        _write_markdown(run_dir / SUMMARY_MD, records, config, store, entries),
    ]
    if rows:
        from ntknas.report.plots import plot_metric_scatter, plot_tau_vs_epochs

        for metric in config.metrics:
            files.append(plot_metric_scatter(run_dir / f"scatter_{metric}.png", metric, rows, records, config))
        if len(config.train_epochs) > 1:
            files.append(plot_tau_vs_epochs(run_dir / "kendall_vs_epochs.png", records, config))
    return files


def _write_scores(path: Path, rows: Sequence[ScoreRow], config: SummarySpec) -> Path:
    with atomic_text(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "arch", "bn", "train_epochs", "accuracy", *config.metrics])
        for row in rows:
            writer.writerow([
                "" if row.index is None else row.index, row.arch, row.bn, row.train_epochs,
                "" if row.accuracy is None else repr(row.accuracy),
                *("" if row.values.get(m) is None else repr(row.values[m]) for m in config.metrics),
            ])
    return path


def _write_json(path: Path, records: list[dict[str, Any]]) -> Path:
    atomic_write_text(path, json.dumps(records, indent=2) + "\n")
    return path


SUMMARY_HEADERS = ("metric", "BN", "epochs", "n", "Kendall τ [95% CI]", "Spearman ρ [95% CI]", "ranks by", "missing")


def summary_rows(records: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row of strings per summary record, in the columns of :data:`SUMMARY_HEADERS`."""
    rows: list[tuple[str, ...]] = []
    for r in records:
        direction = {True: "higher", False: "lower", None: "—"}[r["higher_is_better"]]
        rows.append((
            str(r["metric"]), str(r["bn"]), str(r["train_epochs"]), str(r["n"]),
            f"{_fmt(r['kendall'])} [{_fmt(r['kendall_ci'][0])}, {_fmt(r['kendall_ci'][1])}]",
            f"{_fmt(r['spearman'])} [{_fmt(r['spearman_ci'][0])}, {_fmt(r['spearman_ci'][1])}]",
            direction, str(r["missing"]),
        ))
    return rows


def _constant_note(values: np.ndarray) -> dict[str, str]:
    """A note where every measured value is the same: such a metric ranks nothing (τ is n/a)."""
    finite = values[np.isfinite(values)]
    if finite.size >= 2 and np.all(finite == finite[0]):
        return {"note": f"all {finite.size} values equal {finite[0]:.6g}: a constant ranks nothing"}
    return {}


def missing_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """Why values are missing: one line per metric, BN mode and stage that lacks any, with the
    reasons the store recorded and their counts (a table cell says n/a, this says why)."""
    lines = []
    for r in records:
        if r.get("note"):
            lines.append(f"- {r['metric']}, BN {r['bn']}, epoch {r['train_epochs']}: {r['note']}")
        reasons = r.get("missing_reasons") or {}
        if r["missing"] and reasons:
            why = "; ".join(f"{reason} ({count})" for reason, count in reasons.items())
            lines.append(f"- {r['metric']}, BN {r['bn']}, epoch {r['train_epochs']}: {r['missing']} missing: {why}")
    return ["Why some correlations are n/a:", "", *lines, ""] if lines else []


def markdown_table(records: Sequence[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(SUMMARY_HEADERS) + " |", "|" + "---|" * len(SUMMARY_HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(records)]
    return "\n".join(lines)


def _write_markdown(
    path: Path, records: list[dict[str, Any]], config: SummarySpec, store: ResultStore,
    entries: Sequence[ScoredArch],
) -> Path:
    environment = store.get_meta("environment") or {}
    target = config.target or "not named by the caller"
    text = [
        f"# ntknas correlate — {config.space}, {config.dataset}",
        "",
        f"- command: `{store.get_meta('last_command')}`",
        f"- protocol: {config.protocol}; measured on: {config.measured_on.replace('_', ' ')} "
        f"({config.batch_size} images, seed {config.seed}); network variant: {config.variant}; "
        f"kernel parameters: {config.params}; initialization: {config.initialization}",
        f"- ground truth: {config.benchmark or 'given by the caller'} (target: {target})",
        f"- device: {_devices(store, entries) or environment.get('device', '?')}; "
        f"torch {environment.get('torch', '?')} (last command)",
        "",
        "Correlations are signed: for a metric that ranks by 'lower' (e.g. tenas), a good metric",
        "has a NEGATIVE correlation with accuracy.",
        "",
        markdown_table(records),
        "",
        *missing_lines(records),
    ]
    atomic_write_text(path, "\n".join(text))
    return path


def _devices(store: ResultStore, entries: Sequence[ScoredArch]) -> str:
    """Which devices measured the summarized items; a resumed run may have used several."""
    keys = {entry.key for entry in entries}
    counts = Counter(item.device for item in store.items() if item.arch in keys)
    if len(counts) <= 1:
        return next(iter(counts), "")
    return ", ".join(f"{device} ({count} item{'s' * (count != 1)})" for device, count in counts.most_common())


def _finite_or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _json_float(value: float) -> float | None:
    return None if not math.isfinite(value) else round(float(value), 6)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"
