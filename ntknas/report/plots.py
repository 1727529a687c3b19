"""PNG plots of correlate runs (matplotlib's Figure API: no global backend or pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from ntknas.files import atomic_binary

if TYPE_CHECKING:
    from ntknas.report.correlation import ScoreRow, SummarySpec


TOO_FEW = "too few architectures for a correlation"


def legend_or_note(ax: Any, note: str = TOO_FEW, **legend: Any) -> None:
    """The legend of the axes' labelled artists or, when none has a label (no metric had a τ),
    NOTE across the empty plot: matplotlib warns on the terminal when asked for a legend of nothing."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**legend)
    else:
        ax.text(0.5, 0.5, note, ha="center", transform=ax.transAxes)


def _wide_range(values: np.ndarray) -> bool:
    positive = values[np.isfinite(values)]
    return positive.size > 1 and bool(np.all(positive > 0)) and positive.max() / positive.min() > 1e3


def plot_metric_scatter(
    path: Path, metric: str, rows: Sequence[ScoreRow], records: Sequence[dict[str, Any]], config: SummarySpec
) -> Path:
    """Accuracy vs metric, one panel per (BN mode, training stage), τ and ρ in each title."""
    fig = metric_scatter_figure(metric, rows, records, config)
    with atomic_binary(path) as handle:
        fig.savefig(handle, format="png", dpi=110)
    return path


def metric_scatter_figure(
    metric: str, rows: Sequence[ScoreRow], records: Sequence[dict[str, Any]], config: SummarySpec
) -> Figure:
    panels = [(bn, e) for e in config.train_epochs for bn in config.bn_modes]
    fig = Figure(figsize=(4.2 * len(panels), 3.8))
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)  # one accuracy scale: panels compare at a glance
    for ax, (bn, epochs) in zip(axes[0], panels):
        subset = [r for r in rows if r.bn == bn and r.train_epochs == epochs]
        x = np.array([np.nan if r.values.get(metric) is None else r.values[metric] for r in subset], dtype=float)
        y = np.array([np.nan if r.accuracy is None else r.accuracy for r in subset], dtype=float)
        keep = np.isfinite(x) & np.isfinite(y)
        ax.scatter(x[keep], y[keep], s=10, alpha=0.6, edgecolors="none")
        if _wide_range(x[keep]):
            ax.set_xscale("log")
        record = next((r for r in records if r["metric"] == metric and r["bn"] == bn and r["train_epochs"] == epochs), None)
        tau = "n/a" if record is None or record["kendall"] is None else f"{record['kendall']:+.3f}"
        rho = "n/a" if record is None or record["spearman"] is None else f"{record['spearman']:+.3f}"
        ax.set_title(f"{metric} ({bn} BN, {epochs} ep)\nτ = {tau}, ρ = {rho}, n = {int(keep.sum())}", fontsize=9)
        ax.set_xlabel(metric)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    fixed_margins(fig, len(panels))
    return fig


def fixed_margins(fig: Figure, columns: int) -> None:
    """Margins fitted to a row of panels with a two-line title and axis labels, set by hand:
    ``tight_layout`` lays every text out once more to measure it, half a scatter plot's cost,
    and a correlate run writes one per metric."""
    width, height = fig.get_size_inches()
    left, right, top, bottom, gap = 0.62, 0.12, 0.50, 0.48, 0.72  # inches
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height,
                        bottom=bottom / height, wspace=gap * columns / (width - left - right - gap * (columns - 1)))


def plot_tau_vs_epochs(path: Path, records: Sequence[dict[str, Any]], config: SummarySpec) -> Path:
    """Kendall τ of each metric against training epochs, one line per (metric, BN mode)."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for metric in config.metrics:
        for bn in config.bn_modes:
            points = sorted(
                (r["train_epochs"], r["kendall"]) for r in records
                if r["metric"] == metric and r["bn"] == bn and r["kendall"] is not None
            )
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", linestyle="-" if bn == "train" else "--", label=f"{metric} ({bn})")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("training epochs before measuring")
    ax.set_ylabel("Kendall τ with accuracy (signed)")
    ax.set_title("How much training do the metrics need?")
    ax.grid(alpha=0.3)
    legend_or_note(ax, fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_binary(path) as handle:
        fig.savefig(handle, format="png", dpi=110)
    return path
