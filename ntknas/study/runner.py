"""``ntknas study``: the whole paper at one scale, as one resumable command.

The study is a sequence of library calls, each into its own subfolder of ``--out``:

* ``groundtruth/`` (digits only) — each cell's own accuracy after a brief training, and a shorter
  training's accuracy as the oracle proxy, written as a small benchmark table;
* ``init/`` — experiment 1: NTK metrics and zero-cost proxies at initialization, both BN modes;
* ``init-nb101/`` — experiment 1 on NAS-Bench-101 (:mod:`ntknas.study.nb101`; where the scale's
  ``nb101_archs`` is not 0);
* ``trained/`` — experiment 2: NTK metrics (and synflow) before and after brief training;
* ``track/`` — experiment 3: architectures from accuracy bands, their kernel's distance to Θ₀;
* ``search/`` — random search and REA guided by the oracle column, synflow and LGA at
  initialization (matrix-free), and two-stage search (synflow, then LGA after training).

Every part is resumable on its own (its store skips what is stored), so the study resumes by
running the parts again; a part recorded finished in ``study.json`` is not even reopened.
Measurements are shared: the searches read ``init/`` and ``trained/`` (and each other) as caches.
The results page (:mod:`ntknas.report.results_page`) is written last, from the folders alone.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ntknas.data import ImageDataset, load_for_run
from ntknas.errors import DataError
from ntknas.execution.executors import Executor
from ntknas.execution.progress import ProgressHook
from ntknas.execution.runtime import environment, resolve_device
from ntknas.files import atomic_write_text, output_folder
from ntknas.inputs import validation as check
from ntknas.metrics import DEFAULT_METRICS, get_metric
from ntknas.settings import check_fields, setting
from ntknas.study import nb101
from ntknas.study.scale_table import scale_record
from ntknas.study.scales import StudyScale, get_scale

log = logging.getLogger(__name__)

STUDY_FILE = "study.json"
STUDY_FORMAT = 1
NB201_DEFAULT_TARGET = "cifar10_valid_test"
ORACLE_COLUMN = "cifar10_valid_valid_hp12"
SIZE_METRICS = ("params", "flops")
MODEL_SEED = 42
TRACK_SEED = 42
SUBSET_SEED = 0
DIGITS_TARGET = "digits_test"
DIGITS_ORACLE = "digits_test_short"

PARTS = ("groundtruth", "init", nb101.PART, "trained", "track", "search")
SEARCHES = ("baselines", "lga-init", "two-stage")
"""The search part's run folders: one per kernel setting and strategy group (a folder holds one
kernel setting, and one command's summary)."""

PROXY_TABLE_FIX = (
    "the oracle baseline needs --proxy-table FILE: a NAS-Bench-201 table with the 12-epoch validation "
    f"column {ORACLE_COLUMN}, written by 'ntknas export-benchmark NAS-Bench-201-v1_1-096897.pth --hp 12 "
    "--out nb201_hp12.csv' (see docs/data.md)"
)


def zero_cost_metrics() -> tuple[str, ...]:
    """The registered zero-cost proxies, and the size baselines (params, flops)."""
    from ntknas.metrics import available_metrics

    names = available_metrics()
    return tuple(m for m in names if get_metric(m).family == "zero-cost") + tuple(m for m in SIZE_METRICS if m in names)


@dataclass(frozen=True)
class StudyConfig:
    """Settings of ``ntknas study``: the scale (what is run) and where the inputs and outputs are."""

    scale: str = setting("smoke", flag="--scale", parse=check.nonempty_text, metavar="SCALE",
                         help="smoke (built-in digits, minutes) | cpu (CIFAR-10, ~1.5 h on 2 cores, --workers 2) | study (the "
                              "study's protocol: a GPU or a Ray cluster) | PATH.toml (a scale file: a named scale "
                              "with overrides)")
    data_dir: str | None = setting(None, flag="--data-dir", parse=check.nonempty_text,
                                   help="folder holding cifar-10-batches-py (cpu and study scales)")
    benchmark: str | None = setting(None, flag="--benchmark", parse=check.nonempty_text,
                                    help="NAS-Bench-201 CSV/.pth with the target column (cpu and study scales)")
    target: str | None = setting(None, flag="--target", parse=check.nonempty_text,
                                 help=f"accuracy column of --benchmark (default {NB201_DEFAULT_TARGET})")
    nb101_benchmark: str | None = setting(
        None, flag="--nb101-benchmark", parse=check.nonempty_text,
        help="NAS-Bench-101 table for the init-nb101 part: the official nasbench_only108.tfrecord or an .npz/.csv "
             "exported from it (scales with NB101 cells, on CIFAR-10)",
    )
    nb101_archs_file: str | None = setting(
        None, flag="--nb101-archs-file", parse=check.nonempty_text,
        help="the study's all_graphs.json: the init-nb101 part measures the first cells of its order",
    )
    proxy_table: str | None = setting(
        None, flag="--proxy-table", parse=check.nonempty_text,
        help=f"table with the oracle column {ORACLE_COLUMN} (ntknas export-benchmark OFFICIAL.pth --hp 12 writes it; cpu and study scales)",
    )
    out: str = setting("runs/study", flag="--out", parse=check.nonempty_text,
                       help="study folder: one subfolder per part, results.md and results.html (default runs/study)")
    device: str = setting("cpu", flag="--device", parse=check.nonempty_text, help="cpu | cuda | cuda:N")
    workers: int = setting(1, flag="--workers", parse=check.positive_int,
                           help="worker processes sharing the device (default 1)")
    time_budget: float | None = setting(
        None, flag="--time-budget", parse=check.nonnegative_seconds, metavar="SECONDS",
        help="start no part (and no architecture of init and trained) after this many seconds, write the "
             "results page from what is stored, exit with status 3 (rerun to continue)",
    )

    def __post_init__(self) -> None:
        check_fields(self)
        self.study_scale  # noqa: B018 -- an unknown scale or a bad scale file is refused on construction

    @cached_property
    def study_scale(self) -> StudyScale:
        return get_scale(self.scale)

    def check_inputs(self) -> None:
        """Refuse, before any work, a scale whose inputs are not given (one line, the fix)."""
        scale = self.study_scale
        if scale.dataset == "digits":
            return
        missing = [flag for flag, value in (("--data-dir", self.data_dir), ("--benchmark", self.benchmark))
                   if not value]
        if missing:
            raise DataError(
                f"the {scale.name} scale needs {' and '.join(missing)}: the folder holding cifar-10-batches-py "
                "and the NAS-Bench-201 accuracy table (e.g. nb201_accuracies.csv); see docs/data.md, or run "
                "--scale smoke, which needs no download"
            )
        if not self.proxy_table:
            raise DataError(f"the {scale.name} scale: {PROXY_TABLE_FIX}")
        if scale.nb101_archs and not self.nb101_benchmark:
            raise DataError(
                f"the {scale.name} scale measures {scale.nb101_archs} NAS-Bench-101 cells: it needs --nb101-benchmark "
                "FILE, the official nasbench_only108.tfrecord or an .npz exported from it (see docs/data.md), or a "
                "scale file with nb101_archs = 0 (docs/commands/study.md#scale-files)"
            )
        for flag, path in (("--data-dir", self.data_dir), ("--benchmark", self.benchmark),
                           ("--proxy-table", self.proxy_table), ("--nb101-benchmark", self.nb101_benchmark),
                           ("--nb101-archs-file", self.nb101_archs_file)):
            if path and not Path(path).exists():
                raise DataError(f"{flag} {path} does not exist: check the path")

    def identity(self) -> dict[str, Any]:
        """What must match for a rerun to continue a study folder: the scale's name and every
        setting that decides what its parts measure (more cells, seeds or stages may be added)."""
        return {"scale": self.study_scale.name, "target": self.target, "settings": self.study_scale.identity()}

    def deviations(self) -> tuple[str, ...]:
        """The scale's deviations that come from the inputs given (NB101's table and order)."""
        return nb101.input_deviations(self.study_scale, self.nb101_benchmark, self.nb101_archs_file)


@dataclass
class PartOutcome:
    name: str
    folder: str
    seconds: float
    skipped: bool = False
    stopped: bool = False


@dataclass
class StudyOutcome:
    config: StudyConfig
    run_dir: Path
    parts: list[PartOutcome] = field(default_factory=list)
    seconds: float = 0.0
    stopped_by_budget: bool = False
    files: list[Path] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# The study folder's record
# ----------------------------------------------------------------------------------------------


def _read_record(out: Path) -> dict[str, Any] | None:
    path = out / STUDY_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        raise DataError(f"{path} is unreadable: delete it (the parts' stores are kept) and rerun") from None
    return record if isinstance(record, dict) else None


def _write_record(out: Path, record: dict[str, Any]) -> None:
    atomic_write_text(out / STUDY_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")


def _claim(out: Path, config: StudyConfig, command_line: str | None, device: torch.device) -> dict[str, Any]:
    record = _read_record(out)
    if record is not None and record.get("identity") != config.identity():
        raise DataError(
            f"{out} holds a study with other settings ({_difference(record.get('identity'), config.identity())}): "
            "use another --out, or the same --scale and --target"
        )
    record = record or {"format": STUDY_FORMAT, "identity": config.identity(), "parts": {}}
    record.update(
        command=command_line or _command_line(config),
        scale=scale_record(config.study_scale, config.deviations()),
        machine=environment(device) | {"cpu_cores": str(os.cpu_count()), "torch_threads": str(torch.get_num_threads()),
                                       "machine": platform.machine()},
        inputs={"data_dir": config.data_dir, "benchmark": config.benchmark, "proxy_table": config.proxy_table,
                "nb101_benchmark": config.nb101_benchmark, "nb101_archs_file": config.nb101_archs_file},
    )
    _write_record(out, record)
    return record


def _difference(stored: Any, wanted: dict[str, Any]) -> str:
    """The first settings a study folder's identity and this run's disagree on, in words."""
    if not isinstance(stored, dict):
        return "an unreadable record"
    there, here = dict(stored.get("settings") or {}), wanted["settings"]
    lines = [f"{key} {stored.get(key)!r} there, {wanted[key]!r} here"
             for key in ("scale", "target") if stored.get(key) != wanted[key]]
    lines += [f"{key} {there.get(key, 'unset')!r} there, {here.get(key, 'unset')!r} here"
              for key in sorted(set(there) | set(here)) if there.get(key) != here.get(key)]
    return "; ".join(lines[:3]) or "an older record"


def _command_line(config: StudyConfig) -> str:
    parts = ["ntknas study"]
    defaults = {f.name: f.default for f in fields(StudyConfig)}
    for item in fields(StudyConfig):
        value = getattr(config, item.name)
        if value != defaults[item.name] or item.name == "scale":
            parts.append(f"{item.metadata['flag']} {value:g}" if isinstance(value, float) else
                         f"{item.metadata['flag']} {value}")
    return " ".join(parts)


# ----------------------------------------------------------------------------------------------
# Inputs shared by the parts
# ----------------------------------------------------------------------------------------------


class _Inputs:
    """The data and architectures of the study, loaded on first use (a finished study reads none)."""

    def __init__(self, config: StudyConfig, out: Path) -> None:
        self.config, self.scale, self.out = config, config.study_scale, out
        self._sets: dict[str, ImageDataset | None] = {}

    # -- data ---------------------------------------------------------------------------------

    def _digits(self) -> tuple[ImageDataset, ImageDataset]:
        from ntknas.data.digits import load_digits_dataset

        if "digits" not in self._sets:
            loaded = load_digits_dataset(image_size=self.scale.image_size or 16)
            self._sets |= {"digits": loaded[0], "digits_test": loaded[1]}
        train, test = self._sets["digits"], self._sets["digits_test"]
        assert train is not None and test is not None
        return train, test

    def test(self) -> ImageDataset | None:
        return self._digits()[1] if self.scale.dataset == "digits" else None

    def training(self) -> ImageDataset | None:
        """The training split of every part (None: the part loads all of it itself), or the
        scale's seeded subset. Every part sees the same split — the init batch is drawn from it,
        the stages that train train on it — so the values the parts store and share through their
        caches were all measured one way."""
        if self.scale.dataset == "digits":
            return self._digits()[0]
        if self.scale.train_images is None:
            return None
        if self._sets.get("subset") is None:
            full: ImageDataset = load_for_run(self.scale.dataset, self.config.data_dir, "train", torch.device("cpu"))
            if self.scale.train_images > len(full):
                raise DataError(f"the {self.scale.name} scale trains on {self.scale.train_images} images, "
                                f"{self.config.data_dir} holds {len(full)}: check --data-dir")
            order = np.random.default_rng(SUBSET_SEED).permutation(len(full))[: self.scale.train_images]
            self._sets["subset"] = full.subset(np.sort(order))
        return self._sets.get("subset")

    # -- architectures ------------------------------------------------------------------------

    def digits_indices(self) -> list[int]:
        from ntknas.inputs.selection import select_positions
        from ntknas.spaces.nb201 import NB201_NUM_ARCHS

        return select_positions(NB201_NUM_ARCHS, None, self.scale.init_archs, 0)

    @property
    def benchmark_file(self) -> str:
        if self.scale.dataset == "digits":
            return str(self.out / "groundtruth" / DIGITS_BENCHMARK)
        assert self.config.benchmark is not None
        return self.config.benchmark

    @property
    def proxy_table(self) -> str:
        return self.benchmark_file if self.scale.dataset == "digits" else str(self.config.proxy_table)

    @property
    def target(self) -> str | None:
        return DIGITS_TARGET if self.scale.dataset == "digits" else self.config.target

    @property
    def oracle(self) -> str:
        return f"bench:{DIGITS_ORACLE if self.scale.dataset == 'digits' else ORACLE_COLUMN}"


DIGITS_BENCHMARK = "digits_benchmark.csv"


# ----------------------------------------------------------------------------------------------
# The parts
# ----------------------------------------------------------------------------------------------


def _measure_base(scale: StudyScale, config: StudyConfig) -> dict[str, Any]:
    """The measurement settings every part shares, so that their stored values share keys."""
    return {
        "space": "nb201", "dataset": scale.dataset, "batch_size": scale.batch_size, "model_seed": MODEL_SEED,
        "network_options": scale.builds, "train_batch_size": scale.train_batch_size,
    }


def _groundtruth(inputs: _Inputs, on_progress: ProgressHook | None) -> bool:
    """Digits: each cell's accuracy after the scale's training (the target), and after a shorter
    one (the oracle proxy), by the demo's mechanism; written as a benchmark table."""
    from ntknas.runs.demo import DemoConfig, demo_ground_truth
    from ntknas.spaces.nb201 import arch_from_index

    scale = inputs.scale
    folder = inputs.out / "groundtruth"
    indices = inputs.digits_indices()
    train, test = inputs._digits()
    columns = {}
    for column, epochs, where in ((DIGITS_TARGET, scale.ground_truth_epochs, folder),
                                  (DIGITS_ORACLE, scale.oracle_epochs, folder / "oracle")):
        output_folder(where)
        demo = DemoConfig(
            archs=len(indices), channels=scale.builds.get("channels", 16),
            cells_per_stage=scale.builds.get("cells_per_stage", 5), image_size=scale.image_size or 16,
            batch_size=scale.batch_size, train_epochs=epochs, train_batch_size=scale.train_batch_size,
            model_seed=MODEL_SEED,
        )
        columns[column] = demo_ground_truth(demo, indices, train, test, where, on_progress)
    lines = [["index", "arch_str", DIGITS_TARGET, DIGITS_ORACLE]]
    lines += [[str(i), arch_from_index(i).to_string(), repr(columns[DIGITS_TARGET][i]), repr(columns[DIGITS_ORACLE][i])]
              for i in sorted(indices)]
    text = "\n".join(",".join(row) for row in lines) + "\n"
    path = folder / DIGITS_BENCHMARK
    if not path.is_file() or path.read_text() != text:
        atomic_write_text(path, text)
    if scale.nb101_archs:
        nb101.digits_ground_truth(scale, train, test, folder / nb101.GROUNDTRUTH_FOLDER, MODEL_SEED, on_progress)
    return True


def _digits_entries(inputs: _Inputs) -> list[Any]:
    from ntknas.groundtruth import load_benchmark
    from ntknas.runs.correlate import ArchEntry
    from ntknas.spaces.nb201 import arch_from_index

    table = load_benchmark(inputs.benchmark_file, "nb201", DIGITS_TARGET)
    return [
        ArchEntry(arch_from_index(i).to_string(), i, arch_from_index(i), table.accuracy(i))
        for i in inputs.digits_indices()
    ]


def _correlate(
    inputs: _Inputs, name: str, metrics: Sequence[str], epochs: tuple[int, ...], archs: int,
    executor: Executor | None, on_progress: ProgressHook | None, budget: float | None, command: str,
) -> bool:
    """One correlate part; True when it finished (not stopped by the time budget)."""
    from ntknas.runs.correlate import CorrelateConfig, run_correlate

    config, scale = inputs.config, inputs.scale
    digits = scale.dataset == "digits"
    settings = CorrelateConfig(
        **_measure_base(scale, config), bn_modes=("train", "eval"), metrics=tuple(metrics), train_epochs=epochs,
        out=str(inputs.out / name), device=config.device, workers=config.workers, time_budget=budget,
        archs=None if digits else f"0:{archs}", benchmark=inputs.benchmark_file, target=inputs.target,
        data_dir=config.data_dir,
    )
    outcome = run_correlate(
        settings, entries=_digits_entries(inputs)[:archs] if digits else None,
        train_set=inputs.training(), test_set=inputs.test(),
        executor=executor, on_progress=on_progress, command_line=f"{command}  # part {name}",
    )
    return not outcome.stopped_by_budget


def _correlate_nb101(
    inputs: _Inputs, metrics: Sequence[str], executor: Executor | None, on_progress: ProgressHook | None,
    budget: float | None, command: str,
) -> bool:
    """The init-nb101 part: correlate on NB101 at the study's NB101 settings (batch, seed, stem,
    stacks and initialization are the space's protocol defaults unless the scale reduces them)."""
    from ntknas.runs.correlate import CorrelateConfig, run_correlate

    config, scale = inputs.config, inputs.scale
    digits = scale.dataset == "digits"
    table = inputs.out / "groundtruth" / nb101.GROUNDTRUTH_FOLDER / nb101.DIGITS_TABLE
    settings = CorrelateConfig(
        space="nb101", dataset=scale.dataset, batch_size=scale.nb101_batch_size,
        network_options=scale.nb101_builds, train_batch_size=scale.train_batch_size, bn_modes=("train", "eval"),
        metrics=tuple(metrics), out=str(inputs.out / nb101.PART), device=config.device, workers=config.workers,
        time_budget=budget, archs=None if digits else f"0:{scale.nb101_archs}",
        archs_file=None if digits else config.nb101_archs_file,
        benchmark=str(table) if digits else config.nb101_benchmark, target=DIGITS_TARGET if digits else None,
        data_dir=config.data_dir,
    )
    outcome = run_correlate(
        settings, entries=nb101.digits_entries(scale, table) if digits else None,
        train_set=inputs.training(), test_set=inputs.test(), executor=executor, on_progress=on_progress,
        command_line=f"{command}  # part {nb101.PART}",
    )
    return not outcome.stopped_by_budget


def track_choices(scale: StudyScale, pool: Sequence[tuple[str, int, float]]) -> list[tuple[str, int, float, str]]:
    """The architectures to track: ``track_archs_per_band`` drawn (seed 42) from each band of the
    pool's accuracy quantiles; (key, index, accuracy, band)."""
    finite = [p for p in pool if np.isfinite(p[2])]
    if not finite:
        raise DataError("no architecture with an accuracy to track: check --benchmark and --target")
    values = np.array([p[2] for p in finite])
    order = np.argsort(values, kind="stable")
    rng = np.random.default_rng(TRACK_SEED)
    chosen: list[tuple[str, int, float, str]] = []
    taken: set[str] = set()
    for band, low, high in scale.track_bands:
        start, stop = int(np.floor(low * len(order))), max(int(np.ceil(high * len(order))), int(np.floor(low * len(order))) + 1)
        members = [finite[i] for i in order[start:stop] if finite[i][0] not in taken]
        count = min(scale.track_archs_per_band, len(members))
        for position in sorted(rng.choice(len(members), size=count, replace=False).tolist()) if count else []:
            key, index, accuracy = members[position]
            chosen.append((key, index, accuracy, band))
            taken.add(key)
    return chosen


def _track_pool(inputs: _Inputs) -> list[tuple[str, int, float]]:
    from ntknas.groundtruth import load_benchmark
    from ntknas.spaces import get_space

    if inputs.scale.dataset == "digits":
        return [(e.key, e.index, e.accuracy) for e in _digits_entries(inputs)]
    table = load_benchmark(inputs.benchmark_file, "nb201", inputs.target)
    space = get_space("nb201")
    values = table.columns[table.target]
    pool = []
    for row, key in enumerate(table.row_keys.tolist()):
        arch = table.arch(key)
        pool.append((space.key(arch), int(space.index(arch) or 0), float(values[row])))
    return pool


def _track(inputs: _Inputs, executor: Executor | None, on_progress: ProgressHook | None, command: str,
           record: dict[str, Any]) -> bool:
    from ntknas.runs.track import TrackArch, TrackConfig, run_track

    config, scale = inputs.config, inputs.scale
    chosen = track_choices(scale, _track_pool(inputs))
    record["track_bands"] = [{"arch": key, "index": index, "accuracy": accuracy, "band": band}
                             for key, index, accuracy, band in chosen]
    _write_record(inputs.out, record)
    target = inputs.target or NB201_DEFAULT_TARGET
    settings = TrackConfig(
        space="nb201", dataset=scale.dataset, data_dir=config.data_dir, epochs=scale.track_epochs, every=1,
        samples=1, out=str(inputs.out / "track"), device=config.device, network_options=scale.builds,
        train_batch_size=scale.train_batch_size, model_seed=MODEL_SEED, workers=config.workers,
    )
    run_track(
        settings, archs=[TrackArch(key, index, accuracy, target) for key, index, accuracy, _ in chosen],
        train_set=inputs.training(), executor=executor, on_progress=on_progress,
        command_line=f"{command}  # part track",
    )
    return True


def _search(inputs: _Inputs, executor: Executor | None, on_progress: ProgressHook | None, command: str) -> bool:
    from ntknas.runs.demo import _op_distance
    from ntknas.search.driver import SearchConfig, SubsetProposals, run_search
    from ntknas.spaces import get_space

    config, scale = inputs.config, inputs.scale
    folder = inputs.out / "search"
    output_folder(folder)
    proposals = None
    if scale.search_pool == "measured":
        space = get_space("nb201")
        proposals = SubsetProposals(space, [e.build for e in _digits_entries(inputs)], _op_distance)
    base = SearchConfig(
        **_measure_base(scale, config), bn_modes=("train",), data_dir=config.data_dir,
        benchmark=inputs.benchmark_file, target=inputs.target, proxy_table=inputs.proxy_table,
        candidates=scale.search_candidates, runs=scale.search_runs, seed=0, population=scale.search_population,
        tournament=scale.search_tournament, top_k=scale.search_top_k, second_proxy="lga",
        second_epochs=scale.second_epochs, device=config.device, workers=config.workers,
        cache=(str(inputs.out / "init"), str(inputs.out / "trained")),
    )
    plans = {
        "baselines": replace(base, strategies=("random", "rea"), proxies=(inputs.oracle, "synflow")),
        "lga-init": replace(base, strategies=("random", "rea"), proxies=("lga",), kernel=scale.lga_init_kernel,
                            probes=scale.probes),
        "two-stage": replace(base, strategies=("two-stage",), proxies=("synflow",),
                             cache=(*base.cache, str(folder / "baselines"))),
    }
    for name in SEARCHES:
        run_search(
            replace(plans[name], out=str(folder / name)), proposals=proposals, train_set=inputs.training(),
            test_set=inputs.test(), executor=executor, on_progress=on_progress,
            command_line=f"{command}  # part search/{name}",
        )
    return True


# ----------------------------------------------------------------------------------------------
# The study
# ----------------------------------------------------------------------------------------------


def run_study(
    config: StudyConfig,
    *,
    executor: Executor | None = None,
    on_progress: ProgressHook | None = None,
    on_part: Callable[[str], None] | None = None,
    command_line: str | None = None,
) -> StudyOutcome:
    """Run (or resume) the study at ``config.scale`` into ``config.out`` and write its results page.

    ``executor`` runs every part's work items (default: this process, or ``config.workers``
    processes); ``on_part(name)`` is called as each part starts; ``on_progress`` as items finish.
    """
    scale = config.study_scale
    config.check_inputs()
    threads = torch.get_num_threads()
    if scale.threads is not None:
        torch.set_num_threads(scale.threads)
    try:
        return _run_study(config, executor, on_progress, on_part, command_line)
    finally:
        torch.set_num_threads(threads)


def _run_study(
    config: StudyConfig, executor: Executor | None, on_progress: ProgressHook | None,
    on_part: Callable[[str], None] | None, command_line: str | None,
) -> StudyOutcome:
    started = time.perf_counter()
    scale = config.study_scale
    out = output_folder(config.out)
    device = resolve_device(config.device)
    command = command_line or _command_line(config)
    record = _claim(out, config, command, device)
    inputs = _Inputs(config, out)
    outcome = StudyOutcome(config, out)
    ntk = tuple(DEFAULT_METRICS)
    parts: list[tuple[str, Callable[[float | None], bool]]] = []
    if scale.dataset == "digits":
        parts.append(("groundtruth", lambda budget: _groundtruth(inputs, on_progress)))
    parts += [
        ("init", lambda budget: _correlate(inputs, "init", ntk + zero_cost_metrics(), (0,), scale.init_archs,
                                           executor, on_progress, budget, command)),
    ]
    if scale.nb101_archs:
        parts.append((nb101.PART, lambda budget: _correlate_nb101(inputs, ntk + zero_cost_metrics(), executor,
                                                                  on_progress, budget, command)))
    parts += [
        ("trained", lambda budget: _correlate(inputs, "trained", ntk + ("synflow",), scale.train_epochs,
                                              scale.trained_archs, executor, on_progress, budget, command)),
        ("track", lambda budget: _track(inputs, executor, on_progress, command, record)),
        ("search", lambda budget: _search(inputs, executor, on_progress, command)),
    ]
    for name, run_part in parts:
        done = record["parts"].get(name, {})
        if done.get("status") == "done" and done.get("scale") == record["scale"]["rows"]:  # same settings
            outcome.parts.append(PartOutcome(name, name, float(done.get("seconds", 0.0)), skipped=True))
            continue
        left = None if config.time_budget is None else config.time_budget - (time.perf_counter() - started)
        if left is not None and left <= 0:
            outcome.stopped_by_budget = True
            log.warning("the time budget is spent before the %s part: rerun to continue", name)
            break
        if on_part is not None:
            on_part(name)
        log.info("study part %s…", name)
        begin = time.perf_counter()
        finished = run_part(left)
        seconds = time.perf_counter() - begin
        record["parts"][name] = {
            "status": "done" if finished else "stopped", "folder": name,
            "seconds": round(float(done.get("seconds", 0.0)) + seconds, 3),
            "device": record["machine"].get("device", "?"), "scale": record["scale"]["rows"],
        }
        _write_record(out, record)
        outcome.parts.append(PartOutcome(name, name, seconds, stopped=not finished))
        if not finished:
            outcome.stopped_by_budget = True
            break
    record["finished"] = not outcome.stopped_by_budget
    _write_record(out, record)
    from ntknas.report.results_page import write_results_page

    outcome.files = list(write_results_page(out))
    outcome.seconds = time.perf_counter() - started
    return outcome


__all__ = ["PARTS", "SEARCHES", "STUDY_FILE", "PartOutcome", "StudyConfig", "StudyOutcome", "run_study",
           "track_choices", "zero_cost_metrics"]
