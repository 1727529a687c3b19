"""Time one training epoch of the largest NAS-Bench-201 cell: ntknas's Trainer against a DataLoader.

    python perf/train_speed.py [--device cpu|cuda] [--data-dir DIR] [--images N] [--workers W]
                               [--amp] [--channels-last]

Both sides train the same initial network (the all-``nor_conv_3x3`` cell, study variant, 10
classes) with the same SGD recipe (SPEC §3.2, batch 1024) on the same device, in one process:

* ntknas: :class:`ntknas.train.Trainer`, whose batches are gathered, cropped, flipped and
  normalized as whole tensors where the images live (the device);
* baseline: a ``torch.utils.data.Dataset`` holding the images as H×W×C uint8 on the host (as
  torchvision's CIFAR10 does) and applying the transforms to one image at a time -- pad 4 + random
  crop, random horizontal flip, scale to 0..1, normalize -- batched by a ``DataLoader`` with
  ``--workers`` worker processes and copied to the device per batch. torchvision is not used
  (it is not a dependency), so the per-image transforms are written with plain torch ops.

Before timing, a few steps on random data warm up the device (kernel selection, allocator).
The printed epoch times include each pipeline's own start-up (DataLoader workers are started
per epoch, as with the default ``persistent_workers=False``); the one-time upload of the images
to the device for the ntknas side is printed separately. Data defaults to synthetic uint8 images
of CIFAR-10's shape; ``--data-dir`` reads a ``cifar-10-batches-py`` folder instead.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package

from ntknas.data.batches import epoch_batches  # noqa: E402
from ntknas.data.datasets import CIFAR10, ImageDataset, load_dataset  # noqa: E402
from ntknas.errors import NtknasError  # noqa: E402
from ntknas.spaces.nb201 import build_nb201  # noqa: E402
from ntknas.train import TrainConfig, Trainer  # noqa: E402

LARGEST_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
CIFAR10_TRAIN_SIZE = 50_000


class PerImageCifar(Dataset):
    """CIFAR-10 images as N×H×W×C uint8 on the host, transformed one image at a time."""

    def __init__(self, images_nhwc: np.ndarray, labels: np.ndarray, padding: int, mean, std) -> None:
        self.images = images_nhwc
        self.labels = labels
        self.padding = padding
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(self.images[i]).permute(2, 0, 1)  # C×H×W, like ToTensor's layout
        _, h, w = image.shape
        p = self.padding
        padded = F.pad(image, (p, p, p, p))
        top, left = (int(v) for v in torch.randint(0, 2 * p + 1, (2,)))
        image = padded[:, top : top + h, left : left + w]
        if float(torch.rand(())) < 0.5:
            image = image.flip(-1)
        image = image.to(torch.float32).div(255)
        return (image - self.mean) / self.std, int(self.labels[i])


def _synthetic_cifar10(n: int, seed: int) -> ImageDataset:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, CIFAR10.num_classes, (n,), generator=generator)
    return ImageDataset(images, labels, CIFAR10, "train")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """The same autocast choice as the Trainer: bfloat16 where supported, else float16; CUDA only."""
    if not (amp and device.type == "cuda"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def _warm_up(net: nn.Module, device: torch.device, args: argparse.Namespace, steps: int) -> None:
    """A few SGD steps on random data so the first timed epoch does not pay for kernel set-up."""
    net = copy.deepcopy(net).to(device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    batch = min(args.batch_size, args.images)
    images = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 10, (batch,), device=device)
    for _ in range(steps):
        with _autocast(device, args.amp):
            loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _synchronize(device)


def _baseline_epoch(
    net: nn.Module, dataset: ImageDataset, device: torch.device, args: argparse.Namespace
) -> tuple[float, float]:
    """One epoch with the DataLoader pipeline; returns (seconds, mean loss)."""
    info = dataset.info
    per_image = PerImageCifar(
        dataset.images.permute(0, 2, 3, 1).contiguous().numpy(), dataset.labels.numpy(), info.crop_padding, info.mean, info.std
    )
    loader = DataLoader(
        per_image,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(args.seed),
    )
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    net = net.to(device).to(memory_format=memory_format).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    use_scaler = args.amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    _synchronize(device)
    start = time.perf_counter()
    for images, labels in loader:
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        labels = labels.to(device, non_blocking=True)
        with _autocast(device, args.amp):
            loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        loss_sum += loss.detach().double() * labels.shape[0]
    mean_loss = float(loss_sum) / len(dataset)
    _synchronize(device)
    return time.perf_counter() - start, mean_loss


def _pipeline_only(dataset_host: ImageDataset, dataset_device: ImageDataset, device: torch.device,
                   args: argparse.Namespace) -> tuple[float, float]:
    """Seconds to produce one epoch of batches on the device, without training: (ntknas, baseline)."""
    start = time.perf_counter()
    for images, _ in epoch_batches(dataset_device, args.batch_size, torch.Generator().manual_seed(args.seed)):
        pass
    _synchronize(device)
    ours = time.perf_counter() - start
    info = dataset_host.info
    per_image = PerImageCifar(dataset_host.images.permute(0, 2, 3, 1).contiguous().numpy(), dataset_host.labels.numpy(),
                              info.crop_padding, info.mean, info.std)
    loader = DataLoader(per_image, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                        pin_memory=device.type == "cuda")
    start = time.perf_counter()
    for images, _ in loader:
        images = images.to(device, non_blocking=True)
    _synchronize(device)
    return ours, time.perf_counter() - start


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="a cifar-10-batches-py folder (or its parent); default: synthetic CIFAR-10-shaped data")
    parser.add_argument("--images", type=int, default=None,
                        help="images in the timed epoch (default 50000 on cuda, 2048 on cpu)")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader workers for the baseline (default min(8, CPUs) on cuda, 0 on cpu)")
    parser.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    parser.add_argument("--amp", action="store_true", help="autocast (bfloat16, else float16) on CUDA")
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory order for weights and batches")
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.images is None:
        args.images = CIFAR10_TRAIN_SIZE if args.device == "cuda" else 2048
    if args.workers is None:
        args.workers = min(8, os.cpu_count() or 1) if args.device == "cuda" else 0
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but this torch build sees no CUDA GPU; use --device cpu", file=sys.stderr)
        return 2
    if args.images < 1 or args.workers < 0 or args.batch_size < 1:
        print("error: --images and --batch-size must be >= 1 and --workers >= 0", file=sys.stderr)
        return 2
    device = torch.device(args.device)

    try:
        if args.data_dir is not None:
            full = load_dataset("cifar10", args.data_dir, "train")
            source = f"CIFAR-10 from {args.data_dir}"
        else:
            full = _synthetic_cifar10(args.images, args.seed)
            source = "synthetic uint8 data of CIFAR-10 shape"
    except NtknasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.images > len(full):
        print(f"error: --images {args.images} exceeds the {len(full)} training images; lower it", file=sys.stderr)
        return 2
    data = full.subset(range(args.images)) if args.images < len(full) else full

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        initial = build_nb201(LARGEST_CELL, CIFAR10.num_classes, variant="study")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device {name}, torch {torch.__version__}; {args.images} images ({source}), batch {args.batch_size}, "
          f"amp {'on' if args.amp else 'off'}, channels_last {'on' if args.channels_last else 'off'}")
    print(f"network: NB201 study variant, {sum(p.numel() for p in initial.parameters()):,} parameters, cell {LARGEST_CELL}")

    _warm_up(initial, device, args, args.warmup_steps)

    _synchronize(device)
    start = time.perf_counter()
    on_device = data.to(device)
    _synchronize(device)
    upload = time.perf_counter() - start
    config = TrainConfig(batch_size=args.batch_size, amp=args.amp, channels_last=args.channels_last, seed=args.seed)
    trainer = Trainer(copy.deepcopy(initial), on_device, config, device)
    stats = trainer.train_epochs(1)[0]
    ours = stats.seconds
    print(f"ntknas Trainer (batches built on the device): {ours:.2f} s, {args.images / ours:,.0f} images/s, "
          f"mean loss {stats.train_loss:.4f} (one-time upload of the images: {upload:.3f} s)")

    theirs, baseline_loss = _baseline_epoch(copy.deepcopy(initial), data, device, args)
    print(f"DataLoader baseline (per-image transforms, {args.workers} workers): {theirs:.2f} s, "
          f"{args.images / theirs:,.0f} images/s, mean loss {baseline_loss:.4f}")
    print(f"speed-up (baseline time / Trainer time): {theirs / ours:.2f}x")

    pipe_ours, pipe_theirs = _pipeline_only(data, on_device, device, args)
    print(f"data pipeline alone, one epoch of batches on the device: ntknas {pipe_ours:.3f} s, "
          f"DataLoader {pipe_theirs:.3f} s ({pipe_theirs / max(pipe_ours, 1e-9):.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
