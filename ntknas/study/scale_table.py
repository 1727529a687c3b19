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
Measured on this project's machine (2 CPU cores, PyTorch 2.13.0 CPU build) in the run that made
the published CIFAR-10 page: the cpu scale with `--workers 2` (two processes of one thread each),
one uninterrupted invocation with the machine to itself, 2026-12-07/08. "Per item" is the seconds
one worker spent on one item (the stores' own timings); two workers run side by side.

| part | per item | items | wall time |
|---|---|---|---|
| init: the NTK metrics and every proxy, both BN modes, batch 32 | 13.6 s a cell (1.8–25.0) | 160 cells | 1,097 s (18 min) |
| trained: stage 0 measured; 49 SGD steps at batch 128, then stage 1 measured | stage 0: 10.0 s; stage 1: 67.9 s (29.5–119.3) | 20 cells | 799 s (13 min) |
| track: a stage of 49 steps and the kernels | 64.2 s a stage of training (36.1–79.8); the 10 × 10 kernels 0.1 s | 9 cells × 5 stages | 1,555 s (26 min) |
| search: the oracle's and synflow's guides (lookups, synflow) | 0.1 s a cell | 346 distinct cells | 15 s |
| search: LGA at initialization (exact kernel, train BN) | 6.0 s a cell | 344 distinct cells | 17 min 44 s |
| search: two-stage (synflow, then the top 2 trained one 49-step stage and scored by LGA) | 93.5 s a trained cell (66.4–117.3) | 10 runs × 2 | 16 min |
| total | | | 5,505 s (1 h 32 min) |
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
