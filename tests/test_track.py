"""Experiment 3 (kernel tracking): kernel distances by hand, a tiny end-to-end run, resume, errors."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_data import PNG_SIGNATURE, write_cifar10
from fixtures_data import TINY_NB201 as TINY

from ntknas.cli import main
from ntknas.data import label_sorted_batch, load_dataset
from ntknas.errors import DataError, InvalidArchError, NtknasError
from ntknas.kernel import full_ntk
from ntknas.kernel.distances import (
    kernel_correlation,
    kernel_cosine,
    kernel_distances,
    relative_difference,
    relative_difference_reference,
)
from ntknas.runs import track as track_module
from ntknas.runs.track import TrackConfig, parse_arch_list, parse_band, run_track, select_track_archs
from ntknas.spaces.nb201 import arch_from_index, build_nb201
from ntknas.store import ResultStore
from ntknas.train import Trainer, TrainingDivergedError, parameter_norm
from ntknas.train.trainer import TrainConfig

QUANTITY_COLUMNS = ["rel_diff_ref", "rel_diff", "norm_ratio", "kernel_corr", "kernel_cos", "train_loss", "train_acc", "param_norm"]


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------- pure functions


def test_kernel_distances_by_hand():
    theta_0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    theta_t = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    # ‖diag(1, 0)‖_F / ‖I‖_F
    assert relative_difference(theta_0, theta_t) == pytest.approx(1 / math.sqrt(2), rel=1e-15)
    # only entry (0,0) differs: |1 - 2| / (|1| + 1e-4); the off-diagonal ratios are 0 / 1e-4
    assert relative_difference_reference(theta_0, theta_t) == pytest.approx(1 / 1.0001, rel=1e-15)
    # entries x = (1,0,0,1), y = (2,0,0,1): centred cross product 1.5, sums of squares 1 and 2.75
    assert kernel_correlation(theta_0, theta_t) == pytest.approx(1.5 / math.sqrt(2.75), rel=1e-15)
    # ⟨I, diag(2,1)⟩ = 3, norms √2 and √5
    assert kernel_cosine(theta_0, theta_t) == pytest.approx(3 / math.sqrt(10), rel=1e-15)
    assert kernel_distances(theta_0, theta_t) == {
        "rel_diff_ref": relative_difference_reference(theta_0, theta_t),
        "rel_diff": relative_difference(theta_0, theta_t),
        "kernel_corr": kernel_correlation(theta_0, theta_t),
        "kernel_cos": kernel_cosine(theta_0, theta_t),
    }


def test_kernel_distances_of_scaled_and_negated_kernels():
    theta_0 = np.array([[2.0, -1.0], [-1.0, 3.0]])
    assert kernel_correlation(theta_0, 5 * theta_0) == pytest.approx(1.0)
    assert kernel_cosine(theta_0, 5 * theta_0) == pytest.approx(1.0)
    assert relative_difference(theta_0, 5 * theta_0) == pytest.approx(4.0)
    assert kernel_correlation(theta_0, -theta_0) == pytest.approx(-1.0)
    assert kernel_cosine(theta_0, -theta_0) == pytest.approx(-1.0)
    # |Θ0 − (−Θ0)| / (|Θ0| + ε) = 2|Θ0| / (|Θ0| + ε), entry by entry
    expected = math.sqrt(sum((2 * abs(v) / (abs(v) + 1e-4)) ** 2 for v in theta_0.ravel()))
    assert relative_difference_reference(theta_0, -theta_0) == pytest.approx(expected, rel=1e-14)
    for quantity, value in kernel_distances(theta_0, theta_0).items():
        assert value == pytest.approx({"rel_diff_ref": 0, "rel_diff": 0}.get(quantity, 1.0), abs=1e-15), quantity


def test_kernel_distances_undefined_cases_are_nan_and_shapes_must_match():
    assert math.isnan(kernel_correlation(np.ones((2, 2)), np.eye(2)))  # constant entries
    assert math.isnan(relative_difference(np.zeros((2, 2)), np.eye(2)))
    assert math.isnan(kernel_cosine(np.zeros((2, 2)), np.eye(2)))
    with pytest.raises(NtknasError, match="same images"):
        kernel_cosine(np.eye(2), np.eye(3))


# ------------------------------------------------------------------------------- selection


def test_parse_arch_list_and_band():
    first = arch_from_index(6111)
    assert [a.to_string() for a in parse_arch_list("6111, 1")] == [first.to_string(), arch_from_index(1).to_string()]
    assert parse_arch_list("0:3") == [arch_from_index(i) for i in range(3)]
    assert parse_arch_list(f"{first.op_codes},{first.to_string()},6111") == [first]  # duplicates dropped
    with pytest.raises(InvalidArchError, match="outside"):
        parse_arch_list("15625")
    with pytest.raises(InvalidArchError, match="START:STOP"):
        parse_arch_list("3:1")
    assert parse_band("cifar10_test:92.4:92.9") == track_module.Band("cifar10_test", 92.4, 92.9)
    for bad in ("cifar10_test:92.4", "cifar10_test:a:b", ":1:2", "c:3:2", "c:nan:2"):
        with pytest.raises(InvalidArchError, match="^band"):
            parse_band(bad)


def test_band_sample_is_seeded_and_inside_the_band(shared_data):
    csv_path = str(shared_data / "nb201" / "nb201_accuracies.csv")
    config = TrackConfig(benchmark=csv_path, band="cifar10_test:92.4:92.9", sample=3, sample_seed=42)
    picked = select_track_archs(config)
    assert len(picked) == 3 and picked == select_track_archs(config)
    assert all(92.4 <= a.accuracy <= 92.9 and a.target == "cifar10_test" for a in picked)
    assert picked != select_track_archs(TrackConfig(benchmark=csv_path, band="cifar10_test:92.4:92.9", sample=3, sample_seed=7))
    # --target chooses the accuracy shown; the band still decides which architectures
    other = select_track_archs(TrackConfig(benchmark=csv_path, band="cifar10_test:92.4:92.9", sample=3,
                                           target="cifar100_test"))
    assert [a.key for a in other] == [a.key for a in picked]
    assert all(a.target == "cifar100_test" and a.accuracy < 80 for a in other)


# ------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory) -> Path:
    return write_cifar10(tmp_path_factory.mktemp("cifar"), per_class=4).parent


def _config(cifar_dir, out, **overrides) -> TrackConfig:
    settings = dict(dataset="cifar10", data_dir=str(cifar_dir), archs="0,1", epochs=2, every=1, out=str(out),
                    network_options=TINY, train_batch_size=16)
    settings.update(overrides)
    return TrackConfig(**settings)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def full_run(cifar_dir, nb201_csv, tmp_path_factory) -> Path:
    """An uninterrupted run through the command line, with reduced width options."""
    out = tmp_path_factory.mktemp("track") / "run"
    code = main(["track", "--archs", "0,1", "--dataset", "cifar10", "--data-dir", str(cifar_dir),
                 "--benchmark", str(nb201_csv), "--epochs", "2", "--out", str(out), "--train-batch-size", "16",
                 "--channels", "4", "--cells-per-stage", "1", "--no-progress"])
    assert code == 0
    return out


def test_end_to_end_outputs(full_run):
    rows = _read_csv(full_run / "track.csv")
    assert list(rows[0]) == ["arch", "index", "accuracy", "epoch", *QUANTITY_COLUMNS]
    assert [(r["index"], r["epoch"]) for r in rows] == [("0", "0"), ("0", "1"), ("0", "2"), ("1", "0"), ("1", "1"), ("1", "2")]
    assert rows[0]["arch"] == arch_from_index(0).to_string()
    assert float(rows[0]["accuracy"]) == pytest.approx(81.52)  # cifar10_valid_test of index 0
    for row in rows:
        if row["epoch"] == "0":
            assert float(row["rel_diff"]) == 0.0 and float(row["rel_diff_ref"]) == 0.0
            assert float(row["norm_ratio"]) == 1.0
            assert float(row["kernel_corr"]) == pytest.approx(1.0, abs=1e-12)
            assert float(row["kernel_cos"]) == pytest.approx(1.0, abs=1e-12)
            assert row["train_loss"] == "" and row["train_acc"] == ""
        else:
            assert float(row["rel_diff"]) > 0 and float(row["kernel_corr"]) < 1
            assert math.isfinite(float(row["train_loss"])) and 0 <= float(row["train_acc"]) <= 100
        assert float(row["param_norm"]) > 0
    for quantity in QUANTITY_COLUMNS:
        assert (full_run / f"track_{quantity}.png").read_bytes()[:8] == PNG_SIGNATURE, quantity
    with ResultStore(full_run) as store:
        assert store.get_meta("kind") == "track"
        assert store.tracked_epochs() == {rows[0]["arch"]: {0, 1, 2}, rows[3]["arch"]: {0, 1, 2}}
        assert [r["status"] for r in store.get_meta("track_archs")] == ["done", "done"]
    assert sorted(p.name for p in (full_run / "checkpoints").iterdir()) == ["nb201_00000.pt", "nb201_00001.pt"]


def test_numbers_match_a_direct_computation(full_run, cifar_dir):
    """Rebuild index 1 by hand (seed 42), train 2 epochs, and recompute what the run stored."""
    train_set = load_dataset("cifar10", cifar_dir, "train")
    inputs, _ = label_sorted_batch(train_set, 1, seed=42)
    torch.manual_seed(42)
    net = build_nb201(arch_from_index(1), 10, **TINY)
    norm_0 = parameter_norm(net)
    theta_0 = full_ntk(net, inputs, strategy="batched")
    assert theta_0.shape == (10, 10)
    stats = Trainer(net, train_set, TrainConfig(seed=42, batch_size=16), "cpu").train_epochs(2)
    theta_2 = full_ntk(net, inputs, strategy="batched")
    rows = {r["epoch"]: r for r in _read_csv(full_run / "track.csv") if r["index"] == "1"}
    assert float(rows["0"]["param_norm"]) == norm_0
    assert float(rows["2"]["kernel_corr"]) == kernel_correlation(theta_0, theta_2)
    assert float(rows["2"]["rel_diff"]) == relative_difference(theta_0, theta_2)
    assert float(rows["2"]["rel_diff_ref"]) == relative_difference_reference(theta_0, theta_2)
    # ‖Θ₂‖/‖Θ₀‖, computed here from the kernels' entries as a plain sum of squares
    by_hand = math.sqrt(sum(v * v for v in theta_2.double().flatten().tolist()) /
                        sum(v * v for v in theta_0.double().flatten().tolist()))
    assert float(rows["2"]["norm_ratio"]) == pytest.approx(by_hand, rel=1e-12)
    assert float(rows["2"]["train_loss"]) == stats[-1].train_loss
    assert float(rows["2"]["train_acc"]) == stats[-1].train_accuracy
    assert float(rows["2"]["param_norm"]) == parameter_norm(net)


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("where", ["training", "between_rows_and_checkpoint"])
def test_resume_after_interruption_equals_uninterrupted_run(full_run, cifar_dir, nb201_csv, tmp_path, monkeypatch, where):
    out = tmp_path / "run"
    config = _config(cifar_dir, out, benchmark=str(nb201_csv))
    original_train = Trainer.train_epochs
    original_save = track_module._save_checkpoint
    calls = {"train": 0, "save": 0}

    def train(self, n=1):
        calls["train"] += 1
        if where == "training" and calls["train"] == 4:  # second architecture, its second epoch
            raise _Interrupt()
        return original_train(self, n)

    def save(path, payload):
        calls["save"] += 1
        if where == "between_rows_and_checkpoint" and calls["save"] == 5:  # arch 1, epoch 1 rows stored
            raise _Interrupt()
        original_save(path, payload)

    monkeypatch.setattr(Trainer, "train_epochs", train)
    monkeypatch.setattr(track_module, "_save_checkpoint", save)
    with pytest.raises(_Interrupt):
        run_track(config)
    calls["train"] = 0
    monkeypatch.setattr(track_module, "_save_checkpoint", original_save)
    outcome = run_track(config)
    assert (outcome.tracked, outcome.skipped) == (1, 1)
    # Resumed from the checkpoint: only the epochs after it were trained again.
    assert calls["train"] == (1 if where == "training" else 2)
    assert _read_csv(out / "track.csv") == _read_csv(full_run / "track.csv")


def test_finished_architectures_are_skipped_and_more_epochs_extend(cifar_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    run_track(_config(cifar_dir, out, archs="2", epochs=1))
    before = _read_csv(out / "track.csv")

    def refuse(*args, **kwargs):
        raise AssertionError("a finished architecture was rebuilt")

    with monkeypatch.context() as patch:
        patch.setattr(track_module, "network_builder", refuse)
        outcome = run_track(_config(cifar_dir, out, archs="2", epochs=1))
    assert (outcome.tracked, outcome.skipped) == (0, 1)
    trained = []
    original = Trainer.train_epochs
    monkeypatch.setattr(Trainer, "train_epochs", lambda self, n=1: trained.append(n) or original(self, n))
    run_track(_config(cifar_dir, out, archs="2", epochs=2))
    assert trained == [1]  # continued from the epoch-1 checkpoint instead of starting over
    rows = _read_csv(out / "track.csv")
    assert rows[:2] == before and [r["epoch"] for r in rows] == ["0", "1", "2"]


def test_diverged_architecture_is_recorded_and_the_next_one_runs(cifar_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    original = Trainer.train_epochs
    first = arch_from_index(0).to_string()
    calls = []

    def train(self, n=1):
        calls.append(n)
        if len(calls) == 1:  # the first architecture's first epoch
            raise TrainingDivergedError("training diverged in epoch 1: mean train loss is nan", 1)
        return original(self, n)

    monkeypatch.setattr(Trainer, "train_epochs", train)
    outcome = run_track(_config(cifar_dir, out, epochs=1))
    assert outcome.diverged == [first]
    with ResultStore(out) as store:
        status = {r["arch"]: r for r in store.get_meta("track_archs")}
    assert status[first]["status"] == "diverged" and "diverged in epoch 1" in status[first]["reason"]
    assert status[arch_from_index(1).to_string()]["status"] == "done"
    rows = _read_csv(out / "track.csv")
    assert [(r["index"], r["epoch"]) for r in rows] == [("0", "0"), ("1", "0"), ("1", "1")]
    again = run_track(_config(cifar_dir, out, epochs=1))
    assert (again.tracked, again.skipped) == (0, 2)


def test_other_settings_in_the_same_folder_are_refused(full_run, cifar_dir):
    with pytest.raises(DataError, match="other settings"):
        run_track(_config(cifar_dir, full_run, every=2))


# ------------------------------------------------------------------------------- command-line errors


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--band", "cifar10_test:92.4"], "malformed"),
        (["--band", "cifar10_test:99.9:100", "--sample", "1"], "no architecture has cifar10_test"),
        (["--band", "nonsense:1:2"], "unknown target column"),
        (["--band", "cifar10_test:92.4:92.9", "--sample", "100000"], "lower --sample"),
        (["--archs", "0", "--every", "0"], "argument --every: must be a positive integer"),
        (["--archs", "0", "--space", "nb101"], "official order (e.g. nb201)"),
        (["--archs", "conv"], "not a NAS-Bench-201 arch"),
        (["--archs", "0", "--strategy", "fast"], "unknown kernel strategy 'fast'"),
        ([], "needs --archs"),
    ],
)
def test_track_errors_are_one_line(arguments, message, nb201_csv, tmp_path, capsys):
    try:
        code = main(["track", "--benchmark", str(nb201_csv), "--out", str(tmp_path / "run"), *arguments])
    except SystemExit as exit_:  # argparse refused an option's value
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_band_needs_a_benchmark_and_data_dir_is_required(tmp_path, capsys):
    assert main(["track", "--band", "cifar10_test:92:93", "--out", str(tmp_path / "a")]) == 2
    assert "--band needs --benchmark" in capsys.readouterr().err
    assert main(["track", "--archs", "0", "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--data-dir is needed" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["track", "--archs", "0", "--band", "c:1:2", "--out", str(tmp_path / "c")])
    assert exit_info.value.code == 2


def test_several_samples_give_a_larger_kernel_and_too_many_are_refused(cifar_dir, tmp_path, capsys):
    out = tmp_path / "run"
    outcome = run_track(_config(cifar_dir, out, archs="3", epochs=0, samples=2))
    assert outcome.tracked == 1
    state = torch.load(out / "checkpoints" / "nb201_00003.pt", weights_only=True)
    assert state["theta_0"].shape == (20, 20) and state["trainer"]["epoch"] == 0
    assert [r["epoch"] for r in _read_csv(out / "track.csv")] == ["0"]
    code = main(["track", "--archs", "3", "--samples", "41", "--data-dir", str(cifar_dir),
                 "--out", str(tmp_path / "other"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "--samples 41 is more than the label-sorted batch of 40 images" in err


def test_several_images_use_per_image_forwards_and_the_mode_is_part_of_the_settings(cifar_dir, tmp_path):
    assert "forward" not in TrackConfig().store_settings()  # one image: both modes are one kernel
    assert TrackConfig(samples=2).store_settings()["forward"] == "per-image"
    out = tmp_path / "run"  # index 1462: every edge a 3x3 conv, so the cells' batch statistics matter
    run_track(_config(cifar_dir, out, archs="1462", epochs=0, samples=2))
    stored = torch.load(out / "checkpoints" / "nb201_01462.pt", weights_only=True)["theta_0"]
    train_set = load_dataset("cifar10", cifar_dir, "train")
    inputs, _ = label_sorted_batch(train_set, 2, seed=42, batch_size=40)
    torch.manual_seed(42)
    net = build_nb201(arch_from_index(1462), 10, **TINY)
    assert torch.equal(stored, full_ntk(net, inputs, strategy="batched", forward="per-image"))
    assert not torch.allclose(stored, full_ntk(net, inputs, strategy="batched", forward="batch"))
    with pytest.raises(DataError, match="forward: stored 'per-image' vs now 'batch'"):
        run_track(_config(cifar_dir, out, archs="1462", epochs=0, samples=2, forward="batch"))
