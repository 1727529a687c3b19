"""Pieces every claim's section shares: metric families and directions, number formats, the
missing-values note, saving figures, and the label line under a verdict."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ntknas.files import atomic_binary
from ntknas.report.document import Block, Facts, Paragraph
from ntknas.report.results.citing import Verdict
from ntknas.report.results.labels import RULES

NTK_METRICS = ("knas", "tenas", "fnorm", "trace", "lga")
SIZE_METRICS = ("params", "flops")
UNKNOWN_STUDY = "The study's own tables are not available to us: no published value of the study is quoted here."
FAMILY_NAMES = {"ntk": "NTK", "zero-cost": "zero-cost", "size": "size"}


def family(record: dict[str, Any] | str) -> str:
    """A metric's family as the page names it: the record's own ``family`` when it carries one,
    else by name (NTK metrics and size baselines are fixed lists; any other metric is a zero-cost proxy)."""
    if isinstance(record, dict) and record.get("family"):
        return FAMILY_NAMES.get(str(record["family"]), str(record["family"]))
    metric = record["metric"] if isinstance(record, dict) else record
    if metric in NTK_METRICS:
        return "NTK"
    return "size" if metric in SIZE_METRICS else "zero-cost"


def direction(record: dict[str, Any]) -> float:
    """+1 for a metric that ranks by higher values, −1 for one that ranks by lower values."""
    return -1.0 if record.get("higher_is_better") is False else 1.0


def good(record: dict[str, Any]) -> float:
    """τ in the metric's own direction (higher is better for every metric after this)."""
    tau = record.get("kendall")
    if tau is None or record.get("higher_is_better") is None:
        return -math.inf
    return direction(record) * tau


def named(record: dict[str, Any]) -> str:
    """A metric as a verdict names it: with its BN mode, and its direction when it ranks by lower
    values (a negative τ is then the good sign)."""
    lower = ", ranks by lower values" if record.get("higher_is_better") is False else ""
    return f"{record['metric']} ({record['bn']} BN{lower})"


def fmt(value: float | None, spec: str = "+.3f") -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def with_ci(record: dict[str, Any], name: str = "kendall", spec: str = "+.3f") -> str:
    low, high = record.get(f"{name}_ci") or (None, None)
    return f"{fmt(record.get(name), spec)} [{fmt(low, spec)}, {fmt(high, spec)}]"


def missing_text(record: dict[str, Any]) -> str:
    """``k: reason (count); …`` for a summary record, ``0`` when nothing is missing."""
    missing = int(record.get("missing") or 0)
    if not missing:
        return "0"
    reasons = record.get("missing_reasons") or {}
    return f"{missing}: " + "; ".join(f"{reason} ({count})" for reason, count in reasons.items()) if reasons \
        else str(missing)


def missing_note(records: Sequence[dict[str, Any]], part: str) -> list[Block]:
    """Why some metrics have fewer cells than others: per metric, BN mode and stage, the count and
    the reasons the store recorded (the tables' n counts the cells where metric and accuracy are both finite)."""
    lines = []
    for r in records:
        if r.get("missing"):
            stage = f", stage {r['train_epochs']}" if r.get("train_epochs") else ""
            lines.append(f"{r['metric']} ({r['bn']} BN{stage}) lacks {missing_text(r)}")
        if r.get("note"):
            lines.append(f"{r['metric']} ({r['bn']} BN): {r['note']}")
    if not lines:
        return [Paragraph(f"Missing values ({part}): none; every metric has a value for every cell.")]
    return [Paragraph(f"Missing values ({part}), with the reasons the store recorded: " + " · ".join(lines) + ".")]


def label_blocks(verdict: Verdict) -> list[Block]:
    """The verdict sentence, then its label with the rule that gave it."""
    return [
        Paragraph("Verdict: " + verdict.text),
        Facts((("label", f"{verdict.label or 'inconclusive'} ({verdict.reason})", False),
               ("rule", RULES[verdict.claim], False))),
    ]


def save_figure(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with atomic_binary(path) as handle:
        fig.savefig(handle, format="png", dpi=100)
    return path
