"""The README and the manual agree with the tool: every ``ntknas COMMAND --flag`` written in a
shell code block is an option of that command, each command's page lists every option of its
``--help`` (generated from the parser: docs/hooks.py), and no page names a flag, a default, an
output file or an exit status the program does not have (tests/docs_checks.py). (The site itself
is built by ``mkdocs build --strict`` in the test command.)"""

import argparse
import re
import shlex
from pathlib import Path

import docs_checks
import pytest

from ntknas.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SHELL_LANGUAGES = {"bash", "console", "sh", "shell"}
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1"}


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


COMMANDS = _commands()


def _options(command: str, *, shown_only: bool = False) -> set[str]:
    """The option strings of ``command`` (with ``shown_only``: those ``--help`` lists)."""
    return {
        flag for action in COMMANDS[command]._actions
        if not (shown_only and action.help == argparse.SUPPRESS)
        for flag in action.option_strings
    }


def shell_lines(markdown: str) -> list[str]:
    """The logical lines of the markdown's shell code blocks: backslash continuations joined,
    console prompts removed."""
    lines = []
    for block in FENCE.finditer(markdown):
        if block["lang"].lower() not in SHELL_LANGUAGES:
            continue
        text = re.sub(r"\\\n", " ", block["body"])
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("$ "):
                line = line[2:]
            if line:
                lines.append(line)
    return lines


def ntknas_calls(line: str) -> list[tuple[str, list[str]]]:
    """Each ``ntknas COMMAND ...`` on a shell line: the command and the flags given to it."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote in a non-ntknas line: plain words will do
        words = line.split("#", 1)[0].split()
    calls = []
    for position, word in enumerate(words):
        if Path(word).name != "ntknas" or position + 1 >= len(words):
            continue
        command, flags = words[position + 1], []
        for argument in words[position + 2:]:
            if argument in SHELL_OPERATORS or argument == "ntknas":
                break
            if argument.startswith("--") and argument != "--":
                flags.append(argument.split("=", 1)[0])
        calls.append((command, flags))
    return calls


def unknown_flags(markdown: str) -> list[str]:
    """``ntknas COMMAND --flag`` in the markdown's shell blocks where the command has no such flag
    (abbreviations argparse would accept are refused too: the docs spell flags out)."""
    problems = []
    for line in shell_lines(markdown):
        for command, flags in ntknas_calls(line):
            if command.startswith("-"):  # ntknas --version, ntknas --help
                continue
            if command not in COMMANDS:
                problems.append(f"ntknas {command}: no such command (in: {line})")
                continue
            known = _options(command)
            problems += [f"ntknas {command} {flag}: no such option (in: {line})" for flag in flags if flag not in known]
    return problems


def _documents() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


@pytest.mark.parametrize("path", _documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_flag_in_a_code_block_exists(path):
    assert unknown_flags(path.read_text()) == []


def test_the_docs_show_commands_at_all():
    """The check above is not vacuous: the pages do hold ntknas command lines."""
    calls = [call for path in _documents() for line in shell_lines(path.read_text()) for call in ntknas_calls(line)]
    assert {command for command, _ in calls} >= set(COMMANDS)
    assert sum(len(flags) for _, flags in calls) > 100


def test_a_made_up_flag_is_caught():
    markdown = (
        "Text.\n\n```bash\n"
        "ntknas correlate --benchmark nb201.csv \\\n"
        "    --archs 0:10 --made-up-flag 3 --out runs/x   # a comment --not-a-flag\n"
        "ntknas search --benchmark b.csv --proxy synflow --out s --strategy=rea\n"
        "ntknas score --probe 3\n"
        "```\n\n```python\nntknas correlate --ignored-in-python\n```\n"
    )
    problems = unknown_flags(markdown)
    assert len(problems) == 2
    assert "ntknas correlate --made-up-flag" in problems[0]
    assert "ntknas score --probe" in problems[1]  # an abbreviation of --probes is not its spelling


def test_a_made_up_command_is_caught():
    assert unknown_flags("```console\n$ ntknas corelate --out x\n```\n") == [
        "ntknas corelate: no such command (in: ntknas corelate --out x)"
    ]


def _table_flags(markdown: str) -> set[str]:
    """The flags named in the first column of the page's tables."""
    flags = set()
    for line in markdown.splitlines():
        if line.startswith("| `"):
            first = line.split(" | ", 1)[0]
            flags |= set(re.findall(r"(--[\w-]+|-h)\b", first))
    return flags


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_page_lists_every_option(command):
    page = DOCS / "commands" / f"{command}.md"
    assert page.is_file(), f"docs/commands/{command}.md is missing: one page per command"
    listed = _table_flags(docs_checks.rendered(page))
    shown = {flag for flag in _options(command, shown_only=True) if flag.startswith("--")} - {"--help"}
    assert shown - listed == set(), f"docs/commands/{command}.md lacks options of ntknas {command} --help"
    assert listed - _options(command) == set(), f"docs/commands/{command}.md lists options ntknas {command} lacks"


def test_the_manual_has_a_page_per_command_in_its_nav():
    config = (REPO / "mkdocs.yml").read_text()
    for command in COMMANDS:
        assert f"commands/{command}.md" in config


def test_the_readme_is_a_front_door():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for link in ("docs/commands/study.md", "docs/index.md", "mkdocs serve", "make demo", "make test", "TORCH_INDEX"):
        assert link in readme


@pytest.mark.usefixtures("one_thread")
def test_the_readme_python_example_runs_as_written(capsys):
    readme = (REPO / "README.md").read_text()
    example = next(b["body"] for b in FENCE.finditer(readme) if b["lang"] == "python")
    exec(compile(example, "README.md", "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    for metric in ("knas", "tenas", "lga", "synflow"):
        assert f"'{metric}': " in printed


def test_the_readme_links_to_pages_that_exist():
    readme = (REPO / "README.md").read_text()
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (REPO / target).exists(), target


@pytest.mark.parametrize("path", _documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_a_page_states_only_what_the_program_has(path):
    """Flags in prose, defaults stated next to a flag, output files, exit statuses: each is the
    program's (read from its parsers, its code's file names and its exit statuses)."""
    page = docs_checks.rendered(path)
    problems = (docs_checks.unknown_prose_flags(page) + docs_checks.wrong_defaults(page)
                + docs_checks.unknown_output_files(page) + docs_checks.unknown_exit_statuses(page))
    assert problems == []


def test_the_program_checks_catch_made_up_statements():
    page = (
        "Use `--device` (default cuda), `--batch-size` (default: 512 for ImageNet16-120) and\n"
        "`--made-up 3`; `ntknas correlate` writes `summary.json`, `scatter_METRIC.png` and\n"
        "`scores.json`. It exits with status 7 or 3.\n\n"
        "| option | default | meaning |\n|---|---|---|\n| `--workers N` | processes (default 7) |\n\n"
        "```bash\nntknas score --not-checked-here-but-by-the-code-block-test\n```\n"
    )
    assert docs_checks.wrong_defaults(page) == [
        "`--workers` ... default 7: ntknas's default is ['1']",
        "`--device` ... default cuda: ntknas's default is ['cpu']",
    ]
    assert docs_checks.unknown_prose_flags(page) == ["`--made-up 3`: no ntknas command has --made-up"]
    assert docs_checks.unknown_output_files(page) == ["`scores.json`: no ntknas code names a file scores.json"]
    assert [p.split(":")[0] for p in docs_checks.unknown_exit_statuses(page)] == ["exit status 7"]
    tables = ("| status | meaning |\n|---|---|\n| 0 | finished |\n| 6 / 2 | made up |\n\n"
              "| claim | part | status |\n|---|---|---|\n| 1 | init | done |\n| 9 | track | done |\n")
    assert [p.split(":")[0] for p in docs_checks.unknown_exit_statuses(tables)] == ["exit status 6"]


def test_the_exit_statuses_are_read_from_the_program():
    from ntknas.errors import RunFolderInUseError, StorageError

    statuses = docs_checks.program_exit_statuses()
    assert {0, 2, 3, RunFolderInUseError.exit_status, StorageError.exit_status, 130, 143} <= statuses
    assert 1 not in statuses  # a traceback's status is not one the command line chooses


def test_generated_option_tables_show_every_option_with_its_default():
    hooks = docs_checks.hooks()
    table = hooks.options_tables("correlate")
    for action in COMMANDS["correlate"]._actions:
        if action.help in (None, argparse.SUPPRESS) or not action.option_strings or action.dest == "help":
            continue
        row = next(line for line in table.splitlines() if line.startswith(f"| `{action.option_strings[-1]}"))
        if action.required:
            assert "| required |" in row
        elif action.default not in (None, [], False):
            assert f"`{action.default}`" in row or f"`{','.join(map(str, action.default))}`" in row
    assert "| `--bn BN` | `train,eval` |" in table
    assert "**Kernel:**" in table and "| `--kernel {exact,matrix-free,auto}` | `exact` |" in table
    only_ray = hooks.options_tables("track", "where items run")
    assert "--ray-address" in only_ray and "--epochs" not in only_ray
    with pytest.raises(ValueError, match="no command"):
        hooks.options_tables("corelate")
    quoted = "Write `<!-- options: COMMAND -->` on a line of its own.\n"
    assert hooks.render(quoted) == quoted  # a marker quoted in the text stays text
    assert "| `--out OUT` | `runs/demo` |" in hooks.render("Text.\n\n<!-- options: demo -->\n")
