"""Cited numbers and verdicts: every number a verdict prints names the file, record and field it
comes from, so a test (or a reader) can check it against the file."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


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
    """One claim's verdict: a sentence of text and cited numbers, and the label its rule gave."""

    claim: int
    parts: list[str | Cited] = field(default_factory=list)
    label: str | None = None
    reason: str = ""
    spaces: list[dict[str, Any]] = field(default_factory=list)

    def add(self, *pieces: str | Cited | None) -> Verdict:
        self.parts += [p for p in pieces if p is not None]
        return self

    @property
    def text(self) -> str:
        return "".join(p.text if isinstance(p, Cited) else p for p in self.parts)

    @property
    def cited(self) -> list[Cited]:
        return [p for p in self.parts if isinstance(p, Cited)]

    def record(self) -> dict[str, Any]:
        record = {"claim": self.claim, "label": self.label, "why": self.reason, "text": self.text,
                  "numbers": [c.record() for c in self.cited]}
        if self.spaces:
            record["spaces"] = self.spaces
        return record


def field_value(record: dict[str, Any], name: str) -> Any:
    """``kendall_ci.0`` → ``record["kendall_ci"][0]``."""
    value: Any = record
    for part in name.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def find_record(records: Sequence[dict[str, Any]], select: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in records if all(r.get(k) == v for k, v in select.items())), None)


def cite(records: Sequence[dict[str, Any]], file: str, select: dict[str, Any], name: str, digits: int,
         signed: bool = False) -> Cited | None:
    """The field ``name`` of the record matching ``select``; None when absent or not finite."""
    record = find_record(records, select)
    if record is None:
        return None
    try:
        value = field_value(record, name)
    except (KeyError, IndexError, TypeError):
        return None
    if value is None or not math.isfinite(float(value)):
        return None
    return Cited(float(value), digits, file, select, name, signed)


def cite_interval(records: Sequence[dict[str, Any]], file: str, select: dict[str, Any], name: str,
                  digits: int = 2, signed: bool = True) -> list[str | Cited | None]:
    """``value [low, high]`` of ``name`` and ``name_ci``, each number cited."""
    return [cite(records, file, select, name, digits, signed), " [",
            cite(records, file, select, f"{name}_ci.0", digits, signed), ", ",
            cite(records, file, select, f"{name}_ci.1", digits, signed), "]"]
