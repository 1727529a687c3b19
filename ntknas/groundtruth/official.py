"""Readers for the official NAS-Bench-201 and NATS-Bench (topology) result files.

Three kinds of official file are understood, all describing the 15,625 NAS-Bench-201 cells in
the official index order:

* ``NAS-Bench-201-v1_0-e61699.pth`` / ``NAS-Bench-201-v1_1-096897.pth``: one ``torch.save``
  of ``{'meta_archs': [arch_str, ...], 'arch2infos': {index: {'full': ..., 'less': ...}},
  'evaluated_indexes': ..., 'total_archs': N}`` where ``full`` / ``less`` are the state of
  the API's ``ArchResults`` for the 200- / 12-epoch schedules;
* ``NATS-tss-v1_0-3ffb9.pickle.pbz2``: a bz2-compressed pickle of the same dict, with the
  schedules keyed ``'200'`` / ``'12'``;
* the ``NATS-tss-v1_0-3ffb9-simple`` folder: ``meta.pickle.pbz2`` (``meta_archs``) and one
  ``NNNNNN.pickle.pbz2`` per architecture holding ``{'200': ..., '12': ...}``.

An ``ArchResults`` state is ``{'arch_index', 'arch_str', 'dataset_seed': {dataset: [seed,
...]}, 'all_results': {(dataset, seed): ResultsCount state}, ...}`` and a ``ResultsCount``
state holds ``epochs``, ``params`` (millions) and ``eval_acc1es`` keyed ``'<set>@<epoch>'``
(percent). The accuracy of a dataset is the mean over its seeds of the last epoch's value,
which is what the official API's ``get_more_info(..., is_random=False)`` returns.

Columns produced (see :data:`ACCURACY_COLUMNS`): ``cifar10_valid_valid`` (trained on the 25k
train half, ``x-valid``), ``cifar10_valid_test`` (same training, CIFAR-10 test set: the API's
``cifar10-valid`` "test-accuracy", stored as ``ori-test``; ``x-test`` is used if a file has
that instead), ``cifar10_test`` (trained on train+valid, ``ori-test``), ``cifar100_test`` and
``imagenet16_120_test`` (``x-test``), and ``params_mb`` (CIFAR-10 training network). The export
(:func:`export_benchmark_csv`) names the 12-epoch schedule's accuracy columns with the suffix
``_hp12`` (``cifar10_valid_valid_hp12``: the oracle column ``ntknas study`` reads), so one file can
hold both schedules.

Backends. ``"direct"`` reads the files without the official packages. A ``.pth`` is opened
with ``torch.load(weights_only=True)``; when that refuses because the file holds non-tensor
Python objects, it is read again by torch's restricted (weights-only) unpickler with a small
extra allowlist: numpy arrays, dtypes and scalars, and the API's ``ArchResults`` /
``ResultsCount`` classes, which are mapped to plain dicts of their attributes without
importing or running the API. NATS pickles are read with :func:`ntknas.data.safe_pickle.
safe_load`. Nothing is ever loaded with ``weights_only=False`` or an unrestricted pickle by
this backend. ``"api"`` uses the official packages (``nas_201_api`` for ``.pth``,
``nats_bench`` for NATS files). ``"auto"`` (default) uses ``nas_201_api`` for a ``.pth`` when it
is installed (it calls ``torch.load``, which refuses arbitrary objects from torch 2.6 on, and
falls back to ``"direct"`` when torch refuses) and ``"direct"`` for NATS files: the
``nats_bench`` package unpickles without restriction, so it is only used when asked for
explicitly with ``backend="api"``.

What is tested (``tests/test_groundtruth.py``): the direct backend on small fixture files
written in the structures above (plain dicts/lists/tensors; numpy scalars; pickled result
objects of classes named like the API's; zip and legacy torch formats; NATS single file and
folder), the CSV round trip, and refusal of a file that names a forbidden global. What is not
tested here: the real multi-GB official files (not available offline), the ``"api"`` backend
in CI (the packages are not dependencies; a test runs it when they are installed), and the
``-full`` NATS archives that also store network weights (the direct backend refuses their
tensors inside plain pickles; use ``backend="api"`` on a file you downloaded yourself).
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import math
import os
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ntknas.errors import DataError, UnknownNameError
from ntknas.files import atomic_text, output_folder

#: (column, dataset name in the official files, eval-set names to try in order).
ACCURACY_COLUMNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("cifar10_valid_valid", "cifar10-valid", ("x-valid",)),
    ("cifar10_valid_test", "cifar10-valid", ("ori-test", "x-test")),
    ("cifar10_test", "cifar10", ("ori-test",)),
    ("cifar100_test", "cifar100", ("x-test",)),
    ("imagenet16_120_test", "ImageNet16-120", ("x-test",)),
)
PARAMS_COLUMN = "params_mb"
# Parameter counts differ between datasets only through the classifier; the CIFAR-10 network is
# the one the compact CSV documents.
_PARAMS_DATASETS = ("cifar10-valid", "cifar10")

#: Training schedules: NAS-Bench-201 ``.pth`` files key them 'full'/'less', NATS-Bench '200'/'12'.
SCHEDULES: Mapping[str, tuple[str, ...]] = {"200": ("200", "full"), "12": ("12", "less")}
#: What an exported accuracy column's name ends in, by schedule (see :func:`schedule_column`).
SCHEDULE_SUFFIXES: Mapping[str, str] = {"200": "", "12": "_hp12"}
BACKENDS = ("auto", "direct", "api")

WHERE_TO_GET = (
    "get NAS-Bench-201-v1_0-e61699.pth (github.com/D-X-Y/NAS-Bench-201) or the "
    "NATS-tss-v1_0-3ffb9-simple folder (github.com/D-X-Y/NATS-Bench)"
)

_NATS_EXT = ".pickle.pbz2"
_NATS_ARCH_FILE = re.compile(r"^(\d+)\.pickle\.pbz2$")


@dataclass
class OfficialTable:
    """Per-architecture results read from an official file, in official index order.

    ``columns`` maps a column name to a float array of length ``len(arch_strings)``; NaN marks
    an architecture or dataset the file has no result for. Accuracies are in percent.
    """

    source: str
    arch_strings: list[str]
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.arch_strings)


# --------------------------------------------------------------------------------------------
# File kinds
# --------------------------------------------------------------------------------------------


def is_official_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an official file kind (``.pth``, ``.pbz2`` or a NATS folder)."""
    p = Path(path)
    return p.is_dir() or p.suffix == ".pth" or p.name.endswith(".pbz2")


def _is_nats(path: Path) -> bool:
    return path.is_dir() or path.name.endswith(".pbz2")


def _check_choice(value: str, choices: tuple[str, ...] | Mapping[str, Any], what: str) -> str:
    value = str(value)
    if value not in choices:
        raise UnknownNameError(f"unknown {what} {value!r}: valid values are {', '.join(choices)}")
    return value


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def load_official(
    path: str | os.PathLike[str], *, hp: str | int = "200", backend: str = "auto"
) -> OfficialTable:
    """Read the per-architecture accuracies of an official NAS-Bench-201 / NATS-Bench tss file.

    Args:
        path: a NAS-Bench-201 ``.pth``, a NATS-Bench ``.pickle.pbz2`` or a NATS-Bench archive
            folder (``NATS-tss-v1_0-3ffb9-simple``).
        hp: training schedule, ``"200"`` (the benchmark's main results) or ``"12"``.
        backend: ``"auto"``, ``"direct"`` or ``"api"`` (see the module docstring).

    Raises:
        DataError: the file is missing, corrupt, not in the official structure, holds objects
            the restricted reader refuses, or ``backend="api"`` without the package.
        UnknownNameError: ``hp`` or ``backend`` is not a known value.
    """
    hp = _check_choice(str(hp), SCHEDULES, "training schedule (hp)")
    backend = _check_choice(backend, BACKENDS, "backend")
    p = Path(path)
    if not p.exists():
        raise DataError(f"benchmark file {p} not found: {WHERE_TO_GET}")
    if not is_official_path(p):
        raise DataError(
            f"{p} is not an official NAS-Bench-201 file (.pth, .pickle.pbz2 or a NATS-Bench "
            f"folder): {WHERE_TO_GET}"
        )
    if _is_nats(p):
        if backend == "api":
            return _load_with_nats_bench(p, hp)
        return _load_nats_direct(p, hp)
    if backend == "api" or (backend == "auto" and _has_package("nas_201_api")):
        try:
            return _load_with_nas_201_api(p, hp)
        except pickle.UnpicklingError:
            if backend == "api":
                raise DataError(
                    f"nas_201_api could not load {p} with torch.load's safe mode: use "
                    "backend='direct', which allows the benchmark's own record classes"
                ) from None
    return _load_pth_direct(p, hp)


def export_benchmark_csv(
    official_path: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    *,
    hp: str | int | Sequence[str | int] = "200",
    backend: str = "auto",
) -> Path:
    """Write the compact CSV that :func:`ntknas.groundtruth.benchmark.load_benchmark` reads.

    Columns: ``index, arch_str`` and then, where the file has any value for them,
    ``cifar10_valid_valid, cifar10_valid_test, cifar10_test, cifar100_test,
    imagenet16_120_test, params_mb``. ``hp`` names the training schedules: ``"200"`` (default),
    ``"12"`` or both (``"12,200"`` or a sequence), one file; each schedule's accuracy columns carry
    its suffix (:func:`schedule_column`: none for 200 epochs, ``_hp12`` for 12, the name
    ``ntknas study`` reads its oracle column under), ``params_mb`` is written once. The file is
    read once per schedule. Floats are written with ``repr`` so they read back exactly; a missing
    result is an empty cell. Returns the path written.
    """
    schedules = parse_schedules(hp)
    columns: dict[str, np.ndarray] = {}
    arch_strings: list[str] | None = None
    for schedule in schedules:
        table = load_official(official_path, hp=schedule, backend=backend)
        if arch_strings is not None and table.arch_strings != arch_strings:
            raise DataError(f"{table.source}: its schedules list different architectures; the file is corrupt, download it again")
        arch_strings = table.arch_strings
        for name, values in table.columns.items():
            if np.isfinite(values).any():
                columns.setdefault(schedule_column(name, schedule), values)
    assert arch_strings is not None
    out = Path(out_csv)
    output_folder(out.parent, "the output file's folder")
    # Written whole or not at all: a full disk leaves the previous file, and the error names this one.
    with atomic_text(out) as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "arch_str", *columns])
        for i, arch in enumerate(arch_strings):
            writer.writerow([i, arch, *(_format_float(values[i]) for values in columns.values())])
    return out


def parse_schedules(hp: str | int | Sequence[str | int]) -> tuple[str, ...]:
    """The training schedules of ``hp`` (``"12"``, ``200``, ``"12,200"``, ``["12", "200"]``), each
    checked, in the order :data:`SCHEDULES` lists them (200 first)."""
    given = str(hp).split(",") if isinstance(hp, (str, int)) else [str(item) for item in hp]
    named = {_check_choice(item.strip(), SCHEDULES, "training schedule (hp)") for item in given if item.strip()}
    if not named:
        raise UnknownNameError(f"no training schedule (hp) given: use {', '.join(SCHEDULES)} or both, e.g. 12,200")
    return tuple(schedule for schedule in SCHEDULES if schedule in named)


def schedule_column(column: str, hp: str) -> str:
    """The exported name of ``column`` under schedule ``hp``: accuracies of the 12-epoch schedule
    end in ``_hp12`` (so one file holds both schedules); ``params_mb`` is the network's, unsuffixed."""
    if column == PARAMS_COLUMN:
        return column
    return column + SCHEDULE_SUFFIXES[hp]


def _format_float(value: float) -> str:
    return "" if not math.isfinite(value) else repr(float(value))


# --------------------------------------------------------------------------------------------
# Extraction from the official structure (plain dicts after loading)
# --------------------------------------------------------------------------------------------


def _require(mapping: Any, key: Any, source: str, where: str) -> Any:
    if not isinstance(mapping, Mapping) or key not in mapping:
        raise DataError(
            f"{source} is not in the official NAS-Bench-201 structure: no {key!r} in {where}; "
            f"{WHERE_TO_GET}"
        )
    return mapping[key]


def _schedule(all_infos: Any, hp: str, source: str, index: int) -> Any:
    if not isinstance(all_infos, Mapping):
        raise DataError(f"{source}: results of architecture {index} are not a dict; {WHERE_TO_GET}")
    for key in SCHEDULES[hp]:
        if key in all_infos:
            return all_infos[key]
    return None  # this architecture was not trained with that schedule


def _last_epoch_accuracy(record: Mapping[str, Any], setname: str) -> float | None:
    accs = record.get("eval_acc1es") or {}
    key = f"{setname}@{int(record['epochs']) - 1}"
    return float(accs[key]) if key in accs else None


def _mean_over_seeds(arch_res: Mapping[str, Any], dataset: str, setnames: tuple[str, ...]) -> float:
    """Mean over seeds of the last-epoch accuracy on the first eval set every seed has."""
    seeds = (arch_res.get("dataset_seed") or {}).get(dataset) or []
    records = [arch_res["all_results"][(dataset, seed)] for seed in seeds]
    if not records:
        return math.nan
    for setname in setnames:
        values = [_last_epoch_accuracy(r, setname) for r in records]
        known = [v for v in values if v is not None]
        if len(known) == len(values):
            return float(np.mean(known))
    return math.nan


def _mean_params(arch_res: Mapping[str, Any]) -> float:
    for dataset in _PARAMS_DATASETS:
        seeds = (arch_res.get("dataset_seed") or {}).get(dataset) or []
        if seeds:
            return float(np.mean([float(arch_res["all_results"][(dataset, s)]["params"]) for s in seeds]))
    return math.nan


def _fill_row(table: OfficialTable, index: int, arch_res: Any) -> None:
    """Write architecture ``index``'s columns from its ArchResults state."""
    if arch_res is None:
        return
    if not isinstance(arch_res, Mapping) or "all_results" not in arch_res:
        raise DataError(
            f"{table.source}: results of architecture {index} lack 'all_results'; the file is not "
            f"in the official structure ({WHERE_TO_GET})"
        )
    stored = arch_res.get("arch_str")
    if isinstance(stored, str) and stored != table.arch_strings[index]:
        raise DataError(
            f"{table.source}: architecture {index} is {stored!r} in its results but "
            f"{table.arch_strings[index]!r} in meta_archs; the file is corrupt, download it again"
        )
    try:
        for name, dataset, setnames in ACCURACY_COLUMNS:
            table.columns[name][index] = _mean_over_seeds(arch_res, dataset, setnames)
        table.columns[PARAMS_COLUMN][index] = _mean_params(arch_res)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"{table.source}: malformed results for architecture {index} ({type(exc).__name__}: "
            f"{exc}); the file is corrupt or not official, {WHERE_TO_GET}"
        ) from None


def _new_table(source: str, meta_archs: Any) -> OfficialTable:
    if not isinstance(meta_archs, (list, tuple)) or not all(isinstance(a, str) for a in meta_archs):
        raise DataError(f"{source}: 'meta_archs' is not a list of arch strings; {WHERE_TO_GET}")
    n = len(meta_archs)
    columns = {name: np.full(n, np.nan) for name, _, _ in ACCURACY_COLUMNS}
    columns[PARAMS_COLUMN] = np.full(n, np.nan)
    return OfficialTable(source=source, arch_strings=list(meta_archs), columns=columns)


def table_from_state(state: Any, source: str, hp: str = "200") -> OfficialTable:
    """Build the table from the loaded top-level dict of a ``.pth`` or NATS single file."""
    hp = _check_choice(str(hp), SCHEDULES, "training schedule (hp)")
    meta_archs = _require(state, "meta_archs", source, "the top-level dict")
    arch2infos = _require(state, "arch2infos", source, "the top-level dict")
    _require(state, "evaluated_indexes", source, "the top-level dict")
    table = _new_table(source, meta_archs)
    total = state.get("total_archs")
    if total is not None and int(total) != len(table):
        raise DataError(
            f"{source}: total_archs is {int(total)} but meta_archs lists {len(table)} "
            "architectures; the file is corrupt, download it again"
        )
    if not isinstance(arch2infos, Mapping):
        raise DataError(f"{source}: 'arch2infos' is not a dict; {WHERE_TO_GET}")
    for key, all_infos in arch2infos.items():
        index = int(key)
        if not 0 <= index < len(table):
            raise DataError(f"{source}: arch2infos has index {index} outside meta_archs; download it again")
        _fill_row(table, index, _schedule(all_infos, hp, source, index))
    return table


# --------------------------------------------------------------------------------------------
# Direct backend: .pth
# --------------------------------------------------------------------------------------------


class _ResultRecord(dict):
    """Stand-in for the API's ``ArchResults`` / ``ResultsCount``: their attributes as a dict.

    torch's weights-only unpickler creates it with ``__new__`` and hands it the pickled
    attribute dict through ``__setstate__``; no API code is imported or run.
    """

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (__dict__, slots) form
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"result record state is {type(state).__name__}, not a dict")
        self.update(state)


_RECORD_CLASS_NAMES = tuple(
    f"{module}.{name}"
    for module in ("nas_201_api.api_utils", "nas_201_api.api", "nats_bench.api_utils")
    for name in ("ArchResults", "ResultsCount")
)


def _numpy_safe_globals() -> list[Any]:
    """numpy globals that only build arrays, dtypes and scalars, under their numpy 1 and 2 names."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray  # type: ignore[no-redef]
    extra: list[Any] = [np.ndarray, np.dtype]
    for prefix in ("numpy.core.multiarray", "numpy._core.multiarray"):
        extra.append((multiarray.scalar, f"{prefix}.scalar"))
        extra.append((multiarray._reconstruct, f"{prefix}._reconstruct"))
    # A pickled dtype is rebuilt as np.dtype(...) and then BUILD on its concrete class.
    extra.extend({type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGSUVOMm"})
    return extra


def _one_line_reason(exc: BaseException) -> str:
    """The informative sentence of a torch.load refusal, without torch's boilerplate advice."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    boilerplate = ("Weights only load failed", "Check the documentation")
    reasons = [p for p in paragraphs if p and not p.startswith(boilerplate)]
    reason = reasons[0] if reasons else type(exc).__name__
    # torch suggests allowlisting the global or weights_only=False: exactly what ntknas refuses.
    return reason.split(" Please use `torch.serialization")[0][:200]


def load_pth_state(path: str | os.PathLike[str]) -> Any:
    """Load a NAS-Bench-201 ``.pth`` safely and return its top-level object as plain data.

    First ``torch.load(weights_only=True)``; if that refuses, torch's restricted unpickler is
    run again with :func:`_numpy_safe_globals` and the result-record stand-ins allowed. Any
    other global (code, arbitrary classes) still fails, as :class:`DataError`. Result records
    come back as a ``dict`` subclass holding their attributes, so the value is plain data.
    """
    import torch

    source = str(path)
    if not Path(path).is_file():
        raise DataError(f"benchmark file {source} not found: {WHERE_TO_GET}")
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any refusal or corruption gets the second, wider try
        pass
    allowed = _numpy_safe_globals() + [(_ResultRecord, name) for name in _RECORD_CLASS_NAMES]
    try:
        with torch.serialization.safe_globals(allowed):
            state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt files raise nearly anything
        raise DataError(
            f"cannot load {source} safely ({_one_line_reason(exc)}): ntknas only reads tensors, "
            "containers, numbers, strings, numpy arrays and the benchmark's result records from a "
            f".pth; if the file is corrupt, download it again ({WHERE_TO_GET})"
        ) from None
    return state


def _load_pth_direct(path: Path, hp: str) -> OfficialTable:
    return table_from_state(load_pth_state(path), str(path), hp)


# --------------------------------------------------------------------------------------------
# Direct backend: NATS-Bench pickles
# --------------------------------------------------------------------------------------------


def _load_pbz2(path: Path) -> Any:
    from ntknas.data.safe_pickle import safe_load

    try:
        with bz2.BZ2File(path, "rb") as handle:
            return safe_load(handle, encoding="latin1")
    except DataError as exc:  # safe_load names a stream "<stream>": say which file it was
        raise DataError(str(exc).replace("<stream>", str(path))) from None
    except OSError as exc:  # bz2 raises OSError for data that is not bz2
        raise DataError(
            f"cannot read {path}: {exc.strerror or exc}; the file is corrupt, download it again "
            f"({WHERE_TO_GET})"
        ) from None
    except EOFError:
        raise DataError(f"{path} is truncated: download it again ({WHERE_TO_GET})") from None


def _load_nats_direct(path: Path, hp: str) -> OfficialTable:
    if path.is_file():
        return table_from_state(_load_pbz2(path), str(path), hp)
    meta_path = path / f"meta{_NATS_EXT}"
    if not meta_path.is_file():
        raise DataError(
            f"{path} is a folder without meta{_NATS_EXT}, so it is not a NATS-Bench archive: "
            f"{WHERE_TO_GET}"
        )
    meta = _load_pbz2(meta_path)
    table = _new_table(str(path), _require(meta, "meta_archs", str(meta_path), "the meta file"))
    for entry in sorted(path.iterdir()):
        match = _NATS_ARCH_FILE.match(entry.name)
        if match is None:
            continue
        index = int(match.group(1))
        if not 0 <= index < len(table):
            raise DataError(f"{entry}: index {index} is outside meta_archs; the archive is corrupt")
        _fill_row(table, index, _schedule(_load_pbz2(entry), hp, str(entry), index))
    return table


# --------------------------------------------------------------------------------------------
# API backend (optional packages)
# --------------------------------------------------------------------------------------------


def _has_package(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _table_from_api(api: Any, source: str, hp: str) -> OfficialTable:
    """Query an official API object (NASBench201API or NATStopology) architecture by architecture."""
    table = _new_table(source, [str(api[i]) for i in range(len(api))])
    queries = {  # column -> (dataset, key of get_more_info)
        "cifar10_valid_valid": ("cifar10-valid", "valid-accuracy"),
        "cifar10_valid_test": ("cifar10-valid", "test-accuracy"),
        "cifar10_test": ("cifar10", "test-accuracy"),
        "cifar100_test": ("cifar100", "test-accuracy"),
        "imagenet16_120_test": ("ImageNet16-120", "test-accuracy"),
    }
    for index in range(len(table)):
        for name, (dataset, key) in queries.items():
            try:
                info = api.get_more_info(index, dataset, hp=hp, is_random=False)
            except (KeyError, ValueError, AssertionError):
                continue  # not evaluated on this dataset/schedule
            if info.get(key) is not None:
                table.columns[name][index] = float(info[key])
        for dataset in _PARAMS_DATASETS:
            try:
                cost = api.get_cost_info(index, dataset, hp=hp)
                table.columns[PARAMS_COLUMN][index] = float(cost["params"])
                break
            except (KeyError, ValueError, AssertionError):
                continue
    return table


def _load_with_nas_201_api(path: Path, hp: str) -> OfficialTable:
    if not _has_package("nas_201_api"):
        raise DataError("backend='api' needs the official package: pip install nas-bench-201")
    from nas_201_api import NASBench201API  # type: ignore[import-not-found]

    return _table_from_api(NASBench201API(str(path), verbose=False), str(path), hp)


def _load_with_nats_bench(path: Path, hp: str) -> OfficialTable:
    if not _has_package("nats_bench"):
        raise DataError("backend='api' needs the official package: pip install nats-bench")
    from nats_bench import create  # type: ignore[import-not-found]

    api = create(str(path), "tss", fast_mode=path.is_dir(), verbose=False)
    return _table_from_api(api, str(path), hp)


__all__ = [
    "ACCURACY_COLUMNS",
    "BACKENDS",
    "PARAMS_COLUMN",
    "SCHEDULES",
    "WHERE_TO_GET",
    "OfficialTable",
    "export_benchmark_csv",
    "is_official_path",
    "load_official",
    "load_pth_state",
    "table_from_state",
]
