"""Checks of command-line values, shared by the CLI (argparse ``type=``) and the experiments.

Each check takes the value as typed (a string) or as passed from Python, returns the value in
its proper type, and raises :class:`InputError` — a one-line :class:`~ntknas.errors.NtknasError`
that says what is expected — for anything else. The messages name no option: argparse puts
``argument --flag:`` in front of them, and :func:`flagged` puts the parameter in front for the
library (which the command line shows as its flag). Nothing here reads a file or builds a network, so a command refuses bad values before
any work.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

from ntknas.errors import NtknasError, marked_text, option

T = TypeVar("T")

SEED_MAX = 2**63 - 1
"""The largest seed: torch's generators take up to 2**64 − 1 and numpy's any integer >= 0, but
the results store keeps seeds as SQLite integers (signed 64-bit)."""

_DIGITS = re.compile(r"\s*\+?[0-9]+\s*", re.ASCII)
_SIGNED = re.compile(r"\s*[-+]?[0-9]+\s*", re.ASCII)


class InputError(NtknasError, ValueError):
    """A value that the option cannot take; the message says what it expects."""


def _integer(value: Any, expected: str, minimum: int, maximum: int | None = None) -> int:
    """An integer in [minimum, maximum]; ``expected`` words the refusal."""
    if isinstance(value, bool):
        raise InputError(f"must be {expected}, got {value!r}")
    if isinstance(value, int):
        number = value
    else:
        text = str(value)
        if _SIGNED.fullmatch(text) is None:
            raise InputError(f"must be {expected}, got {text!r}")
        number = int(text)
    if number < minimum or (maximum is not None and number > maximum):
        raise InputError(f"must be {expected}, got {value!r}")
    return number


def positive_int(value: Any) -> int:
    """An integer >= 1 (sizes and counts)."""
    return _integer(value, "a positive integer such as 1 or 64", 1)


def nonnegative_int(value: Any) -> int:
    """An integer >= 0 (epoch counts, retries)."""
    return _integer(value, "an integer >= 0 such as 0 or 3", 0)


def seed(value: Any) -> int:
    """A seed every generator ntknas uses accepts, and the store can hold: 0 .. 2**63 − 1."""
    return _integer(value, f"a seed between 0 and {SEED_MAX}", 0, SEED_MAX)


def _float(value: Any, expected: str, *, zero_allowed: bool = True) -> float:
    """A finite float that is >= 0 (> 0 unless ``zero_allowed``); ``expected`` words the refusal."""
    if isinstance(value, bool):
        raise InputError(f"must be {expected}, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"must be {expected}, got {str(value)!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero_allowed):
        raise InputError(f"must be {expected}, got {str(value)!r}")
    return number


def nonnegative_seconds(value: Any) -> float:
    """A finite number of seconds >= 0 (budgets); ``nan`` and ``inf`` are refused."""
    return _float(value, "a finite number of seconds >= 0 such as 3600")


def positive_seconds(value: Any) -> float:
    """A finite number of seconds > 0."""
    return _float(value, "a finite number of seconds > 0 such as 3600", zero_allowed=False)


def positive_number(value: Any) -> float:
    """A finite number > 0 (e.g. CPUs per item)."""
    return _float(value, "a finite number > 0 such as 1 or 0.5", zero_allowed=False)


def nonnegative_number(value: Any) -> float:
    """A finite number >= 0 (e.g. GPUs per item)."""
    return _float(value, "a finite number >= 0 such as 1 or 0.25")


def nonempty_text(value: Any) -> str:
    """A string that is not empty or blank (names, paths, architectures)."""
    text = str(value)
    if not text.strip():
        raise InputError(f"must not be empty, got {text!r}: give a value or leave the option out")
    return text


def name_list(value: Any) -> tuple[str, ...]:
    """Comma-separated names, at least one (``a,b`` → ``("a", "b")``)."""
    names = tuple(part.strip() for part in str(value).split(",") if part.strip())
    if not names:
        raise InputError(f"must name at least one value (comma-separated), got {str(value)!r}")
    return names


def epoch_list(value: Any) -> tuple[int, ...]:
    """Epoch counts >= 0, comma-separated, at least one; returned sorted, each once
    (``"3,0,1"`` → ``(0, 1, 3)``, which ``",".join`` writes back as ``"0,1,3"``)."""
    expected = "comma-separated epoch counts >= 0 such as 0,1,3"
    text = ",".join(str(v) for v in value) if isinstance(value, (tuple, list)) else str(value)
    parts = [part for part in text.split(",") if part.strip()]
    if not parts or any(_DIGITS.fullmatch(part) is None for part in parts):
        raise InputError(f"must be {expected}, got {text!r}")
    return tuple(sorted({int(part) for part in parts}))


def flagged(name: str, check: Callable[[Any], T], value: Any) -> T:
    """``check(value)``, with the parameter ``name`` in front of a refusal (see
    :func:`~ntknas.errors.option`)."""
    try:
        return check(value)
    except InputError as error:
        raise InputError(f"{option(name)} {marked_text(error)}") from None


def optional(name: str, check: Callable[[Any], T], value: Any) -> T | None:
    """:func:`flagged` for an option that may be left out (``None``)."""
    return None if value is None else flagged(name, check, value)


def check_batch_fits(batch_size: int, available: int, images: str, name: str = "batch_size") -> None:
    """Refuse a batch larger than the split it is drawn from, naming the parameter ``name``."""
    if batch_size > available:
        raise InputError(f"{option(name)} {batch_size} is more than the {available} {images}: lower {option(name)}")


__all__ = [
    "SEED_MAX", "InputError", "check_batch_fits", "epoch_list", "flagged", "name_list", "nonempty_text", "nonnegative_int",
    "nonnegative_number", "nonnegative_seconds", "optional", "positive_int", "positive_number",
    "positive_seconds", "seed",
]
