"""User-facing errors.

Every error a user can cause (a malformed arch string, a missing file, an unknown name) is an
:class:`NtknasError` whose message is one line that says what is wrong and how to fix it. The CLI
prints that line and exits with status 2 instead of showing a traceback.
"""


class NtknasError(Exception):
    """An error caused by input; its message is a single line naming the fix."""


class InvalidArchError(NtknasError, ValueError):
    """An architecture string, index or spec that does not describe a valid architecture."""


class DataError(NtknasError):
    """A dataset, benchmark or results file that is missing, malformed or unsafe."""


class UnknownNameError(NtknasError, KeyError):
    """A name (space, dataset, metric, target column, strategy) that is not known."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
