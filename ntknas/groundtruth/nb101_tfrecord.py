"""The official NAS-Bench-101 results file (``nasbench_only108.tfrecord``), read without TensorFlow.

Format (see docs/protocol.md, "Experiment 1"). A TFRecord file is a sequence of records, each framed as

    uint64 little-endian  length of the data
    uint32 little-endian  masked CRC-32C of those 8 length bytes
    bytes[length]         data
    uint32 little-endian  masked CRC-32C of the data

with mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2^32). Each record's data is the UTF-8
JSON list ``[module hash, epochs, adjacency, operations, metrics]``: the adjacency of the pruned
cell as a row-major string of 0/1 digits, the operations comma-separated, and ``metrics`` a
base64-encoded ``ModelMetrics`` protocol buffer:

    ModelMetrics   = repeated EvaluationData evaluation_data = 1; int32 trainable_parameters = 2;
                     double total_time = 3
    EvaluationData = current_epoch = 1 (double in the benchmark's .proto; an int32 varint is
                     accepted too); double training_time = 2, train_accuracy = 3,
                     validation_accuracy = 4, test_accuracy = 5; string checkpoint_path = 6

The last EvaluationData is the final one (the first is at initialization, the middle one
halfway). There is one record per training run: three per cell in the 108-epoch file.

The protocol buffers are decoded by the small wire-format decoder below (varints, 64-bit and
32-bit fixed fields, length-delimited fields); no protobuf package is needed.

Runs: a cell's ``*_max`` and ``*_mean`` use its runs with a finite accuracy. A file with a cell
of fewer than three runs, or a run without a finite accuracy, is read with one warning that
counts them (the official file has neither).

Integrity: every record's length is checked against the file (a truncated file is an error
naming the record). The CRCs are checked when the fast C implementation of the
``google-crc32c`` package is installed (``pip install 'ntknas[crc32c]'``); otherwise a warning
says once per file that they were not, and ``verify_crc=True`` checks them with the pure-Python
table below (correct, but about 100x slower). A file that fails any check raises
:class:`DataError` with a one-line message naming the record number, and nothing is returned.

The file is streamed: memory grows with the number of cells (a few numbers each), never with
the file's size.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import struct
import warnings
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ntknas.errors import DataError, option

log = logging.getLogger(__name__)

TFRECORD_SUFFIX = ".tfrecord"
_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")
_UINT32 = 0xFFFFFFFF
# No record of the benchmark comes near this; a larger length means a corrupt header.
_MAX_RECORD_BYTES = 1 << 26
_HASH = re.compile(r"^[0-9a-f]{32}$")

#: The op names of the compact table's integer codes (the shared table's legend).
TABLE_OP_NAMES: tuple[str, ...] = ("input", "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3", "output")
_OP_CODE = {name: code for code, name in enumerate(TABLE_OP_NAMES)}
TABLE_PADDING = -1
TABLE_VERTICES = 7

#: Target columns built from the file. Accuracies are fractions (0–1), as the benchmark stores
#: them; :func:`ntknas.groundtruth.load_benchmark` exposes them in percent.
RUN_COLUMNS = 3
TEST_RUN_COLUMNS = tuple(f"test_run{i}" for i in range(RUN_COLUMNS))
VALID_RUN_COLUMNS = tuple(f"valid_run{i}" for i in range(RUN_COLUMNS))
TARGET_COLUMNS: tuple[str, ...] = (
    "test_max", "test_mean", *TEST_RUN_COLUMNS,
    "valid_max", "valid_mean", *VALID_RUN_COLUMNS,
    "train_mean", "params", "train_seconds",
)
DEFAULT_TARGET = "test_max"
"""The study's ground truth: per cell, the maximum final test accuracy over its runs."""


# --------------------------------------------------------------------------------------------
# CRC-32C
# --------------------------------------------------------------------------------------------


def _crc32c_table() -> tuple[int, ...]:
    polynomial = 0x82F63B78  # CRC-32C (Castagnoli), reflected
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ polynomial if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c_python(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C of ``data`` by a byte-wise table: slow, but needs no package."""
    table = _CRC32C_TABLE
    crc = _UINT32
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _UINT32


def fast_crc32c() -> Callable[[bytes], int] | None:
    """``google_crc32c.value`` when its C implementation is installed, else None."""
    try:
        import google_crc32c  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return None
    if getattr(google_crc32c, "implementation", None) != "c":
        return None  # its pure-Python fallback is no faster than ours
    value: Callable[[bytes], int] = google_crc32c.value
    return value


def masked_crc32c(data: bytes, crc32c: Callable[[bytes], int] = crc32c_python) -> int:
    """The TFRecord framing's masked CRC-32C of ``data``."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & _UINT32) + _MASK_DELTA) & _UINT32


# --------------------------------------------------------------------------------------------
# TFRecord framing
# --------------------------------------------------------------------------------------------


def frame_record(data: bytes, crc32c: Callable[[bytes], int] = crc32c_python) -> bytes:
    """``data`` framed as one TFRecord (length, masked CRCs): for writing test files."""
    length = struct.pack("<Q", len(data))
    return length + _FOOTER.pack(masked_crc32c(length, crc32c)) + data + _FOOTER.pack(masked_crc32c(data, crc32c))


def iter_records(
    path: str | os.PathLike[str], *, verify_crc: bool | None = None
) -> Iterator[tuple[int, bytes]]:
    """(record number from 0, data) of every record of a TFRecord file, streamed.

    ``verify_crc``: None checks the CRCs when the fast ``google-crc32c`` is installed (and warns
    once that they are not checked otherwise); True always checks them (pure Python if needed);
    False never does. Lengths are always checked. Unchecked CRCs are logged as a warning
    (logger ``ntknas.groundtruth.nb101_tfrecord``) at every read.

    Raises:
        DataError: missing file, truncated or corrupt record (the message names the record).
    """
    p = Path(path)
    crc = fast_crc32c()
    if verify_crc is None and crc is None:
        message = (
            f"{p.name}: CRC-32C checksums are not verified (record lengths are): "
            "install google-crc32c (pip install 'ntknas[crc32c]') to verify them"
        )
        log.warning(message)  # every read of a file says it (a warnings filter would say it once)
    check = crc if verify_crc is not False else None
    if verify_crc and check is None:
        check = crc32c_python
    if not p.is_file():
        raise DataError(f"{p} not found: get nasbench_only108.tfrecord from github.com/google-research/nasbench")
    try:
        yield from _framed_records(p, check)
    except OSError as exc:
        raise DataError(f"cannot read {p}: {exc.strerror or exc}") from None


def _framed_records(p: Path, check: Callable[[bytes], int] | None) -> Iterator[tuple[int, bytes]]:
    size = p.stat().st_size
    with open(p, "rb", buffering=1 << 20) as handle:
        read = handle.read
        number = 0
        offset = 0
        while True:
            header = read(12)
            if not header:
                return
            if len(header) < 12:
                raise _corrupt(p, number, f"truncated (only {len(header)} of its 12 header bytes)")
            length, length_crc = _HEADER.unpack(header)
            if check is not None and masked_crc32c(header[:8], check) != length_crc:
                raise _corrupt(p, number, "corrupt (the CRC-32C of its length does not match)")
            remaining = size - offset - 12
            if length > _MAX_RECORD_BYTES or length + 4 > remaining:
                raise _corrupt(
                    p, number, f"truncated or corrupt (its header gives {length} data bytes + 4 CRC "
                    f"bytes, {max(remaining, 0)} bytes remain)"
                )
            data = read(length)
            footer = read(4)
            if len(data) != length or len(footer) != 4:  # the file shrank while being read
                raise _corrupt(p, number, "truncated (the file shrank while being read)")
            if check is not None and masked_crc32c(data, check) != _FOOTER.unpack(footer)[0]:
                raise _corrupt(p, number, "corrupt (the CRC-32C of its data does not match)")
            yield number, data
            offset += 16 + length
            number += 1


def _corrupt(path: Path, number: int, what: str) -> DataError:
    return DataError(f"{path}: record {number} is {what}; nothing was read: download the file again")


# --------------------------------------------------------------------------------------------
# Protocol-buffer wire format
# --------------------------------------------------------------------------------------------

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


class ProtobufError(ValueError):
    """Malformed protocol-buffer bytes."""


def _varint(buffer: bytes, position: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if position >= len(buffer):
            raise ProtobufError("a varint runs past the end of the message")
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
        if shift >= 70:
            raise ProtobufError("a varint is longer than 10 bytes")


def iter_fields(buffer: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each field of a message: an int for a varint, the raw
    8 or 4 bytes of a fixed field, the payload bytes of a length-delimited one."""
    position = 0
    end = len(buffer)
    while position < end:
        key, position = _varint(buffer, position)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0")
        value: int | bytes
        if wire == _VARINT:
            value, position = _varint(buffer, position)
        elif wire == _FIXED64:
            value, position = buffer[position:position + 8], position + 8
        elif wire == _LENGTH_DELIMITED:
            size, position = _varint(buffer, position)
            value, position = buffer[position:position + size], position + size
        elif wire == _FIXED32:
            value, position = buffer[position:position + 4], position + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire} (field {number})")
        if position > end:
            raise ProtobufError(f"field {number} runs past the end of the message")
        yield number, wire, value


def _as_int32(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _as_double(wire: int, value: int | bytes, name: str) -> float:
    if wire == _FIXED64 and isinstance(value, bytes):
        return float(_DOUBLE.unpack(value)[0])
    if wire == _FIXED32 and isinstance(value, bytes):
        return float(_FLOAT.unpack(value)[0])
    if wire == _VARINT and isinstance(value, int):
        return float(_as_int32(value))
    raise ProtobufError(f"{name} has wire type {wire}, not a number")


@dataclass(frozen=True)
class EvaluationData:
    """One evaluation of a training run (accuracies are fractions)."""

    current_epoch: float = 0.0
    training_time: float = 0.0
    train_accuracy: float = 0.0
    validation_accuracy: float = 0.0
    test_accuracy: float = 0.0
    checkpoint_path: str = ""


@dataclass(frozen=True)
class ModelMetrics:
    """A decoded ``ModelMetrics`` message."""

    evaluation_data: tuple[EvaluationData, ...] = ()
    trainable_parameters: int = 0
    total_time: float = 0.0

    @property
    def final(self) -> EvaluationData:
        if not self.evaluation_data:
            raise ProtobufError("ModelMetrics holds no EvaluationData")
        return self.evaluation_data[-1]


_EVALUATION_FIELDS = {
    1: "current_epoch", 2: "training_time", 3: "train_accuracy", 4: "validation_accuracy", 5: "test_accuracy",
}


def decode_evaluation_data(buffer: bytes) -> EvaluationData:
    values: dict[str, float | str] = {}
    for number, wire, value in iter_fields(buffer):
        name = _EVALUATION_FIELDS.get(number)
        if name is not None:
            values[name] = _as_double(wire, value, name)
        elif number == 6:
            if wire != _LENGTH_DELIMITED or not isinstance(value, bytes):
                raise ProtobufError("checkpoint_path is not a string")
            values["checkpoint_path"] = value.decode("utf-8", "replace")
        # Unknown fields are skipped, as protobuf readers do.
    return EvaluationData(**values)  # type: ignore[arg-type]


def decode_model_metrics(buffer: bytes, *, final_only: bool = False) -> ModelMetrics:
    """Decode a ``ModelMetrics`` message; ``final_only`` decodes only the last EvaluationData
    (what the benchmark's results are; skipping the others is what makes reading fast)."""
    spans: list[bytes] = []
    parameters = 0
    total_time = 0.0
    for number, wire, value in iter_fields(buffer):
        if number == 1:
            if wire != _LENGTH_DELIMITED or not isinstance(value, bytes):
                raise ProtobufError("evaluation_data is not a message")
            spans.append(value)
        elif number == 2:
            if wire != _VARINT or not isinstance(value, int):
                raise ProtobufError("trainable_parameters is not a varint")
            parameters = _as_int32(value)
        elif number == 3:
            total_time = _as_double(wire, value, "total_time")
    if final_only and spans:
        spans = spans[-1:]
    return ModelMetrics(tuple(decode_evaluation_data(s) for s in spans), parameters, total_time)


def final_results(buffer: bytes) -> tuple[int, float, float, float, float]:
    """(trainable_parameters, final test, validation and train accuracy, final training time) of
    a ModelMetrics message: :func:`decode_model_metrics` unrolled for the reader's hot loop (the
    same wire rules; tests check that both agree), about 3x faster."""
    unpack_double = _DOUBLE.unpack_from
    position = 0
    end = len(buffer)
    last_start = last_end = -1
    parameters = 0
    while position < end:
        key = buffer[position]
        if key < 0x80:
            position += 1
        else:
            key, position = _varint(buffer, position)
        wire = key & 7
        if wire == _LENGTH_DELIMITED:
            size = buffer[position] if position < end else 0x80
            if size < 0x80:
                position += 1
            else:
                size, position = _varint(buffer, position)
            if key >> 3 == 1:
                last_start, last_end = position, position + size
            position += size
        elif wire == _FIXED64:
            position += 8
        elif wire == _VARINT:
            value, position = _varint(buffer, position)
            if key >> 3 == 2:
                parameters = _as_int32(value)
        elif wire == _FIXED32:
            position += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire} (field {key >> 3})")
        if key >> 3 == 0:
            raise ProtobufError("field number 0")
    if position > end:
        raise ProtobufError("a field runs past the end of the message")
    if last_start < 0:
        raise ProtobufError("ModelMetrics holds no EvaluationData")
    values = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # index = field number (1..5 used)
    position = last_start
    while position < last_end:
        key = buffer[position]
        if key < 0x80:
            position += 1
        else:
            key, position = _varint(buffer, position)
        number, wire = key >> 3, key & 7
        if wire == _FIXED64:
            if position + 8 > last_end:
                raise ProtobufError(f"field {number} runs past the end of the message")
            if number <= 5:
                values[number] = unpack_double(buffer, position)[0]
            position += 8
        elif wire == _LENGTH_DELIMITED:
            size, position = _varint(buffer, position)
            position += size
        elif wire == _VARINT:
            value, position = _varint(buffer, position)
            if 1 <= number <= 5:
                values[number] = float(_as_int32(value))
        elif wire == _FIXED32:
            if 1 <= number <= 5 and position + 4 <= last_end:
                values[number] = float(_FLOAT.unpack_from(buffer, position)[0])
            position += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire} (field {number})")
        if number == 0:
            raise ProtobufError("field number 0")
    if position > last_end:
        raise ProtobufError("a field runs past the end of the message")
    return parameters, values[5], values[4], values[3], values[2]


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32s are sign-extended to ten bytes
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def encode_evaluation_data(evaluation: EvaluationData) -> bytes:
    """The wire bytes of an EvaluationData (doubles as fixed64): for writing test files."""
    out = bytearray()
    for number, name in _EVALUATION_FIELDS.items():
        out += _key(number, _FIXED64) + _DOUBLE.pack(getattr(evaluation, name))
    if evaluation.checkpoint_path:
        raw = evaluation.checkpoint_path.encode("utf-8")
        out += _key(6, _LENGTH_DELIMITED) + _encode_varint(len(raw)) + raw
    return bytes(out)


def encode_model_metrics(metrics: ModelMetrics) -> bytes:
    """The wire bytes of a ModelMetrics message: for writing test files."""
    out = bytearray()
    for evaluation in metrics.evaluation_data:
        body = encode_evaluation_data(evaluation)
        out += _key(1, _LENGTH_DELIMITED) + _encode_varint(len(body)) + body
    out += _key(2, _VARINT) + _encode_varint(metrics.trainable_parameters)
    out += _key(3, _FIXED64) + _DOUBLE.pack(metrics.total_time)
    return bytes(out)


def encode_record(
    module_hash: str, epochs: int, adjacency: np.ndarray | list[list[int]], ops: list[str] | tuple[str, ...],
    metrics: ModelMetrics,
) -> bytes:
    """One record's data (the JSON list) as the benchmark wrote it: for writing test files."""
    matrix = np.asarray(adjacency, dtype=np.int64)
    payload = [
        module_hash,
        int(epochs),
        "".join(str(int(v)) for v in matrix.reshape(-1).tolist()),
        ",".join(ops),
        base64.b64encode(encode_model_metrics(metrics)).decode("ascii"),
    ]
    return json.dumps(payload).encode("utf-8")


# --------------------------------------------------------------------------------------------
# The results table
# --------------------------------------------------------------------------------------------


@dataclass
class NB101Results:
    """Per-cell results read from the official file, sorted by module hash.

    ``columns`` maps each of :data:`TARGET_COLUMNS` to a float array (accuracies as fractions,
    NaN where a cell has fewer runs); ``adjacency`` (uint8 [N,7,7], zero-padded), ``op_codes``
    (int8 [N,7], codes of :data:`TABLE_OP_NAMES`, -1 padding) and ``num_vertices`` follow the
    compact table's layout.
    """

    source: str
    hashes: np.ndarray
    adjacency: np.ndarray
    op_codes: np.ndarray
    num_vertices: np.ndarray
    columns: dict[str, np.ndarray]
    records: int
    epochs: int
    runs_per_cell: dict[int, int] = field(default_factory=dict)
    crc_verified: bool = False

    def __len__(self) -> int:
        return len(self.hashes)


class _Cells:
    """Cells in order of first appearance, with their spec parsed once."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.rows: dict[str, int] = {}
        self.adjacency: list[bytes] = []
        self.op_codes: list[bytes] = []
        self.num_vertices = array("B")
        self.params = array("d")

    def add(self, module_hash: object, adjacency: object, operations: object, params: int, number: int) -> int:
        if not isinstance(module_hash, str) or not _HASH.match(module_hash):
            raise self._bad(number, f"module hash {str(module_hash)[:40]!r} is not 32 lower-case hex digits")
        if not isinstance(adjacency, str) or not isinstance(operations, str):
            raise self._bad(number, "adjacency and operations must be strings")
        ops = operations.split(",")
        n = len(ops)
        if not 2 <= n <= TABLE_VERTICES or len(adjacency) != n * n or adjacency.strip("01"):
            raise self._bad(number, f"adjacency {adjacency[:60]!r} is not a {n}x{n} matrix of 0/1 digits for {n} ops")
        try:
            codes = bytes(_OP_CODE[op] for op in ops) + bytes([TABLE_PADDING & 0xFF]) * (TABLE_VERTICES - n)
        except KeyError as exc:
            raise self._bad(number, f"unknown operation {exc.args[0]!r}") from None
        padded = bytearray(b"0" * (TABLE_VERTICES * TABLE_VERTICES))
        for i in range(n):
            padded[i * TABLE_VERTICES:i * TABLE_VERTICES + n] = adjacency[i * n:(i + 1) * n].encode("ascii")
        row = len(self.adjacency)
        self.rows[module_hash] = row
        self.adjacency.append(bytes(padded))
        self.op_codes.append(codes)
        self.num_vertices.append(n)
        self.params.append(float(params))
        return row

    def _bad(self, number: int, what: str) -> DataError:
        return DataError(f"{self.source}: record {number} is not a NAS-Bench-101 result ({what}); nothing was read")


def read_nb101_tfrecord(
    path: str | os.PathLike[str], *, epochs: int = 108, verify_crc: bool | None = None
) -> NB101Results:
    """Read the official NAS-Bench-101 results file into per-cell results (see module doc).

    Only records of ``epochs``-epoch training runs are used (the ``only108`` file has no others;
    the full file also has 4, 12 and 36). Runs are numbered per cell in file order.

    Raises:
        DataError: missing, truncated or corrupt file, or a record that is not a NAS-Bench-101
            result (the message names the record); no epochs-epoch record at all.
    """
    p = Path(path)
    cells = _Cells(p)
    rows = cells.rows
    add = cells.add
    run_cell = array("q")
    test = array("d")
    valid = array("d")
    train = array("d")
    seconds = array("d")
    loads = json.loads
    b64decode = base64.b64decode
    verified = fast_crc32c() is not None if verify_crc is None else verify_crc
    records = 0
    other_epochs: set[int] = set()
    for number, data in iter_records(p, verify_crc=verify_crc):
        records += 1
        try:
            fields = loads(data)
        except (ValueError, UnicodeDecodeError):
            fields = None
        if type(fields) is not list or len(fields) != 5:
            raise cells._bad(number, "its data is not a JSON list of 5 fields")
        module_hash, record_epochs, adjacency, operations, raw_metrics = fields
        if record_epochs != epochs:
            if not isinstance(record_epochs, int):
                raise cells._bad(number, f"epochs {record_epochs!r} is not an integer")
            other_epochs.add(record_epochs)
            continue
        try:
            parameters, final_test, final_valid, final_train, final_seconds = final_results(
                b64decode(raw_metrics, validate=True)
            )
        except (ProtobufError, binascii.Error, TypeError, ValueError, IndexError) as exc:
            raise cells._bad(number, f"its metrics are not a base64 ModelMetrics message: {exc}") from None
        row = rows.get(module_hash) if type(module_hash) is str else None
        if row is None:
            row = add(module_hash, adjacency, operations, parameters, number)
        run_cell.append(row)
        test.append(final_test)
        valid.append(final_valid)
        train.append(final_train)
        seconds.append(final_seconds)
    if not records:
        raise DataError(f"{p} is empty (no record): download nasbench_only108.tfrecord again")
    if not len(run_cell):
        found = ", ".join(str(e) for e in sorted(other_epochs))
        raise DataError(
            f"{p} holds no {epochs}-epoch NAS-Bench-101 record (its {records} records are of {found}-epoch "
            "runs): use nasbench_only108.tfrecord, which holds the 108-epoch runs"
        )
    return _aggregate(p, cells, run_cell, test, valid, train, seconds, records, epochs, verified)


def _aggregate(
    source: Path, cells: _Cells, run_cell: array, test: array, valid: array, train: array,
    seconds: array, records: int, epochs: int, verified: bool,
) -> NB101Results:
    n = len(cells.adjacency)
    cell_of_run = np.frombuffer(run_cell, dtype=np.int64)
    # Run number of each record within its cell, in file order.
    order = np.argsort(cell_of_run, kind="stable")
    sorted_cells = cell_of_run[order]
    starts = np.searchsorted(sorted_cells, np.arange(n))
    run_number = np.empty_like(cell_of_run)
    run_number[order] = np.arange(len(order)) - starts[sorted_cells]
    counts = np.bincount(cell_of_run, minlength=n)

    def per_run(values: array) -> np.ndarray:
        table = np.full((n, int(counts.max())), np.nan)
        table[cell_of_run, run_number] = np.frombuffer(values, dtype=np.float64)
        return table

    tests, valids, trains, times = per_run(test), per_run(valid), per_run(train), per_run(seconds)
    _warn_incomplete(source, counts, tests, valids)
    with warnings.catch_warnings():  # a cell without one finite run: NaN, counted in the warning
        warnings.simplefilter("ignore", RuntimeWarning)
        columns: dict[str, np.ndarray] = {
            "test_max": np.nanmax(tests, axis=1),
            "test_mean": np.nanmean(tests, axis=1),
        }
        for i, name in enumerate(TEST_RUN_COLUMNS):
            columns[name] = tests[:, i] if i < tests.shape[1] else np.full(n, np.nan)
        columns["valid_max"] = np.nanmax(valids, axis=1)
        columns["valid_mean"] = np.nanmean(valids, axis=1)
        for i, name in enumerate(VALID_RUN_COLUMNS):
            columns[name] = valids[:, i] if i < valids.shape[1] else np.full(n, np.nan)
        columns["train_mean"] = np.nanmean(trains, axis=1)
        columns["params"] = np.frombuffer(cells.params, dtype=np.float64).copy()
        columns["train_seconds"] = np.nanmean(times, axis=1)

    hashes = np.array(list(cells.rows), dtype="U32")
    by_hash = np.argsort(hashes, kind="stable")
    digits = np.frombuffer(b"".join(cells.adjacency), dtype=np.uint8)
    adjacency = (digits - ord("0")).reshape(n, TABLE_VERTICES, TABLE_VERTICES)
    op_codes = np.frombuffer(b"".join(cells.op_codes), dtype=np.int8).reshape(n, TABLE_VERTICES)
    runs, how_many = np.unique(counts, return_counts=True)
    return NB101Results(
        source=str(source),
        hashes=hashes[by_hash],
        adjacency=np.ascontiguousarray(adjacency[by_hash]),
        op_codes=np.ascontiguousarray(op_codes[by_hash]),
        num_vertices=np.frombuffer(cells.num_vertices, dtype=np.uint8)[by_hash].copy(),
        columns={name: values[by_hash] for name, values in columns.items()},
        records=records,
        epochs=epochs,
        runs_per_cell={int(r): int(c) for r, c in zip(runs, how_many)},
        crc_verified=verified,
    )


def _warn_incomplete(source: Path, counts: np.ndarray, tests: np.ndarray, valids: np.ndarray) -> None:
    """Say once per file how many cells have fewer than the benchmark's runs, or a run without a
    finite accuracy: their max and mean use the finite runs they have (a cell with none has no
    value, a missing one where it is used)."""
    few = int(np.count_nonzero(counts < RUN_COLUMNS))
    recorded = np.arange(tests.shape[1])[None, :] < counts[:, None]
    not_finite = recorded & ~(np.isfinite(tests) & np.isfinite(valids))
    runs_not_finite = int(np.count_nonzero(not_finite))
    empty = int(np.count_nonzero(np.all(~recorded | not_finite, axis=1)))
    if few or runs_not_finite:
        log.warning(
            "%s: %d cell(s) have fewer than %d runs and %d run(s) have no finite accuracy: their max and mean "
            "use the finite runs (%d cell(s) have none and no value)",
            source, few, RUN_COLUMNS, runs_not_finite, empty,
        )


def export_nb101_npz(
    tfrecord: str | os.PathLike[str], out: str | os.PathLike[str], *, verify_crc: bool | None = None
) -> Path:
    """Write the compact NB101 table (the shared table's layout, every target column) from the
    official file. Written to a temporary file and renamed, so a failed read leaves nothing."""
    target = Path(out)
    if target.suffix.lower() != ".npz":
        raise DataError(f"{option('out')} {target} must end in .npz: the NB101 table is written as an .npz")
    results = read_nb101_tfrecord(tfrecord, verify_crc=verify_crc)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp.npz")
    arrays: dict[str, np.ndarray] = {
        "hash": results.hashes.astype("S32"),
        "adjacency": results.adjacency,
        "ops": results.op_codes,
        "num_vertices": results.num_vertices,
        "op_code_legend": np.array(TABLE_OP_NAMES),
        **results.columns,
    }
    try:
        np.savez(temporary, **arrays)  # type: ignore[arg-type]
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


__all__ = [
    "DEFAULT_TARGET",
    "TARGET_COLUMNS",
    "TFRECORD_SUFFIX",
    "EvaluationData",
    "ModelMetrics",
    "NB101Results",
    "ProtobufError",
    "crc32c_python",
    "decode_model_metrics",
    "encode_model_metrics",
    "encode_record",
    "export_nb101_npz",
    "fast_crc32c",
    "frame_record",
    "iter_fields",
    "iter_records",
    "masked_crc32c",
    "read_nb101_tfrecord",
]
