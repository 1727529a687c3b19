"""The results store: one SQLite file per run folder, written one work item at a time.

Every measurement row is keyed by (space, arch, dataset, bn_mode, train_epochs, seed,
batch_size, protocol, metric) and holds a value or the reason it is missing. A work item (one
architecture at one training stage) writes all its rows and its completion mark in ONE
transaction, so a kill at any moment loses at most the item in flight and never leaves a part of
one; a rerun skips every item already marked done. Rows carry plain values only, so any executor
(a loop, several GPUs, a Ray cluster) can compute items elsewhere and hand the rows to the store.

Schema version: the ``meta`` row ``schema_version`` (a JSON integer) names the layout of the
tables below and of the stored keys. Version 1 is this layout, unchanged since the first release;
a store with no ``schema_version`` row (opened but never claimed by earlier code, which wrote the
row only with the run's settings) is version 1 by definition. A writer records the version when it
opens a store, in the transaction that creates the tables. A store of a NEWER version than
:data:`SCHEMA_VERSION` (written by a later ntknas) is refused by readers and writers alike with one
line naming the fix (upgrade ntknas), exit status 2, before anything is written, the lock file
included; so is a version this code never wrote (0, negative, not an integer). A change to the
tables or to how keys are formed must raise :data:`SCHEMA_VERSION` and migrate older stores on a
writer's open, leaving every stored value as it was.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ntknas.errors import DataError, option
from ntknas.files import output_folder
from ntknas.store.faults import os_fault, sqlite_fault
from ntknas.store.lock import RunLock
from ntknas.version import __version__

STORE_FILE = "results.sqlite"
SCHEMA_VERSION = 1
"""The store layout this code reads and writes (see the module docstring)."""
SCHEMA_META = "schema_version"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
    space TEXT NOT NULL, arch TEXT NOT NULL, dataset TEXT NOT NULL, bn_mode TEXT NOT NULL,
    train_epochs INTEGER NOT NULL, seed INTEGER NOT NULL, batch_size INTEGER NOT NULL,
    protocol TEXT NOT NULL, metric TEXT NOT NULL,
    value REAL, reason TEXT, seconds REAL NOT NULL, device TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (space, arch, dataset, bn_mode, train_epochs, seed, batch_size, protocol, metric)
);
CREATE TABLE IF NOT EXISTS items (
    item TEXT PRIMARY KEY, space TEXT NOT NULL, arch TEXT NOT NULL, arch_index INTEGER,
    train_epochs INTEGER NOT NULL, accuracy REAL, seconds REAL NOT NULL, device TEXT NOT NULL,
    info TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS training (
    space TEXT NOT NULL, arch TEXT NOT NULL, seed INTEGER NOT NULL, epoch INTEGER NOT NULL,
    train_loss REAL, train_accuracy REAL, seconds REAL NOT NULL,
    PRIMARY KEY (space, arch, seed, epoch)
);
CREATE TABLE IF NOT EXISTS tracking (
    arch TEXT NOT NULL, epoch INTEGER NOT NULL, quantity TEXT NOT NULL, value REAL,
    PRIMARY KEY (arch, epoch, quantity)
);
"""


def _stored_version(db: sqlite3.Connection) -> Any:
    """The store's recorded schema version: 1 where none is recorded (see the module docstring)."""
    has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
    if has_meta is None:  # a new store, or no ntknas store at all (its reader names that fault)
        return 1
    row = db.execute("SELECT value FROM meta WHERE key = ?", (SCHEMA_META,)).fetchone()
    if row is None:
        return 1
    try:
        return json.loads(row[0])
    except (TypeError, ValueError):
        return row[0]


def _refuse_unknown(version: Any, path: Path) -> None:
    known = isinstance(version, int) and not isinstance(version, bool)
    if known and 1 <= version <= SCHEMA_VERSION:
        return
    if known and version > SCHEMA_VERSION:
        raise DataError(
            f"{path} was written by a newer ntknas (store schema version {version}; ntknas {__version__} "
            f"reads versions up to {SCHEMA_VERSION}): upgrade ntknas (pip install -U ntknas) to open it"
        )
    raise DataError(
        f"{path} records store schema version {version!r}, which no ntknas writes: it is not an ntknas "
        "results store or it was edited; pass the --out folder of ntknas correlate, track or search"
    )


@dataclass(frozen=True)
class Measurement:
    """One metric of one architecture under one setting: a value or a missing reason."""

    space: str
    arch: str
    dataset: str
    bn_mode: str
    train_epochs: int
    seed: int
    batch_size: int
    protocol: str
    metric: str
    value: float | None
    reason: str | None
    seconds: float
    device: str


@dataclass(frozen=True)
class ItemRecord:
    """The completion mark of one work item, written with its measurements."""

    item: str
    space: str
    arch: str
    arch_index: int | None
    train_epochs: int
    accuracy: float | None
    seconds: float
    device: str
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingRecord:
    space: str
    arch: str
    seed: int
    epoch: int
    train_loss: float | None
    train_accuracy: float | None
    seconds: float


class ResultStore:
    """A run folder's SQLite store. Use as a context manager or call :meth:`close`.

    A writer (the default) holds the folder's :class:`~ntknas.store.lock.RunLock`, so a second
    process writing the same folder is refused; ``readonly=True`` opens an existing store for
    reading only (SQLite ``mode=ro``): no lock, nothing created or changed, and it works on a
    read-only folder. Every SQLite or file-system fault is raised as one line naming the file
    (see :mod:`ntknas.store.faults`).
    """

    def __init__(self, run_dir: str | Path, *, readonly: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / STORE_FILE
        self.readonly = readonly
        self._lock: RunLock | None = None
        if readonly:
            self._db = self._open_readonly()
            return
        try:
            output_folder(self.run_dir)
        except OSError as error:
            raise os_fault(error, self.run_dir) from None
        self._peek_schema()  # a newer store is refused before the lock file is written
        self._lock = RunLock(self.run_dir).acquire()
        try:
            with self._guard():
                self._db = sqlite3.connect(self.path, timeout=60)
                try:
                    self._check_schema()  # again, under the lock, before the first write
                    # A rollback journal, not WAL: no shared-memory file mapped into the process
                    # (a fault on its pages kills the process with SIGBUS instead of an error),
                    # and readers can open the store in a read-only folder.
                    self._db.execute("PRAGMA journal_mode=DELETE")
                    self._db.execute("PRAGMA synchronous=FULL")
                    self._db.executescript(_SCHEMA)
                    # OR IGNORE: a version already recorded stays (it passed the check above).
                    self._db.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                        (SCHEMA_META, json.dumps(SCHEMA_VERSION)),
                    )
                    self._db.commit()
                except BaseException:
                    self._db.close()
                    raise
        except BaseException:
            self._lock.release()
            raise

    def _open_readonly(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise DataError(f"{self.run_dir} holds no {STORE_FILE}: pass the --out folder of an ntknas run")
        uri = self.path.resolve().as_uri() + "?mode=ro"
        with self._guard():
            try:
                db = sqlite3.connect(uri, uri=True, timeout=60)
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                # An older store in WAL mode, in a folder where SQLite cannot create its
                # shared-memory file: with no write-ahead log left it reads the file as it is.
                if Path(f"{self.path}-wal").exists():
                    raise
                db = sqlite3.connect(uri + "&immutable=1", uri=True, timeout=60)
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            try:
                _refuse_unknown(_stored_version(db), self.path)
            except BaseException:
                db.close()
                raise
            return db

    def _peek_schema(self) -> None:
        """A writer's look at an existing store's version through a read-only connection, so
        that a newer store is refused before anything (the lock file included) is written. A
        store that cannot be read this way is left to the writer's open, which names the fault."""
        if not self.path.is_file():
            return
        try:
            db = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, timeout=1)
        except sqlite3.Error:
            return
        try:
            version = _stored_version(db)
        except sqlite3.Error:
            return
        finally:
            db.close()
        _refuse_unknown(version, self.path)

    def _check_schema(self) -> None:
        _refuse_unknown(_stored_version(self._db), self.path)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turns SQLite and file-system errors into one-line errors naming the store."""
        try:
            yield
        except sqlite3.Error as error:
            raise sqlite_fault(error, self.path, writing=not self.readonly) from None
        except OSError as error:
            raise os_fault(error, self.path) from None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def holds_results(self) -> bool:
        """Whether any result is committed (an item, a measurement, a training or tracking row)."""
        with self._guard():
            return any(
                self._db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None  # noqa: S608
                for table in ("items", "measurements", "training", "tracking")
            )

    # --- run settings -------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        with self._guard():
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self._guard(), self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (key, json.dumps(value, sort_keys=True)),
            )

    def claim_settings(self, kind: str, settings: Mapping[str, Any], force: bool = False) -> None:
        """Record this run's settings, refusing a folder that holds a run with other settings.

        Settings that only select which architectures to measure are the caller's to leave out,
        so a rerun over a larger range resumes instead of being refused. A folder that holds no
        committed result pins nothing: a first run that failed before storing anything can be
        corrected and rerun with other settings.
        """
        stored_kind = self.get_meta("kind")
        stored = self.get_meta("settings")
        wanted = json.loads(json.dumps(dict(settings), sort_keys=True))
        differs = stored is not None and (stored_kind != kind or stored != wanted)
        if differs and not force and self.holds_results():
            differences = sorted(
                key for key in set(stored) | set(wanted) if stored.get(key) != wanted.get(key)
            )
            detail = ", ".join(
                f"{key}: stored {stored.get(key)!r} vs now {wanted.get(key)!r}" for key in differences
            )
            raise DataError(
                f"{self.run_dir} holds a {stored_kind} run with other settings ({detail or 'kind differs'}): "
                f"use another {option('out')} folder, or {option('force')} to add these results beside it"
            )
        self.set_meta("kind", kind)
        self.set_meta("settings", wanted)

    # --- work items ---------------------------------------------------------------------
    def done_items(self) -> set[str]:
        with self._guard():
            return {row[0] for row in self._db.execute("SELECT item FROM items")}

    def commit_item(
        self,
        record: ItemRecord,
        measurements: Iterable[Measurement],
        training: Iterable[TrainingRecord] = (),
    ) -> None:
        """Write an item's rows and its completion mark atomically (all or nothing)."""
        now = time.time()
        with self._guard(), self._db:  # one transaction: rolled back on any error or kill
            self._db.executemany(
                "INSERT OR REPLACE INTO measurements VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (m.space, m.arch, m.dataset, m.bn_mode, m.train_epochs, m.seed, m.batch_size,
                     m.protocol, m.metric, m.value, m.reason, m.seconds, m.device, now)
                    for m in measurements
                ],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO training VALUES (?,?,?,?,?,?,?)",
                [
                    (t.space, t.arch, t.seed, t.epoch, t.train_loss, t.train_accuracy, t.seconds)
                    for t in training
                ],
            )
            self._db.execute(
                "INSERT OR REPLACE INTO items VALUES (?,?,?,?,?,?,?,?,?,?)",
                (record.item, record.space, record.arch, record.arch_index, record.train_epochs,
                 record.accuracy, record.seconds, record.device,
                 json.dumps(dict(record.info), sort_keys=True), now),
            )

    def items(self) -> list[ItemRecord]:
        with self._guard():
            rows = self._db.execute(
                "SELECT item, space, arch, arch_index, train_epochs, accuracy, seconds, device, info "
                "FROM items ORDER BY created"
            ).fetchall()
        return [
            ItemRecord(item, space, arch, index, epochs, accuracy, seconds, device, json.loads(info))
            for item, space, arch, index, epochs, accuracy, seconds, device, info in rows
        ]

    # --- reading ------------------------------------------------------------------------
    def measurements(self, **where: Any) -> list[Measurement]:
        """Measurements, optionally filtered by equality on any key column."""
        columns = [f.name for f in Measurement.__dataclass_fields__.values()]
        unknown = set(where) - set(columns)
        if unknown:
            raise ValueError(f"unknown measurement columns {sorted(unknown)}")
        clause = " AND ".join(f"{key} = ?" for key in where)
        query = f"SELECT {', '.join(columns)} FROM measurements"
        if clause:
            query += f" WHERE {clause}"
        query += " ORDER BY rowid"
        with self._guard():
            return [Measurement(*row) for row in self._db.execute(query, tuple(where.values()))]

    def training_records(self) -> list[TrainingRecord]:
        with self._guard():
            rows = self._db.execute("SELECT * FROM training ORDER BY space, arch, seed, epoch").fetchall()
        return [TrainingRecord(*row) for row in rows]

    # --- kernel tracking ----------------------------------------------------------------
    def commit_tracking(self, arch: str, epoch: int, values: Mapping[str, float | None]) -> None:
        with self._guard(), self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO tracking VALUES (?,?,?,?)",
                [(arch, epoch, quantity, value) for quantity, value in values.items()],
            )

    def tracking_rows(self) -> Iterator[tuple[str, int, str, float | None]]:
        with self._guard():
            rows = self._db.execute("SELECT * FROM tracking ORDER BY arch, epoch, quantity").fetchall()
        yield from rows

    def tracked_epochs(self) -> dict[str, set[int]]:
        """For each architecture with tracking rows, the epochs that have rows."""
        epochs: dict[str, set[int]] = {}
        with self._guard():
            rows = self._db.execute("SELECT DISTINCT arch, epoch FROM tracking").fetchall()
        for arch, epoch in rows:
            epochs.setdefault(arch, set()).add(int(epoch))
        return epochs
