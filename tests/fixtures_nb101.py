"""Small NAS-Bench-101 files in the official formats, written independently of ntknas's own code.

* :func:`write_official_tfrecord` writes ``nasbench_only108.tfrecord``'s exact layout: TFRecord
  framing with masked CRC-32C (computed here bit by bit, not by ntknas's table), each record the
  JSON list [hash, epochs, adjacency string, ops string, base64 ModelMetrics] with the protocol
  buffer encoded by hand below (fields as in the benchmark's model_metrics.proto).
* :func:`write_all_graphs_json` writes the study's ``all_graphs.json``: an object mapping each
  module hash to [adjacency, labels], labels -1 input, -2 output, 0..2 indexes into
  (conv3x3-bn-relu, conv1x1-bn-relu, maxpool3x3) — what the benchmark's generate_graphs.py dumps.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ntknas.spaces.nb101 import nb101_hash

IN, C3, C1, MP, OUT = "input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "output"
GRAPH_LABELS = {C3: 0, C1: 1, MP: 2}

#: Pruned cells (every vertex on an input→output path), small enough for tiny networks.
CELLS: tuple[tuple[list[list[int]], list[str]], ...] = (
    ([[0, 1], [0, 0]], [IN, OUT]),
    ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [IN, C3, OUT]),
    ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [IN, C1, OUT]),
    ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], [IN, MP, OUT]),
    ([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], [IN, C3, C1, OUT]),
    (
        [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
        [IN, C1, MP, C3, OUT],
    ),
    (
        [
            [0, 1, 0, 0, 1, 1, 0],
            [0, 0, 1, 0, 0, 0, 0],
            [0, 0, 0, 1, 0, 0, 1],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        [IN, C3, MP, C3, C3, C1, OUT],  # the benchmark's own example cell, 00005c14...
    ),
)


def crc32c_bitwise(data: bytes) -> int:
    """CRC-32C, one bit at a time (independent of ntknas's table-driven version)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_frame(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return (
        length + struct.pack("<I", masked(crc32c_bitwise(length)))
        + data + struct.pack("<I", masked(crc32c_bitwise(data)))
    )


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _double(field: int, value: float) -> bytes:
    return _varint(field << 3 | 1) + struct.pack("<d", value)


def _message(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


@dataclass(frozen=True)
class Run:
    """One training run's final evaluation (fractions; seconds)."""

    test: float
    valid: float
    train: float
    seconds: float


def model_metrics_bytes(run: Run, params: int, checkpoint: str = "") -> bytes:
    """A ModelMetrics message with three evaluations (init, halfway, final), the last ``run``."""
    evaluations = []
    for epoch, scale in ((0.0, 0.1), (54.0, 0.8), (108.0, 1.0)):
        body = (
            _double(1, epoch) + _double(2, run.seconds * epoch / 108.0) + _double(3, run.train * scale)
            + _double(4, run.valid * scale) + _double(5, run.test * scale)
        )
        if checkpoint:
            body += _message(6, f"{checkpoint}/model.ckpt-{int(epoch)}".encode())
        evaluations.append(_message(1, body))
    return b"".join(evaluations) + _varint(2 << 3) + _varint(params) + _double(3, run.seconds * 1.1)


def record_bytes(adjacency: list[list[int]], ops: list[str], epochs: int, run: Run, params: int, checkpoint: str = "") -> bytes:
    matrix = "".join(str(v) for row in adjacency for v in row)
    payload = [
        nb101_hash(adjacency, ops), epochs, matrix, ",".join(ops),
        base64.b64encode(model_metrics_bytes(run, params, checkpoint)).decode(),
    ]
    return json.dumps(payload).encode()


def official_runs(seed: int = 0, runs: int = 3) -> dict[str, list[Run]]:
    """Seeded runs for every cell of :data:`CELLS`, keyed by hash."""
    rng = np.random.default_rng(seed)
    out = {}
    for adjacency, ops in CELLS:
        out[nb101_hash(adjacency, ops)] = [
            Run(*(float(v) for v in rng.uniform(0.1, 0.95, size=3)), float(rng.uniform(100, 3000)))
            for _ in range(runs)
        ]
    return out


def write_official_tfrecord(path: str | Path, seed: int = 0, runs: int = 3, extra_epochs: bool = False) -> dict[str, list[Run]]:
    """Write a small ``nasbench_only108.tfrecord``: ``runs`` records per cell of :data:`CELLS`,
    interleaved (run r of every cell, then run r + 1) as the benchmark's file mixes cells.
    ``extra_epochs`` adds 36-epoch records (as in the full file) that a 108-epoch reader skips.
    Returns the runs written, by hash, in run order."""
    table = official_runs(seed, runs)
    specs = {nb101_hash(a, o): (a, o) for a, o in CELLS}
    frames = []
    for r in range(runs):
        for h, cell_runs in table.items():
            adjacency, ops = specs[h]
            params = 1000 * (len(ops) + 1)
            frames.append(tfrecord_frame(record_bytes(adjacency, ops, 108, cell_runs[r], params, "gs://bucket/run")))
            if extra_epochs:
                frames.append(tfrecord_frame(record_bytes(adjacency, ops, 36, Run(0.01, 0.01, 0.01, 1.0), params)))
    Path(path).write_bytes(b"".join(frames))
    return table


def write_all_graphs_json(path: str | Path, cells: list[tuple[list[list[int]], list[str]]]) -> list[str]:
    """The study's all_graphs.json for ``cells`` in the given order; returns their hashes."""
    graphs = {}
    for adjacency, ops in cells:
        labels = [-1] + [GRAPH_LABELS[op] for op in ops[1:-1]] + [-2]
        graphs[nb101_hash(adjacency, ops)] = [adjacency, labels]
    Path(path).write_text(json.dumps(graphs))
    return list(graphs)
