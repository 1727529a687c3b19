"""Tests that travel: a clone without ../shared skips the real-data tests, saying what is missing;
CI (NTKNAS_REQUIRE_SHARED=1, set by .ci/run) fails them instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from real_data import REQUIRE_SHARED, shared_file

TESTS = Path(__file__).resolve().parent

PROBE = textwrap.dedent(
    """
    from pathlib import Path

    from real_data import shared_file


    def test_reads_real_data(tmp_path):
        shared_file("nb201/nb201_accuracies.csv", root=tmp_path / "shared" / "data")


    def test_needs_nothing():
        assert True
    """
)


def test_present_file_is_returned(tmp_path: Path) -> None:
    (tmp_path / "nb201").mkdir()
    (tmp_path / "nb201" / "table.csv").write_text("index\n0\n")
    assert shared_file("nb201/table.csv", root=tmp_path) == tmp_path / "nb201" / "table.csv"
    assert shared_file("", root=tmp_path) == tmp_path


def test_missing_file_skips_naming_the_file_and_where_it_belongs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(REQUIRE_SHARED, raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        shared_file("nb101/table.npz", root=tmp_path / "shared" / "data")
    reason = str(skipped.value)
    assert str(tmp_path / "shared" / "data" / "nb101" / "table.npz") in reason
    assert "is missing" in reason and "shared/data folder beside the checkout" in reason


@pytest.mark.parametrize("setting", ["1", "yes"])
def test_required_shared_data_fails_instead_of_skipping(tmp_path: Path, monkeypatch, setting: str) -> None:
    monkeypatch.setenv(REQUIRE_SHARED, setting)
    with pytest.raises(pytest.fail.Exception, match=f"nb101/table.npz, which is missing.*{REQUIRE_SHARED} is set"):
        shared_file("nb101/table.npz", root=tmp_path)


def _run_probe(tmp_path: Path, require: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_SHARED} | {"PYTHONPATH": str(TESTS)}
    if require is not None:
        env[REQUIRE_SHARED] = require
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist", "test_probe.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def test_a_pytest_run_passes_with_skips_without_the_data_and_fails_when_it_is_required(tmp_path: Path) -> None:
    """The whole chain as CI runs it: the exit status a missing data folder gives pytest."""
    travelling = _run_probe(tmp_path, None)
    assert travelling.returncode == 0, travelling.stdout + travelling.stderr
    assert "1 passed, 1 skipped" in travelling.stdout and "which is missing" in travelling.stdout
    required = _run_probe(tmp_path, "1")
    assert required.returncode == 1, required.stdout + required.stderr
    assert "1 failed, 1 passed" in required.stdout and f"{REQUIRE_SHARED} is set" in required.stdout


def test_ci_requires_the_shared_data() -> None:
    """.ci/run is the one place that knows ../shared is there: it must not let those tests skip."""
    ci = (TESTS.parent / ".ci" / "run").read_text()
    assert f"export {REQUIRE_SHARED}=1" in ci


def test_the_modules_started_first_exist_and_the_makefile_keeps_their_order():
    """conftest.py's LONGEST_MODULES orders the suite only under --no-loadscope-reorder, and only
    for modules that still exist under those names (a renamed module would silently run last)."""
    from conftest import LONGEST_MODULES

    assert len(set(LONGEST_MODULES)) == len(LONGEST_MODULES)
    assert all((TESTS / name).is_file() for name in LONGEST_MODULES)
    makefile = (TESTS.parent / "Makefile").read_text()
    assert "--dist loadfile --no-loadscope-reorder" in makefile
