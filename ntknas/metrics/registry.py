"""One registry of architecture metrics, looked up by name everywhere a metric name is accepted.

A metric is a function of a :class:`MetricContext` (the network, one batch, its labels and the
kernel settings) that returns a float — or, for a randomized estimate, a pair (value, standard
error) — or raises :class:`MetricUnavailable` with a reason. The context computes shared
intermediate results (the NTK, its eigenvalues) once, on first use, so that asking for five kernel
metrics costs one kernel.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ntknas.errors import NtknasError, UnknownNameError, option
from ntknas.kernel import NTKResult, compute_ntk
from ntknas.kernel.matrix_free import (
    EstimatorSettings,
    KernelEstimates,
    check_kernel_kind,
    estimate_kernel,
    network_operator,
)


class MetricUnavailable(Exception):
    """A metric that cannot be computed for this network and batch; the message is the reason."""


@dataclass
class MetricContext:
    """Everything a metric may need, with lazily computed, cached intermediate results."""

    net: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    bn_mode: str = "train"
    params: str = "weights"
    strategy: str = "auto"
    chunk_size: int | None = None
    num_classes: int | None = None
    eigen_cutoff: float | None = None
    kernel_kind: str = "exact"
    """``exact`` (the B×B kernel) or ``matrix-free`` (products with J only; see :mod:`ntknas.kernel.matrix_free`)."""
    estimator: EstimatorSettings = field(default_factory=EstimatorSettings)
    wanted: tuple[str, ...] = ()
    """The metrics of this evaluation: tells the matrix-free path which estimates to pay for, and
    the shared activation pass which intermediate results to collect."""
    seed: int = 0
    """Seeds every random draw a metric makes (re-drawn weights, Gaussian inputs, sampled
    channels, random cotangents) through its own ``torch.Generator``; the global RNG is never used."""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def ntk(self) -> NTKResult:
        return self.cached(
            "ntk",
            lambda: compute_ntk(
                self.net,
                self.inputs,
                bn_mode=self.bn_mode,
                params=self.params,
                chunk_size=self.chunk_size,
                strategy=self.strategy,
            ),
        )

    @property
    def kernel(self) -> np.ndarray:
        """The summed-logit NTK as a float64 array; unavailable if it holds NaN or inf."""

        def finite_kernel() -> np.ndarray | MetricUnavailable:
            kernel = self.ntk.kernel.detach().cpu().numpy()
            if not np.isfinite(kernel).all():
                return MetricUnavailable(
                    "the NTK has non-finite entries (NaN or inf): the network's outputs or "
                    "gradients overflow on this batch"
                )
            return kernel

        kernel = self.cached("kernel", finite_kernel)
        if isinstance(kernel, MetricUnavailable):
            raise kernel
        return kernel

    @property
    def estimates(self) -> KernelEstimates:
        """The matrix-free sums and estimates this evaluation's metrics need, computed once."""

        def compute() -> KernelEstimates:
            wanted = set(self.wanted) or {"knas", "trace", "fnorm", "lga"}
            with network_operator(self.net, self.inputs, bn_mode=self.bn_mode, params=self.params) as operator:
                return estimate_kernel(
                    operator,
                    self.targets if wanted & {"lga", "trace", "fnorm"} else None,
                    self.estimator,
                    norms=bool(wanted & {"trace", "fnorm", "lga"}),
                    frobenius=bool(wanted & {"fnorm", "lga"}),
                )

        return self.cached("estimates", compute)

    @property
    def kernel_run(self) -> tuple[str | None, float | None]:
        """How this context computed the kernel, for reports: the exact kernel's strategy and
        seconds, ``("matrix-free", None)`` for matrix-free products, ``(None, None)`` when no
        metric needed either."""
        ntk = self._cache.get("ntk")
        if ntk is not None:
            return ntk.strategy, ntk.seconds
        if "estimates" in self._cache:
            return "matrix-free", None
        return None, None

    @property
    def matrix_free(self) -> bool:
        return self.kernel_kind == "matrix-free"

    @property
    def labels(self) -> np.ndarray:
        return self.targets.detach().cpu().numpy()


MetricOutput = float | tuple[float, float | None]
"""A metric's value, or (value, standard error) for a value a randomized estimator produced."""

MetricFunction = Callable[[MetricContext], MetricOutput]


def split_output(output: MetricOutput) -> tuple[float, float | None]:
    """(value, standard error) of what a metric returned; a plain value has no error (None)."""
    if isinstance(output, tuple):
        value, error = output
        return float(value), None if error is None else float(error)
    return float(output), None


@dataclass(frozen=True)
class Metric:
    """A registered metric.

    ``higher_is_better`` is the direction a NAS user ranks by (``None`` for diagnostics that
    rank nothing); correlations are always reported with their sign, never as absolute values.
    """

    name: str
    compute: MetricFunction
    higher_is_better: bool | None
    family: str
    formula: str
    uses_bn_mode: bool = True
    """False for metrics that ignore the BatchNorm mode (size, synflow): measured once per network."""
    needs_kernel: bool = False
    """True for metrics derived from the summed-logit NTK K (they share one kernel computation)."""
    needs_labels: bool = False
    """True for metrics that read the batch's labels (lga, loss-gradient proxies)."""
    matrix_free: bool = False
    """True for kernel metrics that ``--kernel matrix-free`` computes without the kernel."""
    aggregate_of: tuple[str, ...] = ()
    """For a set-level metric: the per-network metrics it combines across the networks measured.
    Such a metric has no value for one network; correlate computes it in its summary."""

    @property
    def is_aggregate(self) -> bool:
        return bool(self.aggregate_of)


_REGISTRY: dict[str, Metric] = {}

DEFAULT_METRICS: tuple[str, ...] = ("knas", "tenas", "fnorm", "trace", "lga")
"""The study's NTK metrics: what score and correlate measure unless told otherwise."""

MATRIX_FREE_METRICS: tuple[str, ...] = ("knas", "fnorm", "trace", "lga")
"""The default metrics under ``--kernel matrix-free`` (the study's, less tenas, which needs eigenvalues)."""


def register_metric(
    name: str,
    *,
    higher_is_better: bool | None,
    family: str,
    formula: str,
    uses_bn_mode: bool = True,
    needs_kernel: bool = False,
    needs_labels: bool = False,
    matrix_free: bool = False,
    aggregate_of: tuple[str, ...] = (),
    replace: bool = False,
) -> Callable[[MetricFunction], MetricFunction]:
    """Decorator that adds a metric to the registry under ``name``.

    A name already registered is refused unless ``replace=True`` (re-running a notebook cell that
    defines the metric); a built-in metric is replaced the same way.
    """

    def decorate(function: MetricFunction) -> MetricFunction:
        if function.__module__ not in _BUILTIN_MODULES:
            # Built-ins first: a user's "knas" is then refused here, not when a built-in loads later.
            _load_builtin_metrics()
        if name in _REGISTRY and not replace:
            raise NtknasError(
                f"metric {name!r} is already registered: pass replace=True to register_metric to redefine it"
            )
        _REGISTRY[name] = Metric(
            name, function, higher_is_better, family, formula, uses_bn_mode, needs_kernel, needs_labels, matrix_free,
            tuple(aggregate_of),
        )
        return function

    return decorate


_BUILTIN_MODULES = (
    "ntknas.metrics.flops", "ntknas.metrics.ntk_metrics", "ntknas.metrics.zero_cost",
    "ntknas.metrics.gradient_proxies",
    "ntknas.metrics.activation_proxies", "ntknas.metrics.az_nas",
)
"""The modules that register the built-in metrics, in the order ``available_metrics`` lists them."""


def _load_builtin_metrics() -> None:
    # Imported for their registration side effect; kept here so the registry is complete
    # whichever module a caller imports first.
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def get_metric(name: str) -> Metric:
    _load_builtin_metrics()
    if name not in _REGISTRY:
        raise UnknownNameError(
            f"unknown metric {name!r}: available metrics are {', '.join(available_metrics())}"
        )
    return _REGISTRY[name]


def _listing_rank(metric: Metric) -> int:
    module = metric.compute.__module__
    return _BUILTIN_MODULES.index(module) if module in _BUILTIN_MODULES else len(_BUILTIN_MODULES)


def available_metrics(family: str | None = None) -> list[str]:
    """Names of all registered metrics (optionally of one family): the built-ins in the order of
    their modules in ``_BUILTIN_MODULES``, then the others in registration order.

    The order must not depend on which module a process happened to import first: run folders
    store metric lists (``--metrics all``, the study's proxies) and compare them on resume.
    """
    _load_builtin_metrics()
    ranked = sorted(_REGISTRY.items(), key=lambda item: _listing_rank(item[1]))  # stable: keeps registration order
    return [name for name, m in ranked if family is None or m.family == family]


def parse_metric_list(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """Validated metric names from ``"knas,lga"`` or a sequence; ``"all"`` means every metric.

    An aggregate metric brings its components: each is listed (once) before the aggregate, so
    that asking for ``az_nas`` measures what it combines.
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [name.strip() for name in names if name.strip()]
    if names == ["all"]:
        names = available_metrics()
    if not names:
        raise UnknownNameError("no metric given: name at least one, e.g. knas,tenas,lga")
    expanded: list[str] = []
    for name in names:
        expanded += [*get_metric(name).aggregate_of, name]
    return list(dict.fromkeys(expanded))


def aggregate_definitions(names: list[str] | tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Aggregate metric → its components, for the aggregates among ``names`` (plain data, for
    layers that must not import the metrics)."""
    return {name: get_metric(name).aggregate_of for name in names if get_metric(name).is_aggregate}


def per_network_metrics(names: list[str] | tuple[str, ...]) -> list[str]:
    """``names`` less the aggregates: what is measured on each network."""
    return [name for name in names if not get_metric(name).is_aggregate]


def check_kernel_choice(kernel: str, metrics: list[str] | tuple[str, ...]) -> None:
    """Refuse, before any work, a kernel metric that ``kernel`` cannot compute (one line, the fix)."""
    check_kernel_kind(kernel)
    if kernel == "exact":
        return
    for name in metrics:
        metric = get_metric(name)
        if metric.needs_kernel and not metric.matrix_free:
            offered = ", ".join(m for m in available_metrics() if get_metric(m).matrix_free)
            raise NtknasError(
                f"{name} needs the kernel's eigenvalues, which {option('kernel')} matrix-free does not estimate "
                f"reliably: use {option('kernel')} exact for {name} (matrix-free offers {offered})"
            )
