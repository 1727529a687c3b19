"""Experiment 3 (docs/protocol.md): how far each architecture's kernel moves away from its initial kernel.

For every architecture: build the network under the model seed, compute the full per-logit NTK
Θ_0 (eval mode, all parameters) of the first S images of the label-sorted training batch, train
with the §3.2 recipe, and after every ``every`` epochs compute Θ_t on the same images and record
its distance to Θ_0 next to the training loss/accuracy and the parameter norm. With S > 1 each
image's Jacobian comes from its own forward pass by default (``forward="per-image"``, the
study's), since the study cells' BatchNorm keeps no running statistics and a joint forward would
couple the images.

Resuming: after each measured epoch the rows are committed to the store and then the trainer's
state and Θ_0 are written to ``RUN_DIR/checkpoints/`` (temporary file + ``os.replace``). A kill
between the two only repeats that step on rerun, which on a CPU reproduces the same numbers
bit for bit. The last checkpoint of a finished architecture is kept, so a rerun with a larger
``--epochs`` continues training instead of starting over.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ntknas.data import ImageDataset, dataset_info, label_sorted_batch
from ntknas.errors import DataError, InvalidArchError, UnknownNameError, option
from ntknas.execution.executors import Executor, Task, make_executor
from ntknas.execution.progress import ProgressHook
from ntknas.execution.runtime import resolve_device
from ntknas.files import atomic_binary
from ntknas.groundtruth import Benchmark
from ntknas.inputs import validation as check
from ntknas.inputs.selection import parse_positions
from ntknas.kernel.distances import kernel_distances
from ntknas.kernel.ntk import FORWARDS
from ntknas.report.tracking import ARCHS_META
from ntknas.runs.skeleton import LazyData, open_run
from ntknas.settings import INIT_HELP, check_fields, network_builder, setting
from ntknas.spaces import SearchSpace, get_space
from ntknas.spaces.init import BIAS_INITS, WEIGHT_INITS, init_identity
from ntknas.store import ResultStore

if TYPE_CHECKING:
    from ntknas.groundtruth import Benchmark

log = logging.getLogger(__name__)

TRACKED_KERNEL = "full per-logit, eval BN, all parameters"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FORMAT = 1


# ----------------------------------------------------------------------------------------------
# Which architectures
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """Architectures whose benchmark ``column`` lies in [low, high]."""

    column: str
    low: float
    high: float


_BAND_FIX = "use COLUMN:LOW:HIGH such as cifar10_test:92.4:92.9"


def parse_band(text: str) -> Band:
    """Parse ``COLUMN:LOW:HIGH``."""
    parts = str(text).rsplit(":", 2)
    if len(parts) != 3 or not parts[0].strip():
        raise InvalidArchError(f"{option('band')} {text!r} is malformed: {_BAND_FIX}")
    try:
        low, high = float(parts[1]), float(parts[2])
    except ValueError:
        raise InvalidArchError(f"{option('band')} {text!r} has bounds that are not numbers: {_BAND_FIX}") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InvalidArchError(f"{option('band')} {text!r} needs finite bounds: {_BAND_FIX}")
    if low > high:
        raise InvalidArchError(f"{option('band')} {text!r} has LOW > HIGH: write the smaller bound first")
    return Band(parts[0].strip(), low, high)


def parse_arch_list(text: str, space: str | SearchSpace = "nb201") -> list[Any]:
    """Architectures from ``--archs``: positions, ranges START:STOP, or the space's own spelling
    (NB201: arch strings and 6-digit op codes), comma-separated.

    A part is read in the space's spelling first; a number it does not accept is a position in
    the official order (for NB201: 6 digits are op codes, an index has at most 5).
    """
    search_space = get_space(space)
    total = search_space.size()
    chosen: dict[str, Any] = {}
    for raw in str(text).split(","):
        part = raw.strip()
        if not part:
            continue
        if ":" in part and "|" not in part and total is not None:
            archs = [search_space.arch_at(i) for i in parse_positions(part, total)]
        elif part.isascii() and part.isdigit() and total is not None:  # not "²"
            try:
                archs = [search_space.parse(part)]
            except InvalidArchError:
                archs = [search_space.arch_at(int(part))]
        else:
            archs = [search_space.parse(part)]
        for arch in archs:
            chosen.setdefault(search_space.key(arch), arch)
    if not chosen:
        raise InvalidArchError(f"{option('archs')} {text!r} names no architecture: use e.g. 6111,1 or 0:4")
    return list(chosen.values())


@dataclass(frozen=True)
class TrackArch:
    """One architecture of a tracking run: its store key (arch string), index and accuracy."""

    key: str
    index: int
    accuracy: float | None = None
    target: str | None = None


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackConfig:
    """Settings of a track run (see docs/protocol.md, "Experiment 3"). The defaults are the study's. Fields marked identity
    make up :meth:`store_settings`; neither the architecture selection nor the number of epochs
    is among them, so a rerun may add architectures or train the same ones longer.

    Seeds: ``sample_seed`` draws ``--sample`` (CLI ``--seed``); ``model_seed`` seeds the network
    and its training (CLI ``--model-seed``); ``data_seed`` draws the label-sorted batch.
    """

    space: str = setting("nb201", flag="--space", parse=check.nonempty_text, identity=True,
                         help="a space with an official order (default nb201)")
    dataset: str = setting("cifar10", flag="--dataset", parse=check.nonempty_text, identity=True,
                           help="cifar10 | cifar100 | ImageNet16-120 | digits (built in, no download)")
    data_dir: str | None = setting(None, flag="--data-dir", parse=check.nonempty_text,
                                   help="folder with the dataset in its official format")
    benchmark: str | None = setting(None, flag="--benchmark", parse=check.nonempty_text,
                                    help="NB201 CSV/.pth: accuracies to colour the curves by (needed for --band)")
    target: str | None = setting(None, flag="--target", parse=check.nonempty_text,
                                 help="accuracy column (default: the --band column, else cifar10_valid_test)")
    archs: str | None = setting(
        None, flag="--archs", parse=check.nonempty_text,
        help="NB201 indices, ranges START:STOP, 6-digit op codes or arch strings, comma-separated, e.g. 6111,1",
    )
    band: str | None = setting(
        None, flag="--band", parse=check.nonempty_text,
        help="COLUMN:LOW:HIGH: architectures whose --benchmark column lies in [LOW, HIGH], e.g. cifar10_test:92.4:92.9",
    )
    sample: int | None = setting(None, flag="--sample", parse=check.positive_int,
                                 help="track a seeded random sample of K architectures of --band (or --archs, or all)")
    sample_seed: int = setting(42, flag="--seed", parse=check.seed, help="seed of --sample (default 42)")
    epochs: int = setting(100, flag="--epochs", parse=check.nonnegative_int, help="training epochs (default 100, the study's)")
    every: int = setting(1, flag="--every", parse=check.positive_int, identity=True,
                         help="measure the kernel every k epochs (default 1)")
    samples: int = setting(1, flag="--samples", parse=check.positive_int, identity=True,
                           help="images in the kernel (default 1: a C×C kernel)")
    out: str = setting("runs/track", flag="--out", parse=check.nonempty_text,
                       help="run folder (results.sqlite, track.csv, plots, checkpoints/)")
    device: str = setting("cpu", flag="--device", parse=check.nonempty_text, help="cpu | cuda | cuda:N")
    variant: str = setting("study", flag="--variant", choices=("study", "benchmark"), identity=True,
                           help="NB201 network variant (default study)")
    network_options: Mapping[str, Any] = setting(default_factory=dict, identity=True)
    train_batch_size: int = setting(1024, flag="--train-batch-size", parse=check.positive_int, identity=True,
                                    help="SGD batch size (default 1024, the study's)")
    model_seed: int = setting(42, flag="--model-seed", parse=check.seed, identity=True,
                              help="network and training seed (default 42)")
    data_seed: int = setting(42, parse=check.seed, identity=True)
    strategy: str = setting("batched", flag="--strategy", parse=check.nonempty_text,
                            help="kernel strategy: batched | loop (default batched; both exact and deterministic)")
    chunk_size: int | None = setting(None, flag="--chunk-size", parse=check.positive_int,
                                     help="kernel rows computed at once (bounds memory)")
    force: bool = setting(False, flag="--force", action="store_true", help="write into a run folder that holds other settings")
    workers: int = setting(1, flag="--workers", parse=check.positive_int,
                           help="architectures tracked at once in worker processes sharing the device (default 1)")
    init: str = setting("study", flag="--init", choices=WEIGHT_INITS, help=INIT_HELP)
    bias_init: str = setting("default", flag="--bias-init", choices=BIAS_INITS,
                             help="conv and linear biases: default (as --init leaves them) | zero")
    archs_file: str | None = setting(
        None, flag="--archs-file", parse=check.nonempty_text,
        help="the NB201 architectures FILE lists, one index/arch string/op codes per line, in its order",
    )
    forward: str = setting(
        "per-image", flag="--forward", choices=FORWARDS,
        help="with --samples > 1: each image's Jacobian from its own forward pass (per-image, the study's; "
             "default) or one forward of all images (batch; batch-statistics BatchNorm then couples them)",
    )

    def __post_init__(self) -> None:
        check_fields(self)

    def check(self) -> None:
        """Refuse settings that cannot describe a tracking run, with one-line errors (the values
        themselves were checked on construction)."""
        from ntknas.kernel.ntk import STRATEGIES

        if get_space(self.space).size() is None:
            raise UnknownNameError(
                f"track needs a space whose architectures have an official order (e.g. nb201), got {self.space!r}"
            )
        if self.strategy not in STRATEGIES:
            raise UnknownNameError(f"unknown kernel strategy {self.strategy!r}: use batched or loop")

    def measured_epochs(self) -> list[int]:
        """0, every, 2·every, … and always the last epoch."""
        return sorted(set(range(0, self.epochs + 1, self.every)) | {self.epochs})

    def store_settings(self) -> dict[str, Any]:
        """What must match for two commands to share a run folder: the identity fields (the
        dataset by its canonical name) and the kernel that is tracked."""
        settings = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("identity")}
        settings["network_options"] = dict(self.network_options)
        settings |= {"dataset": dataset_info(self.dataset).name, "kernel": TRACKED_KERNEL}
        # Named only where they change the kernel, so folders written before the options existed
        # keep their identity: with one image both forward modes are one kernel, and every older
        # folder was measured with PyTorch's initialization.
        if self.samples > 1:
            settings["forward"] = self.forward
        initialization = init_identity(self.space, self.init, self.bias_init)
        if initialization is not None:
            settings["init"] = initialization
        return settings


def select_track_archs(config: TrackConfig) -> list[TrackArch]:
    """The architectures of ``--archs`` or ``--band`` (optionally a seeded ``--sample``), with accuracies."""
    config.check()
    space = get_space(config.space)
    if config.archs is None and config.band is None and config.sample is None and config.archs_file is None:
        raise InvalidArchError(
            f"track needs {option('archs')} (e.g. 6111,1), {option('archs_file')} FILE or {option('band')} COLUMN:LOW:HIGH with {option('sample')} K"
        )
    if sum(choice is not None for choice in (config.archs, config.band, config.archs_file)) > 1:
        raise InvalidArchError(f"{option('archs')}, {option('archs_file')} and {option('band')}: choose the architectures one way")
    if config.band is not None:
        parse_band(config.band)  # a malformed band is reported before the benchmark is read
        if not config.benchmark:
            raise DataError(f"{option('band')} needs {option('benchmark')}: the NB201 CSV whose column the band refers to")
    benchmark = None
    if config.benchmark:
        from ntknas.groundtruth import load_benchmark

        benchmark = load_benchmark(config.benchmark, config.space, config.target)
    if config.band is not None:
        assert benchmark is not None
        archs, benchmark = _band_archs(config, config.band, benchmark)
        where = f"the band {config.band}"
    elif config.archs is not None:
        archs = parse_arch_list(config.archs, space)
        where = option("archs")
    elif config.archs_file is not None:
        from ntknas.inputs.archs_file import read_archs_file

        archs = [space.coerce(listed.key) for listed in read_archs_file(config.archs_file, space.name)]
        where = f"{option('archs_file')} {config.archs_file}"
    else:
        archs = list(space.archs())
        where = space.title
    if config.sample is not None:
        if config.sample > len(archs):
            raise InvalidArchError(
                f"{option('sample')} {config.sample} is more than the {len(archs)} architectures of {where}: "
                f"lower {option('sample')} or widen the selection"
            )
        picked = np.random.default_rng(config.sample_seed).choice(len(archs), size=config.sample, replace=False)
        archs = [archs[i] for i in sorted(picked.tolist())]
    entries = []
    for arch in archs:
        index = space.index(arch)
        assert index is not None  # check() admits only spaces with an official order
        key = space.key(arch)
        accuracy = benchmark.accuracy(key) if benchmark is not None and key in benchmark else None
        entries.append(TrackArch(key, index, accuracy, benchmark.target if benchmark else None))
    return entries


def _band_archs(config: TrackConfig, text: str, benchmark: Benchmark) -> tuple[list[Any], Benchmark]:
    """The architectures whose band column lies in the band, and the benchmark whose accuracy
    is shown (the band's column, unless --target names another)."""
    band = parse_band(text)
    column = benchmark.with_target(band.column)
    values = column.columns[band.column]
    inside = np.isfinite(values) & (values >= band.low) & (values <= band.high)
    pool = column.row_keys[inside].tolist()
    if not pool:
        finite = values[np.isfinite(values)]
        span = f"{finite.min():g}..{finite.max():g}" if finite.size else "no values"
        raise InvalidArchError(
            f"no architecture has {band.column} in [{band.low:g}, {band.high:g}] "
            f"(the column spans {span}): widen {option('band')}"
        )
    return [column.arch(key) for key in pool], (column if config.target is None else benchmark)


def track_build_options(config: TrackConfig) -> dict[str, Any]:
    """The space's build options with ``--variant`` where the space takes it, and ``network_options``."""
    return get_space(config.space).options_with(variant=config.variant) | dict(config.network_options)


# ----------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------


@dataclass
class TrackOutcome:
    config: TrackConfig
    archs: list[TrackArch]
    tracked: int
    skipped: int
    diverged: list[str]
    seconds: float
    run_dir: Path
    files: list[Path] = field(default_factory=list)


def run_track(
    config: TrackConfig,
    *,
    archs: Sequence[TrackArch] | None = None,
    train_set: ImageDataset | None = None,
    executor: Executor | None = None,
    on_progress: ProgressHook | None = None,
    command_line: str | None = None,
) -> TrackOutcome:
    """Run (or resume) a kernel-tracking experiment and write its outputs into ``config.out``.

    ``archs`` and ``train_set`` can be given directly; otherwise they come from the config's
    selection and ``config.data_dir``. ``executor`` runs the architectures (default: this
    process, or ``config.workers`` processes); per-epoch lines go to the ``ntknas`` logger and
    ``on_progress(done, total, key)`` is called as architectures finish.
    """
    started = time.perf_counter()
    config.check()
    runner = executor or make_executor(config.workers, config.device)
    device = runner.driver_device(config.device)  # where the shared data is readied
    info = train_set.info if train_set is not None else dataset_info(config.dataset)
    entries = list(archs) if archs is not None else select_track_archs(config)
    settings = config.store_settings() | {"dataset": info.name}
    diverged: list[str] = []
    with open_run(config.out, "track", settings, runner=runner, device=device, force=config.force,
                  command_line=command_line, meta={"track_selection": _selection(config)}) as run:
        pending = _pending(run.store, config, entries)
        if pending:
            data = LazyData(info.name, config.data_dir, device, train=train_set)
            context = TrackContext(config, _checkpoint_settings(settings), _kernel_inputs(config, data.train),
                                   data.train, config.device)
            tasks = [
                Task(TrackTask(entry, _load_checkpoint(checkpoint_path(run.run_dir, entry, config.space), entry,
                                                       context.settings)))
                for entry in pending
            ]
            run.map_and_commit(track_item, context, tasks, _commit_arch(run.store, config, len(pending), diverged),
                               on_progress=on_progress, label=lambda task: task.entry.key)
        from ntknas.report.tracking import write_tracking_outputs

        files = write_tracking_outputs(run.store)
    return TrackOutcome(
        config=config, archs=entries, tracked=len(pending), skipped=len(entries) - len(pending),
        diverged=diverged, seconds=time.perf_counter() - started, run_dir=Path(config.out), files=files,
    )


def _selection(config: TrackConfig) -> dict[str, Any]:
    return {
        "archs": config.archs, "archs_file": config.archs_file, "band": config.band, "sample": config.sample,
        "sample_seed": config.sample_seed, "benchmark": config.benchmark, "epochs": config.epochs,
    }


def _pending(store: ResultStore, config: TrackConfig, entries: Sequence[TrackArch]) -> list[TrackArch]:
    """The architectures not tracked to every measured epoch (a diverged one is done); those
    finished by an earlier run that was stopped before marking them are marked done."""
    _register(store, entries)
    epochs = set(config.measured_epochs())
    status = {record["arch"]: record for record in store.get_meta(ARCHS_META) or []}
    stored = store.tracked_epochs()
    pending = [
        e for e in entries if status[e.key].get("status") != "diverged" and not epochs <= stored.get(e.key, set())
    ]
    for entry in entries:
        if entry not in pending and status[entry.key].get("status") == "running":
            _set_status(store, entry.key, "done")
    return pending


def _kernel_inputs(config: TrackConfig, train_set: ImageDataset) -> torch.Tensor:
    """The label-sorted images whose kernel is tracked."""
    batch = min(train_set.info.default_batch_size, len(train_set))
    if config.samples > batch:
        raise DataError(
            f"{option('samples')} {config.samples} is more than the label-sorted batch of {batch} images: "
            f"use {option('samples')} {batch} or fewer"
        )
    inputs, _ = label_sorted_batch(train_set, config.samples, seed=config.data_seed, batch_size=batch)
    return inputs


def _commit_arch(
    store: ResultStore, config: TrackConfig, total: int, diverged: list[str]
) -> Callable[[TrackTask, Iterable[TrackStep]], None]:
    """Commit an architecture's epochs as they arrive, then mark it done or diverged."""
    finished = [0]

    def commit(task: TrackTask, steps: Iterable[TrackStep]) -> None:
        entry = task.entry
        _set_status(store, entry.key, "running")
        label = f"[{finished[0] + 1}/{total} #{entry.index}" + (
            f" acc {entry.accuracy:.2f}]" if entry.accuracy is not None else "]"
        )
        reason = _commit_steps(store, config, entry, steps, label)
        if reason is None:
            _set_status(store, entry.key, "done")
        else:
            _set_status(store, entry.key, "diverged", reason)
            diverged.append(entry.key)
        finished[0] += 1

    return commit


def _commit_steps(
    store: ResultStore, config: TrackConfig, entry: TrackArch, steps: Iterable[TrackStep], label: str
) -> str | None:
    """Commit each measured epoch, then its checkpoint; the divergence reason, or None."""
    path = checkpoint_path(store.run_dir, entry, config.space)
    for step in steps:
        if step.diverged is not None:
            log.info("%s %s; going on with the next architecture", label, step.diverged)
            return step.diverged
        rows = {
            name: (None if value is None or not math.isfinite(value) else float(value))
            for name, value in step.values.items()
        }
        store.commit_tracking(entry.key, step.epoch, rows)
        # Rows first, then the checkpoint: a checkpoint at epoch e implies the rows up to e exist.
        _save_checkpoint(path, step.checkpoint)
        _log(label, step.epoch, config.epochs, step.values)
    return None


def _register(store: ResultStore, entries: Sequence[TrackArch]) -> None:
    """Add new architectures to the run's list; refresh the accuracy of known ones."""
    records = store.get_meta(ARCHS_META) or []
    by_key = {record["arch"]: record for record in records}
    for entry in entries:
        record = by_key.get(entry.key)
        if record is None:
            record = {"arch": entry.key, "index": entry.index, "status": "pending", "reason": None}
            records.append(record)
            by_key[entry.key] = record
        if entry.accuracy is not None or "accuracy" not in record:
            record["accuracy"] = entry.accuracy
            record["target"] = entry.target
    store.set_meta(ARCHS_META, records)


def _set_status(store: ResultStore, arch: str, status: str, reason: str | None = None) -> None:
    records = store.get_meta(ARCHS_META) or []
    for record in records:
        if record["arch"] == arch:
            record["status"] = status
            record["reason"] = reason
    store.set_meta(ARCHS_META, records)


def checkpoint_path(run_dir: Path, entry: TrackArch, space: str = "nb201") -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"{space}_{entry.index:05d}.pt"


def _save_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """Write atomically: a kill leaves either the old checkpoint or the new one, never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_binary(path) as handle:
        torch.save(dict(payload), handle)


def _checkpoint_settings(settings: Mapping[str, Any]) -> Any:
    """The settings as a checkpoint stores them (through JSON, so tuples compare as lists)."""
    return json.loads(json.dumps(dict(settings), sort_keys=True))


def _load_checkpoint(path: Path, entry: TrackArch, wanted: Any) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a torn or foreign file
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(
            f"checkpoint {path} is unreadable ({first[:120]}): delete it to restart that architecture"
        ) from None
    if (
        not isinstance(state, dict)
        or state.get("format") != CHECKPOINT_FORMAT
        or state.get("arch") != entry.key
        or state.get("settings") != wanted
    ):
        raise DataError(
            f"checkpoint {path} was written for another architecture or other settings: "
            f"delete it to restart that architecture, or use another {option('out')} folder"
        )
    return state


@dataclass(frozen=True)
class TrackTask:
    """One architecture to track, with the checkpoint to resume from (None: start at epoch 0)."""

    entry: TrackArch
    resume: dict[str, Any] | None = None


@dataclass(frozen=True)
class TrackStep:
    """One measured epoch: its values and the checkpoint after it; or the divergence reason."""

    epoch: int
    values: dict[str, float | None] = field(default_factory=dict)
    checkpoint: dict[str, Any] = field(default_factory=dict)
    diverged: str | None = None


@dataclass(frozen=True)
class TrackContext:
    """What every tracked architecture shares (see :mod:`ntknas.execution.executors`)."""

    config: TrackConfig
    settings: Any
    inputs: torch.Tensor
    train_set: ImageDataset
    device: str

    def portable(self) -> TrackContext:
        return replace(self, inputs=self.inputs.cpu(), train_set=self.train_set.to("cpu"))

    def local(self) -> TrackContext:
        device = resolve_device(self.device)  # checked where the items run (another machine, maybe)
        return replace(self, inputs=self.inputs.to(device), train_set=self.train_set.to(device))


def track_item(context: TrackContext, task: TrackTask, done: frozenset[str]) -> Iterator[TrackStep]:
    """The track work function: train one architecture to ``config.epochs``, yielding each
    measured epoch (from the task's checkpoint on) and stopping at a divergence."""
    from ntknas.kernel import full_ntk
    from ntknas.train import TrainConfig, Trainer, TrainingDivergedError, parameter_norm

    config, entry, device = context.config, task.entry, torch.device(context.device)
    torch.manual_seed(config.model_seed)
    build = network_builder(config.space, context.train_set.info.num_classes, track_build_options(config),
                            config.init, config.bias_init)
    net = build(entry.key).to(device)
    trainer = Trainer(net, context.train_set, TrainConfig(seed=config.model_seed, batch_size=config.train_batch_size), device)

    def kernel() -> tuple[torch.Tensor, float]:
        begin = time.perf_counter()
        theta = full_ntk(
            net, context.inputs, bn_mode="eval", params="all", chunk_size=config.chunk_size,
            strategy=config.strategy, forward=config.forward,
        )
        return theta, time.perf_counter() - begin

    def checkpoint(theta_0: torch.Tensor) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT, "arch": entry.key, "settings": context.settings,
            "trainer": trainer.state_dict(), "theta_0": theta_0.detach().cpu(),
        }

    if task.resume is not None:
        trainer.load_state_dict(task.resume["trainer"])
        theta_0 = task.resume["theta_0"].to(device)
    else:
        theta_0, seconds = kernel()
        values: dict[str, float | None] = dict(kernel_distances(theta_0, theta_0))
        values["norm_ratio"] = norm_ratio(theta_0, theta_0)
        values.update(train_loss=None, train_acc=None, param_norm=parameter_norm(net), train_seconds=0.0,
                      kernel_seconds=seconds)
        yield TrackStep(0, values, checkpoint(theta_0))
    for epoch in config.measured_epochs():
        if epoch <= trainer.epoch:
            continue
        begin = time.perf_counter()
        try:
            stats = trainer.train_epochs(epoch - trainer.epoch)
        except TrainingDivergedError as error:
            yield TrackStep(epoch, diverged=str(error))
            return
        train_seconds = time.perf_counter() - begin
        theta_t, kernel_seconds = kernel()
        values = dict(kernel_distances(theta_0, theta_t), norm_ratio=norm_ratio(theta_0, theta_t))
        values.update(train_loss=stats[-1].train_loss, train_acc=stats[-1].train_accuracy,
                      param_norm=parameter_norm(net), train_seconds=train_seconds, kernel_seconds=kernel_seconds)
        yield TrackStep(epoch, values, checkpoint(theta_0))


def norm_ratio(theta_0: torch.Tensor, theta_t: torch.Tensor) -> float:
    """‖Θ_t‖_F / ‖Θ_0‖_F (NaN when Θ_0 is zero): how much the kernel grew or collapsed. Beside the
    relative difference it tells a kernel that moved from one that shrank: when ‖Θ_t‖ ≪ ‖Θ_0‖ the
    relative difference sits at about 1 whatever the architecture, this ratio still ranks them."""
    scale = float(torch.linalg.vector_norm(theta_0.double()))
    return math.nan if scale == 0.0 else float(torch.linalg.vector_norm(theta_t.double())) / scale


def _log(label: str, epoch: int, epochs: int, values: Mapping[str, Any]) -> None:
    def show(name: str, spec: str, unit: str = "") -> str:
        value = values.get(name)
        return "n/a" if value is None or not math.isfinite(value) else format(value, spec) + unit

    seconds = (values.get("train_seconds") or 0.0) + (values.get("kernel_seconds") or 0.0)
    log.info(
        "%s epoch %d/%d: rel_diff %s, norm ratio %s, corr %s, cos %s, loss %s, acc %s, |θ| %s (%.1f s)",
        label, epoch, epochs, show("rel_diff", ".4f"), show("norm_ratio", ".4g"), show("kernel_corr", ".4f"),
        show("kernel_cos", ".4f"),
        show("train_loss", ".4f"), show("train_acc", ".2f", "%"), show("param_norm", ".2f"), seconds,
    )
