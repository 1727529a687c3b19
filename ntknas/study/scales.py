"""The study's scales: each a documented table of settings, from a CI-sized smoke run to the
study's own protocol.

A scale fixes everything ``ntknas study`` runs: how many architectures each part measures, the
measurement and training batches, how much training each stage gets, which architectures are
tracked and for how long, and how large the searches are. Every setting that differs from the
study's protocol (docs/protocol.md) is named in the scale's ``deviations``, and the results page prints
the table, so no number on it can be read as the study's when it was not measured that way.

Brief training is counted as the study counts it: one stage ("epoch") is the study's number of
SGD steps at the study's learning rate. The study's epoch is one pass over CIFAR-10's 50,000
training images at batch 1024, ⌈50,000 / 1024⌉ = 49 steps at lr 0.025; a scale that trains on a
subset names its ``steps_per_stage`` and trains on exactly ``steps_per_stage × train_batch_size``
images, so one pass over the subset is that many full batches.

Scales of one's own are TOML files (:mod:`ntknas.study.scale_files`) read into the same object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ntknas.errors import DataError

STUDY_STEPS_PER_EPOCH = 49
"""The study's epoch in SGD steps: CIFAR-10's 50,000 training images at batch 1024."""

TRAIN_SPLIT_IMAGES = {"cifar10": 50_000, "cifar100": 50_000, "digits": 1_258}
"""Training-split sizes of the datasets a scale can name (digits: the built-in split's training
part; a test keeps it equal to the loader's)."""

SEARCH_POOLS = ("space", "measured")
SEARCH_KERNELS = ("auto", "exact", "matrix-free")
SIZE_FIELDS = frozenset({"init_archs", "trained_archs", "nb101_archs", "search_runs", "train_epochs"})
"""Settings that only extend what a part measures (more cells of the same order, more seeds, more
stages): a study folder resumes under a changed value; every other setting is its identity."""
PRESENTATION_FIELDS = frozenset({"name", "title", "deviations", "estimate", "threads"})


class ScaleValueError(DataError):
    """A scale whose settings are out of range or contradict each other; ``problem`` names the
    field and the fix, without the scale's name (a scale file adds its own)."""

    def __init__(self, scale: str, problem: str) -> None:
        super().__init__(f"scale {scale}: {problem}")
        self.problem = problem


@dataclass(frozen=True, kw_only=True)
class StudyScale:
    """One scale of ``ntknas study`` (see :data:`SCALES`); refused on construction when a value
    is out of range or the settings contradict each other (:class:`ScaleValueError`)."""

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
    steps_per_stage: int | None = None
    """SGD steps per training stage, on a fixed seeded subset of exactly ``steps_per_stage ×
    train_batch_size`` training images (:attr:`train_images`); None: one pass over the whole split."""
    train_batch_size: int
    track_archs_per_band: int
    track_bands: tuple[tuple[str, float, float], ...]
    """(name, low quantile, high quantile) of the target over the candidate pool."""
    track_epochs: int
    """Stages of training (each ``steps_per_stage`` SGD steps) the tracked cells get."""
    search_runs: int
    search_candidates: int
    search_population: int
    search_tournament: int
    search_top_k: int
    second_epochs: int = 1
    lga_init_kernel: str = "auto"
    """The kernel of the LGA-at-initialization search guide: ``auto`` (the faster of the two at the
    scale's batch and device, by ``--kernel auto``'s measured rule: exact at small batches, where the
    init part's stored values serve as its cache), or ``exact`` / ``matrix-free`` by name."""
    probes: int = 20
    """Random probes of the matrix-free LGA estimate that guides the LGA-at-initialization search."""
    network_options: tuple[tuple[str, Any], ...] = ()
    """Network build options beyond the space's defaults (the smoke scale's miniature cells)."""
    nb101_archs: int = 0
    """NAS-Bench-101 cells measured at initialization (the ``init-nb101`` part; 0: skipped): the
    first N of ``--nb101-archs-file``'s order or of the table's, for digits a seeded sample."""
    nb101_batch_size: int = 64
    nb101_network_options: tuple[tuple[str, Any], ...] = ()
    """NB101 build options beyond the study's (stem 128, 3 stacks of 3 cells)."""
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

    def __post_init__(self) -> None:
        problem = scale_problem(self)
        if problem is not None:
            raise ScaleValueError(self.name, problem)

    @property
    def builds(self) -> dict[str, Any]:
        return dict(self.network_options)

    @property
    def nb101_builds(self) -> dict[str, Any]:
        return dict(self.nb101_network_options)

    @property
    def train_images(self) -> int | None:
        """Training images every part sees (a fixed seeded subset), None: the whole split."""
        return None if self.steps_per_stage is None else self.steps_per_stage * self.train_batch_size

    @property
    def stage_steps(self) -> int | None:
        """SGD steps per training stage (None where the split's size is not known here)."""
        if self.steps_per_stage is not None:
            return self.steps_per_stage
        images = TRAIN_SPLIT_IMAGES.get(self.dataset)
        return None if images is None else math.ceil(images / self.train_batch_size)

    def identity(self) -> dict[str, Any]:
        """The settings that decide what a part measures: a study folder continues only under the
        same ones (counts of cells, seeds and stages may grow: see :data:`SIZE_FIELDS`)."""
        from dataclasses import fields

        return {item.name: _plain(getattr(self, item.name)) for item in fields(self)
                if item.name not in SIZE_FIELDS | PRESENTATION_FIELDS}


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


def _at_least(minimum: int, **values: Any) -> str | None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            return f"{name} = {value!r}: use an integer of at least {minimum}"
    return None


def scale_problem(scale: StudyScale) -> str | None:
    """What is wrong with a scale's settings, in one line naming the field, or None."""
    checks = (
        _at_least(1, init_archs=scale.init_archs, batch_size=scale.batch_size, trained_archs=scale.trained_archs,
                  train_batch_size=scale.train_batch_size, track_archs_per_band=scale.track_archs_per_band,
                  track_epochs=scale.track_epochs, search_runs=scale.search_runs, search_population=scale.search_population,
                  search_tournament=scale.search_tournament, search_top_k=scale.search_top_k,
                  second_epochs=scale.second_epochs, probes=scale.probes, nb101_batch_size=scale.nb101_batch_size),
        _at_least(2, search_candidates=scale.search_candidates),
        _at_least(0, nb101_archs=scale.nb101_archs),
        _stage_problem(scale),
        _count_problem(scale),
        _band_problem(scale.track_bands),
        _digits_problem(scale),
        _choice_problem("search_pool", scale.search_pool, SEARCH_POOLS),
        _choice_problem("lga_init_kernel", scale.lga_init_kernel, SEARCH_KERNELS),
        None if scale.threads is None else _at_least(1, threads=scale.threads),
    )
    return next((problem for problem in checks if problem is not None), None)


def _stage_problem(scale: StudyScale) -> str | None:
    epochs = scale.train_epochs
    if (not isinstance(epochs, tuple) or any(isinstance(e, bool) or not isinstance(e, int) for e in epochs)
            or list(epochs) != sorted(set(epochs)) or 0 not in epochs or len(epochs) < 2):
        return (f"train_epochs = {list(epochs) if isinstance(epochs, tuple) else epochs!r}: list increasing stages "
                "from 0 with at least one trained stage, e.g. [0, 1, 3]")
    if scale.steps_per_stage is None:
        return None
    problem = _at_least(1, steps_per_stage=scale.steps_per_stage)
    if problem is not None:
        return problem
    if scale.dataset == "digits":
        return "steps_per_stage: the digits train on their whole split; leave steps_per_stage out"
    available = TRAIN_SPLIT_IMAGES.get(scale.dataset)
    assert scale.train_images is not None
    if available is not None and scale.train_images > available:
        return (f"steps_per_stage = {scale.steps_per_stage} at train_batch_size = {scale.train_batch_size} needs "
                f"{scale.train_images:,} training images, {scale.dataset} has {available:,}: lower either")
    return None


def _count_problem(scale: StudyScale) -> str | None:
    if scale.trained_archs > scale.init_archs:
        return (f"trained_archs = {scale.trained_archs} exceeds init_archs = {scale.init_archs}: the trained cells "
                "are the first of the init cells")
    if scale.search_population > scale.search_candidates:
        return f"search_population = {scale.search_population} exceeds search_candidates = {scale.search_candidates}"
    if scale.search_tournament > scale.search_population:
        return f"search_tournament = {scale.search_tournament} exceeds search_population = {scale.search_population}"
    if scale.search_top_k > scale.search_candidates:
        return f"search_top_k = {scale.search_top_k} exceeds search_candidates = {scale.search_candidates}"
    if scale.search_pool == "measured" and scale.search_candidates > scale.init_archs:
        return (f"search_candidates = {scale.search_candidates} exceeds the {scale.init_archs} measured cells "
                "the search_pool 'measured' draws from")
    return None


def _band_problem(bands: Any) -> str | None:
    shape = "a list of [name, low, high] with 0 <= low < high <= 1, e.g. [[\"low\", 0.1, 0.3], [\"high\", 0.95, 1.0]]"
    if not isinstance(bands, tuple) or not bands:
        return f"track_bands: give {shape}"
    for band in bands:
        if (not isinstance(band, tuple) or len(band) != 3 or not isinstance(band[0], str)
                or not all(isinstance(q, (int, float)) and not isinstance(q, bool) for q in band[1:])
                or not 0 <= band[1] < band[2] <= 1):
            return f"track_bands entry {list(band) if isinstance(band, tuple) else band!r}: give {shape}"
    if len({band[0] for band in bands}) != len(bands):
        return "track_bands: each band needs its own name"
    return None


def _digits_problem(scale: StudyScale) -> str | None:
    if scale.dataset != "digits":
        if scale.search_pool == "measured":
            return "search_pool = 'measured' is the digits scales' (they know no accuracy outside the measured cells)"
        return None
    if scale.search_pool != "measured":
        return "search_pool: the digits know only the measured cells' accuracies; use 'measured'"
    problem = _at_least(1, image_size=scale.image_size, ground_truth_epochs=scale.ground_truth_epochs,
                        oracle_epochs=scale.oracle_epochs)
    if problem is None and scale.oracle_epochs >= scale.ground_truth_epochs:
        return (f"oracle_epochs = {scale.oracle_epochs}: the oracle is a shorter training than the ground truth's "
                f"{scale.ground_truth_epochs} epochs")
    return problem


def _choice_problem(name: str, value: Any, choices: tuple[str, ...]) -> str | None:
    return None if value in choices else f"{name} = {value!r}: use one of {', '.join(choices)}"


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
    train_batch_size=128,
    track_archs_per_band=1,
    track_bands=(("low", 0.0, 1 / 3), ("mid", 1 / 3, 2 / 3), ("high", 2 / 3, 1.0)),
    track_epochs=2,
    search_runs=2,
    search_candidates=6,
    search_population=3,
    search_tournament=2,
    search_top_k=2,
    network_options=(("channels", 4), ("cells_per_stage", 1)),
    nb101_archs=6,
    nb101_batch_size=16,
    nb101_network_options=(("stem_channels", 4), ("cells_per_stack", 1)),
    image_size=8,
    ground_truth_epochs=3,
    oracle_epochs=1,
    search_pool="measured",
    threads=1,
    deviations=(
        "data: scikit-learn's 1,797 handwritten digits at 8×8, not CIFAR-10",
        "ground truth: each cell's own digits test accuracy after 3 epochs (batch 128), not NAS-Bench-201's "
        "or NAS-Bench-101's",
        "oracle proxy: digits test accuracy after 1 epoch (stands for NAS-Bench-201's 12-epoch column)",
        "networks: NB201 cells at 4 channels and 1 cell per stage (the benchmark's: 16 and 5)",
        "architectures: 8 sampled NB201 cells (seed 0), not the first 1000",
        "measurement batch 16 (the study's: 256); training batch 128 (the study's: 1024)",
        "a training stage is one pass over the 1,258 training digits: 10 SGD steps (the study's: 49)",
        "trained part: epochs 0 and 1 only (no 3)",
        "tracking: 3 cells (one per accuracy tertile) for 2 epochs (the study's: 100 epochs)",
        "search: 2 runs of 6 candidates among the 8 measured cells (the study's: 10 runs of 100 in the space)",
        "NAS-Bench-101: 6 seeded random cells at stem 4 and 1 cell per stack, batch 16 (the study's: the first "
        "1000 of its all_graphs.json, stem 128, 3 cells per stack, batch 64)",
    ),
    estimate="measured: see the test suite's timing (≤ 3 minutes on 2 CPU cores)",
)

CPU = StudyScale(
    name="cpu",
    title="cpu: CIFAR-10 sized to finish within 3 hours on 2 CPU cores",
    dataset="cifar10",
    init_archs=160,
    batch_size=32,
    trained_archs=20,
    train_epochs=(0, 1),
    steps_per_stage=STUDY_STEPS_PER_EPOCH,
    train_batch_size=128,
    track_archs_per_band=3,
    track_bands=TRACK_BANDS,
    track_epochs=5,
    search_runs=10,
    search_candidates=20,
    search_population=5,
    search_tournament=2,
    search_top_k=2,
    lga_init_kernel="auto",
    probes=8,
    nb101_archs=0,
    deviations=(
        "architectures: the first 160 NB201 cells at initialization (the study's: 1000), the first 20 of them "
        "after training (the study's: 1000)",
        "measurement batch 32 (the study's: 256)",
        "training: each stage is the study's 49 SGD steps at lr 0.025, at batch 128 on a fixed seeded subset of "
        "6,272 of CIFAR-10's 50,000 training images (the study's: all 50,000 at batch 1024); every part uses the "
        "subset, the init batch is drawn from it; the stored values keep the key 'cifar10', so do not pass these "
        "folders to --cache of runs on the full split",
        "trained part: epochs 0 and 1 (no 3: a third stage would not fit)",
        "tracking: 9 cells (3 per accuracy band) for 5 stages of 49 steps (the study's: 100 epochs)",
        "search: 10 runs of 20 candidates (the study's: 100), REA population 5 and tournament 2 (NB201's: 10 and "
        "3); two-stage keeps the top 2 (the study scale: 10); LGA at initialization with --kernel auto, which "
        "takes the exact kernel at batch 32 (faster than matrix-free there, by its measured rule)",
        "NAS-Bench-101: not measured (nb101_archs 0): one NB101 cell at the study's settings (stem 128, 3 stacks "
        "of 3 cells, batch 64, both BN modes, every metric) had not finished after 11.5 CPU minutes (measured "
        "2026-12-08), so the hour and a half the other parts leave of the 3 hours holds fewer than 15 cells, too "
        "few for a verdict; a scale file with nb101_archs = N and --nb101-benchmark adds them",
        "images: CIFAR-10 as written by make_cifar10.py went through one JPEG round trip",
    ),
    estimate=(
        "1 h 32 min on 2 CPU cores with --workers 2, measured on 2026-12-07/08 (the run of the published "
        "CIFAR-10 page): see docs/study_scales.md, 'How long each part takes'"
    ),
)

STUDY = StudyScale(
    name="study",
    title="study: the study's protocol (a GPU or a Ray cluster)",
    dataset="cifar10",
    init_archs=1000,
    batch_size=256,
    trained_archs=1000,
    train_epochs=(0, 1, 3),
    train_batch_size=1024,
    track_archs_per_band=3,
    track_bands=TRACK_BANDS,
    track_epochs=100,
    search_runs=10,
    search_candidates=100,
    search_population=10,
    search_tournament=3,
    search_top_k=10,
    probes=20,
    nb101_archs=1000,
    deviations=(
        "trained part adds epoch 3 beside the study's 1",
        "tracking: 3 cells per band over 3 accuracy bands (the study: one band of good cells)",
    ),
    estimate="not run by this project: needs a GPU (or a Ray cluster) for a day or more",
)

SCALES: dict[str, StudyScale] = {scale.name: scale for scale in (SMOKE, CPU, STUDY)}


def is_scale_file(text: str) -> bool:
    """Whether ``--scale`` names a TOML scale file rather than a built-in scale."""
    return text.lower().endswith(".toml")


def get_scale(name: str) -> StudyScale:
    """A built-in scale by name, or the scale a ``.toml`` scale file describes."""
    if is_scale_file(name):
        from ntknas.study.scale_files import load_scale_file

        return load_scale_file(name)
    try:
        return SCALES[name]
    except KeyError:
        from ntknas.errors import UnknownNameError

        raise UnknownNameError(
            f"unknown --scale {name!r}: use one of {', '.join(SCALES)}, or a scale file PATH.toml "
            "(docs/commands/study.md#scale-files)"
        ) from None


__all__ = ["CPU", "SCALES", "SMOKE", "STUDY", "STUDY_STEPS_PER_EPOCH", "TRACK_BANDS", "TRAIN_SPLIT_IMAGES",
           "ScaleValueError", "StudyScale", "get_scale", "is_scale_file", "scale_problem"]
