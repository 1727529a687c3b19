"""Architecture metrics: one registry (``get_metric``/``available_metrics``) for every family."""

from ntknas.metrics.registry import (
    DEFAULT_METRICS,
    MATRIX_FREE_METRICS,
    Metric,
    MetricContext,
    MetricOutput,
    MetricUnavailable,
    aggregate_definitions,
    available_metrics,
    check_kernel_choice,
    get_metric,
    parse_metric_list,
    per_network_metrics,
    register_metric,
    split_output,
)

__all__ = [
    "DEFAULT_METRICS",
    "MATRIX_FREE_METRICS",
    "Metric",
    "MetricContext",
    "MetricOutput",
    "MetricUnavailable",
    "aggregate_definitions",
    "available_metrics",
    "check_kernel_choice",
    "get_metric",
    "parse_metric_list",
    "per_network_metrics",
    "register_metric",
    "split_output",
]
