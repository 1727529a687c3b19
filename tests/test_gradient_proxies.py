"""The gradient-family proxies (grasp, fisher, plain, l2_norm, epe_nas, zico): hand-derived values on
tiny networks, independent slow computations, invariances, the shared pass, and refusals."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from net_state import assert_same, snapshot
from torch import nn

from ntknas.metrics import MetricUnavailable, get_metric
from ntknas.metrics.gradient_proxies import (
    EPE_NAS_K,
    epe_nas_from_jacobians,
    fisher_score,
    grasp_score,
    l2_norm_score,
    plain_score,
    zico_from_gradients,
    zico_score,
)
from ntknas.scoring import score_run
from ntknas.spaces.nb201 import build_nb201

GRADIENT_FAMILY = ("grasp", "fisher", "plain", "l2_norm", "epe_nas", "zico")
NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _batch(n: int, classes: int, shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=generator), torch.randint(0, classes, (n,), generator=generator)


def _values(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, names, bn_mode: str = "train") -> dict:
    run = score_run(net, inputs, targets, names, bn_mode)
    for name, result in run.values.items():
        assert not result.missing, (name, result.reason)
    return {name: result.value for name, result in run.values.items()}


class _ConvNet(nn.Module):
    """conv(bias) -> BN -> ReLU -> conv -> pool -> linear: small, with batch coupling in train mode."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 5, 1, bias=False)
        self.fc = nn.Linear(5, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(torch.relu(self.bn(self.conv(x)))).mean(dim=(2, 3))
        return self.fc(x)


def _in_modes(net: nn.Module, bn_mode: str) -> nn.Module:
    """A copy in the modes the proxies use: normalization in bn_mode, everything else eval."""
    reference = copy.deepcopy(net)
    for module in reference.modules():
        module.train(isinstance(module, nn.modules.batchnorm._BatchNorm) and bn_mode == "train")
    return reference


def _weights(net: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def test_registration_directions_and_flags() -> None:
    for name in GRADIENT_FAMILY:
        metric = get_metric(name)
        assert metric.family == "zero-cost"
        assert metric.higher_is_better is True
        assert metric.formula
        assert metric.needs_kernel is False
    assert get_metric("l2_norm").uses_bn_mode is False and get_metric("l2_norm").needs_labels is False
    for name in ("grasp", "fisher", "plain", "epe_nas", "zico"):
        assert get_metric(name).uses_bn_mode and get_metric(name).needs_labels


# ---------------------------------------------------------------------------------------------
# One linear layer f(x) = W x: every loss proxy in closed form (softmax p, one-hot y, z = W x)
# ---------------------------------------------------------------------------------------------


def _linear_case(n: int = 6, classes: int = 3, features: int = 4, seed: int = 2):
    torch.manual_seed(seed)
    net = nn.Linear(features, classes, bias=False).double()
    inputs, targets = _batch(n, classes, (features,), seed)
    inputs = inputs.double()
    w = net.weight.detach().numpy()
    x = inputs.numpy()
    z = x @ w.T
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = np.eye(classes)[targets.numpy()]
    return net, inputs, targets, w, x, z, p, y


def test_plain_fisher_and_grasp_of_a_linear_layer_by_hand() -> None:
    net, inputs, targets, w, x, z, p, y = _linear_case()
    n, features = x.shape
    delta = (p - y) / n  # ∂L/∂z_n of the mean cross-entropy
    gradient = delta.T @ x  # ∂L/∂W
    # plain: Σ W ⊙ ∂L/∂W = Σ_n Σ_c δ_nc z_nc.
    assert plain_score(net, inputs, targets) == pytest.approx(float((w * gradient).sum()), rel=1e-12)
    assert plain_score(net, inputs, targets) == pytest.approx(float((delta * z).sum()), rel=1e-12)
    # fisher: the layer's output is z, its gradient δ; channel c scores ½ mean_n (z_nc δ_nc)²,
    # broadcast to the `features` weights of that output channel.
    expected_fisher = features * (0.5 * ((z * delta) ** 2).mean(axis=0)).sum()
    assert fisher_score(net, inputs, targets) == pytest.approx(float(expected_fisher), rel=1e-12)
    # grasp: the Hessian of the mean cross-entropy in W maps V to (1/n) Σ_n S_n V x_n x_nᵀ,
    # S_n = diag(p_n) − p_n p_nᵀ; grasp = −Σ W ⊙ H g.
    hessian_g = sum(
        (np.diag(p[i]) - np.outer(p[i], p[i])) @ gradient @ np.outer(x[i], x[i]) for i in range(n)
    ) / n
    assert grasp_score(net, inputs, targets) == pytest.approx(float(-(w * hessian_g).sum()), rel=1e-10)


def test_zico_of_a_linear_layer_by_hand() -> None:
    net, inputs, targets, w, x, z, p, y = _linear_case(n=6)
    halves = []
    for part in (slice(0, 3), slice(3, 6)):
        halves.append(((p[part] - y[part]) / 3).T @ x[part])
    first, second = halves[0].ravel(), halves[1].ravel()
    differ = first != second
    ratios = (np.abs(first) + np.abs(second))[differ] / np.abs(first - second)[differ]
    assert zico_score(net, inputs, targets) == pytest.approx(math.log(ratios.sum()), rel=1e-12)


def test_l2_norm_by_hand_and_its_scaling() -> None:
    net = nn.Sequential(nn.Linear(2, 1, bias=False), nn.ReLU(), nn.Conv1d(1, 2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[3.0, 4.0]]))
        net[2].weight.copy_(torch.tensor([[[5.0]], [[12.0]]]))
        net[2].bias.fill_(100.0)  # biases are not scored
    assert l2_norm_score(net) == pytest.approx(5.0 + 13.0, rel=1e-12)
    net[0].weight.requires_grad_(False)  # every weight counts, trainable or not (NASLib)
    assert l2_norm_score(net) == pytest.approx(18.0, rel=1e-12)
    scaled = copy.deepcopy(net)
    with torch.no_grad():
        for module in (scaled[0], scaled[2]):
            module.weight.mul_(-2.5)
    assert l2_norm_score(scaled) == pytest.approx(2.5 * 18.0, rel=1e-12)


def test_epe_nas_by_hand() -> None:
    k = EPE_NAS_K
    rows = np.array(
        [
            [1.0, 2.0, 4.0, 8.0],  # class 0: two perfectly correlated rows, ρ = 1 everywhere
            [2.0, 4.0, 8.0, 16.0],
            [1.0, -1.0, 1.0, -1.0],  # class 1: two uncorrelated rows, ρ = I
            [1.0, 1.0, -1.0, -1.0],
            [0.0, 1.0, 2.0, 5.0],  # class 2: one sample
        ]
    )
    labels = np.array([0, 0, 1, 1, 2])
    expected = 4 * math.log(1 + k) + abs(2 * math.log(1 + k) + 2 * math.log(k)) + math.log(1 + k)
    assert epe_nas_from_jacobians(rows, labels) == pytest.approx(expected, rel=1e-12)
    # A relabelling, a reordering and a positive scaling of the rows change nothing.
    order = np.array([4, 2, 0, 3, 1])
    assert epe_nas_from_jacobians(3 * rows[order], (labels[order] + 5)) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Independent slow computations on a network with BatchNorm, in both modes
# ---------------------------------------------------------------------------------------------


def _conv_case(seed: int = 3, n: int = 6, classes: int = 3):
    torch.manual_seed(seed)
    net = _ConvNet(classes)
    with torch.no_grad():  # running statistics unlike the batch's, so the two modes differ
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    inputs, targets = _batch(n, classes, (3, 6, 6), seed)
    return net, inputs, targets


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_fisher_equals_per_sample_loops_over_retained_output_gradients(bn_mode: str) -> None:
    net, inputs, targets = _conv_case()
    reference = _in_modes(net, bn_mode)
    outputs: dict[nn.Module, torch.Tensor] = {}

    def keep(module: nn.Module, args, output: torch.Tensor) -> None:
        output.retain_grad()
        outputs[module] = output

    layers = [reference.conv, reference.conv2, reference.fc]
    for layer in layers:
        layer.register_forward_hook(keep)
    F.cross_entropy(reference(inputs), targets).backward()
    expected = 0.0
    for layer in layers:
        activation, gradient = outputs[layer].detach(), outputs[layer].grad
        weights_per_channel = layer.weight[0].numel()
        for channel in range(activation.shape[1]):
            per_sample = []
            for sample in range(activation.shape[0]):
                per_sample.append(float((activation[sample, channel] * gradient[sample, channel]).sum()))
            expected += weights_per_channel * 0.5 * sum(s * s for s in per_sample) / len(per_sample)
    assert _values(net, inputs, targets, "fisher", bn_mode)["fisher"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_grasp_equals_the_reference_two_pass_computation_and_an_hvp(bn_mode: str) -> None:
    net, inputs, targets = _conv_case()
    # zero-cost-nas: g from pass 1; pass 2 keeps the graph; z = Σ g·grad_f; z.backward() gives H g.
    reference = _in_modes(net, bn_mode)
    weights = _weights(reference)
    first = torch.autograd.grad(F.cross_entropy(reference(inputs), targets), weights)
    second = torch.autograd.grad(F.cross_entropy(reference(inputs), targets), weights, create_graph=True)
    sum((g.detach() * s).sum() for g, s in zip(first, second)).backward()
    expected = -sum(float((w.detach() * w.grad).sum()) for w in weights)
    value = _values(net, inputs, targets, "grasp", bn_mode)["grasp"]
    assert value == pytest.approx(expected, rel=1e-5)

    # torch.autograd.functional.hvp of the loss as a function of the weights alone.
    functional = _in_modes(net, bn_mode)
    names = [name for name, p in functional.named_parameters() if name.endswith("weight") and p.dim() > 1]
    others = {name: p.detach() for name, p in functional.named_parameters() if name not in names}
    buffers = dict(functional.named_buffers())
    start = tuple(dict(functional.named_parameters())[name].detach() for name in names)

    def loss(*values: torch.Tensor) -> torch.Tensor:
        state = others | buffers | dict(zip(names, values))
        return F.cross_entropy(torch.func.functional_call(functional, state, (inputs,)), targets)

    gradient = torch.autograd.grad(loss(*(t.requires_grad_() for t in start)), start)
    _, product = torch.autograd.functional.hvp(loss, tuple(t.detach() for t in start), gradient)
    via_hvp = -sum(float((w.detach() * hg).sum()) for w, hg in zip(start, product))
    assert value == pytest.approx(via_hvp, rel=1e-5)


def test_grasp_matches_a_finite_difference_of_gradients_in_float64() -> None:
    net, inputs, targets = _conv_case()
    net = net.double()
    inputs = inputs.double()
    reference = _in_modes(net, "train")
    weights = _weights(reference)

    def gradient() -> list[torch.Tensor]:
        return [g.detach() for g in torch.autograd.grad(F.cross_entropy(reference(inputs), targets), weights)]

    g = gradient()
    step = 1e-5
    with torch.no_grad():
        for w, d in zip(weights, g):
            w.add_(step * d)
    plus = gradient()
    with torch.no_grad():
        for w, d in zip(weights, g):
            w.sub_(2 * step * d)
    minus = gradient()
    with torch.no_grad():
        for w, d in zip(weights, g):
            w.add_(step * d)
    expected = -sum(float((w.detach() * (p - m) / (2 * step)).sum()) for w, p, m in zip(weights, plus, minus))
    assert grasp_score(net, inputs, targets) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_plain_and_zico_equal_the_references_dot_grad_computations(bn_mode: str) -> None:
    net, inputs, targets = _conv_case(n=8)
    reference = _in_modes(net, bn_mode)
    F.cross_entropy(reference(inputs), targets).backward()
    expected_plain = sum(float((w.detach() * w.grad).sum()) for w in _weights(reference))

    # ZiCo's getgrad/caculate_zico: numpy arrays of each half-batch's .grad, np.std over batches.
    per_layer: dict[int, list[np.ndarray]] = {}
    for part in (slice(0, 4), slice(4, 8)):
        half = _in_modes(net, bn_mode)
        F.cross_entropy(half(inputs[part]), targets[part]).backward()
        for position, w in enumerate(_weights(half)):
            per_layer.setdefault(position, []).append(w.grad.double().reshape(-1).numpy())
    expected_zico = 0.0
    for grads in per_layer.values():
        stacked = np.array(grads)
        spread = np.std(stacked, axis=0)
        keep = np.nonzero(spread)[0]
        expected_zico += math.log(np.sum(np.mean(np.abs(stacked), axis=0)[keep] / spread[keep]))

    values = _values(net, inputs, targets, "plain,zico", bn_mode)
    assert values["plain"] == pytest.approx(expected_plain, rel=1e-5)
    assert values["zico"] == pytest.approx(expected_zico, rel=1e-6)


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_epe_nas_equals_the_references_per_class_loop(bn_mode: str) -> None:
    net, inputs, targets = _conv_case(n=9)
    reference = _in_modes(net, bn_mode)
    probe = inputs.clone().requires_grad_(True)
    outputs = reference(probe)
    outputs.backward(torch.ones_like(outputs))
    jacobians = probe.grad.reshape(len(probe), -1).numpy()
    # EPE-NAS's eval_score_perclass, branch B (the one its search ran).
    per_class: dict[int, np.ndarray] = {}
    for row, label in zip(jacobians, targets.tolist()):
        per_class[label] = np.vstack((per_class[label], row)) if label in per_class else row
    expected = sum(abs(np.sum(np.log(np.abs(np.corrcoef(rows)) + EPE_NAS_K))) for rows in per_class.values())
    assert _values(net, inputs, targets, "epe_nas", bn_mode)["epe_nas"] == pytest.approx(float(expected), rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Invariances the definitions imply
# ---------------------------------------------------------------------------------------------


def test_rebalancing_consecutive_layers_leaves_plain_fisher_and_zico_unchanged() -> None:
    # ReLU is positively homogeneous: (αW1, W2/α) computes the same function; ∂L/∂W1 scales by
    # 1/α, so W ⊙ ∂L/∂W, each layer's a·∂L/∂a and ZiCo's mean/std ratios stay the same.
    torch.manual_seed(8)
    net = nn.Sequential(nn.Linear(5, 7, bias=False), nn.ReLU(), nn.Linear(7, 3, bias=False)).double()
    inputs, targets = _batch(8, 3, (5,), 8)
    inputs = inputs.double()
    rebalanced = copy.deepcopy(net)
    with torch.no_grad():
        rebalanced[0].weight.mul_(4.0)
        rebalanced[2].weight.div_(4.0)
    names = "plain,snip,fisher,zico"
    before, after = _values(net, inputs, targets, names), _values(rebalanced, inputs, targets, names)
    for name in names.split(","):
        assert after[name] == pytest.approx(before[name], rel=1e-10), name
    assert l2_norm_score(rebalanced) != pytest.approx(l2_norm_score(net))


def test_negating_every_weight_of_a_linear_chain_leaves_plain_and_grasp_unchanged() -> None:
    # f = W2 W1 x is unchanged by (−W1, −W2); gradients flip sign, and so does each H g.
    torch.manual_seed(9)
    net = nn.Sequential(nn.Linear(5, 4, bias=False), nn.Linear(4, 3, bias=False)).double()
    inputs, targets = _batch(7, 3, (5,), 9)
    inputs = inputs.double()
    negated = copy.deepcopy(net)
    with torch.no_grad():
        for layer in negated:
            layer.weight.neg_()
    before, after = _values(net, inputs, targets, "plain,grasp"), _values(negated, inputs, targets, "plain,grasp")
    assert after["plain"] == pytest.approx(before["plain"], rel=1e-10)
    assert after["grasp"] == pytest.approx(before["grasp"], rel=1e-10)
    assert before["grasp"] != 0 and before["plain"] != 0


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_epe_nas_ignores_sample_order_and_output_scale(bn_mode: str) -> None:
    net, inputs, targets = _conv_case(n=9)
    order = torch.tensor([4, 7, 0, 8, 2, 5, 1, 6, 3])
    value = _values(net, inputs, targets, "epe_nas", bn_mode)["epe_nas"]
    assert _values(net, inputs[order], targets[order], "epe_nas", bn_mode)["epe_nas"] == pytest.approx(value, rel=1e-6)
    scaled = copy.deepcopy(net)
    with torch.no_grad():
        scaled.fc.weight.mul_(3.0)
        scaled.fc.bias.mul_(3.0)
    assert _values(scaled, inputs, targets, "epe_nas", bn_mode)["epe_nas"] == pytest.approx(value, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Determinism, the network untouched, one shared pass
# ---------------------------------------------------------------------------------------------


def _small_nb201() -> nn.Module:
    torch.manual_seed(1)
    return build_nb201(NB201_ARCH, num_classes=10, variant="benchmark", channels=4, cells_per_stage=1)


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_scores_repeat_exactly_and_leave_the_network_as_it_was(bn_mode: str) -> None:
    net = _small_nb201()
    inputs, targets = _batch(8, 10, (3, 16, 16), 4)
    targets[:2] = 7  # epe_nas needs a class seen twice
    net.train()
    net.classifier.eval()
    net.classifier.weight.grad = torch.randn_like(net.classifier.weight)
    before = snapshot(net)
    first = _values(net, inputs, targets, GRADIENT_FAMILY, bn_mode)
    assert_same(before, snapshot(net))
    second = _values(net, inputs, targets, GRADIENT_FAMILY, bn_mode)
    assert first == second
    assert_same(before, snapshot(net))


def _count_forwards(net: nn.Module) -> list[int]:
    calls = [0]

    def count(module: nn.Module, args, output) -> None:
        calls[0] += 1

    net.register_forward_hook(count)
    return calls


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_one_forward_serves_the_loss_proxies_and_one_the_jacobian_proxies(bn_mode: str) -> None:
    net, inputs, targets = _conv_case()
    calls = _count_forwards(net)
    together = _values(net, inputs, targets, "grad_norm,snip,fisher,plain,grasp", bn_mode)
    assert calls[0] == 1
    calls[0] = 0
    _values(net, inputs, targets, "jacob_cov,epe_nas", bn_mode)
    assert calls[0] == 1
    calls[0] = 0
    _values(net, inputs, targets, "zico", bn_mode)
    assert calls[0] == 2  # one per half-batch
    # Shared or alone, each proxy has the same value (grasp's second backward adds nothing to fisher).
    for name in ("grad_norm", "snip", "fisher", "plain", "grasp"):
        assert _values(net, inputs, targets, name, bn_mode)[name] == pytest.approx(together[name], rel=1e-6), name
    assert fisher_score(net, inputs, targets, bn_mode) == pytest.approx(together["fisher"], rel=1e-6)


def test_metrics_outside_the_listed_evaluation_still_get_what_they_need() -> None:
    from ntknas.metrics import MetricContext

    net, inputs, targets = _conv_case()
    context = MetricContext(net=net, inputs=inputs, targets=targets, wanted=("plain",))
    plain_first = get_metric("plain").compute(context)  # caches a pass without H g or fisher's sums
    assert get_metric("grasp").compute(context) == pytest.approx(grasp_score(net, inputs, targets), rel=1e-6)
    assert get_metric("fisher").compute(context) == pytest.approx(fisher_score(net, inputs, targets), rel=1e-6)
    assert plain_first == pytest.approx(plain_score(net, inputs, targets), rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Where a proxy cannot apply: one line, missing with its reason
# ---------------------------------------------------------------------------------------------


class _NoWeightLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def test_proxies_without_conv_or_linear_weights_are_missing_with_a_reason() -> None:
    inputs, targets = _batch(6, 3, (3,))
    run = score_run(_NoWeightLayers(), inputs, targets, "grasp,fisher,plain,l2_norm,zico")
    for name, result in run.values.items():
        assert result.missing, name
        assert "conv or linear" in result.reason and "\n" not in result.reason, name


def test_epe_nas_with_one_sample_per_class_is_missing() -> None:
    net, inputs, targets = _conv_case(n=3)
    targets = torch.tensor([0, 1, 2])
    result = score_run(net, inputs, targets, "epe_nas,jacob_cov").values
    assert result["epe_nas"].missing and "two samples of at least one class" in result["epe_nas"].reason
    assert not result["jacob_cov"].missing
    with pytest.raises(MetricUnavailable, match="constant"):
        epe_nas_from_jacobians(np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 2.0]]), np.array([0, 0]))


def test_zico_needs_two_samples_per_half_and_a_varying_gradient() -> None:
    net, inputs, targets = _conv_case(n=3)
    result = score_run(net, inputs, targets, "zico").values["zico"]
    assert result.missing and "batch of 4 or more" in result.reason
    same = [torch.ones(2, 2), None]
    with pytest.raises(MetricUnavailable, match="differs"):
        zico_from_gradients([same, same])
