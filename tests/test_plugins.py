"""Extensions reach the command line: ``--plugin PATH_OR_MODULE`` on every command and the
``ntknas.plugins`` entry points, loaded before any name is checked; a plugin that cannot load is
one line naming it, exit 2."""

import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from ntknas import plugins
from ntknas.cli import _plugin_arguments, build_parser, main
from ntknas.search.strategies import available_strategies

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SCORE = ("--metrics", "params", "--batch-size", "4", "--json")  # a cheap command


def _strategy_plugin(folder: Path, name: str) -> Path:
    """A plugin file registering a strategy ``name`` (random search under another name)."""
    path = folder / f"{name.replace('-', '_')}.py"
    path.write_text(textwrap.dedent(f"""
        from ntknas.search.strategies import random_search, register_strategy

        register_strategy({name!r}, random_search)
    """))
    return path


def _search(table: Path, out: Path, *extra: str) -> list[str]:
    return ["search", "--benchmark", str(table), "--target", "cifar10_test", "--proxy", "bench:cifar10_valid_valid",
            "--candidates", "20", "--runs", "2", "--out", str(out), "--no-progress", *extra]


def test_search_runs_the_example_strategy_from_the_command_line(nb201_csv, tmp_path, capsys):
    code = main(_search(nb201_csv, tmp_path / "run", "--plugin", str(EXAMPLES / "add_strategy.py"),
                        "--strategy", "local,random"))
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "| local | bench:cifar10_valid_valid | 2 |" in printed and "| random |" in printed


@pytest.mark.parametrize("workers", [1, 2])
def test_correlate_runs_the_example_space_from_the_command_line(tmp_path, workers):
    # In a fresh process: other tests register the example's space in this one. With worker
    # processes the plugin is loaded in each of them too.
    table = tmp_path / "toy2.csv"
    table.write_text("arch,accuracy\n" + "".join(
        f"{a}-{b},{50 + 3 * i + j}\n" for i, a in enumerate(("conv", "pool", "skip"))
        for j, b in enumerate(("conv", "pool", "skip"))))
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from ntknas.cli import main; sys.exit(main(sys.argv[1:]))",
         "correlate", "--plugin", str(EXAMPLES / "add_space.py"), "--space", "toy2", "--dataset", "digits",
         "--benchmark", str(table), "--archs", "all", "--batch-size", "8", "--metrics", "params", "--bn", "train",
         "--out", str(tmp_path / "run"), "--no-progress", "--workers", str(workers)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "| params | train | 0 | 9 |" in result.stdout


def test_every_command_offers_the_option():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(commands) >= {"score", "correlate", "demo", "export-benchmark", "track", "search", "report"}
    for name, command in commands.items():
        assert "--plugin PATH_OR_MODULE" in command.format_help(), name


def test_the_option_is_read_before_parsing():
    assert _plugin_arguments(["search", "--plugin", "a.py", "--out", "x", "--plugin=b", "--", "--plugin", "c"]) == [
        "a.py", "b"]
    assert _plugin_arguments(["score", "--plugin"]) == []


def test_a_plugin_loads_once_and_may_be_a_module(tmp_path, monkeypatch, capsys):
    path = _strategy_plugin(tmp_path, "test-plugin-file")
    monkeypatch.syspath_prepend(str(tmp_path))
    _strategy_plugin(tmp_path, "test-plugin-module")
    first = plugins.load_plugins([str(path), "test_plugin_module"], installed=False)
    again = plugins.load_plugins([str(path), "test_plugin_module", f"{tmp_path}/../{tmp_path.name}/{path.name}"],
                                 installed=False)
    assert again == first + first[:1]
    assert {"test-plugin-file", "test-plugin-module"} <= set(available_strategies())
    assert str(path.resolve()) in plugins.loaded_plugins() and "test_plugin_module" in plugins.loaded_plugins()
    # Through the command line too: repeated, both spellings, twice in one process.
    for _ in range(2):
        assert main(["score", f"--plugin={path}", "--plugin", "test_plugin_module", *SCORE]) == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "--plugin PLUGIN: no such file: give the path of a .py file"),
        ("x = (\n", "--plugin PLUGIN failed to load: SyntaxError: '(' was never closed (broken.py, line 1)"),
        ("import no_such_module_for_ntknas\n", "failed to load: ModuleNotFoundError: No module named 'no_such_module_for_ntknas'"),
        ("raise RuntimeError('boom\\nmore')\n", "--plugin PLUGIN failed to load: RuntimeError: boom"),
        ("from ntknas.spaces import register_space, get_space\nregister_space(get_space('nb201'))\n",
         "failed to load: ValueError: search space 'nb201' is registered twice"),
    ],
)
def test_a_plugin_that_cannot_load_is_one_line_exit_2(content, message, tmp_path, capsys):
    path = tmp_path / "broken.py"
    if content is not None:
        path.write_text(content)
    code = main(["search", "--plugin", str(path), "--strategy", "whatever", "--proxy", "x", "--benchmark", "b",
                 "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1, error
    assert error.startswith("ntknas search: error: ") and message.replace("PLUGIN", str(path)) in error


def test_a_fixed_plugin_loads_on_the_next_try(tmp_path, capsys):
    path = tmp_path / "later.py"
    path.write_text("raise ImportError('not yet')\n")
    assert main(["report", "--plugin", str(path), str(tmp_path)]) == 2
    assert "--plugin " + str(path) + " failed to load: ImportError: not yet" in capsys.readouterr().err
    _strategy_plugin(tmp_path, "test-plugin-fixed").rename(path)
    plugins.load_plugins([str(path)], installed=False)
    assert "test-plugin-fixed" in available_strategies()


def test_a_missing_module_is_one_line(capsys):
    assert main(["score", "--plugin", "no_such_ntknas_plugin", "--json"]) == 2
    error = capsys.readouterr().err
    assert error == ("ntknas score: error: --plugin no_such_ntknas_plugin: no module named 'no_such_ntknas_plugin': give a "
                     ".py file path or a module importable from this Python (pip install it, or add its folder to "
                     "PYTHONPATH)\n")


def test_installed_entry_points_are_loaded_by_every_command(tmp_path, monkeypatch, capsys):
    _strategy_plugin(tmp_path, "test-entry-point")
    (tmp_path / "failing_entry.py").write_text("raise KeyError('bad')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [EntryPoint("mine", "test_entry_point", plugins.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(plugins, "entry_points", lambda group: points if group == plugins.ENTRY_POINT_GROUP else [])
    assert main(["score", *SCORE]) == 0
    assert "test-entry-point" in available_strategies() and "test_entry_point" in plugins.loaded_plugins()
    assert main(["score", *SCORE]) == 0  # loaded once: no second registration
    capsys.readouterr()
    points.append(EntryPoint("theirs", "failing_entry:register", plugins.ENTRY_POINT_GROUP))
    assert main(["score", *SCORE]) == 2
    error = capsys.readouterr().err
    assert error == ("ntknas score: error: plugin theirs (failing_entry:register, entry point of ntknas.plugins) failed to "
                     "load: KeyError: 'bad'; fix or uninstall the package that provides it\n")
