"""A search run's outputs: search.csv, summary.json, summary.md and the best-so-far plot.

The rows carry plain values only (the driver in :mod:`ntknas.search.driver` fills them),
so this module, like the rest of the report, needs neither torch nor the experiment code.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ntknas.files import atomic_binary, atomic_text, atomic_write_text

SEARCH_CSV = "search.csv"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
SEARCH_PLOT = "search_best_so_far.png"

SEARCH_CSV_COLUMNS = (
    "strategy", "proxy", "run", "seed", "step", "stage", "arch", "index", "value", "reason", "new",
    "accuracy", "best_arch", "best_accuracy", "evaluations", "epochs", "proxy_seconds", "train_seconds", "cost",
)


@dataclass(frozen=True)
class SearchRow:
    """One scored proposal of one run (a row of search.csv).

    ``value`` is the proxy as measured (the second proxy's on ``stage`` "second"); ``accuracy``
    the reported target of ``arch``; ``best_arch`` / ``best_accuracy`` the incumbent chosen BY
    THE PROXY after this step and its reported target; ``evaluations`` the distinct architectures
    scored so far; ``epochs``, ``proxy_seconds``, ``train_seconds`` and ``cost`` (their sum of
    seconds) are cumulative over the run.
    """

    strategy: str
    proxy: str
    run: int
    seed: int
    step: int
    stage: str
    arch: str
    index: int | None
    value: float | None
    reason: str | None
    new: bool
    accuracy: float | None
    best_arch: str
    best_accuracy: float | None
    evaluations: int
    epochs: int
    proxy_seconds: float
    train_seconds: float

    @property
    def cost(self) -> float:
        return self.proxy_seconds + self.train_seconds


@dataclass(frozen=True)
class SearchSpec:
    """What a search summary reports on (the settings as the report needs them)."""

    space: str
    dataset: str
    target: str
    benchmark: str | None
    best_in_space: float | None
    best_in_space_arch: str | None
    candidates: int | None
    time_budget: float | None
    runs: int
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    guided_by_target: tuple[str, ...] = ()
    """Proxies that are the reported column itself (an upper bound, not a search)."""


@dataclass(frozen=True)
class SearchLabel:
    strategy: str
    proxy: str

    @property
    def text(self) -> str:
        return f"{self.strategy} / {self.proxy}"


def write_search_outputs(
    run_dir: Path, spec: SearchSpec, rows: Sequence[SearchRow], extra: dict[str, Any] | None = None
) -> list[Path]:
    """search.csv, summary.json, summary.md and the plot, from every row of the run folder."""
    records = summarize_search(rows, spec)
    summary = {"spec": asdict(spec), "searches": records, **(extra or {})}
    files = [
        _write_csv(run_dir / SEARCH_CSV, rows),
        _write_json(run_dir / SUMMARY_JSON, summary),
    ]
    if rows:
        files.append(plot_best_so_far(run_dir / SEARCH_PLOT, rows, spec))
    files.append(_write_markdown(run_dir / SUMMARY_MD, summary, plot=bool(rows)))
    return files


def _labels(rows: Sequence[SearchRow]) -> list[SearchLabel]:
    return list(dict.fromkeys(SearchLabel(r.strategy, r.proxy) for r in rows))


def final_rows(rows: Sequence[SearchRow]) -> dict[SearchLabel, list[SearchRow]]:
    """The last row of each run (it carries the run's choice and total cost), per search."""
    last: dict[tuple[SearchLabel, int], SearchRow] = {}
    for row in rows:
        last[(SearchLabel(row.strategy, row.proxy), row.run)] = row
    out: dict[SearchLabel, list[SearchRow]] = {label: [] for label in _labels(rows)}
    for (label, _), row in sorted(last.items(), key=lambda item: item[0][1]):
        out[label].append(row)
    return out


def missing_proxy_values(rows: Sequence[SearchRow]) -> dict[SearchLabel, tuple[int, int]]:
    """(missing, scored) proxy values per search, over its runs: each architecture a run scored
    counts once per stage; a missing one ranked below every measured value."""
    counts: dict[SearchLabel, list[int]] = {label: [0, 0] for label in _labels(rows)}
    for row in rows:
        if row.new:
            tally = counts[SearchLabel(row.strategy, row.proxy)]
            tally[1] += 1
            tally[0] += row.value is None
    return {label: (tally[0], tally[1]) for label, tally in counts.items()}


def summarize_search(rows: Sequence[SearchRow], spec: SearchSpec) -> list[dict[str, Any]]:
    """One record per (strategy, proxy): the reported accuracy of the runs' choices (mean and
    sample standard deviation, ddof = 1), regret to the best architecture in the space, and the
    mean cost."""
    records = []
    missing = missing_proxy_values(rows)
    for label, finals in final_rows(rows).items():
        accuracy = np.array([_nan(r.best_accuracy) for r in finals])
        regret = spec.best_in_space - accuracy if spec.best_in_space is not None else np.full(len(finals), np.nan)
        records.append({
            "strategy": label.strategy,
            "proxy": label.proxy,
            "runs": len(finals),
            "accuracy_mean": _mean(accuracy),
            "accuracy_std": _std(accuracy),
            "regret_mean": _mean(regret),
            "regret_std": _std(regret),
            "found_best": int(np.sum(regret <= 1e-9)) if spec.best_in_space is not None else None,
            "evaluations_mean": _mean(np.array([r.evaluations for r in finals], dtype=float)),
            "epochs_mean": _mean(np.array([r.epochs for r in finals], dtype=float)),
            "proxy_seconds_mean": _mean(np.array([r.proxy_seconds for r in finals])),
            "train_seconds_mean": _mean(np.array([r.train_seconds for r in finals])),
            "cost_mean": _mean(np.array([r.cost for r in finals])),
            "cost_total": _round(sum(r.cost for r in finals)),
            "proxy_values": missing[label][1],
            "proxy_missing": missing[label][0],
            "final": [
                {"run": r.run, "seed": r.seed, "arch": r.best_arch, "accuracy": _json(r.best_accuracy),
                 "regret": _json(None if spec.best_in_space is None or r.best_accuracy is None
                                 else spec.best_in_space - r.best_accuracy),
                 "evaluations": r.evaluations, "epochs": r.epochs, "cost": _round(r.cost)}
                for r in finals
            ],
        })
    return records


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _mean(values: np.ndarray) -> float | None:
    finite = _finite(values)
    return _round(float(finite.mean())) if finite.size else None


def _std(values: np.ndarray) -> float | None:
    finite = _finite(values)
    return _round(float(finite.std(ddof=1))) if finite.size > 1 else None


def _round(value: float) -> float:
    return round(float(value), 6)


def _json(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else _round(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _write_csv(path: Path, rows: Sequence[SearchRow]) -> Path:
    with atomic_text(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(SEARCH_CSV_COLUMNS)
        for row in rows:
            values = asdict(row) | {"cost": row.cost}
            writer.writerow([_cell(values[column]) for column in SEARCH_CSV_COLUMNS])
    return path


def read_search_csv(path: Path) -> list[SearchRow]:
    """The rows of a search.csv (for the report)."""
    def number(text: str) -> float | None:
        return None if text == "" else float(text)

    with path.open(newline="") as handle:
        return [
            SearchRow(
                strategy=r["strategy"], proxy=r["proxy"], run=int(r["run"]), seed=int(r["seed"]),
                step=int(r["step"]), stage=r["stage"], arch=r["arch"],
                index=None if r["index"] == "" else int(r["index"]), value=number(r["value"]),
                reason=r["reason"] or None, new=r["new"] == "1", accuracy=number(r["accuracy"]),
                best_arch=r["best_arch"], best_accuracy=number(r["best_accuracy"]),
                evaluations=int(r["evaluations"]), epochs=int(r["epochs"]),
                proxy_seconds=float(r["proxy_seconds"]), train_seconds=float(r["train_seconds"]),
            )
            for r in csv.DictReader(handle)
        ]


def _write_json(path: Path, summary: dict[str, Any]) -> Path:
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
    return path


SEARCH_HEADERS = (
    "strategy", "proxy", "runs", "accuracy (mean ± std)", "regret", "found best", "archs scored",
    "epochs trained", "cost (s, mean per run)", "proxy values missing",
)


CHOICE_HEADERS = ("strategy", "proxy", "run", "seed", "architecture", "accuracy", "regret", "archs scored", "cost (s)")


def choice_rows(records: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row of strings per run of each search: what it chose, what that reaches, what it cost."""
    rows: list[tuple[str, ...]] = []
    for r in records:
        for final in r["final"]:
            rows.append((
                str(r["strategy"]), str(r["proxy"]), str(final["run"]), str(final["seed"]), f"`{final['arch']}`",
                _number(final["accuracy"], 2), _number(final["regret"], 2), str(final["evaluations"]),
                _number(final["cost"], 1),
            ))
    return rows


def search_table_rows(records: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row of strings per search record, in the columns of :data:`SEARCH_HEADERS`."""
    rows: list[tuple[str, ...]] = []
    for r in records:
        std = "" if r["accuracy_std"] is None else f" ± {r['accuracy_std']:.2f}"
        accuracy = "n/a" if r["accuracy_mean"] is None else f"{r['accuracy_mean']:.2f}{std}"
        regret = "n/a" if r["regret_mean"] is None else f"{r['regret_mean']:.2f}"
        found = "n/a" if r["found_best"] is None else f"{r['found_best']}/{r['runs']}"
        rows.append((
            str(r["strategy"]), str(r["proxy"]), str(r["runs"]), accuracy, regret, found,
            _number(r["evaluations_mean"], 1), _number(r["epochs_mean"], 1), _number(r["cost_mean"], 1),
            f"{r.get('proxy_missing', 0)} of {r.get('proxy_values', 0)}",
        ))
    return rows


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def search_facts(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Label/value pairs describing a search summary (for summary.md and the report)."""
    spec = summary["spec"]
    budget = []
    if spec["candidates"] is not None:
        budget.append(f"{spec['candidates']} architectures scored per run")
    if spec["time_budget"] is not None:
        budget.append(f"{spec['time_budget']:g} s of accounted cost per run")
    best = spec["best_in_space"]
    measured = summary.get("measured_now") or {}
    facts = [
        ("space and dataset", f"{spec['space']}, {spec['dataset']}"),
        ("reported accuracy" + (f" (also the proxy {', '.join(spec['guided_by_target'])}: an upper bound, not a search)"
                                if spec.get("guided_by_target") else " (never used for guidance)"),
         f"{spec['target']} from {spec['benchmark'] or 'the caller'}"
         + ("" if best is None else f"; best in the space {best:.2f} ({spec['best_in_space_arch']})")),
        ("budget", " or ".join(budget) or "none"),
        ("runs", f"{spec['runs']}, run r seeded with {spec['seed']} + r"),
        ("cost", "device seconds measured when each proxy value was first computed (metric evaluation) plus "
                 "the training seconds it needed, charged once per architecture and run; table lookups cost 0"),
    ]
    if measured:
        facts.append((
            "this invocation",
            f"{measured.get('architectures', 0)} proxy values measured in {measured.get('seconds', 0.0):.1f} s, "
            f"{measured.get('from_cache', 0)} taken from --cache folders",
        ))
    return facts


def _write_markdown(path: Path, summary: dict[str, Any], plot: bool) -> Path:
    records = summary["searches"]
    lines = [f"# ntknas search — {summary['spec']['space']}, {summary['spec']['dataset']}", ""]
    if summary.get("command"):
        lines.append(f"- command: `{summary['command']}`")
    lines += [f"- {label}: {value}" for label, value in search_facts(summary)]
    lines += [f"- warning: {line}" for line in summary.get("warnings", [])]
    lines += [
        "",
        "Accuracy is the reported target of each run's final choice (chosen by the proxy); ± is the "
        "sample standard deviation over runs; regret is the best in the space minus it.",
        "",
        "| " + " | ".join(SEARCH_HEADERS) + " |",
        "|" + "---|" * len(SEARCH_HEADERS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in search_table_rows(records)]
    lines += ["", "Each run's choice (the proxy's incumbent at the end of the run):", "",
              "| " + " | ".join(CHOICE_HEADERS) + " |", "|" + "---|" * len(CHOICE_HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in choice_rows(records)]
    if plot:
        lines += ["", f"![best-so-far accuracy]({SEARCH_PLOT})"]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------------------------
# Plot
# ----------------------------------------------------------------------------------------------


def _step_curve(xs: np.ndarray, ys: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The best-so-far value at each grid point: the last step at or before it (NaN before the
    first step)."""
    positions = np.searchsorted(xs, grid, side="right") - 1
    out = np.where(positions >= 0, ys[np.clip(positions, 0, None)], np.nan)
    return out


def plot_best_so_far(path: Path, rows: Sequence[SearchRow], spec: SearchSpec) -> Path:
    """Best-so-far reported accuracy (the proxy's incumbent) against architectures scored and
    against cumulative cost: the mean over runs as a line, ± one standard deviation as a band.
    The y-axis leaves out each curve's first tenth (a few lucky or unlucky first draws)."""
    fig = Figure(figsize=(11, 4.2))
    by_count, by_cost = fig.subplots(1, 2)
    free = []
    shown: dict[Any, list[float]] = {by_count: [], by_cost: []}
    for number, label in enumerate(_labels(rows)):
        runs: dict[int, list[SearchRow]] = {}
        for row in rows:
            if row.strategy == label.strategy and row.proxy == label.proxy:
                runs.setdefault(row.run, []).append(row)
        color = f"C{number % 10}"
        for ax, x_of in ((by_count, lambda r: float(r.evaluations)), (by_cost, lambda r: r.cost)):
            curves = [
                (np.array([x_of(r) for r in rs]), np.array([_nan(r.best_accuracy) for r in rs])) for rs in runs.values()
            ]
            top = max(float(xs[-1]) for xs, _ in curves)
            if ax is by_cost and top <= 0:
                free.append(label.text)
                continue
            grid = np.linspace(min(float(xs[0]) for xs, _ in curves), top, 200)
            values = np.array([_step_curve(xs, ys, grid) for xs, ys in curves])
            counts = np.sum(np.isfinite(values), axis=0)
            mean = np.array([np.mean(c[np.isfinite(c)]) if n else np.nan for c, n in zip(values.T, counts)])
            spread = np.array([np.std(c[np.isfinite(c)]) if n > 1 else 0.0 for c, n in zip(values.T, counts)])
            ax.plot(grid, mean, color=color, label=f"{label.text} ({len(curves)} runs)")
            ax.fill_between(grid, mean - spread, mean + spread, color=color, alpha=0.2, linewidth=0)
            tail = slice(len(grid) // 10, None)
            low, high = mean[tail] - spread[tail], mean[tail] + spread[tail]
            if np.isfinite(low).any():  # a guide none of whose candidates has an accuracy draws nothing
                shown[ax] += [float(np.nanmin(low)), float(np.nanmax(high))]
    for ax in (by_count, by_cost):
        if spec.best_in_space is not None:
            ax.axhline(spec.best_in_space, color="black", linewidth=0.8, linestyle=":", label="best in the space")
            shown[ax].append(spec.best_in_space)
        finite = [v for v in shown[ax] if np.isfinite(v)]
        if len(finite) > 1 and max(finite) > min(finite):
            margin = 0.05 * (max(finite) - min(finite))
            ax.set_ylim(min(finite) - margin, max(finite) + margin)
        ax.set_ylabel(f"best-so-far {spec.target}")
        ax.grid(alpha=0.3)
    by_count.set_xlabel("architectures scored (distinct)")
    by_cost.set_xlabel("cumulative cost (device seconds)")
    by_count.set_title("incumbent chosen by the proxy", fontsize=10)
    by_cost.set_title("the same against what the search spent", fontsize=10)
    by_count.legend(fontsize=7)
    if free:
        by_cost.text(0.5, 0.5, "cost 0 (table lookups):\n" + "\n".join(free), transform=by_cost.transAxes,
                     fontsize=7, ha="center", va="center")
    fig.tight_layout()
    with atomic_binary(path) as handle:
        fig.savefig(handle, format="png", dpi=110)
    return path
