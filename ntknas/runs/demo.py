"""``ntknas demo``: a miniature of experiment 1 on data that ships with scikit-learn.

It needs no download: the handwritten digits bundled with scikit-learn stand in for CIFAR-10,
a seeded sample of NAS-Bench-201 cells is built at reduced width, each cell is trained briefly to
get its own real test accuracy (the benchmark's accuracies belong to full-size CIFAR training,
so they cannot be used here), and the NTK metrics measured at initialization are correlated with
those accuracies through the same pipeline as ``ntknas correlate``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ntknas.data import ImageDataset, normalize
from ntknas.data.digits import DIGITS_RESOLUTION
from ntknas.execution.executors import Executor, ProcessPoolExecutor, SerialExecutor, Task
from ntknas.execution.progress import ProgressHook
from ntknas.execution.runtime import torch_threads
from ntknas.files import atomic_write_text, output_folder
from ntknas.inputs.selection import select_positions
from ntknas.metrics import DEFAULT_METRICS
from ntknas.runs.correlate import ArchEntry, CorrelateConfig, CorrelateOutcome, run_correlate
from ntknas.spaces.nb201 import NB201_NUM_ARCHS, NB201Arch, arch_from_index, build_nb201
from ntknas.train import TrainConfig, Trainer

if TYPE_CHECKING:
    from ntknas.search.driver import SearchOutcome

GROUND_TRUTH_FILE = "demo_groundtruth.json"
DEMO_TARGET = "digits test accuracy after the demo's own training"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """The demo's miniature protocol (every number here is printed with the results)."""

    archs: int = 24
    sample_seed: int = 0
    channels: int = 8
    cells_per_stage: int = 1
    # The digits' own resolution: upsampling them adds no information and costs 4× the compute.
    image_size: int = DIGITS_RESOLUTION
    batch_size: int = 64
    train_epochs: int = 12
    train_batch_size: int = 128
    model_seed: int = 42
    metrics: tuple[str, ...] = DEFAULT_METRICS
    # The miniature search over the measured cells (each value is already stored: no new work).
    search_metric: str = "lga"
    search_candidates: int = 8
    search_runs: int = 5
    search_population: int = 4
    search_tournament: int = 2
    # Torch CPU threads of each process that trains and measures (None: torch's default). Its
    # cells are 8 channels wide on 8×8 digits: one thread is faster than two, as at the study's
    # smoke scale, so the cores are used by training and measuring cells side by side instead.
    threads: int | None = 1
    # Processes that train and measure cells side by side (None: one per CPU core, at most
    # MAX_DEMO_WORKERS; 1: this process alone).
    workers: int | None = None


MAX_DEMO_WORKERS = 4
"""More processes than this spend more time starting (each imports torch) than the demo's
24 small cells give them to do."""


def demo_workers(config: DemoConfig) -> int:
    """The processes the demo runs its cells in: ``config.workers``, or one per core (at most
    :data:`MAX_DEMO_WORKERS`, at most one per cell)."""
    if config.workers is not None:
        return config.workers
    return max(1, min(os.cpu_count() or 1, MAX_DEMO_WORKERS, config.archs))


def evaluate_accuracy(net: torch.nn.Module, dataset: ImageDataset, batch_size: int = 512) -> float:
    """Top-1 accuracy (percent) of ``net`` on a whole split, in eval mode."""
    was_training = net.training
    net.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            images = normalize(dataset.images[start : start + batch_size], dataset.info)
            labels = dataset.labels[start : start + batch_size]
            correct += int((net(images).argmax(dim=1) == labels).sum())
    net.train(was_training)
    return 100.0 * correct / len(dataset)


def demo_ground_truth(
    config: DemoConfig, indices: list[int], train_set: ImageDataset, test_set: ImageDataset, out: Path,
    on_progress: ProgressHook | None = None, executor: Executor | None = None,
) -> dict[int, float]:
    """Each cell's digits test accuracy after brief training; cached in the run folder."""
    build = functools.partial(_build_demo_cell, channels=config.channels, cells_per_stage=config.cells_per_stage)
    known = trained_accuracies(
        [str(i) for i in indices], build, _config_key(config), train_set, test_set,
        TrainConfig(batch_size=config.train_batch_size, seed=config.model_seed), config.train_epochs,
        out / GROUND_TRUTH_FILE, on_progress, executor,
    )
    return {i: known[str(i)] for i in indices}


def _build_demo_cell(key: str, channels: int, cells_per_stage: int) -> torch.nn.Module:
    return build_nb201(arch_from_index(int(key)), 10, channels=channels, cells_per_stage=cells_per_stage)


@dataclass(frozen=True)
class _TrainingContext:
    """What every cell's training shares (a :class:`~ntknas.execution.executors.WorkContext`)."""

    build: Callable[[str], torch.nn.Module]
    train_set: ImageDataset
    test_set: ImageDataset
    recipe: TrainConfig
    epochs: int

    def portable(self) -> _TrainingContext:
        return self

    def local(self) -> _TrainingContext:
        return self


def _train_and_test(context: _TrainingContext, key: str, done: frozenset[str]) -> Iterator[float]:
    torch.manual_seed(context.recipe.seed)
    net = context.build(key)
    Trainer(net, context.train_set, context.recipe, "cpu").train_epochs(context.epochs)
    yield evaluate_accuracy(net, context.test_set)


def trained_accuracies(
    keys: Sequence[str], build: Callable[[str], torch.nn.Module], settings: Mapping[str, object],
    train_set: ImageDataset, test_set: ImageDataset, recipe: TrainConfig, epochs: int, cache: Path,
    on_progress: ProgressHook | None = None, executor: Executor | None = None,
) -> dict[str, float]:
    """Each architecture's test accuracy after ``epochs`` of ``recipe`` from the network ``build``
    makes (seeded by the recipe's seed): the ground truth of runs on data no benchmark covers.
    Cached in ``cache`` one architecture at a time, under ``settings`` (what makes the values).
    ``executor`` trains them (default: this process; another process needs a ``build`` that
    pickles, e.g. a module-level function or a ``functools.partial`` of one)."""
    known: dict[str, float] = {}
    if cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("config") == dict(settings):
            known = {str(k): float(v) for k, v in stored["accuracy"].items()}
    todo = [k for k in keys if k not in known]
    if todo:
        log.info("training %d cells for %d epochs each to get their own test accuracy…", len(todo), epochs)
        if on_progress is not None:
            on_progress(0, len(todo), "")
        context = _TrainingContext(build, train_set, test_set, recipe, epochs)
        runner = executor or SerialExecutor()
        for number, (key, results) in enumerate(runner.map(_train_and_test, context, [Task(k) for k in todo]), start=1):
            known[key] = next(iter(results))
            # In the order of ``keys`` (cells finish in any order side by side): the file reads the same.
            ordered = {k: known[k] for k in [*keys, *known] if k in known}
            atomic_write_text(cache, json.dumps({"config": dict(settings), "accuracy": ordered}, indent=1))
            if on_progress is not None:
                on_progress(number, len(todo), key)
    return {k: known[k] for k in keys}


def _config_key(config: DemoConfig) -> dict[str, object]:
    return {
        "channels": config.channels, "cells_per_stage": config.cells_per_stage,
        "image_size": config.image_size, "train_epochs": config.train_epochs,
        "train_batch_size": config.train_batch_size, "model_seed": config.model_seed,
    }


def run_demo(
    out: str | Path = "runs/demo", config: DemoConfig = DemoConfig(), on_progress: ProgressHook | None = None,
    on_training: ProgressHook | None = None,
) -> CorrelateOutcome:
    """Train the sampled cells for their ground truth (``on_training`` follows it), then measure
    and correlate their metrics (``on_progress`` follows that), in :func:`demo_workers`
    processes of ``config.threads`` threads each."""
    with torch_threads(config.threads):
        workers = demo_workers(config)
        executor = SerialExecutor() if workers == 1 else ProcessPoolExecutor(workers, threads=config.threads)
        with executor:
            return _run_demo(output_folder(out), config, on_progress, on_training, executor)


def _run_demo(
    out: Path, config: DemoConfig, on_progress: ProgressHook | None, on_training: ProgressHook | None,
    executor: Executor,
) -> CorrelateOutcome:
    from ntknas.data.digits import load_digits_dataset

    started = time.perf_counter()
    train_set, test_set = load_digits_dataset(image_size=config.image_size)
    indices = select_positions(NB201_NUM_ARCHS, None, config.archs, config.sample_seed)
    accuracy = demo_ground_truth(config, indices, train_set, test_set, out, on_training, executor)
    entries = [
        ArchEntry(arch_from_index(i).to_string(), i, arch_from_index(i), accuracy[i]) for i in indices
    ]
    correlate_config = CorrelateConfig(
        space="nb201", archs=None, batch_size=config.batch_size, bn_modes=("train", "eval"),
        metrics=config.metrics, out=str(out), model_seed=config.model_seed, target=DEMO_TARGET,
        network_options={"channels": config.channels, "cells_per_stage": config.cells_per_stage},
    )
    log.info("measuring the NTK metrics of %d cells at initialization…", len(entries))
    outcome = run_correlate(
        correlate_config, entries=entries, train_set=train_set, test_set=test_set,
        on_progress=on_progress, command_line="ntknas demo --out " + str(out), executor=executor,
    )
    outcome.seconds = time.perf_counter() - started
    return outcome


SEARCH_FOLDER = "search"


def run_demo_search(out: str | Path = "runs/demo", config: DemoConfig = DemoConfig()) -> SearchOutcome:
    """The whole NAS loop in miniature: random search and regularized evolution among the demo's
    already-measured cells, guided by ``config.search_metric`` (train-mode BN, at initialization),
    reporting each choice's digits accuracy. Every proxy value comes from the demo's store, so
    this trains and measures nothing; the search folder is ``OUT/search``."""
    from ntknas.data.digits import load_digits_dataset
    from ntknas.search.driver import MappingReported, SearchConfig, SubsetProposals, run_search
    from ntknas.spaces import get_space

    out = Path(out)
    indices = select_positions(NB201_NUM_ARCHS, None, config.archs, config.sample_seed)
    stored = json.loads((out / GROUND_TRUTH_FILE).read_text())["accuracy"]
    space = get_space("nb201")
    archs = [arch_from_index(i) for i in indices]
    accuracy = {space.key(arch_from_index(i)): float(stored[str(i)]) for i in indices}
    train_set, test_set = load_digits_dataset(image_size=config.image_size)
    search_config = SearchConfig(
        space="nb201", dataset=train_set.info.name, strategies=("random", "rea"), proxies=(config.search_metric,),
        candidates=min(config.search_candidates, len(archs)), runs=config.search_runs,
        population=config.search_population, tournament=config.search_tournament, bn_modes=("train",),
        batch_size=config.batch_size, model_seed=config.model_seed,
        network_options={"channels": config.channels, "cells_per_stage": config.cells_per_stage},
        cache=(str(out),), out=str(out / SEARCH_FOLDER),
    )
    proposals = SubsetProposals(space, archs, _op_distance)
    reported = MappingReported(accuracy, "digits test accuracy", "the demo's own training")
    return run_search(
        search_config, proposals=proposals, reported=reported, train_set=train_set, test_set=test_set,
        command_line="ntknas demo --out " + str(out),
    )


def _op_distance(a: NB201Arch, b: NB201Arch) -> int:
    """Edges whose op differs: how many mutations apart two cells are."""
    return sum(x != y for x, y in zip(a.ops, b.ops))


def demo_search_text(outcome: SearchOutcome, config: DemoConfig) -> str:
    """What the demo prints about its miniature search."""
    spec = json.loads((outcome.run_dir / "summary.json").read_text())["spec"]
    lines = [
        f"Miniature search among the {config.archs} measured cells, guided by {config.search_metric} "
        f"(train BN, at initialization), {config.search_runs} runs of "
        f"{min(config.search_candidates, config.archs)} cells each (no new measurement):",
    ]
    for record in outcome.records:
        first = record["final"][0]
        lines.append(
            f"  {record['strategy']:>6}: mean digits accuracy {record['accuracy_mean']:.1f}% over runs; run 0 "
            f"found {first['arch']} ({first['accuracy']:.1f}%)"
        )
    lines.append(f"  best of the {config.archs} cells: {spec['best_in_space_arch']} ({spec['best_in_space']:.1f}%)")
    return "\n".join(lines)


def _resolution(image_size: int) -> str:
    if image_size == DIGITS_RESOLUTION:
        return f"{image_size}×{image_size}, their own resolution"
    return f"{DIGITS_RESOLUTION}×{DIGITS_RESOLUTION}, resized bilinearly to {image_size}×{image_size}"


def demo_preamble(config: DemoConfig) -> str:
    return (
        "ntknas demo — a MINIATURE of the study's experiment 1, not the benchmark.\n"
        f"  data: scikit-learn's 1,797 handwritten digits ({_resolution(config.image_size)}), no download needed\n"
        f"  architectures: {config.archs} NAS-Bench-201 cells sampled with seed {config.sample_seed}, built at "
        f"{config.channels} channels and {config.cells_per_stage} cell per stage (the benchmark uses 16 and 5), "
        f"{demo_workers(config)} at a time\n"
        f"  ground truth: each cell's own digits test accuracy after {config.train_epochs} epochs of SGD "
        f"(lr 0.025, momentum 0.9, wd 3e-4, batch {config.train_batch_size}), not NAS-Bench-201's CIFAR accuracy\n"
        f"  metrics: measured at initialization on one augmented batch of {config.batch_size} training digits, "
        "BatchNorm in train and eval mode\n"
        f"  then a miniature search: random search and REA among these cells guided by {config.search_metric} "
        "(the values just measured), reporting the digits accuracy of what they find\n"
        "For the real experiments on CIFAR-10 and NAS-Bench-201 see `ntknas correlate` and `ntknas search` in the manual (docs/).\n"
    )
