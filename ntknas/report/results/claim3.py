"""Claim 3: good architectures move far from their initial kernel — tracked cells per accuracy
band, a movement quantity that is not at its ceiling, and the bands' train accuracies."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ntknas.analysis.statistics import rank_correlation
from ntknas.files import atomic_write_text
from ntknas.report.document import Block, Heading, Image, Paragraph, Table
from ntknas.report.results.citing import Verdict, cite, cite_interval
from ntknas.report.results.common import UNKNOWN_STUDY, fmt, label_blocks, save_figure
from ntknas.report.results.comparisons import plain
from ntknas.report.results.files import StudyFiles
from ntknas.report.results.labels import MIN_CELLS_PER_BAND, claim3_label

TRACK_SUMMARY = "band_summary.json"
FILE = "track/" + TRACK_SUMMARY
BAND_COLOURS = {"low": "tab:red", "mid": "tab:orange", "high": "tab:green"}
HEADING = "Claim 3: good architectures move far from their initial kernel"


@dataclass(frozen=True)
class Movement:
    """A tracked quantity read as how far the kernel moved, and when it is at its ceiling."""

    quantity: str
    title: str
    far: Callable[[float], float]
    ceiling: float | None
    """Every cell's movement at or above this: the quantity is saturated (None: it has no ceiling)."""


MOVEMENTS = (
    Movement("rel_diff", "relative difference ‖Θₜ − Θ₀‖_F / ‖Θ₀‖_F", lambda v: v, 0.95),
    Movement("norm_ratio", "|log(‖Θₜ‖_F / ‖Θ₀‖_F)|", lambda v: abs(math.log(v)) if v > 0 else math.nan, None),
    Movement("kernel_cos", "1 − cosine of Θₜ with Θ₀", lambda v: 1.0 - v, 0.95),
)
"""In order of preference: the verdict uses the first that was recorded and is not saturated."""


def _final(rows: Sequence[dict[str, float]], quantity: str) -> float:
    value = rows[-1].get(quantity, math.nan) if rows else math.nan
    return float(value) if value is not None and math.isfinite(value) else math.nan


def _quantity_records(finals: list[dict[str, float]]) -> list[dict[str, Any]]:
    records = []
    for movement in MOVEMENTS:
        far = np.array([movement.far(f[movement.quantity]) if math.isfinite(f[movement.quantity]) else math.nan
                        for f in finals])
        recorded = bool(np.isfinite(far).any())
        saturated = recorded and movement.ceiling is not None and bool(np.all(far[np.isfinite(far)] >= movement.ceiling))
        records.append({"quantity": movement.quantity, "movement": movement.title, "recorded": recorded,
                        "ceiling": movement.ceiling, "saturated": saturated,
                        "min": plain(float(np.nanmin(far))) if recorded else None,
                        "max": plain(float(np.nanmax(far))) if recorded else None})
    return records


def _separated(bands: Sequence[dict[str, Any]]) -> bool | None:
    """Whether the bands' final train accuracies separate: each band's lowest above the highest of
    the band below it (bands ordered by benchmark accuracy)."""
    ordered = sorted((b for b in bands if b.get("train_acc_min") is not None), key=lambda b: b["accuracy_mean"])
    if len(ordered) < 2:
        return None
    return all(upper["train_acc_min"] > lower["train_acc_max"] for lower, upper in zip(ordered, ordered[1:]))


def track_summary(files: StudyFiles, bands: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Per band and over all tracked cells, at each cell's last tracked epoch: the movement
    quantities, which is saturated, the train accuracies, and Kendall τ of the chosen movement with
    accuracy (written to track/band_summary.json, the file the verdict cites)."""
    series = files.track_series()
    tracked = [b for b in bands if series.get(b["arch"])]
    if not tracked:
        return None
    names = [m.quantity for m in MOVEMENTS] + ["kernel_corr", "train_acc", "epoch"]
    finals = [{q: _final(series[b["arch"]], q) for q in names} for b in tracked]
    quantities = _quantity_records(finals)
    chosen = next((m for m, q in zip(MOVEMENTS, quantities) if q["recorded"] and not q["saturated"]), None)
    moved = [chosen.far(f[chosen.quantity]) if chosen and math.isfinite(f[chosen.quantity]) else math.nan
             for f in finals]
    records: list[dict[str, Any]] = []
    for band in dict.fromkeys(b["band"] for b in tracked):
        members = [i for i, b in enumerate(tracked) if b["band"] == band]

        def mean(values: Sequence[float]) -> float | None:
            finite = [v for v in values if math.isfinite(v)]
            return plain(float(np.mean(finite))) if finite else None

        train = [finals[i]["train_acc"] for i in members if math.isfinite(finals[i]["train_acc"])]
        records.append({
            "band": band, "n": len(members), "epochs": int(max(finals[i]["epoch"] for i in members)),
            "accuracy_mean": plain(float(np.mean([tracked[i]["accuracy"] for i in members]))),
            "movement_mean": mean([moved[i] for i in members]),
            **{f"{q}_mean": mean([finals[i][q] for i in members]) for q in ("rel_diff", "norm_ratio", "kernel_corr")},
            "train_acc_mean": mean(train), "train_acc_min": plain(min(train)) if train else None,
            "train_acc_max": plain(max(train)) if train else None,
        })
    result = rank_correlation(np.array(moved), np.array([b["accuracy"] for b in tracked], dtype=float))
    summary = {
        "bands": records, "quantities": quantities, "movement": None if chosen is None else chosen.quantity,
        "train_acc_separated": _separated(records),
        "all": {"metric": "final movement", "quantity": None if chosen is None else chosen.quantity,
                "n": result.n, "kendall": plain(result.kendall), "kendall_ci": [plain(v) for v in result.kendall_ci]},
    }
    text, path = json.dumps(summary, indent=2) + "\n", files.root / "track" / TRACK_SUMMARY
    if not path.is_file() or path.read_text() != text:  # a report of a finished study leaves its folder as it was
        atomic_write_text(path, text)
    return summary


def plot_kernel_movement(path: Path, series: dict[str, list[dict[str, float]]], bands: Sequence[dict[str, Any]]) -> Path:
    """Relative difference, norm ratio and correlation with Θ₀ against epochs, coloured by band."""
    fig = Figure(figsize=(14, 4.0))
    axes = fig.subplots(1, 3)
    panels = (("rel_diff", "‖Θₜ − Θ₀‖_F / ‖Θ₀‖_F"), ("norm_ratio", "‖Θₜ‖_F / ‖Θ₀‖_F (log)"),
              ("kernel_corr", "correlation of Θₜ with Θ₀"))
    seen: set[str] = set()
    for band in bands:
        rows = series.get(band["arch"])
        if not rows:
            continue
        colour = BAND_COLOURS.get(band["band"], "tab:blue")
        label = None if band["band"] in seen else f"{band['band']} band"
        seen.add(band["band"])
        epochs = [r["epoch"] for r in rows]
        for ax, (quantity, _) in zip(axes, panels):
            ax.plot(epochs, [r.get(quantity, math.nan) for r in rows], marker="o", color=colour, label=label)
    for ax, (quantity, title) in zip(axes, panels):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if not any(np.isfinite(np.asarray(line.get_ydata(), dtype=float)).any() for line in ax.lines):
            ax.text(0.5, 0.5, "not recorded in this track run", ha="center", va="center", transform=ax.transAxes)
            continue
        if quantity == "norm_ratio":
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def claim3_verdict(summary: dict[str, Any]) -> Verdict:
    verdict = Verdict(3)
    bands, whole = summary["bands"], summary["all"]
    chosen = summary.get("movement")
    saturated = [q for q in summary.get("quantities", []) if q["saturated"]]

    def band_cite(band: str, name: str) -> Any:
        return cite(bands, FILE + "#bands", {"band": band}, name, 2 if "train_acc" in name else 3)

    verdict.add("After ", cite(bands, FILE + "#bands", {"band": bands[0]["band"]}, "epochs", 0), " tracked epoch(s)")
    if saturated:
        verdict.add(", " + " and ".join(q["quantity"] for q in saturated) + " sit at their ceiling for every cell "
                    "(no evidence either way)")
    movement = next((q for q in summary.get("quantities", []) if q["quantity"] == chosen), None)
    if movement is not None:
        verdict.add(f"; the movement {movement['movement']} averages ")
        for number, band in enumerate(bands):
            verdict.add(", " if number else "", band_cite(band["band"], "movement_mean"), f" in the {band['band']} band")
        select = {"metric": "final movement"}
        if cite([whole], FILE + "#all", select, "kendall", 2, True) is not None:
            verdict.add(" and its Kendall τ with accuracy is ", *cite_interval([whole], FILE + "#all", select, "kendall"),
                        " over ", cite([whole], FILE + "#all", select, "n", 0), " cells")
    else:
        verdict.add("; no tracked quantity is both recorded and below its ceiling")
    trains = [(b["band"], band_cite(b["band"], "train_acc_mean")) for b in bands]
    if all(c is not None for _, c in trains):
        verdict.add("; train accuracy (%) averages ")
        for number, (band, value) in enumerate(trains):
            verdict.add(", " if number else "", value, f" in the {band} band")
        separated = summary.get("train_acc_separated")
        verdict.add({True: ", and the bands' train accuracies separated",
                     False: ", and the bands' train accuracies overlap (not trained long enough to separate)",
                     None: ""}[separated])
    decision = claim3_label([b["n"] for b in bands], chosen, whole.get("kendall_ci") or [None, None])
    verdict.label, verdict.reason = decision.label, decision.why
    return verdict.add(f": {decision.label}.")


def claim3(files: StudyFiles, figures: Path) -> tuple[list[Block], Verdict | None]:
    blocks: list[Block] = [Heading(HEADING, 2, anchor="claim3")]
    bands = files.study.get("track_bands") or []
    summary = track_summary(files, bands) if bands else None
    if summary is None:
        return blocks + [Paragraph("Not measured yet: the track part holds no tracked epoch (rerun the study).")], None
    verdict = claim3_verdict(summary)
    series = files.track_series()
    rows = []
    for band in bands:
        last = (series.get(band["arch"]) or [{}])[-1]
        rows.append((band["band"], str(band["index"]), f"{band['accuracy']:.2f}", str(int(last.get("epoch", 0))),
                     fmt(last.get("rel_diff"), ".4f"), fmt(last.get("norm_ratio"), ".4g"),
                     fmt(last.get("rel_diff_ref"), ".4g"), fmt(last.get("kernel_corr"), ".4f"),
                     fmt(last.get("train_acc"), ".2f")))
    ceilings = "; ".join(
        f"{q['quantity']} ({q['movement']}): " + ("not recorded in this track run" if not q["recorded"] else
                                                   f"{fmt(q['min'], '.3f')} to {fmt(q['max'], '.3f')} over the cells"
                                                   + (f", at its ceiling (every cell ≥ {q['ceiling']})"
                                                      if q["saturated"] else ""))
        for q in summary["quantities"])
    band_rows = tuple((b["band"], str(b["n"]), fmt(b["accuracy_mean"], ".2f"), fmt(b["train_acc_mean"], ".2f"),
                       f"{fmt(b['train_acc_min'], '.2f')}–{fmt(b['train_acc_max'], '.2f')}",
                       fmt(b["movement_mean"], ".3f")) for b in summary["bands"])
    blocks += [
        *label_blocks(verdict),
        Paragraph(f"Movement quantities at the last tracked epoch: {ceilings}. A quantity at its ceiling for every "
                  "cell cannot tell bands apart (the kernel's norm collapses in early training, so the relative "
                  "difference sits at about 1 whatever the cell); the verdict uses the first one that is not."),
        Table(("band", "cells", "benchmark accuracy (mean)", "train acc % (mean)", "train acc % (range)",
               "movement (mean)"), band_rows, caption=f"{FILE}: per band, at the last tracked epoch "
              f"(a verdict needs at least {MIN_CELLS_PER_BAND} cells per band)"),
        Table(("band", "NB201 index", "accuracy", "epoch", "rel_diff", "norm ratio", "rel_diff (reference form)",
               "kernel corr", "train acc (%)"), tuple(rows), caption="Final tracked epoch per architecture (track/track.csv)"),
        Image(plot_kernel_movement(figures / "claim3_kernel_difference.png", series, bands),
              "Relative difference, norm ratio and correlation with Θ₀ against epochs, coloured by accuracy band"),
        Paragraph("With few architectures per band the τ above has a wide interval; it describes these cells, not "
                  "the space. " + UNKNOWN_STUDY),
    ]
    return blocks, verdict
