"""The device a run uses, and the facts about it that every run records."""

from __future__ import annotations

import platform

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
