"""One hooked forward pass of the batch, shared by the activation-based proxies, and the seeded
random draws they make.

:func:`activation_pass` runs the network once on the context's batch, in the context's BatchNorm
mode, and collects what the evaluation's metrics (``context.wanted``) need from it:

* ``naswot``: the ReLU-code kernel K_H (inputs of every ReLU-family module);
* ``az_expressivity`` / ``az_progressivity``: the spectrum entropy of every cell feature map;
* ``az_trainability``: the largest singular value of each cell's backward map on Rademacher
  cotangents (the forward then runs with autograd on, and the backward of each cell follows it).

The result is cached on the context, so naswot and the AZ-NAS components together cost one
forward. Proxies whose authors measure something else (MeCo a single image, Zen-NAS and SWAP
re-drawn weights) run their own, cheaper passes in :mod:`ntknas.metrics.activation_proxies`.

Randomness: every draw takes a ``torch.Generator`` from :func:`seeded_generator`, seeded from
``context.seed`` and a per-use salt, on the CPU (so a value does not depend on the device) and
never the global RNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ntknas.kernel.modes import kernel_mode
from ntknas.metrics.registry import MetricContext, MetricUnavailable

__all__ = [
    "ActivationPass",
    "ReluCodeKernel",
    "activation_pass",
    "cell_modules",
    "gaussian_redraw",
    "rademacher",
    "relu_modules",
    "seeded_generator",
    "spectrum_entropy",
    "cell_trainability",
]

# Activation classes whose name contains "ReLU": NASWOT's authors hook every module whose type
# name contains that string.
_RELU_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU)

# Largest integer count a float32 matmul of 0/±1 entries still sums exactly.
_FLOAT32_EXACT = 2**24

# The container attributes that hold a network's cells, after its ``stem`` (NB201's TinyNetwork
# and ntknas's NB201 network: ``cells``; ntknas's NB101 network: ``layers``).
CELL_CONTAINERS = ("cells", "layers")

# AZ-NAS's constants: the entropy's log(p + 1e-8) and the trainability's 1/(s + 1e-6).
_ENTROPY_EPS = 1e-8
_SINGULAR_EPS = 1e-6

_AZ_SPECTRUM = frozenset({"az_expressivity", "az_progressivity"})


def seeded_generator(seed: int, salt: int) -> torch.Generator:
    """A CPU generator for one use (``salt``) of one evaluation's ``seed``: the uses draw
    independent streams, and none touches the global RNG."""
    return torch.Generator(device="cpu").manual_seed((int(seed) * 1_000_003 + salt) % 2**63)


def rademacher(shape: torch.Size | tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Independent ±1 entries with probability ½ each (on the CPU)."""
    return torch.randint(0, 2, tuple(shape), generator=generator).float() * 2 - 1


def gaussian_redraw(net: nn.Module, generator: torch.Generator) -> None:
    """Re-draw ``net``'s weights in place as Zen-NAS and SWAP do: conv and linear weights N(0, 1)
    and their biases 0; BatchNorm and GroupNorm weights 1 and biases 0; other parameters kept."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
                weight = module.weight
                weight.copy_(torch.randn(weight.shape, generator=generator).to(weight))
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) and module.affine:
                module.weight.fill_(1.0)
                module.bias.zero_()


class ReluCodeKernel:
    """Accumulates NASWOT's K_H from forward hooks on ReLU-family modules.

    Register :meth:`hook` on the modules :func:`relu_modules` lists; after the forward,
    :meth:`result` is K_H (see :func:`ntknas.metrics.zero_cost.relu_code_kernel`).
    """

    def __init__(self, batch: int, device: torch.device) -> None:
        self.batch = batch
        self.kernel = torch.zeros((batch, batch), dtype=torch.float64, device=device)
        self.calls = 0

    def hook(self, module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        codes = args[0].detach().reshape(self.batch, -1) > 0
        units = codes.shape[1]
        dtype = torch.float32 if units < _FLOAT32_EXACT else torch.float64
        signs = codes.to(dtype) * 2 - 1
        agreement = signs @ signs.T
        self.kernel.add_((agreement.double() + units) / 2)
        self.calls += 1

    def result(self) -> np.ndarray:
        """K_H as float64; unavailable when no ReLU-family module ran."""
        if self.calls == 0:
            raise MetricUnavailable(
                "naswot needs ReLU modules: the network ran no nn.ReLU-family module "
                "(functional relu calls cannot be hooked)"
            )
        return self.kernel.cpu().numpy()


def relu_modules(net: nn.Module) -> list[nn.Module]:
    """The ReLU-family modules NASWOT reads codes from (every module whose class is a ReLU variant)."""
    return [module for module in net.modules() if isinstance(module, _RELU_TYPES)]


def cell_modules(net: nn.Module) -> list[nn.Module]:
    """AZ-NAS's feature sources: the network's ``stem`` then each member of its ``cells`` (or
    ``layers``) container, in order — the stem and cell outputs of the authors'
    ``extract_cell_features``."""
    stem = getattr(net, "stem", None)
    container = next((getattr(net, name) for name in CELL_CONTAINERS if hasattr(net, name)), None)
    if not isinstance(stem, nn.Module) or not isinstance(container, (nn.ModuleList, nn.Sequential)):
        raise MetricUnavailable(
            "AZ-NAS reads the outputs of the stem and of each cell: give the network a `stem` module "
            f"and a `{CELL_CONTAINERS[0]}` nn.ModuleList (as NB201's network has)"
        )
    return [stem, *container]


def spectrum_entropy(feature: torch.Tensor) -> float:
    """−Σ p log(p + 1e-8), p the eigenvalues of the channel covariance normalized to sum 1.

    The feature map (B, C, spatial…) is read as B·H·W observations of C channels; the
    covariance is that of the centred observations divided by their number (AZ-NAS's
    expressivity of one layer). Computed in float64.
    """
    channels = feature.shape[1]
    rows = feature.detach().double().movedim(1, -1).reshape(-1, channels)
    rows = rows - rows.mean(dim=0, keepdim=True)
    covariance = rows.T @ rows / rows.shape[0]
    values = torch.linalg.eigvalsh(covariance)
    probabilities = values / values.sum()
    return float((-probabilities * torch.log(probabilities + _ENTROPY_EPS)).sum())


def cell_trainability(f_in: torch.Tensor, f_out: torch.Tensor, cotangent: torch.Tensor) -> float:
    """2 − s − 1/(s + 1e-6) for one cell, s the largest singular value of its backward map.

    g_in = (∂f_out/∂f_in)ᵀ g_out for the Rademacher ``cotangent`` g_out; a cell whose output
    is smaller spatially has g_in pixel-unshuffled to the same size; the map is the
    C_in×C_out matrix mean over positions of g_in g_outᵀ. A cell that passes g_out through
    unchanged scores −∞ (the authors' rule for an identity cell).
    """
    g_in: torch.Tensor | None = None
    if f_out.requires_grad and f_in.requires_grad:
        (g_in,) = torch.autograd.grad(f_out, f_in, cotangent, retain_graph=True, allow_unused=True)
    g_in = torch.zeros_like(f_in) if g_in is None else g_in.detach()
    g_out = cotangent
    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
        return -math.inf
    if g_in.dim() != 4 or g_out.dim() != 4:
        raise MetricUnavailable(
            f"AZ-NAS trainability needs 4-D cell feature maps, got {tuple(g_in.shape)} -> {tuple(g_out.shape)}"
        )
    if g_in.shape[2:] != g_out.shape[2:]:
        stride = g_in.shape[2] // g_out.shape[2]
        if stride < 1 or tuple(g_in.shape[2:]) != (stride * g_out.shape[2], stride * g_out.shape[3]):
            raise _misaligned(f_in, f_out)
        g_in = F.pixel_unshuffle(g_in, stride)
    positions = g_out.shape[0] * g_out.shape[2] * g_out.shape[3]
    flat_in = g_in.double().permute(0, 2, 3, 1).reshape(-1, g_in.shape[1])
    flat_out = g_out.double().permute(0, 2, 3, 1).reshape(-1, g_out.shape[1])
    if flat_in.shape[0] != positions:
        raise _misaligned(f_in, f_out)
    top = float(torch.linalg.svdvals(flat_in.T @ flat_out / positions).max())
    return 2.0 - top - 1.0 / (top + _SINGULAR_EPS)


def _misaligned(f_in: torch.Tensor, f_out: torch.Tensor) -> MetricUnavailable:
    return MetricUnavailable(
        f"AZ-NAS trainability cannot align a cell's input {tuple(f_in.shape)} with its output {tuple(f_out.shape)}"
    )


@dataclass
class ActivationPass:
    """What one forward of the batch collected; ``None`` (with the reason) for what was not asked
    or could not be read."""

    groups: frozenset[str]
    relu_codes: ReluCodeKernel | None = None
    entropies: list[float] | None = None
    trainabilities: list[float] | None = None
    reasons: dict[str, str] = field(default_factory=dict)

    def relu_code_kernel(self) -> np.ndarray:
        assert self.relu_codes is not None, "the pass collected ReLU codes"
        return self.relu_codes.result()

    def cell_entropies(self) -> list[float]:
        if self.entropies is None:
            raise MetricUnavailable(self.reasons.get("cells", "no cell features were collected"))
        return self.entropies

    def cell_trainabilities(self) -> list[float]:
        if self.trainabilities is None:
            raise MetricUnavailable(self.reasons.get("trainability", self.reasons.get("cells", "not collected")))
        return self.trainabilities


def _groups(names: tuple[str, ...] | list[str]) -> set[str]:
    groups = set()
    if "naswot" in names:
        groups.add("naswot")
    if _AZ_SPECTRUM & set(names):
        groups.add("spectrum")
    if "az_trainability" in names:
        groups.add("trainability")
    return groups


def activation_pass(context: MetricContext, metric: str) -> ActivationPass:
    """The shared pass, computed on first use for every activation metric of ``context.wanted``
    (and ``metric``); recomputed only if ``metric`` needs a part an earlier pass skipped."""
    needed = _groups([metric])
    cached: ActivationPass | None = context._cache.get("activation_pass")
    if cached is None or not needed <= cached.groups:
        groups = frozenset(needed | _groups(context.wanted))
        cached = _run_pass(context, groups)
        context._cache["activation_pass"] = cached
    return cached


def _run_pass(context: MetricContext, groups: frozenset[str]) -> ActivationPass:
    net, inputs = context.net, context.inputs
    result = ActivationPass(groups)
    handles = []
    if "naswot" in groups:
        result.relu_codes = ReluCodeKernel(inputs.shape[0], inputs.device)
        handles += [module.register_forward_hook(result.relu_codes.hook) for module in relu_modules(net)]
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    if groups & {"spectrum", "trainability"}:
        try:
            sources = cell_modules(net)
        except MetricUnavailable as unavailable:
            result.reasons["cells"] = str(unavailable)
            sources = []

        def record(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            calls.append((args[0], output))

        handles += [module.register_forward_hook(record) for module in sources]
    gradients = "trainability" in groups and "cells" not in result.reasons
    try:
        with kernel_mode(net, context.bn_mode), torch.set_grad_enabled(gradients):
            net(inputs)
            if calls:
                _read_cells(result, calls, groups, context.seed)
    finally:
        for handle in handles:
            handle.remove()
    return result


def _read_cells(
    result: ActivationPass, calls: list[tuple[torch.Tensor, torch.Tensor]], groups: frozenset[str], seed: int
) -> None:
    features = [output for _, output in calls]
    if any(not isinstance(f, torch.Tensor) or f.dim() < 2 for f in features):
        result.reasons["cells"] = "AZ-NAS needs each cell to return one feature map of shape (B, C, ...)"
        return
    if "spectrum" in groups:
        result.entropies = [spectrum_entropy(feature) for feature in features]
    if "trainability" not in groups:
        return
    chained = all(calls[i][0] is calls[i - 1][1] for i in range(1, len(calls)))
    if not chained or len(calls) < 2:
        result.reasons["trainability"] = (
            "AZ-NAS trainability needs a chain of at least one cell, each reading the previous output"
        )
        return
    if not features[-1].requires_grad:
        result.reasons["trainability"] = "AZ-NAS trainability needs gradients: the cells' parameters require none"
        return
    generator = seeded_generator(seed, salt=4)
    scores = []
    # The authors draw the cotangents from the last cell backwards; the same order keeps draws aligned.
    for i in reversed(range(1, len(features))):
        cotangent = rademacher(features[i].shape, generator).to(features[i])
        scores.append(cell_trainability(features[i - 1], features[i], cotangent))
    result.trainabilities = scores
