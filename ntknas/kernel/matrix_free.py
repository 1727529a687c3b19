"""NTK quantities without the B×B kernel: products with J and Jᵀ on the exact kernel's forward.

J ∈ R^{B×P} is the summed-logit Jacobian of :mod:`ntknas.kernel.ntk` (row i: the gradient of
sample i's summed logits through the whole-batch forward, BatchNorm coupling included). The exact
kernel needs one whole-batch backward pass per row; many metrics need far fewer products:

* ``Jᵀω`` — one backward pass of the summed outputs with cotangent ω (a VJP). With ω = 1 this is
  the gradient of Σ_i s_i, so mean(K) = ‖Jᵀ1‖² / B² exactly (see docs/protocol.md, "Metrics"); with ω = 1_c (the class
  indicators) it gives LGA's numerator exactly.
* ``Jv`` — one forward-mode pass with parameter tangent v (a JVP); ``K ω = J (Jᵀω)``.

:func:`estimate_kernel` combines them into tr(K), ‖K‖²_F and ‖K − k̄‖²_F, unbiased and with a
standard error, by an exchangeable Nyström estimator (``xnys``, the default: the mean direction and
the class directions the exact sums already paid for, plus m Gaussian probes, each serving both the
low-rank part and its correction; Epperly, Tropp, Webber 2024) or by Hutch++ (Meyer, Musco, Musco,
Woodruff 2021). On NAS-Bench-201 kernels the Nyström estimator ranks architectures as faithfully as
Hutch++ for fewer products (perf/matrix_free_fidelity.py, docs/kernel.md).

Operators are the estimator's only view of the network, so the same estimator code runs on a
network (:class:`NetworkOperator`) or on an explicit factor of a known kernel
(:class:`FactorOperator`, K = L Lᵀ), which the fidelity study and the tests use.

This module is the matrix-free path's public face; the code lives in four modules:
:mod:`~ntknas.kernel.estimator_settings` (settings and their checks),
:mod:`~ntknas.kernel.passes` (pullbacks and pushforwards, shared with the exact kernel),
:mod:`~ntknas.kernel.operators` (J as products) and :mod:`~ntknas.kernel.estimators` (the
estimators, a name → function table).
"""

from ntknas.kernel.estimator_settings import (
    DEFAULT_ESTIMATOR,
    DEFAULT_PROBES,
    ESTIMATOR_NAMES,
    KERNEL_KINDS,
    EstimatorSettings,
    check_kernel_kind,
    effective_settings,
    probe_bound,
)
from ntknas.kernel.estimators import (
    ESTIMATORS,
    KernelEstimates,
    NormEstimates,
    class_sum_gradients,
    estimate_kernel,
    kernel_products,
    kernel_sketch,
    summed_gradient,
)
from ntknas.kernel.operators import FactorOperator, JacobianOperator, NetworkOperator, block_gram, network_operator
from ntknas.kernel.passes import ParamBlock

__all__ = [
    "DEFAULT_ESTIMATOR",
    "DEFAULT_PROBES",
    "ESTIMATORS",
    "ESTIMATOR_NAMES",
    "KERNEL_KINDS",
    "EstimatorSettings",
    "FactorOperator",
    "JacobianOperator",
    "KernelEstimates",
    "NetworkOperator",
    "NormEstimates",
    "ParamBlock",
    "block_gram",
    "check_kernel_kind",
    "class_sum_gradients",
    "effective_settings",
    "estimate_kernel",
    "kernel_products",
    "kernel_sketch",
    "network_operator",
    "probe_bound",
    "summed_gradient",
]
