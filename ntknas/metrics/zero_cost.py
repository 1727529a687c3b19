"""The field's zero-cost NAS proxies, computed by ntknas's own code on the same batch and network.

Definitions follow the original implementations: Abdelfattah et al., "Zero-Cost Proxies for
Lightweight NAS" (ICLR 2021, code SamsungLabs/zero-cost-nas) for ``grad_norm``, ``snip``,
``synflow`` and ``jacob_cov``; Mellor et al., "Neural Architecture Search without Training"
(ICML 2021, code BayesWatch/nas-without-training) for ``naswot``. Every proxy here is
higher-is-better, as in those papers (their published correlations are of the raw scores).

"Weight layers" below means ``nn.Conv*`` and ``nn.Linear`` modules (the classifier included),
as the originals sum over ``nn.Conv2d``/``nn.Linear``; biases and normalization parameters are
not scored. A weight that does not require grad, or does not reach the output, scores 0.
``grad_norm`` and ``snip`` read the cross-entropy pass they share with the gradient family of
:mod:`ntknas.metrics.gradient_proxies` (:mod:`ntknas.metrics.loss_pass`), and ``jacob_cov`` the
input Jacobians it shares with ``epe_nas``.

None of the proxies changes the network: gradients are taken with ``torch.autograd.grad`` (so
``.grad`` is never written), layer modes and running statistics are restored by
:func:`~ntknas.kernel.modes.kernel_mode`, and synflow, which needs |θ| and no BatchNorm, works on
a deep copy.

BatchNorm modes: ``grad_norm``, ``snip``, ``jacob_cov`` and ``naswot`` run with normalization
layers in the context's ``bn_mode`` and every other layer in eval mode (the originals ran the
whole network in train mode, which is ``bn_mode="train"`` for networks without dropout).
``synflow`` ignores ``bn_mode``: it removes BatchNorm, as its authors did.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ntknas.kernel.modes import kernel_mode
from ntknas.metrics.activation_pass import ReluCodeKernel, activation_pass, relu_modules
from ntknas.metrics.loss_pass import LossPass, run_loss_pass, scored_weights, shared_loss_pass, weight_layers
from ntknas.metrics.registry import MetricContext, MetricUnavailable, register_metric

__all__ = [
    "JACOB_COV_K",
    "LossGradientScores",
    "weight_layers",
    "loss_gradient_scores",
    "loss_gradient_scores_of",
    "synflow_score",
    "input_jacobians",
    "shared_input_jacobians",
    "jacob_cov_from_jacobians",
    "jacob_cov_score",
    "ReluCodeKernel",
    "relu_modules",
    "relu_code_kernel",
    "naswot_from_kernel",
    "naswot_score",
]

JACOB_COV_K = 1e-5
"""The constant k of jacob_cov's score −Σ[log(λ+k) + 1/(λ+k)], as in zero-cost-nas."""


# ---------------------------------------------------------------------------------------------
# grad_norm and snip: one cross-entropy gradient, two reductions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LossGradientScores:
    """``grad_norm = Σ_l ‖∂L/∂W_l‖₂`` and ``snip = Σ_l Σ |W_l ⊙ ∂L/∂W_l|`` of one batch."""

    grad_norm: float
    snip: float


def loss_gradient_scores(
    net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, bn_mode: str = "train"
) -> LossGradientScores:
    """grad_norm and snip from one gradient of the mean cross-entropy L over the whole batch.

    ‖·‖₂ is the Frobenius norm of each layer's weight gradient (zero-cost-nas's
    ``weight.grad.norm()``); snip's |W ⊙ ∂L/∂W| is what zero-cost-nas obtains as the gradient of
    a multiplicative all-ones weight mask. Per-layer sums are added in float64.
    """
    return loss_gradient_scores_of(run_loss_pass(net, inputs, targets, bn_mode))


def loss_gradient_scores_of(loss_pass: LossPass) -> LossGradientScores:
    """:class:`LossGradientScores` of an already computed cross-entropy pass."""
    grad_norm = 0.0
    snip = 0.0
    for weight, gradient in zip(loss_pass.weights, loss_pass.gradients):
        if gradient is None:
            continue
        grad_norm += float(gradient.double().norm())
        snip += float((weight.detach().double() * gradient.double()).abs().sum())
    return LossGradientScores(grad_norm=grad_norm, snip=snip)


# ---------------------------------------------------------------------------------------------
# synflow
# ---------------------------------------------------------------------------------------------


def _without_batchnorm(net: nn.Module) -> None:
    """Replace every BatchNorm module of ``net`` (in place) by an identity."""
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, nn.Identity())


def synflow_score(net: nn.Module, image_shape: tuple[int, ...] | torch.Size) -> float:
    """SynFlow: Σ over weight layers of |θ ⊙ ∂R/∂θ| in the linearized network, in float64.

    On a deep copy of ``net``: every BatchNorm becomes an identity (zero-cost-nas's ``bn=False``
    copy), every parameter θ is replaced by |θ|, the copy is cast to float64 and put in eval
    mode; R is the sum of its outputs for one all-ones image of shape ``image_shape``
    (zero-cost-nas feeds ``ones([1] + input_dim)``). float64 keeps R finite for deep networks
    whose products of |θ| overflow float32. The original network is never touched, so there
    are no signs to restore.
    """
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    linear = copy.deepcopy(net)
    _without_batchnorm(linear)
    linear.eval()
    linear.double()
    with torch.no_grad():
        for parameter in linear.parameters():
            parameter.grad = None
            parameter.abs_()
    weights = scored_weights(linear)
    ones = torch.ones((1, *tuple(image_shape)), dtype=torch.float64, device=device)
    with torch.enable_grad():
        total = linear(ones).sum()
        gradients = torch.autograd.grad(total, weights, allow_unused=True)
    if not torch.isfinite(total):
        raise MetricUnavailable(
            f"synflow's linearized output overflows even in float64 (R = {float(total)})"
        )
    score = 0.0
    for weight, gradient in zip(weights, gradients):
        if gradient is not None:
            score += float((weight.detach() * gradient).abs().sum())
    return score


# ---------------------------------------------------------------------------------------------
# jacob_cov
# ---------------------------------------------------------------------------------------------


def input_jacobians(net: nn.Module, inputs: torch.Tensor, bn_mode: str = "train") -> torch.Tensor:
    """Row i: ∂(Σ_j Σ_c f_c(x_j))/∂x_i, flattened; one forward of the whole batch.

    Without batch coupling this is the gradient of sample i's summed logits; with
    batch-statistics BatchNorm it includes the other samples' outputs, exactly as the
    original's ``y.backward(torch.ones_like(y))`` does.
    """
    probe = inputs.detach().clone().requires_grad_(True)
    with kernel_mode(net, bn_mode), torch.enable_grad():
        outputs = net(probe)
        (gradient,) = torch.autograd.grad(outputs.sum(), probe)
    return gradient.detach().reshape(gradient.shape[0], -1)


def shared_input_jacobians(context: MetricContext) -> torch.Tensor:
    """:func:`input_jacobians` of the context's batch, computed once (jacob_cov and epe_nas share it)."""
    return context.cached(
        "zero_cost/input_jacobians", lambda: input_jacobians(context.net, context.inputs, context.bn_mode)
    )


def jacob_cov_from_jacobians(jacobians: np.ndarray, k: float = JACOB_COV_K) -> float:
    """−Σ_i [log(λ_i + k) + 1/(λ_i + k)], λ the eigenvalues of the B×B correlation matrix.

    The correlation matrix is ``np.corrcoef`` of the rows (one per sample) in float64; its
    eigenvalues come from a symmetric solver (the original used the general ``np.linalg.eig``,
    which agrees up to rounding on a symmetric matrix). Unavailable when undefined (a sample
    with a constant Jacobian, fewer than two samples) or not finite.
    """
    rows = np.asarray(jacobians, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] < 2:
        raise MetricUnavailable("jacob_cov needs the Jacobians of at least two samples")
    if not np.isfinite(rows).all():
        raise MetricUnavailable("jacob_cov: the input Jacobians have non-finite entries")
    if (rows.std(axis=1) == 0).any():
        raise MetricUnavailable(
            "jacob_cov is undefined: some sample's input Jacobian is constant (zero variance), "
            "so its correlations are NaN; the network's output may not depend on its input"
        )
    correlations = np.corrcoef(rows)
    values = np.linalg.eigvalsh(0.5 * (correlations + correlations.T))
    with np.errstate(invalid="ignore", divide="ignore"):
        score = -float(np.sum(np.log(values + k) + 1.0 / (values + k)))
    if not np.isfinite(score):
        raise MetricUnavailable(f"jacob_cov is not finite ({score}): λ_min = {values[0]:.3g}")
    return score


def jacob_cov_score(net: nn.Module, inputs: torch.Tensor, bn_mode: str = "train") -> float:
    """jacob_cov of ``net`` on ``inputs``: :func:`input_jacobians` then :func:`jacob_cov_from_jacobians`."""
    jacobians = input_jacobians(net, inputs, bn_mode)
    return jacob_cov_from_jacobians(jacobians.cpu().double().numpy())


# ---------------------------------------------------------------------------------------------
# naswot
# ---------------------------------------------------------------------------------------------


def relu_code_kernel(net: nn.Module, inputs: torch.Tensor, bn_mode: str = "train") -> np.ndarray:
    """K_H = Σ over ReLU calls of [c cᵀ + (1 − c)(1 − c)ᵀ], c_i = 1[input of the ReLU > 0].

    Entry (i, j) is N_A minus the Hamming distance between the binary activation codes of
    samples i and j, N_A the number of rectified units. Codes are read from the input of every
    ReLU-family module (as the authors' hook does; 1[x > 0] = 1[relu(x) > 0]) during one forward
    pass of the batch. Each call is accumulated as (n + s sᵀ)/2 with s = 2c − 1, which equals the
    two-term form and is exact in float32 below 2²⁴ units per call; K_H is summed in float64.
    The registered ``naswot`` reads the same kernel from the shared activation pass
    (:mod:`ntknas.metrics.activation_pass`).
    """
    accumulator = ReluCodeKernel(inputs.shape[0], inputs.device)
    handles = [module.register_forward_hook(accumulator.hook) for module in relu_modules(net)]
    try:
        with kernel_mode(net, bn_mode), torch.no_grad():
            net(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return accumulator.result()


def naswot_from_kernel(kernel: np.ndarray) -> float:
    """log |det K_H| via ``slogdet`` (the authors' score; the sign is ignored, as theirs).

    A singular K_H (det = 0, e.g. two samples with identical codes) has log|det| = −∞: the
    original stores −∞; ntknas reports it as unavailable with that reason.
    """
    sign, logdet = np.linalg.slogdet(np.asarray(kernel, dtype=np.float64))
    if sign == 0 or not np.isfinite(logdet):
        raise MetricUnavailable(
            "naswot is -inf: the activation-code kernel K_H is singular (some samples' binary "
            "ReLU codes are linearly dependent, e.g. identical)"
        )
    return float(logdet)


def naswot_score(net: nn.Module, inputs: torch.Tensor, bn_mode: str = "train") -> float:
    """NASWOT of ``net`` on ``inputs``: :func:`relu_code_kernel` then :func:`naswot_from_kernel`."""
    return naswot_from_kernel(relu_code_kernel(net, inputs, bn_mode))


# ---------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------


def _loss_gradients(context: MetricContext) -> LossGradientScores:
    return context.cached("zero_cost/loss_gradients", lambda: loss_gradient_scores_of(shared_loss_pass(context)))


@register_metric(
    "grad_norm",
    higher_is_better=True,
    family="zero-cost",
    needs_labels=True,
    formula="Σ_l ‖∂L/∂W_l‖₂ over conv/linear weights, L = mean cross-entropy of the batch",
)
def _grad_norm(context: MetricContext) -> float:
    """Sum of per-layer gradient norms (Abdelfattah et al.); uses ``bn_mode``; higher is better."""
    return _loss_gradients(context).grad_norm


@register_metric(
    "snip",
    higher_is_better=True,
    family="zero-cost",
    needs_labels=True,
    formula="Σ_l Σ |W_l ⊙ ∂L/∂W_l| over conv/linear weights, L = mean cross-entropy of the batch",
)
def _snip(context: MetricContext) -> float:
    """SNIP saliency summed over all weights (Abdelfattah et al.); uses ``bn_mode``; higher is better."""
    return _loss_gradients(context).snip


@register_metric(
    "synflow",
    higher_is_better=True,
    family="zero-cost",
    uses_bn_mode=False,
    formula=(
        "Σ_l Σ |θ_l ⊙ ∂R/∂θ_l| over conv/linear weights, R = Σ outputs of the network with "
        "θ → |θ|, BatchNorm removed, float64, one all-ones image"
    ),
)
def _synflow(context: MetricContext) -> float:
    """SynFlow (Tanaka et al., as in Abdelfattah et al.); ignores the batch's values and ``bn_mode``."""
    return synflow_score(context.net, context.inputs.shape[1:])


@register_metric(
    "jacob_cov",
    higher_is_better=True,
    family="zero-cost",
    formula=(
        "−Σ_i [log(λ_i + k) + 1/(λ_i + k)], k = 1e-5, λ eigenvalues of the correlation matrix "
        "of the per-sample input Jacobians of the summed outputs"
    ),
)
def _jacob_cov(context: MetricContext) -> float:
    """Jacobian covariance (Mellor et al. v1, as in Abdelfattah et al.); uses ``bn_mode``."""
    return jacob_cov_from_jacobians(shared_input_jacobians(context).cpu().double().numpy())


@register_metric(
    "naswot",
    higher_is_better=True,
    family="zero-cost",
    formula=(
        "log|det K_H|, K_H = Σ_ReLU [c cᵀ + (1−c)(1−c)ᵀ], c = binary codes 1[ReLU input > 0] "
        "of each sample"
    ),
)
def _naswot(context: MetricContext) -> float:
    """NASWOT (Mellor et al., ICML 2021); uses ``bn_mode``; higher is better.

    K_H comes from the shared activation pass, so naswot costs no forward of its own when
    AZ-NAS's components are measured too.
    """
    return naswot_from_kernel(activation_pass(context, "naswot").relu_code_kernel())
