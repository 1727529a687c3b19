"""ntknas search: strategies against independent reference implementations, the guarantee that
the target never guides, the measurement cache, resume after kill -9, costs, outputs, bad input."""

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import search_toys
from search_toys import NAME, OPTIMUM, toy_accuracy

from ntknas.cli import main
from ntknas.runs import correlate as correlate_module
from ntknas.runs.correlate import CorrelateConfig, run_correlate
from ntknas.search.driver import SearchConfig, run_search
from ntknas.search.strategies import Budget, Evaluation, Ledger, StrategySettings, regularized_evolution

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
CHOICE_COLUMNS = ("strategy", "proxy", "run", "seed", "step", "stage", "arch", "index", "value", "new", "best_arch",
                  "evaluations", "epochs")


@pytest.fixture(scope="module")
def space():
    return search_toys.register()


@pytest.fixture(scope="module")
def table(space, tmp_path_factory):
    return search_toys.write_table(tmp_path_factory.mktemp("toy") / "toy.csv")


def _config(table, out, **overrides) -> SearchConfig:
    settings = dict(space=NAME, dataset="digits", benchmark=str(table), target="acc", proxies=("bench:signal",),
                    candidates=30, runs=4, out=str(out))
    settings.update(overrides)
    return SearchConfig(**settings)


def _rows(out: Path) -> list[dict]:
    with (out / "search.csv").open() as handle:
        return list(csv.DictReader(handle))


def _signal(table: Path) -> dict[str, float]:
    with table.open() as handle:
        return {row["arch"]: float(row["signal"]) for row in csv.DictReader(handle)}


# ------------------------------------------------------------------------------------ strategies


def test_random_search_scores_the_seeded_permutation_and_keeps_the_best_by_the_proxy(space, table, tmp_path):
    outcome = run_search(_config(table, tmp_path / "run", candidates=25, runs=3, seed=7))
    rows = _rows(tmp_path / "run")
    signal = _signal(table)
    for run in range(3):
        steps = [r for r in rows if r["run"] == str(run)]
        # Independent: run r draws the first N of default_rng(seed + r)'s permutation of the space.
        expected = [space.key(space.arch_at(int(p))) for p in np.random.default_rng(7 + run).permutation(256)[:25]]
        assert [r["arch"] for r in steps] == expected
        best = max(expected, key=lambda k: signal[k])
        assert steps[-1]["best_arch"] == best
        assert float(steps[-1]["best_accuracy"]) == toy_accuracy(space.parse(best))
        # The incumbent column is the running argmax of the proxy.
        running = []
        for row in steps:
            running.append(row["arch"])
            assert row["best_arch"] == max(running, key=lambda k: signal[k])
    assert len(outcome.records) == 1 and outcome.records[0]["runs"] == 3


def test_exhaustive_random_search_finds_the_known_optimum(space, table, tmp_path):
    outcome = run_search(_config(table, tmp_path / "run", candidates=256, runs=2))
    record = outcome.records[0]
    assert record["found_best"] == 2 and record["regret_mean"] == 0.0
    assert all(final["arch"] == OPTIMUM for final in record["final"])


def _reference_rea(space, seed, candidates, fitness, population_size=10, tournament=3):
    """Real et al.'s Algorithm 1 as the NAS-Bench-201 code writes it, counting distinct
    architectures as the budget: the history of scored architectures, in order."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(space.size())
    population = deque()
    history = []
    for position in order[:population_size]:
        arch = space.arch_at(int(position))
        population.append(arch)
        history.append(space.key(arch))
    while len(set(history)) < candidates:
        sample = [population[int(rng.integers(len(population)))] for _ in range(tournament)]
        parent = sample[0]
        for member in sample[1:]:
            if fitness(member) > fitness(parent):
                parent = member
        neighbours = space.neighbours(parent)
        child = neighbours[int(rng.integers(len(neighbours)))]
        population.append(child)
        history.append(space.key(child))
        population.popleft()
    return history


def test_rea_matches_an_independent_implementation(space, table, tmp_path):
    run_search(_config(table, tmp_path / "run", strategies=("rea",), candidates=60, runs=4))
    rows = _rows(tmp_path / "run")
    signal = _signal(table)
    for run in range(4):
        history = _reference_rea(space, run, 60, lambda a: signal[space.key(a)])
        assert [r["arch"] for r in rows if r["run"] == str(run)] == history
        assert len({r["arch"] for r in rows if r["run"] == str(run)}) == 60


def test_rea_finds_the_known_optimum_where_random_search_mostly_does_not(space, table, tmp_path):
    # 100 of 256 architectures: random search finds the optimum in ~39 % of runs.
    outcome = run_search(_config(table, tmp_path / "run", strategies=("random", "rea"), candidates=100, runs=10))
    random_search, evolution = outcome.records
    assert evolution["found_best"] >= 8 and random_search["found_best"] < evolution["found_best"]
    assert all(final["regret"] <= 1.0 for final in evolution["final"])  # the rest one op away
    assert evolution["regret_mean"] < random_search["regret_mean"]


def test_a_repeated_child_costs_nothing_and_does_not_count():
    keys = ["a0", "a1", "a2"]

    class Three:  # mutation proposes a0, a1, a2, a0, ...: at least one repeat comes before a2 is new
        proposed = 0

        def size(self):
            return 3

        def arch_at(self, position):
            return keys[position]

        def mutate(self, arch, rng):
            self.proposed += 1
            return keys[(self.proposed - 1) % 3]

        def key(self, arch):
            return arch

    ledger = Ledger(key=str, budget=Budget(candidates=3))
    search = regularized_evolution(Three(), np.random.default_rng(0), ledger, StrategySettings(population=2, tournament=2))
    ask = next(search)
    asked = []
    try:
        while True:
            asked += ask.archs
            ask = search.send([Evaluation(1.0, 1.0, proxy_seconds=1.0) for _ in ask.archs])
    except StopIteration:
        pass
    assert sorted(asked) == keys  # each scored once
    assert ledger.evaluations == 3 and ledger.proxy_seconds == 3.0
    repeats = [step for step in ledger.steps if not step.new]
    assert repeats and len(ledger.steps) == 3 + len(repeats)
    assert all(step.proxy_seconds == ledger.steps[i - 1].proxy_seconds
               for i, step in enumerate(ledger.steps) if not step.new)


def test_two_stage_trains_the_top_k_and_picks_by_the_second_proxy(space, table, tmp_path):
    out = tmp_path / "run"
    outcome = run_search(_config(table, out, strategies=("two-stage",), candidates=12, runs=2, top_k=3,
                                 second_proxy="toy_params", second_epochs=1, network_options={"width": 2}))
    rows = _rows(out)
    signal = _signal(table)
    for run in range(2):
        first = [r for r in rows if r["run"] == str(run) and r["stage"] == "proxy"]
        second = [r for r in rows if r["run"] == str(run) and r["stage"] == "second"]
        top = sorted((r["arch"] for r in first), key=lambda k: -signal[k])[:3]
        assert [r["arch"] for r in second] == top
        values = {r["arch"]: float(r["value"]) for r in second}
        # Ties keep the better first-stage candidate.
        chosen = top[0]
        for arch in top[1:]:
            if values[arch] > values[chosen]:
                chosen = arch
        assert second[-1]["best_arch"] == chosen
        assert int(second[-1]["epochs"]) == 3 and float(second[-1]["train_seconds"]) > 0
    record = outcome.records[0]
    assert record["epochs_mean"] == 3.0 and record["cost_mean"] > 0


def test_time_budget_stops_a_run_once_its_cost_reaches_it(space, table, tmp_path, monkeypatch):
    # Each measurement takes at least 3 ms, so a 0.02 s budget ends a run long before REA could
    # exhaust the 256-architecture toy space (which would stop it early, legitimately).
    monkeypatch.setenv("NTKNAS_TOY_METRIC_DELAY", "0.003")
    out = tmp_path / "run"
    config = _config(table, out, proxies=("toy_params",), candidates=None, time_budget=0.02, runs=2,
                     strategies=("random", "rea"), network_options={"width": 2})
    run_search(config)
    rows = _rows(out)
    for strategy in ("random", "rea"):
        for run in ("0", "1"):
            steps = [r for r in rows if r["strategy"] == strategy and r["run"] == run]
            costs = [float(r["cost"]) for r in steps]
            assert costs[-1] >= 0.02 and all(c < 0.02 for c in costs[:-1])
            assert costs == sorted(costs)
    # Issue 22.4: the budget binds measurement too, not only what the runs record: beyond the
    # architectures recorded, at most one measurement per run (the one that crossed the budget).
    with sqlite3.connect(out / "results.sqlite") as db:
        measured = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    recorded = len({r["arch"] for r in rows})
    assert recorded <= measured <= recorded + 4


# ------------------------------------------------------------------------------------ guidance


def test_guidance_never_reads_the_target(space, table, tmp_path):
    permuted = search_toys.write_table(tmp_path / "permuted.csv", permute_target_seed=3)
    kwargs = dict(strategies=("random", "rea", "two-stage"), proxies=("bench:signal", "toy_params"), candidates=15,
                  runs=2, top_k=2, second_proxy="bench:signal", network_options={"width": 2})
    run_search(_config(table, tmp_path / "a", **kwargs))
    run_search(_config(permuted, tmp_path / "b", **kwargs))
    a, b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert [[r[c] for c in CHOICE_COLUMNS] for r in a] == [[r[c] for c in CHOICE_COLUMNS] for r in b]
    assert [r["accuracy"] for r in a] != [r["accuracy"] for r in b]  # the target did change


# ------------------------------------------------------------------------------------ cache


@pytest.fixture
def count_evaluations(monkeypatch):
    calls = []
    real = correlate_module._evaluate

    def counting(net, batch, config, bn_mode, metrics):
        calls.append(tuple(metrics))
        return real(net, batch, config, bn_mode, metrics)

    monkeypatch.setattr(correlate_module, "_evaluate", counting)
    return calls


@pytest.mark.slow
def test_values_measured_by_correlate_are_reused_not_recomputed(space, table, tmp_path, count_evaluations):
    options = {"width": 2}

    def correlate(out, archs, metric):
        return run_correlate(CorrelateConfig(
            space=NAME, dataset="digits", benchmark=str(table), target="acc", archs=archs, bn_modes=("train", "eval"),
            metrics=(metric,), network_options=options, out=str(tmp_path / out),
        ))

    # toy_params of every architecture (REA may propose any), knas of random search's candidates.
    candidates = sorted({int(p) for run in range(2) for p in np.random.default_rng(run).permutation(256)[:15]})
    assert correlate("all", "all", "toy_params").measured == 256
    assert correlate("sample", ",".join(map(str, candidates)), "knas").measured == len(candidates)
    count_evaluations.clear()
    out = tmp_path / "search"
    cache = (str(tmp_path / "all"), str(tmp_path / "sample"))

    def search(**overrides):
        settings = dict(proxies=("knas", "toy_params"), candidates=15, runs=2, network_options=options) | overrides
        return run_search(_config(table, out, **settings))

    outcome = search(strategies=("random",), cache=cache)
    assert count_evaluations == [] and outcome.measured == 0 and outcome.from_cache > 0
    outcome = search(proxies=("toy_params",), strategies=("rea",), cache=cache)
    assert count_evaluations == [] and outcome.measured == 0
    # The values are correlate's, and the search folder now holds them itself.
    with sqlite3.connect(tmp_path / "sample" / "results.sqlite") as db:
        stored = dict(db.execute("SELECT arch, value FROM measurements WHERE metric = 'knas' AND bn_mode = 'train'"))
    with sqlite3.connect(out / "results.sqlite") as db:
        copied = dict(db.execute("SELECT arch, value FROM measurements WHERE metric = 'knas'"))
    assert copied and all(stored[arch] == value for arch, value in copied.items())
    again = search(strategies=("random",))
    assert count_evaluations == [] and (again.measured, again.from_cache) == (0, 0)
    assert {float(r["value"]) for r in _rows(out) if r["proxy"] == "knas"} <= set(stored.values())


def test_a_search_measures_what_correlate_measures_and_shares_across_runs(space, table, tmp_path, count_evaluations):
    options = {"width": 2}
    outcome = run_search(_config(table, tmp_path / "search", proxies=("knas",), strategies=("random", "rea"),
                                 candidates=12, runs=2, network_options=options))
    rows = _rows(tmp_path / "search")
    distinct = {r["arch"] for r in rows}
    # REA's first population is random search's first candidates (same seed): each architecture
    # is measured once however many searches and runs score it.
    assert outcome.measured == len(distinct) == len(count_evaluations) < len(rows)
    run_correlate(CorrelateConfig(
        space=NAME, dataset="digits", benchmark=str(table), target="acc", archs=",".join(
            str(space.index(space.parse(k))) for k in sorted(distinct)[:3]),
        bn_modes=("train",), metrics=("knas",), network_options=options, out=str(tmp_path / "correlate"),
    ))
    with sqlite3.connect(tmp_path / "correlate" / "results.sqlite") as db:
        by_correlate = dict(db.execute("SELECT arch, value FROM measurements"))
    with sqlite3.connect(tmp_path / "search" / "results.sqlite") as db:
        by_search = dict(db.execute("SELECT arch, value FROM measurements"))
    assert by_correlate and all(by_search[k] == v for k, v in by_correlate.items())


# ------------------------------------------------------------------------------------ resume


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_uninterrupted_search(space, table, tmp_path):
    out = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(REPO / 'tests')!r})
        import search_toys; search_toys.register()
        from ntknas.search.driver import SearchConfig, run_search
        run_search(SearchConfig(space={NAME!r}, dataset="digits", benchmark={str(table)!r}, target="acc",
            strategies=("random", "rea"), proxies=("toy_params",), candidates=20, runs=2, out={str(out)!r},
            network_options={{"width": 2}}))
    """)
    env = dict(os.environ, NTKNAS_TOY_METRIC_DELAY="0.05", OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env)
    deadline = time.time() + 240
    done = 0
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.1)
        if (out / "results.sqlite").exists():
            try:
                with sqlite3.connect(out / "results.sqlite", timeout=1) as db:
                    done = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if done >= 5:
                break
    assert process.poll() is None, "the search finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with sqlite3.connect(out / "results.sqlite") as db:
        done = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    assert not (out / "search.csv").exists()
    config = _config(table, out, strategies=("random", "rea"), proxies=("toy_params",), candidates=20, runs=2,
                     network_options={"width": 2})
    resumed = run_search(config)
    assert resumed.measured > 0
    reference = run_search(_config(table, tmp_path / "uninterrupted", strategies=("random", "rea"),
                                   proxies=("toy_params",), candidates=20, runs=2, network_options={"width": 2}))
    assert resumed.measured + done == reference.measured
    columns = (*CHOICE_COLUMNS, "accuracy", "best_accuracy")
    killed_rows, reference_rows = _rows(out), _rows(tmp_path / "uninterrupted")
    assert [[r[c] for c in columns] for r in killed_rows] == [[r[c] for c in columns] for r in reference_rows]
    first = (out / "search.csv").read_text()
    run_search(config)  # replays from the store: the same file, costs included
    assert (out / "search.csv").read_text() == first


# ------------------------------------------------------------------------------------ outputs


def test_outputs_and_report(space, table, tmp_path):
    out = tmp_path / "run"
    run_search(_config(table, out, strategies=("random", "rea"), proxies=("bench:signal",), runs=3))
    for name in ("results.sqlite", "search.csv", "summary.json", "summary.md", "search_best_so_far.png"):
        assert (out / name).is_file(), name
    assert (out / "search_best_so_far.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["spec"]["best_in_space"] == 80.0 and summary["spec"]["best_in_space_arch"] == OPTIMUM
    record = summary["searches"][0]
    finals = [f["accuracy"] for f in record["final"]]
    assert record["accuracy_mean"] == pytest.approx(np.mean(finals))
    assert record["accuracy_std"] == pytest.approx(np.std(finals, ddof=1))
    assert record["regret_mean"] == pytest.approx(80.0 - np.mean(finals))
    assert list(_rows(out)[0]) == ["strategy", "proxy", "run", "seed", "step", "stage", "arch", "index", "value",
                                   "reason", "new", "accuracy", "best_arch", "best_accuracy", "evaluations",
                                   "epochs", "proxy_seconds", "train_seconds", "cost"]
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "(search)" in markdown and "bench:signal" in markdown and "search_best_so_far.png" in markdown
    assert "data:image/png;base64" in (tmp_path / "report" / "report.html").read_text()
    run_search(_config(table, tmp_path / "oracle", strategies=("random",), proxies=("bench:acc",), runs=2))
    assert main(["report", str(out), str(tmp_path / "oracle"), "--out", str(tmp_path / "both")]) == 0
    both = (tmp_path / "both" / "report.md").read_text()
    assert "Search comparison" in both and "| oracle | random | bench:acc | 2 |" in both


def test_cli_end_to_end(space, table, tmp_path, capsys):
    code = main(["search", "--space", NAME, "--dataset", "digits", "--benchmark", str(table), "--target", "acc",
                 "--strategy", "random,rea", "--proxy", "bench:signal", "--candidates", "10", "--runs", "2",
                 "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| rea | bench:signal | 2 |" in printed and "0 proxy values measured" in printed


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--strategy", "hillclimb"], "unknown search strategy 'hillclimb'"),
        (["--proxy", "nonsense"], "unknown metric 'nonsense'"),
        (["--proxy", "ntk_rank"], "ranks nothing"),
        (["--proxy", "az_nas"], "set-level aggregate has no value for one network"),
        (["--candidates", "0"], "argument --candidates: must be a positive integer"),
        (["--candidates", "300"], "more than the 256 architectures"),
        (["--runs", "0"], "argument --runs: must be a positive integer"),
        (["--proxy", "bench:nope"], "proxy column 'nope' is not in"),
        (["--proxy", "bench:nope", "--proxy-table", "TABLE"], "unknown target column 'nope'"),
        (["--proxy", "bench:signal", "--time-budget", "5"], "give --candidates"),
        (["--time-budget", "0"], "argument --time-budget: must be a finite number of seconds > 0"),
        (["--cache", "NOWHERE"], "holds no results.sqlite"),
        (["--strategy", "two-stage", "--second-proxy", "nonsense"], "unknown metric 'nonsense'"),
        (["--strategy", "random,random"], "--strategy names 'random' twice: name each strategy once"),
    ],
)
def test_bad_input_is_one_line_exit_2(extra, message, space, table, tmp_path, capsys):
    extra = [str(table) if e == "TABLE" else str(tmp_path / "nowhere") if e == "NOWHERE" else e for e in extra]
    arguments = ["search", "--space", NAME, "--dataset", "digits", "--benchmark", str(table), "--target", "acc",
                 "--proxy", "bench:signal", "--out", str(tmp_path / "run"), "--no-progress", *extra]
    try:
        code = main(arguments)
    except SystemExit as exit_:  # argparse refused an option's value
        code = exit_.code
    assert code == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1, error


@pytest.mark.slow
def test_the_demo_searches_its_measured_cells_without_new_work(tmp_path, count_evaluations):
    from ntknas.runs.demo import DemoConfig, demo_search_text, run_demo, run_demo_search

    config = DemoConfig(archs=5, train_epochs=1, batch_size=8, search_candidates=3, search_runs=2,
                        search_population=2)
    run_demo(tmp_path / "demo", config)
    accuracy = json.loads((tmp_path / "demo" / "demo_groundtruth.json").read_text())["accuracy"]
    count_evaluations.clear()
    outcome = run_demo_search(tmp_path / "demo", config)
    assert count_evaluations == [] and outcome.measured == 0
    assert [r["strategy"] for r in outcome.records] == ["random", "rea"]
    from ntknas.spaces.nb201 import arch_from_index

    cells = {arch_from_index(int(i)).to_string(): a for i, a in accuracy.items()}
    rows = _rows(tmp_path / "demo" / "search")
    assert {r["arch"] for r in rows} <= set(cells)
    assert all(float(r["accuracy"]) == cells[r["arch"]] for r in rows)
    text = demo_search_text(outcome, config)
    assert "found" in text and "best of the 5 cells" in text


def test_search_is_in_the_public_api():
    import ntknas

    assert ntknas.run_search is run_search and ntknas.SearchConfig is SearchConfig
    assert "run_search" in dir(ntknas)


def test_missing_proxy_values_are_counted_and_warned(space, table, tmp_path, caplog):
    """Issue 22.2: a proxy column with holes still searches (missing values rank last), but the
    warning and both summaries say how many were missing."""
    holes = tmp_path / "holes.csv"
    with table.open() as source, holes.open("w", newline="") as target:
        reader, writer = csv.reader(source), csv.writer(target)
        writer.writerow(next(reader))
        for number, row in enumerate(reader):
            writer.writerow(row[:2] + ["" if number % 2 else row[2]])
    out = tmp_path / "run"
    with caplog.at_level("WARNING", logger="ntknas"):
        outcome = run_search(_config(table, out, proxy_table=str(holes), candidates=20, runs=2))
    (record,) = outcome.records
    assert record["proxy_values"] == 40 and 0 < record["proxy_missing"] < 40
    rows = [r for r in _rows(out) if r["new"] == "1"]
    assert record["proxy_missing"] == sum(r["value"] == "" for r in rows)
    line = f"{record['proxy_missing']} of 40 proxy values are missing"
    assert any(line in message for message in caplog.messages)
    summary = json.loads((out / "summary.json").read_text())
    assert any(line in warning for warning in summary["warnings"])
    assert f"| {record['proxy_missing']} of 40 |" in (out / "summary.md").read_text()


def test_the_target_as_its_own_proxy_is_named_an_upper_bound(space, table, tmp_path, caplog):
    """Issue 22.5: guiding by the reported column is allowed (an upper bound) but never called
    a search that does not use the target."""
    out = tmp_path / "run"
    with caplog.at_level("WARNING", logger="ntknas"):
        run_search(_config(table, out, proxies=("bench:acc", "bench:signal"), runs=2))
    assert any("bench:acc is the reported --target column itself" in m for m in caplog.messages)
    markdown = (out / "summary.md").read_text()
    assert "also the proxy bench:acc: an upper bound" in markdown and "never used for guidance" not in markdown
    run_search(_config(table, tmp_path / "clean", runs=2))
    assert "never used for guidance" in (tmp_path / "clean" / "summary.md").read_text()


def test_rea_on_a_partial_nb101_table_proposes_only_its_rows(tmp_path, nb101_npz):
    """Issue 22.10: mutating a cell of a partial NB101 table gives a cell of the table, so REA
    never chooses a cell with no reported accuracy."""
    from ntknas.groundtruth import load_benchmark
    from ntknas.search.driver import TableProposals
    from ntknas.spaces import get_space

    full = nb101_npz
    with np.load(full) as data:
        rows = np.sort(np.random.default_rng(0).choice(len(data["hash"]), size=60, replace=False))
        np.savez(tmp_path / "part.npz", **{n: data[n] if n == "op_code_legend" else data[n][rows] for n in data.files})
    benchmark = load_benchmark(tmp_path / "part.npz", "nb101")
    space = get_space("nb101")
    proposals = TableProposals(space, benchmark)
    rng = np.random.default_rng(1)
    for position in range(4):
        parent = proposals.arch_at(position)
        for _ in range(2):
            assert proposals.key(proposals.mutate(parent, rng)) in benchmark
    out = tmp_path / "run"
    assert main(["search", "--space", "nb101", "--dataset", "digits", "--benchmark", str(tmp_path / "part.npz"),
                 "--proxy", "bench:test_acc_seed0", "--strategy", "rea", "--population", "4",
                 "--candidates", "8", "--runs", "1", "--out", str(out), "--no-progress"]) == 0
    assert all(row["accuracy"] != "" for row in _rows(out))


def test_a_damaged_cache_names_the_cache_flag(space, table, tmp_path, capsys):
    """Issue 22.9: the fix for a damaged --cache folder is about --cache, not --out."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "results.sqlite").write_bytes(b"this is not a database" * 100)
    code = main(["search", "--space", NAME, "--dataset", "digits", "--benchmark", str(table), "--target", "acc",
                 "--proxy", "bench:signal", "--candidates", "5", "--runs", "1", "--cache", str(cache),
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"--cache {cache}" in err and "drop this --cache" in err and "--out" not in err


def test_summary_md_lists_each_runs_choice(space, table, tmp_path):
    """Issue 21.4: summary.md shows the final choice of every run, as summary.json's ``final``."""
    out = tmp_path / "run"
    outcome = run_search(_config(table, out, strategies=("random", "rea"), runs=3))
    markdown = (out / "summary.md").read_text()
    assert "Each run's choice" in markdown
    for record in outcome.records:
        for final in record["final"]:
            assert f"| {record['strategy']} | {record['proxy']} | {final['run']} | {final['seed']} | `{final['arch']}` |" in markdown
