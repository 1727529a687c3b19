"""The project's real data files, which ntknas does not ship: ``../shared/data`` beside the checkout.

A user's clone has no such folder, so every test that reads one of these files reaches it through
:func:`shared_file`, which skips the test naming the missing file and where it was looked for.
CI has the folder and must run those tests: ``.ci/run`` sets ``NTKNAS_REQUIRE_SHARED=1``, which
turns the skip into a failure, so a missing or moved data folder cannot pass CI by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REQUIRE_SHARED = "NTKNAS_REQUIRE_SHARED"

NB201_ACCURACIES = "nb201/nb201_accuracies.csv"
NB201_SUPPLEMENTARY = "nb201/nb201_supplementary.csv"
NB101_TABLE = "nb101/nb101_108ep_test_seed0.npz"
MAKE_CIFAR10 = "make_cifar10.py"
CIFAR10_EXACT_PNG = "images/cifar10_test_first20_exact_png.npz"
CIFAR10_JPEG = "images/cifar10_jpeg.npz"


def shared_file(relative: str, root: Path = SHARED_DATA) -> Path:
    """``root / relative`` (``""``: the folder itself) when it exists; otherwise skip the calling
    test (fail it when the environment sets ``NTKNAS_REQUIRE_SHARED=1``) naming the missing path."""
    path = root / relative if relative else root
    if path.exists():
        return path
    reason = (
        f"needs {path}, which is missing (the project's real data, not shipped with ntknas): "
        "put the project's shared/data folder beside the checkout to run this test"
    )
    if os.environ.get(REQUIRE_SHARED, "") not in ("", "0"):
        pytest.fail(f"{reason} ({REQUIRE_SHARED} is set: this run must not skip it)", pytrace=False)
    pytest.skip(reason)
