"""``ntknas score``: one architecture, one batch, every requested metric."""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ntknas.data import DatasetInfo, dataset_info, draw_batch, load_for_run, normalize
from ntknas.errors import DataError, InvalidArchError, NtknasError, option
from ntknas.execution.runtime import device_name, resolve_device
from ntknas.inputs.validation import check_batch_fits, flagged, nonempty_text, optional, positive_int
from ntknas.inputs.validation import seed as check_seed
from ntknas.kernel.matrix_free import DEFAULT_ESTIMATOR, DEFAULT_PROBES
from ntknas.metrics import DEFAULT_METRICS, get_metric, parse_metric_list
from ntknas.scoring import MetricValue, score_run
from ntknas.settings import KernelSettings, network_builder
from ntknas.spaces import get_space

BUILTIN_BATCH_SIZE = 64


@dataclass
class ScoreOutcome:
    space: str
    arch: str
    index: int | None
    batch: str
    bn_mode: str
    strategy: str
    device: str
    seconds: float
    values: dict[str, MetricValue]
    estimator: dict[str, Any] | None = None
    """The matrix-free kernel's estimator settings; None for the exact kernel."""
    kernel_choice: str | None = None
    """Why ``--kernel auto`` chose the kernel it did; None when the kernel was named."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "space": self.space, "arch": self.arch, "index": self.index, "batch": self.batch,
            "bn": self.bn_mode, "kernel_strategy": self.strategy, "device": self.device,
            "seconds": round(self.seconds, 4),
            "metrics": {name: v.value for name, v in self.values.items()},
            "missing": {name: v.reason for name, v in self.values.items() if v.missing},
            **({} if self.estimator is None else {
                "kernel": self.estimator,
                "stderr": {name: v.stderr for name, v in self.values.items() if v.stderr is not None},
            }),
            **({} if self.kernel_choice is None else {"kernel_choice": self.kernel_choice}),
        }

    def as_text(self) -> str:
        lines = [
            f"architecture: {self.arch}" + (f" (index {self.index})" if self.index is not None else ""),
            f"batch: {self.batch}; BatchNorm: {self.bn_mode}; kernel strategy: {self.strategy}; "
            f"device: {self.device}; {self.seconds:.2f} s",
        ]
        if self.kernel_choice is not None:
            kind = "exact" if self.estimator is None else "matrix-free"
            lines.append(f"--kernel auto chose {kind}: {self.kernel_choice}")
        if self.estimator is not None:
            lines.append(
                f"matrix-free kernel: {self.estimator['estimator']}, {self.estimator['probes']} probes, "
                f"seed {self.estimator['seed']}; ± is one standard error of the estimate"
            )
        lines += ["", f"{'metric':<12} {'value':>16}  ranks by"]
        for name, value in self.values.items():
            direction = {True: "higher", False: "lower", None: "-"}[get_metric(name).higher_is_better]
            shown = f"{value.value:>16.6g}" if not value.missing else f"{'missing':>16}"
            error = f"  ± {value.stderr:.3g}" if value.stderr is not None else ""
            lines.append(f"{name:<12} {shown}  {direction}{error}" + (f"  ({value.reason})" if value.missing else ""))
        return "\n".join(lines)


def resolve_architecture(
    space: str, arch: str | None, index: int | None, benchmark: str | None
) -> tuple[Any, str, int | None]:
    """(the architecture, its key, its index) from the CLI's arch options: ``--index`` in the
    space's official order, ``--arch`` in the space's spelling (or a key of ``--benchmark``, such
    as an NB101 hash), or the space's default architecture."""
    search_space = get_space(space)
    if index is not None:
        chosen = search_space.arch_at(index)
    elif arch is None and search_space.default_arch is not None:
        chosen = search_space.parse(search_space.default_arch)
    elif arch is None:
        raise InvalidArchError(f"{option('space')} {search_space.name} needs {option('arch')}: {search_space.arch_help}")
    else:
        try:
            chosen = search_space.parse(arch)
        except InvalidArchError:
            if not benchmark:
                raise
            from ntknas.groundtruth import load_benchmark

            chosen = load_benchmark(benchmark, search_space.name).arch(arch)
    return chosen, search_space.key(chosen), search_space.index(chosen)


def load_batch_file(path: str, info: DatasetInfo | None, batch_size: int | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A batch from an .npz with uint8 ``images`` (N,H,W,3) and integer ``labels``."""
    file = Path(path)
    if info is None:
        raise NtknasError(
            f"{option('batch_file')} needs {option('dataset')} (cifar10, cifar100, ImageNet16-120 or digits): the class "
            "count and the normalization come from it"
        )
    if not file.is_file():
        raise DataError(f"batch file {path} not found: give an .npz with uint8 'images' (N,H,W,3) and 'labels'")
    try:
        with np.load(file, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
    except KeyError as error:
        raise DataError(f"batch file {path} lacks the array {error}: it needs 'images' and 'labels'") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        reason = "the file is empty" if file.stat().st_size == 0 else f"{type(error).__name__}: {error}"
        raise DataError(f"cannot read batch file {path} ({reason}): give an .npz written by numpy.savez") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"'images' in {path} must be uint8 (N,H,W,3), got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"'labels' in {path} must be N integers, got {labels.dtype} {labels.shape}")
    if images.shape[0] == 0:
        raise DataError(f"batch file {path} holds no images: a kernel needs at least 2")
    outside = (labels < 0) | (labels >= info.num_classes)
    if outside.any():
        raise DataError(
            f"'labels' in {path} must lie in 0..{info.num_classes - 1} ({info.name} has {info.num_classes} "
            f"classes), found {int(labels[outside][0])}: fix the labels or choose the matching {option('dataset')}"
        )
    if batch_size:
        check_batch_fits(batch_size, len(labels), f"images in {path}")
        images, labels = images[:batch_size], labels[:batch_size]
    tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return normalize(tensor, info), torch.from_numpy(labels.astype(np.int64)), info.num_classes


def _score_batch(
    dataset: str | None, data_dir: str | None, batch_file: str | None, batch_size: int | None, seed: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, int, str]:
    """(inputs, labels, class count, a description) of the batch the score command measures on:
    a batch file, an augmented batch drawn from a dataset, or the built-in digits."""
    if batch_file:
        info = dataset_info(dataset) if dataset else None
        inputs, targets, num_classes = load_batch_file(batch_file, info, batch_size)
        description = f"{len(targets)} images from {batch_file}"
    elif dataset:
        train = load_for_run(dataset, data_dir, "train", device=device)
        size = batch_size or train.info.default_batch_size
        check_batch_fits(size, len(train), f"{train.info.name} training images")
        inputs, targets = draw_batch(train, size, seed=seed, augment=True)
        num_classes = train.info.num_classes
        description = f"{size} augmented {train.info.name} training images (seed {seed})"
    else:
        from ntknas.data.digits import load_digits_dataset

        train, _ = load_digits_dataset(image_size=32, device=device)
        size = batch_size or BUILTIN_BATCH_SIZE
        check_batch_fits(size, len(train), "built-in digits training images")
        inputs, targets = draw_batch(train, size, seed=seed, augment=True)
        num_classes = train.info.num_classes
        description = f"{size} built-in handwritten digits (scikit-learn), upsampled to 32×32"
    return inputs, targets, num_classes, description


def _check_inputs(
    seed: int, batch_size: int | None, arch: str | None, batch_file: str | None, dataset: str | None
) -> None:
    """Refuse the values no score can take, before any work."""
    flagged("seed", check_seed, seed)
    optional("batch_size", positive_int, batch_size)
    optional("arch", nonempty_text, arch)
    optional("batch_file", nonempty_text, batch_file)
    optional("dataset", nonempty_text, dataset)
    if batch_file and not dataset:
        load_batch_file(batch_file, None, batch_size)  # refuses: the file needs a dataset


def score_architecture(
    *,
    space: str = "nb201",
    arch: str | None = None,
    index: int | None = None,
    benchmark: str | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    batch_file: str | None = None,
    batch_size: int | None = None,
    bn_mode: str = "train",
    metrics: str | Sequence[str] = DEFAULT_METRICS,
    params: str = "weights",
    variant: str = "study",
    strategy: str = "auto",
    chunk_size: int | None = None,
    seed: int = 42,
    device: str = "cpu",
    init: str = "study",
    bias_init: str = "default",
    kernel: str = "exact",
    probes: int = DEFAULT_PROBES,
    estimator_seed: int = 0,
    estimator: str = DEFAULT_ESTIMATOR,
    on_stage: Callable[[str], None] | None = None,
) -> ScoreOutcome:
    """Score one architecture on one batch; ``on_stage(text)`` is told each stage as it starts
    (the exact kernel with train-mode BatchNorm takes one backward pass per image: minutes at
    batch 256 on a CPU)."""
    stage = on_stage or (lambda text: None)
    _check_inputs(seed, batch_size, arch, batch_file, dataset)
    kernel_settings = KernelSettings(kernel=kernel, strategy=strategy, chunk_size=chunk_size, probes=probes,
                                     estimator=estimator, estimator_seed=estimator_seed)
    names = parse_metric_list(metrics if isinstance(metrics, str) else tuple(metrics))
    kernel_settings.check_metrics(names)
    target_device = resolve_device(device)
    build_arg, key, arch_index = resolve_architecture(space, arch, index, benchmark)
    stage("reading the batch")
    inputs, targets, num_classes, description = _score_batch(dataset, data_dir, batch_file, batch_size, seed, target_device)
    if inputs.shape[0] < 2:
        raise NtknasError(f"a kernel needs at least 2 images: raise {option('batch_size')}")
    torch.manual_seed(seed)
    stage("building the network")
    measured_space = get_space(space)
    build = network_builder(measured_space.name, num_classes, measured_space.options_with(variant=variant), init, bias_init)
    net = build(build_arg).to(target_device)
    inputs, targets = inputs.to(target_device), targets.to(target_device)
    kernel_settings = kernel_settings.for_evaluation(names, len(targets), target_device)
    kind = "matrix-free estimates" if kernel_settings.kernel == "matrix-free" else "the exact kernel"
    stage(f"computing {', '.join(names)} on {len(targets)} images ({kind}, BatchNorm {bn_mode})")
    started = time.perf_counter()
    run = score_run(
        net, inputs, targets, metrics, bn_mode, params=params, strategy=strategy, chunk_size=chunk_size,
        kernel=kernel_settings.kernel, estimator=kernel_settings.estimator_settings, seed=seed,
    )
    seconds = time.perf_counter() - started
    return ScoreOutcome(
        space, key, arch_index, description, bn_mode, run.kernel_strategy or "none (no kernel metric)",
        device_name(target_device), seconds, run.values,
        kernel_settings.kernel_identity, kernel_settings.kernel_choice,
    )
