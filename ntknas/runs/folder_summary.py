"""``correlate --summary-only``: a run folder's outputs from the folder alone.

The settings are the ones the folder's last measuring command stored (not the flags of the
summarizing command), and the architectures are every one the folder holds under them, so the
outputs never cover a subset of what is stored and need neither the benchmark nor the dataset.
The store is opened read-only, without the run folder's lock, so a summary can be written while
a long run goes on.
"""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from ntknas.errors import DataError, StorageError, option
from ntknas.store import STORE_FILE, ItemRecord, ResultStore
from ntknas.store.faults import os_fault

if TYPE_CHECKING:
    from ntknas.runs.correlate import ArchEntry, CorrelateConfig, CorrelateOutcome



def summarize_run_folder(config: CorrelateConfig, started: float | None = None) -> CorrelateOutcome:
    """Write ``config.out``'s outputs from what it holds; returns a
    :class:`~ntknas.runs.correlate.CorrelateOutcome` that measured nothing."""
    from ntknas.report.correlation import write_correlation_outputs
    from ntknas.runs.correlate import CorrelateOutcome as Outcome
    from ntknas.runs.correlate import _stored_entries

    started = time.perf_counter() if started is None else started
    run_dir = Path(config.out)
    if not (run_dir / STORE_FILE).is_file():
        raise DataError(
            f"{run_dir} holds no {STORE_FILE}: nothing to summarize; run the command without {option('summary_only')} first"
        )
    with ResultStore(run_dir, readonly=True) as store:
        kind = store.get_meta("kind")
        if kind != "correlate":
            raise DataError(
                f"{run_dir / STORE_FILE} holds a {kind or 'unknown'} run, not a correlate run: "
                f"use ntknas report {run_dir} for its report"
            )
        folder_config = folder_settings(store, config)
        entries = _stored_entries(folder_config, stored_archs(store.items()), store.done_items())
        try:
            files = write_correlation_outputs(store, folder_config.summary_spec(), entries)
        except OSError as error:
            fault = os_fault(error, kept=False)
            if isinstance(fault, StorageError):
                raise StorageError(
                    f"{error.filename or run_dir}: {error.strerror or error}: {option('summary_only')} writes its outputs "
                    f"into the run folder; make it writable, or read it with ntknas report {run_dir} --out "
                    "ANOTHER_FOLDER"
                ) from None
            raise fault from None
    return Outcome(
        config=folder_config, entries=entries, measured=0, skipped=len(entries),
        seconds=time.perf_counter() - started, run_dir=run_dir, files=files, selected=len(entries),
    )


def folder_settings(store: ResultStore, given: CorrelateConfig) -> CorrelateConfig:
    """The resolved config the folder's last measuring command stored. A folder written before
    that record existed gives its stored run settings, and the command's flags for the rest."""
    from ntknas.runs.correlate import CONFIG_META, config_from_stored
    from ntknas.runs.correlate import CorrelateConfig as Config

    stored = store.get_meta(CONFIG_META)
    if stored is None:
        settings = dict(store.get_meta("settings") or {})
        settings.pop("init", None)  # the initialization's name, not the --init flag: the command's
        if not settings:
            raise DataError(
                f"{store.path} holds no run settings: run the command without {option('summary_only')} first"
            )
        stored = {f.name: getattr(given, f.name) for f in fields(Config)} | settings
    return config_from_stored(stored, out=given.out, summary_only=True)


def stored_archs(records: list[ItemRecord]) -> list[ArchEntry]:
    """One entry per stored architecture, in index order (then key), as a measuring run lists them."""
    from ntknas.runs.correlate import ArchEntry as Entry

    seen: dict[str, ArchEntry] = {}
    for record in records:
        if record.arch not in seen or seen[record.arch].accuracy is None:
            seen[record.arch] = Entry(record.arch, record.arch_index, None, record.accuracy)
    return sorted(seen.values(), key=lambda e: (e.index is None, e.index if e.index is not None else 0, e.key))
