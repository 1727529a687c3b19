"""Exact empirical Neural Tangent Kernels (see docs/protocol.md, "The kernel")."""

from ntknas.kernel.modes import BN_MODES, check_bn_mode, couples_samples, kernel_mode, uses_batch_statistics
from ntknas.kernel.ntk import (
    FORWARDS,
    STRATEGIES,
    NTKResult,
    all_logits,
    choose_strategy,
    compute_ntk,
    empirical_ntk,
    full_ntk,
    gram_float64,
    summed_logits,
)
from ntknas.kernel.params import PARAMETER_SETS, classifier_name, select_parameters

__all__ = [
    "BN_MODES",
    "FORWARDS",
    "check_bn_mode",
    "PARAMETER_SETS",
    "STRATEGIES",
    "NTKResult",
    "all_logits",
    "choose_strategy",
    "classifier_name",
    "compute_ntk",
    "couples_samples",
    "empirical_ntk",
    "full_ntk",
    "gram_float64",
    "kernel_mode",
    "select_parameters",
    "summed_logits",
    "uses_batch_statistics",
]
