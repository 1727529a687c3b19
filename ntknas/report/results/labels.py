"""The verdict labels and the rules that decide them, written once: the page prints RULES, and
each claim's label comes from one function below applied to the paired statistics.

An interval "excludes 0 in the claimed direction" when its whole 95 % bootstrap interval lies on
the side of zero the claim predicts. Nothing but the rule decides a label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
LABELS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE)
MIN_CELLS_PER_BAND = 3
"""Claim 3 needs this many tracked cells in every band to be anything but inconclusive."""

Interval = Sequence[float | None]


@dataclass(frozen=True)
class Decision:
    label: str
    why: str


RULES: dict[int, str] = {
    1: ("Δτ = τ(best NTK metric) − τ(best zero-cost proxy) at initialization, each τ in its metric's own ranking "
        "direction, paired bootstrap over the same cells. Per space: supported when the 95% CI of Δτ lies below 0, "
        "contradicted when it lies above 0, inconclusive otherwise. The claim: supported when some space supports it "
        "and none contradicts it, contradicted when some space contradicts it and none supports it, inconclusive "
        "otherwise."),
    2: ("Δτ = τ(LGA, train BN, after the first trained stage) − τ(LGA, train BN, before training), paired bootstrap "
        "over the same cells: supported when its 95% CI lies above 0, contradicted when it lies below 0, "
        "inconclusive otherwise."),
    3: (f"The tracked quantity is the first of relative difference, kernel norm ratio (as |log ratio|) and "
        f"1 − kernel cosine that is not at its ceiling for every cell; Kendall τ of that movement at the last "
        f"epoch with accuracy over all tracked cells, bootstrap 95% CI: inconclusive when a band has fewer than "
        f"{MIN_CELLS_PER_BAND} cells or every quantity is saturated; otherwise supported when the CI lies above 0, "
        "contradicted when it lies below 0, inconclusive otherwise."),
    4: ("Δ = mean final accuracy of two-stage − that of another guide, bootstrap over runs (paired by seed when both "
        "have the same seeds): contradicted when Δ's 95% CI lies below 0 against the best non-oracle guide or "
        "against random search; supported when it lies above 0 against both and two-stage's cost per run is below "
        "the oracle's training bill; inconclusive otherwise."),
}


def _bounds(interval: Interval) -> tuple[float, float] | None:
    low, high = (interval[0], interval[1]) if len(interval) == 2 else (None, None)
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return None
    return float(low), float(high)


def side(interval: Interval) -> int:
    """+1 when the interval lies above 0, −1 when below, 0 when it holds 0 or is unknown."""
    bounds = _bounds(interval)
    if bounds is None:
        return 0
    return 1 if bounds[0] > 0 else -1 if bounds[1] < 0 else 0


def interval_label(interval: Interval, claimed: int) -> str:
    """supported when the interval excludes 0 on the ``claimed`` side (+1 or −1), contradicted on
    the other, inconclusive when it holds 0 (or is unknown)."""
    found = side(interval)
    return INCONCLUSIVE if found == 0 else SUPPORTED if found == claimed else CONTRADICTED


def claim1_space_label(delta_ci: Interval) -> Decision:
    label = interval_label(delta_ci, -1)
    return Decision(label, {SUPPORTED: "the NTK metric ranks worse than the proxy beyond the paired interval",
                            CONTRADICTED: "the NTK metric ranks better than the proxy beyond the paired interval",
                            INCONCLUSIVE: "the paired interval of Δτ holds 0 or is unknown"}[label])


def claim1_label(space_labels: Sequence[str]) -> Decision:
    if SUPPORTED in space_labels and CONTRADICTED not in space_labels:
        return Decision(SUPPORTED, "supported in some space and contradicted in none")
    if CONTRADICTED in space_labels and SUPPORTED not in space_labels:
        return Decision(CONTRADICTED, "contradicted in some space and supported in none")
    if not space_labels:
        return Decision(INCONCLUSIVE, "no space has a paired comparison")
    mixed = SUPPORTED in space_labels
    return Decision(INCONCLUSIVE, "the spaces disagree" if mixed else "no space separates the two")


def claim2_label(delta_ci: Interval) -> Decision:
    label = interval_label(delta_ci, 1)
    return Decision(label, {SUPPORTED: "LGA's τ rises beyond the paired interval",
                            CONTRADICTED: "LGA's τ falls beyond the paired interval",
                            INCONCLUSIVE: "the paired interval of LGA's change holds 0 or is unknown"}[label])


def claim3_label(band_sizes: Sequence[int], quantity: str | None, tau_ci: Interval) -> Decision:
    if len(band_sizes) < 2 or min(band_sizes) < MIN_CELLS_PER_BAND:
        return Decision(INCONCLUSIVE, f"fewer than {MIN_CELLS_PER_BAND} tracked cells in a band (or fewer than "
                                      "two bands)")
    if quantity is None:
        return Decision(INCONCLUSIVE, "every tracked quantity is at its ceiling")
    label = interval_label(tau_ci, 1)
    return Decision(label, {SUPPORTED: "better cells move farther, beyond the interval of τ",
                            CONTRADICTED: "better cells move less far, beyond the interval of τ",
                            INCONCLUSIVE: "the interval of τ holds 0 or is unknown"}[label])


def claim4_label(vs_best_other: Interval, vs_random: Interval, cheaper_than_oracle: bool | None) -> Decision:
    if side(vs_best_other) < 0 or side(vs_random) < 0:
        return Decision(CONTRADICTED, "another guide finds better architectures beyond the interval")
    if side(vs_best_other) > 0 and side(vs_random) > 0 and cheaper_than_oracle:
        return Decision(SUPPORTED, "two-stage beats the best other guide and random search beyond the interval, "
                                   "for less than the oracle's bill")
    return Decision(INCONCLUSIVE, "the intervals hold 0 (or the oracle's bill is unknown or not undercut)")
