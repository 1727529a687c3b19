"""Initialization after construction (see docs/protocol.md, "Experiment 1"): the study's NB101 re-initialization, the
alternatives, and how the choice enters run identities."""

import hashlib
import json
import math

import pytest
import torch
from torch import nn

from ntknas.cli import main
from ntknas.errors import UnknownNameError
from ntknas.runs.correlate import CorrelateConfig
from ntknas.runs.track import TrackConfig
from ntknas.scoring import evaluate_metrics
from ntknas.spaces import build_network
from ntknas.spaces.init import InitScheme, init_identity
from ntknas.spaces.nb101 import build_nb101
from ntknas.spaces.nb201 import build_nb201

pytestmark = pytest.mark.usefixtures("one_thread")

IN, C3, C1, MP, OUT = "input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "output"
# Conv 3x3 and 1x1, a max-pool and a projection: every layer type of the NB101 network.
CELL = ([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], [IN, C3, MP, OUT])
SMALL = {"stem_channels": 8, "num_stacks": 2, "cells_per_stack": 1}


def hand_initialized_copy(seed: int) -> nn.Module:
    """PyTorch's construction under ``seed``, then the study's NB101 recipe written out here."""
    torch.manual_seed(seed)
    net = build_nb101(CELL, **SMALL, init="default")
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                n = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                module.weight.normal_(0, math.sqrt(2.0 / n))
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.fill_(1)
                module.bias.zero_()
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0, 0.01)
                module.bias.zero_()
    return net


def test_study_nb101_knas_equals_a_hand_initialized_copy():
    torch.manual_seed(3)
    study = build_nb101(CELL, **SMALL)  # init="study" is the default
    hand = hand_initialized_copy(3)
    for (name, a), (_, b) in zip(study.state_dict().items(), hand.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    knas_study = evaluate_metrics(study, x, y, ("knas", "fnorm"), "train")
    knas_hand = evaluate_metrics(hand, x, y, ("knas", "fnorm"), "train")
    assert knas_study["knas"].value == knas_hand["knas"].value
    assert knas_study["fnorm"].value == knas_hand["fnorm"].value
    torch.manual_seed(3)
    default = build_nb101(CELL, **SMALL, init="default")
    knas_default = evaluate_metrics(default, x, y, ("knas",), "train")["knas"].value
    assert knas_default != knas_study["knas"].value


def test_study_nb101_distributions():
    torch.manual_seed(0)
    net = build_network("nb101", CELL, stem_channels=64, num_stacks=1, cells_per_stack=1)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(m.bias is None for m in convs)
    for conv in convs:
        expected = math.sqrt(2.0 / (conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels))
        assert float(conv.weight.detach().std()) == pytest.approx(expected, rel=0.15)
        assert abs(float(conv.weight.detach().mean())) < 0.2 * expected
    for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    assert float(net.classifier.weight.detach().std()) == pytest.approx(0.01, rel=0.15)
    assert torch.all(net.classifier.bias == 0)


def test_nb201_study_init_is_pytorch_default():
    torch.manual_seed(5)
    study = build_nb201(7, channels=4, cells_per_stage=1)
    torch.manual_seed(5)
    default = build_nb201(7, channels=4, cells_per_stage=1, init="default")
    for (name, a), (_, b) in zip(study.state_dict().items(), default.state_dict().items()):
        assert torch.equal(a, b), name


def test_alternative_weight_and_bias_inits():
    torch.manual_seed(0)
    zero = build_nb201("333333", channels=4, cells_per_stage=1, init="zero")
    layers = [m for m in zero.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(torch.all(m.weight == 0) for m in layers)
    biased = [m for m in layers if m.bias is not None]
    assert biased and any(torch.any(m.bias != 0) for m in biased)  # bias_init default leaves them
    torch.manual_seed(0)
    zero_bias = build_nb201("333333", channels=4, cells_per_stage=1, bias_init="zero")
    assert all(torch.all(m.bias == 0) for m in zero_bias.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None)
    torch.manual_seed(0)
    big = build_nb101(CELL, stem_channels=64, num_stacks=1, cells_per_stack=1, init="kaiming")
    conv = big.stem[0]
    fan_in = conv.in_channels * 9
    assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.15)
    torch.manual_seed(0)
    big = build_nb101(CELL, stem_channels=64, num_stacks=1, cells_per_stack=1, init="xavier")
    conv = big.layers[0].projections["1"][0]  # 1x1, 64 -> 32 channels
    assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2.0 / (64 + 32)), rel=0.15)


def test_custom_space_takes_the_init_options():
    def factory(num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 30 * 30, num_classes))

    net = build_network("custom", factory, 10, init="zero", bias_init="zero")
    assert all(torch.all(p == 0) for p in net.parameters())


def test_unknown_init_is_refused_in_one_line(capsys):
    with pytest.raises(UnknownNameError, match="unknown init 'he'"):
        build_nb101(CELL, init="he")
    with pytest.raises(UnknownNameError, match="unknown bias_init 'one'"):
        InitScheme("study", "one")
    with pytest.raises(SystemExit) as exit_info:
        main(["score", "--init", "he"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_identity_names_only_what_is_not_pytorchs_default():
    assert init_identity("nb201", "study") is None
    assert init_identity("custom", "study") is None
    assert init_identity("nb101", "default") is None
    assert init_identity("nb101", "study") == "study"
    assert init_identity("nb201", "xavier", "zero") == "xavier+zero-bias"
    assert init_identity("nb201", "study", "zero") == "default+zero-bias"


def test_run_identity_keeps_older_folders_and_separates_inits():
    legacy = CorrelateConfig(space="nb201", protocol="zc", batch_size=64, model_seed=42)
    options = json.dumps({"variant": "study", "params": "weights", "stem": 128, "net": {}, "train_batch": 1024},
                         sort_keys=True)
    # What every run folder written before --init existed holds: PyTorch's initialization.
    assert legacy.protocol_tag == f"zc/train_augmented/{hashlib.sha1(options.encode()).hexdigest()[:8]}"
    assert "init" not in legacy.store_settings()
    nb101_study = CorrelateConfig(space="nb101", protocol="zc", batch_size=64, model_seed=42)
    nb101_default = CorrelateConfig(space="nb101", protocol="zc", batch_size=64, model_seed=42, init="default")
    assert nb101_study.store_settings()["init"] == "study"
    assert nb101_study.protocol_tag != nb101_default.protocol_tag
    assert nb101_default.protocol_tag.rsplit("/", 1)[1] == legacy.protocol_tag.rsplit("/", 1)[1]
    assert "init" not in TrackConfig().store_settings()
    assert TrackConfig(init="kaiming").store_settings()["init"] == "kaiming"
