"""Tests for the §3.2 trainer: the recipe, resumability, determinism, checkpoints, divergence."""

from __future__ import annotations

import copy
import io
import logging
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ntknas.data.batches import epoch_batches, first_images
from ntknas.data.datasets import ImageDataset
from ntknas.data.digits import load_digits_dataset
from ntknas.errors import DataError, NtknasError
from ntknas.spaces.nb201 import build_nb201
from ntknas.train import (
    EpochStats,
    TrainConfig,
    TrainConfigError,
    Trainer,
    TrainingDivergedError,
    parameter_norm,
)

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"
SMALL_BATCH = 64  # a few updates per epoch on the small subsets below


@pytest.fixture(scope="module")
def digits() -> tuple[ImageDataset, ImageDataset]:
    return load_digits_dataset(image_size=16)


@pytest.fixture(scope="module")
def small_train(digits: tuple[ImageDataset, ImageDataset]) -> ImageDataset:
    return digits[0].subset(range(320))


def _net(seed: int = 0, num_classes: int = 10) -> nn.Module:
    # A private generator state: building the net must not depend on (or disturb) other tests.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_nb201(ARCH, num_classes, variant="study", channels=4, cells_per_stage=1)


def _weights(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def _any_differs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------- config


def test_default_config_is_the_spec_recipe() -> None:
    config = TrainConfig()
    assert (config.lr, config.momentum, config.weight_decay, config.batch_size) == (0.025, 0.9, 3e-4, 1024)
    assert config.augment and not config.amp and not config.channels_last and config.seed == 42


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.0},
        {"lr": -0.1},
        {"lr": float("nan")},
        {"momentum": 1.0},
        {"weight_decay": -1e-4},
        {"batch_size": 0},
        {"batch_size": 8.0},
        {"seed": "42"},
    ],
)
def test_config_rejects_invalid_values_in_one_line(kwargs: dict) -> None:
    with pytest.raises(TrainConfigError) as info:
        TrainConfig(**kwargs)
    assert isinstance(info.value, NtknasError)
    message = str(info.value)
    assert "\n" not in message and next(iter(kwargs)) in message


def test_trainer_rejects_empty_split_and_bad_epoch_count(small_train: ImageDataset) -> None:
    empty = small_train.subset([])
    with pytest.raises(DataError, match="empty"):
        Trainer(_net(), empty, TrainConfig(), "cpu")
    trainer = Trainer(_net(), small_train, TrainConfig(batch_size=SMALL_BATCH), "cpu")
    with pytest.raises(TrainConfigError, match=">= 0"):
        trainer.train_epochs(-1)
    before = _weights(trainer.net)
    assert trainer.train_epochs(0) == []
    assert trainer.epoch == 0
    _assert_identical(before, _weights(trainer.net))


# ---------------------------------------------------------------------------------- the recipe


def test_trainer_is_sgd_on_epoch_batches_with_the_configured_recipe(small_train: ImageDataset) -> None:
    """Two epochs of the trainer equal a hand-written loop of the recipe, bit for bit."""
    config = TrainConfig(batch_size=SMALL_BATCH, seed=7)
    trainer = Trainer(_net(), small_train, config, "cpu")
    stats = trainer.train_epochs(2)

    net = _net()
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    generator = torch.Generator().manual_seed(7)
    for expected in stats:
        loss_sum, correct, seen = 0.0, 0, 0
        for images, labels in epoch_batches(small_train, SMALL_BATCH, generator, augment=True):
            logits = net(images)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
        assert expected.samples == seen == len(small_train)
        assert expected.train_loss == pytest.approx(loss_sum / seen, rel=1e-12)
        assert expected.train_accuracy == pytest.approx(100.0 * correct / seen)
    _assert_identical(_weights(net), _weights(trainer.net))


def test_training_reduces_loss_on_digits(digits: tuple[ImageDataset, ImageDataset]) -> None:
    train, test = digits
    trainer = Trainer(_net(), train, TrainConfig(batch_size=SMALL_BATCH), "cpu")
    images, labels = first_images(test, 256)

    def test_loss() -> float:
        trainer.net.eval()
        with torch.no_grad():
            return float(F.cross_entropy(trainer.net(images), labels))

    at_init = test_loss()
    stats = trainer.train_epochs(3)
    after = test_loss()
    assert [s.epoch for s in stats] == [1, 2, 3]
    assert all(isinstance(s, EpochStats) and s.samples == len(train) and s.seconds > 0 for s in stats)
    assert stats[-1].train_loss < 0.8 * stats[0].train_loss
    assert stats[-1].train_accuracy > stats[0].train_accuracy
    assert after < 0.8 * at_init
    assert math.log(10) - 0.3 < at_init  # at init the net is near chance, so the drop is learning


def test_augment_flag_changes_the_batches(small_train: ImageDataset) -> None:
    plain = Trainer(_net(), small_train, TrainConfig(batch_size=SMALL_BATCH, augment=False), "cpu")
    augmented = Trainer(_net(), small_train, TrainConfig(batch_size=SMALL_BATCH, augment=True), "cpu")
    plain.train_epochs(1)
    augmented.train_epochs(1)
    assert _any_differs(_weights(plain.net), _weights(augmented.net))


def test_trains_in_train_mode_and_restores_the_mode(small_train: ImageDataset) -> None:
    net = _net()
    net.eval()
    from_eval = Trainer(net, small_train, TrainConfig(batch_size=SMALL_BATCH), "cpu")
    from_eval.train_epochs(1)
    assert not from_eval.net.training
    from_train = Trainer(_net(), small_train, TrainConfig(batch_size=SMALL_BATCH), "cpu")
    from_train.train_epochs(1)
    assert from_train.net.training
    # The stem BatchNorm normalizes with batch statistics only in train mode.
    _assert_identical(_weights(from_eval.net), _weights(from_train.net))


def test_label_count_mismatch_names_num_classes(small_train: ImageDataset) -> None:
    trainer = Trainer(_net(num_classes=5), small_train, TrainConfig(batch_size=SMALL_BATCH), "cpu")
    with pytest.raises(DataError, match="num_classes=10") as info:
        trainer.train_epochs(1)
    assert "\n" not in str(info.value)
    assert trainer.epoch == 0


# ---------------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_weights_and_another_seed_does_not(small_train: ImageDataset) -> None:
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        trainer = Trainer(_net(), small_train, TrainConfig(batch_size=SMALL_BATCH, seed=seed), "cpu")
        runs[name] = (trainer.train_epochs(2), _weights(trainer.net))
    _assert_identical(runs["a"][1], runs["b"][1])
    assert _untimed(runs["a"][0]) == _untimed(runs["b"][0])
    assert _any_differs(runs["a"][1], runs["c"][1])


def _untimed(stats: list[EpochStats]) -> list[tuple[int, float, float, int]]:
    """Everything in the stats but the wall time."""
    return [(s.epoch, s.train_loss, s.train_accuracy, s.samples) for s in stats]


def test_split_epochs_equal_one_run(small_train: ImageDataset) -> None:
    config = TrainConfig(batch_size=SMALL_BATCH)
    stepped = Trainer(_net(), small_train, config, "cpu")
    first = stepped.train_epochs(1)
    rest = stepped.train_epochs(2)
    whole = Trainer(_net(), small_train, config, "cpu")
    all_three = whole.train_epochs(3)

    assert [s.epoch for s in first] == [1] and [s.epoch for s in rest] == [2, 3] and stepped.epoch == 3
    assert [s.train_loss for s in first + rest] == [s.train_loss for s in all_three]
    _assert_identical(_weights(stepped.net), _weights(whole.net))
    for p_stepped, p_whole in zip(stepped.net.parameters(), whole.net.parameters()):
        assert torch.equal(
            stepped.optimizer.state[p_stepped]["momentum_buffer"], whole.optimizer.state[p_whole]["momentum_buffer"]
        )


# ---------------------------------------------------------------------------------- checkpoints


def test_checkpoint_resume_equals_continuous_run(small_train: ImageDataset) -> None:
    config = TrainConfig(batch_size=SMALL_BATCH)
    first = Trainer(_net(), small_train, config, "cpu")
    first.train_epochs(1)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    first.train_epochs(1)  # training on must not change the saved checkpoint

    buffer.seek(0)
    resumed = Trainer(_net(seed=99), small_train, config, "cpu")  # different init, overwritten by the load
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.epoch == 1
    stats = resumed.train_epochs(2)
    assert [s.epoch for s in stats] == [2, 3]

    reference = Trainer(_net(), small_train, config, "cpu")
    reference.train_epochs(3)
    _assert_identical(_weights(resumed.net), _weights(reference.net))


def test_checkpoint_with_other_execution_flags_loads(small_train: ImageDataset) -> None:
    saved = Trainer(_net(), small_train, TrainConfig(batch_size=SMALL_BATCH), "cpu")
    saved.train_epochs(1)
    other = Trainer(_net(), small_train, TrainConfig(batch_size=SMALL_BATCH, channels_last=True), "cpu")
    other.load_state_dict(copy.deepcopy(saved.state_dict()))
    assert other.epoch == 1
    _assert_identical(_weights(saved.net), _weights(other.net))


def test_load_state_dict_rejects_mismatches(small_train: ImageDataset) -> None:
    source = Trainer(_net(), small_train, TrainConfig(batch_size=SMALL_BATCH), "cpu")
    state = copy.deepcopy(source.state_dict())

    other_recipe = Trainer(_net(), small_train, TrainConfig(batch_size=SMALL_BATCH, lr=0.1), "cpu")
    with pytest.raises(DataError, match=r"lr=0\.025") as info:
        other_recipe.load_state_dict(state)
    assert "\n" not in str(info.value)

    with pytest.raises(DataError, match="not a Trainer checkpoint"):
        source.load_state_dict({"net": state["net"]})

    wider = build_nb201(ARCH, 10, variant="study", channels=8, cells_per_stage=1)
    other_net = Trainer(wider, small_train, TrainConfig(batch_size=SMALL_BATCH), "cpu")
    with pytest.raises(DataError, match="same architecture") as info:
        other_net.load_state_dict(state)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------- flags on CPU


def test_amp_on_cpu_is_ignored_with_a_note(small_train: ImageDataset, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ntknas.train.trainer"):
        with_amp = Trainer(_net(), small_train, TrainConfig(batch_size=SMALL_BATCH, amp=True), "cpu")
    assert with_amp.amp_dtype is None
    assert len(with_amp.notes) == 1 and "amp" in with_amp.notes[0] and "ignored" in with_amp.notes[0]
    assert with_amp.notes[0] in caplog.text
    without = Trainer(_net(), small_train, TrainConfig(batch_size=SMALL_BATCH), "cpu")
    assert without.notes == []
    with_amp.train_epochs(1)
    without.train_epochs(1)
    _assert_identical(_weights(with_amp.net), _weights(without.net))


def test_channels_last_on_cpu_trains_the_same_recipe(small_train: ImageDataset) -> None:
    one_batch = small_train.subset(range(SMALL_BATCH))
    nhwc = Trainer(_net(), one_batch, TrainConfig(batch_size=SMALL_BATCH, channels_last=True), "cpu")
    conv = next(m for m in nhwc.net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    nchw = Trainer(_net(), one_batch, TrainConfig(batch_size=SMALL_BATCH), "cpu")
    initial = _weights(nchw.net)
    stats_nhwc = nhwc.train_epochs(1)
    stats_nchw = nchw.train_epochs(1)
    # Same arithmetic up to summation order inside the convolutions. One update only: over a few
    # more steps of a 4-channel net the rounding differences grow far beyond rounding size.
    assert stats_nhwc[0].train_loss == pytest.approx(stats_nchw[0].train_loss, rel=1e-5)
    after_nhwc, after_nchw = _weights(nhwc.net), _weights(nchw.net)
    parameters = {name for name, _ in nchw.net.named_parameters()}
    for key, value in after_nchw.items():
        # Running means are means of activations that nearly cancel: absolute rounding is larger.
        atol = 1e-6 if key in parameters else 1e-5
        torch.testing.assert_close(after_nhwc[key], value, rtol=1e-4, atol=atol, msg=key)
    assert _any_differs(initial, after_nchw)


# ---------------------------------------------------------------------------------- divergence


def test_divergence_raises_naming_the_epoch(small_train: ImageDataset) -> None:
    trainer = Trainer(_net(), small_train, TrainConfig(batch_size=SMALL_BATCH, lr=1e6), "cpu")
    with pytest.raises(TrainingDivergedError) as info:
        trainer.train_epochs(3)
    error = info.value
    assert isinstance(error, NtknasError)
    assert error.epoch == 1 and trainer.epoch == 1
    message = str(error)
    assert "\n" not in message and "epoch 1" in message and "lr" in message
    with pytest.raises(TrainingDivergedError, match="already diverged in epoch 1"):
        trainer.train_epochs(1)


# ---------------------------------------------------------------------------------- parameter norm


def test_parameter_norm_is_the_l2_norm_of_all_parameters() -> None:
    linear = nn.Linear(2, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[3.0, 0.0]]))
        linear.bias.fill_(4.0)
    assert parameter_norm(linear) == pytest.approx(5.0, rel=1e-12)

    net = _net()
    flat = torch.cat([p.detach().reshape(-1).double() for p in net.parameters()])
    assert parameter_norm(net) == pytest.approx(float(flat.norm()), rel=1e-12)
    # Buffers (BatchNorm running statistics) are not parameters.
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d) and module.running_mean is not None:
                module.running_mean.fill_(100.0)
    assert parameter_norm(net) == pytest.approx(float(flat.norm()), rel=1e-12)
    assert parameter_norm(nn.ReLU()) == 0.0
