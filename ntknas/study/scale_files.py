"""Scales of one's own: ``ntknas study --scale PATH.toml``.

A scale file starts from a built-in scale and overrides some of its fields::

    base = "cpu"          # smoke, cpu or study
    name = "gpu"          # optional: the scale's name (default: the file's stem)
    init_archs = 1000
    track_bands = [["low", 0.1, 0.3], ["high", 0.95, 1.0]]
    network_options = { channels = 16 }

Every override becomes a line of the scale's deviations ("scale file gpu.toml: init_archs = 1000
(cpu: 300)"), so the results page shows how the run departs from the named scale. An unknown
field, a value of the wrong type or out of range, or settings that contradict each other are
refused in one line naming the field and the file.
"""

from __future__ import annotations

import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from ntknas.errors import DataError, UnknownNameError
from ntknas.study.scales import SCALES, ScaleValueError, StudyScale

FIXED = frozenset({"deviations"})
"""Fields a file cannot set: the deviations are the base's plus one line per override."""

INTEGER_LISTS = frozenset({"train_epochs"})
OPTION_TABLES = frozenset({"network_options", "nb101_network_options"})
TEXTS = frozenset({"name", "title", "dataset", "search_pool", "lga_init_kernel", "estimate"})
OPTIONAL_INTEGERS = {"steps_per_stage": "all", "threads": "default", "image_size": "none"}
"""Integer fields that may be unset; TOML has no null, so the file writes this word instead."""
DOCS = "docs/commands/study.md#scale-files"


def _fields() -> dict[str, Any]:
    return {item.name: item for item in fields(StudyScale) if item.name not in FIXED}


def load_scale_file(path: str | Path) -> StudyScale:
    """The scale a TOML scale file describes (see the module's docstring)."""
    where = Path(path)
    if not where.is_file():
        raise DataError(f"scale file {where} does not exist: check the path ({DOCS} shows an example)")
    try:
        data = tomllib.loads(where.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"scale file {where} is not valid TOML ({reason}): see {DOCS}") from None
    base_name = data.pop("base", None)
    if base_name not in SCALES:
        raise DataError(f"scale file {where}: base = {base_name!r}: name the scale it starts from, one of "
                        f"{', '.join(SCALES)} (e.g. base = \"cpu\")")
    base = SCALES[base_name]
    known = _fields()
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in known:
            settable = ", ".join(name for name in known if name != "name")
            raise UnknownNameError(f"scale file {where}: unknown field {key!r}: use base and any of {settable}")
        values[key] = _converted(key, raw, where)
    values.setdefault("name", where.stem)
    values.setdefault("title", f"{values['name']}: the {base.name} scale with the overrides of {where.name}")
    values.setdefault("estimate", f"not measured: the {base.name} scale's was: {base.estimate}")
    lines = tuple(
        f"scale file {where.name}: {key} = {_written(key, value)} ({base.name}: {_written(key, getattr(base, key))})"
        for key, value in values.items()
        if key not in ("name", "title", "estimate") and value != getattr(base, key)
    )
    try:
        return replace(base, deviations=base.deviations + lines, **values)
    except ScaleValueError as error:
        raise DataError(f"scale file {where}: {error.problem}") from None


def _converted(key: str, raw: Any, where: Path) -> Any:
    """The field's value from its TOML value, or a one-line refusal naming the field and file."""
    expected: str
    if key in TEXTS:
        if isinstance(raw, str) and raw.strip():
            return raw
        expected = "a non-empty string"
    elif key in INTEGER_LISTS:
        if isinstance(raw, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
            return tuple(raw)
        expected = "a list of integers, e.g. [0, 1, 3]"
    elif key in OPTION_TABLES:
        if isinstance(raw, dict) and all(isinstance(v, (int, float, str, bool)) for v in raw.values()):
            return tuple(sorted(raw.items()))
        expected = "a table of options, e.g. { channels = 16 }"
    elif key == "track_bands":
        if isinstance(raw, list) and all(isinstance(band, list) for band in raw):
            return tuple(tuple(band) for band in raw)  # shapes and ranges are the scale's to check
        expected = 'a list of [name, low, high], e.g. [["low", 0.1, 0.3], ["high", 0.95, 1.0]]'
    elif key in OPTIONAL_INTEGERS:
        if raw == OPTIONAL_INTEGERS[key]:
            return None
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        expected = f"an integer or \"{OPTIONAL_INTEGERS[key]}\""
    else:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        expected = "an integer"
    raise DataError(f"scale file {where}: {key} = {_toml(raw)}: expected {expected} ({DOCS})")


def _written(key: str, value: Any) -> str:
    """A field's value as a scale file writes it (option tables as tables)."""
    return _toml(dict(value) if key in OPTION_TABLES else value)


def _toml(value: Any) -> str:
    """A value as a scale file writes it (for the deviations and the refusals)."""
    if value is None:
        return "unset"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


__all__ = ["load_scale_file"]
