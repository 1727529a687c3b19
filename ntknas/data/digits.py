"""A tiny dataset that needs no download: scikit-learn's bundled handwritten digits.

1,797 grayscale 8×8 images of the digits 0–9 (pixel values 0..16). They are scaled to uint8
0..255, upsampled **bilinearly** (``align_corners=False``) to ``image_size``, replicated to 3
channels and split into stratified, seeded train/test parts, so the built-in demo can run the
whole pipeline (networks expect 3-channel images) offline in seconds.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from ntknas.data.datasets import DatasetInfo, ImageDataset
from ntknas.errors import DataError, NtknasError

_SOURCE = "bundled with scikit-learn (sklearn.datasets.load_digits); no download needed"
_SKLEARN_MAX = 16.0  # load_digits pixel values are counts 0..16
DIGITS_RESOLUTION = 8
"""The side of scikit-learn's digit images, in pixels."""


def _load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise NtknasError(
            "the digits demo dataset needs scikit-learn, which is not installed: pip install 'ntknas[demo]'"
        ) from None
    bunch = load_digits()
    return np.asarray(bunch.images, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded shuffle puts round(test_fraction · count) images in the test part.

    Both parts are returned as sorted positions, so they keep the original file order.
    """
    rng = np.random.default_rng(seed)
    test_parts = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        take = int(round(test_fraction * members.size))
        test_parts.append(rng.permutation(members)[:take])
    test = np.sort(np.concatenate(test_parts))
    train = np.setdiff1d(np.arange(labels.size), test)
    return train, test


def load_digits_dataset(
    image_size: int = 16, device: str | torch.device = "cpu", test_fraction: float = 0.3, seed: int = 0
) -> tuple[ImageDataset, ImageDataset]:
    """The scikit-learn digits as ``(train, test)`` ImageDatasets of 3×image_size×image_size uint8.

    The info is named ``"digits"`` (10 classes, crop padding 2, batch size 256); its mean/std
    are the per-channel pixel mean and population standard deviation of the train split on the
    0..1 scale (the three channels are identical copies).

    Raises:
        NtknasError: scikit-learn is not installed.
        DataError: ``image_size`` < 1 or ``test_fraction`` outside (0, 1).
    """
    if image_size < 1:
        raise DataError(f"image_size must be at least 1, got {image_size}")
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    pixels, labels = _load_sklearn_digits()

    scaled = torch.from_numpy(pixels * (255.0 / _SKLEARN_MAX)).to(torch.float32)[:, None]  # N×1×8×8
    if scaled.shape[-1] != image_size:
        scaled = F.interpolate(scaled, size=(image_size, image_size), mode="bilinear", align_corners=False)
    gray = scaled.round_().clamp_(0, 255).to(torch.uint8)
    images = gray.expand(-1, 3, -1, -1).contiguous()

    train_idx, test_idx = _stratified_split(labels, test_fraction, seed)
    train_images = images[torch.from_numpy(train_idx)]
    as_unit = train_images.to(torch.float64) / 255
    mean = as_unit.mean(dim=(0, 2, 3))
    std = as_unit.std(dim=(0, 2, 3), correction=0)
    info = DatasetInfo(
        name="digits",
        num_classes=10,
        image_size=image_size,
        channels=3,
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        crop_padding=max(1, min(2, image_size // DIGITS_RESOLUTION)),  # one source pixel, at most 2
        default_batch_size=256,
        source=_SOURCE,
    )
    label_tensor = torch.from_numpy(labels)
    train = ImageDataset(train_images, label_tensor[torch.from_numpy(train_idx)], info, "train")
    test = ImageDataset(images[torch.from_numpy(test_idx)], label_tensor[torch.from_numpy(test_idx)], info, "test")
    return train.to(device), test.to(device)


DIGITS_NAME = "digits"
_REGISTERED_IMAGE_SIZE = 32  # what NB201/NB101 networks and the CLI's built-in batch use


@functools.lru_cache(maxsize=1)
def _registered_splits() -> tuple[ImageDataset, ImageDataset]:
    return load_digits_dataset(image_size=_REGISTERED_IMAGE_SIZE)


def digits_info() -> DatasetInfo:
    """The facts of ``--dataset digits``: 10 classes at 32×32, normalized by its train split."""
    return _registered_splits()[0].info


def read_digits_split(data_dir: object, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The registry's reader of ``digits`` (no files: ``data_dir`` is ignored)."""
    part = _registered_splits()[0 if split == "train" else 1]
    return part.images.numpy(), part.labels.numpy()


__all__ = ["DIGITS_NAME", "DIGITS_RESOLUTION", "digits_info", "load_digits_dataset", "read_digits_split"]
