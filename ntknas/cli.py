"""The ``ntknas`` command line.

Every error a user can cause is printed as one line naming the fix, with exit status 2; a
fault of the machine (a full disk, a folder not writable) is one line too, with status 4 (the
manual's docs/reliability.md lists them all).
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ntknas import cli_types as T
from ntknas.console import Progress, Stages
from ntknas.errors import NtknasError

if TYPE_CHECKING:
    from ntknas.execution.executors import Executor

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _add_score(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "score",
        help="NTK metrics of one architecture on one batch",
        description=(
            "Build one architecture, compute its empirical NTK on one batch and print the metrics. "
            "Without --dataset or --batch-file it uses the built-in handwritten-digits batch "
            "(no download)."
        ),
    )
    parser.add_argument("--space", type=T.text, default="nb201", help="search space: nb201 | nb101 | any registered space (default nb201)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--arch", type=T.text, help="NB201 arch string or 6-digit op codes; NB101 hash (with --benchmark) or JSON {adjacency, ops} "
                       "(default: NB201's largest cell, every edge a 3×3 convolution; NB101 needs one)")
    which.add_argument("--index", type=T.nonnegative_int, help="NB201 official index (0..15624)")
    parser.add_argument("--benchmark", type=T.text, help="NB101 table (.npz/.csv, or the official .tfrecord) to look an NB101 hash up in")
    parser.add_argument("--dataset", type=T.text, help="cifar10 | cifar100 | ImageNet16-120 | digits (built in, no download)")
    parser.add_argument("--data-dir", type=T.text, help="folder holding the dataset in its official format")
    parser.add_argument("--batch-file", type=T.text, help=".npz with uint8 'images' (N,H,W,3) and int 'labels'; needs --dataset (the class count and normalization)")
    parser.add_argument("--batch-size", type=T.positive_int, help="images in the batch (default: the study's, 256, also for --dataset digits; 512 for ImageNet16-120; "
                                                                     "64 for the built-in digits when no --dataset is given)")
    parser.add_argument("--bn", default="train", choices=["train", "eval"], help="BatchNorm mode (default train)")
    parser.add_argument("--metrics", type=T.text, help="comma-separated metric names, or 'all' (default: the study's knas,tenas,fnorm,trace,lga; "
                                                           "knas,fnorm,trace,lga with --kernel matrix-free)")
    parser.add_argument("--params", default="weights", choices=["weights", "all"], help="kernel parameters (default: weights without the classifier)")
    parser.add_argument("--variant", default="study", choices=["study", "benchmark"], help="NB201 network variant (default study)")
    parser.add_argument("--model-seed", type=T.seed, default=42, help="model and data seed (default 42, the study's)")
    parser.add_argument("--seed", type=T.seed, dest="legacy_seed", help=argparse.SUPPRESS)
    parser.add_argument("--device", type=T.text, default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_init_options(parser)
    _add_kernel_options(parser)
    parser.set_defaults(handler=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    from ntknas.runs.score_command import score_architecture
    from ntknas.settings import KernelSettings, from_args, option_fields

    if args.legacy_seed is not None:  # one meaning per flag: --seed draws samples elsewhere
        print("ntknas score: --seed is deprecated, it is the model seed: use --model-seed", file=sys.stderr)
        args.model_seed = args.legacy_seed
    settings = from_args(KernelSettings, args)
    kernel = {item.name: getattr(settings, item.name) for item in option_fields(KernelSettings)}
    stages = Stages(enabled=False if args.json else None)
    try:
        outcome = score_architecture(
            space=args.space, arch=args.arch, index=args.index, benchmark=args.benchmark, dataset=args.dataset,
            data_dir=args.data_dir, batch_file=args.batch_file, batch_size=args.batch_size, bn_mode=args.bn,
            **_metrics_option(args), params=args.params, variant=args.variant, seed=args.model_seed,
            device=args.device, init=args.init, bias_init=args.bias_init, **kernel, on_stage=stages,
        )
    finally:
        stages.close()
    if args.json:
        print(json.dumps(outcome.as_dict(), indent=2))
    else:
        print(outcome.as_text())
    return 0


def _add_kernel_options(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """The kernel options; the estimator's default to None so that giving one to the exact
    kernel (which ignores it) can be warned about."""
    from ntknas.settings import ESTIMATOR_OPTIONS, KernelSettings, add_options

    add_options(parser.add_argument_group("kernel"), KernelSettings, skip=skip,
                defaults={name: None for name in ESTIMATOR_OPTIONS})


def _metrics_option(args: argparse.Namespace) -> dict[str, Any]:
    """--metrics if given; else the default of the chosen kernel (matrix-free drops tenas)."""
    if args.metrics is not None:
        return {"metrics": args.metrics}
    if args.kernel == "matrix-free":
        from ntknas.metrics import MATRIX_FREE_METRICS

        return {"metrics": MATRIX_FREE_METRICS}
    return {}


def _add_init_options(parser: argparse.ArgumentParser) -> None:
    from ntknas.settings import MeasureSettings, add_options

    add_options(parser, MeasureSettings, only=["init", "bias_init"])


def _add_executor_options(parser: argparse.ArgumentParser) -> None:
    """Where the work items run: shared by every command that maps work over architectures."""
    group = parser.add_argument_group("where items run")
    group.add_argument("--executor", choices=["serial", "pool", "ray"], help="serial (this process), pool (--workers processes on this machine) or ray (a Ray cluster); default: pool when --workers > 1, else serial")
    group.add_argument("--ray-address", type=T.text, help="with --executor ray: an existing cluster, auto or HOST:PORT of its head node (default: start a local Ray instance for the run)")
    group.add_argument("--cpus-per-item", type=T.positive_number, help="with --executor ray: CPUs reserved for each item (default 1)")
    group.add_argument("--gpus-per-item", type=T.nonnegative_number, help="with --executor ray: GPUs for each item, fractions let small cells share one (default 1 with --device cuda)")
    group.add_argument("--max-retries", type=T.nonnegative_int, help="with --executor ray: tries again an item whose worker or node died, up to this many times (default 3)")


def _executor(args: argparse.Namespace) -> Executor:
    from ntknas.execution.executors import make_executor

    ray_flags = {"address": args.ray_address, "cpus_per_item": args.cpus_per_item,
                 "gpus_per_item": args.gpus_per_item, "max_retries": args.max_retries}
    given = {name: value for name, value in ray_flags.items() if value is not None}
    options = None
    if given or args.executor == "ray":
        from ntknas.execution.ray_executor import RayOptions

        options = RayOptions(**given)
    return make_executor(args.workers, args.device, kind=args.executor, ray=options)


def _add_correlate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "correlate",
        help="rank correlation of NTK metrics with benchmark accuracy (experiments 1 and 2)",
        description=(
            "Measure NTK metrics of many architectures on one shared batch (at initialization, and "
            "after --train-epochs of the study's SGD recipe) and report signed Kendall tau / Spearman "
            "rho against the benchmark's accuracy. Resumable: rerun the same command after a kill."
        ),
    )
    from ntknas.runs.correlate import CorrelateConfig
    from ntknas.settings import KernelSettings, add_options

    kernel_fields = [f.name for f in fields(KernelSettings)]
    add_options(parser, CorrelateConfig, skip=kernel_fields + ["init", "bias_init"], required=["out"])
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or log lines")
    _add_init_options(parser)
    _add_kernel_options(parser)
    _add_executor_options(parser)
    parser.set_defaults(handler=_run_correlate)


def _run_correlate(args: argparse.Namespace) -> int:
    from ntknas.runs.correlate import CorrelateConfig, run_correlate
    from ntknas.settings import from_args

    default_archs = args.archs is None and args.sample is None and args.archs_file is None
    config = from_args(CorrelateConfig, args, **({"archs": "0:1000"} if default_archs else {}))
    executor = _executor(args)
    progress = Progress("archs", enabled=False if args.no_progress else None)
    outcome = run_correlate(config, executor=executor, on_progress=progress, command_line=args.command_line)
    progress.close()
    print(
        f"{outcome.measured} architectures measured, {outcome.skipped} already stored; "
        f"{outcome.seconds:.1f} s. Results in {outcome.run_dir}/"
    )
    print((outcome.run_dir / "summary.md").read_text())
    return 3 if outcome.stopped_by_budget else 0  # 3: stopped by --time-budget, rerun to continue


def _add_demo(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        help="a few-minute miniature of experiment 1 on built-in data (no download)",
        description="A small, honest end-to-end run on scikit-learn's handwritten digits: see its output for what it is and is not.",
    )
    parser.add_argument("--out", type=T.text, default="runs/demo", help="run folder (default runs/demo)")
    parser.add_argument("--archs", type=T.positive_int, default=24, help="number of NB201 cells to sample (default 24)")
    parser.add_argument("--epochs", type=T.positive_int, default=12, help="training epochs for each cell's ground-truth accuracy (default 12)")
    parser.add_argument(
        "--workers", type=T.positive_int, default=None,
        help="processes that train and measure cells side by side (default: one per CPU core, at most 4; 1: this process)",
    )
    parser.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from ntknas.runs.demo import DemoConfig, demo_preamble, demo_search_text, run_demo, run_demo_search

    config = DemoConfig(archs=args.archs, train_epochs=args.epochs, workers=args.workers)
    print(demo_preamble(config))
    training, measuring = Progress("cells", activity="training"), Progress("archs")
    outcome = run_demo(args.out, config, on_progress=measuring, on_training=training)
    training.close()
    measuring.close()
    print()
    print((outcome.run_dir / "summary.md").read_text())
    search = run_demo_search(args.out, config)
    print(demo_search_text(search, config))
    print(f"  (the search took {search.seconds:.1f} s)")
    print()
    print(
        f"done in {outcome.seconds + search.seconds:.0f} s; scores, summary and scatter plots in {outcome.run_dir}/, "
        f"the search in {search.run_dir}/"
    )
    return 0


def _add_export_benchmark(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export-benchmark",
        help="write the compact ground-truth table from an official NAS-Bench-201 / NATS-Bench / NAS-Bench-101 file",
        description=(
            "Load the official benchmark file once (slow) and write the compact table that --benchmark "
            "reads fast: a CSV from an NB201/NATS-Bench file, an .npz (every target column) from "
            "NAS-Bench-101's nasbench_only108.tfrecord."
        ),
    )
    parser.add_argument("official", type=T.text, help="NAS-Bench-201-v1_0-e61699.pth, NAS-Bench-201-v1_1-096897.pth, a NATS-tss file, or nasbench_only108.tfrecord")
    parser.add_argument("--out", type=T.text, required=True, help="CSV (NB201) or .npz (NB101) to write")
    parser.add_argument(
        "--hp", default="200", type=T.text, metavar="12|200|12,200",
        help="NB201 training schedule(s) (default 200 epochs); the 12-epoch accuracy columns end in _hp12 "
             "(cifar10_valid_valid_hp12 is the oracle column ntknas study reads), 12,200 writes both into one file",
    )
    parser.set_defaults(handler=_run_export_benchmark)


def _run_export_benchmark(args: argparse.Namespace) -> int:
    from pathlib import Path

    if Path(args.official).suffix.lower() == ".tfrecord":
        from ntknas.groundtruth.nb101_tfrecord import export_nb101_npz

        path = export_nb101_npz(args.official, args.out)
    else:
        from ntknas.groundtruth.official import export_benchmark_csv

        path = export_benchmark_csv(args.official, args.out, hp=args.hp)
    print(f"wrote {path}")
    return 0


def _add_track(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "track",
        help="how far each architecture's NTK moves from its initial kernel during training (experiment 3)",
        description=(
            "Train NAS-Bench-201 architectures with the study's SGD recipe and, at initialization and "
            "every --every epochs, compute the full per-logit NTK of the first --samples images of a "
            "label-sorted training batch (eval BN, all parameters); record the relative kernel "
            "difference (reference and standard forms), kernel correlation and cosine, train loss and "
            "accuracy and the parameter norm. Writes track.csv and one plot per quantity. Resumable: "
            "rerun the same command after a kill; a larger --epochs continues training."
        ),
    )
    from ntknas.runs.track import TrackConfig
    from ntknas.settings import add_options

    which = parser.add_mutually_exclusive_group()
    add_options(which, TrackConfig, only=["archs", "band", "archs_file"])
    add_options(parser, TrackConfig, skip=["archs", "band", "archs_file", "init", "bias_init"], required=["out"])
    parser.add_argument("--channels", type=T.positive_int, help="NB201 stem channels (default 16; smaller for quick trials)")
    parser.add_argument("--cells-per-stage", type=T.positive_int, help="NB201 cells per stage (default 5; smaller for quick trials)")
    parser.add_argument("--no-progress", action="store_true", help="no per-epoch progress lines")
    _add_init_options(parser)
    _add_executor_options(parser)
    parser.set_defaults(handler=_run_track)


def _run_track(args: argparse.Namespace) -> int:
    from ntknas.report.tracking import TRACK_CSV
    from ntknas.runs.track import TrackConfig, run_track
    from ntknas.settings import from_args

    options = {}
    if args.channels is not None:
        options["channels"] = args.channels
    if args.cells_per_stage is not None:
        options["cells_per_stage"] = args.cells_per_stage
    config = from_args(TrackConfig, args, network_options=options)
    if args.no_progress:
        logging.getLogger("ntknas").setLevel(logging.WARNING)
    executor = _executor(args)
    progress = Progress("archs", enabled=False)
    outcome = run_track(config, executor=executor, on_progress=progress, command_line=args.command_line)
    diverged = f", {len(outcome.diverged)} diverged" if outcome.diverged else ""
    print(
        f"{outcome.tracked} architectures tracked, {outcome.skipped} already done{diverged}; "
        f"{outcome.seconds:.1f} s. Results in {outcome.run_dir}/{TRACK_CSV} and track_*.png"
    )
    return 0


def _add_search(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "search",
        help="find architectures guided by a metric, a zero-cost proxy or a benchmark column; report accuracy and cost",
        description=(
            "Run random search, regularized evolution (REA) or a two-stage search guided by a proxy: any "
            "registered metric measured at --proxy-epochs of the study's training recipe, or bench:COLUMN "
            "(a benchmark column: the oracle baseline). The --target accuracy of the choices is reported, "
            "never used for guidance. Proxy values are stored like correlate's and reused from --cache "
            "folders; resumable: rerun the same command after a kill."
        ),
    )
    from ntknas.search.driver import SearchConfig
    from ntknas.settings import KernelSettings, MeasureSettings, add_options

    kernel_fields = [f.name for f in fields(KernelSettings)]
    add_options(parser, SearchConfig, skip=kernel_fields + ["init", "bias_init", "nb101_stem_channels"],
                required=["out", "benchmark", "proxies"], defaults={"candidates": None, "cache": []})
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or log lines")
    add_options(parser, MeasureSettings, only=["init", "bias_init", "nb101_stem_channels"])
    _add_kernel_options(parser, skip=["strategy"])
    _add_executor_options(parser)
    parser.set_defaults(handler=_run_search)


def _run_search(args: argparse.Namespace) -> int:
    from ntknas.search.driver import SearchConfig, run_search
    from ntknas.settings import from_args

    candidates = args.candidates if args.candidates is not None or args.time_budget is not None else 100
    config = from_args(SearchConfig, args, cache=tuple(args.cache), candidates=candidates)
    if args.no_progress:
        logging.getLogger("ntknas").setLevel(logging.WARNING)
    progress = Progress("archs", enabled=False if args.no_progress else None)
    outcome = run_search(config, executor=_executor(args), on_progress=progress, command_line=args.command_line)
    progress.close()
    print(
        f"{outcome.measured} proxy values measured, {outcome.from_cache} taken from --cache; "
        f"{outcome.seconds:.1f} s. Results in {outcome.run_dir}/"
    )
    print((outcome.run_dir / "summary.md").read_text())
    return 0


def _add_study(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "study",
        help="the paper's experiments and the LGA-guided search at a named scale, with one results page",
        description=(
            "Run experiment 1 (init/), experiment 2 (trained/), kernel tracking (track/) and the searches "
            "(search/) at --scale smoke (built-in digits, no download), cpu (CIFAR-10, 1 h 32 min on 2 "
            "cores with --workers 2) or study (the study's protocol), then write results.md and results.html. Resumable: "
            "rerun the same command after a kill; finished parts are skipped."
        ),
    )
    from ntknas.settings import add_options
    from ntknas.study import StudyConfig

    add_options(parser, StudyConfig, required=["scale"])
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or log lines")
    _add_executor_options(parser)
    parser.set_defaults(handler=_run_study)


def _run_study(args: argparse.Namespace) -> int:
    from ntknas.settings import from_args
    from ntknas.study import StudyConfig, run_study

    config = from_args(StudyConfig, args)
    config.check_inputs()  # a missing input is refused before any executor starts
    if args.no_progress:
        logging.getLogger("ntknas").setLevel(logging.WARNING)
    progress = Progress("items", enabled=False if args.no_progress else None)
    outcome = run_study(config, executor=_executor(args), on_progress=progress, command_line=args.command_line)
    progress.close()
    for part in outcome.parts:
        state = "already done" if part.skipped else ("stopped by --time-budget" if part.stopped else "done")
        print(f"  {part.name:<12} {state:<24} {part.seconds:8.1f} s")
    print(f"study {'stopped' if outcome.stopped_by_budget else 'done'} in {outcome.seconds:.1f} s; "
          f"results page: {outcome.run_dir / 'results.md'} and results.html")
    return 3 if outcome.stopped_by_budget else 0  # 3: stopped by --time-budget, rerun to continue


def _add_report(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report",
        help="an HTML and Markdown report of correlate, track and search run folders",
        description=(
            "Write report.html (self-contained: tables, embedded plots, commands, versions, seeds, wall "
            "times) and report.md (the same, with relative image links) for one or more run folders."
        ),
    )
    parser.add_argument("run_dirs", type=T.text, nargs="+", metavar="RUN_DIR",
                        help="folders written by ntknas correlate, track or search, or one study folder (its results page)")
    parser.add_argument("--out", type=T.text, help="folder for report.html and report.md, or for a study's results.md, "
                        "results.html, verdicts.json and figures/ (default: the first RUN_DIR)")
    parser.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from ntknas.report.document import write_report

    files = write_report(args.run_dirs, args.out)
    print(f"wrote {files.html} and {files.markdown}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ntknas",
        description="Neural Tangent Kernel metrics for neural architecture search.",
    )
    from ntknas.version import __version__

    parser.add_argument("--version", action="version", version=f"ntknas {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    _add_score(commands)
    _add_correlate(commands)
    _add_demo(commands)
    _add_export_benchmark(commands)
    _add_track(commands)
    _add_search(commands)
    _add_report(commands)
    _add_study(commands)
    _add_plugin_option(commands)
    return parser


# --- plugins: --plugin PATH_OR_MODULE on every command, loaded before the parser exists ---------

PLUGIN_HELP = (
    "a .py file or an importable module that registers a space, dataset, metric or search strategy, "
    "loaded before anything else (repeatable; the ntknas.plugins entry points are always loaded)"
)


def _add_plugin_option(commands: argparse._SubParsersAction) -> None:
    for command in commands.choices.values():
        command.add_argument("--plugin", action="append", default=[], metavar="PATH_OR_MODULE", help=PLUGIN_HELP)


def _plugin_arguments(arguments: Sequence[str]) -> list[str]:
    """The --plugin values, read before parsing: what plugins register (a --space, a --strategy)
    must be known before any name is checked."""
    specs = []
    for position, argument in enumerate(arguments):
        if argument == "--":
            break
        if argument == "--plugin" and position + 1 < len(arguments):
            specs.append(arguments[position + 1])
        elif argument.startswith("--plugin="):
            specs.append(argument.split("=", 1)[1])
    return specs


def _load_plugins(specs: Sequence[str], command: str) -> int | None:
    """Load the plugins; the exit status of a one-line error, or None when all loaded."""
    from ntknas.plugins import load_plugins

    try:
        load_plugins(specs)
    except NtknasError as error:
        print(f"{command}: error: {error}", file=sys.stderr)
        return error.exit_status
    return None


# ------------------------------------------------------------------------------------------------


class _CurrentStderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a record arrives (not the stream of the first
    call), so redirected or replaced streams keep working."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # a logging failure must never stop a run
            self.handleError(record)


def _show_library_logs() -> None:
    """Library code logs to the ``ntknas`` logger; the command line shows its INFO lines plainly."""
    logger = logging.getLogger("ntknas")
    if not any(isinstance(handler, _CurrentStderr) for handler in logger.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    import shlex

    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments == ["--version"]:  # answered before the parsers exist: building them imports torch (2-3 s)
        from ntknas.version import __version__

        print(f"ntknas {__version__}")
        return 0
    command = next((a for a in arguments if not a.startswith("-")), None)  # for the error line's prefix
    if (status := _load_plugins(_plugin_arguments(arguments), f"ntknas {command}" if command else "ntknas")) is not None:
        return status
    parser = build_parser()
    args = parser.parse_args(arguments)
    if (status := _load_plugins(args.plugin, f"ntknas {args.command}")) is not None:  # abbreviated --plug
        return status
    args.command_line = "ntknas " + " ".join(shlex.quote(a) for a in arguments)
    from ntknas.settings import ignored_estimator_flags

    for flag in ignored_estimator_flags(args):
        print(f"ntknas {args.command}: warning: {flag} is ignored: it sizes --kernel matrix-free estimates, "
              "and this run uses the exact kernel", file=sys.stderr)
    _show_library_logs()
    handler: Handler = args.handler
    from ntknas.execution.signals import Terminated, stop_on_signals
    from ntknas.store.faults import os_fault, sqlite_fault

    try:
        try:
            with stop_on_signals():  # SIGTERM (schedulers, timeout) stops like Ctrl-C
                return handler(args)
        except OSError as error:  # a file no layer below named: one line all the same
            raise os_fault(error, kept=args.command in STORING_COMMANDS) from None
        except sqlite3.Error as error:
            raise sqlite_fault(error, Path(getattr(args, "out", None) or ".") / "results.sqlite", writing=True) from None
    except NtknasError as error:
        print(f"ntknas {args.command}: error: {error.for_command_line(command_flags(parser, args.command))}",
              file=sys.stderr)
        return error.exit_status
    except Terminated as stop:
        print(f"ntknas {args.command}: stopped by {stop.signal_name}{_resume_hint(args.command)}", file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt:
        print(f"ntknas {args.command}: interrupted{_resume_hint(args.command)}", file=sys.stderr)
        return 130


# Library parameters whose flag's destination has another name (score passes --model-seed as
# ``seed``; RayOptions.address is --ray-address).
PARAMETER_FLAGS: dict[str, dict[str, str]] = {
    "score": {"seed": "--model-seed", "bn_mode": "--bn"},
    "*": {"address": "--ray-address"},
}


def command_flags(parser: argparse.ArgumentParser, command: str) -> dict[str, str]:
    """Parameter -> the flag that sets it in ``command`` (its first long spelling): library errors
    name parameters, the command line shows the flags the user typed."""
    commands = next(a for a in parser._subparsers._actions if isinstance(a, argparse._SubParsersAction))  # type: ignore[union-attr]
    flags: dict[str, str] = {}
    for action in commands.choices[command]._actions:
        spellings = [text for text in action.option_strings if text.startswith("--")]
        if spellings and action.help != argparse.SUPPRESS:  # a hidden alias is not what help shows
            flags.setdefault(action.dest, spellings[0])
    return flags | PARAMETER_FLAGS["*"] | PARAMETER_FLAGS.get(command, {})


STORING_COMMANDS = ("correlate", "track", "search", "demo", "study")


def _resume_hint(command: str) -> str:
    """Only commands that store results resume; the others just stop."""
    return "; rerun the same command to resume" if command in STORING_COMMANDS else ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
