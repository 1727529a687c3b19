"""``--archs-file``: measure the architectures a file lists, in the file's order.

Two forms are read:

* a UTF-8 text file (a byte-order mark and CRLF line ends are fine), one architecture per
  line (blank lines and ``#`` comments skipped): for
  NAS-Bench-201 an official index, an arch string or 6 op-code digits; for NAS-Bench-101 a
  32-hex-digit module hash;
* NAS-Bench-101 only: the study's ``all_graphs.json`` (what the benchmark's
  ``generate_graphs.py`` writes), a JSON object mapping each module hash to ``[adjacency,
  labels]`` with labels -1 for the input, -2 for the output and 0, 1, 2 for conv3x3-bn-relu,
  conv1x1-bn-relu, maxpool3x3 (op names are accepted too). Networks are then built from the
  file's own adjacency and ops, as the study built them; an isomorphic drawing of the same cell
  (same hash) may order its vertices differently, which changes how channels are split.

``--archs START:STOP`` then slices the file's order and ``--sample`` draws from it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ntknas.errors import DataError, InvalidArchError, UnknownNameError, marked_text, option
from ntknas.spaces import get_space

_HASH = re.compile(r"^[0-9a-f]{32}$")
_GRAPH_LABELS = {-1: "input", -2: "output", 0: "conv3x3-bn-relu", 1: "conv1x1-bn-relu", 2: "maxpool3x3"}
_LABEL_LEGEND = "-1 input, -2 output, 0 conv3x3-bn-relu, 1 conv1x1-bn-relu, 2 maxpool3x3"


@dataclass(frozen=True)
class ListedArch:
    """One architecture of the file: its benchmark key (NB201 index, NB101 hash) and, for the
    JSON form, the file's own ``[adjacency, labels]`` (decoded by :meth:`nb101_spec`)."""

    key: int | str
    graph: Any = None

    def nb101_spec(self, source: str) -> tuple[list[list[int]], list[str]] | None:
        """The listed (adjacency, op names), checked to hash to the key; None for a text line."""
        if self.graph is None:
            return None
        from ntknas.spaces.nb101 import NB101Spec

        adjacency, labels = self.graph
        ops = [_op_name(label, self.key, source) for label in labels]
        try:
            spec = NB101Spec.from_arrays(adjacency, ops)
        except InvalidArchError as error:
            raise DataError(f"{source}: the graph of {self.key} is not a valid NAS-Bench-101 cell: {error}") from None
        if spec.hash != self.key:
            raise DataError(
                f"{source}: the graph listed under {self.key} hashes to {spec.hash}: fix the file's key or graph"
            )
        return [list(row) for row in spec.adjacency], list(spec.ops)


def _op_name(label: Any, key: Any, source: str) -> str:
    if isinstance(label, str):
        return label
    if isinstance(label, int) and not isinstance(label, bool) and label in _GRAPH_LABELS:
        return _GRAPH_LABELS[label]
    raise DataError(f"{source}: op label {label!r} of {key} is unknown: labels are {_LABEL_LEGEND}")


def read_archs_file(path: str | os.PathLike[str], space: str) -> list[ListedArch]:
    """The architectures of ``path`` in file order (a repeated one counts once, where first listed).

    Raises:
        DataError: missing or unreadable file, or a JSON file that is not all_graphs.json's form.
        InvalidArchError: a line that names no architecture (the message gives the first one).
    """
    p = Path(path)
    try:
        # utf-8-sig: an editor on Windows starts the file with a byte-order mark (line ends,
        # CRLF included, are read universally).
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{option('archs_file')} {p} not found: give a file with one architecture per line") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {option('archs_file')} {p} ({type(error).__name__}): give a UTF-8 text file") from None
    if text.lstrip().startswith("{"):
        listed = _read_graphs_json(text, p, space)
    else:
        listed = _read_lines(text, p, space)
    if not listed:
        raise DataError(f"{option('archs_file')} {p} lists no architecture: write one per line")
    unique: dict[int | str, ListedArch] = {}
    for arch in listed:
        unique.setdefault(arch.key, arch)
    return list(unique.values())


def _read_graphs_json(text: str, path: Path, space: str) -> list[ListedArch]:
    if not get_space(space).lists_graphs:
        raise DataError(
            f"{option('archs_file')} {path} is JSON (the NAS-Bench-101 all_graphs.json form) but the space is "
            f"{space!r}: list one NB201 index or arch string per line instead"
        )
    try:
        graphs = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{option('archs_file')} {path} is not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(graphs, dict):
        raise DataError(f"{option('archs_file')} {path} must be a JSON object mapping hash -> [adjacency, labels]")
    listed = []
    for key, graph in graphs.items():
        if not _HASH.match(key):
            raise InvalidArchError(
                f"{option('archs_file')} {path}: key {key[:60]!r} is not a 32-hex-digit NAS-Bench-101 module hash"
            )
        if not isinstance(graph, list) or len(graph) != 2:
            raise DataError(f"{option('archs_file')} {path}: the value of {key} must be [adjacency, labels]")
        listed.append(ListedArch(key, (graph[0], graph[1])))
    return listed


def _read_lines(text: str, path: Path, space: str) -> list[ListedArch]:
    listed = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            key = _line_key(line, space)
        except InvalidArchError as error:
            raise InvalidArchError(f"{option('archs_file')} {path} line {number}: {marked_text(error)}") from None
        listed.append(ListedArch(key))
    return listed


def _line_key(line: str, space: str) -> int | str:
    """The benchmark key of a line: the space's own spelling first (NB201: 6 digits are op codes),
    else any key spelling its table accepts (NB201 index, NB101 hash)."""
    search_space = get_space(space)
    try:
        value: Any = search_space.parse(line)
    except InvalidArchError:
        value = line
    try:
        return search_space.table_key(value)  # type: ignore[return-value]
    except (InvalidArchError, UnknownNameError) as error:
        if _HASH.match(line.lower()) and "hash" not in search_space.table_key_columns:
            raise InvalidArchError(
                f"{line!r} looks like a NAS-Bench-101 module hash, not a {search_space.title} architecture: "
                f"use {option('space')} nb101 (with the NB101 benchmark) or list this space's architectures"
            ) from None
        raise InvalidArchError(marked_text(error)) from None


def first_unknown(listed: Sequence[ListedArch], known: np.ndarray) -> ListedArch | None:
    """The first listed architecture whose key is not among ``known`` (a benchmark's row keys)."""
    if not listed:
        return None
    present = np.isin(np.array([arch.key for arch in listed]), known)
    missing = np.flatnonzero(~present)
    return listed[int(missing[0])] if missing.size else None


def check_known(listed: Sequence[ListedArch], known: np.ndarray, path: str, source: str) -> None:
    """Refuse a file that names an architecture the benchmark lacks, naming the first one."""
    unknown = first_unknown(listed, known)
    if unknown is not None:
        raise UnknownNameError(
            f"{option('archs_file')} {path} lists {unknown.key!r}, which is not in the benchmark {source}: "
            "remove it or use a benchmark file that has it"
        )


__all__ = ["ListedArch", "check_known", "first_unknown", "read_archs_file"]
