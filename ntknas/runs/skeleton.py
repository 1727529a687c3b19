"""The run skeleton every measuring command shares, written once.

A command (correlate, track, search) opens its run folder with :func:`open_run`: the executor is
entered first (one process pool or one Ray connection for the whole command: if it cannot start,
nothing is stored), then the store (its lock), the settings claim and the folder's meta. Data is
loaded on first use (:class:`LazyData`), so a rerun with nothing left to do reads no dataset.
:meth:`Run.map_and_commit` hands work items to the executor and commits each result as it
arrives, calling the progress hook; it stops starting items at a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ntknas.data import ImageDataset, load_for_run
from ntknas.execution.executors import Executor, Task, Work
from ntknas.execution.progress import ProgressHook
from ntknas.execution.runtime import environment
from ntknas.settings import IDENTITY_VERSION
from ntknas.store import ResultStore

IDENTITY_VERSION_META = "identity_version"
"""The meta key holding :data:`ntknas.settings.IDENTITY_VERSION` (absent: version 1)."""


@dataclass
class Run:
    """An open run folder: its store, the executor that runs its items and the driver's device."""

    store: ResultStore
    runner: Executor
    device: torch.device

    @property
    def run_dir(self) -> Path:
        return self.store.run_dir

    def map_and_commit(
        self,
        work: Work,
        context: Any,
        tasks: Sequence[Task],
        commit: Callable[[Any, Any], None],
        *,
        deadline: float | None = None,
        on_progress: ProgressHook | None = None,
        label: Callable[[Any], str] | None = None,
    ) -> int:
        """Run ``work(context, item, done)`` for every task, ``commit(item, result)`` as each
        result arrives (in the driver, the store's only writer), and report progress; the number
        of items finished (fewer than the tasks when ``deadline``, a ``time.monotonic()`` value,
        stopped the run)."""
        finished = 0
        if on_progress is not None:
            on_progress(0, len(tasks), "")
        for item, result in self.runner.map(work, context, tasks, deadline):
            commit(item, result)
            finished += 1
            if on_progress is not None:
                on_progress(finished, len(tasks), label(item) if label is not None else str(getattr(item, "key", "")))
        return finished


@contextmanager
def open_run(
    out: str | Path,
    kind: str,
    settings: Mapping[str, Any],
    *,
    runner: Executor,
    device: torch.device,
    force: bool = False,
    command_line: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Iterator[Run]:
    """Open a run folder for a command of ``kind``: the executor first, then the store, the
    settings claim (refusing a folder with other settings unless ``force``) and the meta every
    folder records (the command, the environment, the identity version, ``meta``)."""
    with runner, ResultStore(Path(out)) as store:
        store.claim_settings(kind, settings, force=force)
        store.set_meta("last_command", command_line or "")
        store.set_meta("environment", environment(device) | {"executor": runner.name})
        store.set_meta(IDENTITY_VERSION_META, IDENTITY_VERSION)
        for key, value in (meta or {}).items():
            store.set_meta(key, value)
        yield Run(store, runner, device)


class LazyData:
    """A run's training and test splits, loaded on first use (on the driver's device) unless given."""

    def __init__(
        self,
        dataset: str,
        data_dir: str | None,
        device: torch.device,
        train: ImageDataset | None = None,
        test: ImageDataset | None = None,
    ) -> None:
        self.dataset, self.data_dir, self.device = dataset, data_dir, device
        self._splits: dict[str, ImageDataset | None] = {"train": train, "test": test}

    def split(self, name: str) -> ImageDataset:
        loaded = self._splits[name]
        if loaded is None:
            loaded = load_for_run(self.dataset, self.data_dir, name, self.device)
        else:
            loaded = loaded.to(self.device)
        self._splits[name] = loaded
        return loaded

    @property
    def train(self) -> ImageDataset:
        return self.split("train")

    @property
    def test(self) -> ImageDataset:
        return self.split("test")


def deadline_after(seconds: float | None) -> float | None:
    """A ``time.monotonic()`` deadline ``seconds`` from now, or None for no budget."""
    return None if seconds is None else time.monotonic() + seconds

