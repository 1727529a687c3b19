"""Score one network on one batch: every requested metric, each a value or a reason."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ntknas.errors import NtknasError
from ntknas.kernel import check_bn_mode
from ntknas.kernel.matrix_free import EstimatorSettings
from ntknas.kernel.precision import ieee_float32
from ntknas.metrics import (
    DEFAULT_METRICS,
    MetricContext,
    MetricUnavailable,
    check_kernel_choice,
    get_metric,
    parse_metric_list,
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


def evaluate_metrics(
    net: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    metrics: Sequence[str] | str = DEFAULT_METRICS,
    bn_mode: str = "train",
    **options: object,
) -> dict[str, MetricValue]:
    """Evaluate ``metrics`` on one batch: name → value or missing reason (see :func:`run_metrics`)."""
    return run_metrics(net, inputs, targets, metrics, bn_mode, **options).values  # type: ignore[arg-type]


def run_metrics(
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
) -> MetricRun:
    """Evaluate ``metrics`` on one batch; metrics that share the NTK compute it once.

    A metric that cannot be computed (a non-finite kernel, a single-class batch) comes back
    missing with its reason; it is never replaced by a number. The time of a shared kernel is
    counted in the first metric that needs it.

    ``kernel="matrix-free"`` computes knas, trace, fnorm and lga from products with the Jacobian
    (:mod:`ntknas.kernel.matrix_free`) with ``estimator``'s settings, and refuses metrics that
    need the kernel's eigenvalues.
    """
    names = parse_metric_list(metrics if isinstance(metrics, str) else tuple(metrics))
    check_bn_mode(bn_mode)
    check_kernel_choice(kernel, names)
    if inputs.shape[0] != targets.shape[0]:
        raise NtknasError(
            f"{inputs.shape[0]} inputs but {targets.shape[0]} targets: give one label per image"
        )
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
    )
    results: dict[str, MetricValue] = {}
    with ieee_float32():
        for name in names:
            metric = get_metric(name)
            start = time.perf_counter()
            try:
                value = float(metric.compute(context))
            except MetricUnavailable as unavailable:
                results[name] = MetricValue(None, str(unavailable), time.perf_counter() - start)
                continue
            elapsed = time.perf_counter() - start
            if math.isfinite(value):
                results[name] = MetricValue(value, None, elapsed, context.standard_errors.get(name))
            else:
                results[name] = MetricValue(None, f"{name} is not finite ({value})", elapsed)
    ntk = context._cache.get("ntk")
    if ntk is None and "estimates" in context._cache:
        return MetricRun(results, "matrix-free", None)
    return MetricRun(
        results, None if ntk is None else ntk.strategy, None if ntk is None else ntk.seconds
    )


def score(
    net: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    metrics: Sequence[str] | str = DEFAULT_METRICS,
    bn_mode: str = "train",
    **options: object,
) -> dict[str, float]:
    """Metric name → value; a metric that cannot be computed is NaN and its reason is warned.

    Use :func:`evaluate_metrics` to get the reasons as data.
    """
    values = evaluate_metrics(net, inputs, targets, metrics, bn_mode, **options)  # type: ignore[arg-type]
    for name, result in values.items():
        if result.missing:
            warnings.warn(f"{name} is missing: {result.reason}", stacklevel=2)
    return {name: (math.nan if r.value is None else r.value) for name, r in values.items()}


evaluate = run_metrics
"""``evaluate(net, inputs, targets, metrics, bn_mode, ...)``: the metrics of one batch with the
kernel strategy that ran (:class:`MetricRun`); an alias of :func:`run_metrics`."""


def study_batch(
    dataset: str,
    data_dir: str | None = None,
    *,
    batch_size: int | None = None,
    seed: int = 42,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The study's measurement batch (SPEC §3.1): ``batch_size`` (default the dataset's: 256, 512
    for ImageNet16-120) augmented training images drawn with ``seed``, normalized, on ``device``."""
    from ntknas.data import draw_batch, load_for_run

    train = load_for_run(dataset, data_dir, "train", device=device)
    return draw_batch(train, batch_size or train.info.default_batch_size, seed=seed, augment=True)
