"""Tests of the NAS-Bench-101 space: validation, pruning, the official hash, the network."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from ntknas.errors import InvalidArchError
from ntknas.spaces import nb101
from ntknas.spaces.nb101 import (
    INPUT,
    NB101_OPS,
    OUTPUT,
    NB101Spec,
    build_nb101,
    compute_vertex_channels,
    decode_npz_ops,
    nb101_hash,
    spec_from_npz,
)

C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"

# The first cell of the benchmark (published with its hash and metrics in the NAS-Bench-101
# dataset and in many downstream APIs).
OFFICIAL_ADJ = (
    (0, 1, 0, 0, 1, 1, 0),
    (0, 0, 1, 0, 0, 0, 0),
    (0, 0, 0, 1, 0, 0, 1),
    (0, 0, 0, 0, 0, 1, 0),
    (0, 0, 0, 0, 0, 1, 0),
    (0, 0, 0, 0, 0, 0, 1),
    (0, 0, 0, 0, 0, 0, 0),
)
OFFICIAL_OPS = (INPUT, C3, MP, C3, C3, C1, OUTPUT)
OFFICIAL_HASH = "00005c142e6f48ac74fdcf73e3439874"
# `trainable_parameters` the benchmark records for that cell (stem 128, 3×3 cells, 10 classes):
# 8,555,530 (dataset record 'n_params': 8555530; NNI's NB101 table: 'parameters': 8.55553 M).
OFFICIAL_TRAINABLE_PARAMETERS = 8_555_530

# Table rows hashed on every run, drawn from every kind of cell (its edge count and its multiset
# of operations), so that a rule that fails on one kind fails here (~150 µs a row on 2 cores).
NPZ_ROWS_PER_KIND = 40


def chain(*ops: str) -> tuple[tuple[tuple[int, ...], ...], tuple[str, ...]]:
    """A linear chain input → ops... → output."""
    names = (INPUT, *ops, OUTPUT)
    n = len(names)
    adj = tuple(tuple(1 if j == i + 1 else 0 for j in range(n)) for i in range(n))
    return adj, names


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "adjacency, ops, fragment",
    [
        ([[0, 1, 0], [0, 0, 1]], (INPUT, C3, OUTPUT), "square"),
        ([[0, 1], [0, 0, 1]], (INPUT, OUTPUT), "rectangular"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], (INPUT, OUTPUT), "one op per vertex"),
        ([[0]], (INPUT,), "at least"),
        (np.eye(8, k=1, dtype=int), (INPUT,) + (C3,) * 6 + (OUTPUT,), "at most 7"),
        ([[0, 1, 0], [1, 0, 1], [0, 0, 0]], (INPUT, C3, OUTPUT), "upper-triangular"),
        ([[1, 1, 0], [0, 0, 1], [0, 0, 0]], (INPUT, C3, OUTPUT), "upper-triangular"),
        (np.triu(np.ones((7, 7), int), 1), (INPUT,) + (C3,) * 5 + (OUTPUT,), "at most 9"),
        ([[0, 2, 0], [0, 0, 1], [0, 0, 0]], (INPUT, C3, OUTPUT), "0 or 1"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], (C3, C3, OUTPUT), "vertex 0 must be 'input'"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], (INPUT, C3, C1), "last vertex must be 'output'"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], (INPUT, "conv5x5", OUTPUT), "unknown NB101 op"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], (INPUT, INPUT, OUTPUT), "unknown NB101 op 'input'"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], (INPUT, 2, OUTPUT), "not a name"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], "input", "single string"),
        ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], (INPUT, C3, OUTPUT), "not reachable"),
        ([[0, 0, 0], [0, 0, 1], [0, 0, 0]], (INPUT, C3, OUTPUT), "not reachable"),
    ],
)
def test_invalid_specs_raise_one_line_errors(adjacency, ops, fragment) -> None:
    with pytest.raises(InvalidArchError) as exc:
        NB101Spec.from_arrays(adjacency, ops)
    assert fragment in one_line(exc)
    # The hash function validates the same way.
    with pytest.raises(InvalidArchError):
        nb101_hash(adjacency, ops)


def test_limits_are_inclusive() -> None:
    # Exactly 7 vertices and exactly 9 edges are allowed.
    adj = np.zeros((7, 7), int)
    for i, j in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (0, 6), (0, 2), (1, 3)]:
        adj[i, j] = 1
    spec = NB101Spec.from_arrays(adj, np.array((INPUT, C3, C1, MP, C3, C1, OUTPUT)))
    assert spec.num_vertices == 7 and spec.num_edges == 9
    assert spec.adjacency[0][6] == 1 and isinstance(spec.adjacency[0][6], int)
    assert all(isinstance(op, str) for op in spec.ops)


def test_spec_normalises_and_is_hashable() -> None:
    a = NB101Spec.from_arrays(np.array(OFFICIAL_ADJ, dtype=np.uint8), list(OFFICIAL_OPS))
    b = NB101Spec(OFFICIAL_ADJ, OFFICIAL_OPS)
    assert a == b and hash(a) == hash(b)
    assert a.adjacency == OFFICIAL_ADJ and a.ops == OFFICIAL_OPS


# --------------------------------------------------------------------------- npz op codes


def test_npz_op_code_decoding() -> None:
    assert decode_npz_ops([0, 1, 2, 3, 4, -1, -1]) == (INPUT, C1, C3, MP, OUTPUT)
    assert decode_npz_ops(np.array([0, 2, 4], dtype=np.int8)) == (INPUT, C3, OUTPUT)
    # The table's codes are not the hash-label order.
    assert NB101_OPS == (C3, C1, MP)
    with pytest.raises(InvalidArchError) as exc:
        decode_npz_ops([0, 7, 4])
    assert "unknown NB101 op code 7" in one_line(exc)
    with pytest.raises(InvalidArchError) as exc:  # padding is only allowed at the end
        decode_npz_ops([0, -1, 4])
    assert "trailing padding" in one_line(exc)


def test_spec_from_padded_row() -> None:
    adj = np.zeros((7, 7), np.uint8)
    adj[0, 1] = adj[1, 2] = 1
    spec = spec_from_npz(adj, np.array([0, 2, 4, -1, -1, -1, -1], np.int8))
    assert spec == NB101Spec(((0, 1, 0), (0, 0, 1), (0, 0, 0)), (INPUT, C3, OUTPUT))
    adj[2, 5] = 1  # an edge into a padded vertex
    with pytest.raises(InvalidArchError) as exc:
        spec_from_npz(adj, np.array([0, 2, 4, -1, -1, -1, -1], np.int8))
    assert "padded" in one_line(exc)


# --------------------------------------------------------------------------- pruning


def test_prune_removes_dangling_vertex() -> None:
    # Vertex 2 is reached from the input but leads nowhere (a dead end).
    adj = [
        [0, 1, 1, 0],
        [0, 0, 0, 1],
        [0, 0, 0, 0],
        [0, 0, 0, 0],
    ]
    spec = NB101Spec.from_arrays(adj, [INPUT, C3, MP, OUTPUT])
    pruned = spec.pruned()
    assert pruned == NB101Spec(((0, 1, 0), (0, 0, 1), (0, 0, 0)), (INPUT, C3, OUTPUT))
    assert spec.hash == pruned.hash == nb101_hash(*chain(C3))


def test_prune_removes_disconnected_and_unfed_vertices() -> None:
    # Vertex 1 has no edges at all; vertex 3 feeds the output but nothing feeds it.
    adj = [
        [0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
    ]
    spec = NB101Spec.from_arrays(adj, [INPUT, C1, MP, C3, OUTPUT])
    assert spec.pruned() == NB101Spec(*chain(MP))
    assert spec.hash == nb101_hash(*chain(MP))
    # The removed vertex's op matters nowhere: changing it keeps the hash.
    assert spec.hash == nb101_hash(adj, [INPUT, C3, MP, MP, OUTPUT])


def test_prune_keeps_full_dag_and_order() -> None:
    spec = NB101Spec(OFFICIAL_ADJ, OFFICIAL_OPS)
    assert spec.pruned() == spec
    # Pruning keeps kept vertices in order: removing a middle dead end keeps upper-triangularity.
    adj = [
        [0, 1, 0, 1, 0],
        [0, 0, 1, 0, 0],  # 1 -> 2, and 2 is a dead end
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
    ]
    pruned = NB101Spec.from_arrays(adj, [INPUT, C1, MP, C3, OUTPUT]).pruned()
    assert pruned == NB101Spec(*chain(C3))


def test_only_input_output_edge() -> None:
    spec = NB101Spec(((0, 1), (0, 0)), (INPUT, OUTPUT))
    assert spec.pruned() == spec
    # Interior vertices off the only path are all pruned.
    adj = [[0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert NB101Spec.from_arrays(adj, [INPUT, C3, C1, OUTPUT]).hash == spec.hash


# --------------------------------------------------------------------------- hash


def test_official_example_hash() -> None:
    assert nb101_hash(OFFICIAL_ADJ, OFFICIAL_OPS) == OFFICIAL_HASH
    assert NB101Spec(OFFICIAL_ADJ, OFFICIAL_OPS).hash == OFFICIAL_HASH


def test_hash_matches_table_sample(nb101_npz) -> None:
    with np.load(nb101_npz) as data:
        hashes, adjacency, ops = data["hash"], data["adjacency"], data["ops"]
    rng = np.random.default_rng(101)
    sorted_ops = np.sort(ops.astype(np.int64), axis=1)
    kinds = adjacency.reshape(len(hashes), -1).sum(axis=1) * 8 ** ops.shape[1] + sorted_ops @ 8 ** np.arange(ops.shape[1])
    shuffled = rng.permutation(len(hashes))
    order = shuffled[np.argsort(kinds[shuffled], kind="stable")]
    by_kind = kinds[order]
    rank_in_kind = np.arange(len(order)) - np.searchsorted(by_kind, by_kind)
    rows = np.append(order[rank_in_kind < NPZ_ROWS_PER_KIND], 0)  # and the official example (row 0)
    assert len(np.unique(kinds[rows])) == len(np.unique(kinds)) and len(rows) > 5_000
    mismatches = [
        int(i) for i in rows if spec_from_npz(adjacency[i], ops[i]).hash != hashes[i].decode()
    ]
    assert mismatches == [], f"{len(mismatches)} of {len(rows)} rows differ, e.g. {mismatches[:5]}"


def _relabelled(adj, ops, perm):
    """Vertex v of (adj, ops) becomes vertex perm[v]."""
    n = len(ops)
    new_adj = [[0] * n for _ in range(n)]
    new_ops = [""] * n
    for i in range(n):
        new_ops[perm[i]] = ops[i]
        for j in range(n):
            new_adj[perm[i]][perm[j]] = adj[i][j]
    return new_adj, new_ops


def test_hash_invariant_under_relabelling() -> None:
    relabelled = set()
    for inner in itertools.permutations(range(1, 6)):
        perm = (0, *inner, 6)
        adj, ops = _relabelled(OFFICIAL_ADJ, OFFICIAL_OPS, perm)
        if any(adj[i][j] for i in range(7) for j in range(i + 1)):
            continue  # not a topological order: not a valid spec
        relabelled.add(NB101Spec.from_arrays(adj, ops))
    assert len(relabelled) > 1  # several distinct matrices describe the same graph
    assert {spec.hash for spec in relabelled} == {OFFICIAL_HASH}


def test_hash_distinguishes_ops_and_edges() -> None:
    ops = list(OFFICIAL_OPS)
    ops[2] = C1
    assert nb101_hash(OFFICIAL_ADJ, ops) != OFFICIAL_HASH
    adj = [list(row) for row in OFFICIAL_ADJ]
    adj[4][5], adj[4][6] = 0, 1  # reroute one edge straight to the output
    assert nb101_hash(adj, OFFICIAL_OPS) != OFFICIAL_HASH
    # Swapping which of two ops comes first in a chain is a different graph.
    assert nb101_hash(*chain(C3, C1)) != nb101_hash(*chain(C1, C3))


# --------------------------------------------------------------------------- network


def test_vertex_channels() -> None:
    # Official example: vertices 2 and 5 feed the output; the others inherit downstream maxima.
    assert compute_vertex_channels(128, 128, OFFICIAL_ADJ) == [128, 64, 64, 64, 64, 64, 128]
    # Three feeders split 16 as 6, 5, 5; vertex 1 feeds vertices 2 and 3, so it takes 6.
    adj = [
        [0, 1, 0, 0, 1, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0],
    ]
    assert compute_vertex_channels(8, 16, adj) == [8, 6, 6, 5, 5, 16]
    assert compute_vertex_channels(8, 16, [[0, 1], [0, 0]]) == [8, 16]


def test_official_example_parameter_count() -> None:
    net = build_nb101(NB101Spec(OFFICIAL_ADJ, OFFICIAL_OPS))
    assert sum(p.numel() for p in net.parameters()) == OFFICIAL_TRAINABLE_PARAMETERS


def test_network_structure() -> None:
    net = build_nb101((OFFICIAL_ADJ, OFFICIAL_OPS), num_classes=7, stem_channels=16)
    assert isinstance(net.classifier, nn.Linear)
    assert (net.classifier.in_features, net.classifier.out_features) == (64, 7)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(bn.track_running_stats and bn.affine for bn in bns)
    cells = [m for m in net.modules() if isinstance(m, nb101.NB101Cell)]
    pools = [m for m in net.modules() if isinstance(m, nn.MaxPool2d) and m.kernel_size == 2]
    assert len(cells) == 9 and len(pools) == 2
    # A dangling vertex adds no layers: the network is built from the pruned spec.
    dangling = build_nb101(
        ([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]], [INPUT, C3, C3, OUTPUT]),
        stem_channels=16,
    )
    plain = build_nb101(chain(C3), stem_channels=16)
    n_dangling = sum(p.numel() for p in dangling.parameters())
    assert n_dangling == sum(p.numel() for p in plain.parameters())


@pytest.mark.parametrize("size", [32, 16])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_forward_shapes(size: int, mode: str) -> None:
    torch.manual_seed(0)
    net = build_nb101(NB101Spec(OFFICIAL_ADJ, OFFICIAL_OPS), num_classes=10, stem_channels=16)
    net.train(mode == "train")
    out = net(torch.randn(2, 3, size, size))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "adj, ops",
    [
        # Only the input→output edge: the cell is a single projection.
        (((0, 1), (0, 0)), (INPUT, OUTPUT)),
        # Three feeders with unequal channels (6, 5, 5 at 16): vertex 1 is truncated into 3.
        (
            [
                [0, 1, 0, 0, 1, 1],
                [0, 0, 1, 1, 0, 0],
                [0, 0, 0, 0, 0, 1],
                [0, 0, 0, 0, 0, 1],
                [0, 0, 0, 0, 0, 1],
                [0, 0, 0, 0, 0, 0],
            ],
            (INPUT, C1, C3, MP, C3, OUTPUT),
        ),
    ],
)
def test_forward_edge_cases(adj, ops) -> None:
    net = build_nb101((adj, ops), stem_channels=16, num_stacks=2, cells_per_stack=1)
    out = net(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_build_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidArchError) as exc:
        build_nb101("not a spec")  # type: ignore[arg-type]
    one_line(exc)
    with pytest.raises(InvalidArchError) as exc:
        build_nb101((OFFICIAL_ADJ, OFFICIAL_OPS), stem_channels=0)
    assert "stem_channels" in one_line(exc)
    three_feeders = [
        [0, 1, 1, 1, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
    ]
    with pytest.raises(InvalidArchError) as exc:
        build_nb101((three_feeders, [INPUT, C3, C3, C3, OUTPUT]), stem_channels=2)
    assert "at least" in one_line(exc)
