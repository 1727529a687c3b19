"""The study's scales: brief training counted in SGD steps, scales refused when inconsistent,
scale files (overrides become deviations, bad fields are one-line errors naming field and file),
a study folder's identity under a changed scale, and the NB101 part's inputs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ntknas.cli import main
from ntknas.errors import DataError, NtknasError
from ntknas.study import SCALES, StudyConfig, load_scale_file
from ntknas.study.nb101 import input_deviations, sample_cells
from ntknas.study.runner import STUDY_FILE, _Inputs
from ntknas.study.scale_table import scale_record, scale_rows
from ntknas.study.scales import CPU, SMOKE, STUDY_STEPS_PER_EPOCH, TRAIN_SPLIT_IMAGES, ScaleValueError

REPO = Path(__file__).resolve().parents[1]


def _cli(args, capsys) -> tuple[int, str]:
    try:
        status = main(args)
    except SystemExit as stop:
        status = int(stop.code or 0)
    return status, capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# Brief training as the study counts it
# ----------------------------------------------------------------------------------------------


def test_the_study_epoch_is_49_steps_and_a_subset_stage_is_exactly_that_many_full_batches():
    assert -(-50_000 // 1024) == STUDY_STEPS_PER_EPOCH == 49
    assert CPU.steps_per_stage == 49 and CPU.train_images == 49 * CPU.train_batch_size
    rows = dict(scale_rows(CPU))
    assert rows["SGD steps per stage"] == "49"
    assert rows["training images per stage"].startswith(f"{49 * CPU.train_batch_size:,}")
    assert rows["learning rate"].startswith("0.025")
    assert dict(scale_rows(SCALES["study"]))["SGD steps per stage"] == "49"
    assert "all 50,000" in dict(scale_rows(SCALES["study"]))["training images per stage"]


class _CountingSGD(torch.optim.SGD):
    steps = 0

    def step(self, closure=None):  # type: ignore[override]
        type(self).steps += 1
        return super().step(closure)


def test_one_stage_on_the_scale_subset_runs_exactly_steps_per_stage_sgd_steps(monkeypatch):
    """The trainer keeps the last batch (no drop_last) and rounds up: a subset of exactly
    steps × batch images is that many steps, and one image more would be one step more."""
    from ntknas.data import ImageDataset, dataset_info
    from ntknas.train import TrainConfig, Trainer

    monkeypatch.setattr(torch.optim, "SGD", _CountingSGD)
    scale = replace(CPU, steps_per_stage=3, train_batch_size=8)
    info = dataset_info("cifar10")
    for images, expected in ((scale.train_images, 3), (scale.train_images + 1, 4)):
        data = ImageDataset(torch.zeros(images, 3, 8, 8, dtype=torch.uint8), torch.arange(images) % 10, info, "train")
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
        _CountingSGD.steps = 0
        Trainer(net, data, TrainConfig(batch_size=scale.train_batch_size, seed=0, augment=False), "cpu").train_epochs(1)
        assert _CountingSGD.steps == expected


def test_every_part_trains_on_a_subset_of_exactly_steps_times_batch_images(tmp_path):
    from fixtures_data import write_cifar10

    write_cifar10(tmp_path / "data", per_class=5)
    scale = replace(CPU, steps_per_stage=3, train_batch_size=16)
    config = StudyConfig(scale="cpu", data_dir=str(tmp_path / "data"))
    config.__dict__["study_scale"] = scale  # the cached scale: a test scale without a file
    subset = _Inputs(config, tmp_path / "s").training()
    assert subset is not None and len(subset) == 48


def test_the_digits_split_size_the_scales_count_with_is_the_loaders():
    pytest.importorskip("sklearn")
    from ntknas.data.digits import load_digits_dataset

    assert len(load_digits_dataset(image_size=8)[0]) == TRAIN_SPLIT_IMAGES["digits"]
    assert SMOKE.stage_steps == -(-TRAIN_SPLIT_IMAGES["digits"] // SMOKE.train_batch_size)


@pytest.mark.parametrize(("changes", "named"), [
    ({"trained_archs": 400}, "trained_archs"),
    ({"steps_per_stage": 500}, "steps_per_stage"),
    ({"steps_per_stage": 0}, "steps_per_stage"),
    ({"train_epochs": (1, 3)}, "train_epochs"),
    ({"train_epochs": (0,)}, "train_epochs"),
    ({"search_top_k": 50}, "search_top_k"),
    ({"search_tournament": 9}, "search_tournament"),
    ({"track_bands": (("low", 0.5, 0.2),)}, "track_bands"),
    ({"lga_init_kernel": "fast"}, "lga_init_kernel"),
    ({"nb101_archs": -1}, "nb101_archs"),
    ({"search_pool": "measured"}, "search_pool"),
])
def test_an_inconsistent_scale_is_refused_naming_the_field(changes, named):
    with pytest.raises(ScaleValueError) as refused:
        replace(CPU, **changes)
    assert named in str(refused.value) and "\n" not in str(refused.value)


def test_digits_train_on_their_whole_split():
    with pytest.raises(ScaleValueError, match="steps_per_stage"):
        replace(SMOKE, steps_per_stage=5)


# ----------------------------------------------------------------------------------------------
# Scale files
# ----------------------------------------------------------------------------------------------


def test_the_shipped_gpu_scale_file_loads_and_names_every_override():
    scale = load_scale_file(REPO / "examples" / "scales" / "gpu.toml")
    study = SCALES["study"]
    assert scale.name == "gpu" and scale.trained_archs < study.trained_archs
    overrides = [line for line in scale.deviations if line.startswith("scale file gpu.toml:")]
    assert "scale file gpu.toml: trained_archs = 300 (study: 1000)" in overrides
    assert len(overrides) == 3 and scale.deviations[: len(study.deviations)] == study.deviations
    assert "gpu.toml" in (REPO / "docs" / "commands" / "study.md").read_text()


def test_a_scale_file_overrides_fields_and_the_record_prints_each_override(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('base = "cpu"\ninit_archs = 500\ntrack_bands = [["low", 0.0, 0.2], ["high", 0.9, 1.0]]\n'
                    'network_options = { channels = 8 }\nsteps_per_stage = 20\n')
    scale = load_scale_file(path)
    assert (scale.name, scale.init_archs, scale.train_images) == ("mine", 500, 20 * 128)
    assert scale.track_bands == (("low", 0.0, 0.2), ("high", 0.9, 1.0)) and scale.builds == {"channels": 8}
    record = scale_record(scale)
    assert f"scale file mine.toml: init_archs = 500 (cpu: {CPU.init_archs})" in record["deviations"]
    assert "scale file mine.toml: network_options = { channels = 8 } (cpu: {  })" in record["deviations"]
    assert "scale file mine.toml: steps_per_stage = 20 (cpu: 49)" in record["deviations"]
    assert ["architectures at initialization", "500"] in record["rows"]


@pytest.mark.parametrize(("text", "words"), [
    ('base = "cpu"\ninit_arch = 500\n', ["init_arch", "unknown field"]),
    ('base = "cpu"\ninit_archs = "many"\n', ["init_archs", "integer"]),
    ('base = "cpu"\ninit_archs = 1.5\n', ["init_archs", "integer"]),
    ('base = "cpu"\ninit_archs = true\n', ["init_archs", "integer"]),
    ('base = "cpu"\ninit_archs = 0\n', ["init_archs", "at least 1"]),
    ('base = "cpu"\ntrained_archs = 900\n', ["trained_archs", "init_archs"]),
    ('base = "cpu"\nsteps_per_stage = 1000\n', ["steps_per_stage", "50,000"]),
    ('base = "cpu"\ntrain_epochs = [0, "1"]\n', ["train_epochs", "integers"]),
    ('base = "cpu"\ntrack_bands = [["low", 0.3]]\n', ["track_bands"]),
    ('base = "cpu"\ndeviations = ["none"]\n', ["deviations", "unknown field"]),
    ('base = "huge"\n', ["base", "smoke, cpu, study"]),
    ('init_archs = 5\n', ["base"]),
    ('base = "cpu"\ninit_archs = \n', ["not valid TOML"]),
])
def test_a_bad_scale_file_is_one_line_naming_the_field_and_the_file(tmp_path, capsys, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(NtknasError) as refused:
        load_scale_file(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)
    for word in words:
        assert word in str(refused.value)
    status, err = _cli(["study", "--scale", str(path), "--out", str(tmp_path / "s")], capsys)
    assert status == 2 and err.count("\n") == 1 and str(path) in err
    assert not (tmp_path / "s").exists()


def test_a_missing_scale_file_is_one_line(tmp_path, capsys):
    status, err = _cli(["study", "--scale", str(tmp_path / "none.toml"), "--out", str(tmp_path / "s")], capsys)
    assert status == 2 and err.count("\n") == 1 and "none.toml" in err and "does not exist" in err


def test_a_study_folder_refuses_changed_measurement_settings_and_resumes_under_more_cells(tmp_path):
    first, second, third = (tmp_path / name for name in ("a.toml", "b.toml", "c.toml"))
    first.write_text('base = "smoke"\nname = "mine"\n')
    second.write_text('base = "smoke"\nname = "mine"\ninit_archs = 10\ntrained_archs = 9\n')
    third.write_text('base = "smoke"\nname = "mine"\nbatch_size = 8\n')
    identity = StudyConfig(scale=str(first)).identity()
    assert StudyConfig(scale=str(second)).identity() == identity  # more cells of the same order
    assert StudyConfig(scale=str(third)).identity() != identity
    out = tmp_path / "s"
    out.mkdir()
    (out / STUDY_FILE).write_text(json.dumps({"identity": identity, "parts": {}}))
    from ntknas.study import run_study

    with pytest.raises(DataError, match=r"batch_size 16 there, 8 here.*another --out"):
        run_study(StudyConfig(scale=str(third), out=str(out)))


# ----------------------------------------------------------------------------------------------
# The NB101 part's inputs
# ----------------------------------------------------------------------------------------------


def test_the_sampled_nb101_cells_are_distinct_valid_and_seeded():
    cells = sample_cells(12)
    assert len({cell.hash for cell in cells}) == 12
    assert [c.hash for c in sample_cells(12)] == [c.hash for c in cells]
    assert [c.hash for c in sample_cells(6)] == [c.hash for c in cells[:6]]  # a larger sample extends a smaller
    assert all(cell.pruned() == cell for cell in cells)


def test_a_scale_with_nb101_cells_needs_the_nb101_table(tmp_path, capsys, nb201_csv):
    path = tmp_path / "nb.toml"
    path.write_text('base = "cpu"\nnb101_archs = 10\n')
    status, err = _cli(["study", "--scale", str(path), "--data-dir", str(tmp_path), "--benchmark", str(nb201_csv),
                        "--proxy-table", str(nb201_csv), "--out", str(tmp_path / "s")], capsys)
    assert status == 2 and err.count("\n") == 1 and "--nb101-benchmark" in err and "nasbench_only108.tfrecord" in err
    status, err = _cli(["study", "--scale", str(path), "--data-dir", str(tmp_path), "--benchmark", str(nb201_csv),
                        "--proxy-table", str(nb201_csv), "--nb101-benchmark", str(tmp_path / "no.tfrecord"),
                        "--out", str(tmp_path / "s")], capsys)
    assert status == 2 and err.count("\n") == 1 and "--nb101-benchmark" in err and "does not exist" in err
    assert not (tmp_path / "s").exists()


def test_the_compact_nb101_table_and_a_missing_order_are_named_as_deviations(tmp_path, shared_data):
    from fixtures_nb101 import write_official_tfrecord

    scale = replace(CPU, nb101_archs=10)
    compact = shared_data / "nb101" / "nb101_108ep_test_seed0.npz"
    lines = input_deviations(scale, str(compact), None)
    assert len(lines) == 2 and "test_acc_seed0" in lines[0] and "maximum of the three" in lines[0]
    assert "--nb101-archs-file" in lines[1]
    official = tmp_path / "nasbench_only108.tfrecord"
    write_official_tfrecord(official)
    assert input_deviations(scale, str(official), str(tmp_path / "all_graphs.json")) == ()
    assert input_deviations(CPU, str(compact), None) == ()  # no NB101 part, no deviation
