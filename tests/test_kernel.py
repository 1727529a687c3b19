"""The kernel engine equals an independent slow reference, in every mode and strategy."""

import pytest
import torch
from reference_ntk import reference_full_ntk, reference_ntk, relative_error
from torch import nn

from ntknas import NtknasError, empirical_ntk, full_ntk
from ntknas.kernel import compute_ntk, select_parameters


class TinyNet(nn.Module):
    def __init__(self, track_running_stats: bool = True, num_classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.BatchNorm2d(6, track_running_stats=track_running_stats),
            nn.ReLU(),
            nn.Conv2d(6, 6, 3, padding=1, bias=False),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(6, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


def _tiny(track: bool = True, seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    net = TinyNet(track)
    # Non-trivial running statistics make eval mode differ from train mode.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None:
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return net


@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize("bn_mode", ["train", "eval"])
@pytest.mark.parametrize("strategy", ["auto", "batched", "loop", "adaptive", "per_sample"])
@pytest.mark.parametrize("chunk_size", [None, 3])
def test_engine_equals_reference(track, bn_mode, strategy, chunk_size):
    net = _tiny(track)
    inputs = torch.randn(7, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    coupled = bn_mode == "train" or not track
    if strategy == "per_sample" and coupled:
        with pytest.raises(NtknasError, match="inexact"):
            empirical_ntk(net, inputs, bn_mode=bn_mode, strategy=strategy)
        return
    kernel = empirical_ntk(net, inputs, bn_mode=bn_mode, strategy=strategy, chunk_size=chunk_size)
    expected = reference_ntk(_tiny(track), inputs, bn_mode)
    assert kernel.dtype == torch.float64 and kernel.shape == (7, 7)
    assert relative_error(kernel, expected) < 1e-5


def test_train_mode_couples_samples_exactly():
    """In train mode, sample i's row is NOT its gradient from a forward pass of x_i alone."""
    net = _tiny()
    inputs = torch.randn(6, 3, 8, 8)
    coupled = empirical_ntk(net, inputs, bn_mode="train")
    net.train()
    weights = list(select_parameters(net, "weights").values())
    rows = []
    for i in range(6):
        gradients = torch.autograd.grad(net(inputs[i : i + 1]).sum(), weights)
        rows.append(torch.cat([g.reshape(-1) for g in gradients]))
    separate = torch.stack(rows).double()
    assert relative_error(coupled, separate @ separate.T) > 1e-2


def test_auto_strategy_choice_and_report():
    inputs = torch.randn(5, 3, 8, 8)
    result = compute_ntk(_tiny(True), inputs, bn_mode="eval")
    assert (result.strategy, result.coupled) == ("per_sample", False)
    result = compute_ntk(_tiny(True), inputs, bn_mode="train")
    assert result.coupled and result.strategy in ("loop", "batched")  # CPU: timed choice
    result = compute_ntk(_tiny(False), inputs, bn_mode="eval")
    assert result.coupled, "BatchNorm without running statistics couples samples in eval mode"


def test_probe_detects_custom_batch_coupling():
    class BatchMix(nn.Module):
        def forward(self, x):
            return x - x.mean(dim=0, keepdim=True)

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), BatchMix(), nn.Tanh(), nn.Linear(4, 3))
    inputs = torch.randn(6, 3, 2, 2)
    result = compute_ntk(net, inputs, bn_mode="eval", params="all")
    assert result.coupled and result.strategy in ("loop", "batched")
    assert relative_error(result.kernel, reference_ntk(net, inputs, "eval", "all")) < 1e-5


def test_kernel_leaves_network_unchanged():
    net = _tiny()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    empirical_ntk(net, torch.randn(4, 3, 8, 8), bn_mode="train")
    assert net.training
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_parameter_selection_excludes_classifier_and_biases():
    names = list(select_parameters(_tiny(), "weights"))
    assert names == ["features.0.weight", "features.1.weight", "features.3.weight", "features.4.weight"]
    assert "classifier.bias" in select_parameters(_tiny(), "all")


def test_all_parameters_option_matches_reference():
    net = _tiny()
    inputs = torch.randn(5, 3, 8, 8)
    kernel = empirical_ntk(net, inputs, bn_mode="train", params="all")
    assert relative_error(kernel, reference_ntk(_tiny(), inputs, "train", "all")) < 1e-5


@pytest.mark.parametrize("track", [True, False])
def test_full_ntk_equals_reference(track):
    net = _tiny(track)
    inputs = torch.randn(3, 3, 8, 8)
    theta = full_ntk(net, inputs)
    assert theta.shape == (15, 15)
    assert relative_error(theta, reference_full_ntk(_tiny(track), inputs)) < 1e-5
    # The summed-logit kernel is the block sum of the full one (same params, same mode).
    summed = empirical_ntk(_tiny(track), inputs, bn_mode="eval", params="all")
    blocks = theta.reshape(3, 5, 3, 5).sum(dim=(1, 3))
    assert relative_error(blocks, summed) < 1e-6


def test_float64_network_gives_tight_agreement():
    net = _tiny().double()
    inputs = torch.randn(6, 3, 8, 8, dtype=torch.float64)
    kernel = empirical_ntk(net, inputs, bn_mode="train", strategy="batched", chunk_size=4)
    expected = reference_ntk(_tiny().double(), inputs, "train")
    assert relative_error(kernel, expected) < 1e-12


def test_bad_options_are_one_line_errors():
    net, inputs = _tiny(), torch.randn(4, 3, 8, 8)
    for kwargs in ({"bn_mode": "frozen"}, {"params": "biases"}, {"strategy": "magic"}, {"chunk_size": 0}):
        with pytest.raises(NtknasError) as info:
            empirical_ntk(net, inputs, **kwargs)
        assert "\n" not in str(info.value)


NB201_CASES = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|none~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|",
]


@pytest.mark.parametrize("arch", NB201_CASES)
@pytest.mark.parametrize("variant", ["study", "benchmark"])
@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_engine_equals_reference_on_nb201(arch, variant, bn_mode):
    from ntknas import build_network

    def make():
        torch.manual_seed(3)
        return build_network("nb201", arch, 10, variant=variant, channels=4, cells_per_stage=1)

    inputs = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    for strategy, chunk in (("auto", None), ("batched", 2)):
        kernel = empirical_ntk(make(), inputs, bn_mode=bn_mode, strategy=strategy, chunk_size=chunk)
        assert relative_error(kernel, reference_ntk(make(), inputs, bn_mode)) < 1e-5


NB101_CASES = [
    # The official example cell, and a cell with a max-pool and an input->output edge.
    ([[0, 1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0, 0],
      [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
     ["input", "conv1x1-bn-relu", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv3x3-bn-relu", "maxpool3x3", "output"]),
    ([[0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
     ["input", "maxpool3x3", "conv3x3-bn-relu", "output"]),
]


@pytest.mark.parametrize("case", range(len(NB101_CASES)))
@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_engine_equals_reference_on_nb101(case, bn_mode):
    from ntknas import build_network

    def make():
        torch.manual_seed(4)
        return build_network("nb101", NB101_CASES[case], 10, stem_channels=8, num_stacks=2, cells_per_stack=1)

    inputs = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    result = compute_ntk(make(), inputs, bn_mode=bn_mode, chunk_size=3)
    assert result.coupled == (bn_mode == "train")
    assert relative_error(result.kernel, reference_ntk(make(), inputs, bn_mode)) < 1e-5


def test_full_width_nb201_cell_matches_reference():
    from ntknas import build_network

    def make():
        torch.manual_seed(42)
        return build_network("nb201", NB201_CASES[0], 10)

    inputs = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    kernel = empirical_ntk(make(), inputs, bn_mode="train")
    assert relative_error(kernel, reference_ntk(make(), inputs, "train")) < 1e-5


# ------------------------------------------------------------------- per-image forward (tracking)


def _per_logit_jacobian_alone(net: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """J_i [C, P] of one image from a forward pass of that image alone, backward per logit."""
    net.eval()
    outputs = net(image.unsqueeze(0))[0]
    rows = []
    for c in range(outputs.shape[0]):
        net.zero_grad(set_to_none=False)
        outputs[c].backward(retain_graph=True)
        rows.append(torch.cat([p.grad.detach().reshape(-1).clone() for p in net.parameters()]))
    return torch.stack(rows).double()


@pytest.mark.parametrize("strategy", ["batched", "loop"])
def test_per_image_forward_assembles_independent_single_image_blocks(strategy):
    """Θ's block (i, j) is J_i J_jᵀ with every J_i from its own forward pass (the study cells'
    BatchNorm keeps no running statistics, so a joint forward would couple the images)."""
    net = _tiny(track=False)
    images = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    theta = full_ntk(net, images, forward="per-image", strategy=strategy)
    jacobians = [_per_logit_jacobian_alone(_tiny(track=False), image) for image in images]
    classes = jacobians[0].shape[0]
    expected = torch.zeros(3 * classes, 3 * classes, dtype=torch.float64)
    for i in range(3):
        for j in range(3):
            expected[i * classes:(i + 1) * classes, j * classes:(j + 1) * classes] = jacobians[i] @ jacobians[j].T
    assert theta.shape == (15, 15)
    assert relative_error(theta, expected) < 1e-5
    # a joint forward couples the images: a different kernel
    assert relative_error(full_ntk(net, images, forward="batch", strategy=strategy), expected) > 1e-2


def test_per_image_equals_batch_for_one_image_and_for_independent_samples():
    net = _tiny(track=False)
    image = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(full_ntk(net, image, forward="per-image"), full_ntk(net, image, forward="batch"))
    independent = _tiny(track=True)  # eval mode with running statistics: samples do not interact
    images = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    assert relative_error(
        full_ntk(independent, images, forward="per-image"), full_ntk(independent, images, forward="batch")
    ) < 1e-6
    with pytest.raises(NtknasError, match="unknown forward mode 'joint'"):
        full_ntk(net, image, forward="joint")
