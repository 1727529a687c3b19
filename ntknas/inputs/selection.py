"""Which architectures of a benchmark a run measures: a range, a list, a seeded sample, or all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ntknas.errors import InvalidArchError, option


def select_positions(total: int, archs: str | None, sample: int | None, seed: int) -> list[int]:
    """Positions (0-based, in the benchmark's order) chosen by ``--archs`` or ``--sample``.

    ``archs`` is ``"all"``, a range ``"START:STOP"`` (STOP exclusive, either may be omitted), a
    list ``"5,17,300"``, or a mix ``"0:10,42"``. ``sample`` draws that many distinct positions
    with ``numpy.random.default_rng(seed)`` from the range (or from all if no range is given).
    """
    if archs is not None and not archs.strip():
        raise InvalidArchError(f"{option('archs')} '' selects no architecture: use e.g. 0:1000, 5,17 or all (or leave {option('archs')} out)")
    pool = list(range(total)) if archs is None or archs.strip() == "all" else parse_positions(archs, total)
    if sample is None:
        return pool
    if sample < 1:
        raise InvalidArchError(f"{option('sample')} must be at least 1, got {sample}")
    if sample > len(pool):
        raise InvalidArchError(
            f"{option('sample')} {sample} is more than the {len(pool)} architectures to draw from: "
            f"lower {option('sample')} or widen {option('archs')}"
        )
    chosen = np.random.default_rng(seed).choice(len(pool), size=sample, replace=False)
    return [pool[i] for i in sorted(chosen.tolist())]


def parse_positions(text: str, total: int) -> list[int]:
    """Positions named by ``text`` (ranges ``START:STOP``, single positions, comma-separated), in order, once each."""
    positions: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if ":" in part:
            start_text, _, stop_text = part.partition(":")
            start = _position(start_text, 0, total, text)
            stop = _position(stop_text, total, total + 1, text)
            if stop <= start:
                raise InvalidArchError(f"empty architecture range {part!r}: use START:STOP with STOP > START")
            positions.extend(range(start, stop))
        else:
            position = _position(part, None, total, text)
            positions.append(position)
    if not positions:
        raise InvalidArchError(f"{option('archs')} {text!r} selects no architecture: use e.g. 0:1000, 5,17 or all")
    return list(dict.fromkeys(positions))


def _position(text: str, default: int | None, limit: int, whole: str) -> int:
    text = text.strip()
    if not text and default is not None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidArchError(
            f"cannot read {text!r} in {option('archs')} {whole!r}: use indices and ranges such as 0:1000 or 5,17,300"
        ) from None
    if not 0 <= value < limit:
        raise InvalidArchError(
            f"architecture {value} in {option('archs')} {whole!r} is outside the benchmark's 0..{limit - 1}"
            if limit > 0 else f"the benchmark is empty: check the {option('benchmark')} file"
        )
    return value


def take(keys: Sequence[Any], positions: Sequence[int]) -> list[Any]:
    return [keys[p] for p in positions]
