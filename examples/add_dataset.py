"""A dataset of your own: a folder with ``train.npz`` and ``test.npz`` holding uint8 ``images``
(N×3×H×W) and int ``labels``. Afterwards ``--dataset mynpz --data-dir FOLDER`` works in every
command, and ``ntknas.load_dataset("mynpz", FOLDER)`` in Python."""

from pathlib import Path

import numpy as np

from ntknas.data import DatasetInfo, register_dataset
from ntknas.errors import DataError

MYNPZ = DatasetInfo(
    name="mynpz", num_classes=10, image_size=32, channels=3,
    mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
    crop_padding=4, default_batch_size=64, source="your own train.npz / test.npz",
)


def read_split(folder: Path | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    path = Path(folder or ".") / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"{path} not found: put {split}.npz with 'images' and 'labels' in --data-dir")
    with np.load(path, allow_pickle=False) as data:
        return data["images"].astype(np.uint8), data["labels"].astype(np.int64)


register_dataset(MYNPZ, read_split, aliases=("my-npz",))
