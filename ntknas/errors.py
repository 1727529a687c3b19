"""User-facing errors.

Every error a user can cause (a malformed arch string, a missing file, an unknown name) is an
:class:`NtknasError` whose message is one line that says what is wrong and how to fix it. The CLI
prints that line and exits with the error's :attr:`~NtknasError.exit_status` (2 for input)
instead of showing a traceback.

A message names a setting by its library name, marked with :func:`option`: ``str(error)`` shows
that name (``batch_size``), which is what a library caller passed, and
:meth:`NtknasError.for_command_line` shows the flag the user typed (``--batch-size``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_START, _END = "\x02", "\x03"  # control characters no message text contains
_MARKED = re.compile(f"{_START}([^{_END}]*){_END}")


def option(name: str) -> str:
    """A reference to the parameter ``name`` inside an error message: shown as ``name`` to library
    callers and as the command's flag on the command line."""
    return f"{_START}{name}{_END}"


def flag_of(name: str, flags: Mapping[str, str]) -> str:
    """The flag of parameter ``name``: the command's own, else ``--`` and the name with dashes."""
    return flags.get(name) or "--" + name.replace("_", "-")


def marked_text(error: BaseException) -> str:
    """The message of ``error`` with its parameter references kept (for a message that quotes
    another error's)."""
    return error.raw if isinstance(error, NtknasError) else str(error)



class NtknasError(Exception):
    """An error caused by input; its message is a single line naming the fix."""

    exit_status = 2
    """The command line's exit status for this error (docs/reliability.md, "Exit statuses")."""

    def __init__(self, *args: Any) -> None:
        self.raw: str = args[0] if args and isinstance(args[0], str) else ""
        """The message with its parameter references marked (see :func:`option`)."""
        if self.raw:  # args[0] is what library callers read: the parameters' names
            args = (_MARKED.sub(r"\1", self.raw), *args[1:])
        super().__init__(*args)

    def __reduce__(self) -> Any:  # a worker's error crosses processes with its references intact
        return (type(self), (self.raw, *self.args[1:]) if self.raw else self.args, self.__dict__)

    def for_command_line(self, flags: Mapping[str, str]) -> str:
        """The message with each parameter shown as its flag in ``flags`` (parameter -> flag)."""
        if not self.raw:
            return str(self)
        return _MARKED.sub(lambda match: flag_of(match.group(1), flags), self.raw)


class InvalidArchError(NtknasError, ValueError):
    """An architecture string, index or spec that does not describe a valid architecture."""


class DataError(NtknasError):
    """A dataset, benchmark or results file that is missing, malformed or unsafe."""


class UnknownNameError(NtknasError, KeyError):
    """A name (space, dataset, metric, target column, strategy) that is not known."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StorageError(NtknasError):
    """The machine, not the input: a run folder or output that cannot be written (read-only,
    permission denied), a full disk, an I/O error. Stored results are kept; exit status 4."""

    exit_status = 4


class RunFolderInUseError(NtknasError):
    """Another process holds the run folder's lock (one run per folder at a time); exit status 5."""

    exit_status = 5
