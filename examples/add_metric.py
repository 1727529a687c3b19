"""A metric of your own, in the one registry: every command accepts its name
(``--metrics knas,ntk_diag_share``) and correlate reports it beside the built-in ones."""

import numpy as np

from ntknas.metrics import MetricContext, MetricUnavailable, register_metric


@register_metric(
    "ntk_diag_share",
    higher_is_better=False,
    family="custom",
    formula="tr(K) / Σ_ij |K_ij|: how much of the kernel sits on its diagonal",
    needs_kernel=True,  # shares the one NTK computation with knas, tenas, ...
)
def ntk_diag_share(context: MetricContext) -> float:
    kernel = context.kernel  # the summed-logit NTK, float64 B×B (raises if non-finite)
    total = float(np.abs(kernel).sum())
    if total == 0.0:
        raise MetricUnavailable("the kernel is zero")
    return float(np.trace(kernel)) / total
