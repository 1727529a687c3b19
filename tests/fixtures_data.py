"""Tiny random datasets written in the official on-disk formats, for tests.

The official CIFAR "python version" files and the ImageNet16 files were pickled by Python 2
(protocol 2, numpy 1): every string is a Python 2 ``str`` (opcode BINSTRING) and numpy's
helpers are named ``numpy.core.multiarray``. :func:`write_py2_pickle` reproduces that byte
layout from Python 3, so the readers are tested on what users actually download:

* CIFAR-10 ``cifar-10-batches-py/``: ``data_batch_1..5``, ``test_batch``, ``batches.meta``;
  dicts with keys ``data`` (uint8 N×3072, channel-first rows), ``labels`` (list of int),
  ``batch_label``, ``filenames`` (read back as bytes keys with ``encoding='bytes'``).
* CIFAR-100 ``cifar-100-python/``: ``train``, ``test``, ``meta``; ``fine_labels`` and
  ``coarse_labels`` instead of ``labels``.
* ImageNet16 ``ImageNet16/``: ``train_data_batch_1..10``, ``val_data``; dicts with ``data``
  (uint8 N×768), ``labels`` (list of 1-based ints, 1..1000) and, in train batches, ``mean``
  (read back as str keys with ``encoding='latin1'``).

Each ``write_*`` function returns the dataset folder it created.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

TINY_NB201 = {"channels": 4, "cells_per_stage": 1}
"""Network options of the smallest NB201 networks the end-to-end tests build."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Python2Pickler(pickle._Pickler):  # the pure-Python pickler lets us replace opcodes
    """Protocol 2 as Python 2 wrote it: str and bytes as BINSTRING, numpy under numpy.core."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj: bytes | str) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", "builtins").replace("numpy._core", "numpy.core")
        qualname = name or obj.__qualname__
        self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode("ascii"))
        self.memoize(obj)


def write_py2_pickle(path: str | Path, obj: Any) -> None:
    """Pickle ``obj`` to ``path`` byte-for-byte the way Python 2's cPickle protocol 2 did."""
    with open(path, "wb") as handle:
        _Python2Pickler(handle, protocol=2).dump(obj)


def _random_images(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3, size, size), dtype=np.uint8)


def _balanced_labels(rng: np.random.Generator, classes: np.ndarray, per_class: int) -> np.ndarray:
    return rng.permutation(np.repeat(classes, per_class))


def write_cifar_batch(
    path: str | Path, images: np.ndarray, labels: np.ndarray, label_key: str = "labels", batch_label: str = "batch"
) -> None:
    """Write one CIFAR batch file from uint8 images N×3×32×32 (channel-first rows, bytes keys).

    ``label_key`` is ``"labels"`` for CIFAR-10, ``"fine_labels"`` for CIFAR-100 (which then also
    gets ``coarse_labels``).
    """
    n = len(images)
    batch: dict[bytes, Any] = {
        b"data": np.ascontiguousarray(images, dtype=np.uint8).reshape(n, -1),
        label_key.encode(): [int(v) for v in labels],
        b"batch_label": batch_label.encode(),
        b"filenames": [f"image_{i:05d}.png".encode() for i in range(n)],
    }
    if label_key == "fine_labels":
        batch[b"coarse_labels"] = [int(v) // 5 for v in labels]
    write_py2_pickle(path, batch)


def write_cifar10(directory: str | Path, per_class: int = 2, seed: int = 0) -> Path:
    """Random CIFAR-10: ``per_class`` images per class in the train split (over 5 files) and test.

    Returns ``directory/cifar-10-batches-py``.
    """
    rng = np.random.default_rng(seed)
    folder = Path(directory) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    labels = _balanced_labels(rng, np.arange(10), per_class)
    images = _random_images(rng, labels.size, 32)
    for b, part in enumerate(np.array_split(np.arange(labels.size), 5), start=1):
        write_cifar_batch(folder / f"data_batch_{b}", images[part], labels[part], "labels", f"training batch {b} of 5")
    test_labels = _balanced_labels(rng, np.arange(10), per_class)
    write_cifar_batch(folder / "test_batch", _random_images(rng, test_labels.size, 32), test_labels, "labels",
                      "testing batch 1 of 1")
    write_py2_pickle(folder / "batches.meta", {b"label_names": [f"class{i}".encode() for i in range(10)],
                                               b"num_cases_per_batch": -(-labels.size // 5), b"num_vis": 3072})
    return folder


def write_cifar100(directory: str | Path, per_class: int = 1, seed: int = 0) -> Path:
    """Random CIFAR-100: ``per_class`` images per fine class in ``train`` and ``test``.

    Returns ``directory/cifar-100-python``.
    """
    rng = np.random.default_rng(seed)
    folder = Path(directory) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        labels = _balanced_labels(rng, np.arange(100), per_class)
        write_cifar_batch(folder / split, _random_images(rng, labels.size, 32), labels, "fine_labels", split)
    write_py2_pickle(folder / "meta", {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                                       b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
    return folder


def write_imagenet16_batch(path: str | Path, images: np.ndarray, labels_1based: np.ndarray, with_mean: bool) -> None:
    """Write one ImageNet16 batch from uint8 images N×3×16×16 and 1-based labels (str keys)."""
    data = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    batch: dict[str, Any] = {"data": data, "labels": [int(v) for v in labels_1based]}
    if with_mean:  # the official train batches carry the training-set mean image
        batch["mean"] = data.mean(axis=0)
    write_py2_pickle(path, batch)


def write_imagenet16(directory: str | Path, per_class: int = 1, seed: int = 0, extra_labels: int = 3) -> Path:
    """Random ImageNet16: ``per_class`` images of each label 1..120 per split, over 10 train files.

    ``extra_labels`` images per split carry labels above 120 (121, 500, 1000, ...), which the
    ImageNet16-120 reader must drop. Returns ``directory/ImageNet16``.
    """
    rng = np.random.default_rng(seed)
    folder = Path(directory) / "ImageNet16"
    folder.mkdir(parents=True, exist_ok=True)
    outside = np.resize(np.array([121, 500, 1000]), extra_labels)
    for split in ("train", "test"):
        labels = rng.permutation(np.concatenate([np.repeat(np.arange(1, 121), per_class), outside]))
        images = _random_images(rng, labels.size, 16)
        if split == "test":
            write_imagenet16_batch(folder / "val_data", images, labels, with_mean=False)
            continue
        for b, part in enumerate(np.array_split(np.arange(labels.size), 10), start=1):
            write_imagenet16_batch(folder / f"train_data_batch_{b}", images[part], labels[part], with_mean=True)
    return folder


def read_raw_pickle(path: str | Path, encoding: str = "bytes") -> Any:
    """Plain ``pickle.load`` of a file the tests wrote themselves (trusted), for comparisons."""
    with open(path, "rb") as handle:
        return pickle.load(handle, encoding=encoding)
