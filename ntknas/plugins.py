"""Extensions from the command line: ``--plugin PATH_OR_MODULE`` and the ``ntknas.plugins``
entry points.

A plugin is any Python file or module that registers something when imported: a space
(:func:`ntknas.register_space`), a dataset, a metric, an executor, a search strategy
(:func:`ntknas.register_strategy`); ``examples/add_*.py`` are plugins. An installed package
offers one with an entry point in the group ``ntknas.plugins``, e.g. in its pyproject.toml::

    [project.entry-points."ntknas.plugins"]
    mine = "my_package.ntknas_plugin"

Loading a plugin imports it once per process (a second load of the same file or module is a
no-op), so re-running a command in one process never registers a name twice.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from ntknas.errors import NtknasError

ENTRY_POINT_GROUP = "ntknas.plugins"
"""The entry-point group every ntknas command loads."""

#: Plugin → the module it was loaded as, in load order (the registry of what this process loaded,
#: so that worker processes can be told to load the same).
_LOADED: dict[str, str] = {}


class PluginError(NtknasError):
    """A plugin that cannot be loaded (missing, not importable, or failing on import)."""


def load_plugins(specs: Sequence[str], *, installed: bool = True) -> list[str]:
    """Import the ``ntknas.plugins`` entry points (with ``installed``), then each of ``specs``
    (a ``.py`` file path or an importable module name), each once per process.

    Returns the module names loaded, in order. A plugin that cannot be imported raises
    :class:`PluginError`, one line naming the plugin and the cause.
    """
    modules = [_load_entry_point(point) for point in _installed()] if installed else []
    modules += [_load_spec(spec) for spec in specs]
    return modules


def loaded_plugins() -> list[str]:
    """The plugins this process has loaded (file paths resolved; entry points as ``module:attr``),
    in load order: what another process must load to see the same registrations."""
    return list(_LOADED)


def load_worker_plugins(specs: Sequence[str]) -> list[str]:
    """In a worker process: load what the driver loaded, as far as this process can. A plugin
    it cannot import (a module on the driver's path only) is a warning, not a failure: items
    that need what it registers then fail naming the unknown name."""
    import logging

    loaded = []
    for spec in specs:
        try:
            loaded += load_plugins([spec], installed=False)
        except PluginError as error:
            logging.getLogger(__name__).warning("in a worker process: %s", error)
    return loaded + load_plugins([], installed=True)


def worker_plugins() -> list[str]:
    """What a worker process must load to see this process's registrations: the files and
    modules given as plugins (the entry points it loads by itself)."""
    return [spec for spec, module in _LOADED.items() if spec == module or _is_path(spec)]


def _installed() -> list[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda point: point.name)


def _load_entry_point(point: EntryPoint) -> str:
    if point.value in _LOADED:
        return _LOADED[point.value]
    try:
        point.load()  # the import registers; the object it names is not called
    except Exception as error:
        raise PluginError(
            f"plugin {point.name} ({point.value}, entry point of {ENTRY_POINT_GROUP}) failed to load: "
            f"{_cause(error)}; fix or uninstall the package that provides it"
        ) from None
    _LOADED[point.value] = point.module
    return point.module


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def _load_spec(spec: str) -> str:
    text = spec.strip()
    if not text:
        raise PluginError("--plugin names nothing: give a .py file or an importable module name")
    if _is_path(text):
        return _load_file(spec, Path(text).expanduser())
    if text in _LOADED:
        return _LOADED[text]
    try:
        importlib.import_module(text)
    except ModuleNotFoundError as error:
        if error.name is not None and (text == error.name or text.startswith(error.name + ".")):
            raise PluginError(
                f"--plugin {spec}: no module named {error.name!r}: give a .py file path or a module "
                "importable from this Python (pip install it, or add its folder to PYTHONPATH)"
            ) from None
        raise PluginError(f"--plugin {spec} failed to load: {_cause(error)}") from None
    except Exception as error:
        raise PluginError(f"--plugin {spec} failed to load: {_cause(error)}") from None
    _LOADED[text] = text
    return text


def _load_file(spec: str, path: Path) -> str:
    if not path.is_file():
        raise PluginError(f"--plugin {spec}: no such file: give the path of a .py file or an importable module name")
    resolved = path.resolve()
    # One module name per file, so a second load is recognised and two files named alike coexist.
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", resolved.stem)
    name = f"ntknas_plugin_{stem}_{digest}"
    if name in sys.modules:
        return name
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise PluginError(f"--plugin {spec}: not a Python file Python can import: give a .py file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # before running it: dataclasses and pickling look their module up
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]  # a fixed file loads on the next try
        raise PluginError(f"--plugin {spec} failed to load: {_cause(error)}") from None
    _LOADED[str(resolved)] = name
    return name


def _cause(error: BaseException) -> str:
    """The error in one line: its type and the first line of its message (a syntax error with its
    file and line)."""
    if isinstance(error, SyntaxError):
        where = f"{Path(error.filename).name if error.filename else '?'}, line {error.lineno}"
        return f"SyntaxError: {error.msg} ({where})"
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
