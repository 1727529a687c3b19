"""The device a run uses, and the facts about it that every run records."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ntknas.errors import NtknasError, UnknownNameError, option


def resolve_device(name: str) -> torch.device:
    """A torch device from a CLI name, refusing CUDA where this torch sees no GPU."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UnknownNameError(f"unknown device {name!r}: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NtknasError(f"{option('device')} {name} asked for, but this torch sees no CUDA GPU: use {option('device')} cpu")
    return device


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Torch's intra-op CPU threads set to ``count`` inside the block (None: left as they are),
    restored after. Miniature networks run fastest on one: with more, torch's threads spin-wait
    on every tiny operation and the cores do little else."""
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU and its thread count: what every stored row says it ran on."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def environment(device: torch.device) -> dict[str, str]:
    """Versions and device, recorded in every run folder for the report."""
    from ntknas.version import __version__

    return {
        "ntknas": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device_name(device),
        "platform": platform.platform(),
    }
