"""What the manual may say about the program, read from the program: the flags of its parsers,
their defaults, the files its code names, the exit statuses its command line returns. The checks
take markdown and return one problem line per statement the program contradicts."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PACKAGE = REPO / "ntknas"

# Inline code spans, and those that start with a flag (`--bn`, `--bn eval`, `--archs 0:1000`).
CODE_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
FLAG = re.compile(r"--[a-z][\w-]*")
FENCE = re.compile(r"^ *```.*?^ *```", re.M | re.S)
# Flags of other tools that the pages mention in prose (each is named with its tool there).
OTHER_TOOLS_FLAGS = {
    "--index-url",  # pip
    "--strict",  # mkdocs build
    "--durations",  # pytest
    "--no-compile",  # pip
    "--head", "--address", "--port", "--block",  # ray start
}
# Words that follow "default" in a sentence without being a value ("default by file: ...").
NOT_VALUES = {"a", "an", "as", "by", "from", "in", "is", "of", "on", "the", "unless", "when", "with"}
OUTPUT_SUFFIXES = ("csv", "json", "md", "png", "html", "sqlite", "lock")
# Files a user names or downloads: the pages name them as inputs, the program does not write them.
INPUT_FILES = {"toy2.csv", "all_graphs.json", "nb201.csv", "nb201_accuracies.csv"}


def hooks() -> ModuleType:
    """docs/hooks.py, which renders the generated tables the site shows."""
    spec = importlib.util.spec_from_file_location("manual_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def parsers() -> dict[str, argparse.ArgumentParser]:
    return hooks().command_parsers()


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


def rendered(path: Path) -> str:
    """The page as the site shows it: generated tables in place of their markers."""
    return hooks().render(path.read_text())


def prose(markdown: str) -> str:
    """The markdown without its fenced code blocks."""
    return FENCE.sub("", markdown)


def actions_of(flag: str) -> list[argparse.Action]:
    return [
        action for parser in parsers().values() for action in parser._actions if flag in action.option_strings
    ]


@cache
def script_flags() -> frozenset[str]:
    """The flags of the scripts in perf/, which the manual documents beside the commands."""
    flags: set[str] = set()
    for script in (REPO / "perf").glob("*.py"):
        flags |= set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", script.read_text()))
    return frozenset(flags)


def unknown_prose_flags(markdown: str) -> list[str]:
    """Flags in inline code (`--flag`, `--flag VALUE`) that no ntknas command has."""
    problems = []
    for span in CODE_SPAN.findall(prose(markdown)):
        if not span.startswith("--"):
            continue
        flag = FLAG.match(span)
        if flag and flag.group() not in OTHER_TOOLS_FLAGS | script_flags() and not actions_of(flag.group()):
            problems.append(f"`{span}`: no ntknas command has {flag.group()}")
    return problems


# "`--flag` ... (default X)" or "`--flag` ... default X" within the same clause of prose.
STATED_DEFAULT = re.compile(
    r"`(--[a-z][\w-]*)[^`]*`[^.;|\n`]{0,60}?\bdefault:?\s+(?P<value>`?[\w.,:/+-]+)"
)
# An option table's row: the flag in the first column, "default X" anywhere in the row.
ROW_DEFAULT = re.compile(r"^\| `(--[a-z][\w-]*)[^`]*` \|.*?\bdefault:?\s+(?P<value>`?[\w.,:/+-]+)", re.M)


def _default_values(action: argparse.Action) -> set[str]:
    """The option's default as the program holds it (none for a switch or an unset default)."""
    default = action.default
    if default in (None, argparse.SUPPRESS) or action.nargs == 0:
        return set()
    return {",".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)}


def stated_defaults(markdown: str) -> Iterator[tuple[str, str]]:
    """(flag, value) for each "default X" the page states next to a flag."""
    text = prose(markdown)
    rows = [(m.group(1), m.group("value")) for m in ROW_DEFAULT.finditer(text)]
    text = re.sub(r"^\|.*$", "", text, flags=re.M)  # tables are read row by row above
    flowing = re.sub(r"\s*\n\s*", " ", text)
    for flag, value in rows + [(m.group(1), m.group("value")) for m in STATED_DEFAULT.finditer(flowing)]:
        value = value.strip("`").rstrip(",.:)/")
        if value and not value.startswith("-") and value.lower() not in NOT_VALUES:
            yield flag, value


def wrong_defaults(markdown: str) -> list[str]:
    """"`--flag` (default X)" where X is neither the flag's default in a command that has it nor a
    value its ``--help`` text states."""
    problems = []
    for flag, value in stated_defaults(markdown):
        actions = actions_of(flag)
        if not actions:
            continue  # unknown_prose_flags reports it
        known = set().union(*(_default_values(a) for a in actions))
        # A default the program computes is stated by its help: "(default: 256; 512 for ...)".
        stated = " ".join(re.findall(r"\bdefault\b[^)]*", " ".join(a.help or "" for a in actions)))
        if value not in known and not re.search(rf"(?<![\w.]){re.escape(value)}(?!\w)", stated):
            problems.append(f"`{flag}` ... default {value}: ntknas's default is {sorted(known) or 'unset'}")
    return problems


def _string_patterns(tree: ast.AST) -> Iterator[str]:
    """Every string constant of the code, an f-string's replacement fields as ``*``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, ast.JoinedStr):
            yield "".join(
                part.value if isinstance(part, ast.Constant) and isinstance(part.value, str) else "*"
                for part in node.values
            )


@cache
def program_file_names() -> tuple[re.Pattern[str], ...]:
    """The file names the package's code spells (constants, f-string templates), as patterns."""
    names = set()
    suffixes = "|".join(OUTPUT_SUFFIXES)
    for source in PACKAGE.rglob("*.py"):
        for text in _string_patterns(ast.parse(source.read_text())):
            names.update(re.findall(rf"[\w*{{}}-]+\.(?:{suffixes})\b", text))
    return tuple(re.compile(re.escape(name).replace(r"\*", r"[\w-]*") + "$") for name in names)


def unknown_output_files(markdown: str) -> list[str]:
    """File names in inline code (`summary.json`, `scatter_METRIC.png`) that the code never names.
    A page's placeholder in capitals or ``*`` stands for any name part."""
    problems = []
    suffixes = "|".join(OUTPUT_SUFFIXES)
    for span in CODE_SPAN.findall(prose(markdown)):
        match = re.fullmatch(rf"(?:[\w./-]*/)?([\w*-]+\.(?:{suffixes}))", span)
        if not match or match.group(1) in INPUT_FILES:
            continue
        name = re.sub(r"[A-Z][A-Z_]+|\*", "x", match.group(1))
        if not any(pattern.match(name) for pattern in program_file_names()):
            problems.append(f"`{span}`: no ntknas code names a file {match.group(1)}")
    return problems


def _cli_returns() -> set[int]:
    """The integer statuses ntknas/cli.py returns itself."""
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    statuses = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Return) and node.value is not None:
            statuses |= {
                n.value for n in ast.walk(node.value)
                if isinstance(n, ast.Constant) and type(n.value) is int
            }
    return statuses


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@cache
def program_exit_statuses() -> frozenset[int]:
    """Every exit status the command line can end with: its own returns, each error class's
    status, argparse's usage error (2) and 128 + each signal that stops a run."""
    import ntknas.store.faults  # noqa: F401  (defines error classes of its own, if any)
    from ntknas.errors import NtknasError
    from ntknas.execution.signals import STOPPING_SIGNALS

    statuses = _cli_returns() | {2} | {NtknasError.exit_status}
    statuses |= {sub.exit_status for sub in _subclasses(NtknasError) if isinstance(sub.exit_status, int)}
    statuses |= {128 + int(signum) for signum in STOPPING_SIGNALS}
    return frozenset(statuses)


EXIT_STATUS = re.compile(
    r"\b(?:exit(?:s|ed|ing)?(?: with)?(?: status(?:es)?)?|status(?:es)?)\s+(?P<codes>\d+(?:\s*(?:/|,|or|and)\s*\d+)*)",
    re.I,
)
STATUS_ROW = re.compile(r"^\|\s*(?P<codes>\d+(?:\s*/\s*\d+)*)\s*\|")
STATUS_HEADER = re.compile(r"^\|\s*(exit )?status\s*\|", re.I)


def status_table_rows(markdown: str) -> list[str]:
    """The rows of the tables whose first column is the exit status (not a results table that
    happens to have a status column, or rows numbered 1, 2, ...)."""
    rows: list[str] = []
    in_status_table = False
    for line in markdown.splitlines():
        if not line.startswith("|"):
            in_status_table = False
        elif STATUS_HEADER.match(line):
            in_status_table = True
        elif in_status_table:
            rows.append(line)
    return rows


def unknown_exit_statuses(markdown: str) -> list[str]:
    """"exit status N", "exits N", "status N" or an exit-status table row naming a status the
    command line never returns."""
    text = re.sub(r"\s*\n\s*", " ", prose(markdown))
    found = [m.group("codes") for m in EXIT_STATUS.finditer(text)]
    found += [m.group("codes") for row in status_table_rows(markdown) if (m := STATUS_ROW.match(row))]
    problems = []
    for codes in found:
        for code in map(int, re.findall(r"\d+", codes)):
            if code not in program_exit_statuses():
                problems.append(f"exit status {code}: ntknas exits with {sorted(program_exit_statuses())}")
    return problems
