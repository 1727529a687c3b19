"""The study's scales: each a documented table of settings, from a CI-sized smoke run to the
study's own protocol.

A scale fixes everything ``ntknas study`` runs: how many architectures each part measures, the
measurement and training batches, how much training each stage gets, which architectures are
tracked and for how long, and how large the searches are. Every setting that differs from the
study's protocol (docs/protocol.md) is named in the scale's ``deviations``, and the results page prints
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
    title="cpu: CIFAR-10 sized to finish within 3 hours on 2 CPU cores",
    dataset="cifar10",
    init_archs=300,
    batch_size=32,
    trained_archs=100,
    train_epochs=(0, 1),
    train_images=2500,
    train_batch_size=128,
    track_archs_per_band=3,
    track_bands=TRACK_BANDS,
    track_epochs=3,
    search_runs=2,
    search_candidates=20,
    search_population=5,
    search_tournament=2,
    search_top_k=3,
    probes=8,
    deviations=(
        "architectures: the first 300 NB201 cells at initialization (the study's: 1000), the first 100 of them "
        "after training (the study's: 1000)",
        "measurement batch 32 (the study's: 256)",
        "training split: a fixed seeded subset of 2,500 of CIFAR-10's 50,000 training images, used by every "
        "part: the init batch is drawn from it and every training epoch is one pass over it, at batch 128 "
        "(20 SGD steps; the study's: all 50,000 at batch 1024, 49 steps); the stored values keep the key "
        "'cifar10', so do not pass these folders to --cache of runs on the full split",
        "trained part: epochs 0 and 1 (no 3)",
        "tracking: 9 cells (3 per accuracy band) for 3 epochs of the 2,500-image subset (the study's: 100 epochs)",
        "search: 2 runs of 20 candidates (the study's: 10 runs of 100), REA population 5 and tournament 2 "
        "(NB201's: 10 and 3); two-stage keeps the top 3 (README example: 10)",
        "LGA at initialization (matrix-free) with 8 probes (default 20)",
        "images: CIFAR-10 as written by make_cifar10.py went through one JPEG round trip",
    ),
    estimate=(
        "measured end to end: 6,439 s (1 h 47 min) on 2 CPU cores (this project's machine, PyTorch 2.13.0 CPU build, "
        "2026-12-05; the page is docs/results/cifar10-cpu/results.md, the sizing is in docs/study_scales.md)"
    ),
)

CPU_ESTIMATE = """
Measured on this project's machine (2 CPU cores, PyTorch 2.13.0 CPU build) on 2026-12-05, in the
run whose page is docs/results/cifar10-cpu/results.md. The figures are the wall time per part that
the run recorded, divided by the part's cells:

| part | per cell | cells | wall time |
|---|---|---|---|
| init: 12 metrics, both BN modes, batch 32 | 8.2 s | 300 | 2,456 s (41 min) |
| trained: epoch-0 and epoch-1 stages (one epoch of 2,500 images), 6 metrics, both BN modes | 24.7 s | 100 | 2,473 s (41 min) |
| track: 3 epochs, a 10×10 kernel each | about 40 s | 9 | 459 s (8 min; 11 cells: 2 tracked before the scale grew to 3 per band) |
| search: 7 searches × 2 runs × 20 candidates (LGA matrix-free ≈ 12 s a cell, the rest from the stores) | — | — | 1,051 s (18 min) |
| total | | | 6,439 s (1 h 47 min) |

Before this run the scale was sized from per-item CPU times measured on a machine shared with
other jobs. That estimate, about 2 h 40 min for 100 cells at init and 25 after training, was 3.4
times the measured 47 min. The cells were then raised to 300 and 100, and tracking to 3 cells per
band. The scale is not yet the largest that fits 3 hours:

* Epoch 3 of the trained part would fit. It costs two more training epochs (12.9 s each, the
  trained part's mean) and one more measurement stage (5.8 s), which comes to 100 × 31.6 s ≈ 53 min
  and about 2 h 40 min in all. It was left out only because the session that ran this scale had no
  time left for it.
* More init cells cost about 8 s each. The rest of the 3 hours is kept as headroom, because a
  cell's time varies about threefold with its conv count, and a busy machine is slower.
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
    parts += ["", "## How the cpu scale was sized", "", CPU_ESTIMATE.strip()]
    return "\n".join(parts) + "\n"


def scale_record(scale: StudyScale) -> dict[str, Any]:
    """What the results page needs of a scale (the report reads files, not this module)."""
    return {
        "name": scale.name, "title": scale.title, "rows": [list(row) for row in scale_rows(scale)],
        "deviations": list(scale.deviations), "estimate": scale.estimate,
    }


__all__ = ["CPU", "CPU_ESTIMATE", "SCALES", "SMOKE", "STUDY", "StudyScale", "get_scale", "scale_markdown",
           "scale_record", "scale_rows", "scales_document"]
