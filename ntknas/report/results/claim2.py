"""Claim 2: after brief training LGA's correlation rises, while metrics at initialization and
zero-cost proxies do not — the paired change of τ between stages of one metric over the same
cells, and LGA after training against the best proxy at initialization."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ntknas.report.document import Block, Heading, Image, Paragraph, Table
from ntknas.report.plots import legend_or_note
from ntknas.report.results.citing import Verdict, cite, cite_interval, find_record
from ntknas.report.results.claim1 import best_pair
from ntknas.report.results.common import fmt, label_blocks, missing_note, missing_text, named, save_figure, with_ci
from ntknas.report.results.comparisons import COMPARISONS_FILE, Comparisons, Measured
from ntknas.report.results.files import StudyFiles
from ntknas.report.results.labels import claim2_label, side

TRAINED_ANCHORS = (
    ("jacob_cov", "ρ 0.69 at init → −0.02 after one epoch", "ICLR 2022 blog track, NATS-Bench TSS CIFAR-10"),
    ("grasp", "ρ 0.63 at init → −0.41 after one epoch", "same source"),
    ("lga", "unknown", "the study's claim; its numbers are not available to us"),
)
HEADING = ("Claim 2: after brief training LGA's correlation rises, while metrics at initialization and zero-cost "
           "proxies do not")
PART = "trained"
FILE = "trained/summary.json"


def plot_tau_vs_epochs(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    fig = Figure(figsize=(6.6, 4.2))
    ax = fig.subplots()
    metrics = list(dict.fromkeys(r["metric"] for r in records))
    for number, metric in enumerate(metrics):
        for mode, style in (("train", "-"), ("eval", "--")):
            points = sorted((r["train_epochs"], r["kendall"], r["kendall_ci"]) for r in records
                            if r["metric"] == metric and r["bn"] == mode and r["kendall"] is not None)
            if not points:
                continue
            xs = np.array([p[0] for p in points], dtype=float) + (0.03 * number)
            ys = np.array([p[1] for p in points])
            low = np.array([p[1] - (p[2][0] if p[2][0] is not None else p[1]) for p in points])
            high = np.array([(p[2][1] if p[2][1] is not None else p[1]) - p[1] for p in points])
            ax.errorbar(xs, ys, yerr=[low, high], linestyle=style, marker="o", capsize=2, color=f"C{number % 10}",
                        linewidth=2.2 if metric == "lga" else 1.0, label=f"{metric} ({mode} BN)")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("training stages before measuring")
    ax.set_ylabel("Kendall τ with accuracy (signed)")
    ax.set_title("τ against training (bars: 95% CI)", fontsize=10)
    ax.grid(alpha=0.3)
    legend_or_note(ax, fontsize=7, ncol=2)  # no τ at all below 3 trained cells (a scale file's trained_archs)
    return save_figure(fig, path)


def stage_ident(metric: str, bn: str, stage: int) -> str:
    return f"claim2/{metric}/{bn}/{stage}-0"


def stage_changes(records: Sequence[dict[str, Any]], comparisons: Comparisons) -> list[dict[str, Any]]:
    """Δτ between each trained stage and stage 0 of every metric and BN mode (paired over cells)."""
    made = []
    for record in records:
        stage = record.get("train_epochs") or 0
        start = find_record(records, {"metric": record["metric"], "bn": record["bn"], "train_epochs": 0})
        if stage == 0 or start is None:
            continue
        compared = comparisons.taus(stage_ident(record["metric"], record["bn"], stage), Measured(PART, record),
                                    Measured(PART, start))
        if compared is not None:
            made.append(compared)
    return made


def claim2_verdict(files: StudyFiles, comparisons: Comparisons) -> Verdict:
    records = files.trained or []
    verdict = Verdict(2)
    stages = sorted({r["train_epochs"] for r in records})
    trained = [e for e in stages if e > 0]
    lga = {e: find_record(records, {"metric": "lga", "bn": "train", "train_epochs": e}) for e in stages}
    changes = {e: find_record(comparisons.records, {"id": stage_ident("lga", "train", e)}) for e in trained}
    first = trained[0] if trained else None
    if first is None or lga.get(0) is None or not changes.get(first):
        decision = claim2_label([None, None])
        verdict.label, verdict.reason = decision.label, "LGA has no paired change between stages yet"
        return verdict.add("No verdict yet: LGA (train BN) has no correlation before and after training on the "
                           "same cells (see the table for why).")

    def at(stage: int) -> list[Any]:
        return cite_interval(records, FILE, {"metric": "lga", "bn": "train", "train_epochs": stage}, "kendall")

    def stage_cite(stage: int) -> Any:
        return cite(records, FILE, {"metric": "lga", "bn": "train", "train_epochs": stage}, "train_epochs", 0)

    verdict.add("LGA's Kendall τ (train BN) goes from ", *at(0), " before training to ", *at(first), " after ",
                stage_cite(first), " stage(s)")
    for stage in trained:
        change = changes.get(stage)
        if change is None:
            continue
        select = {"id": change["id"]}
        delta = cite_interval([change], COMPARISONS_FILE, select, "delta")
        if stage == first:
            verdict.add("; paired over the same ", cite([change], COMPARISONS_FILE, select, "n", 0),
                        " cells, the change after ", stage_cite(stage), " stage(s) is Δτ ", *delta)
        else:
            verdict.add(" and after ", stage_cite(stage), " stage(s) ", *delta)
    decision = claim2_label((changes[first] or {}).get("delta_ci") or [None, None])
    verdict.add(f": {decision.label}")
    worth = _worth_it(files, comparisons, first)
    if worth is not None:
        compared, proxy = worth
        select = {"id": compared["id"]}
        answer = {1: "yes, beyond the interval", -1: "no, the proxy ranks better beyond the interval",
                  0: "this scale cannot tell"}[side(compared["delta_ci"])]
        verdict.add(". Is training worth it? Against the best zero-cost proxy at initialization, ",
                    f"{named(proxy)}, LGA after training has Δτ ",
                    *cite_interval([compared], COMPARISONS_FILE, select, "delta"), " over ",
                    cite([compared], COMPARISONS_FILE, select, "n", 0), f" shared cells: {answer}")
    verdict.label, verdict.reason = decision.label, decision.why
    return verdict.add(".")


def _worth_it(files: StudyFiles, comparisons: Comparisons, stage: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """LGA (train BN) after the first trained stage against claim 1's best zero-cost proxy of the
    init part, over the cells both measured."""
    lga = find_record(files.trained or [], {"metric": "lga", "bn": "train", "train_epochs": stage})
    pair = best_pair(files.init or [])
    if lga is None or pair is None:
        return None
    compared = comparisons.taus("claim2/lga-trained-vs-best-proxy-at-init", Measured(PART, lga),
                                Measured("init", pair[1]))
    return None if compared is None else (compared, pair[1])


def claim2(files: StudyFiles, figures: Path, comparisons: Comparisons) -> tuple[list[Block], Verdict | None]:
    blocks: list[Block] = [Heading(HEADING, 2, anchor="claim2")]
    records = files.trained
    if not records:
        return blocks + [Paragraph("Not measured yet: the trained part has no summary.json (rerun the study).")], None
    changes = stage_changes(records, comparisons)
    verdict = claim2_verdict(files, comparisons)
    rows = tuple((r["metric"], r["bn"], str(r["train_epochs"]), str(r["n"]), missing_text(r), with_ci(r),
                  with_ci(r, "spearman"))
                 for r in sorted(records, key=lambda r: (r["metric"] != "lga", r["metric"], r["bn"], r["train_epochs"])))
    change_rows = tuple((c["first"], c["second"], str(c["n"]), f"{fmt(c['delta'])} [{fmt(c['delta_ci'][0])}, "
                         f"{fmt(c['delta_ci'][1])}]") for c in changes)
    blocks += [
        *label_blocks(verdict),
        Paragraph("Every stage, stage 0 included, is measured on the first test images (docs/protocol.md, experiment 2), so the stages "
                  "compare with each other; stage 0 here is not the init part's augmented training batch."),
        Table(("later stage", "stage 0", "n", "Δτ [95% CI, paired]"), change_rows,
              caption="Change of τ with training, each metric against itself over the same cells "
                      "(comparisons.json; τ in the metric's own ranking direction)"),
        Table(("metric", "BN", "stage", "n", "missing", "Kendall τ [95% CI]", "Spearman ρ [95% CI]"), rows,
              caption="trained/summary.json"),
        *missing_note(records, "trained/"),
        Image(plot_tau_vs_epochs(figures / "claim2_tau_vs_epochs.png", records), "Kendall τ against training stages"),
        Table(("metric", "published", "protocol"), TRAINED_ANCHORS, caption="Published neighbours (docs/protocol.md, published numbers)"),
    ]
    return blocks, verdict
