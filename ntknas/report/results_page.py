"""The results page of a study folder (``ntknas study``; ``ntknas report STUDY_DIR`` writes the same).

One page, ``results.md`` and ``results.html`` (self-contained: PNGs embedded), with one section
per claim of the paper: the measured numbers with their 95 % confidence intervals (read from each
part's summary.json), the figures, the published numbers we can compare with (docs/protocol.md, "Published numbers"; each with
how its protocol differs), and ONE verdict sentence whose numbers are filled in from the
measurements. Every number of a verdict is *cited*: ``verdicts.json`` lists, in the order they
appear in the sentence, the file, the record and the field each number comes from, so a test (or
a reader) can check each against the part's summary. Nothing here imports experiment code: the
page is built from the study folder's files alone.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ntknas.analysis.statistics import rank_correlation
from ntknas.errors import DataError
from ntknas.files import atomic_binary, atomic_write_text
from ntknas.report.document import (
    Block,
    Facts,
    Heading,
    Image,
    Paragraph,
    Table,
    render_html,
    render_markdown,
    report_folder,
)

STUDY_FILE = "study.json"
RESULTS_MD = "results.md"
RESULTS_HTML = "results.html"
VERDICTS_JSON = "verdicts.json"
FIGURES = "figures"
TRACK_SUMMARY = "band_summary.json"
SEARCH_FOLDERS = ("baselines", "lga-init", "two-stage")
NTK_METRICS = ("knas", "tenas", "fnorm", "trace", "lga")
SIZE_METRICS = ("params", "flops")
BAND_COLOURS = {"low": "tab:red", "mid": "tab:orange", "high": "tab:green"}
UNKNOWN_STUDY = "The study's own tables are not available to us: no published value of the study is quoted here."


def is_study_folder(path: str | Path) -> bool:
    return (Path(path) / STUDY_FILE).is_file()


# ----------------------------------------------------------------------------------------------
# Cited numbers
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cited:
    """A number of a verdict: its value, how it is printed, and where it comes from."""

    value: float
    digits: int
    file: str
    select: dict[str, Any]
    field: str
    signed: bool = False

    @property
    def text(self) -> str:
        if self.digits == 0:
            return str(int(round(self.value)))
        return f"{self.value:+.{self.digits}f}" if self.signed else f"{self.value:.{self.digits}f}"

    def record(self) -> dict[str, Any]:
        return {"value": self.value, "text": self.text, "digits": self.digits, "file": self.file,
                "select": self.select, "field": self.field}


@dataclass
class Verdict:
    claim: int
    parts: list[str | Cited] = field(default_factory=list)

    def add(self, *pieces: str | Cited | None) -> Verdict:
        self.parts += [p for p in pieces if p is not None]
        return self

    @property
    def text(self) -> str:
        return "".join(p.text if isinstance(p, Cited) else p for p in self.parts)

    @property
    def cited(self) -> list[Cited]:
        return [p for p in self.parts if isinstance(p, Cited)]


def field_value(record: dict[str, Any], name: str) -> Any:
    """``kendall_ci.0`` → ``record["kendall_ci"][0]``."""
    value: Any = record
    for part in name.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def find_record(records: Sequence[dict[str, Any]], select: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in records if all(r.get(k) == v for k, v in select.items())), None)


def _cite(records: Sequence[dict[str, Any]], file: str, select: dict[str, Any], name: str, digits: int,
          signed: bool = False) -> Cited | None:
    record = find_record(records, select)
    if record is None:
        return None
    value = field_value(record, name)
    if value is None or not math.isfinite(float(value)):
        return None
    return Cited(float(value), digits, file, select, name, signed)


def _overlap(a: Sequence[float | None], b: Sequence[float | None]) -> bool | None:
    if None in a or None in b:
        return None
    return not (a[1] < b[0] or b[1] < a[0])  # type: ignore[operator]


# ----------------------------------------------------------------------------------------------
# Reading the study folder
# ----------------------------------------------------------------------------------------------


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return None


@dataclass
class StudyFiles:
    root: Path
    study: dict[str, Any]
    init: list[dict[str, Any]] | None
    trained: list[dict[str, Any]] | None
    searches: dict[str, dict[str, Any]]

    @classmethod
    def read(cls, root: Path) -> StudyFiles:
        study = _json(root / STUDY_FILE)
        if not isinstance(study, dict):
            raise DataError(f"{root / STUDY_FILE} is missing or unreadable: pass a folder written by ntknas study")
        searches = {name: s for name in SEARCH_FOLDERS if (s := _json(root / "search" / name / "summary.json"))}
        return cls(root, study, _json(root / "init" / "summary.json"), _json(root / "trained" / "summary.json"),
                   searches)


def _fmt(value: float | None, spec: str = "+.3f") -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def _ci(record: dict[str, Any], name: str = "kendall") -> str:
    low, high = record[f"{name}_ci"]
    return f"{_fmt(record[name])} [{_fmt(low)}, {_fmt(high)}]"


def _family(metric: str) -> str:
    if metric in NTK_METRICS:
        return "NTK"
    return "size" if metric in SIZE_METRICS else "zero-cost"


def _good(record: dict[str, Any]) -> float:
    """τ in the metric's own direction (higher is better for every metric after this)."""
    tau = record.get("kendall")
    if tau is None or record.get("higher_is_better") is None:
        return -math.inf
    return tau if record["higher_is_better"] else -tau


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with atomic_binary(path) as handle:
        fig.savefig(handle, format="png", dpi=100)
    return path


# ----------------------------------------------------------------------------------------------
# Claim 1: at initialization
# ----------------------------------------------------------------------------------------------


def plot_tau_bars(path: Path, records: Sequence[dict[str, Any]]) -> Path:
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
    ax.set_xticks(np.arange(len(metrics)), [f"{m}\n({_family(m)})" for m in metrics], fontsize=7)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("Kendall τ with accuracy (signed)")
    ax.set_title("At initialization: τ per metric and BatchNorm mode (bars: 95% CI)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def _own_ci(record: dict[str, Any]) -> list[float | None]:
    """τ's confidence interval in the metric's own ranking direction (negated for lower-is-better
    metrics), so intervals of metrics ranking in opposite directions compare."""
    low, high = record.get("kendall_ci") or [None, None]
    if record.get("higher_is_better") is not False or low is None or high is None:
        return [low, high]
    return [-high, -low]


def _named(record: dict[str, Any]) -> str:
    """A metric as a verdict names it: with its BN mode, and its direction when it ranks by lower
    values (a negative τ is then the good sign)."""
    lower = ", ranks by lower values, so a negative τ is its good sign" if record.get("higher_is_better") is False else ""
    return f"{record['metric']} ({record['bn']} BN{lower})"


def claim1_verdict(records: Sequence[dict[str, Any]]) -> Verdict:
    file = "init/summary.json"
    scored = [r for r in records if r.get("kendall") is not None and r.get("higher_is_better") is not None]
    ntk = [r for r in scored if r["metric"] in NTK_METRICS]
    zc = [r for r in scored if r["metric"] not in NTK_METRICS and r["metric"] not in SIZE_METRICS]
    verdict = Verdict(1)
    if not ntk or not zc:
        return verdict.add("No verdict yet: the init part holds too few correlations to compare NTK metrics with "
                           "zero-cost proxies.")
    best_ntk, best_zc = max(ntk, key=_good), max(zc, key=_good)
    worst_ntk = min(ntk, key=_good)

    def tau(record: dict[str, Any]) -> list[str | Cited | None]:
        select = {"metric": record["metric"], "bn": record["bn"], "train_epochs": record["train_epochs"]}
        return [
            _cite(records, file, select, "kendall", 2, True), " [",
            _cite(records, file, select, "kendall_ci.0", 2, True), ", ",
            _cite(records, file, select, "kendall_ci.1", 2, True), "]",
        ]

    overlap = _overlap(_own_ci(best_ntk), _own_ci(best_zc))
    verdict.add(
        f"At initialization (τ signed, metrics compared in their own ranking direction) the best NTK metric, "
        f"{_named(best_ntk)}, has Kendall τ ",
        *tau(best_ntk), f" and the weakest, {_named(worst_ntk)}, ", *tau(worst_ntk),
        ", against ", *tau(best_zc), f" for the best zero-cost proxy, {_named(best_zc)}, "
        "over ", _cite(records, file, {"metric": best_zc["metric"], "bn": best_zc["bn"],
                                        "train_epochs": best_zc["train_epochs"]}, "n", 0), " architectures",
    )
    if _good(best_zc) > _good(best_ntk):
        verdict.add("; the zero-cost proxy ranks better", " and the confidence intervals do not overlap."
                    if overlap is False else ", but the confidence intervals overlap, so this scale cannot "
                    "separate them.")
    else:
        verdict.add("; the NTK metric ranks at least as well", ", beyond the confidence intervals."
                    if overlap is False else ", within overlapping confidence intervals.")
    return verdict


ZC_ANCHORS = (
    ("synflow", "0.74", "Abdelfattah et al. 2021: Spearman ρ over all 15,625 NB201 cells, CIFAR-10 test accuracy"),
    ("jacob_cov", "0.73", "same paper and protocol"),
    ("snip", "0.60", "same paper and protocol"),
    ("grad_norm", "0.59", "same paper and protocol"),
    ("AZ-NAS (aggregate)", "τ 0.74 / ρ 0.91", "CVPR 2024, NB201 CIFAR-10 (a training-free aggregate)"),
    ("TE-NAS κ_N", "τ −0.42", "TE-NAS paper: batch 32, Kaiming-normal init, 3 repeats, dataset not named"),
)


def _claim1(files: StudyFiles, figures: Path) -> tuple[list[Block], Verdict | None]:
    blocks: list[Block] = [Heading("Claim 1: at initialization, NTK metrics correlate weakly and unreliably "
                                   "compared with zero-cost proxies", 2, anchor="claim1")]
    records = files.init
    if not records:
        return blocks + [Paragraph("Not measured yet: the init part has no summary.json (rerun the study).")], None
    rows = tuple(
        (r["metric"], _family(r["metric"]), r["bn"], str(r["n"]), _ci(r), _ci(r, "spearman"),
         {True: "higher", False: "lower", None: "—"}[r.get("higher_is_better")])
        for r in records
    )
    verdict = claim1_verdict(records)
    blocks += [
        Paragraph("Verdict: " + verdict.text),
        Table(("metric", "family", "BN", "n", "Kendall τ [95% CI]", "Spearman ρ [95% CI]", "ranks by"), rows,
              caption="init/summary.json — signed rank correlation with the target (bootstrap 95% CIs)"),
        Image(plot_tau_bars(figures / "claim1_tau_by_metric.png", records), "Kendall τ per metric and BN mode"),
        Paragraph("Published neighbours (ρ is Spearman; our table's ρ column is the comparable one). " + UNKNOWN_STUDY),
        Table(("metric", "published", "protocol (how it differs from this page)"), ZC_ANCHORS,
              caption="Published anchors (docs/protocol.md), NB201 CIFAR-10: all 15,625 cells and the full training schedule"),
    ]
    return blocks, verdict


# ----------------------------------------------------------------------------------------------
# Claim 2: after brief training
# ----------------------------------------------------------------------------------------------


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
    ax.set_xlabel("training epochs before measuring")
    ax.set_ylabel("Kendall τ with accuracy (signed)")
    ax.set_title("τ against training (bars: 95% CI)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def claim2_verdict(records: Sequence[dict[str, Any]]) -> Verdict:
    file = "trained/summary.json"
    verdict = Verdict(2)
    stages = sorted({r["train_epochs"] for r in records})
    trained = [e for e in stages if e > 0]
    if 0 not in stages or not trained:
        return verdict.add("No verdict yet: the trained part holds no stage after training.")
    first = trained[0]

    def at(metric: str, epochs: int, name: str = "kendall") -> Cited | None:
        return _cite(records, file, {"metric": metric, "bn": "train", "train_epochs": epochs}, name, 2, True)

    def span(metric: str, epochs: int) -> list[str | Cited | None]:
        return [at(metric, epochs), " [", at(metric, epochs, "kendall_ci.0"), ", ", at(metric, epochs, "kendall_ci.1"), "]"]

    epochs_cite = _cite(records, file, {"metric": "lga", "bn": "train", "train_epochs": first}, "train_epochs", 0)
    if at("lga", 0) is None or at("lga", first) is None:
        return verdict.add("No verdict yet: LGA has no correlation at both stages (see the table for why).")
    verdict.add("LGA's Kendall τ (train BN) goes from ", *span("lga", 0), " before training to ", *span("lga", first),
                " after ", epochs_cite, " epoch(s)")
    for epochs in trained[1:]:
        if at("lga", epochs) is not None:
            verdict.add(" and ", at("lga", epochs), " after ",
                        _cite(records, file, {"metric": "lga", "bn": "train", "train_epochs": epochs}, "train_epochs", 0),
                        "")
    others = [m for m in ("synflow", "knas", "fnorm", "trace", "tenas") if at(m, 0) is not None and at(m, first) is not None]
    if others:
        pieces: list[str | Cited | None] = []
        for number, metric in enumerate(others[:3]):
            pieces += [", " if number else "", f"{metric} from ", at(metric, 0), " to ", at(metric, first)]
        verdict.add(", while over the same training ", *pieces)
    low0, high1 = (find_record(records, {"metric": "lga", "bn": "train", "train_epochs": e}) or {} for e in (0, first))
    rose = (high1.get("kendall") or 0) - (low0.get("kendall") or 0)
    overlap = _overlap(low0.get("kendall_ci", [None, None]), high1.get("kendall_ci", [None, None]))
    if rose > 0 and overlap is False:
        verdict.add("; LGA's rise is beyond its confidence intervals.")
    elif rose > 0:
        verdict.add("; LGA rises, but within overlapping confidence intervals, so this scale does not confirm the claim.")
    else:
        verdict.add("; LGA does not rise here, so this scale does not support the claim.")
    return verdict


TRAINED_ANCHORS = (
    ("jacob_cov", "ρ 0.69 at init → −0.02 after one epoch", "ICLR 2022 blog track, NATS-Bench TSS CIFAR-10"),
    ("grasp", "ρ 0.63 at init → −0.41 after one epoch", "same source"),
    ("lga", "unknown", "the study's claim; its numbers are not available to us"),
)


def _claim2(files: StudyFiles, figures: Path) -> tuple[list[Block], Verdict | None]:
    blocks: list[Block] = [Heading("Claim 2: after brief training LGA's correlation rises, while metrics at "
                                   "initialization and zero-cost proxies do not", 2, anchor="claim2")]
    records = files.trained
    if not records:
        return blocks + [Paragraph("Not measured yet: the trained part has no summary.json (rerun the study).")], None
    verdict = claim2_verdict(records)
    rows = tuple((r["metric"], r["bn"], str(r["train_epochs"]), str(r["n"]), _ci(r), _ci(r, "spearman"))
                 for r in sorted(records, key=lambda r: (r["metric"] != "lga", r["metric"], r["bn"], r["train_epochs"])))
    blocks += [
        Paragraph("Verdict: " + verdict.text),
        Paragraph("Every stage, epoch 0 included, is measured on the first test images (docs/protocol.md, Experiment 2), so the stages "
                  "compare with each other; epoch 0 here is not the init part's augmented training batch."),
        Table(("metric", "BN", "epochs", "n", "Kendall τ [95% CI]", "Spearman ρ [95% CI]"), rows,
              caption="trained/summary.json"),
        Image(plot_tau_vs_epochs(figures / "claim2_tau_vs_epochs.png", records), "Kendall τ against training epochs"),
        Table(("metric", "published", "protocol"), TRAINED_ANCHORS, caption="Published neighbours (docs/protocol.md)"),
    ]
    return blocks, verdict


# ----------------------------------------------------------------------------------------------
# Claim 3: kernel tracking
# ----------------------------------------------------------------------------------------------


def _read_track(root: Path) -> dict[str, list[dict[str, float]]]:
    path = root / "track" / "track.csv"
    series: dict[str, list[dict[str, float]]] = {}
    if not path.is_file():
        return series
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            values = {k: (float(v) if v not in ("", None) else math.nan) for k, v in row.items() if k != "arch"}
            series.setdefault(row["arch"], []).append(values)
    for rows in series.values():
        rows.sort(key=lambda r: r["epoch"])
    return series


def track_summary(root: Path, bands: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Per band: the mean final relative kernel difference; over all tracked architectures: Kendall
    τ of the final difference with accuracy (written to track/band_summary.json)."""
    series = _read_track(root)
    tracked = [b for b in bands if series.get(b["arch"])]
    if not tracked:
        return None
    final = {b["arch"]: series[b["arch"]][-1] for b in tracked}
    records: list[dict[str, Any]] = []
    for band in dict.fromkeys(b["band"] for b in tracked):
        members = [b for b in tracked if b["band"] == band]
        diffs = [final[b["arch"]].get("rel_diff", math.nan) for b in members]
        finite = [d for d in diffs if math.isfinite(d)]
        records.append({
            "band": band, "n": len(members), "epochs": int(max(final[b["arch"]]["epoch"] for b in members)),
            "rel_diff_mean": round(float(np.mean(finite)), 6) if finite else None,
            "kernel_corr_mean": round(float(np.nanmean([final[b["arch"]].get("kernel_corr", math.nan) for b in members])), 6)
            if members else None,
            "accuracy_mean": round(float(np.mean([b["accuracy"] for b in members])), 6),
        })
    final_diffs = np.array([final[b["arch"]].get("rel_diff", math.nan) for b in tracked])
    accuracy = np.array([b["accuracy"] for b in tracked], dtype=float)
    result = rank_correlation(final_diffs, accuracy)

    def plain(value: float) -> float | None:
        return None if not math.isfinite(value) else round(float(value), 6)

    summary = {
        "bands": records,
        "all": {"metric": "final rel_diff", "n": result.n, "kendall": plain(result.kendall),
                "kendall_ci": [plain(v) for v in result.kendall_ci]},
    }
    text, path = json.dumps(summary, indent=2) + "\n", root / "track" / TRACK_SUMMARY
    if not path.is_file() or path.read_text() != text:  # a report of a finished study leaves its folder as it was
        atomic_write_text(path, text)
    return summary


def plot_kernel_difference(path: Path, root: Path, bands: Sequence[dict[str, Any]]) -> Path:
    series = _read_track(root)
    fig = Figure(figsize=(11, 4.0))
    left, right = fig.subplots(1, 2)
    seen: set[str] = set()
    for band in bands:
        rows = series.get(band["arch"])
        if not rows:
            continue
        colour = BAND_COLOURS.get(band["band"], "tab:blue")
        label = None if band["band"] in seen else f"{band['band']} band"
        seen.add(band["band"])
        epochs = [r["epoch"] for r in rows]
        left.plot(epochs, [r.get("rel_diff", math.nan) for r in rows], marker="o", color=colour, label=label)
        right.plot(epochs, [r.get("kernel_corr", math.nan) for r in rows], marker="o", color=colour, label=label)
    left.set_ylabel("‖Θₜ − Θ₀‖_F / ‖Θ₀‖_F")
    right.set_ylabel("correlation of Θₜ with Θ₀")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    left.set_title("Relative kernel difference, coloured by accuracy band", fontsize=10)
    right.set_title("Kernel correlation with initialization", fontsize=10)
    return _save(fig, path)


def claim3_verdict(summary: dict[str, Any]) -> Verdict:
    file = "track/" + TRACK_SUMMARY
    verdict = Verdict(3)
    bands = summary["bands"]
    cited = [(b["band"], _cite(bands, file + "#bands", {"band": b["band"]}, "rel_diff_mean", 3)) for b in bands]
    present = [(band, c) for band, c in cited if c is not None]
    if not present:
        return verdict.add("No verdict yet: no tracked architecture has a kernel difference.")
    epochs = _cite(bands, file + "#bands", {"band": bands[0]["band"]}, "epochs", 0)
    verdict.add("After ", epochs, " epoch(s) the relative kernel difference averages ")
    for number, (band, value) in enumerate(present):
        verdict.add(", " if number else "", value, f" in the {band} band")
    whole = summary["all"]
    tau = _cite([whole], file + "#all", {"metric": "final rel_diff"}, "kendall", 2, True)
    if tau is not None:
        low = _cite([whole], file + "#all", {"metric": "final rel_diff"}, "kendall_ci.0", 2, True)
        high = _cite([whole], file + "#all", {"metric": "final rel_diff"}, "kendall_ci.1", 2, True)
        verdict.add("; Kendall τ of the final difference with accuracy is ", tau, " [", low, ", ", high, "] over ",
                    _cite([whole], file + "#all", {"metric": "final rel_diff"}, "n", 0), " architectures")
    ordered = [c.value for _, c in present]
    high_moves_most = len(present) > 1 and present[-1][0] == "high" and ordered[-1] == max(ordered)
    low_ci = (whole.get("kendall_ci") or [None])[0]
    evidence = tau is not None and low_ci is not None and low_ci > 0
    if high_moves_most and evidence:
        verdict.add(", so the best band moves farthest from its initial kernel, as the paper says.")
    elif high_moves_most:
        verdict.add(", so the best band moves farthest here, as the paper says, but the τ interval includes zero: "
                    "with this few tracked architectures it describes these cells and is no evidence for the claim.")
    else:
        verdict.add(", so this scale does not show the best band moving farthest from its initial kernel.")
    return verdict


def _claim3(files: StudyFiles, figures: Path) -> tuple[list[Block], Verdict | None]:
    blocks: list[Block] = [Heading("Claim 3: good architectures move far from their initial kernel", 2, anchor="claim3")]
    bands = files.study.get("track_bands") or []
    summary = track_summary(files.root, bands) if bands else None
    if summary is None:
        return blocks + [Paragraph("Not measured yet: the track part holds no tracked epoch (rerun the study).")], None
    verdict = claim3_verdict(summary)
    series = _read_track(files.root)
    rows = []
    for band in bands:
        last = (series.get(band["arch"]) or [{}])[-1]
        rows.append((band["band"], str(band["index"]), f"{band['accuracy']:.2f}", str(int(last.get("epoch", 0))),
                     _fmt(last.get("rel_diff"), ".4f"), _fmt(last.get("rel_diff_ref"), ".4g"),
                     _fmt(last.get("kernel_corr"), ".4f"), _fmt(last.get("train_acc"), ".2f")))
    blocks += [
        Paragraph("Verdict: " + verdict.text),
        Table(("band", "NB201 index", "accuracy", "epoch", "rel_diff", "rel_diff (reference form)", "kernel corr",
               "train acc (%)"), tuple(rows), caption="Final tracked epoch per architecture (track/track.csv)"),
        Image(plot_kernel_difference(figures / "claim3_kernel_difference.png", files.root, bands),
              "Kernel difference and correlation against epochs, coloured by accuracy band"),
        Paragraph("With so few architectures per band the τ above has a wide interval; it is a description of "
                  "these cells, not of the space. " + UNKNOWN_STUDY),
    ]
    return blocks, verdict


# ----------------------------------------------------------------------------------------------
# Claim 4: search
# ----------------------------------------------------------------------------------------------

SEARCH_ANCHORS = (
    ("random search (NB201 paper)", "93.70 ± 0.36", "12-epoch validation accuracy as the signal; CIFAR-10 test "
     "(train+valid, 200 epochs) reported; the paper's own budget (time, not candidates)"),
    ("REA (NB201 paper)", "93.92 ± 0.30", "same"),
    ("TE-NAS", "93.9 ± 0.47 at 0.05 GPU-days", "pruning-based, not candidate-budgeted"),
    ("NASWOT (N = 100)", "92.96 ± 0.81", "100 random candidates scored at init"),
    ("KNAS", "93.05", "its own protocol"),
    ("best in NB201", "94.37", "CIFAR-10 test"),
)


def _search_records(files: StudyFiles) -> list[tuple[str, dict[str, Any]]]:
    return [(name, record) for name, summary in files.searches.items() for record in summary["searches"]]


def plot_search(path: Path, root: Path, files: StudyFiles) -> Path | None:
    """Best-so-far reported accuracy against cumulative cost, every search of the study."""
    from ntknas.report.search import read_search_csv

    fig = Figure(figsize=(8, 4.4))
    ax = fig.subplots()
    number = 0
    for name in SEARCH_FOLDERS:
        csv_path = root / "search" / name / "search.csv"
        if not csv_path.is_file():
            continue
        rows = read_search_csv(csv_path)
        labels = list(dict.fromkeys((r.strategy, r.proxy) for r in rows))
        for strategy, proxy in labels:
            runs: dict[int, list[Any]] = {}
            for row in rows:
                if (row.strategy, row.proxy) == (strategy, proxy):
                    runs.setdefault(row.run, []).append(row)
            finals = [rs[-1] for rs in runs.values()]
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
    return _save(fig, path)


def claim4_verdict(files: StudyFiles) -> Verdict:
    verdict = Verdict(4)
    records = {name: summary["searches"] for name, summary in files.searches.items()}
    two = [r for r in records.get("two-stage", []) if r["strategy"] == "two-stage"]
    baselines = records.get("baselines", [])
    oracle = [r for r in baselines if r["proxy"].startswith("bench:")]
    if not two or not oracle:
        return verdict.add("No verdict yet: the two-stage and oracle searches are not both finished.")
    file_two, file_base = "search/two-stage/summary.json", "search/baselines/summary.json"
    chosen = two[0]
    select = {"strategy": "two-stage", "proxy": chosen["proxy"]}
    rea_oracle = next((r for r in oracle if r["strategy"] == "rea"), oracle[0])
    oracle_select = {"strategy": rea_oracle["strategy"], "proxy": rea_oracle["proxy"]}

    def acc(rs: Sequence[dict[str, Any]], file: str, sel: dict[str, Any]) -> list[str | Cited | None]:
        pieces: list[str | Cited | None] = [_cite(rs, file, sel, "accuracy_mean", 2)]
        std = _cite(rs, file, sel, "accuracy_std", 2)
        if std is not None:
            pieces += [" ± ", std]
        return pieces

    if _cite(two, file_two, select, "accuracy_mean", 2) is None:
        return verdict.add("No verdict yet: the two-stage search reports no accuracy.")
    verdict.add("Two-stage search (synflow, then LGA after training the top candidates) chooses architectures of ",
                *acc(two, file_two, select), " accuracy at ", _cite(two, file_two, select, "cost_mean", 1),
                " device-seconds per run, against ", *acc(baselines, file_base, oracle_select),
                f" for {rea_oracle['strategy'].upper() if rea_oracle['strategy'] == 'rea' else rea_oracle['strategy']} "
                "guided by the oracle column (table lookups; the training behind them is not on the bill)")
    synflow = next((r for r in baselines if r["strategy"] == "rea" and r["proxy"] == "synflow"), None)
    if synflow is not None and synflow.get("accuracy_mean") is not None:
        verdict.add(", ", *acc(baselines, file_base, {"strategy": "rea", "proxy": "synflow"}), " for synflow-guided REA")
    lga = next((r for r in records.get("lga-init", []) if r["strategy"] == "rea"), None)
    if lga is not None and lga.get("accuracy_mean") is not None:
        verdict.add(" and ", *acc(records["lga-init"], "search/lga-init/summary.json", {"strategy": "rea", "proxy": lga["proxy"]}),
                    " for REA guided by LGA at initialization")
    gap = (rea_oracle.get("accuracy_mean") or 0) - (chosen.get("accuracy_mean") or 0)
    spread = rea_oracle.get("accuracy_std") or 0.0
    if gap <= spread:
        verdict.add("; two-stage is within one standard deviation of the oracle.")
    else:
        verdict.add("; two-stage falls short of the oracle by more than one standard deviation.")
    return verdict


def _oracle_cost_note(files: StudyFiles) -> str | None:
    """What the oracle's lookups stand for: 12 epochs of training per candidate, at this scale's
    measured training speed (mean seconds per epoch of the trained part)."""
    from ntknas.store import STORE_FILE, ResultStore

    path = files.root / "trained"
    if not (path / STORE_FILE).is_file():
        return None
    with ResultStore(path, readonly=True) as store:
        seconds = [t.seconds for t in store.training_records() if t.seconds is not None]
    baselines = files.searches.get("baselines")
    if not seconds or baselines is None:
        return None
    candidates = baselines["spec"].get("candidates") or 0
    per_epoch = float(np.mean(seconds))
    return (
        f"The oracle's lookups cost nothing on the bill, but each stands for 12 epochs of training: at this scale's "
        f"measured training speed ({per_epoch:.1f} s per epoch, mean over the trained part's {len(seconds)} epochs, on "
        f"this scale's training set) that is about {12 * per_epoch * candidates:.0f} s per run of {candidates} candidates "
        "(an estimate: NAS-Bench-201 trained on the 25,000-image half of CIFAR-10)."
    )


def _claim4(files: StudyFiles, figures: Path) -> tuple[list[Block], Verdict | None]:
    from ntknas.report.search import SEARCH_HEADERS, search_table_rows

    blocks: list[Block] = [Heading("Claim 4: LGA after brief training guides search to competitive architectures "
                                   "at a fraction of the oracle's cost", 2, anchor="claim4")]
    if not files.searches:
        return blocks + [Paragraph("Not measured yet: no search of the study has a summary.json (rerun the study).")], None
    verdict = claim4_verdict(files)
    rows = tuple((name, *row) for name, summary in files.searches.items()
                 for row in search_table_rows(summary["searches"]))
    spec = next(iter(files.searches.values()))["spec"]
    facts = [
        ("reported accuracy (never used for guidance)", f"{spec['target']} from {spec['benchmark']}"),
        ("budget", f"{spec['candidates']} candidates per run, {spec['runs']} runs, seeds {spec['seed']}..{spec['seed'] + spec['runs'] - 1}, the same for every search"),
        ("best in the pool", "n/a" if spec["best_in_space"] is None else f"{spec['best_in_space']:.2f} ({spec['best_in_space_arch']})"),
    ]
    blocks += [
        Paragraph("Verdict: " + verdict.text),
        Facts(tuple((label, value, False) for label, value in facts)),
        Table(("folder", *SEARCH_HEADERS), rows, caption="Every search of the study (search/*/summary.json); cost is "
              "the device seconds of proxy evaluation and training per run"),
    ]
    note = _oracle_cost_note(files)
    if note:
        blocks.append(Paragraph(note))
    plot = plot_search(figures / "claim4_search_cost.png", files.root, files)
    if plot is not None:
        blocks.append(Image(plot, "Best-so-far accuracy against cost, every search"))
    blocks += [
        Paragraph("Published search results on NB201 CIFAR-10 (mean ± std); they report CIFAR-10 test accuracy of "
                  "networks trained on train+valid for 200 epochs, under their own budgets. " + UNKNOWN_STUDY),
        Table(("method", "published", "protocol"), SEARCH_ANCHORS, caption="Published anchors (docs/protocol.md)"),
    ]
    return blocks, verdict


# ----------------------------------------------------------------------------------------------
# The page
# ----------------------------------------------------------------------------------------------


def _header(files: StudyFiles) -> list[Block]:
    study = files.study
    machine = study.get("machine") or {}
    parts = study.get("parts") or {}
    scale = study.get("scale") or {}
    total = _total_seconds(parts)
    facts = [
        ("command", str(study.get("command", "not recorded")), True),
        ("machine", ", ".join(f"{k} {v}" for k, v in sorted(machine.items())) or "not recorded", False),
        ("status", "finished" if study.get("finished") else "not finished: rerun the command to continue", False),
    ]
    blocks: list[Block] = [
        Paragraph(f"Scale {scale.get('title', '?')}. Every number below is read from the part folders of this study; "
                  "every verdict's numbers are cited in verdicts.json."),
        Facts(tuple(facts)),
        Table(("part", "folder", "status", "wall time (s, summed over invocations)"),
              tuple((name, str(p.get("folder", name)), str(p.get("status", "?")), f"{float(p.get('seconds', 0.0)):.1f}")
                    for name, p in sorted(parts.items(), key=lambda item: _part_order(item[0])))
              + (("total", "", "", f"{total:.1f}"),),
              caption="Wall time per part"),
    ]
    return blocks


def _total_seconds(parts: dict[str, dict[str, Any]]) -> float:
    """The study's wall time: its parts' seconds, each summed over the invocations that ran it."""
    return sum(float(p.get("seconds", 0.0)) for p in parts.values())


PART_ORDER = ("groundtruth", "init", "trained", "track", "search")


def _part_order(name: str) -> int:
    return PART_ORDER.index(name) if name in PART_ORDER else len(PART_ORDER)


def _scale_blocks(files: StudyFiles) -> list[Block]:
    scale = files.study.get("scale") or {}
    blocks: list[Block] = [Heading("Scale and deviations from the study's protocol", 2, anchor="scale")]
    if scale.get("rows"):
        blocks.append(Table(("setting", "value"), tuple(tuple(r) for r in scale["rows"]), caption=scale.get("title")))
    blocks.append(Paragraph("Deviations from the study's protocol (docs/protocol.md):"))
    blocks.append(Facts(tuple((str(n), line, False) for n, line in enumerate(scale.get("deviations") or ["none"], 1))))
    parts = files.study.get("parts") or {}
    if files.study.get("finished") and parts:
        total = _total_seconds(parts)
        device = (files.study.get("machine") or {}).get("device", "the machine above")
        blocks.append(Paragraph(f"Time: measured on this run, {_duration(total)} in all on {device} (the wall "
                                "time per part is at the top of this page)."))
    if scale.get("estimate"):
        blocks.append(Paragraph("The scale's documented time: " + scale["estimate"]))
    return blocks


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{seconds:.0f} s" if seconds < 120 else f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 \
        else f"{minutes} min"


def write_results_page(study_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write results.md, results.html, verdicts.json and the figures of a study folder.

    ``out`` defaults to the study folder itself; another folder (e.g. ``docs/results/...``) gets the
    same page with its figures beside it, so the page can be published without the stores.
    """
    root = Path(study_dir)
    files = StudyFiles.read(root)
    target = report_folder(root if out is None else Path(out))
    figures = target / FIGURES
    blocks = _header(files)
    verdicts: list[Verdict] = []
    for section in (_claim1, _claim2, _claim3, _claim4):
        section_blocks, verdict = section(files, figures)
        blocks += section_blocks
        if verdict is not None:
            verdicts.append(verdict)
    blocks += _scale_blocks(files)
    title = "ntknas study — results"
    md_path, html_path, verdict_path = target / RESULTS_MD, target / RESULTS_HTML, target / VERDICTS_JSON
    atomic_write_text(verdict_path, json.dumps(
        [{"claim": v.claim, "text": v.text, "numbers": [c.record() for c in v.cited]} for v in verdicts], indent=1,
    ) + "\n")
    atomic_write_text(md_path, render_markdown(title, blocks, target.resolve()))
    atomic_write_text(html_path, render_html(title, blocks))
    return [md_path, html_path, verdict_path]


__all__ = ["RESULTS_HTML", "RESULTS_MD", "VERDICTS_JSON", "Cited", "Verdict", "field_value", "find_record",
           "is_study_folder", "write_results_page"]
