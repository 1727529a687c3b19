"""``ntknas study`` on the CIFAR-10 path, through scale files on miniature cells: the benchmark
table, the proxy table, NB101 from the official tfrecord, and tables exported from an official
NAS-Bench-201 file. A module of its own so that pytest-xdist runs it beside the smoke-scale tests."""

from __future__ import annotations

import json
import sqlite3

import pytest

from ntknas.cli import main
from ntknas.study.runner import STUDY_FILE

TINY_CIFAR = """
base = "cpu"
name = "tiny-cifar"
init_archs = 4
batch_size = 4
trained_archs = 3
steps_per_stage = 2
train_batch_size = 20
track_archs_per_band = 1
track_bands = [["low", 0.1, 0.3], ["high", 0.95, 1.0]]
track_epochs = 1
search_runs = 1
search_candidates = 4
search_population = 2
search_tournament = 2
search_top_k = 2
probes = 2
network_options = { channels = 4, cells_per_stage = 1 }
nb101_archs = 3
nb101_batch_size = 4
nb101_network_options = { stem_channels = 4, cells_per_stack = 1 }
threads = 1
"""


@pytest.mark.slow
def test_a_cifar_scale_file_runs_every_part_from_the_benchmarks_and_the_proxy_table(tmp_path, shared_data):
    """The cpu and study scales' path (benchmark table, data folder, oracle column from the proxy
    table, the whole space searched, NB101 from the official tfrecord in the study's
    all_graphs.json order) through a scale file, on miniature cells and a few fake CIFAR-10 images."""
    from fixtures_data import write_cifar10
    from fixtures_nb101 import CELLS, write_all_graphs_json, write_official_tfrecord

    write_cifar10(tmp_path / "data", per_class=4)  # 40 training images: 2 steps of 20
    write_official_tfrecord(tmp_path / "nasbench_only108.tfrecord")
    order = write_all_graphs_json(tmp_path / "all_graphs.json", list(reversed(CELLS)))
    scale_file = tmp_path / "tiny-cifar.toml"
    scale_file.write_text(TINY_CIFAR)
    out = tmp_path / "s"
    status = main(["study", "--scale", str(scale_file), "--data-dir", str(tmp_path / "data"), "--no-progress",
                   "--benchmark", str(shared_data / "nb201" / "nb201_accuracies.csv"),
                   "--proxy-table", str(shared_data / "nb201" / "nb201_supplementary.csv"),
                   "--nb101-benchmark", str(tmp_path / "nasbench_only108.tfrecord"),
                   "--nb101-archs-file", str(tmp_path / "all_graphs.json"), "--out", str(out)])
    assert status == 0
    init = json.loads((out / "init" / "summary.json").read_text())
    # The NTK metrics have a value for every cell; a proxy that cannot apply to a cell of this
    # miniature (epe_nas on a batch of 4 distinct classes) is missing with its reason.
    assert {r["n"] for r in init if r["metric"] in ("knas", "tenas", "fnorm", "trace", "lga")} == {4}
    assert all(r["n"] + r["missing"] == 4 and (r["missing"] == 0 or r["missing_reasons"]) for r in init)
    assert {r["target"] for r in init} == {"cifar10_valid_test"}
    nb101_records = json.loads((out / "init-nb101" / "summary.json").read_text())
    assert {r["target"] for r in nb101_records} == {"test_max"}  # the official file: the max of three runs
    assert {r["n"] for r in nb101_records if r["metric"] == "knas"} == {3}
    with sqlite3.connect(out / "init-nb101" / "results.sqlite") as db:
        measured = {row[0] for row in db.execute("SELECT DISTINCT arch FROM measurements")}
    assert measured == set(order[:3])  # the first cells of the all_graphs.json order
    baselines = json.loads((out / "search" / "baselines" / "summary.json").read_text())
    assert ("rea", "bench:cifar10_valid_valid_hp12") in {(r["strategy"], r["proxy"]) for r in baselines["searches"]}
    assert baselines["spec"]["best_in_space"] == pytest.approx(91.523333)  # the whole space: its best cifar10_valid_test
    record = json.loads((out / STUDY_FILE).read_text())
    assert [b["band"] for b in record["track_bands"]] == ["low", "high"]
    assert "scale file tiny-cifar.toml: nb101_archs = 3 (cpu: 0)" in record["scale"]["deviations"]
    assert not any("test_acc_seed0" in line or "all_graphs.json order" in line for line in record["scale"]["deviations"])
    assert ["SGD steps per stage", "2"] in record["scale"]["rows"]
    verdicts = json.loads((out / "verdicts.json").read_text())
    assert [v["claim"] for v in verdicts] == [1, 2, 3, 4]
    page = (out / "results.md").read_text().replace("\\_", "_")  # Markdown escapes the underscores
    assert "scale file tiny-cifar.toml: nb101_archs = 3 (cpu: 0)" in page


@pytest.mark.slow
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_the_study_runs_on_tables_exported_from_an_official_file(tmp_path):
    """Reproducible from the repository alone: an official-format NAS-Bench-201 file, exported by
    the documented command (both schedules in one table), is all the cpu path needs for its
    target and its 12-epoch oracle column. Its tiny file leaves some guides' candidates without
    an accuracy: the search figure draws them without numpy's all-NaN warnings on the terminal."""
    import torch
    from fixtures_data import write_cifar10
    from test_groundtruth import _nb201_state

    from ntknas.spaces.nb201 import arch_from_index

    state = _nb201_state()
    # The file's own order is the official one: its cell i is NAS-Bench-201's index i.
    state["meta_archs"] = [arch_from_index(i).to_string() for i in range(len(state["meta_archs"]))]
    for index, schedules in state["arch2infos"].items():
        for results in schedules.values():
            results["arch_str"] = state["meta_archs"][index]
    official = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    torch.save(state, official)
    table = tmp_path / "nb201.csv"
    assert main(["export-benchmark", str(official), "--hp", "12,200", "--out", str(table)]) == 0
    write_cifar10(tmp_path / "data", per_class=4)
    scale_file = tmp_path / "tiny-cifar.toml"
    scale_file.write_text(TINY_CIFAR.replace("nb101_archs = 3", "nb101_archs = 0"))
    out = tmp_path / "s"
    status = main(["study", "--scale", str(scale_file), "--data-dir", str(tmp_path / "data"), "--no-progress",
                   "--benchmark", str(table), "--proxy-table", str(table), "--out", str(out)])
    assert status == 0
    init = json.loads((out / "init" / "summary.json").read_text())
    measured = {r["n"] for r in init if r["metric"] == "knas"}
    assert measured == {sum(1 for i in range(4) if i in state["arch2infos"])}  # cells with an accuracy
    page = (out / "results.md").read_text()
    assert "nb201.csv" in page and str(tmp_path) not in page
