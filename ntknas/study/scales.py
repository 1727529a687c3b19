"""The study's scales: each a documented table of settings, from a CI-sized smoke run to the
study's own protocol.

A scale fixes everything ``ntknas study`` runs: how many architectures each part measures, the
measurement and training batches, how much training each stage gets, which architectures are
tracked and for how long, and how large the searches are. Every setting that differs from the
study's protocol (SPEC §3) is named in the scale's ``deviations``, and the results page prints
the table, so no number on it can be read as the study's when it was not measured that way.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ntknas.errors import UnknownNameError


@dataclass(frozen=True)
class StudyScale:
    """One scale of ``ntknas study`` (see :data:`SCALES`)."""

    name: str
    title: str
    dataset: str
    """``digits`` (built in: each cell's own accuracy after a brief training is the ground truth)
    or a dataset read from ``--data-dir`` with a ``--benchmark`` table."""
    init_archs: int
    """Architectures measured at initialization (the first N of the official order; for digits a
    seeded sample of N, as the demo draws)."""
    batch_size: int
    """Measurement batch (init: augmented training images; trained: first test images)."""
    trained_archs: int
    """The first N of the init architectures, measured after training too."""
    train_epochs: tuple[int, ...]
    """Training stages of the trained part (0 included: the same batch before training)."""
    train_images: int | None
    """Training images per stage (a fixed seeded subset of the training split); None: all."""
    train_batch_size: int
    track_archs_per_band: int
    track_bands: tuple[tuple[str, float, float], ...]
    """(name, low quantile, high quantile) of the target over the candidate pool."""
    track_epochs: int
    search_runs: int
    search_candidates: int
    search_population: int
    search_tournament: int
    search_top_k: int
    second_epochs: int = 1
    probes: int = 20
    """Random probes of the matrix-free LGA estimate that guides the LGA-at-initialization search."""
    network_options: tuple[tuple[str, Any], ...] = ()
    """Network build options beyond the space's defaults (the smoke scale's miniature cells)."""
    image_size: int | None = None
    """Digits only: the side the 8×8 images are resized to."""
    ground_truth_epochs: int = 0
    """Digits only: the epochs of training that give each cell its accuracy (the target)."""
    oracle_epochs: int = 0
    """Digits only: the shorter training whose accuracy is the oracle proxy (as NB201's 12-epoch column)."""
    search_pool: str = "space"
    """``space``: the whole search space; ``measured``: the init part's architectures only."""
    deviations: tuple[str, ...] = ()
    """Every way this scale departs from the study's protocol, in words (printed on the page)."""
    estimate: str = ""
    """How long it takes, and on what (measured, or estimated and how)."""
    threads: int | None = None
    """Torch intra-op threads while the study runs (None: torch's default). The smoke scale's
    miniature cells run fastest on one: with two, torch's threads spin-wait on every tiny
    operation, 10-30x slower on a busy machine (measured on 2 cores: 0.1 s vs 2-3 s of CPU for
    one cell's NTK metrics)."""

    @property
    def builds(self) -> dict[str, Any]:
        return dict(self.network_options)


TRACK_BANDS = (("low", 0.10, 0.30), ("mid", 0.40, 0.60), ("high", 0.95, 1.00))
"""Accuracy bands for tracking, as quantiles of the target: the study drew from a band of good
architectures; low and mid bands give the contrast the paper's claim is about."""

SMOKE = StudyScale(
    name="smoke",
    title="smoke: the whole study in miniature on the built-in digits (no download)",
    dataset="digits",
    init_archs=8,
    batch_size=16,
    trained_archs=8,
    train_epochs=(0, 1),
    train_images=None,
    train_batch_size=128,
    track_archs_per_band=1,
    track_bands=(("low", 0.0, 1 / 3), ("mid", 1 / 3, 2 / 3), ("high", 2 / 3, 1.0)),
    track_epochs=2,
    search_runs=2,
    search_candidates=6,
    search_population=3,
    search_tournament=2,
    search_top_k=2,
    probes=4,
    network_options=(("channels", 4), ("cells_per_stage", 1)),
    image_size=8,
    ground_truth_epochs=3,
    oracle_epochs=1,
    search_pool="measured",
    threads=1,
    deviations=(
        "data: scikit-learn's 1,797 handwritten digits at 8×8, not CIFAR-10",
        "ground truth: each cell's own digits test accuracy after 3 epochs (batch 128), not NAS-Bench-201's",
        "oracle proxy: digits test accuracy after 1 epoch (stands for NAS-Bench-201's 12-epoch column)",
        "networks: NB201 cells at 4 channels and 1 cell per stage (the benchmark's: 16 and 5)",
        "architectures: 8 sampled cells (seed 0), not the first 1000",
        "measurement batch 16 (the study's: 256); training batch 128 (the study's: 1024)",
        "trained part: epochs 0 and 1 only (no 3)",
        "tracking: 3 cells (one per accuracy tertile) for 2 epochs (the study's: 100 epochs)",
        "search: 2 runs of 6 candidates among the 8 measured cells (the study's: 10 runs of 100 in the space)",
        "LGA at initialization (matrix-free) with 4 probes (default 20)",
    ),
    estimate="measured: see the test suite's timing (≤ 3 minutes on 2 CPU cores)",
)

CPU = StudyScale(
    name="cpu",
    title="cpu: CIFAR-10 sized to finish in about 3 hours on 2 CPU cores",
    dataset="cifar10",
    init_archs=100,
    batch_size=32,
    trained_archs=25,
    train_epochs=(0, 1),
    train_images=2500,
    train_batch_size=128,
    track_archs_per_band=1,
    track_bands=TRACK_BANDS,
    track_epochs=3,
    search_runs=2,
    search_candidates=20,
    search_population=5,
    search_tournament=2,
    search_top_k=3,
    probes=8,
    deviations=(
        "architectures: the first 100 NB201 cells at initialization (the study's: 1000), the first 25 of them "
        "after training (the study's: 1000)",
        "measurement batch 32 (the study's: 256)",
        "training split: a fixed seeded subset of 2,500 of CIFAR-10's 50,000 training images, used by every "
        "part: the init batch is drawn from it and every training epoch is one pass over it, at batch 128 "
        "(20 SGD steps; the study's: all 50,000 at batch 1024, 49 steps); the stored values keep the key "
        "'cifar10', so do not pass these folders to --cache of runs on the full split",
        "trained part: epochs 0 and 1 (no 3)",
        "tracking: 3 cells (one per accuracy band) for 3 epochs of the 2,500-image subset (the study's: 100 epochs)",
        "search: 2 runs of 20 candidates (the study's: 10 runs of 100), REA population 5 and tournament 2 "
        "(NB201's: 10 and 3); two-stage keeps the top 3 (README example: 10)",
        "LGA at initialization (matrix-free) with 8 probes (default 20)",
        "images: CIFAR-10 as written by make_cifar10.py went through one JPEG round trip",
    ),
    estimate=(
        "estimated from measured per-item times, not run end to end here: about 2 h 40 min on 2 CPU cores "
        "(single-thread CPU seconds, an upper bound for 2 cores; see docs/study_scales.md)"
    ),
)

CPU_ESTIMATE = """
How the cpu scale's time was estimated. Measured on this project's machine (2 CPU cores shared
with other jobs, so per-item times are process CPU seconds with one torch thread: an upper bound
for the wall time on 2 idle cores), full-size NB201 cells (16 channels, 5 cells per stage) on
CIFAR-shaped inputs, cells 0, 1 and 2 (0, 3 and 2 conv3x3 edges; the first 100 cells average 1.2):

| item | measured | used per mean cell |
|---|---|---|
| 5 NTK metrics, one BN mode, batch 64 | 25.5 s (cell 0), 29.1 s (cell 1), 68.7 s (cell 2) | — |
| 5 NTK metrics, one BN mode, batch 32 | 17.2 s (cell 2) | 17 s |
| 7 zero-cost and size metrics, one BN mode, batch 32 / 64 | 3.0 s / 1.7–4.6 s | 3 s |
| synflow alone | 0.1 s | 0.2 s |
| LGA matrix-free, 8 probes, batch 32 | 26.9 s (cell 2); 20 probes at batch 64: 34–66 s | 20 s |
| one epoch of 2,500 images at batch 128–256 | 56.6 s (cell 2); 5,000 images: 65 s (cell 0), 143 s (cell 2) | 50 s |

Parts (mean cell):

* init: 100 cells × 2 BN modes × (17 s + 3 s) ≈ 67 min
* trained: 25 cells × (one epoch 50 s + 2 stages × 2 BN modes × 17 s) ≈ 49 min
* track: 3 cells × 3 epochs × (50 s + one 10×10 kernel ≈ 3 s) ≈ 8 min
* search: random and REA, 2 runs × 20 candidates, ≈ 80 distinct cells: synflow ≈ 0.3 min, LGA
  matrix-free ≈ 80 × 20 s ≈ 27 min; two-stage: 2 runs × top 3 × (50 s + 17 s) ≈ 7 min (its
  synflow values come from the baselines' folder); oracle lookups free
* total ≈ 2 h 38 min, plus data loading and plots (a minute). A second training epoch (epoch 3) or
  the study's batch of 256 does not fit: the NTK's cost grows with the batch, and an epoch of the
  whole training split takes about 20 times the subset's.
"""

STUDY = StudyScale(
    name="study",
    title="study: the study's protocol (a GPU or a Ray cluster)",
    dataset="cifar10",
    init_archs=1000,
    batch_size=256,
    trained_archs=1000,
    train_epochs=(0, 1, 3),
    train_images=None,
    train_batch_size=1024,
    track_archs_per_band=2,
    track_bands=TRACK_BANDS,
    track_epochs=100,
    search_runs=10,
    search_candidates=100,
    search_population=10,
    search_tournament=3,
    search_top_k=10,
    probes=20,
    deviations=(
        "NAS-Bench-101's 1000 cells are not run by ntknas study (run ntknas correlate --space nb101 with the "
        "study's all_graphs.json and the official tfrecord)",
        "trained part adds epoch 3 beside the study's 1",
        "tracking: 2 cells per band over 3 accuracy bands (the study: one band of good cells)",
    ),
    estimate="not run by this project: needs a GPU (or a Ray cluster) for a day or more",
)

SCALES: dict[str, StudyScale] = {scale.name: scale for scale in (SMOKE, CPU, STUDY)}


def get_scale(name: str) -> StudyScale:
    try:
        return SCALES[name]
    except KeyError:
        raise UnknownNameError(f"unknown --scale {name!r}: use one of {', '.join(SCALES)}") from None


SETTING_LABELS = {
    "dataset": "dataset",
    "init_archs": "architectures at initialization",
    "batch_size": "measurement batch",
    "trained_archs": "architectures after training",
    "train_epochs": "training stages (epochs)",
    "train_images": "training images per epoch",
    "train_batch_size": "training batch",
    "track_archs_per_band": "tracked architectures per band",
    "track_bands": "accuracy bands (quantiles of the target)",
    "track_epochs": "tracking epochs",
    "search_runs": "search runs (seeds 0..runs-1)",
    "search_candidates": "candidates per run",
    "search_population": "REA population",
    "search_tournament": "REA tournament",
    "search_top_k": "two-stage top-k",
    "second_epochs": "two-stage training epochs",
    "probes": "matrix-free probes (LGA at init)",
    "network_options": "network options",
    "image_size": "image size",
    "ground_truth_epochs": "ground-truth training epochs",
    "oracle_epochs": "oracle training epochs",
    "search_pool": "search pool",
    "threads": "torch threads",
}


def _shown(name: str, value: Any) -> str:
    if value is None:
        return {"train_images": "all", "threads": "torch's default"}.get(name, "—")
    if name == "track_bands":
        return ", ".join(f"{band} {low:.0%}–{high:.0%}" for band, low, high in value)
    if name == "network_options":
        return ", ".join(f"{k} {v}" for k, v in value) or "the space's"
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def scale_rows(scale: StudyScale) -> list[tuple[str, str]]:
    """The scale's settings as (setting, value) rows, in field order (digits-only ones left out
    for other datasets)."""
    digits_only = {"image_size", "ground_truth_epochs", "oracle_epochs"}
    rows = []
    for item in fields(scale):
        if item.name not in SETTING_LABELS or (scale.dataset != "digits" and item.name in digits_only):
            continue
        rows.append((SETTING_LABELS[item.name], _shown(item.name, getattr(scale, item.name))))
    return rows


def scale_markdown(scale: StudyScale) -> str:
    """The scale as a Markdown table, then its deviations from the study's protocol and its time."""
    lines = [f"**{scale.title}**", "", "| setting | value |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in scale_rows(scale)]
    lines += ["", "Deviations from the study's protocol:", ""]
    lines += [f"- {line}" for line in scale.deviations] or ["- none"]
    lines += ["", f"Time: {scale.estimate}"]
    return "\n".join(lines)


def scales_document() -> str:
    """docs/study_scales.md: every scale's table (tests keep the committed file equal to this)."""
    parts = [
        "# `ntknas study` scales",
        "",
        "Generated by `python -c \"from ntknas.study.scales import scales_document; print(scales_document())\"` "
        "from `ntknas/study/scales.py`; the results page of a study prints its own scale's table.",
    ]
    for scale in SCALES.values():
        parts += ["", f"## {scale.name}", "", scale_markdown(scale)]
    parts += ["", "## How the cpu scale's time was estimated", "", CPU_ESTIMATE.strip()]
    return "\n".join(parts) + "\n"


def scale_record(scale: StudyScale) -> dict[str, Any]:
    """What the results page needs of a scale (the report reads files, not this module)."""
    return {
        "name": scale.name, "title": scale.title, "rows": [list(row) for row in scale_rows(scale)],
        "deviations": list(scale.deviations), "estimate": scale.estimate,
    }


__all__ = ["CPU", "CPU_ESTIMATE", "SCALES", "SMOKE", "STUDY", "StudyScale", "get_scale", "scale_markdown",
           "scale_record", "scale_rows", "scales_document"]
