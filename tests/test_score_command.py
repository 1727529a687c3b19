"""ntknas score: stage lines while it works, --model-seed (and the deprecated --seed), and a
Ctrl-C that says nothing about resuming (score stores nothing)."""

import json

import pytest

from ntknas.cli import main
from ntknas.runs import score_command

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_stage_that_lasts_is_a_line_on_stderr_when_not_a_terminal(monkeypatch, capsys):
    import time

    from ntknas.console import Stages

    real = score_command.score_run

    def slow(*args, **kwargs):
        time.sleep(0.8)
        return real(*args, **kwargs)

    monkeypatch.setattr(Stages, "SHOW_AFTER", 0.3)
    monkeypatch.setattr(score_command, "score_run", slow)
    assert main(["score", "--batch-size", "4", "--metrics", "knas"]) == 0
    assert capsys.readouterr().err.splitlines() == ["computing knas on 4 images (the exact kernel, BatchNorm train)…"]


def test_a_quick_failure_is_one_line_without_stage_lines(capsys):
    assert main(["score", "--batch-size", "100000"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_json_output_has_no_stage_lines(capsys):
    assert main(["score", "--batch-size", "4", "--metrics", "knas", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["metrics"]["knas"] > 0 and out.err == ""


def test_seed_is_the_deprecated_spelling_of_model_seed(capsys):
    assert main(["score", "--batch-size", "4", "--metrics", "knas", "--json", "--model-seed", "3"]) == 0
    new = json.loads(capsys.readouterr().out)["metrics"]["knas"]
    assert main(["score", "--batch-size", "4", "--metrics", "knas", "--json", "--seed", "3"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["metrics"]["knas"] == new
    assert out.err.strip() == "ntknas score: --seed is deprecated, it is the model seed: use --model-seed"


def test_ctrl_c_says_interrupted_without_a_resume_hint(monkeypatch, capsys):
    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(score_command, "score_architecture", interrupted)
    assert main(["score", "--batch-size", "4"]) == 130
    assert capsys.readouterr().err.strip() == "ntknas score: interrupted"


def test_estimator_flags_with_the_exact_kernel_are_warned(capsys):
    assert main(["score", "--batch-size", "4", "--metrics", "knas", "--json", "--probes", "5"]) == 0
    err = capsys.readouterr().err.strip()
    assert err == ("ntknas score: warning: --probes is ignored: it sizes --kernel matrix-free estimates, "
                   "and this run uses the exact kernel")
    assert main(["score", "--batch-size", "4", "--metrics", "knas", "--json", "--kernel", "matrix-free",
                 "--probes", "4"]) == 0
    assert "ignored" not in capsys.readouterr().err
