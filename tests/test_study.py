"""``ntknas study``: the smoke scale end to end, its results page, its verdicts' numbers, resuming
after kill -9, and bad input."""

from __future__ import annotations

import json
import re
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


def test_tracked_architectures_are_drawn_from_each_accuracy_band():
    pool = [(f"a{i}", i, float(i)) for i in range(100)]
    chosen = track_choices(SCALES["cpu"], pool)
    per_band = SCALES["cpu"].track_archs_per_band
    assert per_band > 1 and [band for *_, band in chosen] == ["low"] * per_band + ["mid"] * per_band + ["high"] * per_band
    assert len({key for key, *_ in chosen}) == len(chosen)  # no cell twice
    for _, _, accuracy, band in chosen:
        assert {"low": 10 <= accuracy < 30, "mid": 40 <= accuracy < 60, "high": accuracy >= 95}[band]
    assert track_choices(SCALES["cpu"], pool) == chosen  # seeded
