"""Experiments 1 and 2 (SPEC §3.1, §3.2): NTK metrics of many architectures vs their accuracy.

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from ntknas.data import DatasetInfo, ImageDataset, dataset_info, draw_batch, first_images, load_for_run
from ntknas.errors import DataError, NtknasError, UnknownNameError
from ntknas.execution.executors import Executor, Task, make_executor
from ntknas.execution.progress import ProgressHook
from ntknas.execution.runtime import device_name, environment, resolve_device
from ntknas.scoring import MetricValue, evaluate_metrics
from ntknas.inputs.validation import check_batch_fits, check_settings
from ntknas.kernel import BN_MODES
from ntknas.kernel.matrix_free import DEFAULT_ESTIMATOR, DEFAULT_PROBES, EstimatorSettings
from ntknas.metrics import DEFAULT_METRICS, check_kernel_choice, get_metric, parse_metric_list
from ntknas.report.correlation import SummarySpec
from ntknas.spaces import get_space
from ntknas.spaces.init import INIT_SPACES, InitScheme, init_identity, initialize
from ntknas.store import ItemRecord, Measurement, ResultStore, TrainingRecord
from ntknas.train import TrainConfig, Trainer, TrainingDivergedError

log = logging.getLogger(__name__)

PROTOCOLS = ("study", "zc")
DEFAULT_NTK_METRICS = DEFAULT_METRICS  # the name an earlier release exported

_IDENTITY = {"identity": True}
"""Field metadata: the setting is part of the run's identity (which stored items a rerun reuses)."""


@dataclass(frozen=True)
class ArchEntry:
    """One architecture to measure: its store key, its position/index, how to build it, accuracy."""

    key: str
    index: int | None
    build: Any
    accuracy: float | None


@dataclass(frozen=True)
class CorrelateConfig:
    """Settings of a correlate run. ``None`` means "the protocol's default" until :meth:`resolved`
    fills it in. Fields marked identity make up :meth:`store_settings`: what two commands must
    agree on to share a run folder (the architecture selection is not among them).

    Seeds: ``sample_seed`` draws ``--sample`` (CLI ``--seed``); ``seed`` is the model and data
    seed (CLI ``--model-seed``).
    """

    space: str = field(default="nb201", metadata=_IDENTITY)
    dataset: str = field(default="cifar10", metadata=_IDENTITY)
    data_dir: str | None = None
    benchmark: str | None = None
    target: str | None = None
    archs: str | None = "0:1000"
    sample: int | None = None
    sample_seed: int = 0
    batch_size: int | None = field(default=None, metadata=_IDENTITY)
    bn_modes: tuple[str, ...] = field(default=("train", "eval"), metadata=_IDENTITY)
    metrics: tuple[str, ...] = field(default=DEFAULT_METRICS, metadata=_IDENTITY)
    train_epochs: tuple[int, ...] = field(default=(0,), metadata=_IDENTITY)
    out: str = "runs/correlate"
    device: str = "cpu"
    protocol: str = field(default="study", metadata=_IDENTITY)
    seed: int | None = field(default=None, metadata=_IDENTITY)
    variant: str = field(default="study", metadata=_IDENTITY)
    params: str = field(default="weights", metadata=_IDENTITY)
    strategy: str = "auto"
    chunk_size: int | None = None
    nb101_stem_channels: int = field(default=128, metadata=_IDENTITY)
    network_options: dict[str, Any] = field(default_factory=dict, metadata=_IDENTITY)
    train_batch_size: int = field(default=1024, metadata=_IDENTITY)
    force: bool = False
    summary_only: bool = False
    workers: int = 1
    time_budget: float | None = None
    init: str = "study"
    bias_init: str = "default"
    archs_file: str | None = None
    kernel: str = "exact"
    """``exact`` or ``matrix-free`` (knas, trace, fnorm, lga without the B×B kernel)."""
    probes: int = DEFAULT_PROBES
    """Matrix-free estimator size (random probes per estimate); ignored by the exact kernel."""
    estimator_seed: int = 0
    estimator: str = DEFAULT_ESTIMATOR

    @property
    def kernel_identity(self) -> dict[str, Any] | None:
        """The kernel settings that change stored values; None for the exact kernel, so run
        folders written before ``--kernel`` existed keep their identity."""
        if self.kernel == "exact":
            return None
        return {"kind": self.kernel, **self.estimator_settings.identity()}

    @property
    def estimator_settings(self) -> EstimatorSettings:
        return EstimatorSettings(probes=self.probes, seed=self.estimator_seed, estimator=self.estimator)

    def resolved(self, info: DatasetInfo) -> CorrelateConfig:
        """The config with protocol defaults filled in and every name checked."""
        space = get_space(self.space)
        if self.protocol not in PROTOCOLS:
            raise UnknownNameError(f"unknown protocol {self.protocol!r}: use one of {', '.join(PROTOCOLS)}")
        for mode in self.bn_modes:
            if mode not in BN_MODES:
                raise UnknownNameError(f"unknown BatchNorm mode {mode!r} in --bn: use train, eval or train,eval")
        if not self.bn_modes:
            raise UnknownNameError("--bn names no mode: use train, eval or train,eval")
        epochs = tuple(sorted(set(self.train_epochs)))
        if not epochs or epochs[0] < 0:
            raise NtknasError(f"--train-epochs must list epoch counts >= 0, got {self.train_epochs}")
        check_settings(self)
        InitScheme(self.init, self.bias_init)  # refuse unknown names before any work
        check_kernel_choice(self.kernel, parse_metric_list(self.metrics))
        self.estimator_settings  # noqa: B018 -- refuses a bad --probes before any work
        batch_size, seed = protocol_defaults(self.protocol, space.name, info)
        return CorrelateConfig(
            **{
                **asdict(self),
                "space": space.name,
                "metrics": tuple(parse_metric_list(self.metrics)),
                "train_epochs": epochs,
                "batch_size": self.batch_size or batch_size,
                "seed": seed if self.seed is None else self.seed,
                "dataset": info.name,
            }
        )

    @property
    def measured_on(self) -> str:
        """Which batch the metrics see: the study's augmented training batch at initialization
        (§3.1), or, when the run trains, the first images of the unshuffled test split (§3.2) —
        at every stage, epoch 0 included, so the stages are comparable."""
        return "train_augmented" if self.train_epochs == (0,) else "test_first"

    @property
    def init_identity(self) -> str | None:
        """The effective initialization's name, None for PyTorch's (see :func:`init_identity`)."""
        return init_identity(self.space, self.init, self.bias_init)

    @property
    def protocol_tag(self) -> str:
        tagged: dict[str, Any] = {
            "variant": self.variant, "params": self.params, "stem": self.nb101_stem_channels,
            "net": self.network_options, "train_batch": self.train_batch_size,
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
        settings = {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.metadata.get("identity")}
        if self.init_identity is not None:
            settings["init"] = self.init_identity
        if self.kernel_identity is not None:
            settings["kernel"] = self.kernel_identity
        return settings

    def summary_spec(self) -> SummarySpec:
        """The settings as the report needs them (the report imports no experiment code)."""
        assert self.batch_size is not None and self.seed is not None, "summarize a resolved config"
        return SummarySpec(
            space=self.space, dataset=self.dataset, protocol=self.protocol, protocol_tag=self.protocol_tag,
            measured_on=self.measured_on, batch_size=self.batch_size, seed=self.seed, variant=self.variant,
            params=self.params, benchmark=self.benchmark, target=self.target, metrics=tuple(self.metrics),
            bn_modes=tuple(self.bn_modes), train_epochs=tuple(self.train_epochs),
            directions={m: get_metric(m).higher_is_better for m in self.metrics},
            initialization=self.init_identity or "PyTorch default",
        )


CONFIG_META = "correlate_config"
"""The store's record of the resolved settings of the run that last measured into the folder."""


def stored_config(config: CorrelateConfig) -> dict[str, Any]:
    """The resolved config as plain JSON, less what only concerns one invocation."""
    once = {"out", "force", "summary_only", "workers", "time_budget", "device"}
    return {f.name: _plain(getattr(config, f.name)) for f in fields(config) if f.name not in once}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def protocol_defaults(protocol: str, space: str, info: DatasetInfo) -> tuple[int, int]:
    """(batch size, seed) of a protocol: the zero-cost papers' (batch 64, seed 42), or the
    study's, which is the space's (SPEC §3.1: NB101 batch 64 seed 1; else the dataset's batch)."""
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
    from ntknas.inputs.archs_file import ListedArch, check_known, read_archs_file
    from ntknas.inputs.selection import select_positions, take
    from ntknas.groundtruth import load_benchmark

    if not config.benchmark:
        raise DataError(
            "correlate needs --benchmark: a NAS-Bench-201 CSV/.pth or a NAS-Bench-101 table "
            "(see the README's 'Data' section for where to get them)"
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
    """The options the run's space builds its networks with: the space's defaults, the CLI's
    ``--variant`` / ``--nb101-stem-channels`` where the space takes them, ``network_options``."""
    space = get_space(config.space)
    options = space.options_with(variant=config.variant, stem_channels=config.nb101_stem_channels)
    if space.name in INIT_SPACES:
        options |= {"init": config.init, "bias_init": config.bias_init}
    return options | dict(config.network_options)


def network_factory(config: CorrelateConfig, num_classes: int) -> Callable[[ArchEntry], torch.nn.Module]:
    space = get_space(config.space)
    options = build_options(config)

    def build(entry: ArchEntry) -> torch.nn.Module:
        network = space.build(entry.build, num_classes, **options)
        if space.name not in INIT_SPACES:  # a user's space: initialized here, after its builder
            initialize(network, space.name, config.init, config.bias_init)
        return network

    return build


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
    if train_set is None:
        info = dataset_info(config.dataset)
    else:
        info = train_set.info
    config = config.resolved(info)
    runner = executor or make_executor(config.workers, config.device)
    device = runner.driver_device(config.device)  # where the shared data is readied
    if entries is None:
        entries, target = entries_and_target(config)
        config = replace(config, target=target)  # named in the summary even when defaulted
    entries = list(entries)
    run_dir = Path(config.out)
    with ExitStack() as stack:
        stack.enter_context(runner)  # e.g. joins a cluster: a failure here stores nothing
        store = stack.enter_context(ResultStore(run_dir))
        store.claim_settings("correlate", config.store_settings(), force=config.force)
        store.set_meta("last_command", command_line or "")
        store.set_meta("environment", environment(device) | {"executor": runner.name})
        store.set_meta(CONFIG_META, stored_config(config))  # what --summary-only reads back
        done = store.done_items()
        measured = 0
        pending = [e for e in entries if not all(k in done for k in _item_keys(config, e))]
        selected = len(entries)
        skipped = len(entries) - len(pending)
        stopped_by_budget = False
        if pending:
            if train_set is None:
                train_set = load_for_run(config.dataset, config.data_dir, "train", device)
            else:
                train_set = train_set.to(device)
            if config.measured_on == "test_first" and test_set is None:
                test_set = load_for_run(config.dataset, config.data_dir, "test", device)
            elif test_set is not None:
                test_set = test_set.to(device)
            trains = any(e > 0 for e in config.train_epochs)
            context = CorrelateContext(
                config, info.num_classes, _measurement_batch(config, train_set, test_set),
                train_set if trains else None, config.device,
            )
            tasks = [Task(e, frozenset(k for k in _item_keys(config, e) if k in done)) for e in pending]
            deadline = None if config.time_budget is None else time.monotonic() + config.time_budget
            if on_progress is not None:
                on_progress(0, len(pending), "")
            for entry, results in runner.map(measure_item, context, tasks, deadline):
                for result in results:
                    store.commit_item(result.record, result.measurements, result.training)
                measured += 1
                if on_progress is not None:
                    on_progress(measured, len(pending), entry.key)
            if measured < len(pending):
                stopped_by_budget = True
                log.warning("stopped by the time budget, %d of %d done; rerun to continue", skipped + measured, selected)
                entries = _stored_entries(config, entries, store.done_items())
        from ntknas.report.correlation import write_correlation_outputs

        files = write_correlation_outputs(store, config.summary_spec(), entries)
    return CorrelateOutcome(
        config=config,
        entries=entries,
        measured=measured,
        skipped=skipped,
        seconds=time.perf_counter() - started,
        run_dir=run_dir,
        files=files,
        stopped_by_budget=stopped_by_budget,
        selected=selected,
    )


def _measurement_batch(
    config: CorrelateConfig, train_set: ImageDataset, test_set: ImageDataset | None
) -> MeasurementBatch:
    assert config.batch_size is not None and config.seed is not None
    if config.measured_on == "train_augmented":
        check_batch_fits(config.batch_size, len(train_set), f"{train_set.info.name} training images")
        inputs, targets = draw_batch(train_set, config.batch_size, seed=config.seed, augment=True)
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
         str(config.seed), f"e{train_epochs}", ",".join(config.bn_modes), ",".join(config.metrics)]
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
    assert config.seed is not None and config.batch_size is not None
    started = time.perf_counter()
    torch.manual_seed(config.seed)
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
        measurements = []
        errors: dict[str, dict[str, float]] = {}
        once: dict[str, MetricValue] = {}  # metrics that ignore the BN mode, measured in the first
        for bn_mode in config.bn_modes:
            if diverged is not None:
                values = {m: MetricValue(None, diverged) for m in config.metrics}
            else:
                fresh = _evaluate(net, batch, config, bn_mode, [m for m in config.metrics if m not in once])
                once.update({m: v for m, v in fresh.items() if not get_metric(m).uses_bn_mode})
                values = {m: fresh[m] if m in fresh else once[m] for m in config.metrics}
            errors.update({bn_mode: {m: v.stderr for m, v in values.items() if v.stderr is not None}})
            for metric, result in values.items():
                measurements.append(
                    Measurement(
                        config.space, entry.key, config.dataset, bn_mode, epochs, config.seed,
                        config.batch_size, config.protocol_tag, metric, result.value, result.reason,
                        result.seconds, device_name(device),
                    )
                )
        record = ItemRecord(
            item=key, space=config.space, arch=entry.key, arch_index=entry.index,
            train_epochs=epochs, accuracy=entry.accuracy,
            seconds=time.perf_counter() - stage_started,
            device=device_name(device),
            info=({"diverged": diverged} if diverged else {})
            | ({"stderr": errors} if any(errors.values()) else {}),
        )
        yield ItemResult(record, measurements, training_rows)
        training_rows = []
        stage_started = time.perf_counter()


def _evaluate(
    net: torch.nn.Module, batch: MeasurementBatch, config: CorrelateConfig, bn_mode: str, metrics: Sequence[str]
) -> dict[str, MetricValue]:
    if not metrics:
        return {}
    try:
        return evaluate_metrics(
            net, batch.inputs, batch.targets, metrics, bn_mode,
            params=config.params, strategy=config.strategy, chunk_size=config.chunk_size,
            kernel=config.kernel, estimator=config.estimator_settings,
        )
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        reason = "out of GPU memory: rerun with a smaller --chunk-size"
        return {m: MetricValue(None, reason) for m in metrics}


def _make_trainer(net: torch.nn.Module, train_set: ImageDataset, config: CorrelateConfig, device: torch.device) -> Trainer:
    assert config.seed is not None
    return Trainer(net, train_set, TrainConfig(seed=config.seed, batch_size=config.train_batch_size), device)


def _train_until(
    trainer: Trainer, epochs: int, config: CorrelateConfig, entry: ArchEntry
) -> tuple[str | None, list[TrainingRecord]]:
    assert config.seed is not None
    try:
        stats = trainer.train_epochs(epochs)
    except TrainingDivergedError as error:
        return f"training diverged: {error}", []
    records = [
        TrainingRecord(config.space, entry.key, config.seed, s.epoch, s.train_loss, s.train_accuracy, s.seconds)
        for s in stats
    ]
    return None, records
