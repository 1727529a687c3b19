"""Kernel and metric contracts (issue 19 item 6, issue 22 item 1): the vectorized passes fall back
per call and never swallow out-of-memory, estimator sizes are bounded by the batch, metrics return
their standard errors, and a metric name is registered once unless replaced."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from ntknas.errors import NtknasError
from ntknas.kernel import compute_ntk, passes
from ntknas.kernel import estimators as estimators_module
from ntknas.kernel.estimator_settings import EstimatorSettings, effective_settings, probe_bound
from ntknas.kernel.matrix_free import FactorOperator, estimate_kernel, kernel_products, network_operator
from ntknas.metrics import registry
from ntknas.scoring import score, score_run

pytestmark = pytest.mark.usefixtures("one_thread")


class _NoBatchingRule(torch.autograd.Function):
    """Doubles its input; its backward and forward-mode rules read a scalar, which vmap refuses
    (``.item()`` of a batched tensor), so only one-at-a-time products work through it."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        gradient.sum().item()
        return gradient * 2

    @staticmethod
    def jvp(ctx, tangent: torch.Tensor) -> torch.Tensor:
        tangent.sum().item()
        return tangent * 2


class _Refusing(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.classifier = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(_NoBatchingRule.apply(torch.relu(self.conv(x))).flatten(1))


def _tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))


def _inputs(size: int = 6) -> torch.Tensor:
    return torch.randn(size, 3, 4, 4, generator=torch.Generator().manual_seed(1))


def _vectors(size: int = 6) -> torch.Tensor:
    return torch.randn(3, size, generator=torch.Generator().manual_seed(5), dtype=torch.float64)


def test_a_network_without_batching_rules_falls_back_per_call_and_says_so_once(caplog):
    torch.manual_seed(0)
    net, inputs, vectors = _Refusing(), _inputs(), _vectors()
    kernel = compute_ntk(net, inputs, bn_mode="eval", strategy="loop").kernel
    with caplog.at_level(logging.DEBUG, logger="ntknas"), network_operator(net, inputs, bn_mode="eval", batched=True) as op:
        first = kernel_products(op, vectors)
        second = kernel_products(op, vectors)
        assert op.batched  # the next call tries the vectorized pass again: no switch for good
    expected = vectors @ kernel
    for products in (first, second):
        assert float((products - expected).norm() / expected.norm()) < 1e-5
    told = [r for r in caplog.records if "refuses vectorized" in r.getMessage()]
    assert [r.levelno for r in told if r.levelno >= logging.INFO] == [logging.INFO]  # once, then DEBUG
    assert len(told) == 4  # backward and forward-mode, in each of the two calls


@pytest.mark.parametrize(
    "error",
    [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
     RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")],
    ids=["cuda", "cpu"],
)
@pytest.mark.parametrize("direction", ["pullback", "pushforward"])
def test_out_of_memory_in_a_vectorized_pass_propagates(error, direction, monkeypatch):
    def exhausted(self, rows, *, vectorized):
        if vectorized:
            raise error
        raise AssertionError("fell back to one product at a time after running out of memory")

    monkeypatch.setattr(passes.NetworkPasses, "vjp_rows" if direction == "pullback" else "jvp_rows", exhausted)
    with network_operator(_tiny(), _inputs(), batched=True) as op, pytest.raises(RuntimeError) as raised:
        kernel_products(op, _vectors())
    assert raised.value is error
    assert passes.batching_refused(RuntimeError("Batching rule not implemented for aten::item."))
    assert not passes.batching_refused(error)


def test_exact_kernel_and_matrix_free_share_the_pullback():
    """Both paths pull back through the one module of passes: the same rows, the same numbers."""
    net, inputs = _tiny(), _inputs()
    kernel = compute_ntk(net, inputs, strategy="loop").kernel
    with network_operator(net, inputs) as op:
        assert isinstance(op, passes.NetworkPasses)
        products = kernel_products(op, torch.eye(6, dtype=torch.float64))
    assert float((products - kernel).norm() / kernel.norm()) < 1e-5


def _factor(size: int, seed: int = 3) -> FactorOperator:
    generator = torch.Generator().manual_seed(seed)
    factor = torch.randn(size, 12, generator=generator, dtype=torch.float64) + 0.5
    return FactorOperator(factor)


@pytest.mark.parametrize(("estimator", "size", "bound"), [("xnys", 6, 6), ("xnys", 8, 8), ("hutch++", 6, 10), ("hutch++", 4, 6)])
def test_probes_beyond_the_batch_are_clamped_with_one_warning(estimator, size, bound, caplog):
    assert probe_bound(estimator, size) == bound
    operator, labels = _factor(size), torch.arange(size) % 3
    asked = EstimatorSettings(probes=1_000_000, seed=2, estimator=estimator)
    with caplog.at_level(logging.WARNING, logger="ntknas"):
        clamped = estimate_kernel(operator, labels, asked)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1 and f"using {bound}" in lines[0] and "--probes 1000000" in lines[0]
    assert "\n" not in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ntknas"):
        at_bound = estimate_kernel(operator, labels, EstimatorSettings(probes=bound, seed=2, estimator=estimator))
    assert not caplog.records  # within the bound: nothing to say, nothing changed
    assert clamped == at_bound
    # The run keeps what was asked: its identity (and so its folder) is the user's request.
    assert asked.identity() == {"probes": 1_000_000, "seed": 2, "estimator": estimator}


@pytest.mark.parametrize("estimator", ["xnys", "hutch++"])
def test_the_bound_makes_the_estimates_exact(estimator):
    size = 7
    operator, labels = _factor(size), torch.arange(size) % 2
    kernel = operator.factor @ operator.factor.T
    estimates = estimate_kernel(operator, labels, EstimatorSettings(probe_bound(estimator, size), estimator=estimator))
    assert abs(estimates.trace - float(torch.trace(kernel))) < 1e-9 * float(torch.trace(kernel))
    assert abs(estimates.frobenius_sq - float(kernel.square().sum())) < 1e-9 * float(kernel.square().sum())


def test_requests_within_the_bound_are_untouched():
    for probes in (2, 5, 8):
        settings = EstimatorSettings(probes=probes)
        assert effective_settings(settings, 8) is settings
    assert effective_settings(EstimatorSettings(probes=9), 8).probes == 8
    assert effective_settings(EstimatorSettings(probes=3), 1).probes == 2  # never below two probes


def test_a_probe_block_that_cannot_fit_is_refused_before_allocating(monkeypatch):
    monkeypatch.setattr(estimators_module, "available_memory", lambda device: 1000)
    with pytest.raises(NtknasError, match="use fewer probes or a smaller batch_size") as raised:
        estimate_kernel(_factor(6), torch.arange(6) % 3, EstimatorSettings(probes=4))
    assert "\n" not in str(raised.value)
    assert estimators_module.available_memory(torch.device("cpu")) is None or \
        estimators_module.available_memory(torch.device("cpu")) > 0


def test_score_at_a_small_batch_with_many_probes_is_quick_and_warns(caplog):
    net, inputs, labels = _tiny(), _inputs(8), torch.arange(8) % 3
    with caplog.at_level(logging.WARNING, logger="ntknas"):
        many = score_run(net, inputs, labels, ("fnorm", "trace", "lga"), kernel="matrix-free",
                         estimator=EstimatorSettings(probes=1_000_000))
    assert any("using 8" in r.getMessage() for r in caplog.records)
    bounded = score_run(net, inputs, labels, ("fnorm", "trace", "lga"), kernel="matrix-free",
                        estimator=EstimatorSettings(probes=8))
    assert {k: (v.value, v.stderr) for k, v in many.values.items()} == \
        {k: (v.value, v.stderr) for k, v in bounded.values.items()}


def test_metrics_return_their_standard_errors_and_the_context_is_not_mutated():
    net, inputs, labels = _tiny(), _inputs(8), torch.arange(8) % 3
    context = registry.MetricContext(net, inputs, labels, kernel_kind="matrix-free",
                                     estimator=EstimatorSettings(probes=4), wanted=("trace", "lga"))
    value, error = registry.split_output(registry.get_metric("trace").compute(context))
    assert error is not None and error >= 0 and value > 0
    assert registry.split_output(registry.get_metric("knas").compute(context))[1] is None
    assert not hasattr(context, "standard_errors")
    assert context.kernel_run == ("matrix-free", None)
    run = score_run(net, inputs, labels, ("knas", "trace"))
    assert run.kernel_strategy == "loop" and run.kernel_seconds is not None
    assert run.values["trace"].stderr is None


def test_register_metric_refuses_a_name_twice_unless_replaced(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # leave the real registry as it was
    registry.register_metric("twice", higher_is_better=True, family="custom", formula="1")(lambda context: 1.0)
    with pytest.raises(NtknasError, match="replace=True"):
        registry.register_metric("twice", higher_is_better=True, family="custom", formula="2")(lambda context: 2.0)
    with pytest.raises(NtknasError, match="already registered"):  # a built-in too
        registry.register_metric("knas", higher_is_better=True, family="custom", formula="3")(lambda context: 3.0)
    # Re-running a notebook cell: the new definition wins, in the old one's place.
    registry.register_metric("twice", higher_is_better=False, family="custom", formula="2", replace=True)(
        lambda context: 2.0
    )
    assert registry.get_metric("twice").formula == "2"
    assert score(_tiny(), _inputs(4), torch.arange(4) % 2, ("twice",)) == {"twice": 2.0}


def test_one_documented_scoring_name_and_its_aliases():
    import ntknas
    from ntknas import scoring

    assert ntknas.score is scoring.score and ntknas.score_run is scoring.score_run
    assert ntknas.evaluate is scoring.evaluate and ntknas.evaluate_metrics is scoring.evaluate_metrics
    for alias in (scoring.evaluate_metrics, scoring.run_metrics, scoring.evaluate):
        assert "kept for scripts written before 0.2" in (alias.__doc__ or "")
    net, inputs, labels = _tiny(), _inputs(6), torch.arange(6) % 3
    values = score(net, inputs, labels, ("knas", "lga"))
    assert values == {k: v.value for k, v in scoring.evaluate_metrics(net, inputs, labels, ("knas", "lga")).items()}
    assert values == {k: v.value for k, v in scoring.evaluate(net, inputs, labels, ("knas", "lga")).values.items()}


def test_vectorized_products_in_several_chunks_match_one_at_a_time(monkeypatch):
    """The probes are now bounded by the batch, so small chunks stand in for a batch of several
    chunks of 32 rows: 3 classes + 8 probes make 11 rows, three chunks of 4."""
    monkeypatch.setattr(passes, "DEFAULT_BATCHED_CHUNK", 4)
    inputs, labels = _inputs(8), torch.arange(8) % 3
    settings = EstimatorSettings(probes=8, seed=1)
    results = []
    for batched in (False, True):
        with network_operator(_tiny(), inputs, batched=batched) as operator:
            results.append(estimate_kernel(operator, labels, settings))
    for field in ("total_sum", "trace", "frobenius_sq", "centred_frobenius_sq"):
        first, second = getattr(results[0], field), getattr(results[1], field)
        assert abs(second - first) <= 1e-5 * abs(first), field
