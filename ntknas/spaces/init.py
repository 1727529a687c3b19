"""Weight initialization applied after a network is built (see docs/protocol.md, "Experiment 1", initialization).

Two settings, chosen independently:

``init`` (weights)
    ``"study"``   -- what the study measured: NAS-Bench-101 networks are re-initialized in module
                     order (every ``Conv2d`` weight ~ N(0, std = sqrt(2 / (k_h·k_w·out_channels)))
                     and its bias 0; BatchNorm weight 1 and bias 0; ``Linear`` weight ~
                     N(0, std = 0.01) and bias 0); NAS-Bench-201 and custom networks keep
                     PyTorch's construction-time initialization, as the study did.
    ``"default"`` -- PyTorch's construction-time initialization, for every space.
    ``"xavier"``, ``"kaiming"``, ``"zero"`` -- the study code's alternatives: every ``Conv2d`` and
                     ``Linear`` weight drawn by ``xavier_normal_`` (gain 1) or ``kaiming_normal_``
                     (fan-in, gain sqrt(2)), or set to 0, on top of PyTorch's initialization.
``bias_init``
    ``"default"`` -- leave biases as the weight scheme left them.
    ``"zero"``    -- set every ``Conv2d`` and ``Linear`` bias to 0 afterwards.

(The study code re-initializes its NB101 networks in their constructor and applies the
alternatives after that; only the classifier's bias tells the two orders apart, so
``init="xavier", bias_init="zero"`` reproduces its NB101 "xavier" run exactly.)

Random draws come from torch's global generator in module order, so a network built after
``torch.manual_seed(s)`` is the same every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ntknas.errors import UnknownNameError, option

WEIGHT_INITS: tuple[str, ...] = ("study", "default", "xavier", "kaiming", "zero")
BIAS_INITS: tuple[str, ...] = ("default", "zero")

#: Spaces whose study initialization is a re-initialization (the others keep PyTorch's).
_REINITIALIZED_BY_STUDY = frozenset({"nb101"})
#: The built-in spaces, whose builders take ``init`` / ``bias_init`` themselves; for a space a
#: user registers, the experiments call :func:`initialize` after its ``build``.
INIT_SPACES = frozenset({"nb201", "nb101", "custom"})
NB101_LINEAR_STD = 0.01


@dataclass(frozen=True)
class InitScheme:
    """A (weights, biases) initialization, as the user named it."""

    weights: str = "study"
    biases: str = "default"

    def __post_init__(self) -> None:
        if self.weights not in WEIGHT_INITS:
            raise UnknownNameError(
                f"unknown {option('init')} {self.weights!r}: use one of {', '.join(WEIGHT_INITS)}"
            )
        if self.biases not in BIAS_INITS:
            raise UnknownNameError(
                f"unknown {option('bias_init')} {self.biases!r}: use one of {', '.join(BIAS_INITS)}"
            )

    def effective(self, space: str) -> InitScheme:
        """The same initialization named canonically for ``space``: ``"study"`` becomes
        ``"default"`` where the study kept PyTorch's (NB201, custom), so two names of one
        initialization share a run folder."""
        if self.weights == "study" and space not in _REINITIALIZED_BY_STUDY:
            return InitScheme("default", self.biases)
        return self

    @property
    def is_pytorch_default(self) -> bool:
        return self.weights == "default" and self.biases == "default"

    def label(self) -> str:
        """``weights`` or ``weights+zero-bias``: how run settings and tags name it."""
        return self.weights if self.biases == "default" else f"{self.weights}+{self.biases}-bias"


def init_identity(space: str, weights: str = "study", biases: str = "default") -> str | None:
    """The effective initialization's label, or None for PyTorch's default.

    Run identities (correlate's protocol tag, track's settings) include it only when it is not
    PyTorch's default, so run folders written before the option existed keep their identity:
    they were all measured with PyTorch's initialization.
    """
    scheme = InitScheme(weights, biases).effective(space)
    return None if scheme.is_pytorch_default else scheme.label()


def initialize(net: nn.Module, space: str, weights: str = "study", biases: str = "default") -> nn.Module:
    """Re-initialize ``net`` (a network of ``space``) in place and return it."""
    scheme = InitScheme(weights, biases).effective(space)
    if scheme.weights == "study":
        _study_nb101(net)
    elif scheme.weights != "default":
        _reinit_weights(net, scheme.weights)
    if scheme.biases == "zero":
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
                with torch.no_grad():
                    module.bias.zero_()
    return net


def _study_nb101(net: nn.Module) -> None:
    """The study's NB101 re-initialization, in module order (one draw per layer, in turn)."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                k_h, k_w = module.kernel_size
                fan_out = k_h * k_w * module.out_channels
                module.weight.normal_(0.0, math.sqrt(2.0 / fan_out))
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                if module.weight is not None:
                    module.weight.fill_(1.0)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0.0, NB101_LINEAR_STD)
                if module.bias is not None:
                    module.bias.zero_()


def _reinit_weights(net: nn.Module, weights: str) -> None:
    with torch.no_grad():
        for module in net.modules():
            if not isinstance(module, (nn.Conv2d, nn.Linear)):
                continue
            if weights == "xavier":
                nn.init.xavier_normal_(module.weight)
            elif weights == "kaiming":
                nn.init.kaiming_normal_(module.weight)
            else:  # zero
                module.weight.zero_()


__all__ = ["BIAS_INITS", "INIT_SPACES", "WEIGHT_INITS", "InitScheme", "init_identity", "initialize"]
