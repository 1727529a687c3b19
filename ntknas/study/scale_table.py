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
Per item, on this project's machine (2 CPU cores, PyTorch 2.13.0 CPU build), for the cpu scale
run with `--workers 2` (two processes of one thread each: on these cores they train 1.2 times as
many steps a second as one process of two threads, and measure as fast). Measured on 2026-12-07
in a run of the parts before this scale's last resize (200 cells at initialization, 20 after
training; it was stopped in its tracking part, so the search's times are estimated from the
costs it is made of).

| part | per item | items at the cpu scale | time |
|---|---|---|---|
| init: the NTK metrics and every proxy, both BN modes, batch 32 | 13.3 s a cell, two at a time (measured over 9 cells with the machine to itself; 200 cells took 59 min beside other jobs) | 160 cells | 36 min |
| trained: stage 0 measured, 49 SGD steps at batch 128, stage 1 measured | 49 steps: 34–254 s at one thread (mean 150 s, beside a test suite for most of it); a step of the largest cell takes 3.6 s at one thread, 2.1 s at two | 20 cells, two at a time | about 25 min |
| track: one stage of 49 steps and a 10 × 10 kernel | 51–173 s a stage at one thread (4 cells measured with the machine to itself) | 9 cells × 5 stages, two cells at a time | about 50 min |
| search: LGA at initialization, exact kernel, train BN | about 5 s a distinct cell at one thread (the NTK share of an init cell, one BN mode), estimated | about 350 distinct cells | about 15 min |
| search: two-stage's training of the top 2, one 49-step stage each | about 100 s at one thread (the tracking stages' mean), estimated | 10 runs × 2 | about 17 min |
| search: synflow and the oracle's lookups | under 0.5 s | about 350 cells | 2 min |
| total | | | about 2 h 20 min |
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
