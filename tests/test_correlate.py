"""Experiment 1 end to end on tiny networks: outputs, resume, atomicity, settings, bad input."""

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from fixtures_data import TINY_NB201 as TINY
from fixtures_data import write_cifar10

from ntknas.cli import main
from ntknas.errors import DataError, NtknasError
from ntknas.runs import correlate as correlate_module
from ntknas.runs.correlate import CorrelateConfig, run_correlate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory) -> Path:
    return write_cifar10(tmp_path_factory.mktemp("cifar"), per_class=2).parent


def _config(cifar_dir, nb201_csv, out, **overrides) -> CorrelateConfig:
    settings = dict(
        dataset="cifar10", data_dir=str(cifar_dir), benchmark=str(nb201_csv), archs="0:4",
        batch_size=6, out=str(out), network_options=TINY, metrics=("knas", "tenas", "lga"),
    )
    settings.update(overrides)
    return CorrelateConfig(**settings)


def test_outputs_and_resume(cifar_dir, nb201_csv, tmp_path):
    out = tmp_path / "run"
    outcome = run_correlate(_config(cifar_dir, nb201_csv, out))
    assert (outcome.measured, outcome.skipped) == (4, 0)
    for name in ("results.sqlite", "scores.csv", "summary.json", "summary.md", "scatter_lga.png"):
        assert (out / name).is_file(), name
    with (out / "scores.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["index", "arch", "bn", "train_epochs", "accuracy", "knas", "tenas", "lga"]
    assert len(rows) == 8 and {r["bn"] for r in rows} == {"train", "eval"}
    assert rows[0]["index"] == "0" and rows[0]["arch"].startswith("|avg_pool_3x3~0|")
    assert float(rows[0]["accuracy"]) > 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary) == 6
    assert set(summary[0]) >= {"metric", "bn", "train_epochs", "n", "kendall", "spearman", "kendall_ci", "spearman_ci"}
    assert all(r["n"] == 4 for r in summary)
    first = (out / "scores.csv").read_text()
    again = run_correlate(_config(cifar_dir, nb201_csv, out))
    assert (again.measured, again.skipped) == (0, 4)
    assert (out / "scores.csv").read_text() == first


def test_same_batch_for_every_architecture_and_seeded_build(cifar_dir, nb201_csv, tmp_path):
    """Rerunning one architecture in a fresh folder reproduces its stored values exactly."""
    run_correlate(_config(cifar_dir, nb201_csv, tmp_path / "a", archs="0:3"))
    run_correlate(_config(cifar_dir, nb201_csv, tmp_path / "b", archs="2"))
    def read(folder):
        with (folder / "scores.csv").open(newline="") as handle:
            return {(r["arch"], r["bn"]): r for r in csv.DictReader(handle)}

    a, b = read(tmp_path / "a"), read(tmp_path / "b")
    for key, row in b.items():
        assert a[key]["knas"] == row["knas"] and a[key]["lga"] == row["lga"]


def test_failure_mid_run_leaves_no_partial_architecture(cifar_dir, nb201_csv, tmp_path, monkeypatch):
    out = tmp_path / "run"
    calls = {"n": 0}
    real = correlate_module._evaluate

    def failing(net, batch, config, bn_mode, metrics):
        calls["n"] += 1
        if calls["n"] == 6:  # third architecture, second BN mode
            raise RuntimeError("simulated crash")
        return real(net, batch, config, bn_mode, metrics)

    monkeypatch.setattr(correlate_module, "_evaluate", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        run_correlate(_config(cifar_dir, nb201_csv, out))
    db = sqlite3.connect(out / "results.sqlite")
    archs = {row[0] for row in db.execute("SELECT arch FROM measurements")}
    assert len(archs) == 2 and db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 2
    assert db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == 2 * 2 * 3
    db.close()
    monkeypatch.setattr(correlate_module, "_evaluate", real)
    outcome = run_correlate(_config(cifar_dir, nb201_csv, out))
    assert (outcome.measured, outcome.skipped) == (2, 2)


def test_kill_9_then_resume(cifar_dir, nb201_csv, tmp_path):
    out = tmp_path / "run"
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(REPO / 'tests')!r})
        from ntknas.runs.correlate import CorrelateConfig, run_correlate
        config = CorrelateConfig(dataset="cifar10", data_dir={str(cifar_dir)!r}, benchmark={str(nb201_csv)!r},
            archs="0:40", batch_size=6, out={str(out)!r}, network_options={TINY!r}, metrics=("knas", "lga"))
        run_correlate(config)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
        if (out / "results.sqlite").exists():
            try:
                with sqlite3.connect(out / "results.sqlite", timeout=1) as db:
                    done = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if done >= 2:
                break
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with sqlite3.connect(out / "results.sqlite") as db:
        items = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        measured_archs = db.execute("SELECT COUNT(DISTINCT arch) FROM measurements").fetchone()[0]
        rows = db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    assert items >= 2 and measured_archs == items and rows == items * 2 * 2
    outcome = run_correlate(
        CorrelateConfig(dataset="cifar10", data_dir=str(cifar_dir), benchmark=str(nb201_csv), archs="0:40",
                        batch_size=6, out=str(out), network_options=TINY, metrics=("knas", "lga")),
    )
    assert outcome.skipped == items and outcome.measured == 40 - items


def test_other_settings_refused_unless_forced(cifar_dir, nb201_csv, tmp_path):
    out = tmp_path / "run"
    run_correlate(_config(cifar_dir, nb201_csv, out, archs="0:2"))
    with pytest.raises(DataError, match="other settings.*batch_size"):
        run_correlate(_config(cifar_dir, nb201_csv, out, archs="0:2", batch_size=4))
    outcome = run_correlate(_config(cifar_dir, nb201_csv, out, archs="0:2", batch_size=4, force=True))
    assert outcome.measured == 2


def test_nan_kernel_stored_as_missing_and_run_continues(cifar_dir, nb201_csv, tmp_path, monkeypatch):
    real = correlate_module.network_factory

    def poisoned(config, num_classes):
        build = real(config, num_classes)

        def make(entry):
            net = build(entry)
            if entry.index == 1:
                with torch.no_grad():
                    net.stem[0].weight.fill_(float("nan"))
            return net

        return make

    monkeypatch.setattr(correlate_module, "network_factory", poisoned)
    out = tmp_path / "run"
    run_correlate(_config(cifar_dir, nb201_csv, out, archs="0:3"))
    with sqlite3.connect(out / "results.sqlite") as db:
        rows = db.execute("SELECT arch, value, reason FROM measurements").fetchall()
    poisoned_rows = [r for r in rows if r[2]]
    assert len(poisoned_rows) == 2 * 3 and all(r[1] is None and "non-finite" in r[2] for r in poisoned_rows)
    summary = json.loads((out / "summary.json").read_text())
    assert all(r["n"] == 2 and r["missing"] == 1 for r in summary)


def _exit_status(args):
    """main's return value, or the status of argparse's SystemExit (a refused option value)."""
    try:
        return main(args)
    except SystemExit as exit_:
        return exit_.code


def _cli(args, capsys):
    code = _exit_status(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--dataset", "mnist"], "unknown dataset"),
        (["--space", "nb301"], "unknown search space"),
        (["--metrics", "knas,accuracy"], "unknown metric"),
        (["--target", "cifar10_top5"], "unknown target column"),
        (["--archs", "15000:16000"], "outside the benchmark"),
        (["--archs", "abc"], "cannot read"),
        (["--bn", "frozen"], "unknown BatchNorm mode"),
    ],
)
def test_bad_input_is_one_line_exit_2(extra, message, cifar_dir, nb201_csv, tmp_path, capsys):
    args = ["correlate", "--data-dir", str(cifar_dir), "--benchmark", str(nb201_csv), "--archs", "0:2",
            "--batch-size", "4", "--out", str(tmp_path / "run"), "--no-progress"]
    code, out, err = _cli(args + extra, capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1, err


def test_missing_or_corrupt_files_are_one_line(tmp_path, nb201_csv, cifar_dir, capsys):
    corrupt = tmp_path / "bad.csv"
    corrupt.write_text("index,arch_str,cifar10_valid_test\n0,|nonsense|,x\n")
    for args in (
        ["--data-dir", str(tmp_path / "nowhere"), "--benchmark", str(nb201_csv)],
        ["--data-dir", str(cifar_dir), "--benchmark", str(tmp_path / "missing.csv")],
        ["--data-dir", str(cifar_dir), "--benchmark", str(corrupt)],
    ):
        code, out, err = _cli(["correlate", *args, "--archs", "0:1", "--batch-size", "4",
                               "--out", str(tmp_path / "run"), "--no-progress"], capsys)
        assert code == 2 and err.count("\n") == 1, err


def test_cli_end_to_end_prints_summary(cifar_dir, nb201_csv, tmp_path, capsys):
    code, out, err = _cli(["correlate", "--data-dir", str(cifar_dir), "--benchmark", str(nb201_csv),
                           "--archs", "3,4", "--batch-size", "4", "--metrics", "knas,lga", "--bn", "eval",
                           "--out", str(tmp_path / "run"), "--no-progress"], capsys)
    assert code == 0, err
    assert "| knas | eval | 0 | 2 |" in out


def test_summary_only_reports_what_is_stored(cifar_dir, nb201_csv, tmp_path):
    out = tmp_path / "run"
    run_correlate(_config(cifar_dir, nb201_csv, out, archs="0:2"))
    outcome = run_correlate(_config(cifar_dir, nb201_csv, out, archs="0:10", summary_only=True))
    assert outcome.measured == 0 and len(outcome.entries) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert all(r["n"] == 2 for r in summary)


def test_train_epochs_equal_separately_trained_networks(cifar_dir, nb201_csv, tmp_path):
    """Epoch-E measurements of one continuing run equal a network trained separately for E epochs."""
    from ntknas import build_network, evaluate_metrics
    from ntknas.data import first_images, load_dataset
    from ntknas.train import TrainConfig, Trainer

    out = tmp_path / "run"
    config = _config(cifar_dir, nb201_csv, out, archs="1", train_epochs=(0, 1, 2), train_batch_size=8,
                     metrics=("knas", "lga"))
    run_correlate(config)
    summary = json.loads((out / "summary.json").read_text())
    assert sorted({r["train_epochs"] for r in summary}) == [0, 1, 2]
    assert (out / "kendall_vs_epochs.png").is_file()
    stored = {(r["bn"], int(r["train_epochs"])): r for r in csv.DictReader((out / "scores.csv").open())}

    from ntknas.spaces.nb201 import arch_from_index

    train = load_dataset("cifar10", cifar_dir, "train")
    test = load_dataset("cifar10", cifar_dir, "test")
    inputs, targets = first_images(test, 6)
    for epochs in (0, 2):
        torch.manual_seed(42)
        net = build_network("nb201", arch_from_index(1), 10, **TINY)
        if epochs:
            Trainer(net, train, TrainConfig(seed=42, batch_size=8), "cpu").train_epochs(epochs)
        for bn in ("train", "eval"):
            values = evaluate_metrics(net, inputs, targets, ("knas", "lga"), bn)
            assert float(stored[(bn, epochs)]["knas"]) == pytest.approx(values["knas"].value, rel=1e-12)
            assert float(stored[(bn, epochs)]["lga"]) == pytest.approx(values["lga"].value, rel=1e-12)
    assert stored[("train", 0)]["knas"] != stored[("train", 2)]["knas"]


def test_summary_only_keeps_the_measuring_command(cifar_dir, nb201_csv, tmp_path):
    out = tmp_path / "run"
    run_correlate(_config(cifar_dir, nb201_csv, out, archs="0:2"), command_line="measure")
    run_correlate(_config(cifar_dir, nb201_csv, out, archs="0:2", summary_only=True),
                  command_line="peek")
    assert "`measure`" in (out / "summary.md").read_text()


def _stored_values(out: Path) -> dict[tuple, float | None]:
    with sqlite3.connect(out / "results.sqlite") as db:
        rows = db.execute("SELECT arch, bn_mode, train_epochs, metric, value FROM measurements").fetchall()
    return {row[:4]: row[4] for row in rows}


def test_worker_processes_store_what_one_process_stores(cifar_dir, nb201_csv, tmp_path):
    from ntknas.execution.executors import threads_per_worker

    serial = tmp_path / "serial"
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_worker(2, torch.device("cpu")))  # same float reductions as a worker
    try:
        run_correlate(_config(cifar_dir, nb201_csv, serial, train_epochs=(0, 1)))
    finally:
        torch.set_num_threads(threads)
    parallel = tmp_path / "parallel"
    outcome = run_correlate(_config(cifar_dir, nb201_csv, parallel, train_epochs=(0, 1), workers=2))
    assert (outcome.measured, outcome.skipped) == (4, 0)
    expected, got = _stored_values(serial), _stored_values(parallel)
    assert set(got) == set(expected) and len(got) == 4 * 2 * 2 * 3
    for key, value in expected.items():
        assert (value is None) == (got[key] is None), key
        if value is not None:
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    again = run_correlate(_config(cifar_dir, nb201_csv, parallel, train_epochs=(0, 1), workers=2))
    assert (again.measured, again.skipped) == (0, 4)


def test_time_budget_stops_starting_architectures_and_a_rerun_continues(cifar_dir, nb201_csv, tmp_path, caplog):
    out = tmp_path / "run"
    stopped = run_correlate(_config(cifar_dir, nb201_csv, out, archs="0:2"))
    assert stopped.measured == 2
    outcome = run_correlate(_config(cifar_dir, nb201_csv, out, time_budget=0.0))
    assert outcome.measured == 0 and len(outcome.entries) == 2 and outcome.stopped_by_budget
    assert "stopped by the time budget, 2 of 4 done; rerun to continue" in caplog.text
    assert all(r["n"] == 2 for r in json.loads((out / "summary.json").read_text()))
    finished = run_correlate(_config(cifar_dir, nb201_csv, out))
    assert (finished.measured, finished.skipped) == (2, 2)


@pytest.mark.parametrize("extra, message", [(["--workers", "0"], "argument --workers: must be a positive integer"),
                                            (["--time-budget", "-5"], "argument --time-budget: must be a finite number of seconds >= 0")])
def test_bad_workers_or_budget_is_one_line(extra, message, cifar_dir, nb201_csv, tmp_path, capsys):
    code, _, err = _cli(["correlate", "--data-dir", str(cifar_dir), "--benchmark", str(nb201_csv), "--archs", "0:2",
                         "--out", str(tmp_path / "run"), "--no-progress", *extra], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_summary_names_every_device_of_a_resumed_run(cifar_dir, nb201_csv, tmp_path):
    out = tmp_path / "run"
    run_correlate(_config(cifar_dir, nb201_csv, out, archs="0:3"))
    assert "(3 items)" not in (out / "summary.md").read_text()
    with sqlite3.connect(out / "results.sqlite") as db:  # as if one item had been measured elsewhere
        db.execute("UPDATE items SET device = 'NVIDIA H200' WHERE arch_index = 1")
    run_correlate(_config(cifar_dir, nb201_csv, out, archs="0:3", summary_only=True))
    device_line = next(line for line in (out / "summary.md").read_text().splitlines() if line.startswith("- device:"))
    assert "(2 items), NVIDIA H200 (1 item)" in device_line


def test_workers_refuse_an_unpicklable_custom_factory_in_one_line(cifar_dir, tmp_path):
    from ntknas.runs.correlate import ArchEntry

    factory = lambda num_classes: torch.nn.Sequential(  # noqa: E731 - the point of the test
        torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(2 * 30 * 30, num_classes)
    )
    entries = [ArchEntry("tiny", 0, factory, 50.0)]
    config = CorrelateConfig(space="custom", dataset="cifar10", data_dir=str(cifar_dir), batch_size=4,
                             out=str(tmp_path / "run"), metrics=("knas",), workers=2)
    with pytest.raises(NtknasError, match="workers needs architectures that can be sent"):
        run_correlate(config, entries=entries)
    config = CorrelateConfig(**{**config.__dict__, "workers": 1})
    assert run_correlate(config, entries=entries).measured == 1
