"""Claim 4: LGA after brief training guides search to competitive architectures at a fraction of
the oracle's cost — two-stage search against every other guide over the runs (a bootstrap of the
mean difference, paired by seed), with cost ratios and the oracle's training bill."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ntknas.report.document import Block, Facts, Heading, Image, Paragraph, Table
from ntknas.report.results.citing import Verdict, cite, cite_interval, find_record
from ntknas.report.results.common import UNKNOWN_STUDY, fmt, label_blocks, save_figure
from ntknas.report.results.comparisons import COMPARISONS_FILE, Comparisons, plain
from ntknas.report.results.files import SEARCH_FOLDERS, StudyFiles
from ntknas.report.results.labels import claim4_label

SEARCH_ANCHORS = (
    ("random search (NB201 paper)", "93.70 ± 0.36", "12-epoch validation accuracy as the signal; CIFAR-10 test "
     "(train+valid, 200 epochs) reported; the paper's own budget (time, not candidates)"),
    ("REA (NB201 paper)", "93.92 ± 0.30", "same"),
    ("TE-NAS", "93.9 ± 0.47 at 0.05 GPU-days", "pruning-based, not candidate-budgeted"),
    ("NASWOT (N = 100)", "92.96 ± 0.81", "100 random candidates scored at init"),
    ("KNAS", "93.05", "its own protocol"),
    ("best in NB201", "94.37", "CIFAR-10 test"),
)
ORACLE_EPOCHS = 12
ORACLE_IMAGES = 25_000
"""NAS-Bench-201's oracle column: 12 epochs on the 25,000-image training half of CIFAR-10."""
BILL = "claim4/oracle-bill"
HEADING = ("Claim 4: LGA after brief training guides search to competitive architectures at a fraction of the "
           "oracle's cost")


def search_rows(files: StudyFiles) -> list[tuple[str, dict[str, Any]]]:
    return [(name, record) for name, summary in files.searches.items() for record in summary["searches"]]


def is_oracle(row: dict[str, Any]) -> bool:
    return str(row["proxy"]).startswith("bench:")


def plot_search(path: Path, files: StudyFiles) -> Path | None:
    """Best-so-far reported accuracy against cumulative cost, every search of the study."""
    from ntknas.report.search import read_search_csv

    fig = Figure(figsize=(8, 4.4))
    ax = fig.subplots()
    number = 0
    for name in SEARCH_FOLDERS:
        csv_path = files.root / "search" / name / "search.csv"
        if not csv_path.is_file():
            continue
        rows = read_search_csv(csv_path)
        for strategy, proxy in dict.fromkeys((r.strategy, r.proxy) for r in rows):
            runs: dict[int, list[Any]] = {}
            for row in rows:
                if (row.strategy, row.proxy) == (strategy, proxy):
                    runs.setdefault(row.run, []).append(row)
            finals = [rs[-1] for rs in runs.values()]
            if all(r.best_accuracy is None for r in finals):
                continue  # nothing to draw: no choice of this search has a reported accuracy
            mean_cost = float(np.mean([r.cost for r in finals]))
            mean_acc = float(np.nanmean([np.nan if r.best_accuracy is None else r.best_accuracy for r in finals]))
            colour = f"C{number % 10}"
            for run_rows in runs.values():
                xs = [max(r.cost, 1e-2) for r in run_rows]
                ys = [np.nan if r.best_accuracy is None else r.best_accuracy for r in run_rows]
                ax.step(xs, ys, where="post", color=colour, alpha=0.35, linewidth=0.8)
            ax.plot([max(mean_cost, 1e-2)], [mean_acc], marker="o", color=colour, linestyle="none",
                    label=f"{strategy} / {proxy}" + (" (cost 0: lookups)" if mean_cost <= 0 else ""))
            number += 1
    if number == 0:
        return None
    best = next((s["spec"].get("best_in_space") for s in files.searches.values()), None)
    if best is not None:
        ax.axhline(best, color="black", linestyle=":", linewidth=0.8, label="best in the pool")
    ax.set_xscale("log")
    ax.set_xlabel("cumulative cost per run (device seconds, log; lookups drawn at 0.01)")
    ax.set_ylabel("best-so-far reported accuracy")
    ax.set_title("Search: what the proxy's incumbent reaches against what it cost (dots: mean final)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", framealpha=0.6)
    return save_figure(fig, path)


def oracle_bill(files: StudyFiles, comparisons: Comparisons, two_stage: dict[str, Any]) -> dict[str, Any] | None:
    """What the oracle's lookups stand for: 12 epochs on 25,000 images per candidate, at the
    training speed this study measured (seconds per image-epoch of the trained part's stages, or
    the two-stage search's when the trained part has none)."""
    images = files.images_per_stage()
    seconds = files.training_seconds("trained") or files.training_seconds("search/two-stage")
    spec = next(iter(files.searches.values()))["spec"]
    if not images or not seconds or not spec.get("candidates"):
        return None
    per_image_epoch = float(np.sum(seconds)) / (len(seconds) * images)
    bill = ORACLE_EPOCHS * ORACLE_IMAGES * per_image_epoch * spec["candidates"]
    return comparisons.add({
        "id": BILL, "epochs": ORACLE_EPOCHS, "images": ORACLE_IMAGES, "candidates": spec["candidates"],
        "stages_timed": len(seconds), "images_per_stage": images, "cost_per_image_epoch": plain(per_image_epoch),
        "bill_cost_seconds": plain(bill), "cost_ratio": plain((two_stage.get("cost_mean") or 0.0) / bill),
    })


def _ident(folder: str, row: dict[str, Any]) -> str:
    return f"claim4/{folder}/{row['strategy']}/{row['proxy']}"


def compare_all(files: StudyFiles, comparisons: Comparisons, two_stage: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Two-stage against every other row of every search folder; (folder, comparison) pairs."""
    made = []
    for folder, row in search_rows(files):
        if row is two_stage:
            continue
        cost = row.get("cost_mean")
        ratio = (two_stage.get("cost_mean") or 0.0) / cost if cost else None
        made.append((folder, comparisons.runs(_ident(folder, row), two_stage, row, {"cost_ratio": plain(ratio)})))
    return made


def _named_rows(files: StudyFiles, two_stage: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """The rows the verdict names: the best non-oracle guide, random search with two-stage's first
    proxy (else the best random row), and the oracle (REA's, else the first)."""
    rows = [(f, r) for f, r in search_rows(files) if r is not two_stage]
    guides = [(f, r) for f, r in rows if not is_oracle(r) and r.get("accuracy_mean") is not None]
    first_proxy = str(two_stage["proxy"]).split(" →")[0]
    randoms = [(f, r) for f, r in guides if r["strategy"] == "random"]
    oracles = [(f, r) for f, r in rows if is_oracle(r)]
    named: dict[str, tuple[str, dict[str, Any]]] = {}
    if guides:
        named["the best non-oracle guide"] = max(guides, key=lambda fr: fr[1]["accuracy_mean"])
    if randoms:
        named["random search"] = next(((f, r) for f, r in randoms if r["proxy"] == first_proxy),
                                      max(randoms, key=lambda fr: fr[1]["accuracy_mean"]))
    if oracles:
        named["the oracle"] = next(((f, r) for f, r in oracles if r["strategy"] == "rea"), oracles[0])
    return named


def claim4_verdict(files: StudyFiles, comparisons: Comparisons) -> Verdict:
    verdict = Verdict(4)
    rows = search_rows(files)
    two_stage = next((r for f, r in rows if f == "two-stage" and r["strategy"] == "two-stage"), None)
    if two_stage is None or two_stage.get("accuracy_mean") is None:
        decision = claim4_label([None, None], [None, None], None)
        verdict.label, verdict.reason = decision.label, "the two-stage search has not finished"
        return verdict.add("No verdict yet: the two-stage search reports no accuracy.")
    compared = dict((c["id"], c) for _, c in compare_all(files, comparisons, two_stage))
    bill = oracle_bill(files, comparisons, two_stage)
    file_two, select = "search/two-stage/summary.json", {"strategy": "two-stage", "proxy": two_stage["proxy"]}
    summary = files.searches["two-stage"]["searches"]
    verdict.add("Two-stage search (a proxy at initialization, then LGA after brief training of the top candidates) "
                "reaches ", cite(summary, file_two, select, "accuracy_mean", 2),
                " mean accuracy over ", cite(summary, file_two, select, "runs", 0), " runs at ",
                cite(summary, file_two, select, "cost_mean", 1), " device-seconds per run")
    named = _named_rows(files, two_stage)
    intervals: dict[str, Sequence[float | None]] = {}
    for role, (folder, row) in named.items():
        comparison = compared[_ident(folder, row)]
        intervals[role] = comparison["delta_ci"]
        sel = {"id": comparison["id"]}
        verdict.add(f"; against {role}, {row['strategy']} / {row['proxy']} (", cite([comparison], COMPARISONS_FILE, sel,
                    "second_mean", 2), "), Δ = ", *cite_interval([comparison], COMPARISONS_FILE, sel, "delta"),
                    " (paired by seed)" if comparison["paired"] else "")
    cheaper = None
    if bill is not None:
        sel = {"id": BILL}
        cheaper = bool((two_stage.get("cost_mean") or 0.0) < bill["bill_cost_seconds"])
        verdict.add("; the oracle's lookups stand for about ", cite([bill], COMPARISONS_FILE, sel, "bill_cost_seconds", 0),
                    " s of training per run (", cite([bill], COMPARISONS_FILE, sel, "epochs", 0), " epochs on ",
                    cite([bill], COMPARISONS_FILE, sel, "images", 0), " images per candidate at this run's ",
                    cite([bill], COMPARISONS_FILE, sel, "cost_per_image_epoch", 6),
                    " s per image-epoch), so two-stage costs ", cite([bill], COMPARISONS_FILE, sel, "cost_ratio", 4),
                    " of that bill")
    decision = claim4_label(intervals.get("the best non-oracle guide", [None, None]),
                            intervals.get("random search", [None, None]), cheaper)
    verdict.label, verdict.reason = decision.label, decision.why
    return verdict.add(f": {decision.label}.")


def claim4(files: StudyFiles, figures: Path, comparisons: Comparisons) -> tuple[list[Block], Verdict | None]:
    from ntknas.report.search import SEARCH_HEADERS, search_table_rows

    blocks: list[Block] = [Heading(HEADING, 2, anchor="claim4")]
    if not files.searches:
        return blocks + [Paragraph("Not measured yet: no search of the study has a summary.json (rerun the study).")], None
    verdict = claim4_verdict(files, comparisons)
    rows = tuple((name, *row) for name, summary in files.searches.items()
                 for row in search_table_rows(summary["searches"]))
    spec = next(iter(files.searches.values()))["spec"]
    facts = [
        ("reported accuracy (never used for guidance)", f"{spec['target']} from {Path(str(spec['benchmark'])).name}"),
        ("budget", f"{spec['candidates']} candidates per run, {spec['runs']} runs, seeds {spec['seed']}.."
                   f"{spec['seed'] + spec['runs'] - 1}, the same for every search"),
        ("best in the pool", "n/a" if spec["best_in_space"] is None
         else f"{spec['best_in_space']:.2f} ({spec['best_in_space_arch']})"),
    ]
    versus = tuple(
        (folder, c["second"], "/".join(map(str, c["runs"])), "yes" if c["paired"] else "no", fmt(c["second_mean"], ".2f"),
         f"{fmt(c['delta'], '+.2f')} [{fmt(c['delta_ci'][0], '+.2f')}, {fmt(c['delta_ci'][1], '+.2f')}]",
         "lookups (0 s)" if c["cost_ratio"] is None else f"{c['cost_ratio']:.3g}×")
        for folder, c in _comparisons_by_folder(files, comparisons))
    blocks += [
        *label_blocks(verdict),
        Facts(tuple((label, value, False) for label, value in facts)),
        Table(("folder", "other guide", "runs (two-stage/other)", "paired by seed", "other's mean accuracy",
               "Δ two-stage − other [95% CI]", "two-stage cost ÷ other's"), versus,
              caption="Two-stage against every other guide (comparisons.json): bootstrap of the mean difference of the "
                      "final reported accuracy over runs"),
        Table(("folder", *SEARCH_HEADERS), rows, caption="Every search of the study (search/*/summary.json); cost is "
              "the device seconds of proxy evaluation and training per run"),
    ]
    bill = find_record(comparisons.records, {"id": BILL})
    blocks.append(Paragraph(
        "The oracle's lookups cost nothing on the bill, but each stands for NAS-Bench-201's training: "
        f"{ORACLE_EPOCHS} epochs on {ORACLE_IMAGES:,} images per candidate. "
        + (f"At this run's measured speed ({bill['cost_per_image_epoch']:.3g} s per image-epoch, from "
           f"{bill['stages_timed']} timed training stages of {bill['images_per_stage']:,} images) that is about "
           f"{bill['bill_cost_seconds']:,.0f} s per run of {bill['candidates']} candidates."
           if bill else "The bill is not estimated: this study's folders do not give both a timed training stage and "
           "the number of images per stage (the scale's table).")))
    plot = plot_search(figures / "claim4_search_cost.png", files)
    if plot is not None:
        blocks.append(Image(plot, "Best-so-far accuracy against cost, every search"))
    blocks += [
        Paragraph("Published search results on NB201 CIFAR-10 (mean ± std); they report CIFAR-10 test accuracy of "
                  "networks trained on train+valid for 200 epochs, under their own budgets. " + UNKNOWN_STUDY),
        Table(("method", "published", "protocol"), SEARCH_ANCHORS, caption="Published anchors (docs/protocol.md)"),
    ]
    return blocks, verdict


def _comparisons_by_folder(files: StudyFiles, comparisons: Comparisons) -> list[tuple[str, dict[str, Any]]]:
    made = []
    for folder, row in search_rows(files):
        record = find_record(comparisons.records, {"id": _ident(folder, row)})
        if record is not None:
            made.append((folder, record))
    return made
