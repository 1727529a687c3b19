"""Readers for the standard on-disk image datasets (see docs/protocol.md, "Datasets").

CIFAR-10 and CIFAR-100 are read from their official "python version" folders, ImageNet16-120
from the NAS-Bench-201 authors' ImageNet16 pickles. Every pickle goes through
:func:`ntknas.data.safe_pickle.safe_load`, and the whole split is decoded into one uint8 tensor
of shape N×3×H×W with a single reshape (the files store channel-first rows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ntknas.data.safe_pickle import safe_load
from ntknas.errors import DataError, UnknownNameError, option

SPLITS = ("train", "test")

_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR_STD = (0.2023, 0.1994, 0.2010)
_CIFAR_SOURCE = 'https://www.cs.toronto.edu/~kriz/cifar.html ("CIFAR-{n} python version")'
_IMAGENET16_SOURCE = (
    "the NAS-Bench-201 authors' ImageNet16 download (folder ImageNet16 with train_data_batch_1..10 "
    "and val_data; see the NAS-Bench-201 / AutoDL-Projects README)"
)


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: shape, classes, the study's normalization and batch size.

    ``mean``/``std`` are per channel on the 0..1 scale (images are divided by 255 first).
    ``crop_padding`` is the zero padding of the random-crop augmentation; ``default_batch_size``
    is the study's measurement batch (see docs/protocol.md, "Experiment 1"); ``source`` says where the files come from.
    """

    name: str
    num_classes: int
    image_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int
    default_batch_size: int
    source: str


CIFAR10 = DatasetInfo(
    name="cifar10",
    num_classes=10,
    image_size=32,
    channels=3,
    mean=_CIFAR_MEAN,
    std=_CIFAR_STD,
    crop_padding=4,
    default_batch_size=256,
    source=_CIFAR_SOURCE.format(n=10),
)
CIFAR100 = DatasetInfo(
    name="cifar100",
    num_classes=100,
    image_size=32,
    channels=3,
    mean=_CIFAR_MEAN,
    std=_CIFAR_STD,
    crop_padding=4,
    default_batch_size=256,
    source=_CIFAR_SOURCE.format(n=100),
)
IMAGENET16_120 = DatasetInfo(
    name="ImageNet16-120",
    num_classes=120,
    image_size=16,
    channels=3,
    mean=tuple(v / 255 for v in (122.68, 116.66, 104.01)),
    std=tuple(v / 255 for v in (63.22, 61.26, 65.09)),
    crop_padding=2,
    default_batch_size=512,
    source=_IMAGENET16_SOURCE,
)

SplitReader = Callable[[Path | None, str], tuple[np.ndarray, np.ndarray]]
"""``read(data_dir, split) -> (uint8 images N×C×H×W, int64 labels N)``; ``data_dir`` is None for
a dataset that needs no files."""


@dataclass(frozen=True)
class RegisteredDataset:
    """A dataset ``--dataset NAME`` can name: its facts, how to read a split, its aliases."""

    describe: Callable[[], DatasetInfo]
    read: SplitReader
    aliases: tuple[str, ...] = ()
    needs_files: bool = True


_DATASETS: dict[str, RegisteredDataset] = {}
_ALIASES: dict[str, str] = {}


def register_dataset(
    info: DatasetInfo | Callable[[], DatasetInfo],
    read: SplitReader,
    *,
    aliases: Sequence[str] = (),
    needs_files: bool = True,
    name: str | None = None,
) -> None:
    """Make a dataset available to every command (``--dataset``) and to :func:`load_dataset`.

    ``info`` is the dataset's :class:`DatasetInfo`, or a function returning it when facts such as
    the normalization must be computed from the data (pass ``name`` then). ``needs_files=False``
    for a dataset that ships with a package, so that no ``--data-dir`` is asked for.
    """
    _load_builtin_datasets()  # so that a user's dataset never collides with a builtin loaded later
    _add_dataset(info, read, aliases=aliases, needs_files=needs_files, name=name)


def _add_dataset(
    info: DatasetInfo | Callable[[], DatasetInfo],
    read: SplitReader,
    *,
    aliases: Sequence[str] = (),
    needs_files: bool = True,
    name: str | None = None,
) -> None:
    describe = info if callable(info) else (lambda: info)
    canonical = name or (info.name if isinstance(info, DatasetInfo) else "")
    if not canonical:
        raise ValueError("register_dataset needs the dataset's name (pass name= with a describe function)")
    if canonical in _DATASETS:
        raise ValueError(f"dataset {canonical!r} is registered twice")
    _DATASETS[canonical] = RegisteredDataset(describe, read, tuple(aliases), needs_files)
    for alias in (canonical, *aliases):
        _ALIASES[alias.lower()] = canonical


def _registered(name: str) -> RegisteredDataset:
    _load_builtin_datasets()
    canonical = _ALIASES.get(str(name).strip().lower())
    if canonical is None:
        aliases = [a for entry in _DATASETS.values() for a in entry.aliases]
        raise UnknownNameError(
            f"unknown dataset {name!r}: valid names are {', '.join(_DATASETS)} (aliases: {', '.join(aliases)})"
        )
    return _DATASETS[canonical]


def _load_builtin_datasets() -> None:
    if CIFAR10.name in _DATASETS:
        return
    _add_dataset(CIFAR10, lambda d, s: _read_cifar(CIFAR10, _folder(d), s), aliases=("cifar-10", "cifar_10"))
    _add_dataset(CIFAR100, lambda d, s: _read_cifar(CIFAR100, _folder(d), s), aliases=("cifar-100", "cifar_100"))
    _add_dataset(
        IMAGENET16_120, lambda d, s: _read_imagenet16(_folder(d), s), aliases=("imagenet16_120", "imagenet16")
    )
    from ntknas.data.digits import DIGITS_NAME, digits_info, read_digits_split

    _add_dataset(digits_info, read_digits_split, needs_files=False, name=DIGITS_NAME)


def _folder(data_dir: Path | None) -> Path:
    assert data_dir is not None, "a dataset with files is read from a folder"
    return data_dir


def dataset_names() -> list[str]:
    """The canonical names of the registered datasets."""
    _load_builtin_datasets()
    return list(_DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    """Look up a dataset by canonical name or case-insensitive alias (``cifar-10``, ``imagenet16``...).

    Raises:
        UnknownNameError: the name is not a known dataset.
    """
    return _registered(name).describe()


def needs_files(name: str) -> bool:
    """Whether the dataset is read from files the user downloads (so ``--data-dir`` is needed)."""
    return _registered(name).needs_files


@dataclass
class ImageDataset:
    """One split of an image dataset held entirely in memory.

    ``images`` is a contiguous uint8 tensor N×C×H×W, ``labels`` an int64 tensor N, both on the
    same device.
    """

    images: torch.Tensor
    labels: torch.Tensor
    info: DatasetInfo
    split: str

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(
                f"{self.info.name} images must be a uint8 tensor N×C×H×W, got {self.images.dtype} "
                f"with shape {tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise DataError(
                f"{self.info.name} has {self.images.shape[0]} images but labels of shape "
                f"{tuple(self.labels.shape)}: every image needs exactly one label"
            )
        self.images = self.images.contiguous()
        self.labels = self.labels.to(torch.int64)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to(self, device: str | torch.device) -> ImageDataset:
        """A copy of this split on ``device`` (no copy when it is already there)."""
        return ImageDataset(self.images.to(device), self.labels.to(device), self.info, self.split)

    def subset(self, indices: Sequence[int] | torch.Tensor | np.ndarray) -> ImageDataset:
        """The images at ``indices`` (in that order), as a new split with the same info."""
        index = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices)
        if index.dtype == torch.bool:
            raise DataError("subset indices must be integer positions, not a boolean mask; use mask.nonzero()")
        index = index.to(device=self.images.device, dtype=torch.int64).reshape(-1)
        if index.numel() and (int(index.min()) < -len(self) or int(index.max()) >= len(self)):
            raise DataError(f"subset index out of range for a {self.info.name} {self.split} split of {len(self)} images")
        return ImageDataset(self.images[index], self.labels[index], self.info, self.split)


def load_dataset(
    name: str, data_dir: str | Path | None, split: str = "train", device: str | torch.device = "cpu"
) -> ImageDataset:
    """Read one split of a registered dataset: CIFAR-10, CIFAR-100 or ImageNet16-120 from their
    official files, or the built-in ``digits`` (``data_dir`` None).

    ``data_dir`` may be the dataset folder itself (``cifar-10-batches-py``, ``cifar-100-python``,
    ``ImageNet16``) or the folder that contains it. For ImageNet16-120 ``split="test"`` reads
    ``val_data`` (the benchmark's test set); only labels 1..120 are kept, shifted to 0..119.

    Raises:
        UnknownNameError: unknown dataset name or split.
        DataError: folder or files missing, unreadable, unsafe or not in the official format.
    """
    entry = _registered(name)
    info = entry.describe()
    if split not in SPLITS:
        raise UnknownNameError(f"unknown split {split!r} for {info.name}: valid splits are {', '.join(SPLITS)}")
    images, labels = entry.read(None if data_dir is None else Path(data_dir).expanduser(), split)
    return ImageDataset(
        torch.from_numpy(images).to(device).contiguous(),
        torch.from_numpy(labels).to(device),
        info,
        split,
    )


def load_for_run(
    name: str, data_dir: str | Path | None, split: str = "train", device: str | torch.device = "cpu"
) -> ImageDataset:
    """:func:`load_dataset` for a command: a dataset read from files needs ``--data-dir``."""
    if not data_dir and needs_files(name):
        info = dataset_info(name)
        raise DataError(f"{option('data_dir')} is needed for {info.name}: download it from {info.source}")
    return load_dataset(name, data_dir or None, split=split, device=device)


# --------------------------------------------------------------------------- file layout


@dataclass(frozen=True)
class _Layout:
    folder: str
    files: dict[str, tuple[str, ...]]
    encoding: str
    label_key: str


_LAYOUTS = {
    "cifar10": _Layout(
        folder="cifar-10-batches-py",
        files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        encoding="bytes",
        label_key="labels",
    ),
    "cifar100": _Layout(
        folder="cifar-100-python", files={"train": ("train",), "test": ("test",)}, encoding="bytes", label_key="fine_labels"
    ),
    "ImageNet16-120": _Layout(
        folder="ImageNet16",
        files={"train": tuple(f"train_data_batch_{i}" for i in range(1, 11)), "test": ("val_data",)},
        encoding="latin1",
        label_key="labels",
    ),
}


def _split_files(info: DatasetInfo, data_dir: Path, split: str) -> list[Path]:
    """The split's files, looking in ``data_dir/<official folder>`` first, then ``data_dir``."""
    layout = _LAYOUTS[info.name]
    names = layout.files[split]
    expected = f"{names[0]}..{names[-1]}" if len(names) > 1 else names[0]
    if not data_dir.is_dir():
        raise DataError(
            f"{info.name} folder {data_dir} does not exist: point data_dir at the folder holding "
            f"{layout.folder}/ (files {expected}), downloaded from {info.source}"
        )
    nested = data_dir / layout.folder
    folder = nested if nested.is_dir() else data_dir
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"{info.name} {split} split incomplete in {folder}: missing {', '.join(missing)} "
            f"(expected {layout.folder}/{expected}); download the official files from {info.source}"
        )
    return [folder / n for n in names]


def _entry(batch: Any, key: str, path: Path, encoding: str) -> Any:
    """``batch[key]`` for a key stored as bytes (CIFAR) or str (ImageNet16, re-exports)."""
    if not isinstance(batch, dict):
        raise DataError(f"{path} holds a {type(batch).__name__}, not the official dict of data and labels")
    for candidate in (key.encode(), key) if encoding == "bytes" else (key, key.encode()):
        if candidate in batch:
            return batch[candidate]
    keys = ", ".join(sorted(repr(k) for k in batch))
    raise DataError(f"{path} has no {key!r} entry (keys: {keys}): it is not an official batch file; download it again")


def _read_batch(path: Path, layout: _Layout, info: DatasetInfo) -> tuple[np.ndarray, np.ndarray]:
    batch = safe_load(path, encoding=layout.encoding)
    data = _entry(batch, "data", path, layout.encoding)
    labels = _entry(batch, layout.label_key, path, layout.encoding)
    row = info.channels * info.image_size**2
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != row:
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise DataError(
            f"{path}: 'data' must be a uint8 array of shape N×{row} ({info.channels}×{info.image_size}×"
            f"{info.image_size} channel-first rows), got {dtype} with shape {shape}"
        )
    try:
        label_array = np.asarray(labels)
    except Exception:  # a ragged or odd object: report it as a format error below
        label_array = np.asarray([], dtype=object)
    if label_array.size == 0 and label_array.ndim == 1:
        label_array = label_array.astype(np.int64)  # an empty list comes back as float64
    if label_array.ndim != 1 or label_array.shape[0] != data.shape[0] or not np.issubdtype(label_array.dtype, np.integer):
        raise DataError(
            f"{path}: {layout.label_key!r} must be {data.shape[0]} integer labels, one per image, "
            f"got {label_array.dtype} with shape {label_array.shape}"
        )
    return data, label_array.astype(np.int64)


def _decode(rows: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """Channel-first rows N×(C·H·W) -> N×C×H×W, one reshape, no copy per image."""
    return np.ascontiguousarray(rows).reshape(-1, info.channels, info.image_size, info.image_size)


def _read_cifar(info: DatasetInfo, data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    layout = _LAYOUTS[info.name]
    parts = [_read_batch(path, layout, info) for path in _split_files(info, data_dir, split)]
    data = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts])
    if labels.size and (labels.min() < 0 or labels.max() >= info.num_classes):
        raise DataError(
            f"{info.name} {split} labels range {labels.min()}..{labels.max()} outside 0..{info.num_classes - 1}: "
            f"these are not {info.name} files"
        )
    return _decode(data, info), labels


def _read_imagenet16(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    info = IMAGENET16_120
    layout = _LAYOUTS[info.name]
    kept_data, kept_labels = [], []
    for path in _split_files(info, data_dir, split):
        data, labels = _read_batch(path, layout, info)
        if labels.size and labels.min() < 1:
            raise DataError(f"{path}: labels must be 1-based (1..1000) as in the official ImageNet16 files, found {labels.min()}")
        # Filter each file before concatenating: the full training set is ~1 GB, the 120
        # classes kept are about an eighth of it.
        keep = labels <= info.num_classes
        kept_data.append(data[keep])
        kept_labels.append(labels[keep] - 1)
    data = np.concatenate(kept_data)
    labels = np.concatenate(kept_labels)
    if data.shape[0] == 0:
        raise DataError(f"{info.name} {split} split in {data_dir} has no image with a label in 1..120: these are not ImageNet16 files")
    return _decode(data, info), labels


__all__ = [
    "CIFAR10",
    "CIFAR100",
    "IMAGENET16_120",
    "SPLITS",
    "DatasetInfo",
    "ImageDataset",
    "dataset_info",
    "dataset_names",
    "load_dataset",
    "load_for_run",
    "needs_files",
    "register_dataset",
]
