"""MkDocs hooks for the manual (mkdocs.yml ``hooks:``; excluded from the site).

- The docstrings use Sphinx roles (``:func:`score_run```), which mkdocstrings leaves as text:
  the role is dropped, and ``~a.b.C`` shows as ``C``, as Sphinx would.
- ``<!-- fields: module.Class -->`` in a page becomes a table of that settings dataclass's fields
  (name, command-line flag, default, help), read from the field metadata the command line is
  derived from, so the reference cannot drift from ``--help``.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
from pathlib import Path
from typing import Any

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):<code>(?:~[\w.]*\.)?")
_FIELDS = re.compile(r"<!--\s*fields:\s*([\w.]+)\s*-->")


def on_config(config: Any, **_: Any) -> Any:
    """Import the checkout being documented, not another installed copy."""
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return config


def on_page_content(html: str, **_: Any) -> str:
    return _ROLE.sub("<code>", html)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return _FIELDS.sub(lambda match: _fields_table(match.group(1)), markdown)


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
        meaning = str(meta.get("help") or "").replace("|", "\\|")
        if meta.get("identity"):
            meaning += " *(identity: part of the run folder's settings)*"
        rows.append(f"| `{item.name}` | {flag} | `{default}` | {meaning} |")
    return "\n".join(rows)
