"""The statistics behind the verdicts: paired bootstraps over the study's own per-cell and
per-run values, gathered as records in the study folder's ``comparisons.json`` (the file the
verdicts cite, like each part's summary.json)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ntknas.analysis.paired import mean_difference, paired_kendall
from ntknas.files import atomic_write_text
from ntknas.report.results.common import direction
from ntknas.report.results.files import StudyFiles

COMPARISONS_FILE = "comparisons.json"


def plain(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


@dataclass(frozen=True)
class Measured:
    """One metric's values on one part's cells: a summary record (metric, BN mode, stage, direction)
    and the part folder whose scores.csv holds the per-cell values."""

    part: str
    record: dict[str, Any]

    @property
    def name(self) -> str:
        stage = self.record.get("train_epochs") or 0
        return f"{self.record['metric']} ({self.record['bn']} BN{f', stage {stage}' if stage else ''}; {self.part})"


@dataclass
class Comparisons:
    """The comparisons a page makes, by id, in the order they were made."""

    files: StudyFiles
    records: list[dict[str, Any]] = field(default_factory=list)

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        self.records = [r for r in self.records if r["id"] != record["id"]] + [record]
        return record

    def taus(self, ident: str, first: Measured, second: Measured) -> dict[str, Any] | None:
        """Δτ of two metrics over the cells both parts measured (joined on the architecture key),
        each τ in its metric's own direction, with the accuracy of the first part's scores."""
        columns = []
        for side in (first, second):
            scores = self.files.scores(side.part)
            if scores is None:
                return None
            columns.append(scores.column(side.record["metric"], side.record["bn"], side.record.get("train_epochs") or 0))
        shared = [arch for arch in columns[0] if arch in columns[1]]
        if not shared:
            return None
        a = np.array([columns[0][arch][0] for arch in shared])
        b = np.array([columns[1][arch][0] for arch in shared])
        accuracy = np.array([columns[0][arch][1] for arch in shared])
        result = paired_kendall(a, b, accuracy, first_sign=direction(first.record), second_sign=direction(second.record))
        if result.n < 3:
            return None
        return self.add({
            "id": ident, "first": first.name, "second": second.name, "n": result.n,
            "first_tau": plain(result.first), "second_tau": plain(result.second),
            "delta": plain(result.delta), "delta_ci": [plain(v) for v in result.delta_ci],
        })

    def runs(self, ident: str, first: dict[str, Any], second: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        """Δ of the mean final accuracy of two search rows over their runs, paired by seed when both
        rows ran the same seeds."""
        a, b, paired = _finals(first), _finals(second), _same_seeds(first, second)
        result = mean_difference(a, b, paired=paired)
        return self.add({
            "id": ident, "first": _row_name(first), "second": _row_name(second), "paired": paired,
            "runs": [result.n_first, result.n_second], "first_mean": plain(result.first_mean),
            "second_mean": plain(result.second_mean), "delta": plain(result.delta),
            "delta_ci": [plain(v) for v in result.delta_ci], **extra,
        })

    def write(self) -> Path | None:
        """comparisons.json in the study folder, rewritten only when it changed (a report of a
        finished study leaves the folder as it was)."""
        if not self.records:
            return None
        path = self.files.root / COMPARISONS_FILE
        text = json.dumps(self.records, indent=1) + "\n"
        if not path.is_file() or path.read_text() != text:
            atomic_write_text(path, text)
        return path


def _row_name(row: dict[str, Any]) -> str:
    return f"{row['strategy']} / {row['proxy']}"


def _by_seed(row: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(row.get("final") or [], key=lambda f: (f.get("seed") is None, f.get("seed") or 0, f.get("run") or 0))


def _finals(row: dict[str, Any]) -> np.ndarray:
    return np.array([math.nan if f.get("accuracy") is None else float(f["accuracy"]) for f in _by_seed(row)])


def _same_seeds(first: dict[str, Any], second: dict[str, Any]) -> bool:
    seeds = [[f.get("seed") for f in _by_seed(row)] for row in (first, second)]
    return bool(seeds[0]) and None not in seeds[0] and seeds[0] == seeds[1]


def comparison_list(records: Sequence[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [r for r in records if str(r["id"]).startswith(prefix)]
