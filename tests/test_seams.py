"""The seams: a space, a dataset, a metric and an executor added from one file each (the
manual's worked examples, executed here), the layer contract, and the public API."""

import csv
import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ntknas
from ntknas.cli import main
from ntknas.execution.executors import ProcessPoolExecutor, SerialExecutor, Task
from ntknas.runs.correlate import CorrelateConfig, run_correlate

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def extensions():
    """Each example file executed once (registration is process-wide)."""
    return {name: runpy.run_path(str(EXAMPLES / f"add_{name}.py")) for name in ("space", "dataset", "metric", "executor")}


def test_the_manual_includes_the_examples_by_file():
    """docs/extending.md includes each example with pymdownx.snippets, so the manual shows the
    very files executed here (mkdocs build --strict fails on a snippet path that does not exist)."""
    page = (REPO / "docs" / "extending.md").read_text()
    included = re.findall(r'^--8<-- "([^"]+)"$', page, re.M)
    for name in ("space", "dataset", "metric", "executor", "strategy"):
        assert f"examples/add_{name}.py" in included, f"docs/extending.md does not include examples/add_{name}.py"
    assert all((REPO / path).is_file() for path in included)


def _toy_benchmark(path: Path, space) -> Path:
    rows = [(space.key(arch), 50.0 + 3.0 * i + (i % 3)) for i, arch in enumerate(space.archs())]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "accuracy"])
        writer.writerows(rows)
    return path


def test_a_toy_space_runs_end_to_end_through_correlate(extensions, tmp_path):
    space = ntknas.get_space("toy2")
    assert space.size() == 9 and "toy2" in ntknas.available_spaces()
    assert space.key(space.parse("conv-pool")) == "conv-pool" and len(space.neighbours(("conv", "pool"))) == 4
    bench = _toy_benchmark(tmp_path / "toy2.csv", space)
    out = tmp_path / "run"
    code = main([
        "correlate", "--space", "toy2", "--dataset", "digits", "--benchmark", str(bench), "--archs", "all",
        "--batch-size", "8", "--metrics", "knas,lga,ntk_diag_share,params", "--bn", "train,eval",
        "--out", str(out), "--no-progress",
    ])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {r["metric"] for r in summary} == {"knas", "lga", "ntk_diag_share", "params"}
    assert all(r["n"] == 9 for r in summary)
    scores = list(csv.DictReader((out / "scores.csv").open()))
    assert len(scores) == 18 and {r["arch"] for r in scores} == {space.key(a) for a in space.archs()}
    assert (out / "scatter_knas.png").read_bytes()[:4] == b"\x89PNG"
    # params ignores the BN mode: measured once, stored for both modes with the same value.
    by_arch = {}
    for row in scores:
        by_arch.setdefault(row["arch"], set()).add(row["params"])
    assert all(len(values) == 1 for values in by_arch.values())


def test_the_dataset_example_reads_its_files(extensions, tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 6)):
        np.savez(tmp_path / f"{split}.npz", images=rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
                 labels=np.arange(n) % 10)
    train = ntknas.load_dataset("my-npz", tmp_path, "train")
    assert len(train) == 12 and train.info.name == "mynpz" and "mynpz" in ntknas.dataset_names()
    code = main(["score", "--dataset", "mynpz", "--data-dir", str(tmp_path), "--batch-size", "6",
                 "--metrics", "knas,ntk_diag_share", "--json"])
    assert code == 0


def test_the_metric_example_matches_its_formula(extensions):
    net = ntknas.build_network("nb201", 3, channels=4, cells_per_stage=1)
    x, y = torch.randn(5, 3, 16, 16), torch.arange(5) % 2
    kernel = ntknas.empirical_ntk(net, x).numpy()
    value = ntknas.score(net, x, y, metrics=("ntk_diag_share",))["ntk_diag_share"]
    assert value == pytest.approx(np.trace(kernel) / np.abs(kernel).sum(), rel=1e-6)
    metric = ntknas.get_metric("ntk_diag_share")
    assert metric.needs_kernel and metric.uses_bn_mode and not metric.needs_labels


def _config(tmp_path, name, **extra) -> CorrelateConfig:
    bench = _toy_benchmark(tmp_path / f"{name}.csv", ntknas.get_space("toy2"))
    return CorrelateConfig(space="toy2", dataset="digits", benchmark=str(bench), archs="all", batch_size=8,
                           metrics=("knas", "fnorm"), bn_modes=("train",), out=str(tmp_path / name), **extra)


def _values(run_dir: Path) -> dict:
    import sqlite3

    with sqlite3.connect(run_dir / "results.sqlite") as db:
        return {row[:3]: row[3] for row in db.execute("SELECT arch, bn_mode, metric, value FROM measurements")}


def test_executors_are_interchangeable(extensions, tmp_path):
    serial = run_correlate(_config(tmp_path, "serial"), executor=SerialExecutor())
    timed_executor = extensions["executor"]["TimedExecutor"]()
    timed = run_correlate(_config(tmp_path, "timed"), executor=timed_executor)
    assert serial.measured == timed.measured == 9 and len(timed_executor.seconds) == 9
    assert _values(tmp_path / "timed") == _values(tmp_path / "serial")


def test_the_executor_honours_the_done_set_and_the_deadline():
    class Context:
        def portable(self):
            return self

        def local(self):
            return self

    def work(context, item, done):
        return [(item, sorted(done))]

    tasks = [Task(1, frozenset({"a"})), Task(2)]
    assert list(SerialExecutor().map(work, Context(), tasks)) == [(1, [(1, ["a"])]), (2, [(2, [])])]
    assert list(SerialExecutor().map(work, Context(), tasks, deadline=0.0)) == []
    with pytest.raises(ntknas.NtknasError, match="workers"):
        ProcessPoolExecutor(0)


def test_layer_contract_holds():
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(linter)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Contracts: 2 kept, 0 broken", result.stdout)


def test_report_imports_neither_torch_nor_run_code():
    code = "import sys, ntknas.report.document, ntknas.report.correlation, ntknas.report.tracking; " \
           "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('ntknas.runs', 'ntknas.search', 'ntknas.execution'))))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_public_api_is_listed():
    names = set(dir(ntknas))
    for name in ("build_network", "get_space", "register_space", "compute_ntk", "NTKResult", "score", "evaluate",
                 "available_metrics", "register_metric", "load_dataset", "study_batch", "load_benchmark",
                 "rank_correlation", "run_correlate", "CorrelateConfig", "run_track"):
        assert name in names and getattr(ntknas, name) is not None


def test_no_space_switches_outside_the_spaces_package():
    pattern = re.compile(r"""space\s*[!=]=\s*["'](nb201|nb101|custom)["']""")
    offenders = [
        str(path.relative_to(REPO)) for path in (REPO / "ntknas").rglob("*.py")
        if "spaces" not in path.parts and pattern.search(path.read_text())
    ]
    assert offenders == []
