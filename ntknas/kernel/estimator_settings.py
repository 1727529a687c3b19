"""Settings of a matrix-free run and their checks: part of a run's identity, light to import.

The estimators themselves live in :mod:`ntknas.kernel.estimators`; this module knows their names
and how many probes each can use on a batch (:func:`probe_bound`), so that command-line checks
need not import the estimator code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ntknas.errors import NtknasError, UnknownNameError, option

KERNEL_KINDS = ("exact", "matrix-free")
ESTIMATOR_NAMES = ("xnys", "hutch++")
"""The estimators :data:`ntknas.kernel.estimators.ESTIMATORS` implements, in the CLI's order."""
DEFAULT_ESTIMATOR = "xnys"
DEFAULT_PROBES = 20
"""Random probes per estimate; chosen by ``perf/matrix_free_fidelity.py`` (see docs/kernel.md,
its matrix-free section)."""
MINIMUM_PROBES = 2
"""A standard error needs the spread of at least two probe terms."""


@dataclass(frozen=True)
class EstimatorSettings:
    """How the randomized parts of a matrix-free run are estimated; part of a run's identity.

    ``probes`` is what was asked for and stays in the identity as asked, also where a small batch
    lets the estimator use fewer (:func:`probe_bound`): a folder measured with ``--probes 200`` at
    B = 8 resumes under the same command.
    """

    probes: int = DEFAULT_PROBES
    seed: int = 0
    estimator: str = DEFAULT_ESTIMATOR

    def __post_init__(self) -> None:
        if isinstance(self.probes, bool) or not isinstance(self.probes, int) or self.probes < MINIMUM_PROBES:
            raise NtknasError(f"{option('probes')} must be an integer >= 2 (an estimate needs at least two probes), got {self.probes!r}")
        if self.estimator not in ESTIMATOR_NAMES:
            raise UnknownNameError(f"unknown estimator {self.estimator!r}: use one of {', '.join(ESTIMATOR_NAMES)}")

    @property
    def range_columns(self) -> int:
        """Hutch++: the range sketch's columns."""
        return self.probes // 2

    @property
    def residual_probes(self) -> int:
        return self.probes - self.range_columns

    def identity(self) -> dict[str, object]:
        return asdict(self)


def check_kernel_kind(kind: str) -> str:
    if kind not in KERNEL_KINDS:
        raise UnknownNameError(f"unknown kernel {kind!r}: use exact or matrix-free")
    return kind


def probe_bound(estimator: str, batch_size: int) -> int:
    """The most probes ``estimator`` can use on a batch of ``batch_size``: beyond it the estimates
    are already exact (up to rounding) and more probes only cost passes and memory.

    ``xnys`` estimates A = PKP, which lives on the (B − 1)-dimensional space off the mean. Each
    probe's leave-one-out Nyström approximation is built from the C − 1 class directions and the
    other m − 1 probes; once those span that space (m ≥ B − C + 1) it equals A, every correction
    term is zero and the estimate is exact. C ≥ 1 whatever the labels, so m = B always suffices;
    the bound does not depend on the labels, so a run's effective probe count is the same for every
    batch of its size.

    ``hutch++`` spends ⌊m/2⌋ probes on the range sketch, which it already caps at B − 1 columns;
    with those the basis [1, K S] spans the whole space and the residual probes add nothing, so
    m = 2(B − 1) suffices.
    """
    if estimator == "hutch++":
        return max(MINIMUM_PROBES, 2 * (batch_size - 1))
    return max(MINIMUM_PROBES, batch_size)


def effective_settings(settings: EstimatorSettings, batch_size: int) -> EstimatorSettings:
    """``settings`` with its probes clamped to :func:`probe_bound`; the same object when within it.

    Requests within the bound are not touched, so no stored value of such a run changes; the
    clamped copy is used for the estimate only, never for a run's identity.
    """
    bound = probe_bound(settings.estimator, batch_size)
    if settings.probes <= bound:
        return settings
    return EstimatorSettings(probes=bound, seed=settings.seed, estimator=settings.estimator)
