"""Bad input across every command: refused before any work, in one line, with exit status 2.

Each row of :data:`CASES` is (kind, argv, exit status, message substring). ``{name}`` in an
argument is a file of the module's fixture folder (see :func:`build_fixtures`); a row whose
argv names ``{run}`` points at a correlate run folder that already holds results, and the test
checks that the refusal left its files byte for byte as they were.

``python tests/test_bad_input.py`` prints the table (kind | command | exit status | message).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_data import TINY_NB201  # noqa: E402
from real_data import NB201_ACCURACIES, SHARED_DATA  # noqa: E402

from ntknas.cli import main  # noqa: E402

RUN_FILES = ("results.sqlite", "scores.csv", "summary.json", "summary.md")

C = "correlate --dataset digits --benchmark {bench} --archs 0:3 --out {run}"
S = "search --dataset digits --benchmark {bench} --proxy synflow --candidates 2 --runs 1 --out {fresh}/search"
T = "track --dataset digits --benchmark {bench} --out {fresh}/track"
CASES: list[tuple[str, str, int, str]] = [
    # --- sizes and counts: positive integers, never a silent default
    ("size 0", "score --batch-size 0", 2, "argument --batch-size: must be a positive integer"),
    ("size < 0", "score --batch-size -3", 2, "argument --batch-size: must be a positive integer"),
    ("size not an integer", "score --batch-size 1.5", 2, "argument --batch-size: must be a positive integer"),
    ("size 0", "score --chunk-size 0", 2, "argument --chunk-size: must be a positive integer"),
    ("size 0", f"{C} --batch-size 0", 2, "argument --batch-size: must be a positive integer"),
    ("size < 0", f"{C} --chunk-size -1", 2, "argument --chunk-size: must be a positive integer"),
    ("size 0", f"{C} --train-batch-size 0", 2, "argument --train-batch-size: must be a positive integer"),
    ("size 0", f"{C} --nb101-stem-channels 0", 2, "argument --nb101-stem-channels: must be a positive integer"),
    ("count 0", f"{C} --workers 0", 2, "argument --workers: must be a positive integer"),
    ("count 0", f"{C} --sample 0", 2, "argument --sample: must be a positive integer"),
    ("count < 0", f"{C} --max-retries -1", 2, "argument --max-retries: must be an integer >= 0"),
    ("resources 0", f"{C} --cpus-per-item 0", 2, "argument --cpus-per-item: must be a finite number > 0"),
    ("resources nan", f"{C} --gpus-per-item nan", 2, "argument --gpus-per-item: must be a finite number >= 0"),
    ("size larger than the data", "score --batch-size 100000", 2, "--batch-size 100000 is more than the 1258 built-in digits training images: lower --batch-size"),
    ("count < 0", f"{T} --archs 0 --epochs -1", 2, "argument --epochs: must be an integer >= 0"),
    ("count 0", f"{T} --archs 0 --every 0", 2, "argument --every: must be a positive integer"),
    ("count 0", f"{T} --archs 0 --samples 0", 2, "argument --samples: must be a positive integer"),
    ("size 0", f"{T} --archs 0 --channels 0", 2, "argument --channels: must be a positive integer"),
    ("count 0", f"{S} --candidates 0", 2, "argument --candidates: must be a positive integer"),
    ("count 0", f"{S} --runs 0", 2, "argument --runs: must be a positive integer"),
    ("count 0", f"{S} --population 0", 2, "argument --population: must be a positive integer"),
    ("count < 0", f"{S} --proxy-epochs -2", 2, "argument --proxy-epochs: must be an integer >= 0"),
    ("count 0", "demo --archs 0 --out {fresh}/demo", 2, "argument --archs: must be a positive integer"),
    ("count 0", "demo --epochs 0 --out {fresh}/demo", 2, "argument --epochs: must be a positive integer"),
    # --- budgets: finite, >= 0
    ("budget nan", f"{C} --time-budget nan", 2, "argument --time-budget: must be a finite number of seconds >= 0"),
    ("budget inf", f"{C} --time-budget inf", 2, "argument --time-budget: must be a finite number of seconds >= 0"),
    ("budget < 0", f"{C} --time-budget -5", 2, "argument --time-budget: must be a finite number of seconds >= 0"),
    ("budget nan", f"{S} --time-budget nan", 2, "argument --time-budget: must be a finite number of seconds > 0"),
    ("budget 0", f"{S} --time-budget 0", 2, "argument --time-budget: must be a finite number of seconds > 0"),
    # --- seeds: within what the generators and the store take
    ("seed 2**64", "score --seed 18446744073709551616", 2, "argument --seed: must be a seed between 0 and 9223372036854775807"),
    ("seed < 0", "score --seed -1", 2, "argument --seed: must be a seed between 0 and"),
    ("seed 2**64", f"{C} --seed 18446744073709551616", 2, "argument --seed: must be a seed between 0 and"),
    ("seed < 0", f"{C} --model-seed -1", 2, "argument --model-seed: must be a seed between 0 and"),
    ("seed 2**63", f"{T} --archs 0 --model-seed 9223372036854775808", 2, "argument --model-seed: must be a seed between 0 and"),
    ("seed < 0", f"{S} --seed -7", 2, "argument --seed: must be a seed between 0 and"),
    # --- selections and architectures: never empty, never "all" by accident
    ("selection empty", f"{C} --archs ''", 2, "argument --archs: must not be empty"),
    ("selection empty", f"{C} --archs ' , '", 2, "--archs ' , ' selects no architecture"),
    ("selection empty", f"{T} --archs ''", 2, "argument --archs: must not be empty"),
    ("selection empty", f"{T} --band ''", 2, "argument --band: must not be empty"),
    ("arch empty", "score --arch ''", 2, "argument --arch: must not be empty"),
    ("arch blank", "score --arch '  '", 2, "argument --arch: must not be empty"),
    ("arch malformed", "score --arch nor_conv_3x3", 2, "is not a NAS-Bench-201 arch"),
    ("index < 0", "score --index -1", 2, "argument --index: must be an integer >= 0"),
    ("names empty", f"{C} --metrics ''", 2, "argument --metrics: must name at least one value"),
    ("names empty", f"{C} --bn ,", 2, "argument --bn: must name at least one value"),
    ("names empty", f"{S} --proxy ''", 2, "argument --proxy: must name at least one value"),
    ("epochs empty", f"{C} --train-epochs ''", 2, "argument --train-epochs: must be comma-separated epoch counts >= 0"),
    ("epochs < 0", f"{C} --train-epochs 0,-1", 2, "argument --train-epochs: must be comma-separated epoch counts >= 0"),
    ("epochs not a number", f"{C} --train-epochs 1,x", 2, "argument --train-epochs: must be comma-separated epoch counts >= 0"),
    ("path empty", f"{C} --target ''", 2, "argument --target: must not be empty"),
    ("path empty", "correlate --dataset digits --benchmark {bench} --out ''", 2, "argument --out: must not be empty"),
    ("path empty", f"{S} --cache ''", 2, "argument --cache: must not be empty"),
    ("path empty", "report ''", 2, "argument RUN_DIR: must not be empty"),
    ("path empty", "export-benchmark '' --out {fresh}/x.csv", 2, "argument official: must not be empty"),
    # --- --batch-file: needs --dataset, labels in range, a readable file
    ("batch file without --dataset", "score --batch-file {batch}", 2, "--batch-file needs --dataset"),
    ("batch file empty", "score --batch-file {empty_npz} --dataset digits", 2, "(the file is empty)"),
    ("batch file labels out of range", "score --batch-file {labels700} --dataset digits", 2, "must lie in 0..9 (digits has 10 classes), found 700"),
    ("batch file negative label", "score --batch-file {labels_negative} --dataset digits", 2, "must lie in 0..9"),
    ("batch file without images", "score --batch-file {no_images} --dataset digits", 2, "holds no images"),
    ("batch file smaller than --batch-size", "score --batch-file {batch} --dataset digits --batch-size 10", 2, "--batch-size 10 is more than the 4 images in"),
    # --- benchmark tables: targets that cannot rank are refused before any measurement
    ("target constant", "correlate --dataset digits --benchmark {constant} --archs 0:3 --out {fresh}/c1", 2, "has 1 distinct finite value (90): a rank correlation needs at least 3"),
    ("target two values", "correlate --dataset digits --benchmark {two_values} --archs 0:3 --out {fresh}/c2", 2, "has 2 distinct finite values"),
    ("target all missing", "correlate --dataset digits --benchmark {all_missing} --archs 0:3 --out {fresh}/c3", 2, "has 0 distinct finite values (none)"),
    ("target constant", "search --dataset digits --benchmark {constant} --proxy synflow --candidates 2 --out {fresh}/s1", 2, "a rank correlation needs at least 3"),
    ("target not chosen", "correlate --dataset digits --benchmark {no_default} --archs 0:3 --out {fresh}/c4", 2, "choose one with --target"),
    ("target constant (run folder)", f"{C.replace('{bench}', '{constant}')}", 2, "has 1 distinct finite value"),
    # --- issue 22: the newer surfaces
    ("strategy named twice", f"{S} --strategy random,random", 2, "--strategy names 'random' twice: name each strategy once"),
    ("out is a file", "correlate --dataset digits --benchmark {bench} --archs 0:3 --out {bench}", 2, "is a file, not a folder: pass a folder path"),
    ("out is a file", f"{S.replace('{fresh}/search', '{bench}')}", 2, "is a file, not a folder: pass a folder path"),
    ("damaged --cache", f"{S} --cache {{damaged_cache}}", 2, "drop this --cache"),
    ("NB101 hash in an NB201 list", "correlate --dataset digits --benchmark {bench} --archs-file {nb101_list} --out {fresh}/c5", 2, "use --space nb101"),
    ("plugin that cannot load", "score --plugin {fresh}/no_such_plugin.py", 2, "no such file"),
]


def build_fixtures(folder: Path, benchmark: Path) -> dict[str, str]:
    """The files the rows name, written into ``folder`` (tables cut from the real ``benchmark``)."""
    folder.mkdir(parents=True, exist_ok=True)
    with benchmark.open(newline="") as handle:
        rows = list(csv.reader(handle))[:31]
    header = rows[0]
    target = header.index("cifar10_valid_test")

    def table(name: str, change) -> str:
        path = folder / name
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for number, row in enumerate(rows[1:]):
                writer.writerow(change(list(row), number))
        return str(path)

    def with_target(value_of):
        def change(row, number):
            row[target] = value_of(number)
            return row
        return change

    files = {
        "bench": table("bench.csv", lambda row, number: row),
        "constant": table("constant.csv", with_target(lambda n: "90")),
        "two_values": table("two.csv", with_target(lambda n: "" if n > 1 else str(90 + n))),
        "all_missing": table("missing.csv", with_target(lambda n: "")),
        "fresh": str(folder / "fresh"),
        "run": str(folder / "run"),
    }
    no_default = folder / "no_default.csv"
    no_default.write_text("index,acc_a,acc_b\n" + "".join(f"{i},{90 + i},{80 - i}\n" for i in range(5)))
    files["no_default"] = str(no_default)
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    for name, labels in (("batch", [0, 1, 2, 3]), ("labels700", [0, 1, 700, 3]), ("labels_negative", [0, -1, 2, 3])):
        np.savez(folder / f"{name}.npz", images=images, labels=np.array(labels))
        files[name] = str(folder / f"{name}.npz")
    np.savez(folder / "no_images.npz", images=images[:0], labels=np.zeros(0, dtype=np.int64))
    files["no_images"] = str(folder / "no_images.npz")
    (folder / "empty.npz").write_bytes(b"")
    files["empty_npz"] = str(folder / "empty.npz")
    (folder / "damaged_cache").mkdir(exist_ok=True)
    (folder / "damaged_cache" / "results.sqlite").write_bytes(b"not a database " * 100)
    files["damaged_cache"] = str(folder / "damaged_cache")
    (folder / "nb101_list.txt").write_text("00005c142e6f48ac74fdcf73e3439874\n")
    files["nb101_list"] = str(folder / "nb101_list.txt")
    return files


def make_run(files: dict[str, str]) -> None:
    """A small correlate run in ``files['run']`` (tiny cells, 8 digits), as the CLI would leave it."""
    from ntknas.runs.correlate import CorrelateConfig, run_correlate

    run_correlate(CorrelateConfig(
        dataset="digits", benchmark=files["bench"], archs="0:3", batch_size=8, bn_modes=("train",),
        metrics=("knas", "tenas"), network_options=TINY_NB201, out=files["run"],
    ), command_line="ntknas correlate (tiny test run)")


def argv_of(command: str, files: dict[str, str]) -> list[str]:
    import shlex

    return [part.format(**files) for part in shlex.split(command)]


def run_cli(argv: list[str]) -> tuple[int, str]:
    """Exit status and stderr of ``ntknas ARGV`` run in this process."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code, err.getvalue()


def _digest(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
            for name in RUN_FILES if (folder / name).is_file()}


@pytest.fixture(scope="module")
def files(tmp_path_factory, nb201_csv) -> dict[str, str]:
    made = build_fixtures(tmp_path_factory.mktemp("bad_input"), nb201_csv)
    make_run(made)
    return made


def test_the_table_is_large_and_covers_every_command():
    assert len(CASES) >= 40
    commands = {command.split()[0] for _, command, _, _ in CASES}
    assert commands >= {"score", "correlate", "track", "search", "demo", "report", "export-benchmark"}


@pytest.mark.parametrize("kind, command, status, message", CASES, ids=[f"{c.split()[0]}:{k}" for k, c, _, _ in CASES])
def test_bad_input_is_one_line(kind, command, status, message, files, capsys):
    run = Path(files["run"])
    before = _digest(run)
    assert set(before) == set(RUN_FILES)
    code, err = run_cli(argv_of(command, files))
    assert code == status, err
    assert message in err, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    assert err.startswith(f"ntknas {command.split()[0]}: error: "), err
    assert _digest(run) == before, "a refused command changed the run folder"


def test_a_non_numeric_cell_is_a_missing_value_reported_once(files, tmp_path, caplog):
    from ntknas.groundtruth import load_benchmark

    rows = Path(files["bench"]).read_text().splitlines()
    header = rows[0].split(",")
    target = header.index("cifar10_valid_test")
    cells = rows[3].split(",")
    cells[target] = "n/a"
    rows[3] = ",".join(cells)
    path = tmp_path / "na.csv"
    path.write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="ntknas"):
        bench = load_benchmark(path, "nb201")
    assert bench.target == "cifar10_valid_test" and "cifar10_valid_test" in bench.targets
    assert 2 not in bench and 1 in bench
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "1 cell of target column 'cifar10_valid_test' is not a number (e.g. 'n/a')" in warnings[0]
    bench.check_rankable()  # 29 other values still rank
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ntknas"):
        load_benchmark(path, "nb201", "cifar10_test")  # another target: nothing to report
    assert not caplog.records


def test_the_target_column_is_named_in_every_summary(files):
    from ntknas.report.document import write_report

    run = Path(files["run"])
    assert "(target: cifar10_valid_test)" in (run / "summary.md").read_text()
    records = json.loads((run / "summary.json").read_text())
    assert records and {r["target"] for r in records} == {"cifar10_valid_test"}
    report = write_report([run], run.parent / "report")
    text = Path(report.markdown).read_text().replace("\\_", "_")
    assert "accuracy (target column):** `cifar10_valid_test`" in text
    assert "Rank correlation with cifar10_valid_test" in text
    assert "Rank correlation with cifar10_valid_test" in Path(report.html).read_text()


def test_library_callers_get_the_parameter_names(files):
    """Settings check themselves on construction: a library caller gets the same one line, naming
    the parameter it passed (the command line names the flag instead)."""
    from ntknas.errors import NtknasError
    from ntknas.runs.correlate import CorrelateConfig, run_correlate
    from ntknas.runs.score_command import score_architecture

    out = str(Path(files["fresh"]) / "api")
    for overrides, message in (
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"time_budget": float("nan")}, "time_budget must be a finite number"),
        ({"model_seed": 2**64}, "model_seed must be a seed between"),
        ({"archs": ""}, "archs must not be empty"),
        ({"train_batch_size": 0}, "train_batch_size must be a positive integer"),
        ({"sample_seed": -1}, "sample_seed must be a seed between"),
    ):
        with pytest.raises(NtknasError, match="^" + message.replace("(", r"\(")) as caught:
            run_correlate(CorrelateConfig(dataset="digits", benchmark=files["bench"], out=out, **overrides))
        assert "--" not in str(caught.value)
    with pytest.raises(NtknasError, match="^batch_size must be a positive integer"):
        score_architecture(batch_size=0)
    with pytest.raises(NtknasError, match="^seed must be a seed between"):
        score_architecture(seed=-1)
    assert not Path(out).exists()


@pytest.mark.parametrize(("library", "flags", "expected"), [
    # the flag spells the parameter; the value is refused against the data, below the settings
    ({"batch_size": 100000}, ["--batch-size", "100000"],
     "batch_size 100000 is more than the 1258 digits training images: lower batch_size"),
    # a renamed flag: the parameter bn_modes is --bn on the command line
    ({"bn_modes": ("sideways",)}, ["--bn", "sideways"],
     "unknown BatchNorm mode 'sideways' in bn_modes: use train, eval or train,eval"),
])
def test_the_library_names_the_parameter_and_the_command_line_the_flag(files, library, flags, expected):
    """One refusal, two renderings: the parameter for a library caller, the flag on the command line."""
    from ntknas.errors import NtknasError
    from ntknas.runs.correlate import CorrelateConfig, run_correlate

    parameter, flag = next(iter(library)), flags[0]
    out = Path(files["fresh"]) / f"both-{parameter}"
    with pytest.raises(NtknasError) as caught:
        run_correlate(CorrelateConfig(dataset="digits", benchmark=files["bench"], archs="0:3", out=str(out), **library))
    assert str(caught.value) == expected
    code, err = run_cli(["correlate", "--dataset", "digits", "--benchmark", files["bench"], "--archs", "0:3",
                         "--out", str(out), *flags])
    assert (code, err) == (2, f"ntknas correlate: error: {expected.replace(parameter, flag)}\n")


def test_a_renamed_parameter_is_shown_as_the_flag_the_user_typed():
    """sample_seed is correlate's and track's --seed; a flag no parameter maps to keeps its spelling."""
    from ntknas.cli import build_parser, command_flags
    from ntknas.errors import NtknasError, option

    error = NtknasError(f"{option('sample_seed')} draws {option('sample')}; {option('model_seed')} seeds networks")
    assert str(error) == "sample_seed draws sample; model_seed seeds networks"
    for command in ("correlate", "track"):
        flags = command_flags(build_parser(), command)
        assert error.for_command_line(flags) == "--seed draws --sample; --model-seed seeds networks"
    assert command_flags(build_parser(), "score")["seed"] == "--model-seed"  # score's seed is the model's
    assert error.args == (str(error),) and error.raw != str(error)


if __name__ == "__main__":  # the bad-input table, as markdown
    import tempfile

    logging.disable(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as scratch:
        made = build_fixtures(Path(scratch), SHARED_DATA / NB201_ACCURACIES)
        make_run(made)
        logging.disable(logging.NOTSET)
        print("| kind | command | exit status | message |\n|---|---|---|---|")
        for kind, command, _, _ in CASES:
            code, err = run_cli(argv_of(command, made))
            shown = command.replace("|", "\\|")
            print(f"| {kind} | `ntknas {shown}` | {code} | {err.strip().replace(scratch, '…').replace('|', chr(92) + '|')} |")
