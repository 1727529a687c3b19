"""A track run's outputs: track.csv and one PNG per tracked quantity (curves per architecture)."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib import cm, colors
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ntknas.files import atomic_binary, atomic_text
from ntknas.store import ResultStore

KERNEL_QUANTITIES = ("rel_diff_ref", "rel_diff", "norm_ratio", "kernel_corr", "kernel_cos")
"""The kernel distances of :func:`ntknas.kernel.distances.kernel_distances`, by name, and the norm
ratio ‖Θ_t‖_F / ‖Θ_0‖_F the track run records beside them (empty in track runs that predate it)."""
TRAINING_QUANTITIES = ("train_loss", "train_acc", "param_norm")
QUANTITIES = KERNEL_QUANTITIES + TRAINING_QUANTITIES
"""What every measured epoch of a track run records, in track.csv column order."""
TIMING_QUANTITIES = ("train_seconds", "kernel_seconds")
"""Stored beside the quantities: wall time of the training since the last measurement, and of Θ_t."""
ARCHS_META = "track_archs"
"""Store meta key: the run's architectures, in the order they were added, with status."""

TRACK_CSV = "track.csv"
CSV_COLUMNS = ("arch", "index", "accuracy", "epoch", *QUANTITIES)

LABELS = {
    "rel_diff_ref": "‖ |Θ₀ − Θₜ| ⊘ (|Θ₀| + 1e-4) ‖_F  (reference form)",
    "rel_diff": "‖Θₜ − Θ₀‖_F / ‖Θ₀‖_F",
    "norm_ratio": "‖Θₜ‖_F / ‖Θ₀‖_F",
    "kernel_corr": "Pearson correlation of Θ₀ and Θₜ entries",
    "kernel_cos": "cosine similarity of Θ₀ and Θₜ",
    "train_loss": "train loss (epoch just trained)",
    "train_acc": "train accuracy (%, epoch just trained)",
    "param_norm": "parameter norm ‖θ‖₂",
}
TITLES = {
    "rel_diff_ref": "Relative kernel difference (reference form)",
    "rel_diff": "Relative kernel difference",
    "norm_ratio": "Kernel norm ratio to initialization",
    "kernel_corr": "Kernel correlation with initialization",
    "kernel_cos": "Kernel cosine similarity with initialization",
    "train_loss": "Training loss",
    "train_acc": "Training accuracy",
    "param_norm": "Parameter norm",
}


def plot_file(quantity: str) -> str:
    return f"track_{quantity}.png"


@dataclass
class TrackSeries:
    """Everything stored about one tracked architecture, epochs ascending (NaN = no value)."""

    arch: str
    index: int | None
    accuracy: float | None
    target: str | None
    status: str
    reason: str | None
    epochs: list[int] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Wall time spent on this architecture: training plus kernels, over every resume."""
        return float(sum(v for q in TIMING_QUANTITIES for v in self.values.get(q, []) if math.isfinite(v)))

    def final(self, quantity: str) -> float:
        series = self.values.get(quantity, [])
        return series[-1] if series else math.nan


def load_tracking(store: ResultStore) -> list[TrackSeries]:
    """The run's architectures (in the order they were added) with their stored curves."""
    grouped: dict[str, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for arch, epoch, quantity, value in store.tracking_rows():
        grouped[arch][int(epoch)][quantity] = math.nan if value is None else float(value)
    records = list(store.get_meta(ARCHS_META) or [])
    known = {record["arch"] for record in records}
    # Rows of an architecture missing from the list (a store edited by hand) are still shown.
    records += [{"arch": arch, "index": None, "status": "unknown"} for arch in grouped if arch not in known]
    series = []
    for record in records:
        by_epoch = grouped.get(record["arch"], {})
        epochs = sorted(by_epoch)
        names = list(QUANTITIES) + list(TIMING_QUANTITIES)
        series.append(
            TrackSeries(
                arch=record["arch"], index=record.get("index"), accuracy=record.get("accuracy"),
                target=record.get("target"), status=record.get("status", "unknown"),
                reason=record.get("reason"), epochs=epochs,
                values={q: [by_epoch[e].get(q, math.nan) for e in epochs] for q in names},
            )
        )
    return series


def write_tracking_csv(path: Path, series: Sequence[TrackSeries]) -> Path:
    """One row per (architecture, measured epoch); empty cells for missing values (exact reprs)."""
    with atomic_text(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for s in series:
            for position, epoch in enumerate(s.epochs):
                writer.writerow([
                    s.arch, "" if s.index is None else s.index, _cell(s.accuracy), epoch,
                    *(_cell(s.values[q][position]) for q in QUANTITIES),
                ])
    return path


def _cell(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else repr(float(value))


def _wide_positive(values: np.ndarray) -> bool:
    positive = values[np.isfinite(values) & (values > 0)]
    return positive.size > 1 and positive.max() / positive.min() > 1e3


def plot_tracking_quantity(path: Path, quantity: str, series: Sequence[TrackSeries]) -> Path:
    """One curve per architecture; coloured by accuracy with a colorbar when every one has one."""
    fig = Figure(figsize=(6.8, 4.4))
    ax = fig.subplots()
    accuracies = [s.accuracy for s in series if s.accuracy is not None and math.isfinite(s.accuracy)]
    by_accuracy = bool(series) and len(accuracies) == len(series)
    mapper = None
    if by_accuracy:
        low, high = min(accuracies), max(accuracies)
        if low == high:
            low, high = low - 0.5, high + 0.5
        mapper = cm.ScalarMappable(norm=colors.Normalize(low, high), cmap="viridis")
    everything = []
    for number, s in enumerate(series):
        ys = np.array(s.values.get(quantity, []), dtype=float)
        keep = np.isfinite(ys)
        if not keep.any():
            continue
        xs = np.array(s.epochs, dtype=float)[keep]
        everything.append(ys[keep])
        name = f"#{s.index}" if s.index is not None else s.arch
        if s.status == "diverged":
            name += " (diverged)"
        colour = mapper.to_rgba(np.array(s.accuracy)) if mapper is not None else f"C{number % 10}"
        ax.plot(xs, ys[keep], marker="o" if len(xs) < 30 else None, markersize=3,
                linewidth=1.4, color=colour, label=name)
    if everything and _wide_positive(np.concatenate(everything)):
        ax.set_yscale("log")  # the reference form spans decades; epoch 0 (= 0) drops off
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(LABELS.get(quantity, quantity), fontsize=8)
    ax.set_title(TITLES.get(quantity, quantity))
    ax.grid(alpha=0.3)
    if mapper is not None:
        targets = {s.target for s in series}
        label = f"benchmark accuracy ({targets.pop()})" if len(targets) == 1 and None not in targets else "benchmark accuracy"
        fig.colorbar(mapper, ax=ax, label=label)
    elif everything:
        ax.legend(fontsize=7, ncol=2 if len(series) > 8 else 1)
    fig.tight_layout()
    with atomic_binary(path) as handle:
        fig.savefig(handle, format="png", dpi=110)
    return path


def write_tracking_outputs(store: ResultStore) -> list[Path]:
    """track.csv and one PNG per quantity, for every architecture in the run folder."""
    run_dir = store.run_dir
    series = load_tracking(store)
    files = [write_tracking_csv(run_dir / TRACK_CSV, series)]
    if any(s.epochs for s in series):
        for quantity in QUANTITIES:
            files.append(plot_tracking_quantity(run_dir / plot_file(quantity), quantity, series))
    return files


FINAL_HEADERS = (
    "index", "arch", "accuracy", "status", "epoch", *QUANTITIES, "wall s",
)


def final_table(series: Sequence[TrackSeries]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows (strings) of each architecture's last measured epoch."""
    rows = []
    for s in series:
        status = s.status if not s.reason else f"{s.status}: {s.reason}"
        rows.append([
            "" if s.index is None else str(s.index), s.arch, _fmt(s.accuracy, ".2f"), status,
            str(s.epochs[-1]) if s.epochs else "—",
            *(_fmt(s.final(q), _FORMATS[q]) for q in QUANTITIES),
            f"{s.seconds:.1f}",
        ])
    return list(FINAL_HEADERS), rows


_FORMATS = {
    "rel_diff_ref": ".4g", "rel_diff": ".4f", "norm_ratio": ".4g", "kernel_corr": ".4f", "kernel_cos": ".4f",
    "train_loss": ".4f", "train_acc": ".2f", "param_norm": ".3f",
}


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)
