"""Results store: SQLite in the run folder, one atomic transaction per work item."""

from ntknas.store.sqlite import (
    STORE_FILE,
    ItemRecord,
    Measurement,
    ResultStore,
    TrainingRecord,
)

__all__ = ["STORE_FILE", "ItemRecord", "Measurement", "ResultStore", "TrainingRecord"]
