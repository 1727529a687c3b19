"""``--kernel auto``: the faster of the exact kernel and matrix-free products, by a measured rule.

The exact kernel costs B whole-batch backward passes (train-mode BatchNorm couples the samples),
each growing with B; matrix-free costs a number of passes fixed by the metrics (one backward pass
for knas alone; C + m backward and forward-mode passes for trace, fnorm and lga, C the classes of
the batch and m the probes) plus a one-off linearized trace. So the exact kernel wins at small
batches and matrix-free at large ones, with a crossover per device type that
``perf/kernel_choice.py`` measures (docs/kernel.md, "Choosing the kernel: --kernel auto").

The rule depends only on the metrics, the batch size and the device type, so a run knows its
kernel before it measures anything: the choice joins the run's identity as the kernel it resolved
to, never as "auto" (an ``auto`` run that chose the exact kernel stores and reuses exactly what an
``--kernel exact`` run does, and never a matrix-free value).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

AUTO = "auto"
EXACT = "exact"
MATRIX_FREE = "matrix-free"

SUM_METRICS = frozenset({"knas"})
"""Kernel metrics that matrix-free gets exactly from sums of gradients (one backward pass for knas
alone), without estimating anything: cheaper than the exact kernel at every batch of two or more."""

EXACT_UP_TO: dict[str, int] = {"cpu": 64, "cuda": 256}
"""The largest batch at which ``auto`` computes trace, fnorm or lga with the exact kernel, by device
type. cpu: measured by ``perf/kernel_choice.py`` (docs/kernel.md): on NB201's small and largest
cells in train-mode BatchNorm the exact kernel is faster up to B = 64 (1.2x and 1.0x there) and
matrix-free from B = 128 (1.9x), crossover near B = 65-75. cuda: estimated, not measured (no GPU was
available when the rule was set): it keeps the exact kernel GPU runs have used at the study's
B = 256. Device types not listed use the cpu value."""

SUMS_EXACT_UP_TO = 1
"""The largest batch at which ``auto`` computes knas alone with the exact kernel: none that has a
kernel (one backward pass for matrix-free against B for the exact kernel at every measured size)."""


@dataclass(frozen=True)
class KernelNeeds:
    """What the kernel metrics of one evaluation need from the kernel."""

    eigenvalues: bool = False
    """Some metric needs the kernel's spectrum (tenas, ntk_rank): only the exact kernel has it."""
    estimates: bool = False
    """Some metric is a matrix-free estimate (trace, fnorm, lga)."""
    sums: bool = False
    """Some metric is an exact matrix-free sum (knas)."""

    @property
    def needs_kernel(self) -> bool:
        return self.eigenvalues or self.estimates or self.sums


@dataclass(frozen=True)
class KernelChoice:
    """The kernel an evaluation uses and why (the why is recorded with each item ``auto`` chose for)."""

    kind: str
    reason: str


def exact_up_to(device_type: str, needs: KernelNeeds) -> int:
    """The largest batch at which ``auto`` takes the exact kernel for metrics that need ``needs``."""
    if needs.estimates:
        return EXACT_UP_TO.get(device_type, EXACT_UP_TO["cpu"])
    return SUMS_EXACT_UP_TO


def choose_kernel(needs: KernelNeeds, batch_size: int, device_type: str) -> KernelChoice:
    """The faster kernel for an evaluation of ``batch_size`` images on ``device_type`` (cpu, cuda).

    Exact when a metric needs eigenvalues, when no metric needs a kernel at all (the kind is then
    moot and the exact kernel keeps the identity of runs without ``--kernel``), or when the batch is
    at most :func:`exact_up_to`; matrix-free above.
    """
    if needs.eigenvalues:
        return KernelChoice(EXACT, "a metric needs the kernel's eigenvalues")
    if not needs.needs_kernel:
        return KernelChoice(EXACT, "no metric needs a kernel")
    limit = exact_up_to(device_type, needs)
    what = "trace/fnorm/lga estimates" if needs.estimates else "knas alone"
    if batch_size <= limit:
        return KernelChoice(EXACT, f"B = {batch_size} <= {limit} for {what} on {device_type}")
    return KernelChoice(MATRIX_FREE, f"B = {batch_size} > {limit} for {what} on {device_type}")


def device_type(device: object) -> str:
    """``cuda`` for ``cuda:1``, ``cpu`` for ``cpu``: the part of a device name the rule reads."""
    return str(device).split(":", 1)[0].strip().lower() or "cpu"


def kernel_needs(kernel_metrics: Iterable[tuple[str, bool]]) -> KernelNeeds:
    """:class:`KernelNeeds` of kernel metrics given as (name, whether matrix-free computes it)."""
    eigenvalues = estimates = sums = False
    for name, matrix_free in kernel_metrics:
        if not matrix_free:
            eigenvalues = True
        elif name in SUM_METRICS:
            sums = True
        else:
            estimates = True
    return KernelNeeds(eigenvalues, estimates, sums)
