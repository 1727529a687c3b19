"""Activation-based zero-cost proxies of 2022–2024: MeCo, SWAP and Zen-NAS.

Each follows its authors' code, read for what it computes (not copied):

* ``meco``, ``meco_opt`` — Jiang et al., "MeCo: Zero-Shot NAS with One Data and Single Forward
  Pass via Minimum Eigenvalue of Correlation" (NeurIPS 2023), HamsterMimi/MeCo
  ``correlation/NAS_Bench_201.py``;
* ``swap``, ``swap_reg`` — Peng et al., "SWAP-NAS: Sample-Wise Activation Patterns for Ultra-fast
  NAS" (ICLR 2024), pym1024/SWAP ``src/metrics/swap.py`` and ``correlation.py``;
* ``zen`` — Lin et al., "Zen-NAS" (ICCV 2021), idstcv/ZenNAS ``ZeroShotProxy/compute_zen_score.py``.

All are higher-is-better, as their authors rank. None changes the network: MeCo hooks it under
:func:`~ntknas.kernel.modes.kernel_mode` (modes and running statistics restored), SWAP and Zen
work on a deep copy whose weights they re-draw. Random draws use generators seeded from the
context's ``seed`` (:func:`~ntknas.metrics.activation_pass.seeded_generator`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ntknas.kernel.modes import kernel_mode
from ntknas.metrics.activation_pass import gaussian_redraw, seeded_generator
from ntknas.metrics.registry import MetricContext, MetricUnavailable, register_metric

__all__ = [
    "MECO_OPT_CHANNELS",
    "SWAP_BATCH",
    "SWAP_MU",
    "SWAP_REPEATS",
    "SWAP_SIGMA",
    "ZEN_BATCH",
    "ZEN_MIXUP",
    "ZEN_REPEATS",
    "meco_score",
    "minimum_correlation_eigenvalue",
    "pre_pooling_features",
    "swap_regularizer",
    "swap_score",
    "replayed_running_variance",
    "zen_score",
]

MECO_OPT_CHANNELS = 8
"""Channels meco_opt samples per feature map (the authors' ``random.sample(range(n), 8)``)."""

SWAP_BATCH = 16
"""Images SWAP reads (the authors' ``--input_samples``): the first 16 of the batch."""
SWAP_REPEATS = 2
"""Weight re-draws SWAP averages over. The authors average 32; ntknas takes 2 to keep the
proxy set within twice the 2021 set's cost (each draw costs a forward of 16 images)."""
SWAP_MU = 398.0
SWAP_SIGMA = 53_907.0
"""μ and σ of swap_reg's exp(−(P − μ)²/σ), P in thousands of parameters. The authors' code
publishes none (its correlation script runs the plain score); ntknas centres the factor on the
NAS-Bench-201 CIFAR-10 networks: μ the mean and σ the variance of their 15,625 parameter counts
(``params_mb`` × 1000 in the benchmark table)."""

ZEN_BATCH = 16
"""Gaussian images per Zen-NAS evaluation (the authors' ``--batch_size`` default)."""
ZEN_REPEATS = 1
"""Weight re-draws Zen-NAS averages over (the authors: 32; ntknas: 1, for cost — each draw costs
two forwards of 16 images)."""
ZEN_MIXUP = 1e-2
"""γ of the perturbed input x + γε (the authors' ``--mixup_gamma``)."""


# ---------------------------------------------------------------------------------------------
# MeCo
# ---------------------------------------------------------------------------------------------


def minimum_correlation_eigenvalue(feature: torch.Tensor) -> float:
    """λ_min of the row correlation matrix of ``feature`` (rows = channels, float64).

    Undefined correlations (a constant row gives NaN, as ``torch.corrcoef`` returns) and
    infinities are set to 0 before the eigenvalues, as the authors do — so a constant channel
    contributes a zero row and column, diagonal included, and λ_min ≤ 0.
    """
    if feature.shape[1] < 2:  # one value per row: every correlation is NaN, so the matrix is 0
        return 0.0
    correlation = torch.corrcoef(feature.double())
    correlation = torch.nan_to_num(correlation, nan=0.0, posinf=0.0, neginf=0.0)
    return float(torch.linalg.eigvalsh(correlation)[0])


def meco_score(
    net: nn.Module, inputs: torch.Tensor, bn_mode: str = "train", channel_sampler: torch.Generator | None = None
) -> float:
    """MeCo: Σ over module calls of λ_min of the channel correlation of sample 0's output.

    Like the authors' code: a forward hook on every module (the network itself and every
    container included, so a feature map is counted once per module that returns it); each
    hook takes element 0 of the output — sample 0 of a tensor, or the first tensor of a tuple —
    reshaped to (size(0), rest); outputs without spatial extent therefore give constant 1×1
    rows and contribute 0. The authors measure one image (``--batch_size 1``): so does ntknas,
    the first of ``inputs``, so BatchNorm statistics are those of that image alone.
    ``channel_sampler`` given (meco_opt): 8 rows drawn without replacement and λ_min scaled
    by n/8 (all rows, scale 1, when n ≤ 8, where the authors' sampler would fail).
    Non-finite terms are dropped before the sum, as the authors do.
    """
    terms: list[float] = []
    feature_maps = [0]

    def hook(module: nn.Module, args: tuple[object, ...], output: object) -> None:
        if isinstance(output, torch.Tensor) and output.dim() > 0:
            first = output[0]  # sample 0
        elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
            first = output[0]  # the authors' data_output[0]: the tuple's first tensor, whole
        else:
            return
        if first.dim() == 0:
            return
        rows = first.detach().reshape(first.shape[0], -1)
        feature_maps[0] += first.dim() >= 2 and rows.shape[1] > 1
        scale = 1.0
        if channel_sampler is not None and rows.shape[0] > MECO_OPT_CHANNELS:
            scale = rows.shape[0] / MECO_OPT_CHANNELS
            chosen = torch.randperm(rows.shape[0], generator=channel_sampler)[:MECO_OPT_CHANNELS]
            rows = rows[chosen.to(rows.device)]
        terms.append(minimum_correlation_eigenvalue(rows) * scale)

    handles = [module.register_forward_hook(hook) for module in net.modules()]
    try:
        with kernel_mode(net, bn_mode), torch.no_grad():
            net(inputs[:1])
    except ValueError as error:  # e.g. a train-mode BatchNorm1d refuses a batch of one
        raise MetricUnavailable(f"meco runs one image, as its authors do, and the network refused it: {error}") from None
    finally:
        for handle in handles:
            handle.remove()
    if not feature_maps[0]:
        raise MetricUnavailable(
            "meco needs feature maps (outputs of shape B x C x H x W): no module returned one"
        )
    return float(sum(t for t in terms if math.isfinite(t)))


# ---------------------------------------------------------------------------------------------
# Re-drawn copies: SWAP and Zen-NAS
# ---------------------------------------------------------------------------------------------


def _redrawn_passes(
    net: nn.Module, repeats: int, generator: torch.Generator, measure: Callable[[nn.Module], float]
) -> list[float]:
    """``measure`` of ``repeats`` deep copies' worth of re-drawn weights (one copy, re-drawn each
    time), BatchNorm in train mode (batch statistics) as the authors' networks ran."""
    redrawn = copy.deepcopy(net)
    for parameter in redrawn.parameters():
        parameter.requires_grad_(False)
    values = []
    with kernel_mode(redrawn, "train"), torch.no_grad():
        for _ in range(repeats):
            gaussian_redraw(redrawn, generator)
            values.append(measure(redrawn))
    return values


def _column_codes(bits: torch.Tensor) -> torch.Tensor:
    """Each column of a boolean (samples × units) matrix as one integer (samples < 63), or the
    columns themselves: equal codes exactly for equal columns."""
    if bits.shape[0] >= 63:
        return bits.T.contiguous()
    codes = torch.zeros(bits.shape[1], dtype=torch.int64, device=bits.device)
    for sample, row in enumerate(bits):
        codes |= row.long() << sample
    return codes


def _distinct(codes: list[torch.Tensor], samples: int) -> int:
    joined = torch.cat(codes)
    if samples <= 24:  # a presence table of all 2^samples patterns: linear time, no sort
        seen = torch.zeros(2**samples, dtype=torch.bool, device=joined.device)
        seen[joined] = True
        return int(seen.sum())
    return int(torch.unique(joined, dim=0 if joined.dim() > 1 else None).shape[0])


def swap_score(
    net: nn.Module, inputs: torch.Tensor, generator: torch.Generator, repeats: int = SWAP_REPEATS,
    batch: int = SWAP_BATCH,
) -> float:
    """SWAP: the number of distinct activation patterns, mean over ``repeats`` weight re-draws.

    For each re-draw (:func:`~ntknas.metrics.activation_pass.gaussian_redraw`) the first
    ``batch`` images go through the copy; the outputs of every ``nn.ReLU`` whose input is 4-D
    are flattened per sample and concatenated into a samples × units matrix of signs (0 or 1,
    since a ReLU output is ≥ 0); the score is the number of distinct units' columns — how
    many different on/off patterns over the batch the network's units show.
    """
    images = inputs[:batch]
    patterns: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
            patterns.append(_column_codes(output.detach().reshape(images.shape[0], -1) > 0))

    def count(redrawn: nn.Module) -> float:
        patterns.clear()
        handles = [m.register_forward_hook(hook) for m in redrawn.modules() if isinstance(m, nn.ReLU)]
        try:
            redrawn(images)
        finally:
            for handle in handles:
                handle.remove()
        if not patterns:
            raise MetricUnavailable(
                "swap reads nn.ReLU modules applied to 4-D feature maps: the network ran none"
            )
        return float(_distinct(patterns, images.shape[0]))

    return float(np.mean(_redrawn_passes(net, repeats, generator, count)))


def swap_regularizer(net: nn.Module, mu: float = SWAP_MU, sigma: float = SWAP_SIGMA) -> float:
    """exp(−(P − μ)²/σ), P the number of parameter entries in thousands (all of them, as the
    authors' ``count_parameters``)."""
    thousands = sum(p.numel() for p in net.parameters()) / 1e3
    return math.exp(-((thousands - mu) ** 2) / sigma)


def pre_pooling_features(outputs: list[torch.Tensor]) -> torch.Tensor:
    """The last spatial feature map a forward produced (the module outputs in completion order):
    with global pooling, the pooling's input — Zen-NAS's ``forward_pre_GAP``."""
    spatial = [o for o in outputs if o.dim() >= 3 and math.prod(o.shape[2:]) > 1]
    if not spatial:
        raise MetricUnavailable(
            "zen reads the feature map before global pooling: no module returned a map of shape "
            "B x C x H x W with H·W > 1"
        )
    return spatial[-1]


def replayed_running_variance(batch_variances: tuple[float, ...], momentum: float | None) -> float:
    """A BatchNorm layer's ``running_var`` (channel mean) after forwards whose inputs had these
    unbiased batch variances, replaying PyTorch's update from its reset value 1: with momentum
    m, v ← (1 − m) v + m σ²; with ``None``, the cumulative average of the σ²."""
    running = 1.0
    for count, variance in enumerate(batch_variances, start=1):
        weight = 1.0 / count if momentum is None else momentum
        running = (1.0 - weight) * running + weight * variance
    return running


def zen_score(
    net: nn.Module, image_shape: tuple[int, ...] | torch.Size, generator: torch.Generator,
    repeats: int = ZEN_REPEATS, batch: int = ZEN_BATCH, mixup: float = ZEN_MIXUP,
) -> float:
    """Zen-NAS: mean over re-draws of log E_i Σ|f(x_i) − f(x_i + γ ε_i)| + Σ_BN log √mean σ².

    f is the pre-pooling feature map (:func:`pre_pooling_features`) of a copy with re-drawn
    weights, x and ε standard Gaussian images (``batch`` of ``image_shape``), γ = ``mixup``.
    The BN term reads, for each BatchNorm call, the mean over channels of what the authors'
    ``running_var`` holds after the forward pair: PyTorch's update from its reset value 1 with
    the layer's momentum (0.1 by default; ``None``, the cumulative average) applied to the
    unbiased batch variance of each forward's input. ntknas's BatchNorm layers may keep no
    running statistics, so the update is replayed from the inputs, and the network's own
    statistics are never touched. A layer whose input is all zero (a ``none`` edge) thus keeps
    a positive variance, as it does for the authors; only a network whose features do not
    depend on the input (difference 0) scores log 0 = −∞.
    """
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    shape = (batch, *tuple(image_shape))

    def score(redrawn: nn.Module) -> float:
        outputs: list[torch.Tensor] = []
        variances: list[float] = []
        momenta: list[float | None] = []

        def keep(module: nn.Module, args: tuple[object, ...], output: object) -> None:
            if isinstance(output, torch.Tensor) and output.dim() >= 3 and math.prod(output.shape[2:]) > 1:
                outputs[:] = [output]  # only the last one is read

        def variance(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            # From per-channel sums: a reduction over non-adjacent dims costs as much as a conv.
            values = args[0].reshape(args[0].shape[0], args[0].shape[1], -1)
            count = values.shape[0] * values.shape[2]
            total, squares = values.sum(dim=(0, 2)).double(), values.pow(2).sum(dim=(0, 2)).double()
            unbiased = (squares - total * total / count) / max(count - 1, 1)
            variances.append(max(float(unbiased.mean()), 0.0))  # rounding can leave a zero variance below 0
            momenta.append(module.momentum if isinstance(module, nn.modules.batchnorm._BatchNorm) else None)

        handles = [m.register_forward_hook(keep) for m in redrawn.modules()]
        handles += [
            m.register_forward_hook(variance) for m in redrawn.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
        ]
        x = torch.randn(shape, generator=generator).to(device)
        noise = torch.randn(shape, generator=generator).to(device)
        try:
            redrawn(x)
            clean = pre_pooling_features(outputs)
            outputs.clear()
            redrawn(x + mixup * noise)
            mixed = pre_pooling_features(outputs)
        finally:
            for handle in handles:
                handle.remove()
        difference = (clean - mixed).abs().double().reshape(batch, -1).sum(dim=1).mean()
        calls = len(variances) // 2
        scales = [
            math.sqrt(replayed_running_variance((variances[i], variances[calls + i]), momenta[i]))
            for i in range(calls)
        ]
        if difference <= 0 or min(scales, default=1.0) <= 0:
            return -math.inf  # log 0, as the authors' torch.log gives; stored as missing
        return math.log(float(difference)) + sum(math.log(scale) for scale in scales)

    return float(np.mean(_redrawn_passes(net, repeats, generator, score)))


# ---------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------

_SALT_ZEN, _SALT_SWAP, _SALT_MECO_OPT = 1, 2, 3


@register_metric(
    "meco",
    higher_is_better=True,
    family="zero-cost",
    formula=(
        "Σ over module calls of λ_min(corr(sample 0's output as C × HW)), NaN → 0; one image; "
        "every module hooked"
    ),
)
def _meco(context: MetricContext) -> float:
    """MeCo (Jiang et al., 2023); uses ``bn_mode``; deterministic."""
    return meco_score(context.net, context.inputs, context.bn_mode)


@register_metric(
    "meco_opt",
    higher_is_better=True,
    family="zero-cost",
    formula="meco with 8 channels drawn per call (seeded) and each λ_min scaled by C/8",
)
def _meco_opt(context: MetricContext) -> float:
    """MeCo's sampled variant; uses ``bn_mode``; random through ``context.seed``."""
    generator = seeded_generator(context.seed, _SALT_MECO_OPT)
    return meco_score(context.net, context.inputs, context.bn_mode, channel_sampler=generator)


def _swap_count(context: MetricContext) -> float:
    return context.cached(
        "activation/swap",
        lambda: swap_score(context.net, context.inputs, seeded_generator(context.seed, _SALT_SWAP)),
    )


@register_metric(
    "swap",
    higher_is_better=True,
    family="zero-cost",
    uses_bn_mode=False,
    formula=(
        "distinct sign patterns over 16 images of the units of every nn.ReLU on 4-D inputs, "
        f"weights re-drawn N(0,1), mean of {SWAP_REPEATS} draws"
    ),
)
def _swap(context: MetricContext) -> float:
    """SWAP (Peng et al., ICLR 2024); re-draws weights, so ignores ``bn_mode`` and training."""
    return _swap_count(context)


@register_metric(
    "swap_reg",
    higher_is_better=True,
    family="zero-cost",
    uses_bn_mode=False,
    formula=f"swap × exp(−(P − μ)²/σ), P = parameters/1e3, μ = {SWAP_MU:g}, σ = {SWAP_SIGMA:g}",
)
def _swap_reg(context: MetricContext) -> float:
    """Regularized SWAP: favours networks near μ thousand parameters (see :data:`SWAP_MU`)."""
    return _swap_count(context) * swap_regularizer(context.net)


@register_metric(
    "zen",
    higher_is_better=True,
    family="zero-cost",
    uses_bn_mode=False,
    formula=(
        "log E|f(x) − f(x + 0.01ε)|₁ on pre-pooling features + Σ_BN log √mean σ², weights "
        f"re-drawn N(0,1), Gaussian x and ε (16 images), mean of {ZEN_REPEATS} draws"
    ),
)
def _zen(context: MetricContext) -> float:
    """Zen-NAS (Lin et al., ICCV 2021); re-draws weights and inputs: ignores the batch's values,
    ``bn_mode`` and training."""
    generator = seeded_generator(context.seed, _SALT_ZEN)
    return zen_score(context.net, context.inputs.shape[1:], generator)
