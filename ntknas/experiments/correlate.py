"""Experiments 1 and 2 (SPEC §3.1, §3.2): NTK metrics of many architectures vs their accuracy.

The run is a list of independent work items, one per (architecture, training stage). Each item
builds (or continues training) its network, measures every metric in every BatchNorm mode on the
run's one shared batch, and commits its rows to the store in one transaction. A rerun skips the
items already stored, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ntknas.data import DatasetInfo, ImageDataset, dataset_info, draw_batch, first_images, load_dataset
from ntknas.errors import DataError, NtknasError, UnknownNameError
from ntknas.experiments.progress import Progress
from ntknas.experiments.runtime import device_name, environment, resolve_device
from ntknas.experiments.score import MetricValue, evaluate_metrics
from ntknas.kernel import BN_MODES
from ntknas.metrics import parse_metric_list
from ntknas.spaces import build_network, check_space
from ntknas.store import ItemRecord, Measurement, ResultStore, TrainingRecord
from ntknas.train import TrainConfig, Trainer, TrainingDivergedError

PROTOCOLS = ("study", "zc")
DEFAULT_NTK_METRICS = ("knas", "tenas", "fnorm", "trace", "lga")


@dataclass(frozen=True)
class ArchEntry:
    """One architecture to measure: its store key, its position/index, how to build it, accuracy."""

    key: str
    index: int | None
    build: Any
    accuracy: float | None


@dataclass(frozen=True)
class CorrelateConfig:
    """Settings of a correlate run. ``None`` means "the protocol's default"."""

    space: str = "nb201"
    dataset: str = "cifar10"
    data_dir: str | None = None
    benchmark: str | None = None
    target: str | None = None
    archs: str | None = "0:1000"
    sample: int | None = None
    sample_seed: int = 0
    batch_size: int | None = None
    bn_modes: tuple[str, ...] = ("train", "eval")
    metrics: tuple[str, ...] = DEFAULT_NTK_METRICS
    train_epochs: tuple[int, ...] = (0,)
    out: str = "runs/correlate"
    device: str = "cpu"
    protocol: str = "study"
    seed: int | None = None
    variant: str = "study"
    params: str = "weights"
    strategy: str = "auto"
    chunk_size: int | None = None
    nb101_stem_channels: int = 128
    network_options: dict[str, Any] = field(default_factory=dict)
    train_batch_size: int = 1024
    force: bool = False
    summary_only: bool = False
    workers: int = 1
    time_budget: float | None = None

    def resolved(self, info: DatasetInfo) -> CorrelateConfig:
        """The config with protocol defaults filled in and every name checked."""
        check_space(self.space)
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
        if self.workers < 1:
            raise NtknasError(f"--workers must be at least 1, got {self.workers}")
        if self.time_budget is not None and self.time_budget < 0:
            raise NtknasError(f"--time-budget must be a number of seconds >= 0, got {self.time_budget:g}")
        batch_size, seed = protocol_defaults(self.protocol, self.space, info)
        return CorrelateConfig(
            **{
                **asdict(self),
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
    def protocol_tag(self) -> str:
        options = json.dumps(
            {"variant": self.variant, "params": self.params, "stem": self.nb101_stem_channels,
             "net": self.network_options, "train_batch": self.train_batch_size},
            sort_keys=True,
        )
        digest = hashlib.sha1(options.encode()).hexdigest()[:8]
        return f"{self.protocol}/{self.measured_on}/{digest}"

    def store_settings(self) -> dict[str, Any]:
        """What must match for two commands to share a run folder (not the arch selection)."""
        return {
            "space": self.space, "dataset": self.dataset, "protocol": self.protocol,
            "batch_size": self.batch_size, "seed": self.seed, "bn_modes": list(self.bn_modes),
            "metrics": list(self.metrics), "train_epochs": list(self.train_epochs),
            "variant": self.variant, "params": self.params,
            "nb101_stem_channels": self.nb101_stem_channels,
            "network_options": self.network_options, "train_batch_size": self.train_batch_size,
        }


def protocol_defaults(protocol: str, space: str, info: DatasetInfo) -> tuple[int, int]:
    """(batch size, seed) of a protocol: the study's (SPEC §3.1) or the zero-cost papers'."""
    if protocol == "zc":
        return 64, 42
    if space == "nb101":
        return 64, 1
    return info.default_batch_size, 42


@dataclass
class CorrelateOutcome:
    config: CorrelateConfig
    entries: list[ArchEntry]
    measured: int
    skipped: int
    seconds: float
    run_dir: Path
    files: list[Path] = field(default_factory=list)


@dataclass
class MeasurementBatch:
    inputs: torch.Tensor
    targets: torch.Tensor


def entries_from_benchmark(config: CorrelateConfig) -> list[ArchEntry]:
    """The architectures of ``--archs``/``--sample`` with their accuracy from ``--benchmark``."""
    from ntknas.experiments.selection import select_positions, take
    from ntknas.groundtruth import load_benchmark

    if not config.benchmark:
        raise DataError(
            "correlate needs --benchmark: a NAS-Bench-201 CSV/.pth or a NAS-Bench-101 table "
            "(see the README's 'Data' section for where to get them)"
        )
    benchmark = load_benchmark(config.benchmark, config.space, config.target)
    keys = benchmark.keys()
    positions = select_positions(len(keys), config.archs, config.sample, config.sample_seed)
    entries = []
    for position, key in zip(positions, take(keys, positions)):
        accuracy = benchmark.accuracy(key) if key in benchmark else None
        if config.space == "nb201":
            arch = benchmark.arch_string(key)
            entries.append(ArchEntry(arch, int(key), arch, accuracy))
        else:
            spec = benchmark.nb101_spec(key)
            entries.append(ArchEntry(str(key), position, spec, accuracy))
    return entries


def network_factory(config: CorrelateConfig, num_classes: int) -> Callable[[ArchEntry], torch.nn.Module]:
    def build(entry: ArchEntry) -> torch.nn.Module:
        if config.space == "nb201":
            return build_network("nb201", entry.build, num_classes, variant=config.variant, **config.network_options)
        if config.space == "nb101":
            return build_network(
                "nb101", entry.build, num_classes,
                stem_channels=config.nb101_stem_channels, **config.network_options,
            )
        return build_network("custom", entry.build, num_classes, **config.network_options)

    return build


def run_correlate(
    config: CorrelateConfig,
    *,
    entries: Sequence[ArchEntry] | None = None,
    train_set: ImageDataset | None = None,
    test_set: ImageDataset | None = None,
    show_progress: bool | None = None,
    command_line: str | None = None,
) -> CorrelateOutcome:
    """Run (or resume) a correlate experiment and write its outputs into ``config.out``.

    ``entries`` and the datasets can be given directly (the built-in demo does); otherwise they
    come from ``config.benchmark`` and ``config.data_dir``.
    """
    started = time.perf_counter()
    device = resolve_device(config.device)
    if train_set is None:
        info = dataset_info(config.dataset)
    else:
        info = train_set.info
    config = config.resolved(info)
    if entries is None:
        entries = entries_from_benchmark(config)
    entries = list(entries)
    run_dir = Path(config.out)
    with ResultStore(run_dir) as store:
        store.claim_settings("correlate", config.store_settings(), force=config.force)
        if not config.summary_only:  # the command that measured stays the one the summary names
            store.set_meta("last_command", command_line or " ".join(sys.argv))
            store.set_meta("environment", environment(device))
        done = store.done_items()
        measured = 0
        pending = [e for e in entries if not all(k in done for k in _item_keys(config, e))]
        if config.summary_only:
            # Summarize what is stored (e.g. while a long run is still going); measure nothing.
            entries = _stored_entries(config, entries, done)
            pending = []
        skipped = len(entries) - len(pending)
        if pending:
            if train_set is None:
                train_set = _require_data(config, "train", device)
            else:
                train_set = train_set.to(device)
            if config.measured_on == "test_first" and test_set is None:
                test_set = _require_data(config, "test", device)
            elif test_set is not None:
                test_set = test_set.to(device)
            batch = _measurement_batch(config, train_set, test_set)
            progress = Progress(len(pending), "archs", enabled=show_progress)
            deadline = None if config.time_budget is None else time.monotonic() + config.time_budget
            for entry, results in _measured_items(config, info.num_classes, pending, batch, train_set, done, device, deadline):
                for result in results:
                    store.commit_item(result.record, result.measurements, result.training)
                measured += 1
                progress.advance(entry.key)
            progress.close()
            if measured < len(pending):
                print(
                    f"time budget of {config.time_budget:g} s reached: {measured} of {len(pending)} "
                    "architectures measured; rerun the same command to continue",
                    file=sys.stderr,
                )
                entries = _stored_entries(config, entries, store.done_items())
        from ntknas.report.correlation import write_correlation_outputs

        files = write_correlation_outputs(store, config, entries)
    return CorrelateOutcome(
        config=config,
        entries=entries,
        measured=measured,
        skipped=skipped,
        seconds=time.perf_counter() - started,
        run_dir=run_dir,
        files=files,
    )


def _measured_items(
    config: CorrelateConfig,
    num_classes: int,
    pending: Sequence[ArchEntry],
    batch: MeasurementBatch,
    train_set: ImageDataset,
    done: set[str],
    device: torch.device,
    deadline: float | None,
) -> Iterator[tuple[ArchEntry, Iterable[ItemResult]]]:
    """Each pending architecture with its results: in this process, or in ``config.workers``
    worker processes. No architecture starts after ``deadline`` (a ``time.monotonic()`` value)."""
    if config.workers > 1:
        from concurrent.futures.process import BrokenProcessPool

        from ntknas.experiments.parallel import WorkerSetup, run_parallel, threads_per_worker

        trains = any(e > 0 for e in config.train_epochs)
        setup = WorkerSetup(
            config=config, num_classes=num_classes,
            batch=MeasurementBatch(batch.inputs.cpu(), batch.targets.cpu()),
            train_set=train_set.to("cpu") if trains else None,
            device=str(device), threads=threads_per_worker(config.workers, device),
        )
        done_by_entry = {e.key: frozenset(k for k in _item_keys(config, e) if k in done) for e in pending}
        _check_picklable(config, pending)
        try:
            yield from run_parallel(setup, pending, done_by_entry, config.workers, deadline)
        except BrokenProcessPool:
            raise NtknasError(
                "a worker process died (out of memory?): rerun with fewer --workers; stored results are kept"
            ) from None
        return
    build = network_factory(config, num_classes)
    for entry in pending:
        if deadline is not None and time.monotonic() >= deadline:
            return
        # Streamed, so each training stage is committed before the next one trains.
        yield entry, measure_architecture(config, entry, build, batch, train_set, done, device)


def _check_picklable(config: CorrelateConfig, entries: Sequence[ArchEntry]) -> None:
    """Worker processes receive the settings and each architecture pickled: refuse early, in one
    line, what cannot travel (e.g. a custom space's factory defined as a lambda). The tensors sent
    beside them always pickle, so they are not serialized twice here."""
    import pickle

    try:
        pickle.dumps(config)
        for entry in entries:
            pickle.dumps(entry)
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        raise NtknasError(
            f"--workers needs architectures that can be sent to another process ({error}): define "
            "custom factories at module level, or use --workers 1"
        ) from None


def _require_data(config: CorrelateConfig, split: str, device: torch.device) -> ImageDataset:
    if not config.data_dir:
        info = dataset_info(config.dataset)
        raise DataError(f"--data-dir is needed for {info.name}: download it from {info.source}")
    return load_dataset(config.dataset, config.data_dir, split=split, device=device)


def _measurement_batch(
    config: CorrelateConfig, train_set: ImageDataset, test_set: ImageDataset | None
) -> MeasurementBatch:
    assert config.batch_size is not None and config.seed is not None
    if config.measured_on == "train_augmented":
        inputs, targets = draw_batch(train_set, config.batch_size, seed=config.seed, augment=True)
    else:
        assert test_set is not None
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
    train_set: ImageDataset,
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
                trainer = _make_trainer(net, train_set, config, device)
            diverged, records = _train_until(trainer, epochs - trained, config, entry)
            training_rows.extend(records)
            trained = epochs
        key = _item_key(config, entry, epochs)
        if key in done:
            stage_started = time.perf_counter()
            continue
        measurements = []
        for bn_mode in config.bn_modes:
            if diverged is not None:
                values = {m: MetricValue(None, diverged) for m in config.metrics}
            else:
                values = _evaluate(net, batch, config, bn_mode)
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
            device=device_name(device), info={"diverged": diverged} if diverged else {},
        )
        yield ItemResult(record, measurements, training_rows)
        training_rows = []
        stage_started = time.perf_counter()


def _evaluate(net: torch.nn.Module, batch: MeasurementBatch, config: CorrelateConfig, bn_mode: str) -> dict[str, MetricValue]:
    try:
        return evaluate_metrics(
            net, batch.inputs, batch.targets, config.metrics, bn_mode,
            params=config.params, strategy=config.strategy, chunk_size=config.chunk_size,
        )
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        reason = "out of GPU memory: rerun with a smaller --chunk-size"
        return {m: MetricValue(None, reason) for m in config.metrics}


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
