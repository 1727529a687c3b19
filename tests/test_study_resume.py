"""``ntknas study`` killed with SIGKILL mid-study and rerun: the same stores, summaries and page
numbers as an uninterrupted run. A module of its own so that pytest-xdist runs it beside the
smoke-scale tests of test_study.py rather than after them."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ntknas.study import StudyConfig, run_study
from ntknas.study.runner import STUDY_FILE

REPO = Path(__file__).resolve().parents[1]


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
init_archs = 4
trained_archs = 2
nb101_archs = 4
search_runs = 1
search_candidates = 4
track_epochs = 1
ground_truth_epochs = 2
"""
"""The smoke scale cut to what the resume test needs (about 22 s a run): each killed part keeps
cells to redo after its first two."""


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


