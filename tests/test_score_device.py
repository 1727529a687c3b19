"""ntknas.score on one's own network: the device it runs on, and which layer is the classifier."""

import math

import pytest
import torch
from torch import nn

import ntknas
from ntknas.errors import NtknasError
from ntknas.kernel import classifier_name, select_parameters

pytestmark = pytest.mark.usefixtures("one_thread")


def small_net(num_classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes),
    )


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(6, 3, 8, 8, generator=generator), torch.tensor([0, 1, 2, 0, 1, 2])


def test_the_default_device_is_the_networks_and_naming_it_changes_nothing():
    x, y = batch()
    default = ntknas.score(small_net(), x, y, metrics=("knas", "lga"))
    named = ntknas.score(small_net(), x, y, metrics=("knas", "lga"), device="cpu")
    assert default == named
    assert all(math.isfinite(value) for value in default.values())


@pytest.mark.parametrize("device", ["no-such-device", "cuda:99"])
def test_a_device_this_machine_lacks_is_one_line(device):
    if device == "cuda:99" and torch.cuda.device_count() > 99:
        pytest.skip("this machine has a 100th GPU")
    x, y = batch()
    with pytest.raises(NtknasError) as error:
        ntknas.score(small_net(), x, y, metrics=("knas",), device=device)
    message = str(error.value)
    assert "\n" not in message and repr(device) in message and "use 'cpu'" in message


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cpu_network_and_batch_are_moved_to_the_gpu():
    x, y = batch()
    on_cpu = ntknas.score(small_net(), x, y, metrics=("knas", "fnorm"))
    net = small_net()
    on_gpu = ntknas.score(net, x, y, metrics=("knas", "fnorm"), device="cuda")
    assert next(net.parameters()).device.type == "cuda"
    for name, value in on_cpu.items():
        assert on_gpu[name] == pytest.approx(value, rel=1e-4)
    # And a network already on the GPU takes a CPU batch there by default.
    assert ntknas.score(net, x, y, metrics=("knas",))["knas"] == pytest.approx(on_cpu["knas"], rel=1e-4)


class TimmLikeNet(nn.Module):
    """A head that is not the last nn.Linear: an auxiliary projection is registered after it, and
    the network names its head with timm's get_classifier()."""

    def __init__(self, declare_head: bool = True, head_layers: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(4, 3)) if head_layers else nn.Identity()
        self.aux = nn.Linear(4, 4)  # registered last, used before the head
        self.declare_head = declare_head

    def get_classifier(self) -> nn.Module:
        return self.head[0] if self.declare_head and isinstance(self.head, nn.Sequential) else self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.aux(self.body(x))))


def test_get_classifier_names_the_head_left_out_of_the_kernel():
    net = TimmLikeNet()
    assert classifier_name(net) == "head.0"
    assert sorted(select_parameters(net)) == ["aux.weight", "body.0.weight"]


def test_without_get_classifier_the_last_linear_is_taken():
    net = TimmLikeNet(declare_head=False)
    net.get_classifier = None  # type: ignore[assignment,method-assign]
    assert classifier_name(net) == "aux"


def test_a_head_without_parameters_falls_back_to_the_last_linear():
    net = TimmLikeNet(head_layers=0)  # timm's num_classes=0: get_classifier() is nn.Identity
    assert classifier_name(net) == "aux"


def test_scoring_a_timm_like_network_leaves_its_declared_head_out():
    x, y = batch()
    net = TimmLikeNet()
    with_head_out = ntknas.score(net, x, y, metrics=("trace",))["trace"]
    # The independent computation: the kernel's trace is the sum of squared per-sample gradients
    # of the summed logits over the kept weights (aux and conv, not the head).
    kept = [net.body[0].weight, net.aux.weight]
    net.train()
    expected = 0.0
    outputs = net(x)
    for i in range(x.shape[0]):
        grads = torch.autograd.grad(outputs[i].sum(), kept, retain_graph=True)
        expected += sum(float((g.double() ** 2).sum()) for g in grads)
    assert with_head_out == pytest.approx(expected, rel=1e-6)
