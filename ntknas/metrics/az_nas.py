"""AZ-NAS's four per-network components and their set-level aggregate.

Lee and Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search" (CVPR 2024),
code cvlab-yonsei/AZ-NAS ``NB201/ZeroShotProxy/compute_az_nas_score.py`` (components) and
``NB201/tss_general.ipynb`` (aggregate), read for what they compute.

The feature maps are the outputs of the network's stem and of each of its cells
(:func:`~ntknas.metrics.activation_pass.cell_modules`), from the shared activation pass: one
forward of the context's batch, on the network's own weights, in the context's BatchNorm mode.
The authors re-initialize the network (Kaiming normal, fan-in) and feed Gaussian noise; ntknas
measures the network as the study has it at each training stage, on the study's batch, like
every other metric (their train-mode BatchNorm without running statistics is ``bn_mode=train``).

``az_nas`` itself ranks a set: Σ over the four components of log(rank/N) across the N networks
measured (ranks ascending, ties averaged). It has no value for one network; it is registered
with ``aggregate_of`` naming its components, asking for it measures them, and correlate's
summary computes it per BatchNorm mode and training stage.
"""

from __future__ import annotations

import math

import numpy as np

from ntknas.metrics.activation_pass import activation_pass
from ntknas.metrics.flops import context_flops
from ntknas.metrics.registry import MetricContext, MetricUnavailable, register_metric

__all__ = ["AZ_COMPONENTS", "expressivity", "progressivity", "trainability"]

AZ_COMPONENTS = ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")


def expressivity(entropies: list[float]) -> float:
    """Σ over feature maps of the channel-covariance spectrum entropy."""
    return float(np.sum(entropies))


def progressivity(entropies: list[float]) -> float:
    """The smallest increase of the entropy from one feature map to the next (may be negative)."""
    if len(entropies) < 2:
        raise MetricUnavailable("AZ-NAS progressivity needs at least two feature maps (a stem and a cell)")
    return float(np.min(np.diff(entropies)))


def trainability(scores: list[float]) -> float:
    """Mean over cells of 2 − s − 1/(s + 1e-6); −∞ when some cell is the identity."""
    return -math.inf if any(s == -math.inf for s in scores) else float(np.mean(scores))


@register_metric(
    "az_expressivity",
    higher_is_better=True,
    family="zero-cost",
    formula=(
        "Σ over stem and cell outputs of −Σ p log(p + 1e-8), p the eigenvalues of the channel "
        "covariance over B·H·W positions, normalized to sum 1"
    ),
)
def _az_expressivity(context: MetricContext) -> float:
    """AZ-NAS expressivity; uses ``bn_mode``; deterministic."""
    return expressivity(activation_pass(context, "az_expressivity").cell_entropies())


@register_metric(
    "az_progressivity",
    higher_is_better=True,
    family="zero-cost",
    formula="min over consecutive feature maps of the increase of their spectrum entropy",
)
def _az_progressivity(context: MetricContext) -> float:
    """AZ-NAS progressivity; uses ``bn_mode``; deterministic."""
    return progressivity(activation_pass(context, "az_progressivity").cell_entropies())


@register_metric(
    "az_trainability",
    higher_is_better=True,
    family="zero-cost",
    formula=(
        "mean over cells of 2 − s − 1/(s + 1e-6), s = σ_max of the C_in×C_out mean of g_in g_outᵀ, "
        "g_out Rademacher, g_in its cell's vector-Jacobian product (pixel-unshuffled at a reduction)"
    ),
)
def _az_trainability(context: MetricContext) -> float:
    """AZ-NAS trainability; uses ``bn_mode``; random cotangents through ``context.seed``."""
    return trainability(activation_pass(context, "az_trainability").cell_trainabilities())


@register_metric(
    "az_complexity",
    higher_is_better=True,
    family="zero-cost",
    uses_bn_mode=False,
    formula="per-image FLOPs in NAS-Bench-201's convention (the flops metric)",
)
def _az_complexity(context: MetricContext) -> float:
    """AZ-NAS complexity: the benchmark's FLOPs, which the authors read from its API."""
    return context_flops(context)


@register_metric(
    "az_nas",
    higher_is_better=True,
    family="zero-cost",
    uses_bn_mode=True,
    aggregate_of=AZ_COMPONENTS,
    formula="Σ over the four AZ-NAS components of log(rank/N) across the N networks measured",
)
def _az_nas(context: MetricContext) -> float:
    """Set-level: one network has no AZ-NAS score (correlate's summary computes it)."""
    raise MetricUnavailable(
        "az_nas ranks a set of networks: correlate computes it in its summary from "
        + ", ".join(AZ_COMPONENTS)
    )
