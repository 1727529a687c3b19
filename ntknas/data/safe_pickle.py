"""A restricted unpickler for dataset and benchmark pickles.

The official CIFAR and ImageNet16 downloads are pickles, and unpickling an arbitrary file can
run arbitrary code. :func:`safe_load` only resolves the handful of globals those files need
(numpy arrays, dtypes and scalars, ``collections.OrderedDict`` and a few builtin containers);
any other global, such as ``os.system`` or ``builtins.eval``, is refused *before* it is looked
up, so a malicious file cannot run code.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import collections
import io
import os
import pickle
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from ntknas.errors import DataError, UnknownNameError

ENCODINGS = ("bytes", "latin1")


def _numpy_core_attr(submodule: str, name: str) -> Callable[[], Any]:
    """Resolve ``numpy.core.<submodule>.<name>`` without importing the deprecated alias.

    numpy 2 renamed ``numpy.core`` to ``numpy._core`` and warns when the old path is imported,
    yet pickles written under numpy 1 name the old path.
    """

    def resolve() -> Any:
        try:
            module = __import__(f"numpy._core.{submodule}", fromlist=[name])
        except ImportError:  # numpy < 2
            module = __import__(f"numpy.core.{submodule}", fromlist=[name])
        return getattr(module, name)

    return resolve


# (module, name) -> zero-argument resolver. Every entry only builds data: arrays (whose
# subtype/dtype arguments can themselves only come from this table), dtypes, scalars and plain
# containers. ``_codecs.encode`` is how Python 3 pickles ``bytes`` at protocols < 3 (and so
# numpy array payloads at those protocols); it only encodes a string with a codec.
_ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("collections", "OrderedDict"): lambda: collections.OrderedDict,
    ("builtins", "set"): lambda: set,
    ("builtins", "frozenset"): lambda: frozenset,
    ("builtins", "complex"): lambda: complex,
    ("builtins", "bytearray"): lambda: bytearray,
    ("_codecs", "encode"): lambda: codecs.encode,
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _numpy_core_attr("multiarray", "_reconstruct")
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = _numpy_core_attr("multiarray", "scalar")
    # numpy's protocol-5 array reduction (out-of-band buffers are not supported here, in-band
    # buffers are plain bytes).
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _numpy_core_attr("numeric", "_frombuffer")


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """Map Python 2 module names (``__builtin__``, ``copy_reg``) to their Python 3 names."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose global lookup only admits the entries of ``_ALLOWED``."""

    def __init__(self, file: IO[bytes], source: str, encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        resolver = _ALLOWED.get(_python3_name(module, name))
        if resolver is None:
            raise DataError(
                f"refusing to unpickle '{module}.{name}' from {self._source}: dataset pickles may "
                "only hold arrays, lists, dicts, strings and numbers"
            )
        return resolver()

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(
            f"refusing to unpickle a persistent reference from {self._source}: dataset pickles "
            "may only hold arrays, lists, dicts, strings and numbers"
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def safe_load(path_or_file: str | os.PathLike[str] | IO[bytes], *, encoding: str = "bytes") -> Any:
    """Unpickle a dataset or benchmark file, admitting only data-carrying globals.

    Args:
        path_or_file: a path, or a binary file object opened for reading.
        encoding: how Python 2 ``str`` objects are decoded: ``"bytes"`` keeps them as
            ``bytes`` (the CIFAR convention, keys like ``b'data'``), ``"latin1"`` turns them
            into ``str`` (the ImageNet16 convention, keys like ``'data'``).

    Raises:
        DataError: the file is missing, unreadable, corrupt or truncated, or names a global
            outside the allowed set (nothing from the file is executed in that case).
        UnknownNameError: ``encoding`` is not one of ``"bytes"``, ``"latin1"``.
    """
    if encoding not in ENCODINGS:
        raise UnknownNameError(f"unknown pickle encoding {encoding!r}: valid encodings are {', '.join(ENCODINGS)}")
    if isinstance(path_or_file, (str, os.PathLike)):
        source = str(path_or_file)
        try:
            with open(path_or_file, "rb") as handle:
                return _load(handle, source, encoding)
        except OSError as exc:
            raise DataError(f"cannot read {source}: {_one_line(exc.strerror or str(exc))}") from None
    source = str(getattr(path_or_file, "name", "<stream>"))
    return _load(path_or_file, source, encoding)


def _load(handle: IO[bytes], source: str, encoding: str) -> Any:
    try:
        return _RestrictedUnpickler(handle, source, encoding).load()
    except DataError:
        raise
    except Exception as exc:  # corrupt input can make the unpickler raise nearly anything
        detail = _one_line(f"{type(exc).__name__}: {exc}")
        raise DataError(
            f"cannot unpickle {source}: the file is corrupt or truncated ({detail}); download it again"
        ) from None


def safe_loads(data: bytes, *, encoding: str = "bytes", source: str = "<bytes>") -> Any:
    """Like :func:`safe_load`, for a pickle already held in memory."""
    stream = io.BytesIO(data)
    stream.name = source  # type: ignore[attr-defined]
    return safe_load(stream, encoding=encoding)


__all__ = ["ENCODINGS", "safe_load", "safe_loads"]
