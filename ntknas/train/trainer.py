"""Brief training with the study's recipe (see docs/protocol.md, "Experiment 2"), resumable epoch by epoch.

The recipe: SGD with lr 0.025, momentum 0.9, weight decay 3e-4 (on every parameter), a constant
learning rate, batch 1024, cross-entropy, and the training augmentation of
:func:`ntknas.data.batches.epoch_batches` (random crop + horizontal flip, then normalization),
drawn on the dataset's own device — no DataLoader, no per-image transforms.

A :class:`Trainer` owns the optimizer and a seeded CPU ``torch.Generator`` for data order and
augmentation, and keeps an epoch counter, so training can be done in steps with measurements in
between: ``train_epochs(1)`` followed by ``train_epochs(2)`` is the same computation as
``train_epochs(3)`` (bit-identical on CPU). The generator lives on the CPU so a seed draws the
same images and crops on every device.

Divergence is reported by raising :class:`TrainingDivergedError` (a :class:`NtknasError`): a
caller that scores many architectures catches it and records the architecture as diverged. The
check runs once per epoch, on the epoch's summed loss, so it costs one device synchronization
per epoch rather than one per batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ntknas.data.batches import epoch_batches
from ntknas.data.datasets import ImageDataset
from ntknas.errors import DataError, NtknasError

_LOG = logging.getLogger(__name__)

# Config fields a checkpoint may be resumed under with a different value: they change how the
# arithmetic runs, not what the recipe is.
_EXECUTION_FIELDS = frozenset({"amp", "channels_last"})


class TrainConfigError(NtknasError, ValueError):
    """A :class:`TrainConfig` value that does not describe a valid training run."""


class TrainingDivergedError(NtknasError):
    """The training loss became non-finite (nan or inf).

    ``epoch`` is the 1-based epoch in which it happened; the trainer refuses to train further.
    """

    def __init__(self, message: str, epoch: int) -> None:
        super().__init__(message)
        self.epoch = epoch


@dataclass(frozen=True)
class TrainConfig:
    """The §3.2 training recipe and how to execute it.

    ``amp`` turns on autocast on CUDA: bfloat16 where the GPU supports it, else float16 with a
    gradient scaler; on other devices it is ignored (a note is logged and kept in
    :attr:`Trainer.notes`). ``channels_last`` stores the network's conv weights and the batches
    in NHWC memory order, which is faster for convolutions on recent GPUs. ``augment`` applies the
    random crop and flip (normalization always happens). ``seed`` seeds the
    trainer's generator (data order and augmentation), not the network's initialization.
    """

    lr: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 3e-4
    batch_size: int = 1024
    augment: bool = True
    amp: bool = False
    channels_last: bool = False
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("lr", "momentum", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TrainConfigError(f"TrainConfig.{name} must be a finite number, got {value!r}")
        if self.lr <= 0:
            raise TrainConfigError(f"TrainConfig.lr must be positive, got {self.lr!r} (the study uses 0.025)")
        if not 0 <= self.momentum < 1:
            raise TrainConfigError(f"TrainConfig.momentum must be in [0, 1), got {self.momentum!r} (the study uses 0.9)")
        if self.weight_decay < 0:
            raise TrainConfigError(
                f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay!r} (the study uses 3e-4)"
            )
        for name in ("batch_size", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TrainConfigError(f"TrainConfig.{name} must be an int, got {value!r}")
        if self.batch_size < 1:
            raise TrainConfigError(
                f"TrainConfig.batch_size must be at least 1, got {self.batch_size} (the study uses 1024)"
            )


@dataclass
class EpochStats:
    """What one training epoch did.

    ``epoch`` is the trainer's epoch count after this epoch (1 for the first epoch ever
    trained); ``train_loss`` is the mean cross-entropy over the epoch's samples, measured on
    each batch before its update; ``train_accuracy`` is the percentage of those samples whose
    top logit was the label; ``seconds`` is wall time; ``samples`` the number of images seen.
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    seconds: float
    samples: int


def parameter_norm(net: nn.Module) -> float:
    """The L2 norm of all of ``net``'s parameters taken together (buffers excluded), in float64."""
    norms = [torch.linalg.vector_norm(p.detach(), dtype=torch.float64).cpu() for p in net.parameters()]
    if not norms:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack(norms)))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Trainer:
    """Trains ``net`` on ``train_set`` with the §3.2 recipe, a few epochs at a time.

    ``net`` is moved to ``device`` (and to channels-last order if configured) in place; the
    dataset is moved there too unless it already lives there, since batches are built where the
    images are. The network's initialization is the caller's: build it under the seed you want.
    After :meth:`train_epochs` the network is put back in the train/eval mode it had before.
    """

    def __init__(
        self, net: nn.Module, train_set: ImageDataset, config: TrainConfig, device: str | torch.device
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise TrainConfigError(f"config must be a TrainConfig, got {type(config).__name__}")
        if len(train_set) == 0:
            raise DataError(f"the {train_set.info.name} {train_set.split} split is empty: there is nothing to train on")
        self.device = torch.device(device)
        self.config = config
        self.notes: list[str] = []
        self.net = net.to(self.device)
        if config.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.train_set = train_set.to(self.device)
        # Labels are checked against the network's outputs on the first batch; reading the
        # maximum label here costs one synchronization for the trainer's lifetime.
        self._max_label = int(self.train_set.labels.max())
        self._outputs_checked = False

        self.amp_dtype = self._choose_amp_dtype()
        # bfloat16 has float32's range and needs no loss scaling; float16 does.
        self._scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.optimizer = torch.optim.SGD(
            self.net.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.generator = torch.Generator().manual_seed(config.seed)
        self._epoch = 0
        self._diverged_at: int | None = None

    @property
    def epoch(self) -> int:
        """How many epochs this trainer (or the checkpoint it resumed) has trained."""
        return self._epoch

    def _choose_amp_dtype(self) -> torch.dtype | None:
        if not self.config.amp:
            return None
        if self.device.type != "cuda":
            note = f"amp requested on {self.device.type}: ignored, training in float32 (autocast is used on CUDA only)"
            self.notes.append(note)
            _LOG.warning(note)
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _autocast(self) -> AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _check_outputs(self, logits: torch.Tensor) -> None:
        if logits.dim() != 2 or logits.shape[1] <= self._max_label:
            raise DataError(
                f"the network outputs shape {tuple(logits.shape)} but {self.train_set.info.name} labels go up to "
                f"{self._max_label}: build the network with num_classes={self.train_set.info.num_classes} "
                "so it returns logits N×num_classes"
            )
        self._outputs_checked = True

    def train_epochs(self, n: int = 1) -> list[EpochStats]:
        """Train ``n`` more epochs, continuing from where the last call (or checkpoint) stopped.

        Raises:
            TrainingDivergedError: the loss became nan/inf; the message names the epoch. The
                network's weights are then unusable and further calls raise again.
            TrainConfigError: ``n`` is negative.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise TrainConfigError(f"number of epochs must be an int >= 0, got {n!r}")
        if self._diverged_at is not None:
            raise TrainingDivergedError(
                f"training already diverged in epoch {self._diverged_at}: start a new Trainer with a "
                "freshly initialized network (and a lower lr)",
                self._diverged_at,
            )
        was_training = self.net.training
        self.net.train()
        try:
            return [self._train_one_epoch() for _ in range(n)]
        finally:
            self.net.train(was_training)

    def _train_one_epoch(self) -> EpochStats:
        config = self.config
        _synchronize(self.device)
        start = time.perf_counter()
        # Sums stay on the device so the loop never waits for the GPU; float64 keeps a 50k-sample
        # sum exact (MPS has no float64, so it sums in float32 there).
        sum_dtype = torch.float32 if self.device.type == "mps" else torch.float64
        loss_sum = torch.zeros((), dtype=sum_dtype, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        samples = 0
        for images, labels in epoch_batches(self.train_set, config.batch_size, self.generator, augment=config.augment):
            if config.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                logits = self.net(images)
                if not self._outputs_checked:
                    self._check_outputs(logits)
                loss = F.cross_entropy(logits, labels)
            self.optimizer.zero_grad(set_to_none=True)
            if self._scaler is not None:
                self._scaler.scale(loss).backward()
                self._scaler.step(self.optimizer)
                self._scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            batch = labels.shape[0]
            samples += batch
            loss_sum += loss.detach().to(sum_dtype) * batch
            correct += (logits.detach().argmax(dim=1) == labels).sum()
        mean_loss = float(loss_sum) / samples
        accuracy = 100.0 * int(correct) / samples
        _synchronize(self.device)
        seconds = time.perf_counter() - start
        self._epoch += 1
        if not math.isfinite(mean_loss):
            self._diverged_at = self._epoch
            raise TrainingDivergedError(
                f"training diverged in epoch {self._epoch}: mean train loss is {mean_loss} "
                f"(lr={config.lr}); lower the learning rate or record this architecture as diverged",
                self._epoch,
            )
        return EpochStats(self._epoch, mean_loss, accuracy, seconds, samples)

    # ------------------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: network, optimizer, generator, epoch, scaler and config.

        Like ``nn.Module.state_dict``, tensors share storage with the live trainer: save it
        with ``torch.save`` (or ``copy.deepcopy`` it) before training on.
        """
        return {
            "epoch": self._epoch,
            "diverged_at": self._diverged_at,
            "config": dataclasses.asdict(self.config),
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "scaler": self._scaler.state_dict() if self._scaler is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` output; the next epoch continues the saved run exactly.

        Raises:
            DataError: ``state`` is not a trainer checkpoint, or was written with a different
                recipe (lr, momentum, weight decay, batch size, augmentation or seed); ``amp``
                and ``channels_last`` may differ.
        """
        required = ("epoch", "config", "net", "optimizer", "generator")
        if not isinstance(state, dict) or any(key not in state for key in required):
            keys = ", ".join(sorted(map(str, state))) if isinstance(state, dict) else type(state).__name__
            raise DataError(
                f"not a Trainer checkpoint (needs {', '.join(required)}; got {keys}): pass what Trainer.state_dict() returned"
            )
        if not isinstance(state["generator"], torch.Tensor) or state["generator"].dtype != torch.uint8:
            raise DataError("Trainer checkpoint 'generator' must be the uint8 tensor of torch.Generator.get_state()")
        saved = state["config"]
        mine = dataclasses.asdict(self.config)
        if not isinstance(saved, dict):
            raise DataError(f"Trainer checkpoint config must be a dict of TrainConfig fields, got {type(saved).__name__}")
        differing = [
            f"{name}={saved.get(name)!r} (this trainer: {value!r})"
            for name, value in mine.items()
            if name not in _EXECUTION_FIELDS and saved.get(name) != value
        ]
        if differing:
            raise DataError(
                f"checkpoint was written with a different training recipe: {'; '.join(differing)}; "
                "build the Trainer with the checkpoint's TrainConfig"
            )
        try:
            self.net.load_state_dict(state["net"])
        except RuntimeError as error:
            first_line = str(error).strip().splitlines()[0]
            raise DataError(
                f"checkpoint network does not match this trainer's network ({first_line}): "
                "build the same architecture before loading"
            ) from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].cpu())
        if self._scaler is not None and state.get("scaler") is not None:
            self._scaler.load_state_dict(state["scaler"])
        self._epoch = int(state["epoch"])
        self._diverged_at = state.get("diverged_at")


__all__ = [
    "EpochStats",
    "TrainConfig",
    "TrainConfigError",
    "Trainer",
    "TrainingDivergedError",
    "parameter_norm",
]
