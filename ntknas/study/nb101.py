"""The study's NAS-Bench-101 part, ``init-nb101/``: experiment 1 on NB101 (docs/protocol.md, experiment 1).

The study measured its metrics at initialization on the first 1000 cells of its all_graphs.json
order, at batch 64 with seed 1, on networks of 128 stem channels and 3 stacks of 3 cells that it
re-initialized its own way; the ground truth is each cell's maximum test accuracy over the
benchmark's three 108-epoch runs. The part is ``ntknas correlate --space nb101`` with exactly
those settings (the space's protocol defaults), sized by the scale's ``nb101_archs``.

On the built-in digits there is no benchmark: the part measures a seeded sample of valid cells at
reduced width, and each cell's ground truth is its own digits test accuracy after the scale's
brief training, made as the NB201 cells' is (:func:`ntknas.runs.demo.trained_accuracies`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ntknas.data import ImageDataset
from ntknas.errors import InvalidArchError
from ntknas.execution.progress import ProgressHook
from ntknas.files import atomic_write_text, output_folder
from ntknas.spaces.nb101 import MAX_VERTICES, NB101_OPS, NB101Spec
from ntknas.study.scales import StudyScale

PART = "init-nb101"
GROUNDTRUTH_FOLDER = "nb101"
"""The digits ground truth of the NB101 cells, inside the study's ``groundtruth/`` part."""
DIGITS_TABLE = "digits_nb101.csv"
SAMPLE_SEED = 0
STUDY_TARGET = "test_max"
ARCHS_FILE_FIX = "pass --nb101-archs-file with the study's all_graphs.json"


def sample_cells(count: int, seed: int = SAMPLE_SEED) -> list[NB101Spec]:
    """``count`` distinct valid NB101 cells (pruned, by module hash), drawn reproducibly: a random
    upper-triangular adjacency on 3-7 vertices and random interior ops, kept when valid."""
    rng = np.random.default_rng(seed)
    found: dict[str, NB101Spec] = {}
    while len(found) < count:
        vertices = int(rng.integers(3, MAX_VERTICES + 1))
        adjacency = np.triu(rng.integers(0, 2, size=(vertices, vertices)), k=1)
        ops = ["input", *(NB101_OPS[int(i)] for i in rng.integers(0, len(NB101_OPS), size=vertices - 2)), "output"]
        try:
            spec = NB101Spec.from_arrays(adjacency, ops).pruned()
        except InvalidArchError:  # too many edges, or no path from input to output: draw again
            continue
        found.setdefault(spec.hash, spec)
    return list(found.values())


def digits_ground_truth(
    scale: StudyScale, train: ImageDataset, test: ImageDataset, folder: Path, model_seed: int,
    on_progress: ProgressHook | None,
) -> Path:
    """Each sampled cell's digits test accuracy after ``ground_truth_epochs`` of the study's
    recipe, written as an NB101 table (hash, target) in ``folder``; the table's path."""
    from ntknas.runs.demo import trained_accuracies
    from ntknas.settings import MeasureSettings
    from ntknas.train import TrainConfig

    output_folder(folder)
    cells = {spec.hash: spec for spec in sample_cells(scale.nb101_archs)}
    build = MeasureSettings(space="nb101", network_options=scale.nb101_builds).network_builder(10)
    recipe = TrainConfig(batch_size=scale.train_batch_size, seed=model_seed)
    settings = {"space": "nb101", "options": dict(scale.nb101_builds), "image_size": scale.image_size,
                "train_epochs": scale.ground_truth_epochs, "train_batch_size": scale.train_batch_size,
                "model_seed": model_seed}
    accuracy = trained_accuracies(list(cells), lambda key: build(cells[key]), settings, train, test, recipe,
                                  scale.ground_truth_epochs, folder / "accuracies.json", on_progress)
    text = "hash,digits_test\n" + "".join(f"{key},{accuracy[key]!r}\n" for key in cells)
    path = folder / DIGITS_TABLE
    if not path.is_file() or path.read_text() != text:
        atomic_write_text(path, text)
    return path


def digits_entries(scale: StudyScale, table: Path) -> list[Any]:
    """The sampled cells with their digits accuracy, as correlate's entries."""
    from ntknas.groundtruth import load_benchmark
    from ntknas.runs.correlate import ArchEntry

    accuracies = load_benchmark(table, "nb101", "digits_test")
    return [ArchEntry(spec.hash, position, spec, accuracies.accuracy(spec.hash))
            for position, spec in enumerate(sample_cells(scale.nb101_archs))]


def table_columns(path: str | Path) -> set[str] | None:
    """The accuracy columns an NB101 table offers (None: unreadable here; correlate will say why)."""
    where = Path(path)
    suffix = where.suffix.lower()
    try:
        if suffix == ".tfrecord":
            return {STUDY_TARGET}
        if suffix == ".npz":
            with zipfile.ZipFile(where) as archive:
                return {name.removesuffix(".npy") for name in archive.namelist()}
        if suffix == ".csv":
            with where.open(encoding="utf-8") as handle:
                return {name.strip() for name in handle.readline().split(",")}
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError):
        return None
    return None


def input_deviations(scale: StudyScale, benchmark: str | None, archs_file: str | None) -> tuple[str, ...]:
    """How the NB101 inputs a run was given depart from the study's, in words for the page."""
    if scale.nb101_archs == 0 or scale.dataset == "digits" or not benchmark:
        return ()
    lines = []
    columns = table_columns(benchmark)
    if columns is not None and STUDY_TARGET not in columns:
        lines.append(
            f"NAS-Bench-101 ground truth: {Path(benchmark).name} has no {STUDY_TARGET}, so each cell's accuracy "
            "is one training run's (test_acc_seed0 of the compact table), not the maximum of the three 108-epoch "
            "runs (the official nasbench_only108.tfrecord's test_max)"
        )
    if not archs_file:
        lines.append(
            f"NAS-Bench-101 cells: the first {scale.nb101_archs} of {Path(benchmark).name}'s order, not the study's "
            f"all_graphs.json order ({ARCHS_FILE_FIX})"
        )
    return tuple(lines)


__all__ = ["PART", "digits_entries", "digits_ground_truth", "input_deviations", "sample_cells", "table_columns"]
