"""The ``ntknas`` command line.

Every error a user can cause is printed as one line naming the fix, with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from ntknas.errors import NtknasError

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
    parser.add_argument("--space", default="nb201", help="search space: nb201 | nb101 (default nb201)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--arch", help="NB201 arch string or 6-digit op codes; NB101 hash (with --benchmark) or JSON {adjacency, ops}")
    which.add_argument("--index", type=int, help="NB201 official index (0..15624)")
    parser.add_argument("--benchmark", help="NB101 table (.npz/.csv) to look an NB101 hash up in")
    parser.add_argument("--dataset", help="cifar10 | cifar100 | ImageNet16-120")
    parser.add_argument("--data-dir", help="folder holding the dataset in its official format")
    parser.add_argument("--batch-file", help=".npz with uint8 'images' (N,H,W,3) and int 'labels'")
    parser.add_argument("--batch-size", type=int, help="images in the batch (default: the study's, 256; 512 for ImageNet16-120; 64 for the built-in digits)")
    parser.add_argument("--bn", default="train", choices=["train", "eval"], help="BatchNorm mode (default train)")
    parser.add_argument("--metrics", default="knas,tenas,fnorm,trace,lga", help="comma-separated metric names, or 'all'")
    parser.add_argument("--params", default="weights", choices=["weights", "all"], help="kernel parameters (default: weights without the classifier)")
    parser.add_argument("--variant", default="study", choices=["study", "benchmark"], help="NB201 network variant")
    parser.add_argument("--strategy", default="auto", help="kernel strategy: auto | per_sample | batched | loop")
    parser.add_argument("--chunk-size", type=int, help="kernel rows computed at once (bounds memory)")
    parser.add_argument("--seed", type=int, default=42, help="model and data seed (default 42, the study's)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    from ntknas.experiments.single import score_architecture

    outcome = score_architecture(
        space=args.space,
        arch=args.arch,
        index=args.index,
        benchmark=args.benchmark,
        dataset=args.dataset,
        data_dir=args.data_dir,
        batch_file=args.batch_file,
        batch_size=args.batch_size,
        bn_mode=args.bn,
        metrics=args.metrics,
        params=args.params,
        variant=args.variant,
        strategy=args.strategy,
        chunk_size=args.chunk_size,
        seed=args.seed,
        device=args.device,
    )
    if args.json:
        print(json.dumps(outcome.as_dict(), indent=2))
    else:
        print(outcome.as_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ntknas",
        description="Neural Tangent Kernel metrics for neural architecture search.",
    )
    from ntknas import __version__

    parser.add_argument("--version", action="version", version=f"ntknas {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    _add_score(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except NtknasError as error:
        print(f"ntknas {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ntknas {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
