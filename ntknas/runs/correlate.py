"""Experiments 1 and 2 (see docs/protocol.md, "Experiment 1" and "Experiment 2"): NTK metrics of many architectures vs their accuracy.

The run is a list of independent work items, one per (architecture, training stage). Each item
builds (or continues training) its network, measures every metric in every BatchNorm mode on the
run's one shared batch, and commits its rows to the store in one transaction. A rerun skips the
items already stored, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from ntknas.data import DatasetInfo, ImageDataset, dataset_info, draw_batch, first_images
from ntknas.errors import DataError, NtknasError, option
from ntknas.execution.executors import Executor, Task, make_executor
from ntknas.execution.progress import ProgressHook
from ntknas.execution.runtime import device_name, resolve_device
from ntknas.inputs import validation as check
from ntknas.inputs.validation import check_batch_fits
from ntknas.metrics import (
    DEFAULT_METRICS,
    MATRIX_FREE_METRICS,
    aggregate_definitions,
    get_metric,
    parse_metric_list,
    per_network_metrics,
)
from ntknas.report.correlation import SummarySpec
from ntknas.runs.skeleton import LazyData, deadline_after, open_run
from ntknas.scoring import MetricValue, score_run
from ntknas.settings import PROTOCOLS as SETTINGS_PROTOCOLS
from ntknas.settings import MeasureSettings, check_fields, setting
from ntknas.spaces import get_space
from ntknas.store import ItemRecord, Measurement, ResultStore, TrainingRecord
from ntknas.train import TrainConfig, Trainer, TrainingDivergedError

log = logging.getLogger(__name__)

PROTOCOLS = SETTINGS_PROTOCOLS  # where the search command and scripts have always found them
DEFAULT_NTK_METRICS = DEFAULT_METRICS  # the name an earlier release exported

LEGACY_IDENTITY_NAMES = {"model_seed": "seed"}
"""Identity keys correlate folders have always stored under another name than today's field."""


@dataclass(frozen=True)
class ArchEntry:
    """One architecture to measure: its store key, its position/index, how to build it, accuracy."""

    key: str
    index: int | None
    build: Any
    accuracy: float | None


@dataclass(frozen=True)
class CorrelateConfig(MeasureSettings):
    """Settings of a correlate run: :class:`~ntknas.settings.MeasureSettings` (what is measured
    and how) plus the architectures, metrics, training stages and where the run goes. ``None``
    means "the default" until :meth:`resolved` fills it in. The identity fields make up
    :meth:`store_settings`: what two commands must agree on to share a run folder (the
    architecture selection is not among them).

    Seeds: ``sample_seed`` draws ``--sample`` (CLI ``--seed``); ``model_seed`` is the model and
    data seed (CLI ``--model-seed``).
    """

    data_dir: str | None = setting(None, flag="--data-dir", parse=check.nonempty_text,
                                   help="folder with the dataset in its official format")
    benchmark: str | None = setting(
        None, flag="--benchmark", parse=check.nonempty_text,
        help="ground truth: NB201 CSV/.pth (NATS tss) or NB101 table (.npz/.csv)",
    )
    target: str | None = setting(
        None, flag="--target", parse=check.nonempty_text,
        help="accuracy column (default: cifar10_valid_test for NB201; for NB101 test_max from the .tfrecord or an .npz exported from it, test_acc_seed0 from the compact table; else the table's only column)",
    )
    archs: str | None = setting(
        None, flag="--archs", parse=check.nonempty_text,
        help="architectures: START:STOP, a list 5,17,300, or all (default 0:1000; with --archs-file: all of the file)",
    )
    archs_file: str | None = setting(
        None, flag="--archs-file", parse=check.nonempty_text,
        help="measure the architectures FILE lists, in its order: one NB201 index/arch string/op codes or NB101 "
             "hash per line, or the study's NB101 all_graphs.json; --archs and --sample then choose from that order",
    )
    sample: int | None = setting(None, flag="--sample", parse=check.positive_int,
                                 help="measure a seeded random sample of N architectures (from --archs, or all)")
    sample_seed: int = setting(0, flag="--seed", parse=check.seed, help="seed of --sample (default 0)")
    metrics: tuple[str, ...] | None = setting(
        None, flag="--metrics", parse=check.name_list, identity=True,
        help="comma-separated metrics, or all (default: the study's knas,tenas,fnorm,trace,lga; "
             "knas,fnorm,trace,lga with --kernel matrix-free)",
    )
    train_epochs: tuple[int, ...] = setting((0,), flag="--train-epochs", parse=check.epoch_list, identity=True,
                                            help="measure after these epoch counts, e.g. 0,1,3 (default 0)")
    out: str = setting("runs/correlate", flag="--out", parse=check.nonempty_text,
                       help="run folder (results.sqlite, scores.csv, summary.json, summary.md, plots)")
    device: str = setting("cpu", flag="--device", parse=check.nonempty_text, help="cpu | cuda | cuda:N")
    force: bool = setting(False, flag="--force", action="store_true",
                          help="write into a run folder that holds other settings")
    summary_only: bool = setting(
        False, flag="--summary-only", action="store_true",
        help="measure nothing: write the outputs from what the run folder holds so far, under the settings "
             "stored there (needs only --out)",
    )
    workers: int = setting(1, flag="--workers", parse=check.positive_int,
                           help="worker processes sharing the device (default 1; small cells keep a GPU busy only with several)")
    time_budget: float | None = setting(
        None, flag="--time-budget", parse=check.nonnegative_seconds, metavar="SECONDS",
        help="start no architecture after this many seconds, then write the outputs and exit with status 3 "
             "(rerun to continue)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fields(self, [f.name for f in fields(CorrelateConfig) if f.name not in _MEASURE_NAMES])
        if isinstance(self.metrics, str):
            object.__setattr__(self, "metrics", check.name_list(self.metrics))
        if isinstance(self.train_epochs, str):
            object.__setattr__(self, "train_epochs", check.epoch_list(self.train_epochs))

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics of a resolved config (``metrics`` is None until :meth:`resolved`)."""
        assert self.metrics is not None, "a resolved config names its metrics"
        return tuple(self.metrics)

    @property
    def seed(self) -> int | None:
        """The model and data seed under the name earlier releases gave it (``model_seed``)."""
        return self.model_seed

    def resolved(self, info: DatasetInfo) -> CorrelateConfig:
        """The config with protocol defaults filled in and every name checked."""
        space = get_space(self.space)
        epochs = tuple(sorted(set(self.train_epochs)))
        if not epochs or epochs[0] < 0:
            raise NtknasError(f"{option('train_epochs')} must list epoch counts >= 0, got {self.train_epochs}")
        default_metrics = MATRIX_FREE_METRICS if self.kernel == "matrix-free" else DEFAULT_METRICS
        metrics = tuple(parse_metric_list(self.metrics if self.metrics is not None else default_metrics))
        self.check_metrics(metrics)
        batch_size, seed = protocol_defaults(self.protocol, space.name, info)
        batch_size = self.batch_size or batch_size
        resolved = replace(
            self, space=space.name, metrics=metrics, train_epochs=epochs, dataset=info.name,
            batch_size=batch_size, model_seed=seed if self.model_seed is None else self.model_seed,
        )
        # Every item measures these metrics on one batch of this size: one choice for the run, made
        # before its identity is, so the folder and each row name the kernel that computed them.
        return resolved.for_evaluation(metrics, batch_size, self.device)

    @property
    def measured_on(self) -> str:
        """Which batch the metrics see: the study's augmented training batch at initialization
        (§3.1), or, when the run trains, the first images of the unshuffled test split (§3.2) —
        at every stage, epoch 0 included, so the stages are comparable."""
        return "train_augmented" if self.train_epochs == (0,) else "test_first"

    @property
    def protocol_tag(self) -> str:
        tagged: dict[str, Any] = {
            "variant": self.variant, "params": self.params, "stem": self.nb101_stem_channels,
            "net": dict(self.network_options), "train_batch": self.train_batch_size,
        }
        if self.init_identity is not None:  # absent for PyTorch's: older run folders stay valid
            tagged["init"] = self.init_identity
        if self.kernel_identity is not None:  # absent for the exact kernel, likewise
            tagged["kernel"] = self.kernel_identity
        options = json.dumps(tagged, sort_keys=True)
        digest = hashlib.sha1(options.encode()).hexdigest()[:8]
        return f"{self.protocol}/{self.measured_on}/{digest}"

    def store_settings(self) -> dict[str, Any]:
        """What must match for two commands to share a run folder: the identity fields, and the
        initialization when it is not PyTorch's (what every folder written before ``--init``
        existed holds, so those folders keep their identity)."""
        settings = {
            LEGACY_IDENTITY_NAMES.get(f.name, f.name): _plain(getattr(self, f.name))
            for f in fields(self) if f.metadata.get("identity")
        }
        if self.init_identity is not None:
            settings["init"] = self.init_identity
        if self.kernel_identity is not None:
            settings["kernel"] = self.kernel_identity
        return settings

    def summary_spec(self) -> SummarySpec:
        """The settings as the report needs them (the report imports no experiment code)."""
        assert self.batch_size is not None and self.model_seed is not None and self.metrics is not None, \
            "summarize a resolved config"
        return SummarySpec(
            space=self.space, dataset=self.dataset, protocol=self.protocol, protocol_tag=self.protocol_tag,
            measured_on=self.measured_on, batch_size=self.batch_size, seed=self.model_seed, variant=self.variant,
            params=self.params, benchmark=self.benchmark, target=self.target, metrics=tuple(self.metrics),
            bn_modes=tuple(self.bn_modes), train_epochs=tuple(self.train_epochs),
            directions={m: get_metric(m).higher_is_better for m in self.metrics},
            initialization=self.init_identity or "PyTorch default",
            aggregates=aggregate_definitions(self.metrics),
        )


_MEASURE_NAMES = frozenset(f.name for f in fields(MeasureSettings))

CONFIG_META = "correlate_config"
"""The store's record of the resolved settings of the run that last measured into the folder."""


def stored_config(config: CorrelateConfig) -> dict[str, Any]:
    """The resolved config as plain JSON under the names earlier releases stored, less what only
    concerns one invocation (:func:`config_from_stored` reads it back)."""
    once = {"out", "force", "summary_only", "workers", "time_budget", "device"}
    return {
        LEGACY_IDENTITY_NAMES.get(f.name, f.name): _plain(getattr(config, f.name))
        for f in fields(config) if f.name not in once
    }


def config_from_stored(stored: dict[str, Any], **values: Any) -> CorrelateConfig:
    """A config from what :func:`stored_config` wrote, by this or an earlier release."""
    renamed = {new: old for new, old in LEGACY_IDENTITY_NAMES.items()}
    known = {f.name for f in fields(CorrelateConfig)}
    arguments = {}
    for name, value in stored.items():
        name = next((new for new, old in renamed.items() if old == name), name)
        if name in known:
            arguments[name] = tuple(value) if isinstance(value, list) else value
    return CorrelateConfig(**(arguments | values))  # type: ignore[arg-type]


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def protocol_defaults(protocol: str, space: str, info: DatasetInfo) -> tuple[int, int]:
    """(batch size, seed) of a protocol: the zero-cost papers' (batch 64, seed 42), or the
    study's, which is the space's (see docs/protocol.md, "Experiment 1": NB101 batch 64 seed 1; else the dataset's batch)."""
    if protocol == "zc":
        return 64, 42
    defaults = get_space(space).protocol
    return defaults.batch_size or info.default_batch_size, defaults.seed


@dataclass
class CorrelateOutcome:
    config: CorrelateConfig
    entries: list[ArchEntry]
    measured: int
    skipped: int
    seconds: float
    run_dir: Path
    files: list[Path] = field(default_factory=list)
    stopped_by_budget: bool = False
    selected: int = 0  # architectures the command selected (stored before, now, or not yet)


@dataclass
class MeasurementBatch:
    inputs: torch.Tensor
    targets: torch.Tensor


def entries_from_benchmark(config: CorrelateConfig) -> list[ArchEntry]:
    """The architectures of ``--archs``/``--sample`` with their accuracy from ``--benchmark``.

    Positions index the benchmark's order, or with ``--archs-file`` the file's order.
    """
    return entries_and_target(config)[0]


def entries_and_target(config: CorrelateConfig) -> tuple[list[ArchEntry], str]:
    """:func:`entries_from_benchmark` and the name of the target column the accuracies come from
    (refused when it cannot rank: fewer than 3 distinct finite values)."""
    from ntknas.groundtruth import load_benchmark
    from ntknas.inputs.archs_file import ListedArch, check_known, read_archs_file
    from ntknas.inputs.selection import select_positions, take

    if not config.benchmark:
        raise DataError(
            f"correlate needs {option('benchmark')}: a NAS-Bench-201 CSV/.pth or a NAS-Bench-101 table "
            "(docs/data.md says where to get them)"
        )
    listed: list[ListedArch] | None = None
    if config.archs_file:  # read first: a malformed file is reported before a slow benchmark load
        listed = read_archs_file(config.archs_file, config.space)
    benchmark = load_benchmark(config.benchmark, config.space, config.target)
    benchmark.check_rankable()
    space = get_space(config.space)
    if listed is not None:
        check_known(listed, benchmark.row_keys, str(config.archs_file), benchmark.source)
        keys: list[Any] = [arch.key for arch in listed]
    else:
        keys = benchmark.keys()
    positions = select_positions(len(keys), config.archs, config.sample, config.sample_seed)
    entries = []
    for position, key in zip(positions, take(keys, positions)):
        accuracy = benchmark.accuracy(key) if key in benchmark else None
        drawn = listed[position].nb101_spec(str(config.archs_file)) if listed is not None else None
        # A cell listed with its own drawing (all_graphs.json) is built as drawn, as the study did.
        arch = space.coerce(drawn) if drawn is not None else benchmark.arch(key)
        index = space.index(arch)
        entries.append(ArchEntry(space.key(arch), position if index is None else index, arch, accuracy))
    return entries, benchmark.target


def build_options(config: CorrelateConfig) -> dict[str, Any]:
    """The options the run's space builds its networks with (see :meth:`MeasureSettings.build_options`)."""
    return config.build_options()


def network_factory(config: CorrelateConfig, num_classes: int) -> Callable[[ArchEntry], torch.nn.Module]:
    build = config.network_builder(num_classes)
    return lambda entry: build(entry.build)


@dataclass(frozen=True)
class CorrelateContext:
    """What every work item of a correlate run shares (see :mod:`ntknas.execution.executors`)."""

    config: CorrelateConfig
    num_classes: int
    batch: MeasurementBatch
    train_set: ImageDataset | None
    device: str

    def portable(self) -> CorrelateContext:
        """A copy with every tensor on the CPU, to send to other processes."""
        return replace(
            self,
            batch=MeasurementBatch(self.batch.inputs.cpu(), self.batch.targets.cpu()),
            train_set=None if self.train_set is None else self.train_set.to("cpu"),
        )

    def local(self) -> LocalCorrelateContext:
        device = resolve_device(self.device)  # checked where the items run (another machine, maybe)
        return LocalCorrelateContext(
            self.config,
            network_factory(self.config, self.num_classes),
            MeasurementBatch(self.batch.inputs.to(device), self.batch.targets.to(device)),
            None if self.train_set is None else self.train_set.to(device),
            device,
        )


@dataclass(frozen=True)
class LocalCorrelateContext:
    """A :class:`CorrelateContext` readied in the process that measures."""

    config: CorrelateConfig
    build: Callable[[ArchEntry], torch.nn.Module]
    batch: MeasurementBatch
    train_set: ImageDataset | None
    device: torch.device


def measure_item(context: LocalCorrelateContext, entry: ArchEntry, done: frozenset[str]) -> Iterator[ItemResult]:
    """The correlate work function: one architecture, every training stage not yet stored."""
    return measure_architecture(
        context.config, entry, context.build, context.batch, context.train_set, set(done), context.device
    )


def run_correlate(
    config: CorrelateConfig,
    *,
    entries: Sequence[ArchEntry] | None = None,
    train_set: ImageDataset | None = None,
    test_set: ImageDataset | None = None,
    executor: Executor | None = None,
    on_progress: ProgressHook | None = None,
    command_line: str | None = None,
) -> CorrelateOutcome:
    """Run (or resume) a correlate experiment and write its outputs into ``config.out``.

    ``entries`` and the datasets can be given directly (the built-in demo does); otherwise they
    come from ``config.benchmark`` and ``config.data_dir``. ``executor`` runs the work items
    (default: this process, or ``config.workers`` processes); ``on_progress(done, total, key)``
    is called as items finish; ``command_line`` is recorded for the summary.
    """
    started = time.perf_counter()
    if config.summary_only:  # the folder alone: its own settings and everything it holds
        from ntknas.runs.folder_summary import summarize_run_folder

        return summarize_run_folder(config, started)
    config = config.resolved(train_set.info if train_set is not None else dataset_info(config.dataset))
    runner = executor or make_executor(config.workers, config.device)
    device = runner.driver_device(config.device)  # where the shared data is readied
    if entries is None:
        entries, target = entries_and_target(config)
        config = replace(config, target=target)  # named in the summary even when defaulted
    entries = list(entries)
    with open_run(config.out, "correlate", config.store_settings(), runner=runner, device=device,
                  force=config.force, command_line=command_line,
                  meta={CONFIG_META: stored_config(config)}) as run:  # what --summary-only reads back
        done = run.store.done_items()
        pending = [e for e in entries if not all(k in done for k in _item_keys(config, e))]
        measured = 0
        if pending:
            data = LazyData(config.dataset, config.data_dir, device, train_set, test_set)
            tasks = [Task(e, frozenset(k for k in _item_keys(config, e) if k in done)) for e in pending]
            measured = run.map_and_commit(
                measure_item, _context(config, data), tasks, _commit_results(run.store),
                deadline=deadline_after(config.time_budget), on_progress=on_progress,
            )
        stopped_by_budget = measured < len(pending)
        if stopped_by_budget:
            log.warning("stopped by the time budget, %d of %d done; rerun to continue",
                        len(entries) - len(pending) + measured, len(entries))
        reported = _stored_entries(config, entries, run.store.done_items()) if stopped_by_budget else entries
        from ntknas.report.correlation import write_correlation_outputs

        files = write_correlation_outputs(run.store, config.summary_spec(), reported)
    return CorrelateOutcome(
        config=config, entries=reported, measured=measured, skipped=len(entries) - len(pending),
        seconds=time.perf_counter() - started, run_dir=Path(config.out), files=files,
        stopped_by_budget=stopped_by_budget, selected=len(entries),
    )


def _context(config: CorrelateConfig, data: LazyData) -> CorrelateContext:
    """What every work item shares: the one measurement batch, and the training split if the run trains."""
    trains = any(e > 0 for e in config.train_epochs)
    test_set = data.test if config.measured_on == "test_first" else None
    batch = _measurement_batch(config, data.train, test_set)
    return CorrelateContext(config, data.train.info.num_classes, batch, data.train if trains else None, config.device)


def _commit_results(store: ResultStore) -> Callable[[ArchEntry, Iterable[ItemResult]], None]:
    def commit(entry: ArchEntry, results: Iterable[ItemResult]) -> None:
        for result in results:
            store.commit_item(result.record, result.measurements, result.training)

    return commit


def _measurement_batch(
    config: CorrelateConfig, train_set: ImageDataset, test_set: ImageDataset | None
) -> MeasurementBatch:
    assert config.batch_size is not None and config.model_seed is not None
    if config.measured_on == "train_augmented":
        check_batch_fits(config.batch_size, len(train_set), f"{train_set.info.name} training images")
        inputs, targets = draw_batch(train_set, config.batch_size, seed=config.model_seed, augment=True)
    else:
        assert test_set is not None
        check_batch_fits(config.batch_size, len(test_set), f"{test_set.info.name} test images (runs that train measure on those)")
        inputs, targets = first_images(test_set, config.batch_size)
    return MeasurementBatch(inputs, targets)


def _item_keys(config: CorrelateConfig, entry: ArchEntry) -> list[str]:
    """The store keys of an architecture's work items, one per training stage."""
    return [_item_key(config, entry, epochs) for epochs in config.train_epochs]


def _stored_entries(config: CorrelateConfig, entries: Sequence[ArchEntry], done: set[str]) -> list[ArchEntry]:
    """The entries with at least one stage in the store: what a summary can report on."""
    return [e for e in entries if any(k in done for k in _item_keys(config, e))]


def _item_key(config: CorrelateConfig, entry: ArchEntry, train_epochs: int) -> str:
    return "|".join(
        [config.space, entry.key, config.dataset, config.protocol_tag, str(config.batch_size),
         str(config.model_seed), f"e{train_epochs}", ",".join(config.bn_modes), ",".join(config.metric_names)]
    )


@dataclass(frozen=True)
class ItemResult:
    """Everything one work item stores: committed together or not at all."""

    record: ItemRecord
    measurements: list[Measurement]
    training: list[TrainingRecord]


def measure_architecture(
    config: CorrelateConfig,
    entry: ArchEntry,
    build: Callable[[ArchEntry], torch.nn.Module],
    batch: MeasurementBatch,
    train_set: ImageDataset | None,
    done: set[str],
    device: torch.device,
) -> Iterator[ItemResult]:
    """Measure one architecture at each training stage, yielding one result per stage not done.

    A pure worker: it reads nothing from and writes nothing to the store, so an executor can run
    it anywhere (another GPU, another machine) and hand the results to the store's owner, which
    commits each as it arrives.
    """
    assert config.model_seed is not None and config.batch_size is not None
    started = time.perf_counter()
    torch.manual_seed(config.model_seed)
    net = build(entry).to(device)
    trainer = None
    diverged: str | None = None
    trained = 0
    training_rows: list[TrainingRecord] = []
    stage_started = started  # the first stage's time includes building the network
    for epochs in config.train_epochs:
        if epochs > trained and diverged is None:
            if trainer is None:
                assert train_set is not None, "a run that trains carries its training split"
                trainer = _make_trainer(net, train_set, config, device)
            diverged, records = _train_until(trainer, epochs - trained, config, entry)
            training_rows.extend(records)
            trained = epochs
        key = _item_key(config, entry, epochs)
        if key in done:
            stage_started = time.perf_counter()
            continue
        measurements, errors = _measure_stage(net, batch, config, entry, epochs, diverged, device)
        record = ItemRecord(
            item=key, space=config.space, arch=entry.key, arch_index=entry.index,
            train_epochs=epochs, accuracy=entry.accuracy,
            seconds=time.perf_counter() - stage_started,
            device=device_name(device),
            info=({"diverged": diverged} if diverged else {})
            | ({"stderr": errors} if any(errors.values()) else {})
            | ({"kernel": {"kind": config.kernel, "chosen_by_auto": config.kernel_choice}} if config.kernel_choice else {}),
        )
        yield ItemResult(record, measurements, training_rows)
        training_rows = []
        stage_started = time.perf_counter()


def _measure_stage(
    net: torch.nn.Module,
    batch: MeasurementBatch,
    config: CorrelateConfig,
    entry: ArchEntry,
    epochs: int,
    diverged: str | None,
    device: torch.device,
) -> tuple[list[Measurement], dict[str, dict[str, float]]]:
    """Every metric in every BN mode at one training stage (a diverged network's are missing,
    with the reason), and the standard errors of estimated values by BN mode."""
    assert config.model_seed is not None and config.batch_size is not None
    measurements = []
    errors: dict[str, dict[str, float]] = {}
    once: dict[str, MetricValue] = {}  # metrics that ignore the BN mode, measured in the first
    # Aggregates (az_nas) rank the whole set: the summary computes them from their components.
    names = per_network_metrics(config.metric_names)
    for bn_mode in config.bn_modes:
        if diverged is not None:
            values = {m: MetricValue(None, diverged) for m in names}
        else:
            fresh = _evaluate(net, batch, config, bn_mode, [m for m in names if m not in once])
            once.update({m: v for m, v in fresh.items() if not get_metric(m).uses_bn_mode})
            values = {m: fresh[m] if m in fresh else once[m] for m in names}
        errors.update({bn_mode: {m: v.stderr for m, v in values.items() if v.stderr is not None}})
        for metric, result in values.items():
            measurements.append(
                Measurement(
                    config.space, entry.key, config.dataset, bn_mode, epochs, config.model_seed,
                    config.batch_size, config.protocol_tag, metric, result.value, result.reason,
                    result.seconds, device_name(device),
                )
            )
    return measurements, errors


def _evaluate(
    net: torch.nn.Module, batch: MeasurementBatch, config: CorrelateConfig, bn_mode: str, metrics: Sequence[str]
) -> dict[str, MetricValue]:
    if not metrics:
        return {}
    try:
        return score_run(
            net, batch.inputs, batch.targets, metrics, bn_mode,
            params=config.params, strategy=config.strategy, chunk_size=config.chunk_size,
            kernel=config.kernel, estimator=config.estimator_settings, seed=config.model_seed or 0,
        ).values
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        reason = "out of GPU memory: rerun with a smaller --chunk-size"
        return {m: MetricValue(None, reason) for m in metrics}


def _make_trainer(net: torch.nn.Module, train_set: ImageDataset, config: CorrelateConfig, device: torch.device) -> Trainer:
    assert config.model_seed is not None
    return Trainer(net, train_set, TrainConfig(seed=config.model_seed, batch_size=config.train_batch_size), device)


def _train_until(
    trainer: Trainer, epochs: int, config: CorrelateConfig, entry: ArchEntry
) -> tuple[str | None, list[TrainingRecord]]:
    assert config.model_seed is not None
    try:
        stats = trainer.train_epochs(epochs)
    except TrainingDivergedError as error:
        return f"training diverged: {error}", []
    records = [
        TrainingRecord(config.space, entry.key, config.model_seed, s.epoch, s.train_loss, s.train_accuracy, s.seconds)
        for s in stats
    ]
    return None, records
