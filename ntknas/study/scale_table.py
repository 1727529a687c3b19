"""A scale as the people who read it see it: its settings table, its deviations and its time, on
the results page (:func:`scale_record`) and in docs/study_scales.md (:func:`scales_document`)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ntknas.study.scales import SCALES, TRAIN_SPLIT_IMAGES, StudyScale
from ntknas.train import TrainConfig

SETTING_LABELS = {
    "dataset": "dataset",
    "init_archs": "architectures at initialization",
    "batch_size": "measurement batch",
    "trained_archs": "architectures after training",
    "train_epochs": "training stages (epochs)",
    "steps_per_stage": "SGD steps per stage",
    "train_batch_size": "training batch",
    "track_archs_per_band": "tracked architectures per band",
    "track_bands": "accuracy bands (quantiles of the target)",
    "track_epochs": "tracking stages (epochs)",
    "search_runs": "search runs (seeds 0..runs-1)",
    "search_candidates": "candidates per run",
    "search_population": "REA population",
    "search_tournament": "REA tournament",
    "search_top_k": "two-stage top-k",
    "second_epochs": "two-stage training stages",
    "lga_init_kernel": "kernel of the LGA-at-initialization guide",
    "probes": "matrix-free probes (LGA at init)",
    "network_options": "network options",
    "nb101_archs": "NAS-Bench-101 cells at initialization",
    "nb101_batch_size": "NAS-Bench-101 measurement batch",
    "nb101_network_options": "NAS-Bench-101 network options",
    "image_size": "image size",
    "ground_truth_epochs": "ground-truth training epochs",
    "oracle_epochs": "oracle training epochs",
    "search_pool": "search pool",
    "threads": "torch threads",
}
DIGITS_ONLY = frozenset({"image_size", "ground_truth_epochs", "oracle_epochs"})
NB101_ONLY = frozenset({"nb101_batch_size", "nb101_network_options"})

PART_TIMES = """
Per item, on this project's machine (2 CPU cores, PyTorch 2.13.0 CPU build), for the cpu scale.
The base figures are wall times the 2026-12-05 cpu run recorded (2 threads, the machine to
itself); the splits (proxies' share of an init cell, an NB101 cell against an NB201 one) are
ratios of CPU seconds of single items timed on 2026-12-07 at one thread while other jobs loaded
the machine about eightfold, so wall times measured then would have been meaningless and only
ratios are used; expect the same or a little less on an idle machine.

| part | per item | items at the cpu scale | time |
|---|---|---|---|
| init: 5 NTK metrics and the proxies, both BN modes, batch 32 | 8.2 s with the 2021 proxies (29 % of it); ≤ 10.6 s with a proxy set twice as costly | 250 cells | ≤ 44 min |
| init-nb101: the same on NB101 at batch 64, stem 128, 3 × 3 cells | at least 3.3 × an NB201 init cell (over 126 CPU s against 38 at one thread; the timing was stopped there): 35 s or more | 0 cells (a scale file can add them) | — |
| trained: one 49-step stage at batch 128 (0.645 s a step) | 31.6 s | 60 cells × 1 stage | 32 min |
| trained: one measurement stage, 6 metrics, both BN modes | 5.8 s | 60 cells × 2 stages | 12 min |
| track: one 49-step stage and a 10 × 10 kernel | about 32 s | 9 cells × 5 stages | 24 min |
| search: LGA at initialization, exact kernel, train BN | about 2.9 s (the NTK share of an init cell, one BN mode) | about 350 distinct cells | 17 min |
| search: two-stage's training of the top 3, one 49-step stage each | 31.6 s + one LGA | 10 runs × 3 | 18 min |
| search: synflow and the oracle's lookups | under 0.5 s | about 350 cells | 2 min |
| total | | | about 2 h 30 min |
"""


def _shown(name: str, value: Any) -> str:
    if value is None:
        return {"threads": "torch's default"}.get(name, "—")
    if name == "track_bands":
        return ", ".join(f"{band} {low:.0%}–{high:.0%}" for band, low, high in value)
    if name in ("network_options", "nb101_network_options"):
        return ", ".join(f"{k} {v}" for k, v in value) or "the space's"
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _training_rows(scale: StudyScale) -> list[tuple[str, str]]:
    """How much training one stage is: SGD steps, images, learning rate."""
    recipe = TrainConfig()
    steps = scale.stage_steps
    if scale.train_images is not None:
        images = (f"{scale.train_images:,}: a fixed seeded subset, {scale.steps_per_stage} full batches of "
                  f"{scale.train_batch_size}")
    else:
        split = TRAIN_SPLIT_IMAGES.get(scale.dataset)
        images = f"all {split:,} of the training split" if split else "the whole training split"
    return [
        (SETTING_LABELS["steps_per_stage"], "one pass over the split" if steps is None else str(steps)),
        ("training images per stage", images),
        ("learning rate", f"{recipe.lr} (constant; SGD momentum {recipe.momentum}, weight decay {recipe.weight_decay})"),
    ]


def scale_rows(scale: StudyScale) -> list[tuple[str, str]]:
    """The scale's settings as (setting, value) rows, in field order (digits-only ones left out
    for other datasets, NB101 build settings where the NB101 part is skipped)."""
    rows: list[tuple[str, str]] = []
    for item in fields(scale):
        if item.name == "steps_per_stage":
            rows += _training_rows(scale)
            continue
        skipped = (scale.dataset != "digits" and item.name in DIGITS_ONLY) or (
            scale.nb101_archs == 0 and item.name in NB101_ONLY)
        if item.name in SETTING_LABELS and not skipped:
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


def scale_record(scale: StudyScale, extra_deviations: tuple[str, ...] = ()) -> dict[str, Any]:
    """What the results page needs of a scale (the report reads files, not this module);
    ``extra_deviations`` are the ones the run's inputs add (e.g. a compact NB101 table)."""
    return {
        "name": scale.name, "title": scale.title, "rows": [list(row) for row in scale_rows(scale)],
        "deviations": [*scale.deviations, *extra_deviations], "estimate": scale.estimate,
    }


def scales_document() -> str:
    """docs/study_scales.md: every scale's table and the measured time of each cpu part (tests
    keep the committed file equal to this)."""
    parts = [
        "# `ntknas study` scales",
        "",
        "Generated by `python -c \"from ntknas.study.scale_table import scales_document; print(scales_document(), "
        "end='')\"` from `ntknas/study/scales.py`; the results page of a study prints its own scale's table. "
        "A scale file (`--scale PATH.toml`, see [study](commands/study.md#scale-files)) starts from one of these.",
    ]
    for scale in SCALES.values():
        parts += ["", f"## {scale.name}", "", scale_markdown(scale)]
    parts += ["", "## How long each part takes", "", PART_TIMES.strip()]
    return "\n".join(parts) + "\n"
