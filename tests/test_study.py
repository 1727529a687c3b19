"""``ntknas study``: the smoke scale end to end, its results page, its verdicts' numbers, resuming
after kill -9, and bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from verdict_checks import check_verdicts_as_cited

from ntknas.cli import main
from ntknas.report.results import field_value, find_record
from ntknas.study import SCALES, StudyConfig, run_study, scale_markdown
from ntknas.study.runner import STUDY_FILE, track_choices
from ntknas.study.scales import SMOKE

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """One uninterrupted smoke study: about a minute on 2 CPU cores, so it is not marked slow; the
    kill -9 and CIFAR-path tests are."""
    out = tmp_path_factory.mktemp("study") / "smoke"
    started = time.process_time()  # CPU seconds (the smoke scale runs on one thread): a busy machine's wait is not counted
    outcome = run_study(StudyConfig(scale="smoke", out=str(out)))
    assert not outcome.stopped_by_budget
    assert time.process_time() - started < 180 * 2, "the smoke scale must stay a few minutes long"
    return out


# ----------------------------------------------------------------------------------------------
# End to end
# ----------------------------------------------------------------------------------------------


def test_smoke_writes_every_part_and_one_page(smoke):
    for part in ("groundtruth", "init", "init-nb101", "trained", "track"):
        assert (smoke / part).is_dir(), part
    for name in ("init", "init-nb101", "trained", "search/baselines", "search/lga-init", "search/two-stage"):
        assert (smoke / name / "summary.json").is_file(), name
    assert (smoke / "track" / "track.csv").is_file()
    record = json.loads((smoke / STUDY_FILE).read_text())
    assert record["finished"] is True
    assert {p: v["status"] for p, v in record["parts"].items()} == dict.fromkeys(
        ("groundtruth", "init", "init-nb101", "trained", "track", "search"), "done")
    page = (smoke / "results.md").read_text()
    for claim in range(1, 5):
        assert f"Claim {claim}:" in page
    assert "ntknas study --scale smoke" in page
    assert "torch" in page and "wall time" in page
    assert "Deviations from the study's protocol" in page
    for line in SMOKE.deviations:
        assert line.split(":")[0] in page
    html = (smoke / "results.html").read_text()
    # self-contained: every figure embedded (claim 1 has one per space: smoke measures NB201 and NB101)
    assert html.count("data:image/png;base64,") == 5
    assert "<img src=\"figures" not in html


def test_init_measures_ntk_metrics_and_zero_cost_proxies_in_both_bn_modes(smoke):
    records = json.loads((smoke / "init" / "summary.json").read_text())
    pairs = {(r["metric"], r["bn"]) for r in records}
    for metric in ("knas", "tenas", "fnorm", "trace", "lga", "synflow", "snip", "jacob_cov", "naswot", "grad_norm"):
        for bn in ("train", "eval"):
            assert (metric, bn) in pairs
    trained = json.loads((smoke / "trained" / "summary.json").read_text())
    assert {r["train_epochs"] for r in trained} == set(SMOKE.train_epochs)


def test_the_nb101_part_measures_its_cells_against_their_own_digits_accuracy(smoke):
    records = json.loads((smoke / "init-nb101" / "summary.json").read_text())
    pairs = {(r["metric"], r["bn"]) for r in records}
    for metric in ("knas", "tenas", "fnorm", "trace", "lga", "synflow", "jacob_cov", "naswot"):
        assert (metric, "train") in pairs and (metric, "eval") in pairs, metric
    assert {r["n"] for r in records if r["metric"] == "knas"} == {SMOKE.nb101_archs}
    assert {r["target"] for r in records} == {"digits_test"}
    table = (smoke / "groundtruth" / "nb101" / "digits_nb101.csv").read_text().splitlines()
    assert table[0] == "hash,digits_test" and len(table) == SMOKE.nb101_archs + 1
    assert all(0 <= float(line.split(",")[1]) <= 100 for line in table[1:])


def test_every_number_of_a_verdict_is_the_cited_summary_value(smoke):
    verdicts = json.loads((smoke / "verdicts.json").read_text())
    check_verdicts_as_cited(verdicts, (smoke / "results.md").read_text())
    for verdict in verdicts:
        for number in verdict["numbers"]:
            # the cited value is what the part's summary holds for that record
            path, _, key = number["file"].partition("#")
            summary = json.loads((smoke / path).read_text())
            records = summary if isinstance(summary, list) else (
                summary["searches"] if "searches" in summary else
                [summary[key]] if isinstance(summary[key], dict) else summary[key]
            )
            record = find_record(records, number["select"])
            assert record is not None, number
            assert field_value(record, number["field"]) == pytest.approx(number["value"]), number


def test_search_table_has_two_stage_beside_oracle_synflow_and_random_at_equal_budgets(smoke):
    rows = []
    for name in ("baselines", "lga-init", "two-stage"):
        summary = json.loads((smoke / "search" / name / "summary.json").read_text())
        assert summary["spec"]["candidates"] == SMOKE.search_candidates
        assert summary["spec"]["runs"] == SMOKE.search_runs
        rows += summary["searches"]
    by = {(r["strategy"], r["proxy"]) for r in rows}
    assert ("two-stage", "synflow → lga@1ep (top 2)") in by
    assert ("rea", "bench:digits_test_short") in by and ("random", "bench:digits_test_short") in by
    assert ("rea", "synflow") in by and ("random", "synflow") in by
    assert ("random", "lga") in by and ("rea", "lga") in by
    for record in rows:
        assert record["evaluations_mean"] == SMOKE.search_candidates  # the same candidate budget
        assert record["cost_mean"] is not None
        assert [f["seed"] for f in record["final"]] == list(range(SMOKE.search_runs))
    two_stage = next(r for r in rows if r["strategy"] == "two-stage")
    assert two_stage["epochs_mean"] > 0 and two_stage["train_seconds_mean"] > 0  # training is on the bill
    page = (smoke / "results.md").read_text()
    assert "two-stage | synflow → lga@1ep (top 2)" in page and "bench:digits\\_test\\_short" in page


def test_report_on_a_study_folder_writes_the_same_page(smoke, capsys):
    before = (smoke / "results.md").read_text()
    assert main(["report", str(smoke)]) == 0
    assert "results.html" in capsys.readouterr().out
    assert (smoke / "results.md").read_text() == before


def test_report_of_a_study_folder_into_another_folder_publishes_the_page_with_its_figures(smoke, tmp_path, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in smoke.iterdir()}
    published = tmp_path / "docs" / "results"
    assert main(["report", str(smoke), "--out", str(published)]) == 0
    assert str(published / "results.html") in capsys.readouterr().out
    assert (published / "results.md").read_text() == (smoke / "results.md").read_text()
    assert (published / "verdicts.json").read_text() == (smoke / "verdicts.json").read_text()
    linked = re.findall(r"\]\((figures/[^)]+\.png)\)", (published / "results.md").read_text())
    assert linked and all((published / name).is_file() for name in linked)
    assert {p.name: p.stat().st_mtime_ns for p in smoke.iterdir()} == before  # the study folder is untouched


def test_a_study_folder_is_reported_alone(smoke, capsys):
    assert main(["report", str(smoke), str(smoke / "init")]) == 2
    assert "report it alone" in capsys.readouterr().err


def test_rerun_of_a_finished_study_skips_every_part(smoke):
    started = time.perf_counter()
    outcome = run_study(StudyConfig(scale="smoke", out=str(smoke)))
    assert all(part.skipped for part in outcome.parts)
    assert time.perf_counter() - started < 60


# ----------------------------------------------------------------------------------------------
# kill -9 mid-study, rerun: the same stores and summaries as an uninterrupted run
# ----------------------------------------------------------------------------------------------


def _items(folder: Path) -> int:
    try:
        with sqlite3.connect(f"file:{folder / 'results.sqlite'}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT COUNT(*) FROM items").fetchone()[0])
    except sqlite3.Error:
        return 0


def _measurements(folder: Path) -> set[tuple]:
    with sqlite3.connect(f"file:{folder / 'results.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT space, arch, dataset, bn_mode, train_epochs, seed, batch_size, protocol, metric, value, reason "
            "FROM measurements").fetchall()
    return set(rows)


def _tracking(folder: Path) -> list[tuple]:
    """Every tracked quantity but the wall times (not stored values of the experiment)."""
    with sqlite3.connect(f"file:{folder / 'results.sqlite'}?mode=ro", uri=True) as db:
        return sorted(db.execute(
            "SELECT arch, epoch, quantity, value FROM tracking WHERE quantity NOT IN ('train_seconds', 'kernel_seconds')"
        ).fetchall())


def _choices(summary: dict) -> list[tuple]:
    return [(r["strategy"], r["proxy"], r["accuracy_mean"], tuple((f["arch"], f["accuracy"]) for f in r["final"]))
            for r in summary["searches"]]


KILL_SCALE = """
base = "smoke"
name = "kill"
init_archs = 5
trained_archs = 3
nb101_archs = 5
search_runs = 1
search_candidates = 4
track_epochs = 1
"""
"""The smoke scale cut to what the resume test needs: each killed part keeps items to redo."""


def _killed_study(command: list[str], folder: Path, part: str) -> None:
    """Run ``ntknas`` COMMAND in a child process and kill -9 it once PART has stored two items."""
    script = f"import sys; from ntknas.cli import main; sys.exit(main({command!r}))"
    env = os.environ | {"PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while _items(folder / part) < 2:  # the part has items: mid-part, mid-study
            assert process.poll() is None, "the study ended before it could be killed"
            assert time.monotonic() < deadline, f"no {part} item stored within 5 minutes"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    record = json.loads((folder / STUDY_FILE).read_text())
    assert record["parts"].get(part, {}).get("status") != "done", part


@pytest.mark.slow
def test_kill_9_mid_study_then_rerun_equals_an_uninterrupted_run(tmp_path):
    """Killed in the init part, resumed and killed again in the NB101 part, then resumed to the
    end: every stored value equals an uninterrupted run's, on a cut-down smoke scale."""
    scale_file = tmp_path / "kill.toml"
    scale_file.write_text(KILL_SCALE)
    reference, out = tmp_path / "uninterrupted", tmp_path / "killed"
    assert not run_study(StudyConfig(scale=str(scale_file), out=str(reference))).stopped_by_budget
    command = ["study", "--scale", str(scale_file), "--out", str(out), "--no-progress"]
    for killed_in in ("init", "init-nb101"):
        _killed_study(command, out, killed_in)
    outcome = run_study(StudyConfig(scale=str(scale_file), out=str(out)))
    assert not outcome.stopped_by_budget
    for part in ("init", "init-nb101", "trained", "search/baselines", "search/lga-init", "search/two-stage"):
        assert _measurements(out / part) == _measurements(reference / part), part
    assert _tracking(out / "track") == _tracking(reference / "track")
    for part in ("init", "init-nb101", "trained"):
        assert json.loads((out / part / "summary.json").read_text()) == \
            json.loads((reference / part / "summary.json").read_text())
    for name in ("baselines", "lga-init", "two-stage"):
        assert _choices(json.loads((out / "search" / name / "summary.json").read_text())) == \
            _choices(json.loads((reference / "search" / name / "summary.json").read_text()))
    for table in ("digits_benchmark.csv", "nb101/digits_nb101.csv"):
        assert (out / "groundtruth" / table).read_text() == (reference / "groundtruth" / table).read_text()
    kept = json.loads((reference / "verdicts.json").read_text())
    again = json.loads((out / "verdicts.json").read_text())
    def measured(verdicts: list) -> list:  # costs are wall seconds: they differ from run to run
        return [[(n["file"], n["field"], n["value"]) for n in v["numbers"] if "cost" not in n["field"]]
                for v in verdicts]

    assert measured(again) == measured(kept)


# ----------------------------------------------------------------------------------------------
# Bad input and the scales
# ----------------------------------------------------------------------------------------------


def _cli(args, capsys) -> tuple[int, str]:
    try:
        status = main(args)
    except SystemExit as stop:  # argparse's usage errors
        status = int(stop.code or 0)
    return status, capsys.readouterr().err


def test_an_unknown_scale_is_one_line_naming_the_scales(tmp_path, capsys):
    status, err = _cli(["study", "--scale", "huge", "--out", str(tmp_path / "s")], capsys)
    assert status == 2
    assert err.count("\n") == 1 and "smoke" in err and "cpu" in err and "study" in err
    assert not (tmp_path / "s").exists()


def test_cpu_scale_without_inputs_is_one_line_naming_the_flags(tmp_path, capsys):
    status, err = _cli(["study", "--scale", "cpu", "--out", str(tmp_path / "s")], capsys)
    assert status == 2
    assert err.count("\n") == 1 and "--data-dir" in err and "--benchmark" in err and "--scale smoke" in err
    status, err = _cli(["study", "--scale", "cpu", "--data-dir", str(tmp_path), "--out", str(tmp_path / "s")], capsys)
    assert status == 2 and err.count("\n") == 1 and "--benchmark" in err and "--data-dir and" not in err
    assert not (tmp_path / "s").exists()


def test_cpu_scale_without_the_proxy_table_says_where_to_get_it(tmp_path, capsys, nb201_csv):
    status, err = _cli(["study", "--scale", "cpu", "--data-dir", str(tmp_path), "--benchmark", str(nb201_csv),
                        "--out", str(tmp_path / "s")], capsys)
    assert status == 2
    assert err.count("\n") == 1 and "--proxy-table" in err and "cifar10_valid_valid_hp12" in err and "docs/data.md" in err
    assert (REPO / "docs" / "data.md").is_file()


def test_a_study_folder_refuses_another_scale(tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / STUDY_FILE).write_text(json.dumps({"identity": {"scale": "cpu", "target": None}, "parts": {}}))
    status, err = _cli(["study", "--scale", "smoke", "--out", str(out)], capsys)
    assert status == 2 and err.count("\n") == 1 and "another --out" in err


def test_every_scale_is_a_documented_table_with_its_deviations():
    for scale in SCALES.values():
        text = scale_markdown(scale)
        assert "| setting | value |" in text and "Deviations from the study's protocol" in text
        assert scale.deviations, scale.name
    study = SCALES["study"]
    assert (study.init_archs, study.batch_size, study.train_batch_size, study.track_epochs) == (1000, 256, 1024, 100)
    assert (study.search_runs, study.search_candidates, 1) in [(10, 100, 1 in study.train_epochs)]
    assert study.nb101_archs == 1000 and study.nb101_batch_size == 64 and study.nb101_builds == {}
    assert study.stage_steps == 49 and study.train_images is None  # one pass over 50,000 at batch 1024
    cpu = SCALES["cpu"]
    assert cpu.stage_steps == 49 and cpu.train_images == 49 * cpu.train_batch_size and "measured" in cpu.estimate
    assert cpu.search_runs >= 10 and cpu.track_archs_per_band >= 3


def test_the_scales_document_is_generated_from_the_scales():
    from ntknas.study.scale_table import scales_document

    assert (REPO / "docs" / "study_scales.md").read_text() == scales_document()


def test_a_spent_time_budget_stops_before_any_part_and_still_writes_the_page(tmp_path):
    outcome = run_study(StudyConfig(scale="smoke", out=str(tmp_path / "s"), time_budget=0))
    assert outcome.stopped_by_budget and outcome.parts == []
    page = (tmp_path / "s" / "results.md").read_text()
    assert "not finished" in page and page.count("Not measured yet") == 4


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


def test_tracked_architectures_are_drawn_from_each_accuracy_band():
    pool = [(f"a{i}", i, float(i)) for i in range(100)]
    chosen = track_choices(SCALES["cpu"], pool)
    per_band = SCALES["cpu"].track_archs_per_band
    assert per_band > 1 and [band for *_, band in chosen] == ["low"] * per_band + ["mid"] * per_band + ["high"] * per_band
    assert len({key for key, *_ in chosen}) == len(chosen)  # no cell twice
    for _, _, accuracy, band in chosen:
        assert {"low": 10 <= accuracy < 30, "mid": 40 <= accuracy < 60, "high": accuracy >= 95}[band]
    assert track_choices(SCALES["cpu"], pool) == chosen  # seeded


@pytest.mark.slow
def test_the_study_runs_on_tables_exported_from_an_official_file(tmp_path):
    """Reproducible from the repository alone: an official-format NAS-Bench-201 file, exported by
    the documented command (both schedules in one table), is all the cpu path needs for its
    target and its 12-epoch oracle column."""
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
