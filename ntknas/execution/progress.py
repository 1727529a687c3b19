"""How long runs report progress without printing: a hook the caller (e.g. the CLI) renders."""

from __future__ import annotations

from collections.abc import Callable

ProgressHook = Callable[[int, int, str], None]
"""``hook(done, total, key)``: called with ``done = 0`` before the first item and after each
item finishes, ``key`` naming the item just finished."""
