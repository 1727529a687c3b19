"""Matrix-free NTK metrics: exact identities against the B×B kernel, unbiased estimators, the CLI
and the run identity (issue 11)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ntknas import build_network
from ntknas.errors import NtknasError
from ntknas.kernel import compute_ntk
from ntknas.kernel.matrix_free import (
    EstimatorSettings,
    FactorOperator,
    block_gram,
    class_sum_gradients,
    estimate_kernel,
    kernel_products,
    kernel_sketch,
    network_operator,
    summed_gradient,
)
from ntknas.metrics.ntk_metrics import label_gradient_alignment, label_target, metrics_from_estimates

pytestmark = pytest.mark.usefixtures("one_thread")

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_3x3~2|"
NB101_CELL = (
    [[0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
    ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"],
)
LABELS = torch.tensor([0, 1, 2, 0, 1, 1, 3, 0])


def _network(space: str, variant: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    torch.manual_seed(3)
    if space == "nb201":
        net = build_network("nb201", NB201_ARCH, 10, variant=variant, channels=4, cells_per_stage=1)
    else:
        net = build_network("nb101", NB101_CELL, 10, stem_channels=8, num_stacks=2, cells_per_stack=1)
    # The identities are exact; float64 networks test them to 1e-6 without float32 cancellation
    # (the LGA numerator is a difference of much larger class sums).
    return net.to(dtype)


def _inputs(size: int = 8) -> torch.Tensor:
    return torch.randn(size, 3, 16, 16, generator=torch.Generator().manual_seed(2))


def _relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# (space, variant, bn_mode): the study's NB201 cells keep no running statistics, so they are coupled
# in both modes; the benchmark variant and NB101 in eval mode give independent samples.
CASES = [
    ("nb201", "study", "train"),
    ("nb201", "study", "eval"),
    ("nb201", "benchmark", "train"),
    ("nb201", "benchmark", "eval"),
    ("nb101", "study", "train"),
    ("nb101", "study", "eval"),
]


@pytest.mark.parametrize(("space", "variant", "bn_mode"), CASES)
def test_knas_by_one_backward_equals_kernel_mean(space, variant, bn_mode):
    inputs = _inputs()
    exact = compute_ntk(_network(space, variant, torch.float64), inputs, bn_mode=bn_mode)
    net = _network(space, variant, torch.float64)
    with network_operator(net, inputs, bn_mode=bn_mode) as operator:
        total = float(block_gram(summed_gradient(operator))[0, 0])
    assert _relative(total / 64, float(exact.kernel.mean())) < 1e-6
    # Both couplings occur among the cases, and the matrix-free path handles each the same way.
    assert exact.coupled == (variant == "study" and space == "nb201" or bn_mode == "train")


@pytest.mark.parametrize(("space", "variant", "bn_mode"), CASES)
def test_lga_numerator_from_class_sums(space, variant, bn_mode):
    inputs = _inputs()
    kernel = compute_ntk(_network(space, variant, torch.float64), inputs, bn_mode=bn_mode).kernel.numpy()
    centred_target, target_mean, _ = label_target(LABELS.numpy())
    exact = float(((kernel - kernel.mean()) * centred_target).sum())
    with network_operator(_network(space, variant, torch.float64), inputs, bn_mode=bn_mode) as operator:
        _, gradients = class_sum_gradients(operator, LABELS)
    gram = block_gram(gradients)
    numerator = 2 * float(torch.diagonal(gram).sum()) - (1 + target_mean) * float(gram.sum())
    assert _relative(numerator, exact) < 1e-6


@pytest.mark.parametrize(("space", "variant", "bn_mode"), CASES[::2] + CASES[1::2][:1])
@pytest.mark.parametrize("batched", [False, True])
def test_kernel_vector_products_equal_kernel_times_vector(space, variant, bn_mode, batched):
    inputs = _inputs()
    kernel = compute_ntk(_network(space, variant), inputs, bn_mode=bn_mode).kernel
    vectors = torch.randn(3, 8, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    with network_operator(_network(space, variant), inputs, bn_mode=bn_mode, batched=batched) as operator:
        products = kernel_products(operator, vectors)
    expected = vectors @ kernel
    assert float((products - expected).norm() / expected.norm()) < 1e-5


def test_operator_leaves_network_unchanged():
    net = _network("nb201", "benchmark")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    with network_operator(net, _inputs(), bn_mode="train") as operator:
        kernel_products(operator, torch.ones(2, 8, dtype=torch.float64))
    assert net.training
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_factor_operator_and_network_give_the_same_estimates():
    """The fidelity study feeds the estimator a factor of the exact kernel: same seeds, same numbers."""
    inputs = _inputs(16)
    labels = torch.arange(16) % 3
    kernel = compute_ntk(_network("nb201", "study"), inputs, bn_mode="train").kernel
    settings = EstimatorSettings(probes=6, seed=4)
    via_factor = estimate_kernel(FactorOperator.from_kernel(kernel), labels, settings)
    with network_operator(_network("nb201", "study"), inputs, bn_mode="train") as operator:
        via_network = estimate_kernel(operator, labels, settings)
    for field in ("total_sum", "trace", "frobenius_sq", "centred_frobenius_sq"):
        assert _relative(getattr(via_network, field), getattr(via_factor, field)) < 1e-5, field


def _random_kernel(size: int, rank: int, seed: int, offset: float) -> torch.Tensor:
    """A PSD kernel with a decaying spectrum and (``offset``) a large mean, like NTKs at init."""
    generator = torch.Generator().manual_seed(seed)
    factor = torch.randn(size, rank, generator=generator, dtype=torch.float64) / torch.arange(1, rank + 1) ** 0.7
    factor += offset
    return factor @ factor.T


ESTIMATOR_NAMES = ["xnys", "hutch++"]


@pytest.mark.parametrize("estimator", ESTIMATOR_NAMES)
@pytest.mark.parametrize("offset", [0.0, 2.0])
def test_estimators_are_unbiased_on_small_kernels(offset, estimator):
    size = 24
    kernel = _random_kernel(size, 20, seed=1, offset=offset)
    labels = torch.arange(size) % 4
    operator = FactorOperator.from_kernel(kernel)
    exact = {
        "trace": float(torch.trace(kernel)),
        "frobenius_sq": float(kernel.square().sum()),
        "centred_frobenius_sq": float((kernel - kernel.mean()).square().sum()),
    }
    draws: dict[str, list[float]] = {name: [] for name in exact}
    for seed in range(300):
        estimates = estimate_kernel(operator, labels, EstimatorSettings(probes=4, seed=seed, estimator=estimator))
        for name in exact:
            draws[name].append(getattr(estimates, name))
    for name, values in draws.items():
        spread = np.std(values, ddof=1)
        assert spread > 0, f"{name}: the estimator should be random at this size"
        error = spread / np.sqrt(len(values))
        assert abs(np.mean(values) - exact[name]) < 3 * error, name


@pytest.mark.parametrize("estimator", ESTIMATOR_NAMES)
def test_standard_error_matches_the_spread_over_seeds(estimator):
    kernel = _random_kernel(24, 20, seed=2, offset=0.5)
    operator = FactorOperator.from_kernel(kernel)
    runs = [estimate_kernel(operator, None, EstimatorSettings(8, s, estimator)) for s in range(200)]
    for value, error in (("trace", "trace_se"), ("frobenius_sq", "frobenius_sq_se")):
        spread = np.std([getattr(r, value) for r in runs], ddof=1)
        reported = float(np.sqrt(np.mean([getattr(r, error) ** 2 for r in runs])))
        assert 0.5 < reported / spread < 2.0, value


@pytest.mark.parametrize("estimator", ESTIMATOR_NAMES)
def test_enough_probes_make_the_estimates_exact(estimator):
    kernel = _random_kernel(10, 10, seed=3, offset=1.0)
    labels = torch.arange(10) % 2
    settings = EstimatorSettings(probes=24, estimator=estimator)
    estimates = estimate_kernel(FactorOperator.from_kernel(kernel), labels, settings)
    values = metrics_from_estimates(estimates, labels.numpy())
    assert _relative(values["trace"][0], float(torch.trace(kernel))) < 1e-9
    assert _relative(values["fnorm"][0], float(kernel.norm())) < 1e-9
    assert _relative(values["lga"][0], label_gradient_alignment(kernel.numpy(), labels.numpy())) < 1e-9
    assert _relative(values["knas"][0], float(kernel.mean())) < 1e-9


def test_batched_products_give_the_estimates_of_one_at_a_time_products():
    """The GPU path (vectorized pullbacks and pushforwards, in chunks of 32 rows) and the CPU path
    agree; 3 classes + 30 probes make 33 rows, so two chunks."""
    inputs = _inputs(12)
    labels = torch.arange(12) % 3
    settings = EstimatorSettings(probes=30, seed=1)
    results = []
    for batched in (False, True):
        with network_operator(_network("nb201", "study"), inputs, bn_mode="train", batched=batched) as operator:
            results.append(estimate_kernel(operator, labels, settings))
    for field in ("total_sum", "trace", "frobenius_sq", "centred_frobenius_sq"):
        assert _relative(getattr(results[1], field), getattr(results[0], field)) < 1e-5, field


def test_nystrom_trace_does_not_depend_on_the_metrics_asked_for():
    kernel = _random_kernel(16, 12, seed=6, offset=1.0)
    labels = torch.arange(16) % 3
    operator = FactorOperator.from_kernel(kernel)
    settings = EstimatorSettings(probes=6, seed=2)
    alone = estimate_kernel(operator, labels, settings, frobenius=False)
    together = estimate_kernel(operator, labels, settings)
    assert alone.trace == together.trace


def test_a_zero_kernel_gives_zero_estimates():
    """A disconnected cell: every product is zero, and so is every estimate (no 0/0)."""
    operator = FactorOperator(torch.zeros(12, 5, dtype=torch.float64))
    for estimator in ESTIMATOR_NAMES:
        estimates = estimate_kernel(operator, torch.arange(12) % 3, EstimatorSettings(4, 0, estimator))
        assert (estimates.trace, estimates.frobenius_sq, estimates.centred_frobenius_sq) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(("space", "variant", "bn_mode"), [("nb201", "study", "train"), ("nb101", "study", "eval")])
def test_linearized_pushforward_equals_jvp(space, variant, bn_mode, monkeypatch):
    """On a CPU the JVPs run through one linearized trace; a network that cannot be traced uses jvp."""
    import ntknas.kernel.passes as matrix_free  # the passes module holds the linearized JVP

    inputs = _inputs()
    tangents = torch.randn(3, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with network_operator(_network(space, variant), inputs, bn_mode=bn_mode, batched=False) as operator:
        linearized = operator.pushforward(operator.pullback(tangents))
        assert operator._linear is not None
    def untraceable(*args, **kwargs):
        raise RuntimeError("cannot trace this network")

    monkeypatch.setattr(matrix_free, "linearize", untraceable)
    with network_operator(_network(space, variant), inputs, bn_mode=bn_mode, batched=False) as operator:
        plain = operator.pushforward(operator.pullback(tangents))
        assert operator._linear is None and not operator._linearizable
    assert float((linearized - plain).norm() / plain.norm()) < 1e-5


def test_sketch_is_unbiased_on_average():
    kernel = _random_kernel(6, 6, seed=4, offset=0.0)
    operator = FactorOperator.from_kernel(kernel)
    sketches = torch.stack([kernel_sketch(operator, 8, seed) for seed in range(400)])
    mean, error = sketches.mean(0), sketches.std(0) / 20
    assert bool(((mean - kernel).abs() <= 3.5 * error + 1e-12).all())


def test_run_metrics_matrix_free_reports_values_and_standard_errors():
    from ntknas.scoring import run_metrics

    inputs = _inputs()
    exact = run_metrics(_network("nb201", "study"), inputs, LABELS, ("knas", "trace"), "train")
    free = run_metrics(_network("nb201", "study"), inputs, LABELS, ("knas", "trace"), "train", kernel="matrix-free",
                       estimator=EstimatorSettings(probes=4))
    assert free.kernel_strategy == "matrix-free"
    assert _relative(free.values["knas"].value, exact.values["knas"].value) < 1e-6
    assert free.values["knas"].stderr is None  # exact: no estimator
    assert free.values["trace"].stderr is not None and free.values["trace"].stderr >= 0


def test_spectrum_metrics_are_refused_under_matrix_free():
    from ntknas.scoring import run_metrics

    for name in ("tenas", "ntk_rank"):
        with pytest.raises(NtknasError, match="use kernel exact") as error:
            run_metrics(_network("nb201", "study"), _inputs(), LABELS, (name,), "train", kernel="matrix-free")
        assert "\n" not in str(error.value)


def test_bad_probes_are_one_line_errors():
    with pytest.raises(NtknasError, match="probes"):
        EstimatorSettings(probes=1)
    with pytest.raises(NtknasError, match="xnys, hutch"):
        EstimatorSettings(estimator="hutchinson")


def test_cli_score_matrix_free_end_to_end(capsys):
    from ntknas.cli import main

    arch = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    assert main(["score", "--arch", arch, "--batch-size", "8", "--kernel", "matrix-free", "--probes", "4", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["kernel_strategy"] == "matrix-free"
    assert set(shown["metrics"]) == {"knas", "fnorm", "trace", "lga"}
    assert shown["kernel"] == {"kind": "matrix-free", "probes": 4, "seed": 0, "estimator": "xnys"}
    assert main(["score", "--arch", arch, "--batch-size", "8", "--kernel", "matrix-free", "--probes", "4",
                 "--estimator", "hutch++", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kernel"]["estimator"] == "hutch++"
    assert set(shown["stderr"]) == {"trace", "fnorm", "lga"}
    assert main(["score", "--arch", arch, "--batch-size", "8", "--kernel", "matrix-free", "--metrics", "tenas"]) == 2
    error = capsys.readouterr().err
    assert "tenas" in error and "--kernel exact" in error and error.count("\n") == 1


def test_estimator_settings_are_part_of_the_run_identity():
    from ntknas.runs.correlate import CorrelateConfig

    exact = CorrelateConfig(metrics=("knas",))
    small = CorrelateConfig(metrics=("knas",), kernel="matrix-free", probes=8)
    large = CorrelateConfig(metrics=("knas",), kernel="matrix-free", probes=16)
    reseeded = CorrelateConfig(metrics=("knas",), kernel="matrix-free", probes=8, estimator_seed=1)
    hutch = CorrelateConfig(metrics=("knas",), kernel="matrix-free", probes=8, estimator="hutch++")
    configs = (exact, small, large, reseeded, hutch)
    settings = [c.store_settings() for c in configs]
    tags = [c.protocol_tag for c in configs]
    assert len({json.dumps(s, sort_keys=True) for s in settings}) == 5
    assert len(set(tags)) == 5
    # The exact kernel's identity is what it was before --kernel existed.
    assert "kernel" not in settings[0]
    assert settings[2]["kernel"] == {"kind": "matrix-free", "estimator": "xnys", "probes": 16, "seed": 0}


def test_matrix_free_correlate_never_resumes_an_exact_run(tmp_path):
    from ntknas.errors import DataError
    from ntknas.runs.correlate import CorrelateConfig
    from ntknas.store import ResultStore
    from ntknas.store.sqlite import ItemRecord

    with ResultStore(tmp_path) as store:
        store.claim_settings("correlate", CorrelateConfig(metrics=("knas",)).store_settings())
        # a folder pins its settings once it holds a result
        store.commit_item(ItemRecord("0", "nb201", "arch", 0, 0, 90.0, 1.0, "cpu"), [])
        with pytest.raises(DataError, match="kernel"):
            store.claim_settings(
                "correlate", CorrelateConfig(metrics=("knas",), kernel="matrix-free").store_settings()
            )


def test_search_refuses_tenas_under_matrix_free():
    from ntknas.search.driver import SearchConfig

    with pytest.raises(NtknasError, match="kernel exact"):
        SearchConfig(proxies=("tenas",), kernel="matrix-free").checked()
    checked = SearchConfig(proxies=("knas",), kernel="matrix-free", probes=8).checked()
    assert checked.kernel == "matrix-free"
