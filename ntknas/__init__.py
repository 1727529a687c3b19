"""ntknas: Neural Tangent Kernel metrics for neural architecture search.

The public API is imported lazily so that ``import ntknas`` stays cheap and a command-line call
only loads what it uses; ``dir(ntknas)`` lists it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ntknas.version import __version__

_PUBLIC = {
    # spaces
    "SearchSpace": "ntknas.spaces",
    "SpaceProtocol": "ntknas.spaces",
    "available_spaces": "ntknas.spaces",
    "build_network": "ntknas.spaces",
    "get_space": "ntknas.spaces",
    "register_space": "ntknas.spaces",
    "nb101_hash": "ntknas.spaces.nb101",
    # data
    "DatasetInfo": "ntknas.data",
    "ImageDataset": "ntknas.data",
    "dataset_names": "ntknas.data",
    "draw_batch": "ntknas.data",
    "load_dataset": "ntknas.data",
    "register_dataset": "ntknas.data",
    "study_batch": "ntknas.scoring",
    # ground truth
    "Benchmark": "ntknas.groundtruth",
    "load_benchmark": "ntknas.groundtruth",
    # kernel
    "NTKResult": "ntknas.kernel",
    "compute_ntk": "ntknas.kernel",
    "empirical_ntk": "ntknas.kernel",
    "full_ntk": "ntknas.kernel",
    # metrics
    "DEFAULT_METRICS": "ntknas.metrics",
    "Metric": "ntknas.metrics",
    "MetricContext": "ntknas.metrics",
    "MetricUnavailable": "ntknas.metrics",
    "available_metrics": "ntknas.metrics",
    "get_metric": "ntknas.metrics",
    "register_metric": "ntknas.metrics",
    "MetricRun": "ntknas.scoring",
    "MetricValue": "ntknas.scoring",
    "evaluate": "ntknas.scoring",
    "evaluate_metrics": "ntknas.scoring",
    "score": "ntknas.scoring",
    "score_run": "ntknas.scoring",
    # analysis
    "rank_correlation": "ntknas.analysis",
    # experiments
    "ArchEntry": "ntknas.runs.correlate",
    "CorrelateConfig": "ntknas.runs.correlate",
    "CorrelateOutcome": "ntknas.runs.correlate",
    "run_correlate": "ntknas.runs.correlate",
    "TrackConfig": "ntknas.runs.track",
    "TrackOutcome": "ntknas.runs.track",
    "run_track": "ntknas.runs.track",
    "SearchConfig": "ntknas.search.driver",
    "SearchOutcome": "ntknas.search.driver",
    "run_search": "ntknas.search.driver",
    "available_strategies": "ntknas.search.strategies",
    "get_strategy": "ntknas.search.strategies",
    "register_strategy": "ntknas.search.strategies",
    "Executor": "ntknas.execution.executors",
    "SerialExecutor": "ntknas.execution.executors",
    "ProcessPoolExecutor": "ntknas.execution.executors",
    "Task": "ntknas.execution.executors",
    "make_executor": "ntknas.execution.executors",
    "RayExecutor": "ntknas.execution.ray_executor",
    "RayOptions": "ntknas.execution.ray_executor",
    # errors
    "NtknasError": "ntknas.errors",
}

__all__ = sorted(_PUBLIC) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from ntknas.analysis import rank_correlation as rank_correlation
    from ntknas.data import DatasetInfo as DatasetInfo
    from ntknas.data import ImageDataset as ImageDataset
    from ntknas.data import dataset_names as dataset_names
    from ntknas.data import draw_batch as draw_batch
    from ntknas.data import load_dataset as load_dataset
    from ntknas.data import register_dataset as register_dataset
    from ntknas.errors import NtknasError as NtknasError
    from ntknas.execution.executors import Executor as Executor
    from ntknas.execution.executors import ProcessPoolExecutor as ProcessPoolExecutor
    from ntknas.execution.executors import SerialExecutor as SerialExecutor
    from ntknas.execution.executors import Task as Task
    from ntknas.execution.executors import make_executor as make_executor
    from ntknas.execution.ray_executor import RayExecutor as RayExecutor
    from ntknas.execution.ray_executor import RayOptions as RayOptions
    from ntknas.groundtruth import Benchmark as Benchmark
    from ntknas.groundtruth import load_benchmark as load_benchmark
    from ntknas.kernel import NTKResult as NTKResult
    from ntknas.kernel import compute_ntk as compute_ntk
    from ntknas.kernel import empirical_ntk as empirical_ntk
    from ntknas.kernel import full_ntk as full_ntk
    from ntknas.metrics import DEFAULT_METRICS as DEFAULT_METRICS
    from ntknas.metrics import Metric as Metric
    from ntknas.metrics import MetricContext as MetricContext
    from ntknas.metrics import MetricUnavailable as MetricUnavailable
    from ntknas.metrics import available_metrics as available_metrics
    from ntknas.metrics import get_metric as get_metric
    from ntknas.metrics import register_metric as register_metric
    from ntknas.runs.correlate import ArchEntry as ArchEntry
    from ntknas.runs.correlate import CorrelateConfig as CorrelateConfig
    from ntknas.runs.correlate import CorrelateOutcome as CorrelateOutcome
    from ntknas.runs.correlate import run_correlate as run_correlate
    from ntknas.runs.track import TrackConfig as TrackConfig
    from ntknas.runs.track import TrackOutcome as TrackOutcome
    from ntknas.runs.track import run_track as run_track
    from ntknas.scoring import MetricRun as MetricRun
    from ntknas.scoring import MetricValue as MetricValue
    from ntknas.scoring import evaluate as evaluate
    from ntknas.scoring import evaluate_metrics as evaluate_metrics
    from ntknas.scoring import score as score
    from ntknas.scoring import score_run as score_run
    from ntknas.scoring import study_batch as study_batch
    from ntknas.search.driver import SearchConfig as SearchConfig
    from ntknas.search.driver import SearchOutcome as SearchOutcome
    from ntknas.search.driver import run_search as run_search
    from ntknas.search.strategies import available_strategies as available_strategies
    from ntknas.search.strategies import get_strategy as get_strategy
    from ntknas.search.strategies import register_strategy as register_strategy
    from ntknas.spaces import SearchSpace as SearchSpace
    from ntknas.spaces import SpaceProtocol as SpaceProtocol
    from ntknas.spaces import available_spaces as available_spaces
    from ntknas.spaces import build_network as build_network
    from ntknas.spaces import get_space as get_space
    from ntknas.spaces import register_space as register_space
    from ntknas.spaces.nb101 import nb101_hash as nb101_hash


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'ntknas' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return list(__all__)
