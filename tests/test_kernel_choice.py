"""``--kernel auto``: the measured rule, that an evaluation under it equals one under the kernel it
chose, and that runs store and reuse values under the chosen kernel's identity only (issue 26)."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
import search_toys
import torch

from ntknas import build_network
from ntknas.errors import DataError
from ntknas.kernel import choice
from ntknas.kernel.choice import EXACT, MATRIX_FREE, KernelNeeds, choose_kernel
from ntknas.kernel.matrix_free import EstimatorSettings
from ntknas.runs.correlate import CorrelateConfig, run_correlate
from ntknas.scoring import choose_kernel_for, run_metrics
from ntknas.search.driver import SearchConfig, run_search

pytestmark = pytest.mark.usefixtures("one_thread")

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_3x3~2|"
LABELS = torch.tensor([0, 1, 2, 0, 1, 1, 3, 0])
CPU_LIMIT = choice.EXACT_UP_TO["cpu"]


# ------------------------------------------------------------------------------------------ the rule


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_estimates_take_the_exact_kernel_up_to_the_device_threshold_and_matrix_free_above(device):
    estimates = KernelNeeds(estimates=True)
    limit = choice.EXACT_UP_TO[device]
    assert choose_kernel(estimates, limit, device).kind == EXACT
    assert choose_kernel(estimates, limit + 1, device).kind == MATRIX_FREE
    assert choose_kernel(estimates, 2, device).kind == EXACT
    made = choose_kernel(estimates, limit + 1, device)
    assert f"B = {limit + 1} > {limit}" in made.reason and device in made.reason


def test_eigenvalues_always_take_the_exact_kernel_and_knas_alone_never_does():
    for batch in (2, 16, 10_000):
        assert choose_kernel(KernelNeeds(eigenvalues=True, estimates=True), batch, "cpu").kind == EXACT
        assert choose_kernel(KernelNeeds(sums=True), batch, "cpu").kind == MATRIX_FREE
        assert choose_kernel(KernelNeeds(), batch, "cpu").kind == EXACT  # no kernel metric: the kind is moot
    # knas beside an estimated metric pays for the estimate's passes: the estimate's threshold rules.
    assert choose_kernel(KernelNeeds(sums=True, estimates=True), CPU_LIMIT, "cpu").kind == EXACT


def test_an_unlisted_device_type_uses_the_cpu_threshold():
    assert choice.device_type("cuda:1") == "cuda" and choice.device_type("cpu") == "cpu"
    assert choice.exact_up_to("mps", KernelNeeds(estimates=True)) == CPU_LIMIT


def test_the_registry_classifies_the_metrics():
    assert choose_kernel_for(("tenas", "lga"), 4 * CPU_LIMIT, "cpu").kind == EXACT
    assert choose_kernel_for(("lga",), CPU_LIMIT + 1, "cpu").kind == MATRIX_FREE
    assert choose_kernel_for(("lga",), CPU_LIMIT, "cpu").kind == EXACT
    assert choose_kernel_for(("knas",), 8, "cpu").kind == MATRIX_FREE
    assert choose_kernel_for(("synflow", "params"), 4 * CPU_LIMIT, "cpu").kind == EXACT


# ---------------------------------------------------------------------- one evaluation equals its choice


def _network() -> torch.nn.Module:
    torch.manual_seed(3)
    return build_network("nb201", NB201_ARCH, 10, variant="study", channels=4, cells_per_stage=1)


def _inputs() -> torch.Tensor:
    return torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize(("metrics", "limit", "chosen"), [
    (("knas", "trace"), None, EXACT),  # B = 8 is under the cpu threshold
    (("knas",), None, MATRIX_FREE),
    (("trace", "lga"), 4, MATRIX_FREE),  # a threshold under B: the estimate
    (("tenas", "trace"), 4, EXACT),
])
def test_auto_gives_the_values_of_the_kernel_it_chose(metrics, limit, chosen, monkeypatch):
    if limit is not None:
        monkeypatch.setitem(choice.EXACT_UP_TO, "cpu", limit)
    settings = EstimatorSettings(probes=4)
    auto = run_metrics(_network(), _inputs(), LABELS, metrics, "train", kernel="auto", estimator=settings)
    named = run_metrics(_network(), _inputs(), LABELS, metrics, "train", kernel=chosen, estimator=settings)
    assert auto.kernel_choice is not None and auto.kernel_choice.kind == chosen
    assert named.kernel_choice is None
    assert {m: v.value for m, v in auto.values.items()} == {m: v.value for m, v in named.values.items()}
    assert (auto.kernel_strategy == "matrix-free") == (chosen == MATRIX_FREE)


def test_cli_score_reports_what_auto_chose(capsys):
    from ntknas.cli import main

    arch = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    assert main(["score", "--arch", arch, "--batch-size", "8", "--kernel", "auto", "--metrics", "knas", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["kernel_strategy"] == "matrix-free" and shown["kernel"]["kind"] == "matrix-free"
    assert "knas alone" in shown["kernel_choice"]
    assert main(["score", "--arch", arch, "--batch-size", "8", "--kernel", "auto", "--metrics", "tenas,lga"]) == 0
    assert "--kernel auto chose exact: a metric needs the kernel's eigenvalues" in capsys.readouterr().out


# --------------------------------------------------------------------------------- identity and resume


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    search_toys.register()
    return search_toys.write_table(tmp_path_factory.mktemp("toy") / "toy.csv")


def _correlate(table, out, **overrides) -> CorrelateConfig:
    settings = dict(space=search_toys.NAME, dataset="digits", benchmark=str(table), target="acc", archs="0:4",
                    bn_modes=("train",), metrics=("lga",), network_options={"width": 2}, probes=4, out=str(out))
    return CorrelateConfig(**(settings | overrides))


def _items(out) -> list[dict]:
    with sqlite3.connect(out / "results.sqlite") as db:
        return [json.loads(info or "{}") for (info,) in db.execute("SELECT info FROM items")]


def test_a_correlate_run_is_stored_under_the_kernel_auto_chose(table, tmp_path, monkeypatch):
    from ntknas.data import dataset_info

    info = dataset_info("digits")
    exact, auto = _correlate(table, tmp_path / "exact").resolved(info), _correlate(table, tmp_path / "exact", kernel="auto").resolved(info)
    # The toy batch (8) is under the cpu threshold: auto is the exact kernel, identity and all.
    assert auto.kernel == EXACT and auto.kernel_choice is not None
    assert auto.store_settings() == exact.store_settings() and auto.protocol_tag == exact.protocol_tag
    assert run_correlate(_correlate(table, tmp_path / "exact")).measured == 4
    assert run_correlate(_correlate(table, tmp_path / "exact", kernel="auto")).measured == 0  # the same values
    # Where auto chooses matrix-free, it never resumes into the exact kernel's folder...
    monkeypatch.setitem(choice.EXACT_UP_TO, "cpu", 4)
    with pytest.raises(DataError, match="kernel"):
        run_correlate(_correlate(table, tmp_path / "exact", kernel="auto"))
    # ...stores what a --kernel matrix-free run stores, and records its choice with each item.
    assert run_correlate(_correlate(table, tmp_path / "auto", kernel="auto")).measured == 4
    assert run_correlate(_correlate(table, tmp_path / "auto", kernel="matrix-free")).measured == 0
    assert run_correlate(_correlate(table, tmp_path / "auto", kernel="auto")).measured == 0
    assert all(item["kernel"]["kind"] == MATRIX_FREE and "B = 8 > 4" in item["kernel"]["chosen_by_auto"]
               for item in _items(tmp_path / "auto"))
    assert all("kernel" not in item for item in _items(tmp_path / "exact"))


def _search(table, out, **overrides) -> SearchConfig:
    settings = dict(space=search_toys.NAME, dataset="digits", benchmark=str(table), target="acc",
                    proxies=("knas", "lga"), strategies=("random",), candidates=6, runs=2, network_options={"width": 2}, probes=4,
                    kernel="auto", out=str(out))
    return SearchConfig(**(settings | overrides))


def test_a_search_chooses_per_proxy_and_reuses_only_values_of_the_chosen_kernel(table, tmp_path):
    # Caches measured with the exact kernel: lga's values are auto's (exact at B = 8), knas's are not
    # (auto computes knas alone matrix-free).
    # Random search's candidates: run r draws the first 6 of default_rng(r)'s permutation.
    archs = ",".join(map(str, sorted({int(p) for run in range(2) for p in np.random.default_rng(run).permutation(256)[:6]})))
    run_correlate(_correlate(table, tmp_path / "lga", archs=archs))
    run_correlate(_correlate(table, tmp_path / "knas", archs=archs, metrics=("knas",)))
    cache = (str(tmp_path / "lga"), str(tmp_path / "knas"))
    out = tmp_path / "search"
    outcome = run_search(_search(table, out, cache=cache))
    summary = json.loads((out / "summary.json").read_text())
    assert {label: made["kind"] for label, made in summary["kernel_auto"].items()} == {"knas": MATRIX_FREE, "lga": EXACT}
    with sqlite3.connect(out / "results.sqlite") as db:
        knas_measured = db.execute("SELECT COUNT(DISTINCT arch) FROM measurements WHERE metric = 'knas'").fetchone()[0]
    # knas measured anew, matrix-free; every lga value came from the exact cache.
    assert outcome.measured == knas_measured == len(archs.split(",")) and outcome.from_cache == knas_measured
    assert summary["spec"]["settings"]["kernel"]["kind"] == "auto"  # the folder: what was asked
    again = run_search(_search(table, out))  # resumes from the folder alone, measuring nothing
    assert (again.measured, again.from_cache) == (0, 0)
    assert [(r.arch, r.value) for r in again.rows] == [(r.arch, r.value) for r in outcome.rows]
    with pytest.raises(DataError, match="kernel"):  # a named kernel is another folder identity
        run_search(_search(table, out, kernel="exact"))
