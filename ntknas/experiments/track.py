"""Experiment 3 (SPEC §3.3): how far each architecture's kernel moves away from its initial kernel.

For every architecture: build the network under the model seed, compute the full per-logit NTK
Θ_0 (eval mode, all parameters) of the first S images of the label-sorted training batch, train
with the §3.2 recipe, and after every ``every`` epochs compute Θ_t on the same images and record
its distance to Θ_0 next to the training loss/accuracy and the parameter norm.

Resuming: after each measured epoch the rows are committed to the store and then the trainer's
state and Θ_0 are written to ``RUN_DIR/checkpoints/`` (temporary file + ``os.replace``). A kill
between the two only repeats that step on rerun, which on a CPU reproduces the same numbers
bit for bit. The last checkpoint of a finished architecture is kept, so a rerun with a larger
``--epochs`` continues training instead of starting over.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ntknas.data import ImageDataset, dataset_info, label_sorted_batch, load_dataset
from ntknas.errors import DataError, InvalidArchError, NtknasError, UnknownNameError
from ntknas.experiments.runtime import environment, resolve_device
from ntknas.experiments.selection import parse_positions
from ntknas.spaces import build_network
from ntknas.spaces import nb201
from ntknas.store import ResultStore

KERNEL_QUANTITIES = ("rel_diff_ref", "rel_diff", "kernel_corr", "kernel_cos")
TRAINING_QUANTITIES = ("train_loss", "train_acc", "param_norm")
QUANTITIES = KERNEL_QUANTITIES + TRAINING_QUANTITIES
"""What every measured epoch records, in track.csv column order."""
TIMING_QUANTITIES = ("train_seconds", "kernel_seconds")
"""Stored beside the quantities: wall time of the training since the last measurement, and of Θ_t."""

REFERENCE_EPSILON = 1e-4
"""The reference implementation's guard against division by zero in the element-wise ratio."""

ARCHS_META = "track_archs"
"""Store meta key: the run's architectures, in the order they were added, with status."""
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FORMAT = 1


# ----------------------------------------------------------------------------------------------
# Kernel distances (pure functions)
# ----------------------------------------------------------------------------------------------


def _pair(theta_0: Any, theta_t: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.as_tensor(theta_0, dtype=torch.float64)
    b = torch.as_tensor(theta_t, dtype=torch.float64, device=a.device)
    if a.shape != b.shape:
        raise NtknasError(
            f"kernels of different shapes {tuple(a.shape)} and {tuple(b.shape)}: compare kernels of the same images"
        )
    return a, b


def relative_difference_reference(theta_0: Any, theta_t: Any, epsilon: float = REFERENCE_EPSILON) -> float:
    """‖ |Θ_0 − Θ_t| ⊘ (|Θ_0| + ε) ‖_F, the element-wise form the reference implementation reported.

    Entries of Θ_0 near zero dominate it (each is divided by about ε), so it measures the change
    of the small entries far more than that of the kernel as a whole.
    """
    a, b = _pair(theta_0, theta_t)
    return float(torch.linalg.vector_norm((a - b).abs() / (a.abs() + epsilon)))


def relative_difference(theta_0: Any, theta_t: Any) -> float:
    """‖Θ_t − Θ_0‖_F / ‖Θ_0‖_F; NaN when Θ_0 is zero."""
    a, b = _pair(theta_0, theta_t)
    scale = float(torch.linalg.vector_norm(a))
    if scale == 0.0:
        return math.nan
    return float(torch.linalg.vector_norm(b - a)) / scale


def kernel_correlation(theta_0: Any, theta_t: Any) -> float:
    """Pearson correlation of the entries of Θ_0 and Θ_t; NaN when either has constant entries."""
    a, b = _pair(theta_0, theta_t)
    x = a.reshape(-1) - a.mean()
    y = b.reshape(-1) - b.mean()
    denominator = float(torch.linalg.vector_norm(x)) * float(torch.linalg.vector_norm(y))
    if denominator == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float(x @ y) / denominator))  # rounding can step past ±1


def kernel_cosine(theta_0: Any, theta_t: Any) -> float:
    """⟨Θ_0, Θ_t⟩_F / (‖Θ_0‖_F ‖Θ_t‖_F); NaN when either kernel is zero."""
    a, b = _pair(theta_0, theta_t)
    denominator = float(torch.linalg.vector_norm(a)) * float(torch.linalg.vector_norm(b))
    if denominator == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float((a * b).sum()) / denominator))  # Cauchy–Schwarz bound


def kernel_distances(theta_0: Any, theta_t: Any) -> dict[str, float]:
    """All four kernel quantities of :data:`KERNEL_QUANTITIES`, by name."""
    return {
        "rel_diff_ref": relative_difference_reference(theta_0, theta_t),
        "rel_diff": relative_difference(theta_0, theta_t),
        "kernel_corr": kernel_correlation(theta_0, theta_t),
        "kernel_cos": kernel_cosine(theta_0, theta_t),
    }


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
        raise InvalidArchError(f"--band {text!r} is malformed: {_BAND_FIX}")
    try:
        low, high = float(parts[1]), float(parts[2])
    except ValueError:
        raise InvalidArchError(f"--band {text!r} has bounds that are not numbers: {_BAND_FIX}") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InvalidArchError(f"--band {text!r} needs finite bounds: {_BAND_FIX}")
    if low > high:
        raise InvalidArchError(f"--band {text!r} has LOW > HIGH: write the smaller bound first")
    return Band(parts[0].strip(), low, high)


def parse_arch_list(text: str) -> list[nb201.NB201Arch]:
    """NB201 architectures from ``--archs``: indices, ranges START:STOP, 6-digit op codes, arch strings.

    Parts are separated by commas. A number of 6 digits is op codes (an index has at most 5);
    any other number is an official index.
    """
    chosen: dict[str, nb201.NB201Arch] = {}
    for raw in str(text).split(","):
        part = raw.strip()
        if not part:
            continue
        if ":" in part and "|" not in part:
            archs = [nb201.arch_from_index(i) for i in parse_positions(part, nb201.NB201_NUM_ARCHS)]
        elif part.isdigit() and len(part) != 6:
            archs = [nb201.arch_from_index(int(part))]
        else:
            archs = [nb201.parse_arch(part)]
        for arch in archs:
            chosen.setdefault(arch.op_codes, arch)
    if not chosen:
        raise InvalidArchError(f"--archs {text!r} names no architecture: use e.g. 6111,1 or 0:4")
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
    """Settings of a track run (SPEC §3.3). The defaults are the study's."""

    space: str = "nb201"
    dataset: str = "cifar10"
    data_dir: str | None = None
    benchmark: str | None = None
    target: str | None = None
    archs: str | None = None
    band: str | None = None
    sample: int | None = None
    sample_seed: int = 42
    epochs: int = 100
    every: int = 1
    samples: int = 1
    out: str = "runs/track"
    device: str = "cpu"
    variant: str = "study"
    network_options: dict[str, Any] = field(default_factory=dict)
    train_batch_size: int = 1024
    model_seed: int = 42
    data_seed: int = 42
    strategy: str = "batched"
    chunk_size: int | None = None
    force: bool = False

    def check(self) -> None:
        """Refuse settings that cannot describe a tracking run, with one-line errors."""
        from ntknas.kernel.ntk import STRATEGIES

        if self.space != "nb201":
            raise UnknownNameError(f"track supports --space nb201 only, got {self.space!r}")
        if self.strategy not in STRATEGIES:
            raise UnknownNameError(f"unknown kernel strategy {self.strategy!r}: use batched or loop")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise NtknasError(f"--chunk-size must be a positive integer, got {self.chunk_size}")
        for name, minimum in (("epochs", 0), ("every", 1), ("samples", 1), ("train_batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                flag = "--" + name.replace("_", "-")
                raise NtknasError(f"{flag} must be an integer >= {minimum}, got {value!r}")
        if self.sample is not None and self.sample < 1:
            raise InvalidArchError(f"--sample must be at least 1, got {self.sample}")

    def measured_epochs(self) -> list[int]:
        """0, every, 2·every, … and always the last epoch."""
        return sorted(set(range(0, self.epochs + 1, self.every)) | {self.epochs})

    def store_settings(self) -> dict[str, Any]:
        """What must match for two commands to share a run folder.

        Neither the architecture selection nor the number of epochs is part of it: a rerun may
        add architectures or train the same ones longer.
        """
        return {
            "space": self.space, "dataset": dataset_info(self.dataset).name, "every": self.every,
            "samples": self.samples, "model_seed": self.model_seed, "data_seed": self.data_seed,
            "variant": self.variant, "network_options": self.network_options,
            "train_batch_size": self.train_batch_size, "kernel": "full per-logit, eval BN, all parameters",
        }


def select_track_archs(config: TrackConfig) -> list[TrackArch]:
    """The architectures of ``--archs`` or ``--band`` (optionally a seeded ``--sample``), with accuracies."""
    config.check()
    if config.archs is None and config.band is None and config.sample is None:
        raise InvalidArchError("track needs --archs (e.g. 6111,1) or --band COLUMN:LOW:HIGH with --sample K")
    if config.archs is not None and config.band is not None:
        raise InvalidArchError("--archs and --band both given: choose the architectures one way")
    if config.band is not None:
        parse_band(config.band)  # a malformed band is reported before the benchmark is read
        if not config.benchmark:
            raise DataError("--band needs --benchmark: the NB201 CSV whose column the band refers to")
    benchmark = None
    if config.benchmark:
        from ntknas.groundtruth import load_benchmark

        benchmark = load_benchmark(config.benchmark, "nb201", config.target)
    if config.band is not None:
        assert benchmark is not None
        band = parse_band(config.band)
        column = benchmark.with_target(band.column)
        if config.target is None:
            benchmark = column  # the band's column is then also the accuracy shown
        values = column.columns[band.column]
        inside = np.isfinite(values) & (values >= band.low) & (values <= band.high)
        pool = [int(k) for k in column.row_keys[inside].tolist()]
        if not pool:
            finite = values[np.isfinite(values)]
            span = f"{finite.min():g}..{finite.max():g}" if finite.size else "no values"
            raise InvalidArchError(
                f"no architecture has {band.column} in [{band.low:g}, {band.high:g}] "
                f"(the column spans {span}): widen --band"
            )
        archs = [nb201.arch_from_index(i) for i in pool]
        where = f"the band {config.band}"
    elif config.archs is not None:
        archs = parse_arch_list(config.archs)
        where = "--archs"
    else:
        archs = list(nb201.all_archs())
        where = "NAS-Bench-201"
    if config.sample is not None:
        if config.sample > len(archs):
            raise InvalidArchError(
                f"--sample {config.sample} is more than the {len(archs)} architectures of {where}: "
                "lower --sample or widen the selection"
            )
        picked = np.random.default_rng(config.sample_seed).choice(len(archs), size=config.sample, replace=False)
        archs = [archs[i] for i in sorted(picked.tolist())]
    entries = []
    for arch in archs:
        index = nb201.index_of(arch)
        accuracy = None
        if benchmark is not None and index in benchmark:
            accuracy = benchmark.accuracy(index)
        entries.append(TrackArch(arch.to_string(), index, accuracy, benchmark.target if benchmark else None))
    return entries


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
    show_progress: bool | None = None,
    command_line: str | None = None,
) -> TrackOutcome:
    """Run (or resume) a kernel-tracking experiment and write its outputs into ``config.out``.

    ``archs`` and ``train_set`` can be given directly; otherwise they come from the config's
    selection and ``config.data_dir``. Progress lines go to stderr unless ``show_progress`` is False.
    """
    started = time.perf_counter()
    config.check()
    device = resolve_device(config.device)
    info = train_set.info if train_set is not None else dataset_info(config.dataset)
    entries = list(archs) if archs is not None else select_track_archs(config)
    settings = config.store_settings() | {"dataset": info.name}
    run_dir = Path(config.out)
    diverged: list[str] = []
    with ResultStore(run_dir) as store:
        store.claim_settings("track", settings, force=config.force)
        store.set_meta("last_command", command_line or " ".join(sys.argv))
        store.set_meta("environment", environment(device))
        store.set_meta("track_selection", {
            "archs": config.archs, "band": config.band, "sample": config.sample,
            "sample_seed": config.sample_seed, "benchmark": config.benchmark, "epochs": config.epochs,
        })
        _register(store, entries)
        epochs = config.measured_epochs()
        status = {record["arch"]: record for record in store.get_meta(ARCHS_META) or []}
        stored = store.tracked_epochs()
        pending = [
            e for e in entries
            if status[e.key].get("status") != "diverged" and not set(epochs) <= stored.get(e.key, set())
        ]
        for entry in entries:
            if entry not in pending and status[entry.key].get("status") == "running":
                _set_status(store, entry.key, "done")
        if pending:
            if train_set is None:
                if not config.data_dir:
                    raise DataError(f"--data-dir is needed for {info.name}: download it from {info.source}")
                train_set = load_dataset(info.name, config.data_dir, split="train", device=device)
            else:
                train_set = train_set.to(device)
            batch = min(info.default_batch_size, len(train_set))
            if config.samples > batch:
                raise DataError(
                    f"--samples {config.samples} is more than the label-sorted batch of {batch} images: "
                    f"use --samples {batch} or fewer"
                )
            inputs, _ = label_sorted_batch(train_set, config.samples, seed=config.data_seed, batch_size=batch)
            for number, entry in enumerate(pending, start=1):
                label = f"[{number}/{len(pending)} #{entry.index}" + (
                    f" acc {entry.accuracy:.2f}]" if entry.accuracy is not None else "]"
                )
                outcome = _track_architecture(
                    config, settings, entry, inputs, train_set, store, device, label, show_progress is not False
                )
                if outcome is not None:
                    diverged.append(entry.key)
        from ntknas.report.tracking import write_tracking_outputs

        files = write_tracking_outputs(store)
    return TrackOutcome(
        config=config, archs=entries, tracked=len(pending), skipped=len(entries) - len(pending),
        diverged=diverged, seconds=time.perf_counter() - started, run_dir=run_dir, files=files,
    )


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


def checkpoint_path(run_dir: Path, entry: TrackArch) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"nb201_{entry.index:05d}.pt"


def _save_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """Write atomically: a kill leaves either the old checkpoint or the new one, never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as handle:
        torch.save(dict(payload), handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


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
            "delete it to restart that architecture, or use another --out folder"
        )
    return state


def _track_architecture(
    config: TrackConfig,
    settings: Mapping[str, Any],
    entry: TrackArch,
    inputs: torch.Tensor,
    train_set: ImageDataset,
    store: ResultStore,
    device: torch.device,
    label: str,
    verbose: bool,
) -> str | None:
    """Track one architecture to ``config.epochs``; returns the divergence reason, or None."""
    from ntknas.kernel import full_ntk
    from ntknas.train import TrainConfig, Trainer, TrainingDivergedError, parameter_norm

    _set_status(store, entry.key, "running")
    torch.manual_seed(config.model_seed)
    net = build_network(
        "nb201", entry.key, train_set.info.num_classes, variant=config.variant, **config.network_options
    ).to(device)
    trainer = Trainer(net, train_set, TrainConfig(seed=config.model_seed, batch_size=config.train_batch_size), device)
    path = checkpoint_path(store.run_dir, entry)
    wanted = _checkpoint_settings(settings)

    def kernel() -> tuple[torch.Tensor, float]:
        begin = time.perf_counter()
        theta = full_ntk(net, inputs, bn_mode="eval", params="all", chunk_size=config.chunk_size, strategy=config.strategy)
        return theta, time.perf_counter() - begin

    def commit(epoch: int, theta_0: torch.Tensor, values: dict[str, float | None]) -> None:
        rows = {name: (None if value is None or not math.isfinite(value) else float(value)) for name, value in values.items()}
        store.commit_tracking(entry.key, epoch, rows)
        # Rows first, then the checkpoint: a checkpoint at epoch e implies the rows up to e exist.
        _save_checkpoint(path, {
            "format": CHECKPOINT_FORMAT, "arch": entry.key, "settings": wanted,
            "trainer": trainer.state_dict(), "theta_0": theta_0.detach().cpu(),
        })

    state = _load_checkpoint(path, entry, wanted)
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        theta_0 = state["theta_0"].to(device)
    else:
        theta_0, seconds = kernel()
        values = kernel_distances(theta_0, theta_0) | {
            "train_loss": None, "train_acc": None, "param_norm": parameter_norm(net),
            "train_seconds": 0.0, "kernel_seconds": seconds,
        }
        commit(0, theta_0, values)
        _log(verbose, label, 0, config.epochs, values, seconds)
    for epoch in config.measured_epochs():
        if epoch <= trainer.epoch:
            continue
        begin = time.perf_counter()
        try:
            stats = trainer.train_epochs(epoch - trainer.epoch)
        except TrainingDivergedError as error:
            reason = str(error)
            _set_status(store, entry.key, "diverged", reason)
            if verbose:
                print(f"{label} {reason}; going on with the next architecture", file=sys.stderr, flush=True)
            return reason
        train_seconds = time.perf_counter() - begin
        theta_t, kernel_seconds = kernel()
        values = kernel_distances(theta_0, theta_t) | {
            "train_loss": stats[-1].train_loss, "train_acc": stats[-1].train_accuracy,
            "param_norm": parameter_norm(net), "train_seconds": train_seconds, "kernel_seconds": kernel_seconds,
        }
        commit(epoch, theta_0, values)
        _log(verbose, label, epoch, config.epochs, values, train_seconds + kernel_seconds)
    _set_status(store, entry.key, "done")
    return None


def _log(verbose: bool, label: str, epoch: int, epochs: int, values: Mapping[str, Any], seconds: float) -> None:
    if not verbose:
        return

    def show(name: str, spec: str, unit: str = "") -> str:
        value = values.get(name)
        return "n/a" if value is None or not math.isfinite(value) else format(value, spec) + unit

    print(
        f"{label} epoch {epoch}/{epochs}: rel_diff {show('rel_diff', '.4f')}, "
        f"corr {show('kernel_corr', '.4f')}, cos {show('kernel_cos', '.4f')}, "
        f"loss {show('train_loss', '.4f')}, acc {show('train_acc', '.2f', '%')}, "
        f"|θ| {show('param_norm', '.2f')} ({seconds:.1f} s)",
        file=sys.stderr,
        flush=True,
    )
