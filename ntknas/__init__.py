"""ntknas: Neural Tangent Kernel metrics for neural architecture search.

The public API is imported lazily so that ``import ntknas`` stays cheap and a command-line call
only loads what it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "build_network": "ntknas.spaces",
    "nb101_hash": "ntknas.spaces.nb101",
    "empirical_ntk": "ntknas.kernel",
    "full_ntk": "ntknas.kernel",
    "score": "ntknas.experiments.score",
    "evaluate_metrics": "ntknas.experiments.score",
    "available_metrics": "ntknas.metrics",
    "NtknasError": "ntknas.errors",
}

__all__ = sorted(_PUBLIC) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from ntknas.errors import NtknasError
    from ntknas.experiments.score import evaluate_metrics, score
    from ntknas.kernel import empirical_ntk, full_ntk
    from ntknas.metrics import available_metrics
    from ntknas.spaces import build_network
    from ntknas.spaces.nb101 import nb101_hash


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'ntknas' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
