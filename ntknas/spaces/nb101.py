"""The NAS-Bench-101 search space: cell specs, the official graph hash, and the network.

A cell is a DAG of at most 7 vertices and 9 edges given by an upper-triangular 0/1 adjacency
matrix and one op per vertex (first ``input``, last ``output``). Vertices that do not lie on an
input→output path compute nothing that reaches the output, so every use of a spec (hash and
network) goes through :meth:`NB101Spec.pruned`, as the benchmark's own ``ModelSpec`` does.

The hash is the benchmark's architecture id: an isomorphism-invariant iterated MD5 over
(out-degree, in-degree, label) vertex fingerprints, with labels -1 for the input, -2 for the
output and the op's position in :data:`NB101_OPS` otherwise. Reproducing it bit for bit is
what lets a spec be joined to the benchmark's accuracy table.

The network follows the benchmark's training model: stem conv3×3-BN-ReLU, stacks of cells with
a 2×2 max-pool and channel doubling before every stack but the first, global average pooling
and a linear ``classifier``. By default it is then re-initialized as the study's NB101 network
was (:mod:`ntknas.spaces.init`, see docs/protocol.md, "Experiment 1").
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ntknas.errors import DataError, InvalidArchError, UnknownNameError, option
from ntknas.spaces.base import SearchSpace, SpaceProtocol

INPUT = "input"
OUTPUT = "output"
CONV3X3 = "conv3x3-bn-relu"
CONV1X1 = "conv1x1-bn-relu"
MAXPOOL3X3 = "maxpool3x3"

#: Interior ops in the benchmark's canonical order; an op's index here is its hash label.
NB101_OPS: tuple[str, ...] = (CONV3X3, CONV1X1, MAXPOOL3X3)

MAX_VERTICES = 7
MAX_EDGES = 9

# Hash labels of the two fixed vertices (the benchmark's convention).
_INPUT_LABEL = -1
_OUTPUT_LABEL = -2

#: Integer op codes of the shared compact table (``ops`` column of the nb101 npz). NOTE: this is
#: NOT the hash-label order of :data:`NB101_OPS` (there conv3x3 is 0, conv1x1 is 1).
NPZ_OP_CODES: Mapping[int, str] = MappingProxyType(
    {0: INPUT, 1: CONV1X1, 2: CONV3X3, 3: MAXPOOL3X3, 4: OUTPUT}
)
#: Op code that pads rows of cells with fewer than 7 vertices.
NPZ_PADDING = -1


# --------------------------------------------------------------------------------------------
# Spec
# --------------------------------------------------------------------------------------------


def _as_matrix(adjacency: Any) -> tuple[tuple[int, ...], ...]:
    """Convert a nested list / numpy array to a tuple-of-tuples of Python ints, checking 0/1."""
    try:
        arr = np.asarray(adjacency)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise InvalidArchError(
            f"NB101 adjacency is not a rectangular matrix ({exc}): give a V×V list of 0/1 rows"
        ) from None
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise InvalidArchError(
            f"NB101 adjacency must be a square matrix, got shape {tuple(arr.shape)}: "
            "give a V×V 0/1 matrix with V = number of ops"
        )
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if arr.size and (
        not np.issubdtype(arr.dtype, np.number) or not ((arr == 0) | (arr == 1)).all()
    ):
        raise InvalidArchError(
            f"NB101 adjacency entries must be 0 or 1, got {np.unique(arr).tolist()}: "
            "use 1 for an edge and 0 for none"
        )
    return tuple(tuple(int(x) for x in row) for row in arr.tolist())


def _as_ops(ops: Any) -> tuple[str, ...]:
    if isinstance(ops, str):
        raise InvalidArchError(
            f"NB101 ops must be a sequence of op names, got the single string {ops!r}: "
            f"give e.g. ('{INPUT}', '{CONV3X3}', '{OUTPUT}')"
        )
    out = tuple(str(op) if isinstance(op, str) else op for op in ops)  # np.str_ -> str
    for op in out:
        if not isinstance(op, str):
            raise InvalidArchError(
                f"NB101 op {op!r} is not a name: ops are '{INPUT}', {', '.join(NB101_OPS)}, "
                f"'{OUTPUT}' (decode integer op codes with decode_npz_ops)"
            )
    return out


def _reachable(adj: tuple[tuple[int, ...], ...], start: int, forward: bool) -> set[int]:
    n = len(adj)
    seen = {start}
    stack = [start]
    while stack:
        v = stack.pop()
        nbrs = (w for w in range(n) if adj[v][w]) if forward else (u for u in range(n) if adj[u][v])
        for w in nbrs:
            if w not in seen:
                seen.add(w)
                stack.append(w)
    return seen


@dataclass(frozen=True)
class NB101Spec:
    """A NAS-Bench-101 cell: adjacency (V×V, upper-triangular, 0/1) and V op names.

    Construction validates the spec against the benchmark's constraints (≤ 7 vertices, ≤ 9
    edges, ``input`` first, ``output`` last, interior ops from :data:`NB101_OPS`, output
    reachable from input) and raises :class:`InvalidArchError` otherwise. Lists and numpy arrays
    are accepted and normalised to tuples, so specs are hashable and comparable.
    """

    adjacency: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        matrix = _as_matrix(self.adjacency)
        ops = _as_ops(self.ops)
        object.__setattr__(self, "adjacency", matrix)
        object.__setattr__(self, "ops", ops)
        _validate(matrix, ops)

    @classmethod
    def from_arrays(cls, adjacency: Any, ops: Sequence[str] | np.ndarray) -> NB101Spec:
        """Build a spec from a nested list or numpy array and a list/array of op names."""
        return cls(adjacency, ops)  # type: ignore[arg-type]  # __post_init__ normalises

    @property
    def num_vertices(self) -> int:
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        return sum(map(sum, self.adjacency))

    def pruned(self) -> NB101Spec:
        """The spec without vertices that are not on an input→output path.

        Kept vertices stay in their original order, so the result is still upper-triangular.
        """
        n = self.num_vertices
        from_input = _reachable(self.adjacency, 0, forward=True)
        to_output = _reachable(self.adjacency, n - 1, forward=False)
        keep = sorted(from_input & to_output)
        if len(keep) == n:
            return self
        matrix = tuple(tuple(self.adjacency[i][j] for j in keep) for i in keep)
        return NB101Spec(matrix, tuple(self.ops[i] for i in keep))

    @cached_property
    def hash(self) -> str:
        """The benchmark's module hash (32 hex digits) of the pruned spec."""
        p = self.pruned()
        labels = [_INPUT_LABEL] + [NB101_OPS.index(op) for op in p.ops[1:-1]] + [_OUTPUT_LABEL]
        return _graph_hash(p.adjacency, labels)


def _validate(matrix: tuple[tuple[int, ...], ...], ops: tuple[str, ...]) -> None:
    """Raise InvalidArchError for the first violated constraint (one line, naming the fix)."""
    n = len(matrix)
    if len(ops) != n:
        raise InvalidArchError(
            f"NB101 spec has {n}×{n} adjacency but {len(ops)} ops: give one op per vertex"
        )
    if n < 2:
        raise InvalidArchError(
            f"NB101 spec has {n} vertices: a cell needs at least "
            f"the '{INPUT}' and '{OUTPUT}' vertices"
        )
    if n > MAX_VERTICES:
        raise InvalidArchError(
            f"NB101 spec has {n} vertices: the space allows at most {MAX_VERTICES} "
            "(input, up to 5 interior ops, output)"
        )
    for i in range(n):
        for j in range(i + 1):
            if matrix[i][j]:
                raise InvalidArchError(
                    f"NB101 adjacency has an edge {i}->{j} on or below the diagonal: the "
                    "matrix must be strictly upper-triangular (edges only go from a lower "
                    "to a higher vertex index)"
                )
    edges = sum(map(sum, matrix))
    if edges > MAX_EDGES:
        raise InvalidArchError(
            f"NB101 spec has {edges} edges: the space allows at most {MAX_EDGES}; remove edges"
        )
    if ops[0] != INPUT:
        raise InvalidArchError(f"NB101 first op is {ops[0]!r}: vertex 0 must be '{INPUT}'")
    if ops[-1] != OUTPUT:
        raise InvalidArchError(f"NB101 last op is {ops[-1]!r}: the last vertex must be '{OUTPUT}'")
    for v, op in enumerate(ops[1:-1], start=1):
        if op not in NB101_OPS:
            raise InvalidArchError(
                f"unknown NB101 op {op!r} at vertex {v}: interior ops are {', '.join(NB101_OPS)}"
            )
    if n - 1 not in _reachable(matrix, 0, forward=True):
        raise InvalidArchError(
            "NB101 spec's output is not reachable from its input: add a path of edges from "
            "vertex 0 to the last vertex"
        )


# --------------------------------------------------------------------------------------------
# Hash
# --------------------------------------------------------------------------------------------


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _graph_hash(matrix: tuple[tuple[int, ...], ...], labels: Sequence[int]) -> str:
    """The benchmark's iterated-MD5 fingerprint of a labelled DAG.

    The string formats (``str`` of a Python tuple, ``str`` of a sorted list) are part of the
    hash, so degrees and labels must be Python ints, never numpy scalars (numpy 2 would print
    ``np.int64(2)``).
    """
    n = len(matrix)
    preds = [[u for u in range(n) if matrix[u][v]] for v in range(n)]
    succs = [[w for w in range(n) if matrix[v][w]] for v in range(n)]
    hashes = [_md5(str((len(succs[v]), len(preds[v]), int(labels[v])))) for v in range(n)]
    # The benchmark iterates once per vertex (more than the diameter needs); the count is part
    # of the definition, so it must be exactly n.
    for _ in range(n):
        hashes = [
            _md5(
                "".join(sorted(hashes[u] for u in preds[v]))
                + "|"
                + "".join(sorted(hashes[w] for w in succs[v]))
                + "|"
                + hashes[v]
            )
            for v in range(n)
        ]
    return _md5(str(sorted(hashes)))


def nb101_hash(adjacency: Any, ops: Sequence[str] | np.ndarray) -> str:
    """The official NAS-Bench-101 module hash of a cell (computed on the pruned spec).

    Raises :class:`InvalidArchError` when the cell is not a valid NAS-Bench-101 spec.
    """
    return NB101Spec.from_arrays(adjacency, ops).hash


# --------------------------------------------------------------------------------------------
# The shared compact table's integer encoding
# --------------------------------------------------------------------------------------------


def decode_npz_ops(
    codes: Sequence[int] | np.ndarray, legend: Mapping[int, str] = NPZ_OP_CODES
) -> tuple[str, ...]:
    """Op names of one ``ops`` row of the compact nb101 table, trailing ``-1`` padding dropped."""
    values = [int(c) for c in np.asarray(codes).reshape(-1).tolist()]
    while values and values[-1] == NPZ_PADDING:
        values.pop()
    names = []
    for c in values:
        name = legend.get(c)
        if name is None:
            raise InvalidArchError(
                f"unknown NB101 op code {c} in {values}: codes are "
                + ", ".join(f"{k} {v}" for k, v in legend.items())
                + f", with {NPZ_PADDING} only as trailing padding"
            )
        names.append(name)
    return tuple(names)


def decode_table_row(
    adjacency: Any,
    op_codes: Sequence[int] | np.ndarray,
    num_vertices: int | None = None,
    legend: Mapping[int, str] = NPZ_OP_CODES,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Adjacency (V×V uint8) and op names of one row of the compact table: the only decoder of
    its zero-padded 7×7 adjacency and ``-1``-padded op codes."""
    codes = [int(c) for c in np.asarray(op_codes).reshape(-1).tolist()]
    n = len(decode_npz_ops(codes, legend)) if num_vertices is None else int(num_vertices)
    if any(c != NPZ_PADDING for c in codes[n:]):
        raise InvalidArchError(f"NB101 table row has ops past its {n} vertices: pad with {NPZ_PADDING} only")
    ops = decode_npz_ops(codes[:n], legend)
    if len(ops) != n:
        raise InvalidArchError(f"NB101 table row has padding among its first {n} op codes")
    matrix = np.asarray(adjacency)
    if matrix.ndim == 2 and matrix.shape[0] == matrix.shape[1] and matrix.shape[0] >= n:
        if matrix[n:, :].any() or matrix[:, n:].any():
            raise InvalidArchError(
                f"NB101 table row has edges at padded vertices (only {n} ops): the adjacency "
                "rows and columns past the last op must be zero"
            )
        matrix = matrix[:n, :n]
    return np.array(matrix, dtype=np.uint8), ops


def spec_from_npz(adjacency: Any, op_codes: Sequence[int] | np.ndarray) -> NB101Spec:
    """The spec of one row of the compact table (zero-padded 7×7 adjacency, padded op codes)."""
    return NB101Spec.from_arrays(*decode_table_row(adjacency, op_codes))


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    # 'same' padding and no conv bias (BN follows), as in the benchmark's conv_bn_relu.
    # BN eps 1e-5 is the benchmark's; the momentum stays PyTorch's default.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels, eps=1e-5),
        nn.ReLU(inplace=False),
    )


def compute_vertex_channels(
    in_channels: int, out_channels: int, adjacency: Sequence[Sequence[int]]
) -> list[int]:
    """Output channels of every vertex of a pruned cell, as the benchmark's model builder does.

    The output channels are split evenly among the vertices that feed the output (the first
    ``out_channels % k`` of them get one extra); any other interior vertex takes the maximum
    of the vertices it feeds, so channels never increase along an interior edge.
    """
    n = len(adjacency)
    channels = [0] * n
    channels[0] = in_channels
    channels[-1] = out_channels
    if n == 2:
        return channels
    feeders = [v for v in range(1, n - 1) if adjacency[v][n - 1]]
    base, extra = divmod(out_channels, len(feeders))
    for rank, v in enumerate(feeders):
        channels[v] = base + (1 if rank < extra else 0)
    for v in range(n - 3, 0, -1):
        if not adjacency[v][n - 1]:
            channels[v] = max(channels[w] for w in range(v + 1, n - 1) if adjacency[v][w])
    return channels


class NB101Cell(nn.Module):
    """One cell ("module") of the NAS-Bench-101 network for a pruned spec.

    Interior vertex t sums its inputs: outputs of earlier interior vertices (truncated to its
    channel count) plus, if it reads the cell input, a conv1×1-BN-ReLU projection of the input.
    The cell output concatenates the vertices feeding the output and adds a projection of the
    input when there is an input→output edge.
    """

    def __init__(self, spec: NB101Spec, in_channels: int, out_channels: int) -> None:
        super().__init__()
        adj = spec.adjacency
        n = spec.num_vertices
        self._adj = adj
        self._n = n
        self.vertex_channels = compute_vertex_channels(in_channels, out_channels, adj)
        self.ops = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        for t in range(1, n - 1):
            c = self.vertex_channels[t]
            if adj[0][t]:
                self.projections[str(t)] = _conv_bn_relu(in_channels, c, 1)
            op = spec.ops[t]
            if op == CONV3X3:
                self.ops[str(t)] = _conv_bn_relu(c, c, 3)
            elif op == CONV1X1:
                self.ops[str(t)] = _conv_bn_relu(c, c, 1)
            else:  # maxpool3x3: stride 1, 'same' (PyTorch pads with -inf, so pads never win)
                self.ops[str(t)] = nn.MaxPool2d(3, stride=1, padding=1)
        if adj[0][n - 1]:
            self.projections[str(n - 1)] = _conv_bn_relu(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        adj, n = self._adj, self._n
        tensors: list[Tensor] = [x]
        for t in range(1, n - 1):
            c = self.vertex_channels[t]
            # Channels never increase along interior edges, so slicing is all that is needed.
            inputs = [tensors[s][:, :c] for s in range(1, t) if adj[s][t]]
            if adj[0][t]:
                inputs.append(self.projections[str(t)](x))
            total = inputs[0]
            for extra in inputs[1:]:
                total = total + extra
            tensors.append(self.ops[str(t)](total))
        feeding = [tensors[t] for t in range(1, n - 1) if adj[t][n - 1]]
        if not feeding:  # only the input→output edge
            return self.projections[str(n - 1)](x)
        out = feeding[0] if len(feeding) == 1 else torch.cat(feeding, dim=1)
        if adj[0][n - 1]:
            out = out + self.projections[str(n - 1)](x)
        return out


class NB101Network(nn.Module):
    """The NAS-Bench-101 training network for one cell spec (see :func:`build_nb101`)."""

    def __init__(
        self,
        spec: NB101Spec,
        num_classes: int,
        stem_channels: int,
        num_stacks: int,
        cells_per_stack: int,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.stem = _conv_bn_relu(3, stem_channels, 3)
        layers: list[nn.Module] = []
        in_channels = channels = stem_channels
        for stack in range(num_stacks):
            if stack > 0:
                # ceil_mode mimics TF 'same' pooling on odd sizes; a no-op on even ones.
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                channels *= 2
            for _ in range(cells_per_stack):
                layers.append(NB101Cell(spec, in_channels, channels))
                in_channels = channels
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(self.stem(x))
        return self.classifier(x.mean(dim=(2, 3)))


def build_nb101(
    spec: NB101Spec | tuple[Any, Sequence[str]],
    num_classes: int = 10,
    stem_channels: int = 128,
    num_stacks: int = 3,
    cells_per_stack: int = 3,
    init: str = "study",
    bias_init: str = "default",
) -> nn.Module:
    """Build the NAS-Bench-101 network for a cell (pruned first), mapping N×3×H×W to logits.

    The defaults are the benchmark's (128 stem channels, 3 stacks of 3 cells); the final
    linear layer is the attribute ``classifier``. ``init="study"`` (default) re-initializes the
    built network as the study did (see :mod:`ntknas.spaces.init`); ``"default"`` keeps
    PyTorch's initialization.
    """
    from ntknas.spaces.init import InitScheme, initialize

    InitScheme(init, bias_init)  # refuse an unknown name before building anything
    if not isinstance(spec, NB101Spec):
        if not isinstance(spec, (tuple, list)) or len(spec) != 2:
            raise InvalidArchError(
                "NB101 spec must be an NB101Spec or an (adjacency, ops) pair, "
                f"got {type(spec).__name__}"
            )
        spec = NB101Spec.from_arrays(spec[0], spec[1])
    for name, value, low in (
        ("num_classes", num_classes, 1),
        ("stem_channels", stem_channels, 1),
        ("num_stacks", num_stacks, 1),
        ("cells_per_stack", cells_per_stack, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InvalidArchError(f"NB101 {name} must be a positive integer, got {value!r}")
    pruned = spec.pruned()
    # Every vertex feeding the output needs at least one channel.
    feeders = sum(pruned.adjacency[v][-1] for v in range(1, pruned.num_vertices - 1))
    if stem_channels < feeders:
        raise InvalidArchError(
            f"NB101 stem_channels={stem_channels} is smaller than the {feeders} vertices feeding "
            "the cell output: use at least that many stem channels"
        )
    network = NB101Network(pruned, num_classes, stem_channels, num_stacks, cells_per_stack)
    return initialize(network, "nb101", init, bias_init)


# --------------------------------------------------------------------------------------------
# The registered space
# --------------------------------------------------------------------------------------------

_HASH_PATTERN = re.compile(r"^[0-9a-f]{32}$")


def _spec_from_text(text: str) -> NB101Spec:
    """A spec from JSON: ``{"adjacency": [[...]], "ops": [...]}`` or ``[adjacency, ops]``."""
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            return NB101Spec.from_arrays(data["adjacency"], data["ops"])
        adjacency, ops = data
        return NB101Spec.from_arrays(adjacency, ops)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, RecursionError) as error:
        if isinstance(error, InvalidArchError):
            raise
        if isinstance(error, RecursionError):
            error = ValueError("nested too deeply")
        raise InvalidArchError(
            f"cannot read the NB101 spec {text[:80]!r} ({error}): give JSON with keys adjacency and ops"
        ) from None


class NB101Space(SearchSpace):
    """NAS-Bench-101 (see docs/protocol.md, "Search spaces"): specs keyed by the official module hash. The space is not
    enumerated here (423,624 cells): its order and its cells come from the benchmark table."""

    name = "nb101"
    title = "NAS-Bench-101"
    protocol = SpaceProtocol(batch_size=64, seed=1, build_options={"stem_channels": 128})
    table_key_columns = ("hash",)
    default_targets = ("test_max", "test_acc_seed0")
    fraction_accuracies = True
    lists_graphs = True
    arch_help = 'a module hash (with --benchmark TABLE) or JSON {"adjacency": [[...]], "ops": ["input", ..., "output"]}'
    table_source = (
        "get the NAS-Bench-101 results nasbench_only108.tfrecord (github.com/google-research/"
        "nasbench) and pass it, or the .npz that ntknas export-benchmark writes from it"
    )

    def parse(self, text: str) -> NB101Spec:
        stripped = str(text).strip()
        if _HASH_PATTERN.match(stripped.lower()):
            raise InvalidArchError(
                f"NB101 hash {stripped!r} needs {option('benchmark')} with the NB101 table to look it up in"
            )
        if not stripped.startswith(("{", "[")):
            raise InvalidArchError(
                f"{stripped[:80]!r} is not an NB101 cell: give a module hash (with {option('benchmark')} TABLE) or JSON "
                '{"adjacency": [[...]], "ops": ["input", ..., "output"]}'
            )
        return _spec_from_text(stripped)

    def coerce(self, value: Any) -> NB101Spec:
        if isinstance(value, NB101Spec):
            return value
        if isinstance(value, str):
            return self.parse(value)
        if isinstance(value, (tuple, list)) and len(value) == 2:
            return NB101Spec.from_arrays(value[0], value[1])
        raise InvalidArchError(
            f"NB101 spec must be an NB101Spec or an (adjacency, ops) pair, got {type(value).__name__}"
        )

    def key(self, arch: Any) -> str:
        return self.coerce(arch).hash

    def neighbours(self, arch: Any) -> list[NB101Spec]:
        """Valid cells one edge toggle or one interior op change away, distinct by hash."""
        spec = self.coerce(arch)
        n = spec.num_vertices
        seen = {spec.hash}
        found: list[NB101Spec] = []

        def offer(adjacency: Any, ops: Sequence[str]) -> None:
            try:
                candidate = NB101Spec(adjacency, tuple(ops)).pruned()
            except InvalidArchError:
                return
            if candidate.hash not in seen:
                seen.add(candidate.hash)
                found.append(candidate)

        for i in range(n):
            for j in range(i + 1, n):
                rows = [list(row) for row in spec.adjacency]
                rows[i][j] = 1 - rows[i][j]
                offer(rows, spec.ops)
        for v in range(1, n - 1):
            for op in NB101_OPS:
                if op != spec.ops[v]:
                    offer(spec.adjacency, spec.ops[:v] + (op,) + spec.ops[v + 1:])
        return found

    def encode(self, arch: Any) -> np.ndarray:
        """The pruned cell padded to :data:`MAX_VERTICES` (empty vertices inserted before the
        output): the upper triangle of its adjacency (21 values, row-major) then the one-hot op of
        each of the 5 interior vertices (:data:`NB101_OPS` order; zeros for an empty one), 36
        values. Isomorphic cells written with other vertex orders may encode differently."""
        spec = self.coerce(arch).pruned()
        n = spec.num_vertices
        slot = [v if v < n - 1 else MAX_VERTICES - 1 for v in range(n)]
        adjacency = np.zeros((MAX_VERTICES, MAX_VERTICES))
        ops = np.zeros((MAX_VERTICES - 2, len(NB101_OPS)))
        for i in range(n):
            for j in range(i + 1, n):
                adjacency[slot[i], slot[j]] = spec.adjacency[i][j]
        for v in range(1, n - 1):
            ops[v - 1, NB101_OPS.index(spec.ops[v])] = 1.0
        return np.concatenate([adjacency[np.triu_indices(MAX_VERTICES, k=1)], ops.ravel()])

    def build(self, arch: Any, num_classes: int, **options: Any) -> nn.Module:
        return build_nb101(self.coerce(arch), num_classes=num_classes, **options)

    def table_key(self, value: Any) -> str:
        key = value
        if isinstance(key, bytes):
            key = key.decode("ascii", "replace")
        elif not isinstance(key, str) and isinstance(getattr(key, "hash", None), str):
            key = key.hash
        if isinstance(key, str) and _HASH_PATTERN.match(key.strip().lower()):
            return key.strip().lower()
        if isinstance(key, (NB101Spec, tuple, list)) or (isinstance(key, str) and key.strip().startswith(("{", "["))):
            return self.key(key)
        raise UnknownNameError(
            f"{str(value)[:80]!r} is not a NAS-Bench-101 architecture: use the 32-hex-digit module hash of a pruned cell"
        )

    def keys_from_columns(self, cells: Mapping[str, Sequence[str]], source: str) -> tuple[np.ndarray, dict[str, Any]]:
        hashes = [h.strip().lower() for h in cells["hash"]]
        bad = next((h for h in hashes if not _HASH_PATTERN.match(h)), None)
        if bad is not None:
            raise DataError(f"{source}: {bad!r} in column hash is not a 32-hex-digit NB101 module hash")
        return np.array(hashes), {}

    def arch_from_table(self, table: Any, row: int) -> NB101Spec:
        return NB101Spec.from_arrays(*table.nb101_spec(table.row_keys[row]))

