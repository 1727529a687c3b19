"""Run folders written by earlier code open, resume and summarize unchanged; newer ones are refused.

The earlier code is this repository at OLD_COMMIT (the last commit before the restructure of issue
19), extracted with ``git archive`` into a temporary folder and run in a subprocess whose
PYTHONPATH holds only that copy: the folders are generated here, not committed. Today's code then
runs the same command on the folder and must measure nothing and leave every stored row as it
was. Without git or without that commit (a shallow clone) these tests are skipped.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ntknas.cli import main
from ntknas.errors import DataError
from ntknas.spaces.nb201 import arch_from_index
from ntknas.store import ResultStore
from ntknas.store.lock import LOCK_FILE
from ntknas.store.sqlite import SCHEMA_META, SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[1]
OLD_COMMIT = "9cac626"
ARCHS = (7, 10533, 11759)  # the first two are what `search --strategy random --seed 0` proposes
CORRELATE = ["correlate", "--dataset", "digits", "--benchmark", "bench.csv", "--archs", ",".join(map(str, ARCHS)),
             "--batch-size", "4", "--bn", "train", "--metrics", "fnorm", "--out", "run", "--no-progress"]
TRACK = ["track", "--dataset", "digits", "--benchmark", "bench.csv", "--archs", "7", "--epochs", "1", "--samples", "4",
         "--channels", "4", "--cells-per-stage", "1", "--train-batch-size", "64", "--out", "track", "--no-progress"]
RUN_MAIN = (
    "import sys\nfrom pathlib import Path\nimport ntknas\n"
    "if not Path(ntknas.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()):\n"
    "    sys.exit(f'wrong ntknas imported: {ntknas.__file__}')\n"
    "from ntknas.cli import main\nsys.exit(main(sys.argv[2:]))\n"
)


def _old_code(root: Path) -> Path:
    """The package at OLD_COMMIT, extracted under ``root`` (skips where it cannot be had)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the code before the restructure cannot be extracted")
    found = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{OLD_COMMIT}^{{commit}}"],
                           capture_output=True, check=False)
    if found.returncode != 0:
        pytest.skip(f"commit {OLD_COMMIT} (the code before the restructure) is not in this clone: use a full clone")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", OLD_COMMIT, "ntknas"],
                             capture_output=True, check=True).stdout
    code = root / "old"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(code, filter="data")
    return code


def _ntknas(code: Path, cwd: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``ntknas ARGV`` run by the package under ``code`` (and no other), in ``cwd``."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"} | {"PYTHONPATH": str(code)}
    return subprocess.run([sys.executable, "-c", RUN_MAIN, str(code), *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900, check=False)


def _write_benchmark(path: Path) -> None:
    """Every NB201 cell with a made-up accuracy: no download, no real data."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "arch_str", "cifar10_valid_test"])
        for index in range(15625):
            writer.writerow([index, str(arch_from_index(index)), f"{50 + (index * 7919 % 4000) / 100:.2f}"])


def _rows(store_file: Path) -> dict[str, list[tuple]]:
    """Every stored row in storage order (REALs compare exactly as Python floats)."""
    uri = store_file.resolve().as_uri() + "?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        tables = ("measurements", "items", "training", "tracking")
        return {table: db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall() for table in tables}  # noqa: S608
    finally:
        db.close()


def _meta(store_file: Path, key: str):
    db = sqlite3.connect(store_file.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    finally:
        db.close()
    return None if row is None else json.loads(row[0])


@pytest.fixture(scope="module")
def old(tmp_path_factory) -> tuple[Path, Path]:
    """(the old code, a work folder holding bench.csv and the correlate folder ``run`` it wrote)."""
    root = tmp_path_factory.mktemp("compat")
    code = _old_code(root)
    work = root / "work"
    work.mkdir()
    _write_benchmark(work / "bench.csv")
    done = _ntknas(code, work, CORRELATE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("3 architectures measured, 0 already stored"), done.stdout
    return code, work


@pytest.fixture
def work(old, tmp_path) -> Path:
    """A copy of the old folder and its benchmark, for one test to change."""
    _, source = old
    copy = tmp_path / "work"
    shutil.copytree(source, copy)
    return copy


def test_the_old_code_wrote_the_folder(old):
    code, work = old
    assert (code / "ntknas" / "experiments").is_dir()  # the pre-restructure layout, not today's
    assert not (work / "run" / "ntknas").exists()


def test_a_folder_of_the_old_code_resumes_with_no_measurement_redone(work):
    store_file = work / "run" / "results.sqlite"
    before = _rows(store_file)
    assert len(before["measurements"]) == len(ARCHS) and len(before["items"]) == len(ARCHS)
    done = _ntknas(REPO, work, CORRELATE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"0 architectures measured, {len(ARCHS)} already stored"), done.stdout
    assert _rows(store_file) == before
    assert _meta(store_file, SCHEMA_META) == 1


def test_summary_only_and_report_read_a_folder_of_the_old_code_without_writing_its_store(work):
    store_file = work / "run" / "results.sqlite"
    (work / "run" / LOCK_FILE).unlink(missing_ok=True)
    before = store_file.read_bytes()
    done = _ntknas(REPO, work, ["correlate", "--out", "run", "--summary-only"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"0 architectures measured, {len(ARCHS)} already stored"), done.stdout
    with (work / "run" / "scores.csv").open(newline="") as handle:
        assert sorted(int(row["index"]) for row in csv.DictReader(handle)) == sorted(ARCHS)
    done = _ntknas(REPO, work, ["report", "run", "--out", "report"])
    assert done.returncode == 0, done.stderr
    page = (work / "report" / "report.html").read_text(encoding="utf-8")
    assert "Rank correlation with cifar10_valid_test" in page and "fnorm" in page
    assert store_file.read_bytes() == before and not (work / "run" / LOCK_FILE).exists()


def test_a_search_takes_the_values_of_an_old_folder_from_its_cache(work):
    stored = {row[1]: row[9] for row in _rows(work / "run" / "results.sqlite")["measurements"]}
    done = _ntknas(REPO, work, ["search", "--dataset", "digits", "--benchmark", "bench.csv", "--proxy", "fnorm",
                                "--strategy", "random", "--candidates", "2", "--runs", "1", "--batch-size", "4",
                                "--cache", "run", "--out", "search", "--no-progress"])
    assert done.returncode == 0, done.stderr
    counts = re.match(r"(\d+) proxy values measured, (\d+) taken from --cache", done.stdout)
    assert counts is not None, done.stdout
    with (work / "search" / "search.csv").open(newline="") as handle:
        proposed = {row["arch"]: row["value"] for row in csv.DictReader(handle) if row["stage"] == "proxy"}
    cached = {arch: value for arch, value in proposed.items() if arch in stored}
    assert int(counts[2]) == len(cached) >= 1  # the cells are the ones random search proposes first
    assert all(float(value) == stored[arch] for arch, value in cached.items())


@pytest.mark.slow
def test_a_track_folder_of_the_old_code_resumes_and_reports(old, tmp_path):
    code, source = old
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(source / "bench.csv", work / "bench.csv")
    done = _ntknas(code, work, TRACK)
    assert done.returncode == 0, done.stderr
    before = _rows(work / "track" / "results.sqlite")
    assert before["tracking"]
    done = _ntknas(REPO, work, TRACK)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("0 architectures tracked, 1 already done"), done.stdout
    assert _rows(work / "track" / "results.sqlite") == before
    done = _ntknas(REPO, work, ["report", "track"])
    assert done.returncode == 0, done.stderr
    assert "Final epoch per architecture" in (work / "track" / "report.html").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# The schema version: recorded by writers, 1 where absent, newer ones refused without a write
# ---------------------------------------------------------------------------------------------


def _set_version(store_file: Path, value: object | None) -> None:
    db = sqlite3.connect(store_file)
    with db:
        if value is None:
            db.execute("DELETE FROM meta WHERE key = ?", (SCHEMA_META,))
        else:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (SCHEMA_META, json.dumps(value)))
    db.close()


def _store(folder: Path) -> Path:
    with ResultStore(folder) as store:
        store.claim_settings("correlate", {"batch_size": 4})
    (folder / LOCK_FILE).unlink()
    return folder / "results.sqlite"


def test_a_new_store_records_its_schema_version_when_opened(tmp_path):
    with ResultStore(tmp_path / "run") as store:
        assert store.get_meta(SCHEMA_META) == SCHEMA_VERSION == 1


def test_a_store_without_a_schema_version_is_version_1(tmp_path):
    store_file = _store(tmp_path / "run")
    _set_version(store_file, None)
    before = store_file.read_bytes()
    with ResultStore(tmp_path / "run", readonly=True) as store:  # a reader writes nothing
        assert store.get_meta("kind") == "correlate" and store.get_meta(SCHEMA_META) is None
    assert store_file.read_bytes() == before
    with ResultStore(tmp_path / "run") as store:  # a writer records it
        assert store.get_meta(SCHEMA_META) == 1 and store.get_meta("settings") == {"batch_size": 4}


@pytest.mark.parametrize("version, words", [
    (SCHEMA_VERSION + 1, "upgrade ntknas"),
    (0, "which no ntknas writes"),
    ("2", "which no ntknas writes"),
])
def test_an_unknown_schema_version_is_refused_without_writing(version, words, tmp_path, capsys):
    folder = tmp_path / "run"
    store_file = _store(folder)
    _set_version(store_file, version)
    before = store_file.read_bytes(), store_file.stat().st_mtime_ns, sorted(p.name for p in folder.iterdir())
    for readonly in (False, True):
        with pytest.raises(DataError, match=words):
            ResultStore(folder, readonly=readonly)
    for argv in (["report", str(folder), "--out", str(tmp_path / "report")],
                 ["correlate", "--out", str(folder), "--summary-only"]):
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and str(store_file) in lines[0], lines
    after = store_file.read_bytes(), store_file.stat().st_mtime_ns, sorted(p.name for p in folder.iterdir())
    assert after == before  # no lock file, no journal, the store untouched


def test_a_measuring_command_refuses_a_newer_store_with_one_line(work, capsys, monkeypatch):
    store_file = work / "run" / "results.sqlite"
    (work / "run" / LOCK_FILE).unlink(missing_ok=True)
    _set_version(store_file, SCHEMA_VERSION + 1)
    before = store_file.read_bytes()
    monkeypatch.chdir(work)
    assert main(CORRELATE) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "written by a newer ntknas" in lines[0] and "upgrade ntknas" in lines[0], lines
    assert store_file.read_bytes() == before and not (work / "run" / LOCK_FILE).exists()
