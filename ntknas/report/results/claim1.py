"""Claim 1: at initialization, NTK metrics correlate weakly and unreliably compared with
zero-cost proxies — per search space (NAS-Bench-201's init/, NAS-Bench-101's init-nb101/ when
the study measured it), the best NTK metric against the best zero-cost proxy, paired over cells."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ntknas.report.document import Block, Facts, Heading, Image, Paragraph, Table
from ntknas.report.results.citing import Verdict, cite, cite_interval, find_record
from ntknas.report.results.common import (
    UNKNOWN_STUDY,
    family,
    good,
    label_blocks,
    missing_note,
    missing_text,
    named,
    save_figure,
    with_ci,
)
from ntknas.report.results.comparisons import COMPARISONS_FILE, Comparisons, Measured
from ntknas.report.results.files import SPACE_PARTS, StudyFiles
from ntknas.report.results.labels import claim1_label, claim1_space_label

ZC_ANCHORS = (
    ("synflow", "0.74", "Abdelfattah et al. 2021: Spearman ρ over all 15,625 NB201 cells, CIFAR-10 test accuracy"),
    ("jacob_cov", "0.73", "same paper and protocol"),
    ("snip", "0.60", "same paper and protocol"),
    ("grad_norm", "0.59", "same paper and protocol"),
    ("AZ-NAS (aggregate)", "τ 0.74 / ρ 0.91", "CVPR 2024, NB201 CIFAR-10 (a training-free aggregate)"),
    ("TE-NAS κ_N", "τ −0.42", "TE-NAS paper: batch 32, Kaiming-normal init, 3 repeats, dataset not named"),
)
NB101_ANCHORS = (
    ("synflow", "0.37", "Abdelfattah et al. 2021: |Spearman ρ| over all 423,624 NB101 cells (absolute value), "
     "CIFAR-10 test accuracy of the 108-epoch runs"),
    ("jacob_cov", "0.38", "same paper and protocol"),
)
FIGURES = {"init": "claim1_tau_by_metric.png", "init-nb101": "claim1_tau_by_metric_nb101.png"}
HEADING = "Claim 1: at initialization, NTK metrics correlate weakly and unreliably compared with zero-cost proxies"


def plot_tau_bars(path: Path, records: Sequence[dict[str, Any]], space: str) -> Path:
    """Kendall τ of every metric, one bar per BN mode, with 95 % CIs as error bars."""
    metrics = list(dict.fromkeys(r["metric"] for r in records))
    modes = list(dict.fromkeys(r["bn"] for r in records))
    fig = Figure(figsize=(max(6.0, 0.7 * len(metrics) * len(modes)), 4.0))
    ax = fig.subplots()
    width = 0.8 / max(len(modes), 1)
    for number, mode in enumerate(modes):
        taus, lows, highs = [], [], []
        for metric in metrics:
            record = find_record(records, {"metric": metric, "bn": mode}) or {}
            tau = record.get("kendall")
            low, high = (record.get("kendall_ci") or [None, None])
            taus.append(np.nan if tau is None else tau)
            lows.append(0.0 if tau is None or low is None else tau - low)
            highs.append(0.0 if tau is None or high is None else high - tau)
        xs = np.arange(len(metrics)) + (number - (len(modes) - 1) / 2) * width
        ax.bar(xs, taus, width, yerr=[lows, highs], capsize=2, label=f"{mode} BN")
    families = {r["metric"]: family(r) for r in records}
    ax.set_xticks(np.arange(len(metrics)), [f"{m}\n({families[m]})" for m in metrics], fontsize=7)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("Kendall τ with accuracy (signed)")
    ax.set_title(f"{space} at initialization: τ per metric and BatchNorm mode (bars: 95% CI)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


def best_pair(records: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The best NTK metric and the best zero-cost proxy (every family-"zero-cost" metric, aggregates
    included; size baselines are not proxies), each by τ in its own ranking direction."""
    scored = [r for r in records if r.get("kendall") is not None and r.get("higher_is_better") is not None]
    ntk = [r for r in scored if family(r) == "NTK"]
    proxies = [r for r in scored if family(r) == "zero-cost"]
    if not ntk or not proxies:
        return None
    return max(ntk, key=good), max(proxies, key=good)


def space_verdict(part: str, space: str, records: Sequence[dict[str, Any]], comparisons: Comparisons) -> Verdict:
    """One space's sentence and label: the paired Δτ of its best NTK metric and best proxy."""
    verdict = Verdict(1)
    pair = best_pair(records)
    if pair is None:
        verdict.label, verdict.reason = claim1_space_label([None, None]).label, "too few correlations to compare"
        return verdict.add(f"{space}: no verdict, too few correlations to compare NTK metrics with zero-cost proxies.")
    ntk, proxy = pair
    file = f"{part}/summary.json"

    def tau(record: dict[str, Any]) -> list[Any]:
        return cite_interval(records, file, {"metric": record["metric"], "bn": record["bn"],
                                             "train_epochs": record["train_epochs"]}, "kendall")

    ident = f"claim1/{part}"
    compared = comparisons.taus(ident, Measured(part, ntk), Measured(part, proxy))
    verdict.add(f"{space}: the best NTK metric, {named(ntk)}, has Kendall τ ", *tau(ntk),
                f" and the best zero-cost proxy, {named(proxy)}, ", *tau(proxy))
    if compared is None:
        decision = claim1_space_label([None, None])
        verdict.add("; no paired comparison (scores.csv lacks their values), so ", decision.label, ".")
    else:
        select = {"id": ident}
        decision = claim1_space_label(compared["delta_ci"])
        verdict.add("; paired over the same ", cite([compared], COMPARISONS_FILE, select, "n", 0),
                    " cells, Δτ (NTK − proxy, each in its own ranking direction) is ",
                    *cite_interval([compared], COMPARISONS_FILE, select, "delta"), f": {decision.label}.")
    verdict.label, verdict.reason = decision.label, decision.why
    return verdict


def _space_blocks(part: str, space: str, records: Sequence[dict[str, Any]], verdict: Verdict,
                  figures: Path) -> list[Block]:
    rows = tuple(
        (r["metric"], family(r), r["bn"], str(r["n"]), missing_text(r), with_ci(r), with_ci(r, "spearman"),
         {True: "higher", False: "lower", None: "—"}[r.get("higher_is_better")])
        for r in records
    )
    anchors = ZC_ANCHORS if part == "init" else NB101_ANCHORS
    caption = ("Published anchors (docs/protocol.md), NB201 CIFAR-10: all 15,625 cells and the full training schedule" if part == "init"
               else "Published anchors (docs/protocol.md), NB101: all 423,624 cells (published as absolute values)")
    return [
        Heading(f"{space} ({part}/)", 3, anchor=f"claim1-{part}"),
        Facts(((f"label for {space}", f"{verdict.label} ({verdict.reason})", False),)),
        Table(("metric", "family", "BN", "n", "missing", "Kendall τ [95% CI]", "Spearman ρ [95% CI]", "ranks by"), rows,
              caption=f"{part}/summary.json — signed rank correlation with the target (bootstrap 95% CIs)"),
        *missing_note(records, f"{part}/"),
        Image(plot_tau_bars(figures / FIGURES.get(part, f"claim1_tau_{part}.png"), records, space),
              f"{space}: Kendall τ per metric and BN mode"),
        Paragraph("Published neighbours (ρ is Spearman; our table's ρ column is the comparable one). " + UNKNOWN_STUDY),
        Table(("metric", "published", "protocol (how it differs from this page)"), anchors, caption=caption),
    ]


def claim1(files: StudyFiles, figures: Path, comparisons: Comparisons) -> tuple[list[Block], Verdict | None]:
    blocks: list[Block] = [Heading(HEADING, 2, anchor="claim1")]
    measured = [(part, space, files.spaces[part]) for part, space in SPACE_PARTS if files.spaces.get(part)]
    if not measured:
        return blocks + [Paragraph("Not measured yet: the init part has no summary.json (rerun the study).")], None
    verdict = Verdict(1)
    sections: list[Block] = []
    for number, (part, space, records) in enumerate(measured):
        one = space_verdict(part, space, records, comparisons)
        verdict.add(" " if number else "", *one.parts)
        verdict.spaces.append({"space": space, "part": part, "label": one.label, "why": one.reason, "text": one.text})
        sections += _space_blocks(part, space, records, one, figures)
    decision = claim1_label([s["label"] for s in verdict.spaces])
    verdict.label, verdict.reason = decision.label, decision.why
    return blocks + label_blocks(verdict) + sections, verdict
