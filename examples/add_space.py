"""A search space of your own, in one file with one register call.

Architectures are two ops in a row, each "conv", "pool" or "skip" (9 architectures); the
network is a small CNN. Any benchmark CSV with an ``arch`` column ("conv-pool", ...) and one
column per accuracy is its ground truth: ``ntknas correlate --space toy2 --benchmark toy2.csv``.
"""

import itertools

import numpy as np
from torch import nn

from ntknas.errors import InvalidArchError
from ntknas.spaces import SearchSpace, SpaceProtocol, register_space

OPS = ("conv", "pool", "skip")


class TwoOpSpace(SearchSpace):
    name = "toy2"
    title = "two-op toy space"
    protocol = SpaceProtocol(batch_size=16, seed=42, build_options={"width": 8})
    arch_help = "two ops joined by '-', each conv, pool or skip (e.g. conv-pool)"
    default_arch = "conv-conv"

    def parse(self, text):
        ops = tuple(str(text).strip().split("-"))
        if len(ops) != 2 or any(op not in OPS for op in ops):
            raise InvalidArchError(f"{text!r} is not a toy2 architecture: use {self.arch_help}")
        return ops

    def key(self, arch):
        return "-".join(self.coerce(arch))

    def index(self, arch):
        return self._all().index(self.coerce(arch))

    def size(self):
        return len(self._all())

    def arch_at(self, position):
        return self._all()[position]

    def neighbours(self, arch):
        ops = self.coerce(arch)
        return [ops[:i] + (op,) + ops[i + 1:] for i in range(2) for op in OPS if op != ops[i]]

    def build(self, arch, num_classes, width=8):
        layers = [nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        for op in self.coerce(arch):
            if op == "conv":
                layers += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            elif op == "pool":
                layers.append(nn.AvgPool2d(3, stride=1, padding=1))
        # The last nn.Linear is the classifier, which the kernel leaves out (see docs/protocol.md, "The kernel").
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes)]
        return nn.Sequential(*layers)

    @staticmethod
    def _all():
        return list(itertools.product(OPS, repeat=2))


register_space(TwoOpSpace())

if __name__ == "__main__":
    space = TwoOpSpace()
    print(space.size(), space.key(space.mutate(("conv", "skip"), np.random.default_rng(0))))
