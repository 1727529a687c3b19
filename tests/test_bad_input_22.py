"""Issue 22's bad input for ground truth and architecture lists: a byte-order mark and CRLF line
ends, an NB101 hash in an NB201 run, a corrupt exported NB101 row, cells with missing or NaN
runs, and messages that name the command and the real fix."""

import logging
import math

import numpy as np
import pytest
from fixtures_nb101 import CELLS, Run, record_bytes, tfrecord_frame, write_official_tfrecord

from ntknas.cli import main
from ntknas.errors import DataError, InvalidArchError
from ntknas.groundtruth.benchmark import load_benchmark
from ntknas.groundtruth.nb101_tfrecord import export_nb101_npz, read_nb101_tfrecord
from ntknas.inputs.archs_file import read_archs_file
from ntknas.spaces import get_space
from ntknas.spaces.nb101 import nb101_hash

NB201_STRING = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|skip_connect~1|nor_conv_3x3~2|"


def test_an_archs_file_with_a_byte_order_mark_and_crlf_line_ends_reads_as_plain_text(tmp_path):
    path = tmp_path / "archs.txt"
    path.write_bytes("\ufeff0\r\n17\r\n# a comment\r\n".encode() + NB201_STRING.encode() + b"\r\n")
    keys = [arch.key for arch in read_archs_file(path, "nb201")]
    assert keys == [0, 17, get_space("nb201").table_key(NB201_STRING)]


def test_an_nb101_hash_in_an_nb201_archs_file_names_the_space_to_use(tmp_path):
    path = tmp_path / "archs.txt"
    path.write_text("0\n" + nb101_hash(*CELLS[1]) + "\n")
    with pytest.raises(InvalidArchError) as caught:
        read_archs_file(path, "nb201")
    message = str(caught.value)
    assert "line 2" in message and "looks like a NAS-Bench-101 module hash" in message
    assert "use space nb101" in message and "\n" not in message and "node groups" not in message


def test_a_benchmark_csv_saved_with_a_byte_order_mark_loads(tmp_path, nb201_csv):
    lines = nb201_csv.read_text().splitlines()[:6]
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    bench = load_benchmark(path, "nb201")
    assert len(bench) == 5 and bench.keys() == load_benchmark(nb201_csv, "nb201").keys()[:5]


def test_a_broken_benchmark_csv_names_the_command_that_writes_one(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text("index,arch_str,cifar10_test\n")
    with pytest.raises(DataError) as caught:
        load_benchmark(path, "nb201")
    assert "ntknas export-benchmark" in str(caught.value) and "export_benchmark_csv" not in str(caught.value)


@pytest.fixture
def exported(tmp_path):
    """An NB101 table exported from a small official file."""
    write_official_tfrecord(tmp_path / "nasbench_only108.tfrecord")
    return export_nb101_npz(tmp_path / "nasbench_only108.tfrecord", tmp_path / "nb101.npz", verify_crc=False)


def test_an_exported_nb101_row_whose_cell_does_not_hash_to_its_key_is_refused(exported, tmp_path):
    with np.load(exported) as data:
        arrays = {name: data[name] for name in data.files}
    row = int(np.flatnonzero(arrays["num_vertices"] == 3)[0])
    other = int(np.flatnonzero(arrays["num_vertices"] == 3)[1])
    arrays["ops"][row] = arrays["ops"][other]  # this row's cell is now the other row's
    corrupt = tmp_path / "corrupt.npz"
    np.savez(corrupt, **arrays)
    bench = load_benchmark(corrupt, "nb101")
    key = str(arrays["hash"][row].decode())
    with pytest.raises(DataError) as caught:
        bench.arch(key)
    message = str(caught.value)
    assert f"row {row} is keyed {key} but its cell hashes to" in message and "export-benchmark" in message
    assert "\n" not in message
    intact = load_benchmark(exported, "nb101")
    assert all(intact.arch(k).hash == k for k in intact.keys())  # a sound table passes the check


def _file_with(tmp_path, runs_of_cell: dict[int, list[Run]]):
    frames = []
    for cell, runs in runs_of_cell.items():
        adjacency, ops = CELLS[cell]
        frames += [tfrecord_frame(record_bytes(adjacency, ops, 108, run, 1000)) for run in runs]
    path = tmp_path / "nasbench_only108.tfrecord"
    path.write_bytes(b"".join(frames))
    return path


def test_cells_with_fewer_runs_or_a_nan_run_are_read_from_their_finite_runs_with_one_warning(tmp_path, caplog):
    good = [Run(0.5, 0.4, 0.9, 10.0), Run(0.7, 0.6, 0.9, 10.0), Run(0.6, 0.5, 0.9, 10.0)]
    nan = Run(math.nan, math.nan, 0.9, 10.0)
    path = _file_with(tmp_path, {1: good, 2: good[:2], 3: [good[0], nan], 4: [nan]})
    with caplog.at_level(logging.WARNING, logger="ntknas"):
        results = read_nb101_tfrecord(path, verify_crc=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "runs" in r.getMessage()]
    assert len(warnings) == 1
    assert "3 cell(s) have fewer than 3 runs and 2 run(s) have no finite accuracy" in warnings[0]
    assert "(1 cell(s) have none and no value)" in warnings[0]
    rows = {h: i for i, h in enumerate(results.hashes.tolist())}
    max_of = results.columns["test_max"]
    mean_of = results.columns["test_mean"]
    assert max_of[rows[nb101_hash(*CELLS[2])]] == pytest.approx(0.7)
    assert max_of[rows[nb101_hash(*CELLS[3])]] == pytest.approx(0.5)  # the NaN run is left out
    assert mean_of[rows[nb101_hash(*CELLS[3])]] == pytest.approx(0.5)
    assert math.isnan(max_of[rows[nb101_hash(*CELLS[4])]])  # no finite run: no value


def test_a_complete_file_reads_without_a_warning(tmp_path, caplog):
    write_official_tfrecord(tmp_path / "nasbench_only108.tfrecord")
    with caplog.at_level(logging.WARNING, logger="ntknas"):
        read_nb101_tfrecord(tmp_path / "nasbench_only108.tfrecord", verify_crc=False)
    assert not [r for r in caplog.records if "runs" in r.getMessage()]


def test_an_empty_tfrecord_names_the_file_to_get_not_an_option(tmp_path, capsys):
    empty = tmp_path / "nasbench_only108.tfrecord"
    empty.write_bytes(b"")
    assert main(["export-benchmark", str(empty), "--out", str(tmp_path / "nb101.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is empty" in err and "download nasbench_only108.tfrecord" in err
    assert "another epochs" not in err and not (tmp_path / "nb101.npz").exists()
