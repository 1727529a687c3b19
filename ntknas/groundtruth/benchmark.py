"""Benchmark ground truth: the trained accuracy of each architecture of a search space.

:func:`load_benchmark` reads one of

* a CSV with an ``index`` and/or ``arch_str`` column (NAS-Bench-201) or a ``hash`` column
  (NAS-Bench-101) and one numeric column per target, e.g. the compact NB201 export
  (``index, arch_str, cifar10_valid_valid, cifar10_valid_test, cifar10_test, cifar100_test,
  imagenet16_120_test, params_mb``) written by ``ntknas export-benchmark``
  (:func:`ntknas.groundtruth.official.export_benchmark_csv`);
* the compact NAS-Bench-101 table ``.npz`` (``hash``, ``adjacency`` [N,7,7], ``ops`` [N,7]
  int codes, ``num_vertices`` and accuracy columns);
* the official NAS-Bench-101 ``nasbench_only108.tfrecord``, through
  :mod:`ntknas.groundtruth.nb101_tfrecord` (targets ``test_max`` — the study's, and the default —
  ``test_mean``, ``test_run0..2``, ``valid_max``, ``valid_mean``, ``valid_run0..2``,
  ``train_mean``, ``params``, ``train_seconds``; about a minute for the 500 MB file: export an
  .npz once with :func:`~ntknas.groundtruth.nb101_tfrecord.export_nb101_npz`);
* an official NAS-Bench-201 ``.pth`` or NATS-Bench tss file/folder, through
  :mod:`ntknas.groundtruth.official` (slow for the multi-GB files: export a CSV once).

Units: NAS-Bench-201 accuracies are percent, exposed as stored. NAS-Bench-101 accuracy columns
(a name containing ``acc``, or one of the official file's ``test_*`` / ``valid_*`` /
``train_mean`` targets) whose values all lie in [0, 1] are fractions and are exposed
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
import logging
import math
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ntknas.errors import DataError, InvalidArchError, UnknownNameError, option
from ntknas.spaces import SearchSpace, get_space
from ntknas.spaces.nb101 import NPZ_OP_CODES, NPZ_PADDING, decode_table_row, nb101_hash
from ntknas.spaces.nb201 import canonical_arch_string

log = logging.getLogger(__name__)

NB201 = "nb201"
NB101 = "nb101"
SPACES = (NB201, NB101)
"""The spaces with an official benchmark file format; any registered space reads a CSV."""

#: Columns that identify or describe an architecture and are never targets.
ID_COLUMNS = frozenset({"index", "arch_str", "arch", "op_codes", "hash", "adjacency", "ops", "num_vertices"})

#: Op names of the compact NB101 table's integer codes (-1 pads cells with < 7 vertices).
NB101_OP_CODES: dict[int, str] = dict(NPZ_OP_CODES)
NB101_PADDING = NPZ_PADDING

_HEX_RUN = re.compile(rb"[0-9a-f]*")
# The official NB101 file's accuracy targets (nb101_tfrecord.TARGET_COLUMNS without params/time).
_NB101_ACCURACY = re.compile(r"^(test|valid)_(max|mean|run\d+)$|^train_mean$")


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
    non_numeric: dict[str, tuple[int, str]] = field(default_factory=dict, repr=False)
    """Per column: how many cells were not numbers (read as missing) and the first of them."""
    op_legend: dict[int, str] = field(default_factory=lambda: dict(NB101_OP_CODES), repr=False)
    _index_rows: dict[Any, int] = field(init=False, repr=False, default_factory=dict)
    _string_rows: dict[str, int] = field(init=False, repr=False, default_factory=dict)
    _hash_order: np.ndarray | None = field(init=False, repr=False, default=None)
    _sorted_hashes: np.ndarray | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.space = get_space(self.space).name
        self.target = self._check_target(self.target)
        n = len(self.row_keys)
        for name, values in self.columns.items():
            if len(values) != n:
                raise DataError(f"{self.source}: column {name!r} has {len(values)} values for {n} rows")
        keys = self.row_keys
        if keys.dtype.kind == "U":
            # Hash-keyed tables are large (423k NB101 rows): look up in a sorted array, not a dict.
            if n > 1 and not bool(np.all(keys[1:] > keys[:-1])):
                self._hash_order = np.argsort(keys, kind="stable")
                keys = keys[self._hash_order]
                dup = np.flatnonzero(keys[1:] == keys[:-1])
                if dup.size:
                    raise DataError(
                        f"{self.source} lists {keys[dup[0]]} twice: keep one row per architecture"
                    )
            self._sorted_hashes = keys
        else:
            self._index_rows = {k: row for row, k in enumerate(keys.tolist())}
            if self.arch_strings is not None:
                self._string_rows = {text: row for row, text in enumerate(self.arch_strings)}
            if len(self._index_rows) != n:
                raise DataError(f"{self.source} lists some architecture twice: keep one row per architecture")

    @property
    def search_space(self) -> SearchSpace:
        return get_space(self.space)

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
        if other.target != self.target:
            other._warn_non_numeric()
        return other

    def _warn_non_numeric(self) -> None:
        if self.target in self.non_numeric:
            count, example = self.non_numeric[self.target]
            log.warning(
                "%s: %d cell%s of target column %r %s not a number (e.g. %r): read as missing values",
                self.source, count, "s" * (count != 1), self.target, "are" if count != 1 else "is", example,
            )

    def check_rankable(self) -> None:
        """Refuse a target that cannot rank architectures: fewer than 3 distinct finite values."""
        values = self.columns[self.target]
        distinct = np.unique(values[np.isfinite(values)])
        if distinct.size < 3:
            shown = ", ".join(f"{v:g}" for v in distinct) or "none"
            raise DataError(
                f"target column {self.target!r} of {self.source} has {distinct.size} distinct finite "
                f"value{'s' * (distinct.size != 1)} ({shown}): a rank correlation needs at least 3; "
                f"choose another {option('target')} (available: {', '.join(self.columns)})"
            )

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
        return list(keys.tolist())

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
        space = self.search_space
        return UnknownNameError(
            f"architecture {arch_key!r} is not in the {space.title} benchmark "
            f"{self.source} ({len(self)} architectures): use {space.arch_help}"
        )

    def _row(self, arch_key: Any) -> int:
        """The table row of an architecture, in any spelling its space accepts (the space
        normalizes it to the table's key)."""
        if self._string_rows and isinstance(arch_key, str):
            # The table's own text keys first: a table need not use the official index order.
            text = arch_key.strip()
            row = self._string_rows.get(text, self._string_rows.get(canonical_arch_string(text)))
            if row is not None:
                return row
        key = self.search_space.table_key(arch_key)
        if self._sorted_hashes is not None:
            sorted_keys = self._sorted_hashes
            pos = int(np.searchsorted(sorted_keys, str(key)))
            if pos >= len(sorted_keys) or sorted_keys[pos] != key:
                raise self._missing(arch_key)
            return pos if self._hash_order is None else int(self._hash_order[pos])
        row = self._index_rows.get(key)
        if row is None:
            raise self._missing(arch_key)
        return row

    # ---------------------------------------------------------------- architectures

    def arch(self, arch_key: Any) -> Any:
        """The architecture object of a table row (NB201Arch, NB101Spec, ...), by any key spelling."""
        return self.search_space.arch_from_table(self, self._row(arch_key))

    def index_of(self, arch: Any) -> int:
        """Official NB201 index of an architecture given by index, arch string or arch object."""
        self._require_space(NB201, "index_of")
        return int(self.row_keys[self._row(arch)])

    def arch_string(self, index: int) -> str:
        """The NB201 arch string of an official index."""
        self._require_space(NB201, "arch_string")
        row = self._row(int(index))
        if self.arch_strings is not None:
            return self.arch_strings[row]
        return str(self.search_space.key(self.search_space.arch_at(int(index))))

    def nb101_spec(self, arch_hash: Any) -> tuple[np.ndarray, list[str]]:
        """Adjacency (V×V uint8) and op names of an NB101 cell, as stored in the table.

        The npz stores the pruned cell zero-padded to 7 vertices; padding is trimmed using
        ``num_vertices`` (or the ``-1`` op codes when that column is absent). A row whose cell
        does not hash to its key (a corrupt table) raises :class:`DataError` naming the row.
        """
        self._require_space(NB101, "nb101_spec")
        if self.adjacency is None or self.op_codes is None:
            raise DataError(
                f"{self.source} has no adjacency/ops columns, so cells cannot be rebuilt from it: "
                "load the NB101 .npz table instead"
            )
        row = self._row(arch_hash)
        vertices = None if self.num_vertices is None else int(self.num_vertices[row])
        key = str(self.row_keys[row])
        try:
            matrix, ops = decode_table_row(self.adjacency[row], self.op_codes[row], vertices, self.op_legend)
            found = nb101_hash(matrix, ops)
        except InvalidArchError as error:
            raise DataError(f"{self.source}: row of {key}: {error}") from None
        if found != key:
            # Checked here, when a cell is rebuilt, not on load: hashing all 423k rows takes minutes.
            raise DataError(
                f"{self.source}: row {row} is keyed {key} but its cell hashes to {found}: the table is "
                "corrupt; export it again with `ntknas export-benchmark nasbench_only108.tfrecord`"
            )
        return matrix, list(ops)

    def _require_space(self, space: str, what: str) -> None:
        if self.space != space:
            raise DataError(
                f"{what} is for {get_space(space).title} benchmarks, but {self.source} is a "
                f"{self.search_space.title} one"
            )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_benchmark(path: str | os.PathLike[str], space: str, target: str | None = None) -> Benchmark:
    """Load a benchmark table and select a target column.

    Args:
        path: a ``.csv``, an NB101 ``.npz``, the official NB101 ``.tfrecord``, or an official
            NB201 ``.pth`` / NATS-Bench tss ``.pickle.pbz2`` / NATS-Bench folder.
        space: ``"nb201"`` or ``"nb101"``; must match the file.
        target: the column to use; default ``cifar10_valid_test`` (NB201), or for NB101
            ``test_max`` (official file and tables exported from it) or ``test_acc_seed0``
            (the shared table), whichever is present; else the only target column.

    Raises:
        DataError: missing, unreadable or corrupt file, or a file of the other space.
        UnknownNameError: unknown ``space`` or ``target`` (the message lists the valid ones).
    """
    space = get_space(space).name
    p = Path(path)
    if not p.exists():
        raise DataError(f"benchmark file {p} not found: {get_space(space).table_source}")
    from ntknas.groundtruth import official

    if p.suffix.lower() == ".csv":
        bench = _load_csv(p, space, target)
    elif p.suffix.lower() == ".npz":
        bench = _load_npz(p, space, target)
    elif p.suffix.lower() == ".tfrecord":
        bench = _load_tfrecord(p, space, target)
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
            f"unsupported benchmark file type {p.name!r}: use a .csv, an NB101 .npz or .tfrecord, "
            "an official .pth / .pickle.pbz2 or a NATS-Bench folder"
        )
    return bench


def _default_target(space: str, columns: dict[str, np.ndarray], source: str) -> str:
    defaults = get_space(space).default_targets
    for name in defaults:
        if name in columns:
            return name
    if len(columns) == 1:
        return next(iter(columns))
    raise UnknownNameError(
        f"{source} has no default target column ({', '.join(defaults) or 'none set'}): choose one "
        f"with {option('target')} (target= in Python): {', '.join(columns)}"
    )


def _build(
    space: str, source: str, target: str | None, *, columns: dict[str, np.ndarray], **kwargs: Any
) -> Benchmark:
    bench = _make(space, source, target, columns=columns, **kwargs)
    bench._warn_non_numeric()
    return bench


def _make(
    space: str, source: str, target: str | None, *, columns: dict[str, np.ndarray], **kwargs: Any
) -> Benchmark:
    if not columns:
        raise DataError(f"{source} has no numeric target column: add one column of accuracies per target")
    fractions: tuple[str, ...] = ()
    if get_space(space).fraction_accuracies:
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
        accuracy = "acc" in name.lower() or _NB101_ACCURACY.match(name) is not None
        if accuracy and finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
            out[name] = values * 100.0
            scaled.append(name)
        else:
            out[name] = values
    return out, tuple(scaled)


def _wrong_space(source: str, found: str, asked: str, evidence: str) -> DataError:
    return DataError(
        f"{source} is a {get_space(found).title} table ({evidence}) but space {asked!r} was asked: "
        f"use space={found!r}"
    )


# ---------------------------------------------------------------- CSV


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        # utf-8-sig: a table saved by a spreadsheet on Windows starts with a byte-order mark.
        with open(path, newline="", encoding="utf-8-sig") as handle:
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
    return f"re-create {path.name} (`ntknas export-benchmark` writes the expected format)"


def _numeric(cells: Sequence[str]) -> tuple[np.ndarray, int, str] | None:
    """Floats of a column, the number of non-numeric cells and the first of them.

    An empty or non-numeric cell (``n/a``, ``-``) is a missing value (NaN). A column is numeric
    when most of its non-empty cells are numbers; otherwise (a text column) None.
    """
    out = np.empty(len(cells), dtype=np.float64)
    bad = 0
    example = ""
    filled = 0
    for i, cell in enumerate(cells):
        cell = cell.strip()
        if not cell:
            out[i] = np.nan
            continue
        filled += 1
        try:
            out[i] = float(cell)
        except ValueError:
            out[i] = np.nan
            bad += 1
            example = example or cell
    if filled and 2 * bad >= filled:
        return None
    return out, bad, example


def _load_csv(path: Path, space: str, target: str | None) -> Benchmark:
    header, rows = _read_csv(path)
    cells = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    source = str(path)
    search_space = get_space(space)
    if not any(column in cells for column in search_space.table_key_columns):
        wanted = "/".join(search_space.table_key_columns)
        for other in (get_space(name) for name in SPACES if name != search_space.name):
            present = [c for c in other.table_key_columns if c in cells]
            if present:
                raise _wrong_space(source, other.name, space, f"it has a {'/'.join(present)} column and no {wanted} column")
        raise DataError(f"{source} has no {wanted} column: a {search_space.title} CSV needs one beside its targets")
    columns = {}
    non_numeric = {}
    for name in header:
        if name in ID_COLUMNS:
            continue
        parsed = _numeric(cells[name])
        if parsed is not None:
            columns[name], count, example = parsed
            if count:
                non_numeric[name] = (count, example)
    keys, extra = search_space.keys_from_columns(cells, source)
    return _build(space, source, target, row_keys=keys, columns=columns, non_numeric=non_numeric, **extra)


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
            f"{get_space(space).table_source}"
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


# ---------------------------------------------------------------- official NB101 TFRecord


def _load_tfrecord(path: Path, space: str, target: str | None) -> Benchmark:
    from ntknas.groundtruth.nb101_tfrecord import read_nb101_tfrecord

    if space != NB101:
        raise DataError(
            f"{path} is a .tfrecord, the official NAS-Bench-101 format, but space {space!r} was "
            "asked: use space='nb101'"
        )
    results = read_nb101_tfrecord(path)
    return _build(
        space,
        str(path),
        target,
        row_keys=results.hashes,
        columns=results.columns,
        adjacency=results.adjacency,
        op_codes=results.op_codes,
        num_vertices=results.num_vertices,
    )


__all__ = [
    "NB101",
    "NB101_OP_CODES",
    "NB201",
    "SPACES",
    "Benchmark",
    "canonical_arch_string",
    "load_benchmark",
]
