"""The official NAS-Bench-101 results file, read without TensorFlow: framing, CRCs, protocol
buffers, the per-cell targets, the exported table, and broken files."""

import logging
import struct
from pathlib import Path

import numpy as np
import pytest
from fixtures_nb101 import (
    CELLS,
    Run,
    crc32c_bitwise,
    model_metrics_bytes,
    official_runs,
    record_bytes,
    tfrecord_frame,
    write_official_tfrecord,
)

from ntknas.cli import main
from ntknas.errors import DataError
from ntknas.groundtruth import load_benchmark
from ntknas.groundtruth import nb101_tfrecord as tfrecord
from ntknas.groundtruth.nb101_tfrecord import (
    EvaluationData,
    ModelMetrics,
    ProtobufError,
    crc32c_python,
    decode_model_metrics,
    encode_model_metrics,
    final_results,
    frame_record,
    iter_records,
    masked_crc32c,
    read_nb101_tfrecord,
)
from ntknas.spaces.nb101 import nb101_hash

EXAMPLE_HASH = "00005c142e6f48ac74fdcf73e3439874"


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> tuple[Path, dict[str, list[Run]]]:
    path = tmp_path_factory.mktemp("nb101") / "nasbench_only108.tfrecord"
    return path, write_official_tfrecord(path, seed=1, extra_epochs=True)


# ------------------------------------------------------------------------------- CRC and protobuf


def test_crc32c_known_values_and_agreement():
    assert crc32c_python(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c_bitwise(b"123456789") == 0xE3069283
    data = bytes(range(256)) * 3
    assert crc32c_python(data) == crc32c_bitwise(data)
    fast = tfrecord.fast_crc32c()
    if fast is not None:
        assert fast(data) == crc32c_python(data)
    # framing: ntknas's writer lays out exactly what the independent fixture writer does
    assert frame_record(b'["x"]') == tfrecord_frame(b'["x"]')
    crc = crc32c_python(b"abc")
    assert masked_crc32c(b"abc") == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) % 2**32


def test_protobuf_by_hand():
    # field 2 (varint) = 150: the protocol-buffer documentation's example bytes 08 96 01, as field 2
    assert decode_model_metrics(b"\x10\x96\x01").trainable_parameters == 150
    # a negative int32 is a ten-byte sign-extended varint
    negative = b"\x10" + b"\xff" * 9 + b"\x01"
    assert decode_model_metrics(negative).trainable_parameters == -1
    evaluation = b"\x09" + struct.pack("<d", 108.0) + b"\x29" + struct.pack("<d", 0.5) + b"\x32\x02ab"
    message = b"\x0a" + bytes([len(evaluation)]) + evaluation + b"\x19" + struct.pack("<d", 7.5)
    metrics = decode_model_metrics(message)
    assert metrics.evaluation_data == (EvaluationData(current_epoch=108.0, test_accuracy=0.5, checkpoint_path="ab"),)
    assert metrics.total_time == 7.5
    # current_epoch as an int32 varint (the reading of the .proto) decodes too
    as_varint = b"\x08\x6c" + b"\x29" + struct.pack("<d", 0.25)
    assert decode_model_metrics(b"\x0a" + bytes([len(as_varint)]) + as_varint).final.current_epoch == 108.0
    with pytest.raises(ProtobufError):
        decode_model_metrics(b"\x0a\x05ab")  # length past the end
    with pytest.raises(ProtobufError):
        decode_model_metrics(b"\x0b")  # wire type 3 (groups) is not used by the format


def test_fast_final_results_agree_with_the_decoder():
    run = Run(0.91, 0.9, 0.99, 1234.5)
    for data in (model_metrics_bytes(run, 4242), model_metrics_bytes(run, 4242, "gs://b/x")):
        decoded = decode_model_metrics(data)
        assert len(decoded.evaluation_data) == 3 and decoded.trainable_parameters == 4242
        final = decoded.final
        assert (final.test_accuracy, final.validation_accuracy, final.train_accuracy, final.training_time) == (
            0.91, 0.9, 0.99, 1234.5)
        assert final_results(data) == (4242, 0.91, 0.9, 0.99, 1234.5)
    # unknown fields (any wire type) are skipped by both
    odd = EvaluationData(108.0, 3.0, 0.3, 0.2, 0.1)
    body = tfrecord.encode_evaluation_data(odd) + b"\x78\x05" + b"\x85\x01" + b"\x00\x00\x80\x3f"
    message = b"\x0a" + bytes([len(body)]) + body + b"\x10\x07" + b"\xa2\x01\x01z"
    assert decode_model_metrics(message).final == odd
    assert final_results(message) == (7, 0.1, 0.2, 0.3, 3.0)
    metrics = ModelMetrics((odd, EvaluationData(1.0, 2.0, 0.5, 0.6, 0.7, "p")), 99, 4.0)
    assert decode_model_metrics(encode_model_metrics(metrics)) == metrics
    with pytest.raises(ProtobufError, match="no EvaluationData"):
        final_results(b"\x10\x07")


# ------------------------------------------------------------------------------- round trip


def test_official_file_round_trip(official):
    path, runs = official
    results = read_nb101_tfrecord(path, verify_crc=True)
    assert results.crc_verified and results.epochs == 108
    assert results.records == 3 * len(CELLS) * 2  # the 36-epoch records are read and skipped
    assert results.runs_per_cell == {3: len(CELLS)}
    assert list(results.hashes) == sorted(runs)
    by_hash = {h: row for row, h in enumerate(results.hashes)}
    for adjacency, ops in CELLS:
        h = nb101_hash(adjacency, ops)
        row = by_hash[h]
        cell = runs[h]
        tests = [r.test for r in cell]
        assert results.columns["test_max"][row] == max(tests)
        assert results.columns["test_mean"][row] == pytest.approx(np.mean(tests), rel=1e-15)
        assert [results.columns[f"test_run{i}"][row] for i in range(3)] == tests
        assert [results.columns[f"valid_run{i}"][row] for i in range(3)] == [r.valid for r in cell]
        assert results.columns["valid_max"][row] == max(r.valid for r in cell)
        assert results.columns["valid_mean"][row] == pytest.approx(np.mean([r.valid for r in cell]), rel=1e-15)
        assert results.columns["train_mean"][row] == pytest.approx(np.mean([r.train for r in cell]), rel=1e-15)
        assert results.columns["train_seconds"][row] == pytest.approx(np.mean([r.seconds for r in cell]), rel=1e-15)
        assert results.columns["params"][row] == 1000 * (len(ops) + 1)
        n = len(ops)
        assert results.num_vertices[row] == n
        assert np.array_equal(results.adjacency[row, :n, :n], adjacency)
        assert not results.adjacency[row, n:].any() and not results.adjacency[row, :, n:].any()
        codes = {"input": 0, "conv1x1-bn-relu": 1, "conv3x3-bn-relu": 2, "maxpool3x3": 3, "output": 4}
        assert results.op_codes[row].tolist() == [codes[op] for op in ops] + [-1] * (7 - n)


def test_load_benchmark_reads_the_official_file(official):
    path, runs = official
    bench = load_benchmark(path, "nb101")
    assert bench.target == "test_max"
    assert bench.accuracy(EXAMPLE_HASH) == pytest.approx(100 * max(r.test for r in runs[EXAMPLE_HASH]), rel=1e-15)
    assert bench.with_target("test_run1").accuracy(EXAMPLE_HASH) == pytest.approx(100 * runs[EXAMPLE_HASH][1].test)
    assert bench.with_target("params").accuracy(EXAMPLE_HASH) == 8000  # never scaled
    assert set(bench.fraction_columns) == {"test_max", "test_mean", "test_run0", "test_run1", "test_run2",
                                           "valid_max", "valid_mean", "valid_run0", "valid_run1", "valid_run2",
                                           "train_mean"}
    adjacency, ops = bench.nb101_spec(EXAMPLE_HASH)
    assert nb101_hash(adjacency, ops) == EXAMPLE_HASH
    with pytest.raises(DataError, match="use space='nb101'"):
        load_benchmark(path, "nb201")


def test_export_benchmark_writes_the_table_layout(official, tmp_path, capsys):
    path, runs = official
    out = tmp_path / "nb101.npz"
    assert main(["export-benchmark", str(path), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with np.load(out) as table:
        assert table["hash"].dtype == np.dtype("S32")
        assert table["adjacency"].dtype == np.uint8 and table["adjacency"].shape == (len(CELLS), 7, 7)
        assert table["ops"].dtype == np.int8 and table["ops"].shape == (len(CELLS), 7)
        assert table["op_code_legend"].tolist()[:2] == ["input", "conv1x1-bn-relu"]
        assert set(table.files) >= set(tfrecord.TARGET_COLUMNS)
    direct, exported = load_benchmark(path, "nb101"), load_benchmark(out, "nb101")
    assert exported.target == "test_max" and exported.targets == direct.targets
    for name in direct.targets:
        assert np.array_equal(exported.columns[name], direct.columns[name]), name
    for h in runs:
        a, b = direct.nb101_spec(h), exported.nb101_spec(h)
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def test_cells_with_fewer_runs(tmp_path):
    path = tmp_path / "two_runs.tfrecord"
    runs = write_official_tfrecord(path, seed=2, runs=2)
    results = read_nb101_tfrecord(path, verify_crc=True)
    assert results.runs_per_cell == {2: len(CELLS)}
    row = list(results.hashes).index(EXAMPLE_HASH)
    assert np.isnan(results.columns["test_run2"][row])
    assert results.columns["test_max"][row] == max(r.test for r in runs[EXAMPLE_HASH])


# ------------------------------------------------------------------------------- broken files


def _records(path: Path) -> list[bytes]:
    return [data for _, data in iter_records(path, verify_crc=True)]


def _one_line_error(capsys, path: Path, out: Path) -> str:
    assert main(["export-benchmark", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and not list(out.parent.glob("*.tmp*"))  # nothing stored
    return err


def test_truncated_file_names_the_record(official, tmp_path, capsys):
    path, _ = official
    raw = path.read_bytes()
    sizes = [16 + len(d) for d in _records(path)]
    cut = sum(sizes[:5]) + 30  # inside record 5's data
    broken = tmp_path / "cut.tfrecord"
    broken.write_bytes(raw[:cut])
    with pytest.raises(DataError, match="record 5 is truncated"):
        read_nb101_tfrecord(broken, verify_crc=False)
    assert "record 5 is truncated" in _one_line_error(capsys, broken, tmp_path / "out.npz")
    broken.write_bytes(raw[:sum(sizes[:3]) + 7])  # inside record 3's header
    with pytest.raises(DataError, match=r"record 3 is truncated \(only 7 of its 12 header bytes\)"):
        read_nb101_tfrecord(broken)


def test_bad_crc_names_the_record(official, tmp_path, capsys):
    path, _ = official
    raw = bytearray(path.read_bytes())
    sizes = [16 + len(d) for d in _records(path)]
    start = sum(sizes[:4])
    data_crc = bytearray(raw)
    data_crc[start + 12 + 3] ^= 0x01  # a data byte of record 4 (inside the hash string)
    broken = tmp_path / "crc.tfrecord"
    broken.write_bytes(bytes(data_crc))
    with pytest.raises(DataError, match=r"record 4 is corrupt \(the CRC-32C of its data does not match\)"):
        read_nb101_tfrecord(broken, verify_crc=True)
    if tfrecord.fast_crc32c() is not None:  # the default checks CRCs when the fast package is there
        assert "record 4 is corrupt" in _one_line_error(capsys, broken, tmp_path / "out.npz")
    length_crc = bytearray(raw)
    length_crc[start + 8] ^= 0xFF
    broken.write_bytes(bytes(length_crc))
    with pytest.raises(DataError, match=r"record 4 is corrupt \(the CRC-32C of its length does not match\)"):
        read_nb101_tfrecord(broken, verify_crc=True)


def test_without_the_crc_package_lengths_are_checked_and_a_warning_says_so(official, tmp_path, monkeypatch, caplog):
    path, _ = official
    monkeypatch.setattr(tfrecord, "fast_crc32c", lambda: None)
    for _ in range(2):  # every read says so, once
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="ntknas.groundtruth.nb101_tfrecord"):
            results = read_nb101_tfrecord(path)
        expected = (
            f"{path.name}: CRC-32C checksums are not verified (record lengths are): install google-crc32c "
            "(pip install 'ntknas[crc32c]') to verify them"
        )
        assert [r.message for r in caplog.records] == [expected]
        assert not results.crc_verified
    assert not read_nb101_tfrecord(path, verify_crc=False).crc_verified
    raw = path.read_bytes()
    broken = tmp_path / "short.tfrecord"
    broken.write_bytes(raw[:-2])
    last = len(_records(path)) - 1
    with pytest.raises(DataError, match=f"record {last} is truncated"):
        read_nb101_tfrecord(broken)


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"not json", "not a JSON list of 5 fields"),
        (b'{"a": 1}', "not a JSON list of 5 fields"),
        (b'["00005c142e6f48ac74fdcf73e3439874", 108, "0110", "input,output"]', "not a JSON list of 5 fields"),
        (b'["00005c142e6f48ac74fdcf73e3439874", 108, "0100", "input,output", "@@@"]', "not a base64 ModelMetrics"),
        (b'["nothex", 108, "0100", "input,output", "CgA="]', "module hash"),
        (b'["00005c142e6f48ac74fdcf73e3439874", 108, "012", "input,output", "CgA="]', "not a 2x2 matrix"),
        (b'["00005c142e6f48ac74fdcf73e3439874", 108, "0100", "input,conv5x5", "CgA="]', "unknown operation 'conv5x5'"),
        (b'["00005c142e6f48ac74fdcf73e3439874", "108", "0100", "input,output", "CgA="]', "epochs '108'"),
    ],
)
def test_bad_records_name_the_record(official, tmp_path, payload, message, capsys):
    path, _ = official
    records = _records(path)
    broken = tmp_path / "bad.tfrecord"
    broken.write_bytes(b"".join(tfrecord_frame(d) for d in records[:2]) + tfrecord_frame(payload)
                       + b"".join(tfrecord_frame(d) for d in records[2:]))
    with pytest.raises(DataError, match=f"record 2 is not a NAS-Bench-101 result .*{message}"):
        read_nb101_tfrecord(broken, verify_crc=True)
    err = _one_line_error(capsys, broken, tmp_path / "out.npz")
    assert "record 2" in err


def test_missing_empty_and_foreign_files(tmp_path, capsys):
    with pytest.raises(DataError, match="not found"):
        read_nb101_tfrecord(tmp_path / "absent.tfrecord")
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="is empty") as caught:
        read_nb101_tfrecord(empty, verify_crc=False)
    assert "epochs" not in str(caught.value)  # no such option: the fix is another file
    only36 = tmp_path / "only36.tfrecord"
    adjacency, ops = CELLS[1]
    only36.write_bytes(tfrecord_frame(record_bytes(adjacency, ops, 36, Run(0.1, 0.1, 0.1, 1.0), 5)))
    with pytest.raises(DataError, match=r"holds no 108-epoch NAS-Bench-101 record \(its 1 records are of 36-epoch "
                       r"runs\): use nasbench_only108.tfrecord"):
        read_nb101_tfrecord(only36)
    assert main(["export-benchmark", str(only36), "--out", str(tmp_path / "t.csv")]) == 2
    assert "must end in .npz" in capsys.readouterr().err


def test_runs_are_numbered_in_file_order(tmp_path):
    """Run r of a cell is its r-th record in the file, wherever the other cells' records fall."""
    adjacency, ops = CELLS[2]
    other_adjacency, other_ops = CELLS[3]
    first, second, third = Run(0.5, 0.5, 0.5, 1.0), Run(0.7, 0.6, 0.6, 2.0), Run(0.6, 0.7, 0.7, 3.0)
    frames = [
        record_bytes(adjacency, ops, 108, first, 10),
        record_bytes(other_adjacency, other_ops, 108, third, 20),
        record_bytes(adjacency, ops, 108, second, 10),
        record_bytes(adjacency, ops, 108, third, 10),
    ]
    path = tmp_path / "order.tfrecord"
    path.write_bytes(b"".join(tfrecord_frame(f) for f in frames))
    results = read_nb101_tfrecord(path, verify_crc=True)
    row = list(results.hashes).index(nb101_hash(adjacency, ops))
    assert [results.columns[f"test_run{i}"][row] for i in range(3)] == [0.5, 0.7, 0.6]
    assert results.runs_per_cell == {1: 1, 3: 1}
    assert official_runs(0)  # the fixture helper itself is deterministic and non-empty
