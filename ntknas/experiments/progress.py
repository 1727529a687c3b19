"""Progress of long runs: a bar with rate and ETA on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    """Counts finished work items; ``enabled=None`` shows a bar only when stderr is a terminal."""

    LOG_EVERY_SECONDS = 30.0

    def __init__(self, total: int, unit: str, enabled: bool | None = None) -> None:
        self.total = total
        self.unit = unit
        self.count = 0
        self.started = time.perf_counter()
        self._last_log = self.started
        interactive = sys.stderr.isatty() if enabled is None else enabled
        self._bar = None
        if interactive:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=f" {unit}", dynamic_ncols=True, file=sys.stderr)
        elif enabled is None:
            print(f"measuring {total} {unit}", file=sys.stderr, flush=True)
        self._quiet = enabled is False

    def advance(self, label: str = "") -> None:
        self.count += 1
        if self._bar is not None:
            self._bar.set_postfix_str(label[:40], refresh=False)
            self._bar.update(1)
            return
        now = time.perf_counter()
        if self._quiet or (now - self._last_log < self.LOG_EVERY_SECONDS and self.count < self.total):
            return
        self._last_log = now
        elapsed = now - self.started
        rate = self.count / elapsed if elapsed > 0 else 0.0
        remaining = (self.total - self.count) / rate if rate > 0 else float("nan")
        print(
            f"{self.count}/{self.total} {self.unit} done, {rate:.3f} {self.unit}/s, "
            f"elapsed {elapsed:.0f} s, ETA {remaining:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
