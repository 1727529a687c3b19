"""Reading a study folder: study.json, each part's summary.json and scores.csv, the track csv and
the searches. Nothing here imports experiment code: the page is built from the files alone."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ntknas.errors import DataError

STUDY_FILE = "study.json"
SEARCH_FOLDERS = ("baselines", "lga-init", "two-stage")
SPACE_PARTS = (("init", "NAS-Bench-201"), ("init-nb101", "NAS-Bench-101"))
"""The parts measured at initialization, one per search space, with the space's name."""
SCORES_FILE = "scores.csv"
TRACK_CSV = "track.csv"
DATASET_TRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000, "imagenet16-120": 151_700}
"""Training-split sizes, for a scale row that says it trains on "all" of a dataset's images."""
LEADING_COUNT = re.compile(r"\s*(?:all\s+)?(?P<count>\d[\d,]*)")
"""The image count a scale-table value starts with ("6,272: a subset", "all 50,000 of the split")."""


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Scores:
    """A correlate part's scores.csv: one row per (architecture, BN mode, stage)."""

    rows: list[dict[str, str]]

    @classmethod
    def read(cls, path: Path) -> Scores | None:
        if not path.is_file():
            return None
        with path.open(newline="") as handle:
            return cls(list(csv.DictReader(handle)))

    def column(self, metric: str, bn: str, epochs: int) -> dict[str, tuple[float, float]]:
        """Architecture key → (value of ``metric``, accuracy) for one BN mode and stage."""
        table = {}
        for row in self.rows:
            if row.get("bn") == bn and _int(row.get("train_epochs")) == epochs:
                table[row["arch"]] = (_float(row.get(metric)), _float(row.get("accuracy")))
        return table


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan  # type: ignore[arg-type]
    except ValueError:
        return math.nan


def _int(text: str | None) -> int | None:
    try:
        return int(float(text)) if text not in (None, "") else None  # type: ignore[arg-type]
    except ValueError:
        return None


@dataclass
class StudyFiles:
    root: Path
    study: dict[str, Any]
    init: list[dict[str, Any]] | None
    trained: list[dict[str, Any]] | None
    searches: dict[str, dict[str, Any]]
    spaces: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Part folder → its summary records, for each part measured at initialization."""

    @classmethod
    def read(cls, root: Path) -> StudyFiles:
        study = read_json(root / STUDY_FILE)
        if not isinstance(study, dict):
            raise DataError(f"{root / STUDY_FILE} is missing or unreadable: pass a folder written by ntknas study")
        searches = {name: s for name in SEARCH_FOLDERS if (s := read_json(root / "search" / name / "summary.json"))}
        spaces = {part: records for part, _ in SPACE_PARTS if (records := read_json(root / part / "summary.json"))}
        return cls(root, study, spaces.get("init"), read_json(root / "trained" / "summary.json"), searches, spaces)

    def scores(self, part: str) -> Scores | None:
        return Scores.read(self.root / part / SCORES_FILE)

    def track_series(self) -> dict[str, list[dict[str, float]]]:
        """Architecture → its track.csv rows (every column a float, NaN when empty), epochs ascending."""
        path = self.root / "track" / TRACK_CSV
        series: dict[str, list[dict[str, float]]] = {}
        if not path.is_file():
            return series
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                values = {k: _float(v) for k, v in row.items() if k != "arch"}
                series.setdefault(row["arch"], []).append(values)
        for rows in series.values():
            rows.sort(key=lambda r: r["epoch"])
        return series

    def training_seconds(self, part: str) -> list[float]:
        """Wall seconds of every training stage a part's store recorded (empty without a store)."""
        from ntknas.store import STORE_FILE, ResultStore

        path = self.root / part
        if not (path / STORE_FILE).is_file():
            return []
        with ResultStore(path, readonly=True) as store:
            return [t.seconds for t in store.training_records() if t.seconds is not None and t.epoch > 0]

    def images_per_stage(self) -> int | None:
        """Training images one stage passes over, from the scale record (its own field, or the
        scale table's "images per stage/epoch" row; "all" means the dataset's training split)."""
        scale = self.study.get("scale") or {}
        for key in ("images_per_stage", "train_images"):
            if isinstance(scale.get(key), int):
                return int(scale[key])
        rows = {str(k).lower(): str(v) for k, v in scale.get("rows") or []}
        for label, value in rows.items():
            if "images per" in label and "stage" in label or "images per epoch" in label:
                # "6,272: a fixed seeded subset, ...", "2,500 (a subset)", "all 50,000 of the training split", "all"
                leading = LEADING_COUNT.match(value)
                if leading:
                    return int(leading.group("count").replace(",", ""))
                if value.strip().lower().startswith("all"):
                    return DATASET_TRAIN_IMAGES.get(rows.get("dataset", "").lower())
        return None
