"""The gradient family of training-free proxies beyond the 2021 set: grasp, fisher, plain,
l2_norm (NAS-Bench-Suite-Zero), epe_nas and zico.

Definitions follow the authors' code, read for this module: SamsungLabs/zero-cost-nas
(``foresight/pruners/measures/grasp.py``, ``fisher.py``), NASLib
(``naslib/predictors/utils/pruners/measures/plain.py``, ``l2_norm.py``, ``epe_nas.py``),
VascoLopes/EPE-NAS (``search.py``) and SLDGroup/ZiCo (``ZeroShotProxy/compute_zico.py``). Each
metric's docstring states its formula and the quirks of its reference; every one is
higher-is-better, as its authors rank (raw scores, ``argmax``), and none draws random numbers.

Cost: grasp's first gradient, fisher and plain come from the cross-entropy pass that
``grad_norm`` and ``snip`` already pay for (:func:`~ntknas.metrics.loss_pass.shared_loss_pass`);
grasp adds one backward through that pass's graph (the reference runs a second forward and
backward first); epe_nas reuses jacob_cov's input Jacobians; l2_norm reads the weights only;
zico runs two half-batch passes of its own.

"Weight layers" are ``nn.Conv*`` and ``nn.Linear`` modules (see :mod:`ntknas.metrics.loss_pass`);
a weight that does not require grad, or does not reach the loss, scores 0 in the gradient-based
sums. Nothing here changes the network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ntknas.errors import DataError
from ntknas.metrics.loss_pass import LossPass, run_loss_pass, shared_loss_pass, weight_layers
from ntknas.metrics.registry import MetricContext, MetricUnavailable, register_metric
from ntknas.metrics.zero_cost import input_jacobians, shared_input_jacobians

__all__ = [
    "EPE_NAS_K",
    "epe_nas_from_jacobians",
    "epe_nas_score",
    "fisher_from_pass",
    "fisher_score",
    "grasp_from_pass",
    "grasp_score",
    "l2_norm_score",
    "plain_from_pass",
    "plain_score",
    "zico_from_gradients",
    "zico_score",
]

EPE_NAS_K = 1e-5
"""The constant k of epe_nas's Σ log(|ρ| + k), as in EPE-NAS's ``eval_score_perclass``."""

ZICO_MIN_BATCH = 4
"""zico splits the batch in two halves of at least two samples each (batch statistics stay defined)."""


def _signed_weight_sum(weights: Sequence[torch.Tensor], factors: Sequence[torch.Tensor | None], sign: float) -> float:
    """sign · Σ_l Σ W_l ⊙ factor_l in float64, skipping layers without a factor."""
    total = 0.0
    for weight, factor in zip(weights, factors):
        if factor is not None:
            total += float((weight.detach().double() * factor.double()).sum())
    return sign * total


# ---------------------------------------------------------------------------------------------
# grasp
# ---------------------------------------------------------------------------------------------


def grasp_from_pass(loss_pass: LossPass) -> float:
    """Σ_l Σ −W_l ⊙ (H g)_l, signed, from a pass run with ``hessian_gradient=True``."""
    if loss_pass.hessian_gradients is None:
        raise ValueError("grasp needs a loss pass run with hessian_gradient=True")
    return _signed_weight_sum(loss_pass.weights, loss_pass.hessian_gradients, -1.0)


def grasp_score(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, bn_mode: str = "train") -> float:
    """GraSP as zero-cost-nas sums it: Σ over conv/linear weights of −θ ⊙ (H g).

    g = ∂L/∂θ of the mean cross-entropy L over the batch, detached; H g = ∂(g·∂L/∂θ)/∂θ, the
    gradient of the inner product of the detached g with a graph-carrying second gradient. The
    reference takes g in one forward/backward and the graph-carrying gradient in a second
    forward of the same batch; both forwards see the same batch and modes, so ntknas takes both
    from one forward (the first gradient computed with ``create_graph``). The sign is the
    reference's: its authors negated GraSP's pruning score because accuracy correlated
    negatively with it.
    """
    return grasp_from_pass(run_loss_pass(net, inputs, targets, bn_mode, hessian_gradient=True))


# ---------------------------------------------------------------------------------------------
# fisher
# ---------------------------------------------------------------------------------------------


def fisher_from_pass(loss_pass: LossPass) -> float:
    """Σ_l Σ_k F_lk · n_l from a pass that recorded fisher, n_l = weights per output channel.

    F_lk is :class:`LossPass`'s ½·mean_n (Σ_spatial a·∂L/∂a)² of channel k of layer l. The
    factor n_l (in_channels/groups·k_h·k_w for a conv, in_features for a linear) is the
    reference's: it broadcasts each channel's value to every weight of that channel and then
    sums all weights.
    """
    if loss_pass.channel_fisher is None:
        raise ValueError("fisher needs a loss pass run with record_fisher=True")
    total = 0.0
    recorded = False
    for layer, channels in zip(loss_pass.layers, loss_pass.channel_fisher):
        if channels is None:
            continue
        recorded = True
        weight = layer.weight
        assert isinstance(weight, torch.Tensor)
        per_channel = weight.numel() / channels.numel()
        total += float(channels.sum()) * per_channel
    if not recorded:
        raise MetricUnavailable(
            "fisher: no conv or linear output received a gradient (the loss does not depend on any of them)"
        )
    return total


def fisher_score(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, bn_mode: str = "train") -> float:
    """Fisher (Theis et al. 2018, as zero-cost-nas computes it) on one cross-entropy pass.

    For each output a of a conv/linear layer (its raw output, bias included: the reference
    reads it through an identity module placed right after the layer, before BatchNorm),
    channel k scores ½·mean over samples of (Σ_{h,w} a·∂L/∂a)²; see :func:`fisher_from_pass`
    for how channels and layers add up.
    """
    return fisher_from_pass(run_loss_pass(net, inputs, targets, bn_mode, record_fisher=True))


# ---------------------------------------------------------------------------------------------
# plain and l2_norm
# ---------------------------------------------------------------------------------------------


def plain_from_pass(loss_pass: LossPass) -> float:
    """Σ_l Σ W_l ⊙ ∂L/∂W_l, signed (snip without the absolute value)."""
    return _signed_weight_sum(loss_pass.weights, loss_pass.gradients, 1.0)


def plain_score(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, bn_mode: str = "train") -> float:
    """NASLib's ``plain``: Σ over conv/linear weights of θ ⊙ ∂L/∂θ, L the mean cross-entropy."""
    return plain_from_pass(run_loss_pass(net, inputs, targets, bn_mode))


def l2_norm_score(net: nn.Module) -> float:
    """NASLib's ``l2_norm``: Σ over conv/linear layers of ‖W_l‖₂ (Frobenius norm), float64.

    Data-free. Like NASLib (which scores the network itself, ``copy_net=False``), every conv and
    linear weight counts, trainable or not.
    """
    layers = weight_layers(net)
    if not layers:
        raise MetricUnavailable("l2_norm: the network has no conv or linear weight")
    total = 0.0
    for layer in layers:
        weight = layer.weight
        assert isinstance(weight, torch.Tensor)
        total += float(weight.detach().double().norm())
    return total


# ---------------------------------------------------------------------------------------------
# epe_nas
# ---------------------------------------------------------------------------------------------


def epe_nas_from_jacobians(jacobians: np.ndarray, labels: np.ndarray, k: float = EPE_NAS_K) -> float:
    """Σ_c |s_c|, s_c = Σ_{i,j} log(|ρ_ij| + k) over the correlation matrix ρ of class c's rows.

    Rows are the per-sample input Jacobians (float64 correlations, as ``np.corrcoef`` gives).
    A class with one sample adds |log(1 + k)|, as in the reference (``np.corrcoef`` of one row is
    1). The reference's other branch (pairwise differences of s_c, which NASLib takes above 100
    classes) never runs in EPE-NAS, which calls the score without the class count; ntknas keeps
    the branch the authors ran. Unavailable when no class has two samples (the score would be
    a constant) or a Jacobian row is constant (its correlations are NaN; the reference's score
    becomes NaN).
    """
    rows = np.asarray(jacobians, dtype=np.float64)
    classes = np.asarray(labels).reshape(-1)
    if rows.ndim != 2 or rows.shape[0] != classes.shape[0]:
        raise DataError(f"epe_nas got {rows.shape[0]} Jacobian rows but {classes.shape[0]} labels: give one label per image")
    values, counts = np.unique(classes, return_counts=True)
    if counts.max(initial=0) < 2:
        raise MetricUnavailable(
            "epe_nas needs two samples of at least one class; every class in this batch has one: use a larger batch"
        )
    if not np.isfinite(rows).all():
        raise MetricUnavailable("epe_nas: the input Jacobians have non-finite entries")
    if (rows.std(axis=1) == 0).any():
        raise MetricUnavailable(
            "epe_nas is undefined: some sample's input Jacobian is constant (zero variance), so its "
            "correlations are NaN; the network's output may not depend on its input"
        )
    score = 0.0
    for value, count in zip(values, counts):
        if count == 1:
            score += abs(math.log(1.0 + k))
            continue
        correlations = np.corrcoef(rows[classes == value])
        score += abs(float(np.sum(np.log(np.abs(correlations) + k))))
    return score


def epe_nas_score(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, bn_mode: str = "train") -> float:
    """EPE-NAS (Lopes et al. 2021) of ``net`` on ``inputs``: :func:`~ntknas.metrics.zero_cost.input_jacobians`
    then :func:`epe_nas_from_jacobians`."""
    jacobians = input_jacobians(net, inputs, bn_mode)
    return epe_nas_from_jacobians(jacobians.cpu().double().numpy(), targets.detach().cpu().numpy())


# ---------------------------------------------------------------------------------------------
# zico
# ---------------------------------------------------------------------------------------------


def zico_from_gradients(batches: Sequence[Sequence[torch.Tensor | None]]) -> float:
    """Σ_l log Σ_i mean_b|g_bi| / std_b(g_bi) over layers l and their weights i, in float64.

    ``batches[b][l]`` is layer l's weight gradient on batch b (``None``: zero). std is the
    population standard deviation over batches (``np.std``); weights whose gradient does not
    vary are left out of the sum, and a layer left with no weight adds nothing, as in ZiCo's
    ``caculate_zico``. Unavailable when no layer contributes (the reference returns 0).
    """
    if len(batches) < 2:
        raise ValueError("zico compares gradients of at least two batches")
    score = 0.0
    contributed = False
    for layer_gradients in zip(*batches):
        present = [g for g in layer_gradients if g is not None]
        if not present:
            continue
        shape = present[0].shape
        stacked = torch.stack(
            [torch.zeros(shape, dtype=torch.float64) if g is None else g.detach().double().cpu() for g in layer_gradients]
        ).reshape(len(layer_gradients), -1)
        spread = stacked.std(dim=0, unbiased=False)
        varying = spread != 0
        if not bool(varying.any()):
            continue
        ratio_sum = float((stacked.abs().mean(dim=0)[varying] / spread[varying]).sum())
        score += math.log(ratio_sum)
        contributed = True
    if not contributed:
        raise MetricUnavailable("zico: no weight's gradient differs between the two half-batches")
    return score


def zico_score(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, bn_mode: str = "train") -> float:
    """ZiCo (Li et al., ICLR 2023) on ONE batch split into two halves, one gradient per half.

    ZiCo compares the weight gradients of two training batches (each its own forward, batch
    statistics of its own); ntknas measures every metric on one batch, so the first ⌊B/2⌋
    samples are one batch and the rest the other. The code the authors first released never
    zeroed gradients between its batches, so its second "gradient" was g₁ + g₂ (fixed in their
    repository in Feb 2023); ntknas follows the paper: per-batch gradients.
    """
    if inputs.shape[0] < ZICO_MIN_BATCH:
        raise MetricUnavailable(
            f"zico splits the batch into two halves of at least two samples: it needs a batch of "
            f"{ZICO_MIN_BATCH} or more, got {inputs.shape[0]}"
        )
    half = inputs.shape[0] // 2
    passes = [
        run_loss_pass(net, inputs[part], targets[part], bn_mode) for part in (slice(0, half), slice(half, None))
    ]
    return zico_from_gradients([loss_pass.gradients for loss_pass in passes])


# ---------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------


@register_metric(
    "grasp",
    higher_is_better=True,
    family="zero-cost",
    needs_labels=True,
    formula=(
        "Σ_l Σ −W_l ⊙ (H g)_l over conv/linear weights, g = ∂L/∂W detached, H g = ∂(g·∂L/∂W)/∂W, "
        "L = mean cross-entropy of the batch; signed"
    ),
)
def _grasp(context: MetricContext) -> float:
    """GraSP as in zero-cost-nas (:func:`grasp_score`); uses ``bn_mode``; no random state.

    g comes from the shared cross-entropy pass, which keeps its graph for H g when grasp is
    among the evaluation's metrics.
    """
    return grasp_from_pass(shared_loss_pass(context, hessian_gradient=True))


@register_metric(
    "fisher",
    higher_is_better=True,
    family="zero-cost",
    needs_labels=True,
    formula=(
        "Σ_l n_l Σ_k ½·mean_n (Σ_{h,w} a_nk·∂L/∂a_nk)², a = each conv/linear output (before BN), "
        "n_l = weights per output channel (the reference broadcasts channel scores to weights)"
    ),
)
def _fisher(context: MetricContext) -> float:
    """Fisher as in zero-cost-nas (:func:`fisher_score`); uses ``bn_mode``; no random state."""
    return fisher_from_pass(shared_loss_pass(context, fisher=True))


@register_metric(
    "plain",
    higher_is_better=True,
    family="zero-cost",
    needs_labels=True,
    formula="Σ_l Σ W_l ⊙ ∂L/∂W_l over conv/linear weights, L = mean cross-entropy of the batch; signed",
)
def _plain(context: MetricContext) -> float:
    """NASLib's ``plain`` (:func:`plain_score`); uses ``bn_mode``; no random state."""
    return plain_from_pass(shared_loss_pass(context))


@register_metric(
    "l2_norm",
    higher_is_better=True,
    family="zero-cost",
    uses_bn_mode=False,
    formula="Σ_l ‖W_l‖₂ (Frobenius) over conv/linear weights; data-free",
)
def _l2_norm(context: MetricContext) -> float:
    """NASLib's ``l2_norm`` (:func:`l2_norm_score`); ignores the batch and ``bn_mode``; no random state."""
    return l2_norm_score(context.net)


@register_metric(
    "epe_nas",
    higher_is_better=True,
    family="zero-cost",
    needs_labels=True,
    formula=(
        "Σ_c |Σ_{i,j} log(|ρ_ij| + k)|, k = 1e-5, ρ the correlation matrix of class c's per-sample "
        "input Jacobians of the summed outputs"
    ),
)
def _epe_nas(context: MetricContext) -> float:
    """EPE-NAS (:func:`epe_nas_from_jacobians`) on jacob_cov's Jacobians; uses ``bn_mode``; no random state."""
    return epe_nas_from_jacobians(shared_input_jacobians(context).cpu().double().numpy(), context.labels)


@register_metric(
    "zico",
    higher_is_better=True,
    family="zero-cost",
    needs_labels=True,
    formula=(
        "Σ_l log Σ_i mean|g_i|/std(g_i), g_i the cross-entropy gradient of weight i on each half of "
        "the batch (population std over the two halves; weights with std 0 left out)"
    ),
)
def _zico(context: MetricContext) -> float:
    """ZiCo on two half-batches (:func:`zico_score`); uses ``bn_mode``; no random state."""
    return zico_score(context.net, context.inputs, context.targets, context.bn_mode)
