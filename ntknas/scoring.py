"""Score one network on one batch: every requested metric, each a value or a reason.

:func:`score` is the one call (name → value); :func:`score_run` returns the same measurement with
reasons, standard errors and how the kernel was computed. ``evaluate_metrics``, ``run_metrics`` and
``evaluate`` are aliases of the latter kept for scripts written before 0.2.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict, Unpack

import torch
from torch import nn

from ntknas.errors import NtknasError
from ntknas.kernel import check_bn_mode
from ntknas.kernel.choice import AUTO, KernelChoice, choose_kernel, device_type, kernel_needs
from ntknas.kernel.matrix_free import EstimatorSettings
from ntknas.kernel.precision import ieee_float32
from ntknas.metrics import (
    DEFAULT_METRICS,
    MetricContext,
    MetricUnavailable,
    check_kernel_choice,
    get_metric,
    parse_metric_list,
    split_output,
)


@dataclass(frozen=True)
class MetricValue:
    """A metric's value, or ``None`` with the reason it could not be computed."""

    value: float | None
    reason: str | None = None
    seconds: float = 0.0
    stderr: float | None = None
    """Standard error of a value a randomized estimator produced (``--kernel matrix-free``)."""

    @property
    def missing(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class MetricRun:
    """The metrics of one evaluation and, when an NTK was computed, how it was computed."""

    values: dict[str, MetricValue]
    kernel_strategy: str | None
    kernel_seconds: float | None
    kernel_choice: KernelChoice | None = None
    """What ``kernel="auto"`` chose and why; None when the kernel was named."""


class ScoreOptions(TypedDict, total=False):
    """How :func:`score` measures, beyond the metrics and the BatchNorm mode (see :func:`score_run`
    for the defaults)."""

    params: str
    strategy: str
    chunk_size: int | None
    num_classes: int | None
    eigen_cutoff: float | None
    kernel: str
    estimator: EstimatorSettings | None
    seed: int
    device: str | torch.device | None


def score(
    net: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    metrics: Sequence[str] | str = DEFAULT_METRICS,
    bn_mode: str = "train",
    **options: Unpack[ScoreOptions],
) -> dict[str, float]:
    """Score one network on one batch: metric name → value.

    ``device`` (``"cuda"``, ``"cuda:1"``, ``"cpu"``) moves the network (in place, as
    :meth:`torch.nn.Module.to` does) and the batch there; by default the batch moves to the
    network's device. Metrics that share the NTK compute it once. A metric that cannot be computed (a non-finite
    kernel, a single-class batch) is NaN and its reason is warned; it is never replaced by a
    number. ``kernel="matrix-free"`` computes knas, trace, fnorm and lga from products with the
    Jacobian (:mod:`ntknas.kernel.matrix_free`) with ``estimator``'s settings, and refuses metrics
    that need the kernel's eigenvalues. ``kernel="auto"`` takes the faster of the two for these
    metrics, this batch size and device (:func:`choose_kernel_for`).

    :func:`score_run` takes the same arguments and returns the details instead: each value or its
    missing reason, standard errors, timings and the kernel strategy that ran.
    """
    run = score_run(net, inputs, targets, metrics, bn_mode, **options)
    for name, result in run.values.items():
        if result.missing:
            warnings.warn(f"{name} is missing: {result.reason}", stacklevel=2)
    return {name: (math.nan if r.value is None else r.value) for name, r in run.values.items()}


def score_run(
    net: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    metrics: Sequence[str] | str = DEFAULT_METRICS,
    bn_mode: str = "train",
    *,
    params: str = "weights",
    strategy: str = "auto",
    chunk_size: int | None = None,
    num_classes: int | None = None,
    eigen_cutoff: float | None = None,
    kernel: str = "exact",
    estimator: EstimatorSettings | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> MetricRun:
    """:func:`score` with the details: each metric a :class:`MetricValue` (value or missing
    reason, seconds, standard error), and how the kernel was computed.

    The time of a shared kernel (or of the shared activation pass) is counted in the first
    metric that needs it. ``seed`` seeds the random draws of the proxies that make any
    (re-drawn weights, Gaussian inputs, sampled channels, random cotangents); the global RNG is
    left as it was.
    """
    names = parse_metric_list(metrics if isinstance(metrics, str) else tuple(metrics))
    check_bn_mode(bn_mode)
    if inputs.shape[0] != targets.shape[0]:
        raise NtknasError(
            f"{inputs.shape[0]} inputs but {targets.shape[0]} targets: give one label per image"
        )
    net, inputs, targets = on_one_device(net, inputs, targets, device)
    choice = choose_kernel_for(names, inputs.shape[0], inputs.device) if kernel == AUTO else None
    kernel = choice.kind if choice is not None else kernel
    check_kernel_choice(kernel, names)
    context = MetricContext(
        net=net,
        inputs=inputs,
        targets=targets,
        bn_mode=bn_mode,
        params=params,
        strategy=strategy,
        chunk_size=chunk_size,
        num_classes=num_classes,
        eigen_cutoff=eigen_cutoff,
        kernel_kind=kernel,
        estimator=estimator or EstimatorSettings(),
        wanted=tuple(names),
        seed=seed,
    )
    results: dict[str, MetricValue] = {}
    with ieee_float32():
        for name in names:
            metric = get_metric(name)
            start = time.perf_counter()
            try:
                value, error = split_output(metric.compute(context))
            except MetricUnavailable as unavailable:
                results[name] = MetricValue(None, str(unavailable), time.perf_counter() - start)
                continue
            elapsed = time.perf_counter() - start
            if math.isfinite(value):
                results[name] = MetricValue(value, None, elapsed, error)
            else:
                results[name] = MetricValue(None, f"{name} is not finite ({value})", elapsed)
    strategy_used, seconds = context.kernel_run
    return MetricRun(results, strategy_used, seconds, choice)


def choose_kernel_for(metrics: Sequence[str], batch_size: int, device: object) -> KernelChoice:
    """``--kernel auto``'s choice for an evaluation of ``metrics`` on ``batch_size`` images on
    ``device`` (:func:`ntknas.kernel.choice.choose_kernel`: the rule and its measured thresholds)."""
    kernel_metrics = [get_metric(name) for name in metrics]
    needs = kernel_needs((metric.name, metric.matrix_free) for metric in kernel_metrics if metric.needs_kernel)
    return choose_kernel(needs, batch_size, device_type(device))


def network_device(net: nn.Module) -> torch.device:
    """Where the network's parameters (else its buffers) live; the CPU for one with neither."""
    for tensor in (*net.parameters(), *net.buffers()):
        return tensor.device
    return torch.device("cpu")


def on_one_device(
    net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, device: str | torch.device | None
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The network and the batch on ``device`` (default: the network's own), the network moved in
    place. A device this machine lacks is a one-line error."""
    if device is None:
        target = network_device(net)
    else:
        try:
            target = torch.device(device)
            torch.empty(0, device=target)  # a CUDA device on a machine without one fails here
        except (RuntimeError, AssertionError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise NtknasError(
                f"device {device!r} cannot be used here ({first_line}): use 'cpu' or a device this machine has"
            ) from None
        net.to(target)
    return net, inputs.to(target), targets.to(target)


def evaluate_metrics(
    net: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    metrics: Sequence[str] | str = DEFAULT_METRICS,
    bn_mode: str = "train",
    **options: Unpack[ScoreOptions],
) -> dict[str, MetricValue]:
    """Alias of ``score_run(...).values``, kept for scripts written before 0.2."""
    return score_run(net, inputs, targets, metrics, bn_mode, **options).values


def run_metrics(
    net: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    metrics: Sequence[str] | str = DEFAULT_METRICS,
    bn_mode: str = "train",
    **options: Unpack[ScoreOptions],
) -> MetricRun:
    """Alias of :func:`score_run`, kept for scripts written before 0.2."""
    return score_run(net, inputs, targets, metrics, bn_mode, **options)

evaluate = run_metrics


def study_batch(
    dataset: str,
    data_dir: str | None = None,
    *,
    batch_size: int | None = None,
    seed: int = 42,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The study's measurement batch (see docs/protocol.md, "Experiment 1"): ``batch_size`` (default the dataset's: 256, 512
    for ImageNet16-120) augmented training images drawn with ``seed``, normalized, on ``device``."""
    from ntknas.data import draw_batch, load_for_run

    train = load_for_run(dataset, data_dir, "train", device=device)
    return draw_batch(train, batch_size or train.info.default_batch_size, seed=seed, augment=True)
