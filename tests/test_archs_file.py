"""--archs-file: architectures in a file's order, as lines or as the study's all_graphs.json."""

import csv
import json
from pathlib import Path

import pytest
from fixtures_data import write_cifar10
from fixtures_nb101 import CELLS, GRAPH_LABELS, write_all_graphs_json, write_official_tfrecord

from ntknas.cli import main
from ntknas.errors import DataError, InvalidArchError, UnknownNameError
from ntknas.inputs.archs_file import read_archs_file
from ntknas.runs.correlate import CorrelateConfig, entries_from_benchmark, run_correlate
from ntknas.runs.track import TrackConfig, select_track_archs
from ntknas.spaces.nb101 import NB101Spec, nb101_hash
from ntknas.spaces.nb201 import arch_from_index

pytestmark = pytest.mark.usefixtures("one_thread")

IN, C3, C1, OUT = "input", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"


@pytest.fixture(scope="module")
def nb201_table(tmp_path_factory) -> Path:
    """A small NB201 CSV: indices 0..9 with made-up accuracies."""
    path = tmp_path_factory.mktemp("nb201") / "nb201.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "arch_str", "cifar10_valid_test"])
        for index in range(10):
            writer.writerow([index, arch_from_index(index).to_string(), 80 + index])
    return path


@pytest.fixture(scope="module")
def nb101_table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("nb101") / "nasbench_only108.tfrecord"
    write_official_tfrecord(path, seed=3)
    return path


def _entries(space: str, benchmark: Path, archs_file: Path, **overrides) -> list:
    settings = {"archs": None, **overrides}
    config = CorrelateConfig(space=space, benchmark=str(benchmark), archs_file=str(archs_file), **settings)
    return entries_from_benchmark(config)


def test_nb201_lines_in_file_order(nb201_table, tmp_path):
    listing = tmp_path / "archs.txt"
    listing.write_text(
        f"5\n# a comment line\n\n{arch_from_index(2).to_string()}   # trailing comment\n"
        f"{arch_from_index(7).op_codes}\n5\n0\n"
    )
    entries = _entries("nb201", nb201_table, listing)
    assert [e.index for e in entries] == [5, 2, 7, 0]  # file order; the repeated 5 counts once
    assert [e.accuracy for e in entries] == [85, 82, 87, 80]
    assert entries[1].key == arch_from_index(2).to_string()
    assert [e.index for e in _entries("nb201", nb201_table, listing, archs="1:3")] == [2, 7]
    sampled = _entries("nb201", nb201_table, listing, sample=2, sample_seed=0)
    assert len(sampled) == 2 and {e.index for e in sampled} <= {5, 2, 7, 0}
    assert [e.index for e in sampled] == [e.index for e in _entries("nb201", nb201_table, listing, sample=2)]


def test_nb101_hash_lines_and_all_graphs_json(nb101_table, tmp_path):
    hashes = [nb101_hash(a, o) for a, o in CELLS]
    listing = tmp_path / "hashes.txt"
    listing.write_text("\n".join(h.upper() if i == 0 else h for i, h in enumerate(reversed(hashes))) + "\n")
    entries = _entries("nb101", nb101_table, listing)
    assert [e.key for e in entries] == list(reversed(hashes))
    assert [e.index for e in entries] == list(range(len(hashes)))  # positions in the file's order

    # The study's form: hash -> [adjacency, integer labels], in the file's (not sorted) order.
    order = [CELLS[5], CELLS[0], CELLS[6], CELLS[4]]
    graphs = tmp_path / "all_graphs.json"
    written = write_all_graphs_json(graphs, order)
    assert json.loads(graphs.read_text())[written[2]][1] == [-1, 0, 2, 0, 0, 1, -2]
    entries = _entries("nb101", nb101_table, graphs)
    assert [e.key for e in entries] == written
    for entry, (adjacency, ops) in zip(entries, order):
        assert entry.build == NB101Spec.from_arrays(adjacency, ops)  # the file's own drawing
    assert [e.key for e in _entries("nb101", nb101_table, graphs, archs="0:2")] == written[:2]


def test_all_graphs_networks_are_built_from_the_files_drawing(nb101_table, tmp_path):
    """An isomorphic drawing (same hash, vertices in another order) is built as the file draws it."""
    adjacency = [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    table_ops, drawn_ops = [IN, C3, C1, OUT], [IN, C1, C3, OUT]
    assert nb101_hash(adjacency, table_ops) == nb101_hash(adjacency, drawn_ops)
    graphs = tmp_path / "all_graphs.json"
    labels = [-1, GRAPH_LABELS[C1], GRAPH_LABELS[C3], -2]
    graphs.write_text(json.dumps({nb101_hash(adjacency, table_ops): [adjacency, labels]}))
    (entry,) = _entries("nb101", nb101_table, graphs)
    assert entry.build == NB101Spec.from_arrays(adjacency, drawn_ops)
    listing = tmp_path / "hash.txt"
    listing.write_text(nb101_hash(adjacency, table_ops))
    (from_table,) = _entries("nb101", nb101_table, listing)
    assert list(from_table.build.ops) == table_ops


def test_bad_files_are_one_line_errors(nb201_table, nb101_table, tmp_path):
    listing = tmp_path / "archs.txt"
    listing.write_text("3\n12\n4\n15\n")
    with pytest.raises(UnknownNameError, match=r"lists 12, which is not in the benchmark"):
        _entries("nb201", nb201_table, listing)
    listing.write_text("3\nconv\n")
    with pytest.raises(InvalidArchError, match="line 2: "):
        read_archs_file(listing, "nb201")
    listing.write_text("# nothing\n")
    with pytest.raises(DataError, match="lists no architecture"):
        read_archs_file(listing, "nb201")
    listing.write_text("00005c142e6f48ac74fdcf73e343987\n")
    with pytest.raises(InvalidArchError, match="line 1: .* 32-hex-digit"):
        read_archs_file(listing, "nb101")
    listing.write_text("ffffffffffffffffffffffffffffffff\n")
    with pytest.raises(UnknownNameError, match="lists 'ffffffffffffffffffffffffffffffff'"):
        _entries("nb101", nb101_table, listing)
    graphs = tmp_path / "all_graphs.json"
    adjacency, ops = CELLS[4]
    graphs.write_text(json.dumps({nb101_hash(*CELLS[1]): [adjacency, [-1, 0, 1, -2]]}))
    with pytest.raises(DataError, match="hashes to"):
        _entries("nb101", nb101_table, graphs)
    graphs.write_text(json.dumps({nb101_hash(adjacency, ops): [adjacency, [-1, 0, 7, -2]]}))
    with pytest.raises(DataError, match="op label 7"):
        _entries("nb101", nb101_table, graphs)
    with pytest.raises(DataError, match="is JSON"):
        read_archs_file(graphs, "nb201")
    graphs.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_archs_file(graphs, "nb101")
    with pytest.raises(DataError, match="not found"):
        read_archs_file(tmp_path / "absent.txt", "nb201")


def test_cli_unknown_key_is_one_line(nb201_table, tmp_path, capsys):
    listing = tmp_path / "archs.txt"
    listing.write_text("1\n99\n")
    code = main(["correlate", "--benchmark", str(nb201_table), "--archs-file", str(listing),
                 "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "lists 99" in err and err.count("\n") == 1


def test_nb101_run_measures_the_files_cells_with_the_study_init(nb101_table, tmp_path):
    cifar = write_cifar10(tmp_path / "cifar", per_class=1).parent
    graphs = tmp_path / "all_graphs.json"
    written = write_all_graphs_json(graphs, [CELLS[5], CELLS[1], CELLS[4]])
    config = CorrelateConfig(
        space="nb101", dataset="cifar10", data_dir=str(cifar), benchmark=str(nb101_table),
        archs_file=str(graphs), archs="0:2", batch_size=4, bn_modes=("train",), metrics=("knas",),
        nb101_stem_channels=4, network_options={"num_stacks": 1, "cells_per_stack": 1}, out=str(tmp_path / "run"),
    )
    outcome = run_correlate(config)
    assert outcome.measured == 2
    with (tmp_path / "run" / "scores.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["arch"] for r in rows] == written[:2] and all(float(r["knas"]) > 0 for r in rows)
    assert "initialization: study" in (tmp_path / "run" / "summary.md").read_text()


def test_track_takes_an_archs_file(tmp_path):
    listing = tmp_path / "archs.txt"
    listing.write_text("6111\n1\n" + arch_from_index(42).to_string() + "\n")
    picked = select_track_archs(TrackConfig(archs_file=str(listing)))
    assert [a.index for a in picked] == [6111, 1, 42]
    sampled = select_track_archs(TrackConfig(archs_file=str(listing), sample=2, sample_seed=0))
    assert len(sampled) == 2 and {a.index for a in sampled} <= {6111, 1, 42}
    with pytest.raises(InvalidArchError, match="choose the architectures one way"):
        select_track_archs(TrackConfig(archs_file=str(listing), archs="1"))
