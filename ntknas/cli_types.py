"""argparse ``type=`` functions: every option value is checked as it is parsed, before any work.

A refusal becomes argparse's one-line usage error, ``ntknas CMD: error: argument --flag: must
be …, got '…'``, exit status 2. The checks themselves live in
:mod:`ntknas.inputs.validation`, where the library uses them too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

from ntknas.inputs import validation

T = TypeVar("T")


def _argparse_type(check: Callable[[str], T], name: str) -> Callable[[str], T]:
    def convert(text: str) -> T:
        try:
            return check(text)
        except validation.InputError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = name  # argparse names the type in some messages
    return convert


positive_int = _argparse_type(validation.positive_int, "positive integer")
nonnegative_int = _argparse_type(validation.nonnegative_int, "integer >= 0")
seed = _argparse_type(validation.seed, "seed")
nonnegative_seconds = _argparse_type(validation.nonnegative_seconds, "seconds")
positive_seconds = _argparse_type(validation.positive_seconds, "seconds")
positive_number = _argparse_type(validation.positive_number, "number")
nonnegative_number = _argparse_type(validation.nonnegative_number, "number")
text = _argparse_type(validation.nonempty_text, "text")
names = _argparse_type(validation.name_list, "names")
epochs = _argparse_type(validation.epoch_list, "epoch counts")


def value_type(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """Any :mod:`~ntknas.inputs.validation` check as an argparse type."""
    return _argparse_type(check, getattr(check, "__name__", "value"))


_KNOWN: dict[Callable[[Any], Any], Callable[[str], Any]] = {
    validation.positive_int: positive_int, validation.nonnegative_int: nonnegative_int, validation.seed: seed,
    validation.nonnegative_seconds: nonnegative_seconds, validation.positive_seconds: positive_seconds,
    validation.positive_number: positive_number, validation.nonnegative_number: nonnegative_number,
    validation.nonempty_text: text, validation.name_list: names, validation.epoch_list: epochs,
}


def for_argparse(check: Callable[[Any], Any]) -> Callable[[str], Any]:
    """The argparse type of a settings field's check (see :func:`ntknas.settings.add_options`)."""
    return _KNOWN.get(check) or value_type(check)
