"""What the command line shows while a long run goes on: a bar with rate and ETA on a terminal,
plain log lines otherwise. Library code reports through hooks and logging; only the CLI renders."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """Renders a :data:`~ntknas.execution.progress.ProgressHook`; ``enabled=None`` shows a bar
    only when stderr is a terminal (plain lines every 30 s otherwise), ``False`` shows nothing.
    ``activity`` names what the items undergo ("measuring", "training") in the first line and bar."""

    LOG_EVERY_SECONDS = 30.0

    def __init__(self, unit: str, enabled: bool | None = None, activity: str = "measuring") -> None:
        self.unit = unit
        self.enabled = enabled
        self.activity = activity
        self.total = 0
        self.count = 0
        self.started = time.perf_counter()
        self._last_log = self.started
        self._bar: Any = None

    def __call__(self, done: int, total: int, key: str) -> None:
        if done == 0:
            self._start(total)
            return
        while self.count < done:
            self._advance(key)

    def _start(self, total: int) -> None:
        self.total, self.count = total, 0
        self.started = self._last_log = time.perf_counter()
        interactive = sys.stderr.isatty() if self.enabled is None else self.enabled
        if interactive:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=self.activity, unit=f" {self.unit}", dynamic_ncols=True, file=sys.stderr)
        elif self.enabled is None:
            print(f"{self.activity} {total} {self.unit}", file=sys.stderr, flush=True)

    def _advance(self, label: str) -> None:
        self.count += 1
        if self._bar is not None:
            self._bar.set_postfix_str(label[:40], refresh=False)
            self._bar.update(1)
            if self.count >= self.total:
                self._bar.close()
            return
        now = time.perf_counter()
        if self.enabled is False or (now - self._last_log < self.LOG_EVERY_SECONDS and self.count < self.total):
            return
        self._last_log = now
        elapsed = now - self.started
        rate = self.count / elapsed if elapsed > 0 else 0.0
        remaining = (self.total - self.count) / rate if rate > 0 else float("nan")
        print(
            f"{self.activity}: {self.count}/{self.total} {self.unit} done, {rate:.3f} {self.unit}/s, "
            f"elapsed {elapsed:.0f} s, ETA {remaining:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class Stages:
    """Renders a one-architecture command's stages (``stage(text)``) once a stage has lasted
    :attr:`SHOW_AFTER` seconds (a stage that ends sooner, or fails at once with a one-line
    error, shows nothing): on a terminal a status line with the seconds it has taken, updated
    every second; a plain log line otherwise (``enabled=False``: nothing)."""

    SHOW_AFTER = 2.0

    def __init__(self, enabled: bool | None = None) -> None:
        import threading

        self.interactive = sys.stderr.isatty() if enabled is None else enabled
        self.quiet = enabled is False
        self._text = ""
        self._since = time.perf_counter()
        self._shown = True
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Any = None

    def __call__(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            self._text, self._since, self._shown = text, time.perf_counter(), False
        if self._thread is None:
            import threading

            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                elapsed = time.perf_counter() - self._since
                if elapsed < self.SHOW_AFTER:
                    continue
                if self.interactive:
                    sys.stderr.write(f"\r\033[K{self._text}… {elapsed:.0f} s")
                    sys.stderr.flush()
                elif not self._shown:
                    print(f"{self._text}…", file=sys.stderr, flush=True)
                self._shown = True

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            if self.interactive:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()
