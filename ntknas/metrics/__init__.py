"""Architecture metrics: one registry (``get_metric``/``available_metrics``) for every family."""

from ntknas.metrics.registry import (
    Metric,
    MetricContext,
    MetricUnavailable,
    available_metrics,
    get_metric,
    parse_metric_list,
    register_metric,
)

__all__ = [
    "Metric",
    "MetricContext",
    "MetricUnavailable",
    "available_metrics",
    "get_metric",
    "parse_metric_list",
    "register_metric",
]
