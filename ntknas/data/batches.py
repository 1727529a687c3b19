"""Batches drawn on the dataset's own device: shuffling, augmentation and normalization.

Everything here works on whole batches at once (no per-image Python loop, no DataLoader), so the
pipeline runs where the data lives, including the GPU. Randomness comes from an explicit
``torch.Generator``; the functions that take a ``seed`` build a CPU generator from it and move
the drawn indices/offsets to the data's device, so a seed picks the same images and the same
crops on every device.

The augmentation is the study's training transform (see docs/protocol.md, "Experiment 1"): random crop with zero padding
(4 for 32×32 images, 2 for 16×16) and a horizontal flip with probability 0.5, then
normalization with the dataset's mean/std, as torchvision's
``RandomCrop(size, padding) + RandomHorizontalFlip() + ToTensor() + Normalize(mean, std)``.
The random streams differ from torchvision's (one bulk draw instead of one draw per image),
so batches are statistically equivalent to the reference loader's, not bit-identical.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ntknas.data.datasets import DatasetInfo, ImageDataset
from ntknas.errors import DataError


def normalize(images_uint8: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """``(x / 255 − mean) / std`` per channel, as float32, for uint8 images …×C×H×W."""
    if images_uint8.dtype != torch.uint8:
        raise DataError(f"normalize expects uint8 images, got {images_uint8.dtype}: pass the dataset's raw images")
    if images_uint8.dim() < 3 or images_uint8.shape[-3] != len(info.mean):
        raise DataError(
            f"normalize expects images …×{len(info.mean)}×H×W for {info.name}, got shape {tuple(images_uint8.shape)}"
        )
    mean = torch.tensor(info.mean, dtype=torch.float32, device=images_uint8.device)[:, None, None]
    std = torch.tensor(info.std, dtype=torch.float32, device=images_uint8.device)[:, None, None]
    # Same operation order as ToTensor (divide by 255) followed by Normalize.
    return images_uint8.to(torch.float32).div_(255).sub_(mean).div_(std)


def augment(images_uint8: torch.Tensor, generator: torch.Generator, padding: int) -> torch.Tensor:
    """Random crop with zero padding ``padding`` and random horizontal flip (p = 0.5), per image.

    For each image, a row offset and a column offset are drawn uniformly from ``0..2·padding``
    (in that order, as one ``randint`` of shape N×2), then one flip coin per image (one ``rand``
    of shape N, flipped where < 0.5). The output image n is
    ``pad(x_n)[:, r_n:r_n+H, c_n:c_n+W]``, mirrored left-right when its coin says so — the crop
    happens first, like ``RandomCrop`` followed by ``RandomHorizontalFlip``.

    The whole batch is padded once and gathered with per-image row/column indices, so memory is
    the size of the padded batch plus the output.
    """
    if images_uint8.dim() != 4:
        raise DataError(f"augment expects a batch N×C×H×W, got shape {tuple(images_uint8.shape)}")
    if padding < 0:
        raise DataError(f"crop padding must be >= 0, got {padding}")
    n, c, h, w = images_uint8.shape
    device = images_uint8.device
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator, device=generator.device).to(device)
    flips = (torch.rand(n, generator=generator, device=generator.device) < 0.5).to(device)
    padded = F.pad(images_uint8, (padding, padding, padding, padding))
    rows = offsets[:, :1] + torch.arange(h, device=device)  # N×H, indices into padded rows
    column = torch.arange(w, device=device)
    cols = offsets[:, 1:] + torch.where(flips[:, None], w - 1 - column, column)  # N×W
    # expand() gives stride-0 views, so the index tensors cost N×H and N×W, not N×C×H×W.
    picked_rows = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * padding))
    return picked_rows.gather(3, cols[:, None, None, :].expand(n, c, h, w))


# The public ``augment: bool`` flags of draw_batch/epoch_batches shadow the function's name.
_crop_flip = augment


def _check_count(dataset: ImageDataset, count: int, what: str) -> None:
    if count < 1:
        raise DataError(f"{what} must be at least 1, got {count}")
    if count > len(dataset):
        raise DataError(
            f"{what} {count} is larger than the {dataset.info.name} {dataset.split} split "
            f"({len(dataset)} images): use a smaller {what} or the full dataset"
        )


def _seeded_order(dataset: ImageDataset, generator: torch.Generator) -> torch.Tensor:
    """A permutation of the split drawn from ``generator``, on the dataset's device."""
    return torch.randperm(len(dataset), generator=generator, device=generator.device).to(dataset.device)


def draw_batch(
    dataset: ImageDataset, batch_size: int, seed: int = 42, augment: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The study's measurement batch: the first batch of the shuffled, augmented training loader.

    A CPU generator seeded with ``seed`` draws a permutation of the split; the first
    ``batch_size`` images are taken, augmented with the same generator (when ``augment``) and
    normalized. The same seed gives the same batch on every call and device.

    Returns:
        ``(images float32 B×C×H×W, labels int64 B)`` on the dataset's device.
    """
    _check_count(dataset, batch_size, "batch_size")
    generator = torch.Generator().manual_seed(seed)
    index = _seeded_order(dataset, generator)[:batch_size]
    images = dataset.images[index]
    if augment:
        images = _crop_flip(images, generator, dataset.info.crop_padding)
    return normalize(images, dataset.info), dataset.labels[index]


def first_images(dataset: ImageDataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of the split in file order, normalized, not augmented (see docs/protocol.md, "Experiment 2")."""
    _check_count(dataset, n, "n")
    return normalize(dataset.images[:n], dataset.info), dataset.labels[:n]


def label_sorted_batch(
    dataset: ImageDataset, n: int, seed: int = 42, batch_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of a label-sorted training batch, for kernel tracking (see docs/protocol.md, "Experiment 3").

    Exactly: draw the seeded shuffled batch as :func:`draw_batch` does (same permutation for the
    same seed, so these are images of ``draw_batch(dataset, batch_size, seed)``) but without
    augmentation; sort that batch by label with a stable sort (ties keep their shuffled order);
    return the first ``n`` images, normalized, with their labels. ``batch_size`` defaults to
    the dataset's default measurement batch, or the whole split if it is smaller.
    """
    if batch_size is None:
        batch_size = min(dataset.info.default_batch_size, len(dataset))
    _check_count(dataset, batch_size, "batch_size")
    if not 1 <= n <= batch_size:
        raise DataError(f"n must be between 1 and the batch size {batch_size}, got {n}")
    generator = torch.Generator().manual_seed(seed)
    index = _seeded_order(dataset, generator)[:batch_size]
    by_label = torch.sort(dataset.labels[index], stable=True).indices
    chosen = index[by_label[:n]]
    return normalize(dataset.images[chosen], dataset.info), dataset.labels[chosen]


def epoch_batches(
    dataset: ImageDataset,
    batch_size: int,
    generator: torch.Generator,
    augment: bool = True,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One shuffled, augmented, normalized pass over the split, for training.

    The permutation is drawn from ``generator`` when iteration starts and each batch's crops and
    flips when that batch is produced, so interleaving other draws from the same generator
    changes the stream. The last batch is smaller unless ``drop_last``.
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    if drop_last and batch_size > len(dataset):
        raise DataError(
            f"batch_size {batch_size} with drop_last leaves no batch from the {dataset.info.name} "
            f"{dataset.split} split of {len(dataset)} images: lower batch_size or keep the last batch"
        )
    return _epoch(dataset, batch_size, generator, augment, drop_last)


def _epoch(
    dataset: ImageDataset, batch_size: int, generator: torch.Generator, do_augment: bool, drop_last: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    order = _seeded_order(dataset, generator)
    end = len(dataset) - len(dataset) % batch_size if drop_last else len(dataset)
    for start in range(0, end, batch_size):
        index = order[start : start + batch_size]
        images = dataset.images[index]
        if do_augment:
            images = _crop_flip(images, generator, dataset.info.crop_padding)
        yield normalize(images, dataset.info), dataset.labels[index]


__all__ = ["augment", "draw_batch", "epoch_batches", "first_images", "label_sorted_batch", "normalize"]
