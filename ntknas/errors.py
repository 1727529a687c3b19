"""User-facing errors.

Every error a user can cause (a malformed arch string, a missing file, an unknown name) is an
:class:`NtknasError` whose message is one line that says what is wrong and how to fix it. The CLI
prints that line and exits with the error's :attr:`~NtknasError.exit_status` (2 for input)
instead of showing a traceback.
"""


class NtknasError(Exception):
    """An error caused by input; its message is a single line naming the fix."""

    exit_status = 2
    """The command line's exit status for this error (docs/reliability.md, "Exit statuses")."""


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
