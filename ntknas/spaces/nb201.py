"""The NAS-Bench-201 search space: architectures, the official index order, and the network.

A cell is a DAG on 4 nodes; node j = sum_{i<j} op_ij(node i), and node 3 is the cell output.
Each of the 6 edges, in the order (0->1), (0->2), (1->2), (0->3), (1->3), (2->3), carries one
of the 5 ops in :data:`NB201_OPS`, so the space holds 5**6 = 15,625 architectures.

The official index order is not stored anywhere in this package: it is re-derived from the
benchmark's own recipe (enumerate every cell, then shuffle the list with Python's ``random``
seeded with 88), which reproduces the published ``index`` column exactly.

Two networks can be built (see :func:`build_nb201`):

* ``"benchmark"`` -- the model NAS-Bench-201 trained: every BatchNorm affine with running
  statistics, convolutions without bias. Its parameter count equals the published one and has a
  closed form, :func:`benchmark_param_count`.
* ``"study"`` -- the variant the NTK study measured: cell BatchNorms are ``affine=False,
  track_running_stats=False`` (so they normalise with batch statistics even in eval mode) and
  the cell convolutions therefore carry a bias; stem, reduction blocks and head are unchanged.
"""

from __future__ import annotations

import functools
import itertools
import operator
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ntknas.errors import DataError, InvalidArchError, UnknownNameError
from ntknas.spaces.base import SearchSpace, SpaceProtocol

__all__ = [
    "NB201_OPS",
    "NB201_EDGES",
    "NB201_NUM_ARCHS",
    "NB201_VARIANTS",
    "NB201Arch",
    "NB201Network",
    "parse_arch",
    "resolve_arch",
    "all_archs",
    "arch_from_index",
    "index_of",
    "build_nb201",
    "benchmark_param_count",
    "canonical_arch_string",
    "NB201Space",
]

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""The candidate ops; position k is op-code digit k."""

NB201_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
"""Cell edges (source node, target node), in arch-string and op-code order."""

_NUM_NODES = 4
NB201_NUM_ARCHS: int = len(NB201_OPS) ** len(NB201_EDGES)

NB201_VARIANTS: tuple[str, ...] = ("study", "benchmark")

# The benchmark authors' fixed seed for shuffling the enumerated cells into index order.
_INDEX_SHUFFLE_SEED = 88

# Conv ops -> kernel size; the other ops have no parameters.
_CONV_KERNEL = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}

_ARCH_TEMPLATE = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"
_OP_LEGEND = ", ".join(f"{k} {op}" for k, op in enumerate(NB201_OPS))


def _show(text: str, limit: int = 120) -> str:
    """Quote user text for a one-line message (repr escapes newlines; long text is cut)."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


# ----------------------------------------------------------------------------------------------
# Architectures
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NB201Arch:
    """One NAS-Bench-201 cell: the op on each of the 6 edges, in :data:`NB201_EDGES` order."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        ops = tuple(self.ops)
        if len(ops) != len(NB201_EDGES):
            raise InvalidArchError(
                f"NB201Arch needs {len(NB201_EDGES)} edge ops (edges 0->1, 0->2, 1->2, 0->3, "
                f"1->3, 2->3), got {len(ops)}"
            )
        for op in ops:
            if op not in NB201_OPS:
                raise InvalidArchError(
                    f"unknown op {_show(str(op))} in NB201Arch: valid ops are {', '.join(NB201_OPS)}"
                )
        object.__setattr__(self, "ops", ops)

    @property
    def op_codes(self) -> str:
        """Six digits, one per edge: 0 none, 1 skip_connect, 2 nor_conv_1x1, 3 nor_conv_3x3, 4 avg_pool_3x3."""
        return "".join(str(NB201_OPS.index(op)) for op in self.ops)

    @property
    def edges(self) -> tuple[tuple[int, int, str], ...]:
        """``(source, target, op)`` for every edge, in :data:`NB201_EDGES` order."""
        return tuple((src, dst, op) for (src, dst), op in zip(NB201_EDGES, self.ops))

    def to_string(self) -> str:
        """The official arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        groups = []
        for node in range(1, _NUM_NODES):
            tokens = [f"{op}~{src}" for src, dst, op in self.edges if dst == node]
            groups.append("|" + "|".join(tokens) + "|")
        return "+".join(groups)

    def __str__(self) -> str:
        return self.to_string()


def _parse_op_codes(text: str) -> NB201Arch:
    if len(text) != len(NB201_EDGES):
        raise InvalidArchError(
            f"op-code string {_show(text)} has {len(text)} digits; NAS-Bench-201 op codes have "
            f"{len(NB201_EDGES)} (one per edge, each 0..{len(NB201_OPS) - 1}); to select by index "
            "pass an int"
        )
    ops = []
    for position, digit in enumerate(text):
        code = int(digit)
        if code >= len(NB201_OPS):
            raise InvalidArchError(
                f"op-code digit '{digit}' at position {position} of {_show(text)} is not "
                f"0..{len(NB201_OPS) - 1} ({_OP_LEGEND})"
            )
        ops.append(NB201_OPS[code])
    return NB201Arch(tuple(ops))


def _parse_arch_string(text: str) -> NB201Arch:
    groups = text.split("+")
    if len(groups) != _NUM_NODES - 1:
        raise InvalidArchError(
            f"arch string {_show(text)} has {len(groups)} '+'-separated node groups; NAS-Bench-201 "
            f"cells have {_NUM_NODES - 1}: {_ARCH_TEMPLATE}"
        )
    ops_by_edge: dict[tuple[int, int], str] = {}
    for node, group in enumerate(groups, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            raise InvalidArchError(
                f"node {node} group {_show(group)} of arch string {_show(text)} must start and end "
                f"with '|' (form {_ARCH_TEMPLATE})"
            )
        tokens = group[1:-1].split("|")
        if len(tokens) != node:
            raise InvalidArchError(
                f"node {node} of arch string {_show(text)} lists {len(tokens)} inputs; it must list "
                f"exactly {node} (~0..~{node - 1}, form {_ARCH_TEMPLATE})"
            )
        for position, token in enumerate(tokens):
            parts = token.split("~")
            if len(parts) != 2:
                raise InvalidArchError(
                    f"edge {_show(token)} of node {node} in arch string {_show(text)} must be "
                    f"op~k, e.g. 'nor_conv_3x3~{position}'"
                )
            op, source = parts
            if source != str(position):
                raise InvalidArchError(
                    f"edge {_show(token)} of node {node} in arch string {_show(text)} reads input "
                    f"~{source}; input {position + 1} of node {node} must be ~{position} (inputs "
                    f"are listed ~0..~{node - 1} in order)"
                )
            if op not in NB201_OPS:
                raise InvalidArchError(
                    f"unknown op {_show(op)} in arch string {_show(text)}: valid ops are "
                    f"{', '.join(NB201_OPS)}"
                )
            ops_by_edge[(position, node)] = op
    return NB201Arch(tuple(ops_by_edge[edge] for edge in NB201_EDGES))


def parse_arch(text: str) -> NB201Arch:
    """Parse an official arch string or a 6-digit op-code string (surrounding whitespace ignored).

    Raises :class:`InvalidArchError` with a one-line message for anything else.
    """
    if not isinstance(text, str):
        raise InvalidArchError(
            f"a NAS-Bench-201 arch must be given as a string, got {type(text).__name__}: use "
            f"{_ARCH_TEMPLATE} or 6 op-code digits"
        )
    stripped = text.strip()
    if not stripped:
        raise InvalidArchError(
            f"empty NAS-Bench-201 arch: use {_ARCH_TEMPLATE} or 6 op-code digits ({_OP_LEGEND})"
        )
    # [0-9] rather than \d: \d would also accept non-ASCII digits.
    if re.fullmatch(r"[0-9]+", stripped):
        return _parse_op_codes(stripped)
    if "|" in stripped or "~" in stripped or "+" in stripped:
        return _parse_arch_string(stripped)
    raise InvalidArchError(
        f"{_show(text)} is not a NAS-Bench-201 arch: use an arch string {_ARCH_TEMPLATE} or "
        f"6 op-code digits ({_OP_LEGEND})"
    )


# ----------------------------------------------------------------------------------------------
# Index order
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def all_archs() -> tuple[NB201Arch, ...]:
    """All 15,625 architectures, position i = official NAS-Bench-201 index i.

    The benchmark enumerated cells node by node (node 1's input ops outermost, node 3's last
    input innermost), each op running through :data:`NB201_OPS` in order -- i.e. the
    lexicographic order of the 6 edge ops in :data:`NB201_EDGES` order, which is what
    ``itertools.product`` yields -- and then shuffled that list once with ``random.seed(88)``.
    A private ``random.Random(88)`` draws the same stream without touching global state.
    """
    enumerated = [NB201Arch(ops) for ops in itertools.product(NB201_OPS, repeat=len(NB201_EDGES))]
    random.Random(_INDEX_SHUFFLE_SEED).shuffle(enumerated)
    return tuple(enumerated)


@functools.lru_cache(maxsize=1)
def _index_by_op_codes() -> dict[str, int]:
    return {arch.op_codes: index for index, arch in enumerate(all_archs())}


def arch_from_index(i: int) -> NB201Arch:
    """The architecture at official index ``i`` (0..15624)."""
    if isinstance(i, bool):
        raise InvalidArchError(f"index {i!r} is a bool; pass an int 0..{NB201_NUM_ARCHS - 1}")
    try:
        index = operator.index(i)
    except TypeError:
        raise InvalidArchError(
            f"NAS-Bench-201 index must be an int, got {type(i).__name__} {_show(str(i))}"
        ) from None
    if not 0 <= index < NB201_NUM_ARCHS:
        raise InvalidArchError(
            f"index {index} outside NAS-Bench-201 (0..{NB201_NUM_ARCHS - 1})"
        )
    return all_archs()[index]


def resolve_arch(arch: NB201Arch | str | int) -> NB201Arch:
    """Accept an :class:`NB201Arch`, an arch / op-code string, or an official index."""
    if isinstance(arch, NB201Arch):
        return arch
    if isinstance(arch, str):
        return parse_arch(arch)
    return arch_from_index(arch)


def index_of(arch: NB201Arch | str) -> int:
    """Official index of an architecture given as :class:`NB201Arch` or string."""
    if not isinstance(arch, (NB201Arch, str)):
        raise InvalidArchError(
            f"index_of takes an NB201Arch or arch string, got {type(arch).__name__}"
        )
    return _index_by_op_codes()[resolve_arch(arch).op_codes]


# ----------------------------------------------------------------------------------------------
# Network
# ----------------------------------------------------------------------------------------------


class ReLUConvBN(nn.Module):
    """ReLU -> Conv2d -> BatchNorm2d; the conv has a bias exactly when the BN has no affine."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        affine: bool,
        track_running_stats: bool,
    ) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=not affine),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Zero(nn.Module):
    """The ``none`` op: zeros shaped like its (stride-1) input.

    ``x * 0`` rather than ``zeros_like`` keeps upstream parameters in the autograd graph (with
    zero gradient), as in the benchmark's own model, so gradient code never meets unused inputs.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _make_op(op: str, channels: int, affine: bool, track_running_stats: bool) -> nn.Module:
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    kernel = _CONV_KERNEL[op]
    return ReLUConvBN(channels, channels, kernel, 1, kernel // 2, affine, track_running_stats)


class NB201Cell(nn.Module):
    """One cell; ``edges["i->j"]`` is the op from node i to node j."""

    def __init__(self, arch: NB201Arch, channels: int, affine: bool, track_running_stats: bool) -> None:
        super().__init__()
        self.edges = nn.ModuleDict(
            {
                f"{src}->{dst}": _make_op(op, channels, affine, track_running_stats)
                for src, dst, op in arch.edges
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for dst in range(1, _NUM_NODES):
            total = self.edges[f"0->{dst}"](nodes[0])
            for src in range(1, dst):
                total = total + self.edges[f"{src}->{dst}"](nodes[src])
            nodes.append(total)
        return nodes[-1]


class ResidualReduction(nn.Module):
    """Stride-2 residual block between stages (ResNet basic block without the final ReLU)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1, affine=True, track_running_stats=True)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, affine=True, track_running_stats=True)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """The NAS-Bench-201 macro network around one cell type; see :func:`build_nb201`.

    Module tree: ``stem`` (conv, BN), ``cells`` (the 3*N cells with the 2 reduction blocks in
    between, as one list), ``lastact`` (BN, ReLU), ``global_pooling``, ``classifier`` (linear).
    """

    def __init__(
        self,
        arch: NB201Arch,
        num_classes: int,
        variant: str,
        channels: int,
        cells_per_stage: int,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.variant = variant
        self.num_classes = num_classes
        self.channels = channels
        self.cells_per_stage = cells_per_stage
        benchmark = variant == "benchmark"

        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        cells: list[nn.Module] = []
        width = channels
        for stage in range(3):
            if stage > 0:
                cells.append(ResidualReduction(width, width * 2))
                width *= 2
            for _ in range(cells_per_stage):
                cells.append(NB201Cell(arch, width, affine=benchmark, track_running_stats=benchmark))
        self.cells = nn.ModuleList(cells)
        # Not in-place: an in-place ReLU on a BN output can trip batched-gradient code.
        self.lastact = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def extra_repr(self) -> str:
        return f"arch={self.arch.to_string()!r}, variant={self.variant!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x)
        out = self.stem(x)
        for cell in self.cells:
            out = cell(out)
        out = self.global_pooling(self.lastact(out))
        return self.classifier(out.flatten(1))


def _check_images(x: torch.Tensor) -> None:
    # Only the trailing (C, H, W) dims are checked so that torch.func.vmap over samples still works.
    if x.dim() < 3:
        raise DataError(f"NB201 networks take images N x 3 x H x W, got a tensor of shape {tuple(x.shape)}")
    c, h, w = x.shape[-3:]
    if c != 3:
        raise DataError(f"NB201 networks take 3-channel images, got shape {tuple(x.shape)}: convert to RGB")
    # Each reduction block adds a stride-2 conv (ceil) to a 2x2 average pool (floor): both
    # spatial sizes must stay even through two halvings.
    if h < 8 or w < 8 or h % 4 or w % 4:
        raise DataError(
            f"NB201 networks need image height and width that are multiples of 4 and at least 8, "
            f"got {h}x{w}: resize or crop the images (e.g. 32x32 CIFAR, 16x16 ImageNet16-120)"
        )


def _check_size(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArchError(f"{name} must be a positive int, got {value!r}")
    return value


def build_nb201(
    arch: NB201Arch | str | int,
    num_classes: int = 10,
    variant: str = "study",
    channels: int = 16,
    cells_per_stage: int = 5,
    init: str = "study",
    bias_init: str = "default",
) -> NB201Network:
    """Build the NAS-Bench-201 network for ``arch`` (an :class:`NB201Arch`, string or index).

    ``variant="study"`` (default) uses non-affine, batch-statistics BatchNorm in the cells with
    biased cell convs; ``variant="benchmark"`` is the benchmark's own training model. The network
    maps float images N x 3 x H x W to logits N x num_classes. ``init`` / ``bias_init`` as in
    :mod:`ntknas.spaces.init`; the study kept PyTorch's initialization for NB201, so ``"study"``
    (default) and ``"default"`` build the same network.
    """
    from ntknas.spaces.init import InitScheme, initialize

    InitScheme(init, bias_init)
    if variant not in NB201_VARIANTS:
        raise UnknownNameError(
            f"unknown NAS-Bench-201 network variant {variant!r}: choose one of {', '.join(NB201_VARIANTS)}"
        )
    network = NB201Network(
        resolve_arch(arch),
        num_classes=_check_size("num_classes", num_classes),
        variant=variant,
        channels=_check_size("channels", channels),
        cells_per_stage=_check_size("cells_per_stage", cells_per_stage),
    )
    initialize(network, "nb201", init, bias_init)
    return network


# ----------------------------------------------------------------------------------------------
# Closed-form parameter count
# ----------------------------------------------------------------------------------------------


def _conv_bn_params(c_in: int, c_out: int, kernel: int) -> int:
    """Bias-free conv plus affine BN (weight and bias)."""
    return c_in * c_out * kernel * kernel + 2 * c_out


def benchmark_param_count(
    arch: NB201Arch | str | int,
    num_classes: int = 10,
    channels: int = 16,
    cells_per_stage: int = 5,
) -> int:
    """Exact parameter count of ``build_nb201(arch, variant="benchmark", ...)``, without building it."""
    cell_arch = resolve_arch(arch)
    _check_size("num_classes", num_classes)
    _check_size("channels", channels)
    _check_size("cells_per_stage", cells_per_stage)

    total = _conv_bn_params(3, channels, 3)  # stem
    width = channels
    for stage in range(3):
        if stage > 0:
            wider = width * 2
            # conv_a (stride 2) + conv_b + the 1x1 shortcut conv (no bias, no BN)
            total += _conv_bn_params(width, wider, 3) + _conv_bn_params(wider, wider, 3) + width * wider
            width = wider
        per_cell = sum(
            _conv_bn_params(width, width, _CONV_KERNEL[op]) for op in cell_arch.ops if op in _CONV_KERNEL
        )
        total += cells_per_stage * per_cell
    total += 2 * width  # head BN
    total += width * num_classes + num_classes  # classifier
    return total


# ----------------------------------------------------------------------------------------------
# The registered space
# ----------------------------------------------------------------------------------------------


def canonical_arch_string(text: str) -> str:
    """``text`` without whitespace and with each node's edges ordered by source node.

    Only normalises spelling so that equivalent strings name the same architecture; it does not
    validate ops (:func:`parse_arch` does).
    """
    nodes = []
    for node in "".join(text.split()).split("+"):
        edges = [e for e in node.split("|") if e]
        edges.sort(key=_edge_source)
        nodes.append("|" + "|".join(edges) + "|")
    return "+".join(nodes)


def _edge_source(edge: str) -> tuple[int, str]:
    source = edge.rsplit("~", 1)[-1]
    return (int(source) if source.isascii() and source.isdigit() else -1, edge)


class NB201Space(SearchSpace):
    """NAS-Bench-201 (see docs/protocol.md, "Search spaces"): arch strings, op codes or official indices; results keyed by
    the canonical arch string; benchmark tables keyed by the official index."""

    name = "nb201"
    title = "NAS-Bench-201"
    protocol = SpaceProtocol(batch_size=None, seed=42, build_options={"variant": "study"})
    table_key_columns = ("index", "arch_str")
    default_targets = ("cifar10_valid_test",)
    arch_help = f"an arch string {_ARCH_TEMPLATE}, 6 op-code digits ({_OP_LEGEND}) or an index"
    # The largest cell: every edge a 3×3 convolution.
    default_arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    table_source = (
        "get NAS-Bench-201-v1_0-e61699.pth (github.com/D-X-Y/NAS-Bench-201) or the "
        "NATS-tss-v1_0-3ffb9-simple folder (github.com/D-X-Y/NATS-Bench), or a CSV exported "
        "from them with ntknas export-benchmark"
    )

    def parse(self, text: str) -> NB201Arch:
        return parse_arch(text)

    def coerce(self, value: object) -> NB201Arch:
        return resolve_arch(value)  # type: ignore[arg-type]

    def key(self, arch: NB201Arch) -> str:
        return resolve_arch(arch).to_string()

    def index(self, arch: NB201Arch) -> int:
        return index_of(resolve_arch(arch))

    def size(self) -> int:
        return NB201_NUM_ARCHS

    def arch_at(self, position: int) -> NB201Arch:
        return arch_from_index(position)

    def neighbours(self, arch: NB201Arch) -> list[NB201Arch]:
        ops = resolve_arch(arch).ops
        return [
            NB201Arch(ops[:edge] + (op,) + ops[edge + 1:])
            for edge in range(len(NB201_EDGES))
            for op in NB201_OPS
            if op != ops[edge]
        ]

    def encode(self, arch: NB201Arch) -> np.ndarray:
        """One-hot of each edge's op: 6 edges × 5 ops (edge-major, :data:`NB201_EDGES` and
        :data:`NB201_OPS` order), 30 values."""
        vector = np.zeros((len(NB201_EDGES), len(NB201_OPS)))
        for edge, op in enumerate(resolve_arch(arch).ops):
            vector[edge, NB201_OPS.index(op)] = 1.0
        return vector.ravel()

    def build(self, arch: object, num_classes: int, **options: Any) -> nn.Module:
        return build_nb201(arch, num_classes=num_classes, **options)  # type: ignore[arg-type]

    def table_key(self, value: object) -> int:
        """The official index of an index, digit string (read as an index), arch string (edges
        in any order) or arch object."""
        if isinstance(value, (bool, np.bool_)):
            raise InvalidArchError(f"{value!r} is not a NAS-Bench-201 architecture")
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, NB201Arch):
            return index_of(value)
        if hasattr(value, "to_string"):
            value = value.to_string()
        if not isinstance(value, str):
            raise InvalidArchError(f"{value!r} is not a NAS-Bench-201 architecture")
        text = value.strip()
        if re.fullmatch(r"[0-9]+", text):
            return int(text)
        try:
            return index_of(parse_arch(text))
        except InvalidArchError:
            canonical = canonical_arch_string(text)
            if canonical == text:
                raise
            return index_of(parse_arch(canonical))

    def keys_from_columns(self, cells: Mapping[str, Sequence[str]], source: str) -> tuple[np.ndarray, dict[str, Any]]:
        arch_strings = [s.strip() for s in cells["arch_str"]] if "arch_str" in cells else None
        if arch_strings is not None and len(set(arch_strings)) != len(arch_strings):
            raise DataError(f"{source} lists some arch_str twice: keep one row per architecture")
        if "index" in cells:
            keys = []
            for cell in cells["index"]:
                if not re.fullmatch(r"[0-9]+", cell.strip()):
                    raise DataError(f"{source}: {cell!r} in column index is not a non-negative integer")
                keys.append(int(cell.strip()))
        else:
            assert arch_strings is not None
            try:
                keys = [self.table_key(s) for s in arch_strings]
            except InvalidArchError as error:
                raise DataError(f"{source}: {error}") from None
        indexes = np.array(keys, dtype=np.int64)
        if len(np.unique(indexes)) != len(indexes):
            raise DataError(f"{source} lists some index twice: keep one row per architecture")
        return indexes, {"arch_strings": arch_strings}

    def arch_from_table(self, table: Any, row: int) -> NB201Arch:
        if table.arch_strings is not None:
            return parse_arch(table.arch_strings[row])
        return arch_from_index(int(table.row_keys[row]))

