"""Search strategies as a registry: registering, declared stages instead of names, the
neighbourhood and encoding strategies may use, the local-search example end to end, and the
settings under which a strategy warns that it degenerates."""

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import search_toys
from search_toys import NAME, OPTIMUM

import ntknas
from ntknas.errors import NtknasError, UnknownNameError
from ntknas.plugins import load_plugins
from ntknas.search.driver import SearchConfig, SpaceProposals, SubsetProposals, TableProposals, run_search
from ntknas.search.strategies import (
    FIRST,
    SECOND,
    Ask,
    Strategy,
    available_strategies,
    get_strategy,
    register_strategy,
    two_stage,
)
from ntknas.search.strategies.random import random_search
from ntknas.spaces import get_space

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "add_strategy.py"


@pytest.fixture(scope="module")
def space():
    return search_toys.register()


@pytest.fixture(scope="module")
def table(space, tmp_path_factory):
    return search_toys.write_table(tmp_path_factory.mktemp("toy") / "toy.csv")


@pytest.fixture(scope="module")
def local():
    """The example, loaded as ``--plugin`` loads it (once per process, whichever test asks first)."""
    load_plugins([str(EXAMPLE)], installed=False)
    return get_strategy("local")


def _config(table, out, **overrides) -> SearchConfig:
    settings = dict(space=NAME, dataset="digits", benchmark=str(table), target="acc", proxies=("bench:signal",),
                    candidates=30, runs=4, out=str(out))
    settings.update(overrides)
    return SearchConfig(**settings)


def _rows(out: Path) -> list[dict]:
    with (out / "search.csv").open() as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------------------------ registry


def test_the_builtin_strategies_are_registered_and_public():
    assert available_strategies()[:3] == ["random", "rea", "two-stage"]
    assert ntknas.available_strategies() == available_strategies()
    assert ntknas.register_strategy is register_strategy and ntknas.get_strategy is get_strategy
    assert get_strategy(" REA ").name == "rea"
    assert get_strategy("two-stage").stages == (FIRST, SECOND) and get_strategy("random").stages == (FIRST,)


def test_an_unknown_strategy_is_one_line_naming_the_choices():
    with pytest.raises(UnknownNameError) as error:
        get_strategy("hillclimb")
    message = str(error.value)
    assert "unknown search strategy 'hillclimb'" in message and "random, rea, two-stage" in message
    assert "\n" not in message


def test_a_name_registers_once_unless_replaced():
    def first(space, rng, ledger, settings):
        """First version."""
        yield from random_search(space, rng, ledger, settings)

    registered = register_strategy("Test-Once", first)
    assert registered.name == "test-once" and registered.description == "First version."
    with pytest.raises(ValueError, match="registered twice"):
        register_strategy("test-once", first)
    with pytest.raises(ValueError, match="registered twice"):
        register_strategy("random", first)

    @register_strategy("test-once", replace=True, description="second")
    def second(space, rng, ledger, settings):
        yield from random_search(space, rng, ledger, settings)

    assert get_strategy("test-once").search is second and get_strategy("test-once").description == "second"


@pytest.mark.parametrize("stages", [(), (SECOND,), (FIRST, "third"), (FIRST, FIRST)])
def test_a_strategy_declares_stages_the_driver_can_score(stages):
    with pytest.raises(ValueError, match="stages must start with"):
        Strategy("test-stages", random_search, stages=stages)


def test_the_driver_asks_the_strategy_not_its_name(space, table, tmp_path):
    # two-stage registered under another name: the same stages, proxies, label and rows.
    register_strategy("test-two-stage", Strategy("ignored", two_stage, stages=(FIRST, SECOND),
                                                 label=get_strategy("two-stage").label), replace=True)
    settings = dict(candidates=12, runs=2, top_k=3, second_proxy="bench:acc")
    run_search(_config(table, tmp_path / "builtin", strategies=("two-stage",), **settings))
    run_search(_config(table, tmp_path / "copy", strategies=("test-two-stage",), **settings))
    builtin, copy = _rows(tmp_path / "builtin"), _rows(tmp_path / "copy")
    assert {r["stage"] for r in builtin} == {"proxy", "second"}
    assert [r | {"strategy": "two-stage"} for r in copy] == builtin
    assert builtin[0]["proxy"] == "bench:signal → bench:acc (top 3)"


def test_a_second_stage_proxy_is_checked_for_any_strategy_that_declares_one(space, table, tmp_path):
    register_strategy("test-two-stage-plain", two_stage, stages=(FIRST, SECOND), replace=True)
    with pytest.raises(UnknownNameError, match="unknown metric 'nonsense'"):
        run_search(_config(table, tmp_path / "run", strategies=("test-two-stage-plain",), second_proxy="nonsense"))
    # Its default label joins its stages' proxies.
    run_search(_config(table, tmp_path / "ok", strategies=("test-two-stage-plain",), second_proxy="bench:acc",
                       candidates=5, runs=1, top_k=2))
    assert _rows(tmp_path / "ok")[0]["proxy"] == "bench:signal → bench:acc"


def test_a_stage_the_strategy_did_not_declare_is_refused(space, table, tmp_path):
    def sneaky(space, rng, ledger, settings):
        yield Ask(SECOND, [space.arch_at(0)])

    register_strategy("test-sneaky", sneaky, replace=True)
    with pytest.raises(NtknasError, match="asked for stage 'second', which it does not declare"):
        run_search(_config(table, tmp_path / "run", strategies=("test-sneaky",), runs=1))


def test_a_strategy_named_twice_is_refused(space, table, tmp_path):
    with pytest.raises(NtknasError, match="strategies names 'random' twice"):
        run_search(_config(table, tmp_path / "run", strategies=("random", "rea", " Random")))


# ------------------------------------------------------------------------------------ REA's caveat


def test_rea_that_cannot_evolve_says_so_once(space, table, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="ntknas"):
        outcome = run_search(_config(table, tmp_path / "run", strategies=("random", "rea"), candidates=10,
                                     population=10, runs=3))
    lines = [r.getMessage() for r in caplog.records if "never mutates" in r.getMessage()]
    assert len(lines) == 1 and "--candidates 10 <= --population 10" in lines[0]
    assert outcome.warnings == lines
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["warnings"] == lines
    assert f"- warning: {lines[0]}" in (tmp_path / "run" / "summary.md").read_text()
    rows = _rows(tmp_path / "run")
    by_strategy = {s: [(r["run"], r["arch"]) for r in rows if r["strategy"] == s] for s in ("random", "rea")}
    assert by_strategy["rea"] == by_strategy["random"]  # what the warning is about

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ntknas"):
        outcome = run_search(_config(table, tmp_path / "evolves", strategies=("rea",), candidates=11, population=10,
                                     runs=1))
    assert outcome.warnings == [] and not [r for r in caplog.records if "never mutates" in r.getMessage()]
    assert "warnings" not in json.loads((tmp_path / "evolves" / "summary.json").read_text())


# ------------------------------------------------------------------------------------ neighbours, encode


def test_proposals_offer_the_neighbours_they_can_draw(space, tmp_path):
    arch = space.parse("skip-pool-conv1-conv3")
    assert SpaceProposals(space).neighbours(arch) == space.neighbours(arch) and len(space.neighbours(arch)) == 12
    members = [space.arch_at(i) for i in range(0, 256, 3)]
    subset = SubsetProposals(space, members, lambda a, b: 1.0)
    keys = {space.key(m) for m in members}
    expected = [n for n in space.neighbours(members[0]) if space.key(n) in keys]
    assert subset.neighbours(members[0]) == expected and expected
    part = tmp_path / "part.csv"
    with part.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "acc"])
        writer.writerows([space.key(m), 1.0] for m in members)
    table = TableProposals(space, ntknas.load_benchmark(part, NAME, "acc"))
    assert [space.key(n) for n in table.neighbours(members[0])] == [space.key(n) for n in expected]


def test_nb201_encodes_each_edge_op_one_hot():
    nb201 = get_space("nb201")
    codes = np.array([nb201.encode(nb201.arch_at(i)) for i in range(0, 15625, 7)])
    assert codes.shape[1] == 30 and set(np.unique(codes)) == {0.0, 1.0}
    assert (codes.reshape(len(codes), 6, 5).sum(axis=2) == 1).all()
    assert len(np.unique(codes, axis=0)) == len(codes)
    arch = nb201.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|")
    assert np.flatnonzero(nb201.encode(arch)).tolist() == [3, 5, 11, 19, 22, 25]
    assert SpaceProposals(nb201).encode(arch).tolist() == nb201.encode(arch).tolist()


def test_nb101_encodes_the_padded_adjacency_and_ops():
    from ntknas.spaces.nb101 import NB101Spec

    nb101 = get_space("nb101")
    spec = NB101Spec([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
                     ["input", "conv3x3-bn-relu", "maxpool3x3", "output"])
    code = nb101.encode(spec)
    assert code.shape == (36,)
    adjacency = np.zeros((7, 7))
    adjacency[np.triu_indices(7, 1)] = code[:21]
    assert {tuple(e) for e in np.argwhere(adjacency)} == {(0, 1), (0, 2), (1, 6), (2, 6)}
    assert code[21:].reshape(5, 3).tolist()[:3] == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    assert all(nb101.encode(n).shape == (36,) for n in nb101.neighbours(spec))


def test_a_space_without_an_encoding_says_so():
    with pytest.raises(NtknasError, match="custom space has no numeric encoding"):
        get_space("custom").encode(lambda: None)


# ------------------------------------------------------------------------------------ the example


def test_the_local_search_example_climbs_to_the_optimum(local, space, table, tmp_path):
    assert "local" in available_strategies() and local.stages == (FIRST,)
    assert load_plugins([str(EXAMPLE)], installed=False)  # a second load is a no-op, not a second register
    out = tmp_path / "run"
    outcome = run_search(_config(table, out, strategies=("local", "random"), candidates=60, runs=4))
    rows = [r for r in _rows(out) if r["strategy"] == "local"]
    (record, baseline) = outcome.records
    # The toy signal has no local optimum but the global one, so every run climbs there.
    assert record["found_best"] == 4 and record["found_best"] > baseline["found_best"]
    signal = {r["arch"]: float(r["value"]) for r in rows}
    for run in range(4):
        steps = [r for r in rows if r["run"] == str(run)]
        assert len(steps) <= 60 and len({r["arch"] for r in steps}) == len(steps)  # nothing scored twice
        assert steps[-1]["best_arch"] == OPTIMUM
        climb = steps[:[r["arch"] for r in steps].index(OPTIMUM) + 1]
        current = climb[0]["arch"]
        for step in climb[1:]:  # each step is a neighbour of where the climb stands, or a restart
            neighbours = {space.key(n) for n in space.neighbours(space.parse(current))}
            if step["arch"] in neighbours:
                if signal[step["arch"]] > signal[current]:
                    current = step["arch"]
            else:
                assert all(k in signal and signal[k] <= signal[current] for k in neighbours)  # a local optimum
                current = step["arch"]


def test_the_local_search_example_respects_a_time_budget(local, space, table, tmp_path, monkeypatch):
    monkeypatch.setenv("NTKNAS_TOY_METRIC_DELAY", "0.003")
    out = tmp_path / "run"
    run_search(_config(table, out, strategies=("local",), proxies=("toy_params",), candidates=None, time_budget=0.02,
                       runs=2, network_options={"width": 2}))
    rows = _rows(out)
    for run in ("0", "1"):
        costs = [float(r["cost"]) for r in rows if r["run"] == run]
        assert costs and all(c < 0.02 for c in costs[:-1]) and costs[-1] >= 0.02
