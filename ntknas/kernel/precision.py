"""IEEE float32 arithmetic for measurements on GPUs.

PyTorch lets cuDNN run float32 convolutions in TF32 (a 10-bit mantissa) by default. A kernel
entry sums products over every parameter of a network whose gradients pass through dozens of
convolutions, and a network at initialization can amplify rounding: measured on an H200, TF32
moved single kernel metrics by a median 1-4 % (up to 20 %) from the same network's float32 CPU
values. Metrics are measurements, not training steps, so they run in full float32.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

# (settings object, attribute) pairs of the float32 precision API of torch >= 2.9.
_PRECISION_SETTINGS = (
    (lambda: torch.backends.cudnn.conv, "fp32_precision"),  # type: ignore[attr-defined]
    (lambda: torch.backends.cuda.matmul, "fp32_precision"),
)


@contextmanager
def ieee_float32() -> Iterator[None]:
    """Within the block, float32 convolutions and matrix products on CUDA do not use TF32.

    The previous settings are restored afterwards. CPU arithmetic is IEEE float32 anyway.
    """
    saved = []
    for owner, attribute in _PRECISION_SETTINGS:
        target = owner()
        if hasattr(target, attribute):
            saved.append((target, attribute, getattr(target, attribute)))
            setattr(target, attribute, "ieee")
    if not saved:  # torch < 2.9 only has the boolean flags
        legacy = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        for target, attribute, value in saved:
            setattr(target, attribute, value)
        if not saved:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = legacy
