"""A toy search space with a known optimum, its benchmark table, and a cheap registered metric,
for the search tests (imported by the tests and by the subprocesses they start).

Architectures are four slots, each ``skip``, ``pool``, ``conv1`` or ``conv3`` (256 in all, index
= the base-4 number of the op ranks). The table's accuracy is additive over slots, so the unique
optimum is every slot ``conv3``; ``toy_params`` (the conv weights' parameter count) has the same
unique maximum.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import numpy as np
from torch import nn

from ntknas.errors import InvalidArchError
from ntknas.metrics import available_metrics, register_metric
from ntknas.spaces import SearchSpace, SpaceProtocol, available_spaces, register_space

OPS = ("skip", "pool", "conv1", "conv3")
SLOTS = 4
WEIGHTS = (1.0, 2.0, 3.0, 4.0)
NAME = "toysearch"
OPTIMUM = "conv3-conv3-conv3-conv3"


class ToySearchSpace(SearchSpace):
    name = NAME
    title = "four-slot toy space"
    protocol = SpaceProtocol(batch_size=8, seed=42, build_options={"width": 4})
    arch_help = "four ops joined by '-', each skip, pool, conv1 or conv3"

    def parse(self, text):
        ops = tuple(str(text).strip().split("-"))
        if len(ops) != SLOTS or any(op not in OPS for op in ops):
            raise InvalidArchError(f"{text!r} is not a {NAME} architecture: use {self.arch_help}")
        return ops

    def key(self, arch):
        return "-".join(self.coerce(arch))

    def index(self, arch):
        return int(sum(OPS.index(op) * 4**slot for slot, op in enumerate(self.coerce(arch))))

    def size(self):
        return 4**SLOTS

    def arch_at(self, position):
        return tuple(OPS[(position // 4**slot) % 4] for slot in range(SLOTS))

    def neighbours(self, arch):
        ops = self.coerce(arch)
        return [ops[:i] + (op,) + ops[i + 1:] for i in range(SLOTS) for op in OPS if op != ops[i]]

    def build(self, arch, num_classes, width=4):
        layers = [nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        for op in self.coerce(arch):
            if op == "pool":
                layers.append(nn.AvgPool2d(3, stride=1, padding=1))
            elif op == "conv1":
                layers += [nn.Conv2d(width, width, 1), nn.ReLU()]
            elif op == "conv3":
                layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes)]
        return nn.Sequential(*layers)


def toy_accuracy(arch) -> float:
    return 50.0 + sum(w * OPS.index(op) for w, op in zip(WEIGHTS, arch))


def _toy_params(context) -> float:
    delay = float(os.environ.get("NTKNAS_TOY_METRIC_DELAY", "0"))
    if delay:
        time.sleep(delay)  # lets a test kill a run mid-way
    return float(sum(m.weight.numel() for m in context.net.modules() if isinstance(m, nn.Conv2d)))


def register() -> ToySearchSpace:
    """Register the toy space and metric once per process."""
    if NAME not in available_spaces():
        register_space(ToySearchSpace())
    if "toy_params" not in available_metrics():
        register_metric(
            "toy_params", higher_is_better=True, family="toy", formula="conv weights", uses_bn_mode=False
        )(_toy_params)
    from ntknas.spaces import get_space

    return get_space(NAME)  # type: ignore[return-value]


def write_table(path: Path, permute_target_seed: int | None = None) -> Path:
    """The toy benchmark: ``acc`` (the reported target), ``signal`` (accuracy plus a small
    deterministic perturbation that keeps the optimum: the oracle proxy) and ``acc_lowres``.

    With ``permute_target_seed`` the ``acc`` column is shuffled across rows (the other columns
    are unchanged): a search that never reads the target chooses the same architectures.
    """
    space = register()
    archs = [space.arch_at(i) for i in range(space.size())]
    accuracy = np.array([toy_accuracy(a) for a in archs])
    signal = accuracy + 0.3 * np.sin(np.arange(len(archs)))
    signal[space.index(space.parse(OPTIMUM))] += 1.0
    target = accuracy.copy()
    if permute_target_seed is not None:
        target = np.random.default_rng(permute_target_seed).permutation(target)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "acc", "signal"])
        for arch, acc, sig in zip(archs, target, signal):
            writer.writerow([space.key(arch), repr(float(acc)), repr(float(sig))])
    return path


