"""Tests of benchmark ground truth: the shared real tables and small official-format fixtures."""

from __future__ import annotations

import bz2
import csv
import math
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from ntknas.errors import DataError, InvalidArchError, UnknownNameError
from ntknas.groundtruth import official
from ntknas.groundtruth.benchmark import Benchmark, canonical_arch_string, load_benchmark

# The official index 0 (docs/protocol.md, "Search spaces").
INDEX0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
# data README: the official NAS-Bench-101 example hash.
EXAMPLE_HASH = "00005c142e6f48ac74fdcf73e3439874"
# data README: op codes of the npz table.
NPZ_CODES = {0: "input", 1: "conv1x1-bn-relu", 2: "conv3x3-bn-relu", 3: "maxpool3x3", 4: "output"}


def _csv_column(path: Path, name: str) -> list[str]:
    with open(path, newline="") as handle:
        return [row[name] for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def nb201(nb201_csv: Path) -> Benchmark:
    return load_benchmark(nb201_csv, "nb201")


@pytest.fixture(scope="module")
def nb101(nb101_npz: Path) -> Benchmark:
    return load_benchmark(nb101_npz, "nb101")


# --------------------------------------------------------------------------------------------
# Real NB201 CSV
# --------------------------------------------------------------------------------------------


def test_nb201_csv_facts(nb201: Benchmark, nb201_csv: Path) -> None:
    assert len(nb201) == len(_csv_column(nb201_csv, "index")) == 15625
    assert nb201.space == "nb201"
    assert nb201.target == "cifar10_valid_test"  # the default when present
    assert "op_codes" not in nb201.targets and "index" not in nb201.targets
    assert {"cifar10_test", "cifar100_test", "imagenet16_120_test", "params_mb"} <= set(nb201.targets)
    assert nb201.arch_string(0) == INDEX0
    c10 = nb201.with_target("cifar10_test")
    best = max(c10.keys(), key=c10.accuracy)
    assert round(c10.accuracy(best), 2) == 94.37  # the benchmark paper's optimum (data README)
    assert nb201.fraction_columns == ()  # NB201 is stored in percent and exposed as stored


def test_nb201_keys_resolve_by_index_and_string(nb201: Benchmark, nb201_csv: Path) -> None:
    strings = _csv_column(nb201_csv, "arch_str")
    values = [float(v) for v in _csv_column(nb201_csv, "cifar10_valid_test")]
    for i in (0, 1, 777, 15624):
        assert nb201.accuracy(i) == values[i]
        assert nb201.accuracy(np.int64(i)) == values[i]
        assert nb201.accuracy(str(i)) == values[i]
        assert nb201.accuracy(strings[i]) == values[i]
        assert nb201.index_of(strings[i]) == i
        assert nb201.arch_string(i) == strings[i]
    # Whitespace and edge order inside a node do not matter.
    spaced = " |avg_pool_3x3~0| + |skip_connect~1|nor_conv_1x1~0| + " + INDEX0.split("+")[2] + " "
    assert canonical_arch_string(spaced) == INDEX0
    assert nb201.index_of(spaced) == 0
    assert nb201.keys()[:3] == [0, 1, 2]
    np.testing.assert_array_equal(nb201.accuracies([3, 2]), [values[3], values[2]])


def test_nb201_target_selection(nb201: Benchmark, nb201_csv: Path) -> None:
    values = [float(v) for v in _csv_column(nb201_csv, "cifar100_test")]
    c100 = load_benchmark(nb201_csv, "nb201", target="cifar100_test")
    assert c100.target == "cifar100_test" and c100.accuracy(5) == values[5]
    assert nb201.with_target("cifar100_test").accuracy(5) == values[5]
    assert nb201.target == "cifar10_valid_test"  # with_target does not mutate


def test_supplementary_needs_explicit_target_and_reports_missing_values(nb201_supplementary_csv: Path) -> None:
    with pytest.raises(UnknownNameError, match="no default target column.*cifar10_test_ntksubset"):
        load_benchmark(nb201_supplementary_csv, "nb201")
    band = load_benchmark(nb201_supplementary_csv, "nb201", target="cifar10_test_ntksubset")
    present = band.keys(finite_only=True)
    cells = _csv_column(nb201_supplementary_csv, "cifar10_test_ntksubset")
    assert len(present) == sum(1 for c in cells if c.strip())
    absent = next(i for i, c in enumerate(cells) if not c.strip())
    assert absent not in band and present[0] in band
    with pytest.raises(DataError, match="no 'cifar10_test_ntksubset' value"):
        band.accuracy(absent)


# --------------------------------------------------------------------------------------------
# Real NB101 npz
# --------------------------------------------------------------------------------------------


def test_nb101_npz_example_hash(nb101: Benchmark, nb101_npz: Path) -> None:
    with np.load(nb101_npz) as raw:
        n = len(raw["hash"])
        row = int(np.flatnonzero(raw["hash"] == EXAMPLE_HASH.encode())[0])
        stored = float(raw["test_acc_seed0"][row])
        adjacency, codes, nv = raw["adjacency"][row], raw["ops"][row], int(raw["num_vertices"][row])
    assert len(nb101) == n
    assert nb101.target == "test_acc_seed0"
    assert nb101.fraction_columns == ("test_acc_seed0",)  # stored as a fraction, exposed in percent
    acc = nb101.accuracy(EXAMPLE_HASH)
    assert acc == pytest.approx(100.0 * stored, rel=1e-12)
    assert 92.117 < acc < 92.118  # data README: 0.92117...
    assert nb101.accuracy(EXAMPLE_HASH.upper()) == acc
    adj, ops = nb101.nb101_spec(EXAMPLE_HASH)
    assert adj.shape == (nv, nv)
    np.testing.assert_array_equal(adj, adjacency[:nv, :nv])
    assert ops == [NPZ_CODES[int(c)] for c in codes[:nv]]
    assert ops[0] == "input" and ops[-1] == "output"


def test_nb101_spec_trims_padding(nb101: Benchmark, nb101_npz: Path) -> None:
    with np.load(nb101_npz) as raw:
        row = int(np.flatnonzero(raw["num_vertices"] == 5)[0])
        key = raw["hash"][row].decode()
        codes = raw["ops"][row]
    adj, ops = nb101.nb101_spec(key)
    assert adj.shape == (5, 5) and len(ops) == 5
    assert all(int(c) == -1 for c in codes[5:])


def test_nb101_spec_hash_round_trip(nb101: Benchmark) -> None:
    """Decoded specs hash back to their key with the NB101 space module (when it imports)."""
    try:
        from ntknas.spaces.nb101 import nb101_hash
    except ImportError as exc:  # pragma: no cover - the space module is written in parallel
        pytest.skip(f"ntknas.spaces.nb101 not importable: {exc}")
    rng = np.random.default_rng(0)
    keys = nb101.row_keys[rng.choice(len(nb101), size=50, replace=False)].tolist() + [EXAMPLE_HASH]
    for key in keys:
        adj, ops = nb101.nb101_spec(key)
        assert nb101_hash(adj, ops) == key


def test_nb101_csv_with_hash(tmp_path: Path, nb101: Benchmark) -> None:
    keys = nb101.row_keys[:3].tolist()
    path = tmp_path / "nb101.csv"
    path.write_text("hash,test_acc,valid_acc\n" + "".join(f"{k},0.9{i},0.8{i}\n" for i, k in enumerate(keys)))
    with pytest.raises(UnknownNameError, match="no default target.*test_acc, valid_acc"):
        load_benchmark(path, "nb101")  # two targets and neither is the default
    bench = load_benchmark(path, "nb101", target="valid_acc")
    assert bench.fraction_columns == ("test_acc", "valid_acc")  # fractions, exposed in percent
    assert bench.accuracy(keys[2]) == pytest.approx(82.0)
    assert bench.with_target("test_acc").accuracy(keys[1].upper()) == pytest.approx(91.0)
    with pytest.raises(DataError, match="load the NB101 .npz"):
        bench.nb101_spec(keys[0])


def test_nb201_csv_with_only_index_or_only_arch_str(tmp_path: Path, nb201: Benchmark) -> None:
    """The missing key column is filled in by the NB201 space module (when it imports)."""
    try:
        from ntknas.spaces import nb201 as space
    except ImportError as exc:  # pragma: no cover - the space module is written in parallel
        pytest.skip(f"ntknas.spaces.nb201 not importable: {exc}")
    picks = [15624, 3, 0, 9000]
    only_index = tmp_path / "index.csv"
    only_index.write_text("index,acc\n" + "".join(f"{i},{nb201.accuracy(i)}\n" for i in picks))
    only_arch = tmp_path / "arch.csv"
    rows = "".join(f"{nb201.arch_string(i)},{nb201.accuracy(i)}\n" for i in picks)
    only_arch.write_text("arch_str,acc\n" + rows)
    for path in (only_index, only_arch):
        bench = load_benchmark(path, "nb201")
        assert bench.target == "acc" and bench.keys() == picks
        for i in picks:
            assert bench.accuracy(i) == bench.accuracy(nb201.arch_string(i)) == nb201.accuracy(i)
            assert bench.arch_string(i) == nb201.arch_string(i)
    assert load_benchmark(only_index, "nb201").accuracy(space.arch_from_index(9000)) == nb201.accuracy(9000)


# --------------------------------------------------------------------------------------------
# Error paths
# --------------------------------------------------------------------------------------------


def test_missing_file_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found: get NAS-Bench-201-v1_0-e61699.pth"):
        load_benchmark(tmp_path / "nope.csv", "nb201")
    with pytest.raises(DataError, match="not found: get the NAS-Bench-101 results"):
        load_benchmark(tmp_path / "nope.npz", "nb101")
    with pytest.raises(DataError, match="not found"):
        official.load_official(tmp_path / "NAS-Bench-201-v1_0-e61699.pth")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("index,arch_str,acc\n", "no rows"),
        ("index,arch_str,acc\n0,|a~0|,1.0\n1,|b~0|\n", "line 3 .* has 2 fields but the header has 3"),
        ("index,index,acc\n0,0,1\n", "repeated column name"),
        ("index,acc\nx,1.0\n", "not a non-negative integer"),
        ("index,acc\n0,1.0\n0,2.0\n", "index twice"),
        ("index,name\n0,foo\n", "no numeric target column"),
        ("acc,other\n1.0,2.0\n", "no index/arch_str column"),
    ],
)
def test_corrupt_csv(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bench.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_benchmark(path, "nb201")


def test_binary_garbage_csv_and_npz(tmp_path: Path) -> None:
    garbage = bytes(range(256)) * 8
    (tmp_path / "bad.csv").write_bytes(garbage)
    (tmp_path / "bad.npz").write_bytes(garbage)
    with pytest.raises(DataError, match="not a readable CSV"):
        load_benchmark(tmp_path / "bad.csv", "nb201")
    with pytest.raises(DataError, match="cannot read .* as an .npz table"):
        load_benchmark(tmp_path / "bad.npz", "nb101")


def test_unknown_target_lists_available(nb201: Benchmark, nb201_csv: Path) -> None:
    message = "unknown target column 'cifar11_test'.*cifar10_test, cifar100_test"
    with pytest.raises(UnknownNameError, match=message):
        load_benchmark(nb201_csv, "nb201", target="cifar11_test")
    with pytest.raises(UnknownNameError, match="available targets are"):
        nb201.with_target("nope")


def test_unknown_key(nb201: Benchmark, nb101: Benchmark) -> None:
    for key in (15625, -1, True, 3.0, "|zzz~0|+|zzz~0|zzz~1|+|zzz~0|zzz~1|zzz~2|"):
        with pytest.raises((UnknownNameError, InvalidArchError)):
            nb201.accuracy(key)
    with pytest.raises(KeyError):  # UnknownNameError is a KeyError too
        nb201.accuracy(99999)
    with pytest.raises(UnknownNameError, match="not in the NAS-Bench-101 benchmark"):
        nb101.accuracy("f" * 32)
    with pytest.raises(UnknownNameError, match="32-hex-digit module hash"):
        nb101.accuracy("not-a-hash")
    assert 99999 not in nb201 and "f" * 32 not in nb101
    with pytest.raises(DataError, match="nb101_spec is for NAS-Bench-101"):
        nb201.nb101_spec(EXAMPLE_HASH)
    with pytest.raises(DataError, match="arch_string is for NAS-Bench-201"):
        nb101.arch_string(0)


def test_wrong_space_and_unknown_space(tmp_path: Path, nb201_csv: Path, nb101_npz: Path) -> None:
    with pytest.raises(DataError, match="NAS-Bench-201 table .* use space='nb201'"):
        load_benchmark(nb201_csv, "nb101")
    with pytest.raises(DataError, match="NAS-Bench-101 table .* use space='nb101'"):
        load_benchmark(nb101_npz, "nb201")
    with pytest.raises(UnknownNameError, match="use one of nb201, nb101"):
        load_benchmark(nb201_csv, "nb301")
    other = tmp_path / "bench.json"
    other.write_text("{}")
    with pytest.raises(DataError, match="unsupported benchmark file type"):
        load_benchmark(other, "nb201")


# --------------------------------------------------------------------------------------------
# Official-format fixtures
# --------------------------------------------------------------------------------------------

FIXTURE_ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
    "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|",
]
# dataset -> eval sets, as the benchmark stores them (cifar10-valid also gets an x-test so that
# the precedence of ori-test, the API's "test-accuracy" for it, is checked).
FIXTURE_SETS = {
    "cifar10-valid": ("x-valid", "x-test", "ori-test"),
    "cifar10": ("ori-test",),
    "cifar100": ("x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("x-valid", "x-test", "ori-test"),
}
# index -> dataset -> seeds; index 2 is not evaluated, index 3 lacks ImageNet16-120.
FIXTURE_SEEDS = {
    0: {
        "cifar10-valid": [777, 888, 999],
        "cifar10": [777, 888],
        "cifar100": [777],
        "ImageNet16-120": [777, 999],
    },
    1: {"cifar10-valid": [777], "cifar10": [777], "cifar100": [777, 888], "ImageNet16-120": [888]},
    3: {"cifar10-valid": [888, 999], "cifar10": [999], "cifar100": [777]},
}


def _final_accuracy(index: int, dataset: str, seed: int, setname: str, epochs: int) -> float:
    """A distinct, known last-epoch accuracy for each (arch, dataset, seed, set, schedule)."""
    return (
        10.0 + 7.0 * index + list(FIXTURE_SETS).index(dataset) * 11.0 + (seed % 100) * 0.01
        + ("x-valid", "x-test", "ori-test").index(setname) * 2.5 + (0.3 if epochs == 12 else 0.0)
    )


def _params(index: int, dataset: str) -> float:
    return 0.1 + 0.25 * index + (0.006 if dataset == "cifar100" else 0.0)


def _results_count(index: int, dataset: str, seed: int, epochs: int, scalar: type = float) -> dict:
    """A ResultsCount state as the API's ``state_dict()`` writes it."""
    sets = FIXTURE_SETS[dataset]
    acc, loss, times = {}, {}, {}
    for s in sets:
        for e in range(epochs):
            key = f"{s}@{e}"
            # Earlier epochs differ from the last one, so reading the wrong epoch is caught.
            acc[key] = scalar(_final_accuracy(index, dataset, seed, s, epochs) - (epochs - 1 - e) * 0.1)
            loss[key] = scalar(1.0 / (e + 1))
            times[key] = scalar(0.5)
    return {
        "name": dataset,
        "net_state_dict": None,
        "train_acc1es": {e: scalar(50.0 + e * 0.1) for e in range(epochs)},
        "train_acc5es": None,
        "train_losses": {e: scalar(2.0 / (e + 1)) for e in range(epochs)},
        "train_times": {e: scalar(3.0) for e in range(epochs)},
        "arch_config": {"channel": 16, "num_cells": 5, "arch_str": FIXTURE_ARCHS[index], "class_num": 10},
        "params": scalar(_params(index, dataset)),
        "flop": scalar(20.0 + index),
        "seed": seed,
        "epochs": epochs,
        "latency": [0.01],
        "eval_names": list(sets),
        "eval_acc1es": acc,
        "eval_times": times,
        "eval_losses": loss,
    }


def _arch_results(index: int, epochs: int, scalar: type = float) -> dict:
    seeds = FIXTURE_SEEDS[index]
    return {
        "arch_index": index,
        "arch_str": FIXTURE_ARCHS[index],
        "all_results": {
            (d, s): _results_count(index, d, s, epochs, scalar) for d, ss in seeds.items() for s in ss
        },
        "dataset_seed": {d: list(ss) for d, ss in seeds.items()},
        "clear_net_done": True,
    }


def _expected(index: int, column: str, epochs: int = 200) -> float:
    if column == official.PARAMS_COLUMN:
        seeds = FIXTURE_SEEDS.get(index, {}).get("cifar10-valid")
        return float(np.mean([_params(index, "cifar10-valid")] * len(seeds))) if seeds else math.nan
    dataset, setname = {
        "cifar10_valid_valid": ("cifar10-valid", "x-valid"),
        "cifar10_valid_test": ("cifar10-valid", "ori-test"),
        "cifar10_test": ("cifar10", "ori-test"),
        "cifar100_test": ("cifar100", "x-test"),
        "imagenet16_120_test": ("ImageNet16-120", "x-test"),
    }[column]
    seeds = FIXTURE_SEEDS.get(index, {}).get(dataset)
    if not seeds:
        return math.nan
    return float(np.mean([_final_accuracy(index, dataset, s, setname, epochs) for s in seeds]))


def _nb201_state(scalar: type = float, hp_keys: tuple[str, str] = ("full", "less")) -> dict:
    full, less = hp_keys
    return {
        "meta_archs": list(FIXTURE_ARCHS),
        "arch2infos": {
            i: {full: _arch_results(i, 200, scalar), less: _arch_results(i, 12, scalar)}
            for i in FIXTURE_SEEDS
        },
        "evaluated_indexes": sorted(FIXTURE_SEEDS),
        "total_archs": len(FIXTURE_ARCHS),
    }


def _assert_fixture_table(table: official.OfficialTable, epochs: int = 200) -> None:
    assert table.arch_strings == FIXTURE_ARCHS
    for column, values in table.columns.items():
        expected = [_expected(i, column, epochs) for i in range(len(FIXTURE_ARCHS))]
        np.testing.assert_allclose(values, expected, rtol=1e-12, equal_nan=True, err_msg=column)


@pytest.fixture(scope="module")
def fixture_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("official") / "NAS-Bench-201-fixture.pth"
    torch.save(_nb201_state(), path)
    return path


@pytest.mark.parametrize("zip_format", [True, False])
def test_pth_direct_plain(tmp_path: Path, zip_format: bool) -> None:
    path = tmp_path / "fixture.pth"
    torch.save(_nb201_state(), path, _use_new_zipfile_serialization=zip_format)
    _assert_fixture_table(official.load_official(path, backend="direct"))
    _assert_fixture_table(official.load_official(path, hp="12", backend="direct"), epochs=12)


def test_cifar10_valid_test_falls_back_to_x_test() -> None:
    state = _nb201_state()
    for infos in state["arch2infos"].values():
        for (dataset, _), record in infos["full"]["all_results"].items():
            if dataset == "cifar10-valid":
                accs = record["eval_acc1es"]
                record["eval_acc1es"] = {k: v for k, v in accs.items() if not k.startswith("ori-test@")}
    table = official.table_from_state(state, "fixture")
    for i, seeds in FIXTURE_SEEDS.items():
        finals = [_final_accuracy(i, "cifar10-valid", s, "x-test", 200) for s in seeds["cifar10-valid"]]
        expected = np.mean(finals)
        assert table.columns["cifar10_valid_test"][i] == pytest.approx(expected, rel=1e-12)
    assert math.isnan(table.columns["cifar10_valid_test"][2])


def test_pth_direct_numpy_scalars(tmp_path: Path) -> None:
    """numpy scalars make plain weights_only loading refuse; the restricted fallback reads them."""
    path = tmp_path / "fixture.pth"
    torch.save(_nb201_state(scalar=np.float64), path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    _assert_fixture_table(official.load_official(path, backend="direct"))


def _fake_api_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Classes named like the API's, so their pickles name ``nas_201_api.api_utils.*``."""
    package = types.ModuleType("nas_201_api")
    module = types.ModuleType("nas_201_api.api_utils")
    for name in ("ArchResults", "ResultsCount"):
        cls = type(name, (), {"__module__": module.__name__})
        setattr(module, name, cls)
    package.api_utils = module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nas_201_api", package)
    monkeypatch.setitem(sys.modules, "nas_201_api.api_utils", module)
    return module


def test_pth_direct_maps_result_objects_to_dicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api = _fake_api_module(monkeypatch)

    def as_object(cls: type, attrs: dict) -> object:
        obj = cls.__new__(cls)
        obj.__dict__.update(attrs)
        return obj

    state = _nb201_state()
    for infos in state["arch2infos"].values():
        for hp, arch_res in infos.items():
            records = arch_res["all_results"]
            arch_res["all_results"] = {k: as_object(api.ResultsCount, v) for k, v in records.items()}
            infos[hp] = as_object(api.ArchResults, arch_res)
    path = tmp_path / "objects.pth"
    torch.save(state, path)
    monkeypatch.undo()  # the API is "not installed" while loading
    assert "nas_201_api" not in sys.modules or sys.modules["nas_201_api"] is not api
    _assert_fixture_table(official.load_official(path, backend="direct"))


class _Evil:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return (os.makedirs, (self.target,))


def test_pth_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    state = _nb201_state()
    state["evaluated_indexes"] = _Evil(str(marker))
    path = tmp_path / "evil.pth"
    torch.save(state, path)
    with pytest.raises(DataError, match=r"cannot load .* safely \(.*os\.makedirs"):
        official.load_official(path, backend="direct")
    assert not marker.exists()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="download it again"):
        official.load_official(truncated, backend="direct")


def test_pth_corrupt_and_wrong_structure(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a torch file" * 10)
    with pytest.raises(DataError, match="download it again"):
        official.load_official(garbage, backend="direct")
    plain = tmp_path / "weights.pth"
    torch.save({"conv.weight": torch.zeros(2)}, plain)
    with pytest.raises(DataError, match="no 'meta_archs'"):
        official.load_official(plain, backend="direct")
    state = _nb201_state()
    state["total_archs"] = 99
    bad_total = tmp_path / "total.pth"
    torch.save(state, bad_total)
    with pytest.raises(DataError, match="total_archs is 99"):
        official.load_official(bad_total, backend="direct")
    with pytest.raises(UnknownNameError, match="valid values are 200, 12"):
        official.load_official(plain, hp="90")
    with pytest.raises(UnknownNameError, match="valid values are auto, direct, api"):
        official.load_official(plain, backend="fast")


def test_api_backend_without_package(fixture_pth: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nas_201_api", None)  # makes the package unimportable
    with pytest.raises(DataError, match="pip install nas-bench-201"):
        official.load_official(fixture_pth, backend="api")
    _assert_fixture_table(official.load_official(fixture_pth))  # auto falls back to direct


def test_export_round_trip(fixture_pth: Path, tmp_path: Path) -> None:
    out = official.export_benchmark_csv(fixture_pth, tmp_path / "sub" / "nb201.csv", backend="direct")
    with open(out, newline="") as handle:
        header = next(csv.reader(handle))
    assert header == [
        "index", "arch_str", "cifar10_valid_valid", "cifar10_valid_test", "cifar10_test",
        "cifar100_test", "imagenet16_120_test", "params_mb",
    ]
    bench = load_benchmark(out, "nb201")
    assert bench.target == "cifar10_valid_test" and len(bench) == len(FIXTURE_ARCHS)
    table = official.load_official(fixture_pth, backend="direct")
    _assert_fixture_table(table)
    assert bench.targets == tuple(table.columns)
    for column, values in table.columns.items():
        for i, value in enumerate(values.tolist()):
            if math.isnan(value):
                assert i not in bench.with_target(column)
            else:
                assert bench.with_target(column).accuracy(i) == value  # repr round-trips exactly
    assert bench.arch_string(3) == FIXTURE_ARCHS[3]
    assert bench.accuracy(FIXTURE_ARCHS[1]) == _expected(1, "cifar10_valid_test")
    # The official file itself loads through load_benchmark to the same table.
    direct = load_benchmark(fixture_pth, "nb201", target="cifar100_test")
    assert direct.accuracy(1) == bench.with_target("cifar100_test").accuracy(1)
    with pytest.raises(DataError, match="use space='nb201'"):
        load_benchmark(fixture_pth, "nb101")


def _write_pbz2(path: Path, obj: object) -> None:
    with bz2.BZ2File(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=4)


@pytest.fixture(scope="module")
def nats_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("nats")
    single = root / "NATS-tss-fixture.pickle.pbz2"
    _write_pbz2(single, _nb201_state(scalar=np.float64, hp_keys=("200", "12")))
    folder = root / "NATS-tss-fixture-simple"
    folder.mkdir()
    _write_pbz2(folder / "meta.pickle.pbz2", {"meta_archs": list(FIXTURE_ARCHS)})
    for i in FIXTURE_SEEDS:
        schedules = {"200": _arch_results(i, 200), "12": _arch_results(i, 12)}
        _write_pbz2(folder / f"{i:06d}.pickle.pbz2", schedules)
    return single, folder


def test_nats_direct(nats_files: tuple[Path, Path]) -> None:
    single, folder = nats_files
    _assert_fixture_table(official.load_official(single))
    _assert_fixture_table(official.load_official(folder))
    _assert_fixture_table(official.load_official(folder, hp="12"), epochs=12)
    assert load_benchmark(folder, "nb201").accuracy(0) == _expected(0, "cifar10_valid_test")


def test_nats_refuses_code_and_garbage(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pickle.pbz2"
    _write_pbz2(evil, {"meta_archs": [], "arch2infos": _Evil(str(marker)), "evaluated_indexes": []})
    with pytest.raises(DataError, match="refusing to unpickle 'os.makedirs' from .*evil.pickle.pbz2"):
        official.load_official(evil)
    assert not marker.exists()
    garbage = tmp_path / "garbage.pickle.pbz2"
    garbage.write_bytes(b"not bz2 at all")
    with pytest.raises(DataError, match="download it again"):
        official.load_official(garbage)
    folder = tmp_path / "not-nats"
    folder.mkdir()
    with pytest.raises(DataError, match="not a NATS-Bench archive"):
        official.load_official(folder)


# --------------------------------------------------------------------------------------------
# The official packages, where installed (not dependencies: skipped otherwise)
# --------------------------------------------------------------------------------------------


def test_nas_201_api_backend_matches_direct(fixture_pth: Path, tmp_path: Path) -> None:
    pytest.importorskip("nas_201_api")
    _assert_fixture_table(official.load_official(fixture_pth, backend="api"))
    # torch refuses numpy scalars inside the package's own torch.load: auto falls back to direct.
    path = tmp_path / "numpy.pth"
    torch.save(_nb201_state(scalar=np.float64), path)
    _assert_fixture_table(official.load_official(path))
    with pytest.raises(DataError, match="use backend='direct'"):
        official.load_official(path, backend="api")


def test_nats_bench_backend_matches_direct(nats_files: tuple[Path, Path]) -> None:
    pytest.importorskip("nats_bench")
    single, folder = nats_files
    _assert_fixture_table(official.load_official(single, backend="api"))
    _assert_fixture_table(official.load_official(folder, backend="api"))


@pytest.mark.parametrize("schedules", ["12", "12,200"])
def test_export_writes_the_oracle_column_the_study_reads(fixture_pth: Path, tmp_path: Path, schedules: str) -> None:
    """The documented export of the 12-epoch schedule is a valid --proxy-table: its columns carry
    the _hp12 suffix, among them the study's ORACLE_COLUMN; 12,200 writes both schedules in one file."""
    from ntknas.cli import main
    from ntknas.study.runner import ORACLE_COLUMN

    out = tmp_path / "nb201_export.csv"
    assert main(["export-benchmark", str(fixture_pth), "--hp", schedules, "--out", str(out)]) == 0
    with open(out, newline="") as handle:
        header = next(csv.reader(handle))
    accuracies = [name for name, _, _ in official.ACCURACY_COLUMNS]
    twelve = [f"{name}_hp12" for name in accuracies]
    if "200" in schedules:  # the 200-epoch columns first, then the 12-epoch ones; params_mb once
        assert header == ["index", "arch_str", *accuracies, "params_mb", *twelve]
    else:
        assert header == ["index", "arch_str", *twelve, "params_mb"]
    oracle = load_benchmark(out, "nb201", ORACLE_COLUMN)
    for i in range(len(FIXTURE_ARCHS)):
        expected = _expected(i, "cifar10_valid_valid", epochs=12)
        assert (i not in oracle) if math.isnan(expected) else oracle.accuracy(i) == expected
    if "200" in schedules:  # the same file is the --benchmark too, its default target the 200-epoch test accuracy
        target = load_benchmark(out, "nb201")
        assert target.target == "cifar10_valid_test"
        assert target.accuracy(0) == _expected(0, "cifar10_valid_test") != oracle.accuracy(0)


def test_export_refuses_an_unknown_schedule(fixture_pth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ntknas.cli import main

    out = tmp_path / "nb201.csv"
    assert main(["export-benchmark", str(fixture_pth), "--hp", "12,90", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert "training schedule (hp) '90'" in error and "12" in error and len(error.splitlines()) == 1
    assert not out.exists()
    assert official.parse_schedules("12,200") == official.parse_schedules([200, "12"]) == ("200", "12")
