"""Each path of docs/getting-started.md, executed as written on small inputs: the demo,
experiment 1 from the official NAS-Bench-201 file (a tiny file in its format) and a CIFAR-10
archive (random images in its format), the study, and one's own network (the Python API page's
examples). A path's commands are the shell block after its ``<!-- newcomer-path: NAME -->``
marker; size options appended to a command (argparse keeps the last value) shrink it."""

import functools
import json
import os
import re
import shlex
import subprocess
import tarfile
from pathlib import Path

import pytest
import torch
from fixtures_data import write_cifar10
from test_docs import FENCE, shell_lines
from test_groundtruth import _nb201_state

import ntknas
from ntknas.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
GETTING_STARTED = REPO / "docs" / "getting-started.md"
PATH_BLOCK = re.compile(r"<!--\s*newcomer-path:\s*(?P<name>[\w-]+)\s*-->\s*\n(?P<block>```bash\n.*?^```)", re.M | re.S)
SHELL_TOOLS = {"mkdir", "tar"}  # what a path may run besides ntknas; downloads are done by the test


def path_commands(name: str) -> list[str]:
    blocks = {m["name"]: m["block"] for m in PATH_BLOCK.finditer(GETTING_STARTED.read_text())}
    assert name in blocks, f"docs/getting-started.md has no <!-- newcomer-path: {name} --> block"
    return shell_lines(blocks[name] + "\n")


def run_path(name: str, home: Path, shrink: dict[str, list[str]]) -> list[int]:
    """Run the path's commands in ``home`` (also $HOME, so ``~`` is there): ntknas in-process with
    the ``shrink`` options of its command appended, the shell tools as processes."""
    statuses = []
    for line in path_commands(name):
        words = [os.path.expanduser(word) for word in shlex.split(line, comments=True)]
        if words[0] == "ntknas":
            statuses.append(main(words[1:] + shrink.get(words[1], [])))
        else:
            assert words[0] in SHELL_TOOLS, f"a newcomer path runs {words[0]}, which this test cannot"
            statuses.append(subprocess.run(words, cwd=home, check=False).returncode)
    return statuses


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_path_of_the_page_is_tested():
    names = {m["name"] for m in PATH_BLOCK.finditer(GETTING_STARTED.read_text())}
    assert names == {"demo", "experiment-1", "study"}


def test_path_1_the_demo(home, monkeypatch):
    from ntknas.runs import demo

    # The demo's measurement batch is not a flag: the test's small input is a batch of 8.
    monkeypatch.setattr(demo, "DemoConfig", functools.partial(demo.DemoConfig, batch_size=8))
    assert run_path("demo", home, {"demo": ["--archs", "3", "--epochs", "1"]}) == [0]
    assert (home / "runs" / "demo" / "summary.json").is_file()
    assert (home / "runs" / "demo" / "search").is_dir()


def test_path_2_experiment_1_from_the_official_files(home):
    # The two downloads, in their formats: the CIFAR-10 python archive and the official .pth.
    write_cifar10(home / "unpacked", per_class=2)
    with tarfile.open(home / "cifar-10-python.tar.gz", "w:gz") as archive:
        archive.add(home / "unpacked" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    torch.save(_nb201_state(), home / "NAS-Bench-201-v1_1-096897.pth")
    # Indices 0, 1, 3 of the tiny file have CIFAR-10 accuracies (2 has none); a batch of 8.
    shrink = {"correlate": ["--archs", "0,1,3", "--batch-size", "4", "--bn", "train", "--no-progress"]}
    assert run_path("experiment-1", home, shrink) == [0, 0, 0, 0]
    assert (home / "data" / "cifar-10-batches-py" / "data_batch_1").is_file()
    assert (home / "nb201.csv").is_file()
    summary = json.loads((home / "runs" / "c10-init" / "summary.json").read_text())
    measured = {record["metric"] for record in summary}
    # --metrics all: the NTK metrics and every zero-cost proxy ntknas registers.
    assert measured == set(ntknas.available_metrics())
    assert {"knas", "tenas", "lga", "synflow", "snip", "jacob_cov"} <= measured


def test_path_3_the_study_is_the_smoke_run_the_study_tests_execute(home):
    """The smoke study takes minutes: tests/test_study.py runs ``StudyConfig(scale="smoke")`` end
    to end. Here the page's command must build exactly that configuration."""
    from ntknas.cli import build_parser
    from ntknas.settings import from_args
    from ntknas.study import StudyConfig

    (line,) = path_commands("study")
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert args.command == "study"
    assert from_args(StudyConfig, args) == StudyConfig(scale="smoke", out="runs/smoke")


def test_path_4_ones_own_network_as_the_python_api_page_shows(home, capsys):
    write_cifar10(home / "data", per_class=26)  # 260 training images: the study's batch is 256
    page = (REPO / "docs" / "python-api.md").read_text()
    section = page[page.index("## Score a network of your own"):page.index("## Benchmark networks and kernels")]
    namespace = {"__name__": "python_api_example"}
    for block in FENCE.finditer(section):
        if block["lang"] == "python":
            exec(compile(block["body"], "docs/python-api.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert namespace["x"].shape == (256, 3, 32, 32)
    assert "head" in printed.splitlines()
    for metric in ("knas", "lga", "tenas", "synflow"):
        assert f"'{metric}': " in printed
