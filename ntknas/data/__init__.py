"""Datasets in their official on-disk formats, held on the device, with seeded on-device batches."""

from ntknas.data.batches import (
    augment,
    draw_batch,
    epoch_batches,
    first_images,
    label_sorted_batch,
    normalize,
)
from ntknas.data.datasets import (
    DatasetInfo,
    ImageDataset,
    dataset_info,
    dataset_names,
    load_dataset,
    load_for_run,
    needs_files,
    register_dataset,
)

__all__ = [
    "DatasetInfo",
    "ImageDataset",
    "augment",
    "dataset_info",
    "dataset_names",
    "draw_batch",
    "epoch_batches",
    "first_images",
    "label_sorted_batch",
    "load_dataset",
    "load_for_run",
    "needs_files",
    "normalize",
    "register_dataset",
]
