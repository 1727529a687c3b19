"""One vocabulary for what is measured and how: the settings every command and library call shares.

:class:`KernelSettings` says how a kernel is computed (exact or matrix-free, strategy, chunking,
estimator); :class:`MeasureSettings` adds what is measured (space, dataset, protocol, batch, seed,
BatchNorm modes, network variant and options, initialization, training batch). The run configs
(correlate, search) extend them with what concerns one run; nothing is copied field by field.

Each field carries its command-line flag, help and value check in its metadata, so

* a settings object checks itself on construction (library callers get the command line's
  one-line errors, which name the field; the command line shows its flag), and
* :func:`add_options` derives a command's flags from the fields and :func:`from_args` builds the
  settings back from what argparse parsed: the CLI copies no argument by hand.

Identity (which stored results a rerun may reuse) is the fields marked ``identity``; its layout is
:data:`IDENTITY_VERSION`, recorded in every run folder that stores results.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Self

import torch

from ntknas.errors import UnknownNameError, option
from ntknas.inputs import validation as check
from ntknas.kernel import BN_MODES
from ntknas.kernel.choice import AUTO
from ntknas.kernel.matrix_free import DEFAULT_ESTIMATOR, DEFAULT_PROBES, ESTIMATORS, EstimatorSettings
from ntknas.kernel.ntk import STRATEGIES
from ntknas.metrics.registry import check_kernel_choice, check_kernel_kind
from ntknas.scoring import choose_kernel_for
from ntknas.spaces import get_space
from ntknas.spaces.init import BIAS_INITS, INIT_SPACES, WEIGHT_INITS, InitScheme, init_identity, initialize

IDENTITY_VERSION = 1
"""The layout of the identity dictionaries below. A folder without a recorded version holds
version 1: the layout every release before the version was recorded wrote."""

PROTOCOLS = ("study", "zc")
KERNEL_KINDS = ("exact", "matrix-free", AUTO)
"""What ``--kernel`` accepts: the two ways to compute kernel metrics, and ``auto``, which picks the
faster of them per evaluation (:mod:`ntknas.kernel.choice`)."""

INIT_HELP = (
    "weight initialization after construction: study (default: NB101 re-initialized as the study "
    "did, NB201 and custom keep PyTorch's) | default (PyTorch's) | xavier | kaiming | zero "
    "(conv and linear weights)"
)


def setting(
    default: Any = MISSING,
    *,
    flag: str | None = None,
    help: str = "",
    parse: Callable[[Any], Any] | None = None,
    choices: Iterable[str] | None = None,
    identity: bool = False,
    default_factory: Any = MISSING,
    metavar: str | None = None,
    action: str | None = None,
) -> Any:
    """A dataclass field that knows its flag, help, check and whether it is part of the identity.

    ``parse`` turns a typed value into the field's type (and refuses bad ones, see
    :mod:`ntknas.inputs.validation`); it runs for the command line and on construction alike.
    """
    metadata = {
        "flag": flag, "help": help, "parse": parse, "identity": identity,
        "choices": None if choices is None else tuple(choices), "metavar": metavar, "action": action,
    }
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def check_fields(settings: Any, names: Iterable[str] | None = None) -> None:
    """Check each field's value with its own ``parse`` and ``choices``; the message names the field
    (the command line shows its flag)."""
    wanted = None if names is None else set(names)
    for item in fields(settings):
        if wanted is not None and item.name not in wanted:
            continue
        value = getattr(settings, item.name)
        if value is None:
            continue
        parse = item.metadata.get("parse")
        if parse is not None and not isinstance(value, (tuple, list, dict)):  # lists were parsed already
            check.flagged(item.name, parse, value)
        choices = item.metadata.get("choices")
        if choices is not None and value not in choices:
            raise UnknownNameError(f"unknown {option(item.name)} {value!r}: use one of {', '.join(choices)}")


@dataclass(frozen=True)
class KernelSettings:
    """How a kernel is computed: exactly (the B×B matrix) or matrix-free, and with what resources."""

    kernel: str = setting(
        "exact", flag="--kernel", choices=KERNEL_KINDS,
        help="exact: the B×B kernel (every metric); matrix-free: knas and the LGA numerator exact from a few "
             "backward passes, trace/fnorm/lga by a seeded randomized estimate with a standard error, no B×B "
             "kernel (tenas and ntk_rank need --kernel exact); auto: per evaluation the faster of the two for "
             "its metrics, batch size and device, by a measured rule (docs/kernel.md; exact whenever a metric "
             "needs eigenvalues)",
    )
    strategy: str = setting("auto", flag="--strategy", parse=check.nonempty_text,
                            help="kernel strategy: auto | per_sample | batched | loop | adaptive")
    chunk_size: int | None = setting(None, flag="--chunk-size", parse=check.positive_int,
                                     help="kernel rows computed at once (bounds memory)")
    probes: int = setting(
        DEFAULT_PROBES, flag="--probes", parse=check.positive_int,
        help=f"with --kernel matrix-free: random probes per estimate (default {DEFAULT_PROBES}, chosen by "
             "perf/matrix_free_fidelity.py)",
    )
    estimator: str = setting(
        DEFAULT_ESTIMATOR, flag="--estimator", choices=tuple(ESTIMATORS),
        help=f"with --kernel matrix-free: xnys (exchangeable Nyström, fewer products for the same accuracy) or "
             f"hutch++ (the estimator of earlier matrix-free runs) (default {DEFAULT_ESTIMATOR})",
    )
    estimator_seed: int = setting(0, flag="--estimator-seed", parse=check.seed,
                                  help="with --kernel matrix-free: seed of the estimator's random probes (default 0)")
    kernel_choice: str | None = setting(
        None, help="why --kernel auto chose the kernel (set when auto is resolved for an evaluation; None when the "
                   "kernel was named)",
    )

    def __post_init__(self) -> None:
        check_fields(self, [f.name for f in fields(KernelSettings)])
        if self.kernel != AUTO:
            check_kernel_kind(self.kernel)
        if self.strategy not in STRATEGIES:
            raise UnknownNameError(f"unknown kernel strategy {self.strategy!r}: use one of {', '.join(STRATEGIES)}")
        self.estimator_settings  # noqa: B018 -- refuses a bad --probes or --estimator on construction

    @property
    def estimator_settings(self) -> EstimatorSettings:
        return EstimatorSettings(probes=self.probes, seed=self.estimator_seed, estimator=self.estimator)

    @property
    def kernel_identity(self) -> dict[str, Any] | None:
        """The kernel settings that change stored values; None for the exact kernel, so run folders
        written before ``--kernel`` existed keep their identity. Measurements are stored under the
        kind ``auto`` resolved to (:meth:`for_evaluation`), never under ``auto``: an ``auto`` run
        that chose the exact kernel shares values with ``--kernel exact`` runs and never reuses a
        matrix-free one. Only a folder that holds several evaluations (a search) records ``auto``."""
        if self.kernel == "exact":
            return None
        return {"kind": self.kernel, **self.estimator_settings.identity()}

    def check_metrics(self, metrics: Sequence[str]) -> None:
        """Refuse, before any work, a metric the named kernel cannot compute (``auto`` never refuses:
        it takes the exact kernel for metrics that need eigenvalues)."""
        if self.kernel != AUTO:
            check_kernel_choice(self.kernel, list(metrics))

    def for_evaluation(self, metrics: Sequence[str], batch_size: int, device: Any) -> Self:
        """These settings with ``auto`` resolved for an evaluation of ``metrics`` on ``batch_size``
        images on ``device`` (the reason kept in ``kernel_choice``); unchanged for a named kernel."""
        if self.kernel != AUTO:
            return self
        choice = choose_kernel_for(metrics, batch_size, device)
        return dataclasses.replace(self, kernel=choice.kind, kernel_choice=choice.reason)


@dataclass(frozen=True)
class MeasureSettings(KernelSettings):
    """What is measured and how: the settings a stored measurement depends on.

    ``None`` for ``batch_size`` or ``model_seed`` means "the protocol's" until :meth:`resolved_measure`
    fills it in (see docs/protocol.md, "Experiment 1": the dataset's batch, seed 42; NB101 batch 64, seed 1; ``zc``: 64, 42).
    """

    space: str = setting("nb201", flag="--space", parse=check.nonempty_text, identity=True,
                         help="nb201 | nb101 | any registered space (default nb201)")
    dataset: str = setting("cifar10", flag="--dataset", parse=check.nonempty_text, identity=True,
                           help="cifar10 | cifar100 | ImageNet16-120 | digits (built in, no download)")
    protocol: str = setting("study", flag="--protocol", choices=PROTOCOLS, identity=True,
                            help="study (the study's protocol, docs/protocol.md) or zc (zero-cost papers: batch 64)")
    batch_size: int | None = setting(
        None, flag="--batch-size", parse=check.positive_int, identity=True,
        help="measurement batch (default: 256; 512 for ImageNet16-120; 64 for NB101 and --protocol zc)",
    )
    model_seed: int | None = setting(None, flag="--model-seed", parse=check.seed, identity=True,
                                     help="model and data seed (default: the protocol's: 42; 1 for NB101)")
    bn_modes: tuple[str, ...] = setting(("train", "eval"), flag="--bn", parse=check.name_list, identity=True,
                                        help="BatchNorm modes (default train,eval)")
    params: str = setting("weights", flag="--params", choices=("weights", "all"), identity=True,
                          help="kernel parameters (default: weights without the classifier)")
    variant: str = setting("study", flag="--variant", choices=("study", "benchmark"), identity=True,
                           help="NB201 network variant (default study)")
    nb101_stem_channels: int = setting(128, flag="--nb101-stem-channels", parse=check.positive_int, identity=True,
                                       help="NB101 stem channels (default 128)")
    network_options: Mapping[str, Any] = setting(default_factory=dict, identity=True)
    init: str = setting("study", flag="--init", choices=WEIGHT_INITS, help=INIT_HELP)
    bias_init: str = setting("default", flag="--bias-init", choices=BIAS_INITS,
                             help="conv and linear biases: default (as --init leaves them) | zero")
    train_batch_size: int = setting(1024, flag="--train-batch-size", parse=check.positive_int, identity=True,
                                    help="SGD batch size for training stages (default 1024, the study's)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fields(self, [f.name for f in fields(MeasureSettings)])
        if isinstance(self.bn_modes, str):  # "train,eval" from a script reads like the flag
            object.__setattr__(self, "bn_modes", check.name_list(self.bn_modes))
        object.__setattr__(self, "bn_modes", tuple(self.bn_modes))
        if not self.bn_modes:
            raise UnknownNameError(f"{option('bn_modes')} names no mode: use train, eval or train,eval")
        for mode in self.bn_modes:
            if mode not in BN_MODES:
                raise UnknownNameError(f"unknown BatchNorm mode {mode!r} in {option('bn_modes')}: use train, eval or train,eval")
        InitScheme(self.init, self.bias_init)

    @property
    def init_identity(self) -> str | None:
        """The effective initialization's name, None for PyTorch's (see :func:`init_identity`)."""
        return init_identity(self.space, self.init, self.bias_init)

    def build_options(self) -> dict[str, Any]:
        """The options the space builds its networks with: its defaults, ``variant`` and the NB101
        stem where the space takes them, the initialization for the built-in spaces, then
        ``network_options``."""
        space = get_space(self.space)
        options = space.options_with(variant=self.variant, stem_channels=self.nb101_stem_channels)
        if space.name in INIT_SPACES:
            options |= {"init": self.init, "bias_init": self.bias_init}
        return options | dict(self.network_options)

    def network_builder(self, num_classes: int) -> Callable[[Any], torch.nn.Module]:
        """``build(arch)``: the network of an architecture, initialized as these settings say."""
        return network_builder(self.space, num_classes, self.build_options(), self.init, self.bias_init)


def network_builder(
    space_name: str, num_classes: int, options: Mapping[str, Any], init: str, bias_init: str
) -> Callable[[Any], torch.nn.Module]:
    """``build(arch)``: build, then initialize — the one place that knows how. The built-in spaces
    initialize inside their builders (options ``init``/``bias_init``); a user's space is
    initialized here, after its own builder."""
    space = get_space(space_name)
    built_in = space.name in INIT_SPACES
    full = ({"init": init, "bias_init": bias_init} | dict(options)) if built_in else dict(options)

    def build(arch: Any) -> torch.nn.Module:
        network = space.build(arch, num_classes, **full)
        if not built_in:
            initialize(network, space.name, init, bias_init)
        return network

    return build


# ----------------------------------------------------------------------------------------------
# Deriving command-line options from the fields, and settings from what argparse parsed
# ----------------------------------------------------------------------------------------------


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` that have a command-line flag."""
    return [item for item in fields(cls) if item.metadata.get("flag")]


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    only: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    help: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    required: Iterable[str] = (),
) -> None:
    """Add one option per flagged field of ``cls`` (all, or ``only`` those), in field order.

    The option's value is the field's ``parse`` applied by argparse (so a bad value is argparse's
    one-line usage error naming the flag); its default is the field's, or ``defaults[name]``.
    """
    from ntknas.cli_types import for_argparse

    wanted = None if only is None else list(only)
    skipped = set(skip)
    needed = set(required)
    chosen = [item for item in option_fields(cls) if item.name not in skipped]
    if wanted is not None:
        by_name = {item.name: item for item in chosen}
        chosen = [by_name[name] for name in wanted]
    for item in chosen:
        meta = item.metadata
        kwargs: dict[str, Any] = {"dest": item.name, "help": (help or {}).get(item.name, meta["help"])}
        if meta.get("action"):
            kwargs["action"] = meta["action"]
        if meta.get("parse") is not None and meta.get("action") != "store_true":
            kwargs["type"] = for_argparse(meta["parse"])
        if meta.get("choices") is not None:
            kwargs["choices"] = list(meta["choices"])
        elif meta.get("action") != "store_true":  # the flag's own name, not the field's
            kwargs["metavar"] = meta.get("metavar") or meta["flag"].lstrip("-").replace("-", "_").upper()
        if item.name in needed:
            kwargs["required"] = True
        elif defaults is not None and item.name in defaults:
            kwargs["default"] = defaults[item.name]
        elif item.default is not MISSING:
            kwargs["default"] = item.default
        elif item.default_factory is not MISSING:  # type: ignore[misc]
            kwargs["default"] = item.default_factory()  # type: ignore[misc]
        parser.add_argument(meta["flag"], **kwargs)


def from_args(cls: type, args: argparse.Namespace, **values: Any) -> Any:
    """``cls`` built from the parsed options that are its fields, then ``values``. An option left
    at ``None`` whose field has another default (see ``defaults`` of :func:`add_options`: a way
    to tell "not given" from "given the default") takes the field's default."""
    unset = {item.name for item in fields(cls) if item.default is not None or item.default_factory is not MISSING}
    given = {
        item.name: getattr(args, item.name) for item in fields(cls)
        if hasattr(args, item.name) and not (getattr(args, item.name) is None and item.name in unset)
    }
    return cls(**(given | values))


ESTIMATOR_OPTIONS = ("probes", "estimator", "estimator_seed")


def ignored_estimator_flags(args: argparse.Namespace) -> list[str]:
    """The estimator flags given with ``--kernel exact``, which does not estimate anything."""
    if getattr(args, "kernel", "exact") != "exact":
        return []
    flags = {item.name: item.metadata["flag"] for item in fields(KernelSettings)}
    return [flags[name] for name in ESTIMATOR_OPTIONS if getattr(args, name, None) is not None]


def measure_fields(settings: MeasureSettings) -> dict[str, Any]:
    """The :class:`MeasureSettings` part of a run config, as keyword arguments."""
    return {item.name: getattr(settings, item.name) for item in fields(MeasureSettings)}


__all__ = [
    "IDENTITY_VERSION", "KERNEL_KINDS", "PROTOCOLS", "KernelSettings", "MeasureSettings", "add_options",
    "check_fields", "from_args", "measure_fields", "network_builder", "option_fields", "setting",
]
