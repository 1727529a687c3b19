"""The command line: score, demo, and one-line errors."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from ntknas.cli import main
from ntknas.console import Progress
from ntknas.runs.demo import DemoConfig, demo_workers, run_demo
from ntknas.version import __version__


def _exit_status(args):
    """main's return value, or the status of argparse's SystemExit (a refused option value)."""
    try:
        return main(args)
    except SystemExit as exit_:
        return exit_.code


def _run(args, capsys):
    code = _exit_status(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_score_on_builtin_digits_json(capsys):
    code, out, err = _run(["score", "--index", "3", "--batch-size", "6", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["index"] == 3 and result["arch"].startswith("|avg_pool_3x3~0|")
    assert set(result["metrics"]) == {"knas", "tenas", "fnorm", "trace", "lga"}
    assert result["kernel_strategy"] in ("per_sample", "batched", "loop")


def test_score_batch_file_text_output(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "batch.npz"
    np.savez(path, images=rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8), labels=np.array([0, 1, 2, 0, 1]))
    code, out, err = _run(["score", "--arch", "222222", "--batch-file", str(path), "--dataset", "cifar10", "--bn", "eval",
                           "--metrics", "knas,lga,synflow"], capsys)
    assert code == 0, err
    assert "knas" in out and "synflow" in out and "ranks by" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["score", "--arch", "|nor_conv_3x3~0|+|bogus~0|"], "NAS-Bench-201"),
        (["score", "--arch", "|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "conv_5x5"),
        (["score", "--index", "20000"], "15624"),
        (["score", "--space", "nb301"], "unknown search space"),
        (["score", "--batch-file", "/nonexistent/batch.npz", "--dataset", "digits"], "not found"),
        (["score", "--dataset", "cifar10", "--data-dir", "/nonexistent"], "cifar"),
        (["score", "--dataset", "mnist", "--data-dir", "/tmp"], "unknown dataset"),
        (["score", "--metrics", "accuracy"], "unknown metric"),
        (["score", "--space", "nb101"], "--arch"),
        (["score", "--space", "nb101", "--arch", '{"adjacency": [[0, 1], [0, 0]], "ops": ["input", "conv9x9"]}'], "conv9x9"),
        (["report", "/nonexistent/run"], "run"),
        (["track", "--band", "cifar10_test:high:low", "--sample", "2", "--out", "/tmp/never"], "band"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message, capsys):
    code, out, err = _run(args, capsys)
    assert code == 2
    assert err.count("\n") == 1 and message in err, err


def test_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["correlate", "--bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--help" in err


def test_version_is_answered_without_importing_torch_and_as_the_parser_answers_it(capsys):
    script = "import sys; from ntknas.cli import main; main(['--version']); print('torch' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert shown == ["ntknas", __version__, "False"]
    with pytest.raises(SystemExit) as info:  # the parser's own --version (any other arguments beside it)
        main(["--version", "--help"])
    assert info.value.code == 0 and capsys.readouterr().out == f"ntknas {__version__}\n"


def test_demo_miniature_end_to_end(tmp_path):
    config = DemoConfig(archs=3, train_epochs=1, batch_size=8)
    threads_before = torch.get_num_threads()
    phases: list[tuple[str, int, int, int]] = []

    def follow(phase):
        return lambda done, total, key: phases.append((phase, done, total, torch.get_num_threads()))

    outcome = run_demo(tmp_path / "demo", config, on_progress=follow("measuring"), on_training=follow("training"))
    assert outcome.measured == 3
    # Training reports first, on its own hook, then measuring; both on the demo's one thread.
    assert [(phase, done, total) for phase, done, total, _ in phases] == [
        ("training", done, 3) for done in range(4)] + [("measuring", done, 3) for done in range(4)]
    assert {threads for *_, threads in phases} == {config.threads} == {1}
    assert torch.get_num_threads() == threads_before
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert {r["bn"] for r in summary} == {"train", "eval"} and all(r["n"] == 3 for r in summary)
    assert (tmp_path / "demo" / "demo_groundtruth.json").is_file()
    again = run_demo(tmp_path / "demo", config)
    assert again.measured == 0
    # Cells trained and measured side by side in worker processes give exactly the values this
    # process alone gives.
    assert demo_workers(config) == min(os.cpu_count() or 1, 3)
    run_demo(tmp_path / "alone", replace(config, workers=1))
    assert (tmp_path / "alone" / "demo_groundtruth.json").read_text() == (tmp_path / "demo" / "demo_groundtruth.json").read_text()
    rows = [sorted((tmp_path / folder / "scores.csv").read_text().splitlines()) for folder in ("alone", "demo")]
    assert rows[0] == rows[1]


@pytest.mark.parametrize("activity", ["training", "measuring"])
def test_progress_names_its_activity_off_a_terminal(capsys, activity):
    progress = Progress("cells", activity=activity)  # stderr is captured: plain lines, not a bar
    progress(0, 2, "")
    progress(1, 2, "a")
    progress(2, 2, "b")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"{activity} 2 cells"
    assert lines[-1].startswith(f"{activity}: 2/2 cells done")
