"""Benchmark ground truth: the trained accuracy of each architecture of a search space.

:func:`load_benchmark` reads one of

* a CSV with an ``index`` and/or ``arch_str`` column (NAS-Bench-201) or a ``hash`` column
  (NAS-Bench-101) and one numeric column per target, e.g. the compact NB201 export
  (``index, arch_str, cifar10_valid_valid, cifar10_valid_test, cifar10_test, cifar100_test,
  imagenet16_120_test, params_mb``) written by
  :func:`ntknas.groundtruth.official.export_benchmark_csv`;
* the compact NAS-Bench-101 table ``.npz`` (``hash``, ``adjacency`` [N,7,7], ``ops`` [N,7]
  int codes, ``num_vertices`` and accuracy columns);
* an official NAS-Bench-201 ``.pth`` or NATS-Bench tss file/folder, through
  :mod:`ntknas.groundtruth.official` (slow for the multi-GB files: export a CSV once).

Units: NAS-Bench-201 accuracies are percent, exposed as stored. NAS-Bench-101 accuracy columns
(a name containing ``acc``) whose values all lie in [0, 1] are fractions and are exposed
multiplied by 100, so every accuracy a :class:`Benchmark` returns is in percent; the scaled
columns are listed in :attr:`Benchmark.fraction_columns`. Other numeric columns (``params_mb``,
``flops``) are targets too (useful baselines) and are never scaled.

Keys: an NB201 architecture is found by its official index (``int`` or a digit string) or by
its arch string (or an object with ``to_string()``); an NB101 one by its 32-hex module hash
(or an object with a ``hash`` string attribute, e.g. ``NB101Spec``).
"""

from __future__ import annotations

import copy
import csv
import math
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ntknas.errors import DataError, InvalidArchError, UnknownNameError

NB201 = "nb201"
NB101 = "nb101"
SPACES = (NB201, NB101)

#: Default target per space, first present wins.
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    NB201: ("cifar10_valid_test",),
    NB101: ("test_acc_seed0",),
}

#: Columns that identify or describe an architecture and are never targets.
ID_COLUMNS = frozenset({"index", "arch_str", "op_codes", "hash", "adjacency", "ops", "num_vertices"})

#: Op names of the compact NB101 table's integer codes (-1 pads cells with < 7 vertices).
NB101_OP_CODES: dict[int, str] = {
    0: "input",
    1: "conv1x1-bn-relu",
    2: "conv3x3-bn-relu",
    3: "maxpool3x3",
    4: "output",
}
NB101_PADDING = -1

_WHERE = {
    NB201: (
        "get NAS-Bench-201-v1_0-e61699.pth (github.com/D-X-Y/NAS-Bench-201) or the "
        "NATS-tss-v1_0-3ffb9-simple folder (github.com/D-X-Y/NATS-Bench), or a CSV exported "
        "from them with ntknas.groundtruth.official.export_benchmark_csv"
    ),
    NB101: (
        "get the NAS-Bench-101 results (nasbench_only108.tfrecord, github.com/google-research/"
        "nasbench) as a table of hash, adjacency, ops and accuracy (.npz or .csv)"
    ),
}
_SPACE_NAMES = {NB201: "NAS-Bench-201", NB101: "NAS-Bench-101"}
_HASH = re.compile(r"^[0-9a-f]{32}$")
_DIGITS = re.compile(r"^\d+$")
_HEX_RUN = re.compile(rb"[0-9a-f]*")


# --------------------------------------------------------------------------------------------
# NB201 arch strings
# --------------------------------------------------------------------------------------------


def canonical_arch_string(text: str) -> str:
    """``text`` without whitespace and with each node's edges ordered by source node.

    Only normalises spelling so that equivalent strings find the same table row; it does not
    validate ops (:func:`ntknas.spaces.nb201.parse_arch` does).
    """
    compact = "".join(text.split())
    nodes = []
    for node in compact.split("+"):
        edges = [e for e in node.split("|") if e]
        edges.sort(key=_edge_source)
        nodes.append("|" + "|".join(edges) + "|")
    return "+".join(nodes)


def _edge_source(edge: str) -> tuple[int, str]:
    source = edge.rsplit("~", 1)[-1]
    return (int(source) if source.isdigit() else -1, edge)


# --------------------------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Benchmark:
    """Accuracy table of one search space, with one selected target column.

    Build it with :func:`load_benchmark`. ``row_keys`` holds the official index (NB201, int)
    or the module hash (NB101, str) of each row; ``columns`` maps every available target to a
    float array aligned with the rows (NaN = no value). Accuracies are in percent.
    """

    space: str
    target: str
    source: str
    row_keys: np.ndarray = field(repr=False)
    columns: dict[str, np.ndarray] = field(repr=False)
    arch_strings: list[str] | None = field(default=None, repr=False)
    adjacency: np.ndarray | None = field(default=None, repr=False)
    op_codes: np.ndarray | None = field(default=None, repr=False)
    num_vertices: np.ndarray | None = field(default=None, repr=False)
    fraction_columns: tuple[str, ...] = ()
    op_legend: dict[int, str] = field(default_factory=lambda: dict(NB101_OP_CODES), repr=False)
    _index_rows: dict[int, int] = field(init=False, repr=False, default_factory=dict)
    _string_rows: dict[str, int] = field(init=False, repr=False, default_factory=dict)
    _hash_order: np.ndarray | None = field(init=False, repr=False, default=None)
    _sorted_hashes: np.ndarray | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.space = _check_space(self.space)
        self.target = self._check_target(self.target)
        n = len(self.row_keys)
        for name, values in self.columns.items():
            if len(values) != n:
                raise DataError(f"{self.source}: column {name!r} has {len(values)} values for {n} rows")
        if self.space == NB201:
            self._index_rows = {int(k): row for row, k in enumerate(self.row_keys.tolist())}
            if self.arch_strings is not None:
                self._string_rows = {s: row for row, s in enumerate(self.arch_strings)}
        else:
            keys = self.row_keys
            # The shared table is sorted already; sort only when it is not.
            if n > 1 and not bool(np.all(keys[1:] > keys[:-1])):
                self._hash_order = np.argsort(keys, kind="stable")
                keys = keys[self._hash_order]
                dup = np.flatnonzero(keys[1:] == keys[:-1])
                if dup.size:
                    raise DataError(
                        f"{self.source} lists hash {keys[dup[0]]} twice: keep one row per architecture"
                    )
            self._sorted_hashes = keys

    # ---------------------------------------------------------------- targets

    @property
    def targets(self) -> tuple[str, ...]:
        """The available target columns (any of them can be selected with :meth:`with_target`)."""
        return tuple(self.columns)

    def _check_target(self, target: str) -> str:
        if target not in self.columns:
            raise UnknownNameError(
                f"unknown target column {target!r} in {self.source}: available targets are "
                + ", ".join(self.columns)
            )
        return target

    def with_target(self, target: str) -> Benchmark:
        """The same table with another target column selected (no reload)."""
        other = copy.copy(self)
        other.target = self._check_target(target)
        return other

    # ---------------------------------------------------------------- lookup

    def __len__(self) -> int:
        return len(self.row_keys)

    def keys(self, *, finite_only: bool = False) -> list[Any]:
        """Architecture keys in table order: NB201 indexes (int) or NB101 hashes (str).

        With ``finite_only`` only those with a value for the selected target.
        """
        keys = self.row_keys
        if finite_only:
            keys = keys[np.isfinite(self.columns[self.target])]
        return [int(k) for k in keys.tolist()] if self.space == NB201 else keys.tolist()

    def __contains__(self, arch_key: object) -> bool:
        """Whether the architecture is in the table *and* has a value for the selected target."""
        try:
            row = self._row(arch_key)
        except (UnknownNameError, InvalidArchError):
            return False
        return bool(np.isfinite(self.columns[self.target][row]))

    def accuracy(self, arch_key: Any) -> float:
        """The selected target's value for one architecture (percent for accuracies).

        Raises:
            UnknownNameError: the architecture is not in the table (a ``KeyError``).
            InvalidArchError: the key is a malformed NB201 arch string.
            DataError: the architecture is in the table but has no value for the target.
        """
        row = self._row(arch_key)
        value = float(self.columns[self.target][row])
        if not math.isfinite(value):
            raise DataError(
                f"{self.source} has no {self.target!r} value for architecture "
                f"{self.row_keys[row]!s}: choose another target (available: {', '.join(self.targets)})"
            )
        return value

    def accuracies(self, arch_keys: Iterable[Any]) -> np.ndarray:
        """:meth:`accuracy` of several architectures, as a float array."""
        return np.array([self.accuracy(k) for k in arch_keys], dtype=np.float64)

    def _missing(self, arch_key: object) -> UnknownNameError:
        if self.space == NB201:
            hint = "use an official index or an arch string such as " + (
                repr(self.arch_strings[0]) if self.arch_strings else "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'"
            )
        else:
            hint = "use the 32-hex-digit module hash of a pruned NAS-Bench-101 cell"
        return UnknownNameError(
            f"architecture {arch_key!r} is not in the {_SPACE_NAMES[self.space]} benchmark "
            f"{self.source} ({len(self)} architectures): {hint}"
        )

    def _row(self, arch_key: Any) -> int:
        if self.space == NB201:
            return self._nb201_row(arch_key)
        return self._nb101_row(arch_key)

    def _nb201_row(self, arch_key: Any) -> int:
        if isinstance(arch_key, (bool, np.bool_)):
            raise self._missing(arch_key)
        if isinstance(arch_key, (int, np.integer)):
            row = self._index_rows.get(int(arch_key))
            if row is None:
                raise self._missing(arch_key)
            return row
        if hasattr(arch_key, "to_string"):
            arch_key = arch_key.to_string()
        if not isinstance(arch_key, str):
            raise self._missing(arch_key)
        text = arch_key.strip()
        if _DIGITS.match(text):
            return self._nb201_row(int(text))
        if self.arch_strings is not None:
            row = self._string_rows.get(text)
            if row is None:
                row = self._string_rows.get(canonical_arch_string(text))
            if row is not None:
                return row
        # Not spelled as in the table: let the space module validate and canonicalise it.
        index = _nb201_index_of(text)
        if index is None or index not in self._index_rows:
            raise self._missing(arch_key)
        return self._index_rows[index]

    def _nb101_row(self, arch_key: Any) -> int:
        key = arch_key
        if isinstance(key, bytes):
            key = key.decode("ascii", "replace")
        elif not isinstance(key, str) and isinstance(getattr(key, "hash", None), str):
            key = key.hash
        if not isinstance(key, str) or not _HASH.match(key.strip().lower()):
            raise self._missing(arch_key)
        key = key.strip().lower()
        sorted_keys = self._sorted_hashes
        assert sorted_keys is not None
        pos = int(np.searchsorted(sorted_keys, key))
        if pos >= len(sorted_keys) or sorted_keys[pos] != key:
            raise self._missing(arch_key)
        return pos if self._hash_order is None else int(self._hash_order[pos])

    # ---------------------------------------------------------------- architectures

    def index_of(self, arch: Any) -> int:
        """Official NB201 index of an architecture given by index, arch string or arch object."""
        self._require_space(NB201, "index_of")
        return int(self.row_keys[self._nb201_row(arch)])

    def arch_string(self, index: int) -> str:
        """The NB201 arch string of an official index."""
        self._require_space(NB201, "arch_string")
        row = self._nb201_row(int(index))
        if self.arch_strings is not None:
            return self.arch_strings[row]
        from ntknas.spaces import nb201  # lazily: only CSVs without arch_str need it

        return str(nb201.arch_from_index(int(index)).to_string())

    def nb101_spec(self, arch_hash: Any) -> tuple[np.ndarray, list[str]]:
        """Adjacency (V×V uint8) and op names of an NB101 cell, as stored in the table.

        The npz stores the pruned cell zero-padded to 7 vertices; padding is trimmed using
        ``num_vertices`` (or the ``-1`` op codes when that column is absent).
        """
        self._require_space(NB101, "nb101_spec")
        if self.adjacency is None or self.op_codes is None:
            raise DataError(
                f"{self.source} has no adjacency/ops columns, so cells cannot be rebuilt from it: "
                "load the NB101 .npz table instead"
            )
        row = self._nb101_row(arch_hash)
        codes = [int(c) for c in self.op_codes[row].tolist()]
        if self.num_vertices is not None:
            n = int(self.num_vertices[row])
        else:
            n = len(codes)
            while n and codes[n - 1] == NB101_PADDING:
                n -= 1
        try:
            ops = [self.op_legend[c] for c in codes[:n]]
        except KeyError as exc:
            raise DataError(
                f"{self.source}: row of {self.row_keys[row]} has unknown op code {exc.args[0]} "
                f"among its {n} vertices; codes are {self.op_legend}"
            ) from None
        if any(c != NB101_PADDING for c in codes[n:]):
            raise DataError(f"{self.source}: row of {self.row_keys[row]} has ops past num_vertices={n}")
        full = np.asarray(self.adjacency[row])
        if full[n:, :].any() or full[:, n:].any():
            raise DataError(
                f"{self.source}: row of {self.row_keys[row]} has edges at padded vertices (n={n})"
            )
        return np.array(full[:n, :n], dtype=np.uint8), ops

    def _require_space(self, space: str, what: str) -> None:
        if self.space != space:
            raise DataError(
                f"{what} is for {_SPACE_NAMES[space]} benchmarks, but {self.source} is a "
                f"{_SPACE_NAMES[self.space]} one"
            )


def _nb201_index_of(text: str) -> int | None:
    """Official index of an arch string via the NB201 space module (None if it is unavailable)."""
    try:
        from ntknas.spaces import nb201

        parse_arch, index_of = nb201.parse_arch, nb201.index_of
    except (ImportError, AttributeError):
        return None
    return int(index_of(parse_arch(text)))  # InvalidArchError for malformed strings


def _check_space(space: str) -> str:
    if space not in SPACES:
        raise UnknownNameError(f"unknown search space {space!r}: valid spaces are {', '.join(SPACES)}")
    return space


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_benchmark(path: str | os.PathLike[str], space: str, target: str | None = None) -> Benchmark:
    """Load a benchmark table and select a target column.

    Args:
        path: a ``.csv``, an NB101 ``.npz``, or an official NB201 ``.pth`` / NATS-Bench tss
            ``.pickle.pbz2`` / NATS-Bench folder.
        space: ``"nb201"`` or ``"nb101"``; must match the file.
        target: the column to use; default ``cifar10_valid_test`` (NB201) or
            ``test_acc_seed0`` (NB101) when present, else the only target column.

    Raises:
        DataError: missing, unreadable or corrupt file, or a file of the other space.
        UnknownNameError: unknown ``space`` or ``target`` (the message lists the valid ones).
    """
    space = _check_space(space)
    p = Path(path)
    if not p.exists():
        raise DataError(f"benchmark file {p} not found: {_WHERE[space]}")
    from ntknas.groundtruth import official

    if p.suffix.lower() == ".csv":
        bench = _load_csv(p, space, target)
    elif p.suffix.lower() == ".npz":
        bench = _load_npz(p, space, target)
    elif official.is_official_path(p):
        if space != NB201:
            raise DataError(
                f"{p} is an official NAS-Bench-201/NATS-Bench file but space {space!r} was asked: "
                "use space='nb201'"
            )
        table = official.load_official(p)
        bench = _build(
            space,
            str(p),
            target,
            row_keys=np.arange(len(table), dtype=np.int64),
            columns={k: v for k, v in table.columns.items() if np.isfinite(v).any()},
            arch_strings=table.arch_strings,
        )
    else:
        raise DataError(
            f"unsupported benchmark file type {p.name!r}: use a .csv, an NB101 .npz, an official "
            ".pth / .pickle.pbz2 or a NATS-Bench folder"
        )
    return bench


def _default_target(space: str, columns: dict[str, np.ndarray], source: str) -> str:
    for name in DEFAULT_TARGETS[space]:
        if name in columns:
            return name
    if len(columns) == 1:
        return next(iter(columns))
    raise UnknownNameError(
        f"{source} has no default target column ({', '.join(DEFAULT_TARGETS[space])}): pass "
        f"target= one of {', '.join(columns)}"
    )


def _build(
    space: str, source: str, target: str | None, *, columns: dict[str, np.ndarray], **kwargs: Any
) -> Benchmark:
    if not columns:
        raise DataError(f"{source} has no numeric target column: add one column of accuracies per target")
    fractions: tuple[str, ...] = ()
    if space == NB101:
        columns, fractions = _fractions_to_percent(columns)
    return Benchmark(
        space=space,
        target=_default_target(space, columns, source) if target is None else target,
        source=source,
        columns=columns,
        fraction_columns=fractions,
        **kwargs,
    )


def _fractions_to_percent(columns: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Scale NB101 accuracy columns stored as fractions (all values in [0, 1]) to percent."""
    out: dict[str, np.ndarray] = {}
    scaled = []
    for name, values in columns.items():
        finite = values[np.isfinite(values)]
        if "acc" in name.lower() and finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
            out[name] = values * 100.0
            scaled.append(name)
        else:
            out[name] = values
    return out, tuple(scaled)


def _wrong_space(source: str, found: str, asked: str, evidence: str) -> DataError:
    return DataError(
        f"{source} is a {_SPACE_NAMES[found]} table ({evidence}) but space {asked!r} was asked: "
        f"use space={found!r}"
    )


# ---------------------------------------------------------------- CSV


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path} is empty: {_csv_fix(path)}")
            header = [h.strip() for h in header]
            if any(not h for h in header) or len(set(header)) != len(header):
                raise DataError(
                    f"{path} has an empty or repeated column name in its header: {_csv_fix(path)}"
                )
            rows = []
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"line {reader.line_num} of {path} has {len(row)} fields but the header has "
                        f"{len(header)}: the file is corrupt; {_csv_fix(path)}"
                    )
                rows.append(row)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path} is not a readable CSV ({type(exc).__name__}): {_csv_fix(path)}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not rows:
        raise DataError(f"{path} has a header but no rows: {_csv_fix(path)}")
    return header, rows


def _csv_fix(path: Path) -> str:
    return f"re-create {path.name} (export_benchmark_csv writes the expected format)"


def _numeric(cells: Sequence[str]) -> np.ndarray | None:
    """Floats of a column (empty cell → NaN), or None if any cell is not a number."""
    out = np.empty(len(cells), dtype=np.float64)
    for i, cell in enumerate(cells):
        cell = cell.strip()
        if not cell:
            out[i] = np.nan
            continue
        try:
            out[i] = float(cell)
        except ValueError:
            return None
    return out


def _load_csv(path: Path, space: str, target: str | None) -> Benchmark:
    header, rows = _read_csv(path)
    cells = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    source = str(path)
    has_nb201 = "arch_str" in cells or "index" in cells
    if space == NB101 and "hash" not in cells:
        if has_nb201:
            raise _wrong_space(source, NB201, space, "it has an arch_str/index column and no hash column")
        raise DataError(f"{source} has no 'hash' column: an NB101 CSV needs hash plus target columns")
    if space == NB201 and not has_nb201:
        if "hash" in cells:
            raise _wrong_space(source, NB101, space, "it has a hash column and no arch_str/index column")
        raise DataError(f"{source} has neither an 'index' nor an 'arch_str' column: an NB201 CSV needs one")
    columns = {}
    for name in header:
        if name in ID_COLUMNS:
            continue
        values = _numeric(cells[name])
        if values is not None:
            columns[name] = values
    if space == NB101:
        hashes = [h.strip().lower() for h in cells["hash"]]
        bad = next((h for h in hashes if not _HASH.match(h)), None)
        if bad is not None:
            raise DataError(f"{source}: {bad!r} in column hash is not a 32-hex-digit NB101 module hash")
        return _build(space, source, target, row_keys=np.array(hashes), columns=columns)
    arch_strings = [s.strip() for s in cells["arch_str"]] if "arch_str" in cells else None
    if arch_strings is not None and len(set(arch_strings)) != len(arch_strings):
        raise DataError(f"{source} lists some arch_str twice: keep one row per architecture")
    if "index" in cells:
        indexes = _int_column(cells["index"], source)
    else:
        assert arch_strings is not None
        indexes = _indexes_from_strings(arch_strings, source)
    return _build(space, source, target, row_keys=indexes, columns=columns, arch_strings=arch_strings)


def _int_column(cells: Sequence[str], source: str) -> np.ndarray:
    out = []
    for cell in cells:
        text = cell.strip()
        if not _DIGITS.match(text):
            raise DataError(f"{source}: {cell!r} in column index is not a non-negative integer")
        out.append(int(text))
    keys = np.array(out, dtype=np.int64)
    if len(np.unique(keys)) != len(keys):
        raise DataError(f"{source} lists some index twice: keep one row per architecture")
    return keys


def _indexes_from_strings(arch_strings: Sequence[str], source: str) -> np.ndarray:
    try:
        from ntknas.spaces import nb201
    except ImportError as exc:
        raise DataError(
            f"{source} has no index column and the NB201 space module cannot be imported ({exc}): "
            "add an index column"
        ) from None
    try:
        return np.array([nb201.index_of(nb201.parse_arch(s)) for s in arch_strings], dtype=np.int64)
    except InvalidArchError as exc:
        raise DataError(f"{source}: {exc}") from None


# ---------------------------------------------------------------- NPZ


def _hash_array(raw: np.ndarray) -> np.ndarray | None:
    """The hashes as a str array, or None unless every entry is 32 lower-case hex digits.

    Checked on the raw bytes in one regex pass: the table has 423k rows.
    """
    if raw.dtype.kind == "U":
        try:
            raw = raw.astype("S")
        except UnicodeEncodeError:
            return None
    if raw.dtype.kind != "S" or raw.dtype.itemsize != 32 or raw.size == 0:
        return None  # shorter entries would be NUL-padded and fail the regex anyway
    if _HEX_RUN.fullmatch(np.ascontiguousarray(raw).tobytes()) is None:
        return None
    return raw.astype("U32")


def _load_npz(path: Path, space: str, target: str | None) -> Benchmark:
    source = str(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"cannot read {source} as an .npz table ({type(exc).__name__}): the file is corrupt, "
            f"{_WHERE[space]}"
        ) from None
    if "hash" not in arrays:
        if "arch_str" in arrays or "index" in arrays:
            raise _wrong_space(source, NB201, space, "it has arch_str/index arrays and no hash array")
        raise DataError(
            f"{source} has no 'hash' array: the NB101 table needs hash, adjacency, ops and "
            "accuracy arrays"
        )
    if space != NB101:
        raise _wrong_space(source, NB101, space, "it is an .npz with a hash array")
    raw = arrays["hash"]
    if raw.ndim != 1:
        raise DataError(f"{source}: 'hash' must be one-dimensional, got shape {raw.shape}")
    n = len(raw)
    keys = _hash_array(raw)
    if keys is None:
        raise DataError(f"{source}: 'hash' does not hold 32-lower-case-hex-digit NB101 module hashes")
    adjacency = arrays.get("adjacency")
    op_codes = arrays.get("ops")
    num_vertices = arrays.get("num_vertices")
    if (adjacency is None) != (op_codes is None):
        raise DataError(f"{source} has only one of 'adjacency' and 'ops': store both or neither")
    if adjacency is not None and op_codes is not None:
        if adjacency.ndim != 3 or adjacency.shape[0] != n or adjacency.shape[1] != adjacency.shape[2]:
            raise DataError(f"{source}: 'adjacency' has shape {adjacency.shape}, expected ({n}, V, V)")
        if op_codes.shape != adjacency.shape[:2]:
            raise DataError(f"{source}: 'ops' has shape {op_codes.shape}, expected {adjacency.shape[:2]}")
    if num_vertices is not None and num_vertices.shape != (n,):
        raise DataError(f"{source}: 'num_vertices' has shape {num_vertices.shape}, expected ({n},)")
    columns = {
        name: values.astype(np.float64)
        for name, values in arrays.items()
        if name not in ID_COLUMNS and values.shape == (n,) and values.dtype.kind in "fiub"
    }
    legend = dict(NB101_OP_CODES)
    if "op_code_legend" in arrays:  # the table's own legend wins over the documented default
        legend = {i: str(name) for i, name in enumerate(arrays["op_code_legend"].tolist())}
    return _build(
        space,
        source,
        target,
        row_keys=keys,
        columns=columns,
        adjacency=adjacency,
        op_codes=op_codes,
        num_vertices=num_vertices,
        op_legend=legend,
    )


__all__ = [
    "DEFAULT_TARGETS",
    "NB101",
    "NB101_OP_CODES",
    "NB201",
    "SPACES",
    "Benchmark",
    "canonical_arch_string",
    "load_benchmark",
]
