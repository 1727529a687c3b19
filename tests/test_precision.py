"""Metrics run in IEEE float32 on GPUs (no TF32), and the caller's settings survive."""

import pytest
import torch

from ntknas import scoring as score_module
from ntknas.kernel.precision import ieee_float32
from ntknas.metrics.registry import Metric

pytestmark = pytest.mark.skipif(
    not hasattr(torch.backends.cudnn.conv, "fp32_precision"), reason="torch < 2.9 has only the legacy flags"
)


def _settings() -> tuple[str, str]:
    return torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision


def test_block_uses_ieee_and_restores_the_callers_settings():
    saved = _settings()
    try:
        torch.backends.cudnn.conv.fp32_precision = "tf32"
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        with ieee_float32():
            assert _settings() == ("ieee", "ieee")
        assert _settings() == ("tf32", "tf32")
        with pytest.raises(RuntimeError), ieee_float32():
            raise RuntimeError("a failing metric")
        assert _settings() == ("tf32", "tf32")
    finally:
        torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = saved


def test_every_metric_and_the_kernel_run_in_ieee_float32(monkeypatch):
    seen = []

    def probe(context):
        seen.append(_settings())
        return 1.0

    monkeypatch.setattr(score_module, "get_metric", lambda name: Metric(name, probe, True, "test", "1"))
    monkeypatch.setattr(score_module, "parse_metric_list", lambda names: list(names))
    saved = _settings()
    try:
        torch.backends.cudnn.conv.fp32_precision = "tf32"
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3))
        values = score_module.evaluate_metrics(net, torch.randn(4, 1, 6, 6), torch.tensor([0, 1, 2, 0]), ["a", "b"])
        assert [v.value for v in values.values()] == [1.0, 1.0]
        assert seen == [("ieee", "ieee")] * 2
        assert torch.backends.cudnn.conv.fp32_precision == "tf32"
    finally:
        torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = saved


def test_kernel_runs_in_ieee_float32(monkeypatch):
    from ntknas.kernel import compute_ntk
    from ntknas.kernel import ntk as ntk_module

    seen = []

    def recording(name):
        original = getattr(ntk_module, name)

        def wrapper(*args):
            seen.append((name, _settings()))
            return original(*args)

        return wrapper

    for name in ("couples_samples", "gram_float64"):  # the Jacobian's forward/backward and its Gram product
        monkeypatch.setattr(ntk_module, name, recording(name))
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3))
    compute_ntk(net, torch.randn(4, 1, 6, 6), bn_mode="eval")
    assert seen == [("couples_samples", ("ieee", "ieee")), ("gram_float64", ("ieee", "ieee"))]
