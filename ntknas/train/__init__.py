"""Brief training with the study's recipe (see docs/protocol.md, "Experiment 2"): a resumable, seeded trainer."""

from ntknas.train.trainer import (
    EpochStats,
    TrainConfig,
    TrainConfigError,
    Trainer,
    TrainingDivergedError,
    parameter_norm,
)

__all__ = [
    "EpochStats",
    "TrainConfig",
    "TrainConfigError",
    "Trainer",
    "TrainingDivergedError",
    "parameter_norm",
]
