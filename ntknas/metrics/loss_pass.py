"""The one cross-entropy forward/backward that the loss-gradient proxies share.

``grad_norm``, ``snip``, ``plain``, ``fisher`` and grasp's first gradient all read the gradient
of the mean cross-entropy L of the whole batch; computing it once per network and BatchNorm mode
(:func:`shared_loss_pass`, cached on the :class:`MetricContext`) is what keeps the gradient family
about as cheap as one of its members. The pass records only what the evaluation's metrics need:
fisher's per-channel sums (hooks on every conv/linear output), and grasp's Hessian-gradient product
H g (a second backward through the first gradient's graph, taken before the graph is freed).

"Weight layers" are ``nn.Conv*`` and ``nn.Linear`` modules, as the original implementations sum
over ``nn.Conv2d``/``nn.Linear``; biases and normalization parameters are not scored. Gradients
are taken with ``torch.autograd.grad``, so ``.grad`` of the network is never written, and
:func:`~ntknas.kernel.modes.kernel_mode` restores layer modes and running statistics.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from ntknas.errors import DataError
from ntknas.kernel.modes import kernel_mode
from ntknas.metrics.registry import MetricContext, MetricUnavailable

__all__ = [
    "LossPass",
    "check_labels",
    "run_loss_pass",
    "scored_weights",
    "shared_loss_pass",
    "weight_layers",
]


def weight_layers(net: nn.Module) -> list[nn.Module]:
    """The conv and linear modules whose weights the gradient proxies score, in module order."""
    return [
        module
        for module in net.modules()
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear))
        and isinstance(getattr(module, "weight", None), torch.Tensor)
    ]


def scored_weights(net: nn.Module) -> list[torch.Tensor]:
    """The trainable weights of :func:`weight_layers`; unavailable when there is none."""
    weights: list[torch.Tensor] = [
        module.weight for module in weight_layers(net) if isinstance(module.weight, torch.Tensor) and module.weight.requires_grad
    ]
    if not weights:
        raise MetricUnavailable(
            "the network has no trainable conv or linear weight; gradient proxies score only those"
        )
    return weights


def check_labels(logits: torch.Tensor, targets: torch.Tensor) -> None:
    if logits.dim() != 2:
        raise DataError(
            f"the network returned outputs of shape {tuple(logits.shape)}; loss-based proxies "
            "need logits of shape batch x classes"
        )
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= logits.shape[1]):
        raise DataError(
            f"labels range {int(targets.min())}..{int(targets.max())} but the network has "
            f"{logits.shape[1]} outputs: build it with num_classes > the largest label"
        )


@dataclass(frozen=True)
class LossPass:
    """What one forward/backward of the mean cross-entropy L over a batch recorded.

    ``gradients[i]`` is ∂L/∂``weights[i]`` (detached; ``None`` for a weight that does not reach
    the loss). ``channel_fisher[j]`` belongs to ``layers[j]`` (every weight layer, trainable or
    not): per output channel k, Σ over the layer's calls of ½·mean_n (Σ_spatial a·∂L/∂a)², a the
    layer's output (``None`` when no gradient reached it); the tuple is ``None`` when fisher was
    not recorded. ``hessian_gradients[i]`` is (H g)_i = ∂(Σ_j g_j·∂L/∂W_j)/∂W_i with g the
    detached gradient (``None`` when not computed).
    """

    weights: tuple[torch.Tensor, ...]
    gradients: tuple[torch.Tensor | None, ...]
    layers: tuple[nn.Module, ...]
    channel_fisher: tuple[torch.Tensor | None, ...] | None = None
    hessian_gradients: tuple[torch.Tensor | None, ...] | None = None


class _ChannelFisherRecorder:
    """Forward hooks on the weight layers that attach a gradient hook to each call's output.

    The reference implementation wraps every conv/linear output in an identity module with a
    backward hook; a tensor hook on the same output receives the same gradient ∂L/∂a. Each call
    is paired with its own output, so a layer called twice adds two terms (the reference keeps
    only the last call's activation and fails on the second backward hook).
    """

    def __init__(self, layers: tuple[nn.Module, ...]) -> None:
        self.layers = layers
        self.sums: list[torch.Tensor | None] = [None] * len(layers)
        self._module_handles: list[RemovableHandle] = []
        self._tensor_handles: list[RemovableHandle] = []

    @contextmanager
    def attached(self) -> Iterator[_ChannelFisherRecorder]:
        self._module_handles = [
            layer.register_forward_hook(self._forward_hook(position)) for position, layer in enumerate(self.layers)
        ]
        try:
            yield self
        finally:
            for handle in self._module_handles + self._tensor_handles:
                handle.remove()
            self._module_handles, self._tensor_handles = [], []

    def detach_gradient_hooks(self) -> None:
        """Stop recording: a later backward through the same graph (grasp's) must not add again."""
        for handle in self._tensor_handles:
            handle.remove()
        self._tensor_handles = []

    def _forward_hook(self, position: int) -> Any:
        channels_last = isinstance(self.layers[position], nn.Linear)

        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if not isinstance(output, torch.Tensor) or not output.requires_grad:
                return
            # The values are read at backward time, as the reference does: an in-place op after
            # the layer (ReLU(inplace=True)) then yields relu(a)·∂L/∂a, which equals a·∂L/∂a there.
            activation = output.detach()
            self._tensor_handles.append(
                output.register_hook(lambda gradient: self._record(position, activation, gradient, channels_last))
            )

        return hook

    def _record(self, position: int, activation: torch.Tensor, gradient: torch.Tensor, channels_last: bool) -> None:
        product = activation * gradient.detach()
        if channels_last and product.dim() > 2:
            product = product.movedim(-1, 1)  # a Linear's features are its last dimension
        per_channel = product.sum(dim=tuple(range(2, product.dim()))) if product.dim() > 2 else product
        term = per_channel.double().pow(2).mean(dim=0).mul(0.5)
        previous = self.sums[position]
        self.sums[position] = term if previous is None else previous + term


def run_loss_pass(
    net: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    bn_mode: str = "train",
    *,
    record_fisher: bool = False,
    hessian_gradient: bool = False,
) -> LossPass:
    """One forward of ``inputs`` and one gradient of the mean cross-entropy; see :class:`LossPass`.

    Normalization layers run in ``bn_mode``, every other layer in eval mode. With
    ``hessian_gradient`` the first gradient keeps its graph and one more backward gives H g
    (grasp), still inside the same modes, so eval-mode BatchNorm's saved running statistics
    are intact when it runs.
    """
    weights = scored_weights(net)
    layers = tuple(weight_layers(net))
    recorder = _ChannelFisherRecorder(layers)
    hessian: tuple[torch.Tensor | None, ...] | None = None
    with kernel_mode(net, bn_mode), torch.enable_grad(), _attached_if(recorder, record_fisher):
        logits = net(inputs)
        check_labels(logits, targets)
        loss = F.cross_entropy(logits, targets)
        gradients = torch.autograd.grad(loss, weights, allow_unused=True, create_graph=hessian_gradient)
        recorder.detach_gradient_hooks()
        if hessian_gradient:
            hessian = _hessian_gradient_product(weights, gradients)
    return LossPass(
        weights=tuple(weights),
        gradients=tuple(None if g is None else g.detach() for g in gradients),
        layers=layers,
        channel_fisher=tuple(recorder.sums) if record_fisher else None,
        hessian_gradients=hessian,
    )


@contextmanager
def _attached_if(recorder: _ChannelFisherRecorder, wanted: bool) -> Iterator[None]:
    if not wanted:
        yield
        return
    with recorder.attached():
        yield


def _hessian_gradient_product(
    weights: list[torch.Tensor], gradients: tuple[torch.Tensor | None, ...]
) -> tuple[torch.Tensor | None, ...]:
    """H g = ∂(Σ_i g_i · ∂L/∂W_i)/∂W with g detached: zero-cost-nas's ``z.backward()``."""
    present = [(weight, g) for weight, g in zip(weights, gradients) if g is not None and g.requires_grad]
    if not present:
        return tuple(None for _ in weights)  # L is linear in every weight that reaches it
    inner = sum((g.detach() * g).sum() for _, g in present)
    assert isinstance(inner, torch.Tensor)
    products = torch.autograd.grad(inner, weights, allow_unused=True)
    return tuple(None if p is None else p.detach() for p in products)


def shared_loss_pass(context: MetricContext, *, hessian_gradient: bool = False, fisher: bool = False) -> LossPass:
    """The evaluation's cross-entropy pass, computed once and cached on ``context``.

    It records fisher's sums when fisher is among ``context.wanted`` (or nothing is listed) and
    H g when grasp is. A caller that needs what the cached pass lacks (a metric computed outside
    the evaluation's list) gets a pass of its own, cached separately.
    """
    wanted = set(context.wanted)

    def compute(with_fisher: bool, with_hessian: bool) -> LossPass:
        return run_loss_pass(
            context.net,
            context.inputs,
            context.targets,
            context.bn_mode,
            record_fisher=with_fisher,
            hessian_gradient=with_hessian,
        )

    record_fisher = fisher or not wanted or "fisher" in wanted
    keep_hessian = hessian_gradient or "grasp" in wanted
    shared: LossPass = context.cached("loss_pass", lambda: compute(record_fisher, keep_hessian))
    lacks_hessian = hessian_gradient and shared.hessian_gradients is None
    lacks_fisher = fisher and shared.channel_fisher is None
    if lacks_hessian or lacks_fisher:
        return context.cached(
            f"loss_pass/{'hessian' if lacks_hessian else ''}{'fisher' if lacks_fisher else ''}",
            lambda: compute(fisher, hessian_gradient),
        )
    return shared
