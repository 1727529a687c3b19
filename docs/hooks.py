"""MkDocs hooks for the manual (mkdocs.yml ``hooks:``; excluded from the site).

- The docstrings use Sphinx roles (``:func:`score_run```), which mkdocstrings leaves as text:
  the role is dropped, and ``~a.b.C`` shows as ``C``, as Sphinx would.
- ``<!-- fields: module.Class -->`` in a page becomes a table of that settings dataclass's fields
  (name, command-line flag, default, help), read from the field metadata the command line is
  derived from, so the reference cannot drift from ``--help``.
- ``<!-- options: COMMAND -->`` becomes the tables of every option of ``ntknas COMMAND`` (flag,
  default, choices, help), one per option group, read from the parser ``ntknas`` itself builds;
  ``<!-- options: COMMAND GROUP -->`` renders one group (``kernel``, ``where items run``). A
  default therefore lives in one place: the code.

The tests (tests/test_docs.py) render the pages through :func:`render` too.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import re
import sys
from pathlib import Path
from typing import Any

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):<code>(?:~[\w.]*\.)?")
# A marker is a line of its own (one quoted in the text, e.g. in backticks, stays text).
_FIELDS = re.compile(r"^<!--\s*fields:\s*([\w.]+)\s*-->$", re.M)
_OPTIONS = re.compile(r"^<!--\s*options:\s*([\w-]+)(?:\s+([\w ]+?))?\s*-->$", re.M)
MAIN_GROUP = "options"
"""argparse's title of a parser's own options (the groups a command adds have their own)."""


def on_config(config: Any, **_: Any) -> Any:
    """Import the checkout being documented, not another installed copy."""
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return config


def on_page_content(html: str, **_: Any) -> str:
    return _ROLE.sub("<code>", html)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return render(markdown)


def render(markdown: str) -> str:
    """The page with its ``fields`` and ``options`` markers replaced by generated tables."""
    markdown = _FIELDS.sub(lambda match: _fields_table(match.group(1)), markdown)
    return _OPTIONS.sub(lambda match: options_tables(match.group(1), match.group(2)), markdown)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _fields_table(path: str) -> str:
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    rows = ["| field | flag | default | meaning |", "|---|---|---|---|"]
    for item in dataclasses.fields(cls):
        meta = item.metadata
        if item.default is not dataclasses.MISSING:
            default = repr(item.default)
        elif item.default_factory is not dataclasses.MISSING:
            default = repr(item.default_factory())
        else:
            default = "required"
        flag = f"`{meta['flag']}`" if meta.get("flag") else ""
        meaning = _cell(meta.get("help") or "")
        if meta.get("identity"):
            meaning += " *(identity: part of the run folder's settings)*"
        rows.append(f"| `{item.name}` | {flag} | `{default}` | {meaning} |")
    return "\n".join(rows)


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    """Each ``ntknas`` command's parser, as the command line builds it."""
    from ntknas.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


def shown_actions(parser: argparse.ArgumentParser) -> list[tuple[str, list[argparse.Action]]]:
    """The options ``--help`` shows, by group title, in the order it shows them."""
    groups = []
    for group in parser._action_groups:
        actions = [
            action for action in group._group_actions
            if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction)
        ]
        if actions:
            groups.append((group.title or MAIN_GROUP, actions))
    return groups


def spelling(action: argparse.Action) -> str:
    """How the option is typed: ``--bn {train,eval}``, ``--out OUT``, ``--force``, ``RUN_DIR ...``."""
    if not action.option_strings:
        name = action.metavar or action.dest
        return f"{name} ..." if action.nargs in ("+", "*") else str(name)
    flag = action.option_strings[-1]
    if action.nargs == 0:
        return flag
    if action.choices is not None:
        return f"{flag} {{{','.join(map(str, action.choices))}}}"
    return f"{flag} {action.metavar or action.dest.upper()}"


def default_text(action: argparse.Action) -> str:
    """The default as a reader needs it: the value, ``required``, ``off`` for a switch, or ``—``
    where the program chooses (its help says how)."""
    if action.required:
        return "required"
    if action.nargs == 0:
        return "off"
    if action.default is None or action.default == [] or action.default == argparse.SUPPRESS:
        return "—"
    if isinstance(action.default, (list, tuple)):
        return "`" + ",".join(map(str, action.default)) + "`"
    return f"`{action.default}`"


def options_tables(command: str, only_group: str | None = None) -> str:
    """Markdown tables of every option ``ntknas COMMAND --help`` shows, one per group."""
    parsers = command_parsers()
    if command not in parsers:
        raise ValueError(f"<!-- options: {command} -->: ntknas has no command {command!r}")
    groups = shown_actions(parsers[command])
    if only_group is not None:
        groups = [(title, actions) for title, actions in groups if title == only_group]
        if not groups:
            raise ValueError(f"<!-- options: {command} {only_group} -->: no such option group")
    blocks = []
    for title, actions in groups:
        rows = ["| option | default | meaning |", "|---|---|---|"]
        rows += [f"| `{spelling(a)}` | {default_text(a)} | {_cell(a.help or '')} |" for a in actions]
        caption = "" if title == MAIN_GROUP or only_group else f"**{title[0].upper()}{title[1:]}:**\n\n"
        blocks.append(caption + "\n".join(rows))
    return "\n\n".join(blocks)
