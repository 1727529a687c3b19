"""Verdict labels follow from their numbers by the written rules (a constructed case for each label
of each claim), and a page built from a synthetic study folder is portable: no absolute path, no
host kernel string."""

from __future__ import annotations

import csv
import json
import platform
import re
from pathlib import Path

import numpy as np
import pytest

from ntknas.report.results import CONTRADICTED, INCONCLUSIVE, RULES, SUPPORTED, portable_command, write_results_page
from ntknas.report.results.labels import (
    claim1_label,
    claim1_space_label,
    claim2_label,
    claim3_label,
    claim4_label,
)


@pytest.mark.parametrize(("delta_ci", "label"), [
    ((-0.30, -0.05), SUPPORTED), ((0.02, 0.20), CONTRADICTED), ((-0.10, 0.04), INCONCLUSIVE), ((None, None), INCONCLUSIVE),
])
def test_claim1_per_space(delta_ci, label):
    assert claim1_space_label(delta_ci).label == label


@pytest.mark.parametrize(("spaces", "label"), [
    ([SUPPORTED], SUPPORTED), ([SUPPORTED, INCONCLUSIVE], SUPPORTED), ([CONTRADICTED, INCONCLUSIVE], CONTRADICTED),
    ([SUPPORTED, CONTRADICTED], INCONCLUSIVE), ([INCONCLUSIVE], INCONCLUSIVE), ([], INCONCLUSIVE),
])
def test_claim1_over_spaces(spaces, label):
    assert claim1_label(spaces).label == label


@pytest.mark.parametrize(("delta_ci", "label"), [
    ((0.03, 0.15), SUPPORTED), ((-0.2, -0.01), CONTRADICTED), ((-0.05, 0.1), INCONCLUSIVE),
])
def test_claim2(delta_ci, label):
    assert claim2_label(delta_ci).label == label


@pytest.mark.parametrize(("sizes", "quantity", "tau_ci", "label"), [
    ([3, 3, 3], "norm_ratio", (0.1, 0.8), SUPPORTED),
    ([3, 3, 3], "rel_diff", (-0.9, -0.2), CONTRADICTED),
    ([3, 3, 3], "rel_diff", (-0.3, 0.6), INCONCLUSIVE),
    ([3, 2, 3], "rel_diff", (0.1, 0.8), INCONCLUSIVE),  # a band with 2 cells: never more than inconclusive
    ([3, 3, 3], None, (0.1, 0.8), INCONCLUSIVE),  # every quantity saturated
])
def test_claim3(sizes, quantity, tau_ci, label):
    assert claim3_label(sizes, quantity, tau_ci).label == label


@pytest.mark.parametrize(("best", "random", "cheaper", "label"), [
    ((0.2, 1.5), (0.5, 2.0), True, SUPPORTED),
    ((0.2, 1.5), (0.5, 2.0), False, INCONCLUSIVE),  # not cheaper than the oracle's bill
    ((-1.5, -0.1), (0.5, 2.0), True, CONTRADICTED),
    ((0.2, 1.5), (-2.0, -0.3), True, CONTRADICTED),
    ((-0.5, 1.0), (0.5, 2.0), True, INCONCLUSIVE),
])
def test_claim4(best, random, cheaper, label):
    assert claim4_label(best, random, cheaper).label == label


def test_every_claim_has_a_written_rule():
    assert sorted(RULES) == [1, 2, 3, 4] and all("supported" in rule for rule in RULES.values())


# ----------------------------------------------------------------------------------------------
# A synthetic study folder: the claim-1 label from its scores, and a portable page
# ----------------------------------------------------------------------------------------------

METRICS = ("knas", "synflow", "params")


def _init_part(root: Path, part: str, ntk_quality: float, proxy_quality: float, cells: int) -> None:
    rng = np.random.default_rng(7)
    accuracy = rng.uniform(60, 94, size=cells)
    values = {
        "knas": accuracy * ntk_quality + rng.normal(scale=10, size=cells),
        "synflow": accuracy * proxy_quality + rng.normal(scale=10, size=cells),
        "params": accuracy + rng.normal(scale=30, size=cells),
    }
    values["knas"][3] = np.nan  # one missing value, explained on the page
    (root / part).mkdir(parents=True)
    with (root / part / "scores.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "arch", "bn", "train_epochs", "accuracy", *METRICS])
        for i in range(cells):
            writer.writerow([i, f"cell{i}", "train", 0, accuracy[i], *("" if np.isnan(values[m][i]) else values[m][i]
                                                                      for m in METRICS)])
    from ntknas.analysis import rank_correlation

    records = []
    for metric in METRICS:
        result = rank_correlation(values[metric], accuracy)
        missing = int(np.isnan(values[metric]).sum())
        records.append({"target": "t", "metric": metric, "bn": "train", "train_epochs": 0, "n": result.n,
                        "kendall": result.kendall, "spearman": result.spearman, "kendall_ci": list(result.kendall_ci),
                        "spearman_ci": list(result.spearman_ci), "missing": missing,
                        "missing_reasons": {"kernel not positive definite": missing} if missing else {},
                        "higher_is_better": True})
    (root / part / "summary.json").write_text(json.dumps(records))


def _study(root: Path, ntk_quality: float, proxy_quality: float, cells: int = 80, nb101: bool = False) -> Path:
    _init_part(root, "init", ntk_quality, proxy_quality, cells)
    if nb101:
        _init_part(root, "init-nb101", proxy_quality, ntk_quality, cells)  # the other way round
    home = str(root.resolve())
    (root / "study.json").write_text(json.dumps({
        "command": f"ntknas study --scale cpu --data-dir {home}/c10 --benchmark={home}/nb201/acc.csv "
                   f"--proxy-table {home}/supp.csv --out {home}/study --no-progress",
        "inputs": {"benchmark": f"{home}/nb201/acc.csv", "data_dir": f"{home}/c10", "proxy_table": f"{home}/supp.csv"},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "device": "cpu"},
        "parts": {"init": {"folder": "init", "status": "done", "seconds": 3.0}},
        "scale": {"title": "synthetic", "rows": [["dataset", "cifar10"]],
                  "deviations": [f"scale file {home}/my.toml: init_archs = 80 (cpu: 300)"]},
        "finished": False,
    }))
    return root


@pytest.mark.parametrize(("ntk", "proxy", "label"), [(0.2, 1.0, SUPPORTED), (1.0, 0.2, CONTRADICTED),
                                                     (1.0, 1.0, INCONCLUSIVE)])
def test_claim1_label_of_a_study_follows_from_its_paired_comparison(tmp_path, ntk, proxy, label):
    root = _study(tmp_path / "s", ntk, proxy)
    write_results_page(root)
    verdict = json.loads((root / "verdicts.json").read_text())[0]
    comparison = next(r for r in json.loads((root / "comparisons.json").read_text()) if r["id"] == "claim1/init")
    assert comparison["n"] == 79  # the missing knas value drops that cell from both sides
    low, high = comparison["delta_ci"]
    assert verdict["label"] == label == (SUPPORTED if high < 0 else CONTRADICTED if low > 0 else INCONCLUSIVE)
    assert verdict["spaces"][0]["label"] == label
    page = (root / "results.md").read_text()
    assert "kernel not positive definite (1)" in page  # the missing value's reason
    assert "params" in page and "synflow (train BN)" in verdict["text"]  # size baselines are shown, not the best proxy


def test_a_page_names_files_not_the_machines_folders_and_no_kernel_string(tmp_path):
    root = _study(tmp_path / "s", 0.2, 1.0)
    out = tmp_path / "published"
    write_results_page(root, out)
    texts = [(out / name).read_text() for name in ("results.md", "results.html", "verdicts.json")]
    for text in texts:
        assert str(tmp_path) not in text and str(tmp_path.resolve()) not in text
        assert platform.release() not in text
        assert not re.search(r"(^|[\s(`'\"=])/[A-Za-z]", text), re.search(r"(^|[\s(`'\"=])/[A-Za-z].{0,60}", text)
    page = texts[0]
    assert "--data-dir DATA --benchmark=BENCHMARK --proxy-table PROXY_TABLE --out STUDY_DIR" in page
    assert "acc.csv" in page and "supp.csv" in page  # where the tables came from, by name
    assert "docs/data.md" in page and "export-benchmark" in page
    assert "my.toml: init\\_archs = 80 (cpu: 300)" in page  # a scale-file deviation, rendered as it came


def test_portable_command_keeps_named_scales_and_replaces_files():
    command, used = portable_command("ntknas study --scale cpu --out /x/y --scale-file-like /a/b.toml")
    assert command == "ntknas study --scale cpu --out STUDY_DIR --scale-file-like b.toml"
    assert [p for p, _ in used] == ["STUDY_DIR"]
    command, _ = portable_command("ntknas study --scale /home/u/gpu.toml")
    assert command == "ntknas study --scale SCALE_FILE"


def test_nb101_has_its_own_table_figure_sentence_and_label_beside_nb201(tmp_path):
    root = _study(tmp_path / "s", 0.2, 1.0, nb101=True)
    write_results_page(root)
    verdict = json.loads((root / "verdicts.json").read_text())[0]
    assert [(s["space"], s["label"]) for s in verdict["spaces"]] == [("NAS-Bench-201", SUPPORTED),
                                                                     ("NAS-Bench-101", CONTRADICTED)]
    assert verdict["label"] == INCONCLUSIVE  # the spaces disagree
    page = (root / "results.md").read_text()
    assert "### NAS-Bench-101 (init-nb101/)" in page and "423,624" in page
    assert (root / "figures" / "claim1_tau_by_metric_nb101.png").is_file()


def _search_row(strategy: str, proxy: str, accuracies: list[float], cost: float) -> dict:
    return {"strategy": strategy, "proxy": proxy, "runs": len(accuracies), "accuracy_mean": float(np.mean(accuracies)),
            "accuracy_std": float(np.std(accuracies)), "cost_mean": cost, "evaluations_mean": 10.0,
            "regret_mean": 94.0 - float(np.mean(accuracies)), "found_best": 0, "epochs_mean": 0.0,
            "final": [{"run": i, "seed": i, "accuracy": a, "cost": cost} for i, a in enumerate(accuracies)]}


def test_claim4_compares_two_stage_with_every_row_paired_by_seed(tmp_path):
    root = _study(tmp_path / "s", 0.2, 1.0)
    spec = {"target": "t", "benchmark": str(root / "acc.csv"), "candidates": 10, "runs": 10, "seed": 0,
            "best_in_space": 94.0, "best_in_space_arch": "a"}
    base = [89.0 + 0.1 * i for i in range(10)]
    searches = {
        "baselines": [_search_row("random", "synflow", [a + 1.0 for a in base], 1.0),
                      _search_row("rea", "bench:oracle", [a + 2.0 for a in base], 0.0)],
        "two-stage": [_search_row("two-stage", "synflow → lga@1ep (top 3)", base, 70.0)],
    }
    for name, rows in searches.items():
        (root / "search" / name).mkdir(parents=True)
        (root / "search" / name / "summary.json").write_text(json.dumps({"spec": spec, "searches": rows}))
    write_results_page(root)
    verdict = next(v for v in json.loads((root / "verdicts.json").read_text()) if v["claim"] == 4)
    comparisons = {r["id"]: r for r in json.loads((root / "comparisons.json").read_text())}
    random = comparisons["claim4/baselines/random/synflow"]
    assert random["paired"] and random["delta"] == pytest.approx(-1.0) and random["delta_ci"] == pytest.approx([-1, -1])
    assert random["cost_ratio"] == pytest.approx(70.0)
    assert comparisons["claim4/baselines/rea/bench:oracle"]["cost_ratio"] is None  # lookups cost nothing
    assert verdict["label"] == CONTRADICTED  # random search is better on every seed
    page = (root / "results.md").read_text()
    assert "the oracle" in verdict["text"] and "random search" in verdict["text"]
    assert "70×" in page and "lookups (0 s)" in page


def _track(root: Path, with_norm_ratio: bool) -> None:
    """Nine tracked cells, three per band; rel_diff at its ceiling for all, the norm ratio shrinking
    more the better the cell, the cosine the same for all."""
    bands, rows = [], []
    for number in range(9):
        band = ("low", "mid", "high")[number // 3]
        accuracy = 70.0 + 2.5 * number
        bands.append({"arch": f"cell{number}", "band": band, "index": number, "accuracy": accuracy})
        for epoch, ratio in ((0, 1.0), (3, 0.5 / (1 + number))):
            rows.append({"arch": f"cell{number}", "index": number, "accuracy": accuracy, "epoch": epoch,
                         "rel_diff_ref": 0.0 if epoch == 0 else 10.0, "rel_diff": 0.0 if epoch == 0 else 0.97 + 0.002 * number,
                         "norm_ratio": ratio, "kernel_corr": 1.0, "kernel_cos": 1.0 if epoch == 0 else 0.8,
                         "train_loss": "", "train_acc": "" if epoch == 0 else 20.0 + 3 * number, "param_norm": 5.0})
    (root / "track").mkdir()
    columns = [c for c in rows[0] if with_norm_ratio or c != "norm_ratio"]
    with (root / "track" / "track.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    study = json.loads((root / "study.json").read_text())
    (root / "study.json").write_text(json.dumps(study | {"track_bands": bands}))


@pytest.mark.parametrize(("with_norm_ratio", "movement", "label"), [(True, "norm_ratio", SUPPORTED),
                                                                     (False, "kernel_cos", INCONCLUSIVE)])
def test_claim3_skips_a_saturated_quantity_and_says_so(tmp_path, with_norm_ratio, movement, label):
    root = _study(tmp_path / "s", 0.2, 1.0, cells=20)
    _track(root, with_norm_ratio)
    write_results_page(root)
    summary = json.loads((root / "track" / "band_summary.json").read_text())
    assert [q["quantity"] for q in summary["quantities"] if q["saturated"]] == ["rel_diff"]
    assert summary["movement"] == movement and summary["train_acc_separated"] is True
    verdict = next(v for v in json.loads((root / "verdicts.json").read_text()) if v["claim"] == 3)
    assert verdict["label"] == label  # kernel_cos moved the same for every cell: τ undefined
    assert "rel_diff sit at their ceiling" in verdict["text"] and "train accuracies separated" in verdict["text"]
    page = (root / "results.md").read_text()
    assert "at its ceiling (every cell ≥ 0.95)" in page
    assert ("not recorded in this track run" in page) is (not with_norm_ratio)


@pytest.mark.parametrize(("dataset", "value", "images"), [
    ("cifar10", "6,272: a fixed seeded subset, 49 full batches of 128", 6272),  # the cpu scale's row
    ("cifar10", "2,500 (a subset)", 2500),
    ("cifar10", "all 50,000 of the training split", 50000),
    ("cifar10", "all", 50000),
    ("digits", "the whole training split", None),
])
def test_the_oracle_bill_reads_the_images_per_stage_from_the_scale_table(tmp_path, dataset, value, images):
    from ntknas.report.results.files import StudyFiles

    rows = [["dataset", dataset], ["training images per stage", value]]
    files = StudyFiles(root=tmp_path, study={"scale": {"rows": rows}}, init=None, trained=None, searches={})
    assert files.images_per_stage() == images
