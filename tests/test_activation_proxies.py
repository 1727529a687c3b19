"""MeCo, SWAP, Zen-NAS and AZ-NAS: hand-computed cases, invariances, seeds, the shared pass and
the az_nas aggregate in a correlate summary."""

from __future__ import annotations

import csv
import json
import math
import sqlite3

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixtures_data import TINY_NB201, write_cifar10
from torch import nn

from ntknas.analysis import log_rank_sum
from ntknas.metrics import MetricContext, MetricUnavailable, available_metrics, get_metric, parse_metric_list
from ntknas.metrics.activation_pass import cell_trainability, rademacher, seeded_generator, spectrum_entropy
from ntknas.metrics.activation_proxies import (
    SWAP_MU,
    SWAP_SIGMA,
    ZEN_BATCH,
    ZEN_MIXUP,
    ZEN_REPEATS,
    meco_score,
    replayed_running_variance,
    swap_regularizer,
)
from ntknas.metrics.az_nas import AZ_COMPONENTS, expressivity, progressivity
from ntknas.metrics.zero_cost import naswot_score
from ntknas.runs.correlate import CorrelateConfig, run_correlate
from ntknas.scoring import score_run
from ntknas.spaces.nb201 import build_nb201

pytestmark = pytest.mark.usefixtures("one_thread")

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
NEW = ("meco", "meco_opt", "swap", "swap_reg", "zen", *AZ_COMPONENTS, "az_nas")


def _batch(n: int = 8, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def _nb201(seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return build_nb201(ARCH, num_classes=10, variant="study", channels=4, cells_per_stage=1)


def _value(net: nn.Module, name: str, seed: int = 0, bn_mode: str = "train", inputs: torch.Tensor | None = None) -> float:
    images, labels = _batch() if inputs is None else (inputs, torch.zeros(inputs.shape[0], dtype=torch.long))
    result = score_run(net, images, labels, [name], bn_mode, seed=seed).values[name]
    assert result.value is not None, result.reason
    return result.value


class _Emit(nn.Module):
    """Returns a fixed feature map (sample 0 = ``feature``) whatever its input: the only module."""

    def __init__(self, feature: torch.Tensor) -> None:
        super().__init__()
        self.feature = feature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature.expand(x.shape[0], *self.feature.shape)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def test_registered_with_direction_family_and_aggregate_flag() -> None:
    for name in NEW:
        metric = get_metric(name)
        assert metric.higher_is_better is True and metric.family == "zero-cost" and metric.formula
        assert name in available_metrics()
    assert get_metric("az_nas").aggregate_of == AZ_COMPONENTS
    assert not get_metric("az_expressivity").is_aggregate
    assert parse_metric_list("knas,az_nas") == ["knas", *AZ_COMPONENTS, "az_nas"]


def test_az_nas_of_one_network_is_missing_with_the_reason() -> None:
    values = score_run(_nb201(), *_batch(), ["az_nas"]).values
    assert set(values) == {*AZ_COMPONENTS, "az_nas"}
    assert values["az_nas"].value is None and "correlate" in (values["az_nas"].reason or "")
    assert all(values[name].value is not None for name in AZ_COMPONENTS)


# ---------------------------------------------------------------------------------------------
# MeCo
# ---------------------------------------------------------------------------------------------


def test_meco_of_a_known_channel_correlation() -> None:
    # Two channels with correlation 0.8: eigenvalues 1 ± 0.8, so λ_min = 0.2.
    a, b = [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]
    feature = torch.tensor([a, b]).reshape(2, 2, 2)
    assert meco_score(_Emit(feature), torch.zeros(3, 1)) == pytest.approx(0.2)
    # A constant channel's NaN correlations become 0: its zero row and column give λ_min = 0.
    constant = torch.tensor([a, b, [5.0] * 4]).reshape(3, 2, 2)
    assert meco_score(_Emit(constant), torch.zeros(3, 1)) == pytest.approx(0.0, abs=1e-12)


def test_meco_opt_scales_a_sampled_minimum_by_channels_over_8() -> None:
    # 16 orthogonal centred channels: every correlation submatrix is I, λ_min = 1.
    matrix = torch.randn(17, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    orthonormal, _ = torch.linalg.qr(matrix - matrix.mean(dim=0))
    net = _Emit(orthonormal.T.reshape(16, 17, 1).float())
    assert meco_score(net, torch.zeros(2, 1)) == pytest.approx(1.0, abs=1e-5)
    sampled = meco_score(net, torch.zeros(2, 1), channel_sampler=seeded_generator(0, 3))
    assert sampled == pytest.approx(16 / 8, abs=1e-5)


def test_meco_invariant_to_positive_per_channel_scaling() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 4, 1))
    scaled = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 4, 1))
    scaled.load_state_dict(net.state_dict())
    factors = torch.tensor([0.5, 2.0, 3.0, 0.25, 7.0])
    with torch.no_grad():
        scaled[0].weight.mul_(factors[:, None, None, None])
        scaled[0].bias.mul_(factors)
        scaled[2].weight.div_(factors[None, :, None, None])  # the last map is unchanged too
    images, _ = _batch()
    assert meco_score(scaled, images) == pytest.approx(meco_score(net, images), rel=1e-6)


def test_meco_needs_a_feature_map() -> None:
    with pytest.raises(MetricUnavailable, match="feature maps"):
        meco_score(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), torch.randn(2, 3, 2, 2))


# ---------------------------------------------------------------------------------------------
# SWAP
# ---------------------------------------------------------------------------------------------


def test_swap_counts_distinct_unit_patterns() -> None:
    # Units (columns) over 3 samples: on-on-off, on-on-off, off-off-off, on-on-on → 3 patterns.
    signs = torch.tensor([[1.0, 1.0, -1.0, 1.0], [1.0, 1.0, -1.0, 1.0], [-1.0, -1.0, -1.0, 1.0]])
    inputs = signs.reshape(3, 1, 2, 2)
    assert _value(nn.Sequential(nn.ReLU()), "swap", inputs=inputs) == 3.0


def test_swap_invariant_to_positive_input_scaling_and_independent_of_the_weights() -> None:
    def net(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 6, 3), nn.ReLU(), nn.Flatten())

    images, _ = _batch(n=16, size=8)
    base = _value(net(0), "swap", inputs=images)
    assert _value(net(0), "swap", inputs=2.0 * images) == base
    assert _value(net(0), "swap", inputs=0.5 * images) == base
    assert _value(net(5), "swap", inputs=images) == base  # its weights are re-drawn
    assert 1 < base <= 6 * 6 * 6 + 6 * 4 * 4


def test_swap_reg_is_swap_times_the_size_factor() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.ReLU())  # 216 parameters
    images, _ = _batch()
    factor = math.exp(-((216 / 1e3 - SWAP_MU) ** 2) / SWAP_SIGMA)
    assert swap_regularizer(net) == pytest.approx(factor)
    assert _value(net, "swap_reg", inputs=images) == pytest.approx(_value(net, "swap", inputs=images) * factor)


def test_swap_needs_relu_on_feature_maps() -> None:
    run = score_run(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Tanh()), *_batch(), ["swap"])
    assert run.values["swap"].value is None and "nn.ReLU" in (run.values["swap"].reason or "")


# ---------------------------------------------------------------------------------------------
# Zen-NAS
# ---------------------------------------------------------------------------------------------


def test_zen_of_a_weightless_network_equals_the_formula() -> None:
    # f(x) = BN(x) with batch statistics; the pre-pooling map is BN's output.
    net = nn.Sequential(nn.BatchNorm2d(3, affine=False), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    generator = seeded_generator(0, 1)
    expected = []
    for _ in range(ZEN_REPEATS):
        x = torch.randn(ZEN_BATCH, 3, 16, 16, generator=generator)
        noise = torch.randn(ZEN_BATCH, 3, 16, 16, generator=generator)
        mixed = x + ZEN_MIXUP * noise

        def bn(t: torch.Tensor) -> torch.Tensor:
            return (t - t.mean(dim=(0, 2, 3), keepdim=True)) / torch.sqrt(t.var(dim=(0, 2, 3), unbiased=False, keepdim=True) + 1e-5)

        gap = (bn(x) - bn(mixed)).abs().double().sum(dim=(1, 2, 3)).mean()
        # running_var from 1 after two updates at momentum 0.1 with the unbiased batch variances
        variance = 0.81 + 0.09 * x.double().var(dim=(0, 2, 3)).mean() + 0.1 * mixed.double().var(dim=(0, 2, 3)).mean()
        expected.append(math.log(gap) + math.log(math.sqrt(variance)))
    assert _value(net, "zen") == pytest.approx(float(np.mean(expected)), rel=1e-4)


def test_zen_ignores_the_networks_weights_but_not_the_seed() -> None:
    first, second = _value(_nb201(1), "zen"), _value(_nb201(2), "zen")
    assert first == second
    assert _value(_nb201(1), "zen", seed=7) != first


class _Silence(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def test_zen_of_a_constant_map_is_missing_not_an_error() -> None:
    net = nn.Sequential(_Silence(), nn.BatchNorm2d(3), nn.Conv2d(3, 2, 1))
    run = score_run(net, *_batch(), ["zen"])
    assert run.values["zen"].value is None and "not finite" in (run.values["zen"].reason or "")


class _ZeroBranch(nn.Module):
    """x + BN(0 · x): a BatchNorm layer that only ever sees zeros, on a path that adds nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(3, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.norm(x * 0.0)


def test_zen_of_a_layer_fed_zeros_is_finite_as_the_authors_running_var_keeps_it() -> None:
    # The zero-fed layer's running_var is 0.9² after two updates with σ² = 0: its term is log 0.9.
    generator = seeded_generator(0, 1)
    torch.randn(ZEN_BATCH, 3, 16, 16, generator=generator)  # the clean images: drawn first, cancel out
    noise = torch.randn(ZEN_BATCH, 3, 16, 16, generator=generator)
    gap = (ZEN_MIXUP * noise).abs().double().sum(dim=(1, 2, 3)).mean()
    net = nn.Sequential(_ZeroBranch(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert _value(net, "zen") == pytest.approx(math.log(gap) + math.log(0.9), rel=1e-4)


def test_replayed_running_variance_follows_pytorchs_update() -> None:
    for momentum in (0.1, 0.3, None):
        norm = nn.BatchNorm2d(2, momentum=momentum)
        seen = []
        for scale in (1.0, 3.0, 0.5):
            batch = scale * torch.randn(8, 2, 4, 4, generator=seeded_generator(int(scale * 10), 0))
            norm(batch)
            seen.append(float(batch.double().var(dim=(0, 2, 3)).mean()))
        assert replayed_running_variance(tuple(seen), momentum) == pytest.approx(float(norm.running_var.mean()), rel=1e-5)


def test_zen_needs_a_spatial_feature_map() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4))
    run = score_run(net, *_batch(), ["zen"])
    assert run.values["zen"].value is None and "pooling" in (run.values["zen"].reason or "")


# ---------------------------------------------------------------------------------------------
# AZ-NAS components
# ---------------------------------------------------------------------------------------------


def test_spectrum_entropy_of_a_white_map_is_log_channels() -> None:
    # Two channels over 4 positions, variance 1 each, uncorrelated: p = (½, ½).
    feature = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]]).reshape(1, 2, 2, 2)
    assert spectrum_entropy(feature) == pytest.approx(math.log(2), abs=1e-7)
    assert expressivity([1.0, 2.5, 2.0]) == 5.5
    assert progressivity([1.0, 2.5, 2.0]) == -0.5


def test_cell_trainability_of_scaling_identity_and_pooling_cells() -> None:
    generator = seeded_generator(0, 4)
    f_in = torch.randn(2, 1, 4, 4, requires_grad=True)
    cotangent = rademacher((2, 1, 4, 4), generator)
    # f_out = 2 f_in: the backward map is 2, s = 2 → 2 − 2 − 1/2.
    assert cell_trainability(f_in, 2 * f_in, cotangent) == pytest.approx(-0.5, abs=1e-5)
    assert cell_trainability(f_in, f_in * 1.0, cotangent) == -math.inf
    # 2×2 average pooling: g_in = g_out/4 on each of 4 unshuffled channels, s = ‖(¼,¼,¼,¼)‖ = ½.
    pooled = rademacher((2, 1, 2, 2), generator)
    assert cell_trainability(f_in, F.avg_pool2d(f_in, 2), pooled) == pytest.approx(2 - 0.5 - 2, abs=1e-5)


def test_az_components_need_a_stem_and_cells() -> None:
    run = score_run(nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU()), *_batch(), ["az_expressivity", "az_trainability"])
    assert all(v.value is None and "stem" in (v.reason or "") for v in run.values.values())


# ---------------------------------------------------------------------------------------------
# Shared pass, seeds, side effects
# ---------------------------------------------------------------------------------------------


def test_one_forward_serves_naswot_and_the_az_components() -> None:
    net = _nb201()
    forwards = [0]
    net.register_forward_pre_hook(lambda module, args: forwards.__setitem__(0, forwards[0] + 1))
    names = ["naswot", "az_expressivity", "az_progressivity", "az_trainability"]
    values = score_run(net, *_batch(), names).values
    assert forwards[0] == 1
    assert all(values[name].value is not None for name in names)
    forwards[0] = 0
    assert values["naswot"].value == pytest.approx(naswot_score(net, _batch()[0]))


@pytest.mark.parametrize("name", ["meco_opt", "swap", "zen", "az_trainability"])
def test_seeded_values_repeat_and_differ_across_seeds(name: str) -> None:
    net = build_nb201(ARCH, num_classes=10, variant="study", channels=16, cells_per_stage=1)
    images, _ = _batch(n=16)  # SWAP's 16 images: 2¹⁶ possible patterns, far from saturated
    assert _value(net, name, seed=3, inputs=images) == _value(net, name, seed=3, inputs=images)
    assert _value(net, name, seed=3, inputs=images) != _value(net, name, seed=4, inputs=images)


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_global_rng_and_network_untouched(bn_mode: str) -> None:
    net = build_nb201(ARCH, num_classes=10, variant="benchmark", channels=4, cells_per_stage=1)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flags = [m.training for m in net.modules()]
    inputs, labels = _batch()
    rng = torch.get_rng_state()
    run = score_run(net, inputs, labels, [n for n in NEW if n != "az_nas"], bn_mode)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert [m.training for m in net.modules()] == flags
    assert all(p.grad is None for p in net.parameters())
    assert all(v.value is not None for v in run.values.values()), {k: v.reason for k, v in run.values.items()}


def test_context_seed_defaults_to_zero() -> None:
    assert MetricContext(nn.Identity(), torch.zeros(1), torch.zeros(1)).seed == 0


# ---------------------------------------------------------------------------------------------
# The aggregate
# ---------------------------------------------------------------------------------------------


def test_log_rank_sum_by_hand() -> None:
    result = log_rank_sum([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0]])
    expected = [math.log(1 / 3) + math.log(3 / 3), math.log(2 / 3) + math.log(1 / 3), math.log(3 / 3) + math.log(2 / 3)]
    assert result == pytest.approx(expected)
    ties = log_rank_sum([[5.0, 5.0, 9.0]])
    assert ties == pytest.approx([math.log(1.5 / 3), math.log(1.5 / 3), 0.0])
    missing = log_rank_sum([[1.0, np.nan, 3.0], [2.0, 1.0, 1.0]])
    assert math.isnan(missing[1])
    assert missing[[0, 2]] == pytest.approx([math.log(1 / 2) + math.log(2 / 2), math.log(2 / 2) + math.log(1 / 2)])


def test_az_nas_in_a_correlate_summary(tmp_path, nb201_csv) -> None:
    cifar = write_cifar10(tmp_path / "cifar", per_class=2).parent
    out = tmp_path / "run"
    config = CorrelateConfig(
        dataset="cifar10", data_dir=str(cifar), benchmark=str(nb201_csv), archs="0:4", batch_size=6,
        out=str(out), network_options=TINY_NB201, metrics=("az_nas",),
    )
    run_correlate(config)
    with (out / "scores.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[5:] == [*AZ_COMPONENTS, "az_nas"]
    for bn in ("train", "eval"):
        subset = [r for r in rows if r["bn"] == bn]
        assert len(subset) == 4
        columns = [[float(r[c]) if r[c] else np.nan for r in subset] for c in AZ_COMPONENTS]
        expected = log_rank_sum(columns)
        for row, value in zip(subset, expected):
            assert (row["az_nas"] == "") if math.isnan(value) else float(row["az_nas"]) == pytest.approx(value)
        assert sum(bool(r["az_nas"]) for r in subset) >= 2
    summary = json.loads((out / "summary.json").read_text())
    records = [r for r in summary if r["metric"] == "az_nas"]
    assert {r["bn"] for r in records} == {"train", "eval"} and all(r["higher_is_better"] for r in records)
    with sqlite3.connect(out / "results.sqlite") as db:
        stored = {name for (name,) in db.execute("select distinct metric from measurements")}
    assert stored == set(AZ_COMPONENTS)
