"""Tests for the dataset readers, the safe unpickler, the batch pipeline and the digits dataset."""

from __future__ import annotations

import collections
import io
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_data import (
    read_raw_pickle,
    write_cifar10,
    write_cifar100,
    write_cifar_batch,
    write_imagenet16,
    write_imagenet16_batch,
    write_py2_pickle,
)
from real_data import CIFAR10_EXACT_PNG, CIFAR10_JPEG, MAKE_CIFAR10, shared_file

from ntknas.data.batches import augment, draw_batch, epoch_batches, first_images, label_sorted_batch, normalize
from ntknas.data.datasets import (
    CIFAR10,
    IMAGENET16_120,
    DatasetInfo,
    ImageDataset,
    dataset_info,
    dataset_names,
    load_dataset,
)
from ntknas.data.digits import load_digits_dataset
from ntknas.data.safe_pickle import safe_load, safe_loads
from ntknas.errors import DataError, NtknasError, UnknownNameError


def assert_one_line(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert message and "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# --------------------------------------------------------------------------- safe unpickler


class _Reduce:
    """Pickles as ``func(*args)``, the shape of every code-running pickle."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_safe_load_admits_arrays_containers_and_scalars(protocol):
    value = {
        b"data": np.arange(24, dtype=np.uint8).reshape(4, 6),
        "labels": [1, 2, 3],
        "floats": np.linspace(0, 1, 5),
        "scalar": np.float32(2.5),
        "nested": (b"x", "y", 3.25, None, True, 2**70, 1 + 2j),
        "ordered": collections.OrderedDict(b=1, a=2),
        "sets": ({1, 2}, frozenset({3}), bytearray(b"ab")),
    }
    loaded = safe_loads(pickle.dumps(value, protocol=protocol))
    assert np.array_equal(loaded[b"data"], value[b"data"]) and loaded[b"data"].dtype == np.uint8
    assert np.array_equal(loaded["floats"], value["floats"])
    assert loaded["scalar"] == np.float32(2.5) and isinstance(loaded["scalar"], np.float32)
    assert loaded["nested"] == value["nested"] and loaded["sets"] == value["sets"]
    assert list(loaded["ordered"].items()) == [("b", 1), ("a", 2)]


def test_safe_load_reads_python2_numpy1_pickles_without_deprecation(tmp_path):
    path = tmp_path / "py2"
    write_py2_pickle(path, {"data": np.arange(6, dtype=np.uint8), "labels": [3, 4]})
    raw = path.read_bytes()
    assert b"numpy.core.multiarray\n_reconstruct" in raw and raw.startswith(b"\x80\x02")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        as_bytes = safe_load(path, encoding="bytes")
        as_text = safe_load(path, encoding="latin1")
    assert set(as_bytes) == {b"data", b"labels"} and set(as_text) == {"data", "labels"}
    assert np.array_equal(as_text["data"], np.arange(6)) and as_text["data"].dtype == np.uint8


MALICIOUS = {
    "os.system": lambda marker: b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.",
    "builtins.eval": lambda marker: pickle.dumps(_Reduce(eval, f"open({str(marker)!r}, 'w').close()")),
    "subprocess.Popen": lambda marker: pickle.dumps(_Reduce(subprocess.Popen, ["touch", str(marker)])),
    "__builtin__.exec": lambda marker: b"c__builtin__\nexec\n(S'open(" + repr(str(marker)).encode() + b", \"w\")'\ntR.",
    "posix.system": lambda marker: pickle.dumps(_Reduce(os.system, f"touch {marker}"), protocol=2),
}


@pytest.mark.parametrize("name", sorted(MALICIOUS))
def test_safe_load_refuses_code_without_running_it(tmp_path, name):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(MALICIOUS[name](marker))
    with pytest.raises(DataError) as error:
        safe_load(path)
    assert_one_line(error, f"refusing to unpickle '{name}'", str(path), "may only hold arrays")
    assert not marker.exists()


def test_safe_load_refuses_globals_hidden_inside_containers(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": np.zeros(3, np.uint8), b"labels": [_Reduce(os.system, f"touch {marker}")]})
    with pytest.raises(DataError, match="refusing to unpickle"):
        safe_loads(payload, source="batch")
    assert not marker.exists()


@pytest.mark.parametrize(
    "content",
    [b"", b"\x80\x04garbage", pickle.dumps({b"data": np.arange(100, dtype=np.uint8)}, protocol=2)[:-40], b"not a pickle"],
)
def test_safe_load_reports_corrupt_files_on_one_line(tmp_path, content):
    path = tmp_path / "broken"
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        safe_load(path)
    assert_one_line(error, str(path), "corrupt or truncated")


def test_safe_load_missing_file_and_bad_encoding(tmp_path):
    with pytest.raises(DataError) as error:
        safe_load(tmp_path / "absent")
    assert_one_line(error, "absent")
    with pytest.raises(UnknownNameError) as error:
        safe_load(io.BytesIO(pickle.dumps(1)), encoding="utf8")
    assert_one_line(error, "bytes, latin1")


# --------------------------------------------------------------------------- dataset info


@pytest.mark.parametrize(
    "alias,canonical",
    [("cifar10", "cifar10"), ("CIFAR-10", "cifar10"), ("cifar100", "cifar100"), ("Cifar-100", "cifar100"),
     ("ImageNet16-120", "ImageNet16-120"), ("imagenet16-120", "ImageNet16-120"), ("imagenet16", "ImageNet16-120")],
)
def test_dataset_info_aliases(alias, canonical):
    assert dataset_info(alias).name == canonical


def test_dataset_info_values():
    assert (CIFAR10.image_size, CIFAR10.crop_padding, CIFAR10.default_batch_size, CIFAR10.num_classes) == (32, 4, 256, 10)
    assert dataset_info("cifar100").num_classes == 100
    info = dataset_info("imagenet16")
    assert (info.image_size, info.crop_padding, info.default_batch_size, info.num_classes) == (16, 2, 512, 120)
    assert info.mean[0] == pytest.approx(122.68 / 255) and info.std[2] == pytest.approx(65.09 / 255)
    assert "cs.toronto.edu" in CIFAR10.source and "NAS-Bench-201" in info.source


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UnknownNameError) as error:
        dataset_info("mnist")
    assert_one_line(error, "'mnist'", *dataset_names())


# --------------------------------------------------------------------------- readers


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    write_cifar10(root, per_class=3, seed=1)
    write_cifar100(root, per_class=1, seed=2)
    write_imagenet16(root, per_class=2, seed=3, extra_labels=5)
    return root


def _raw_rows(folder: Path, names: list[str], label_key, encoding: str) -> tuple[np.ndarray, np.ndarray]:
    batches = [read_raw_pickle(folder / n, encoding) for n in names]
    return np.concatenate([b[label_key[0]] for b in batches]), np.concatenate([b[label_key[1]] for b in batches])


@pytest.mark.parametrize("split,files", [("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])])
def test_cifar10_reader_matches_raw_rows(fixture_root, split, files):
    ds = load_dataset("cifar10", fixture_root, split)
    rows, labels = _raw_rows(fixture_root / "cifar-10-batches-py", files, (b"data", b"labels"), "bytes")
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (30, 3, 32, 32) and ds.images.is_contiguous()
    assert ds.labels.dtype == torch.int64 and torch.equal(torch.bincount(ds.labels), torch.full((10,), 3))
    assert np.array_equal(ds.labels.numpy(), labels)
    # Row layout: channel-major, then row, then column.
    for i, c, y, x in [(0, 0, 0, 0), (4, 1, 7, 30), (29, 2, 31, 31)]:
        assert ds.images[i, c, y, x].item() == rows[i, c * 1024 + y * 32 + x]
    assert ds.info is CIFAR10 and ds.split == split


def test_cifar10_folder_itself_or_parent(fixture_root):
    a = load_dataset("cifar-10", fixture_root, "test")
    b = load_dataset("cifar-10", fixture_root / "cifar-10-batches-py", "test")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_cifar100_reader_uses_fine_labels(fixture_root):
    folder = fixture_root / "cifar-100-python"
    for split in ("train", "test"):
        ds = load_dataset("CIFAR100", fixture_root, split)
        raw = read_raw_pickle(folder / split)
        assert ds.images.shape == (100, 3, 32, 32)
        assert np.array_equal(ds.labels.numpy(), raw[b"fine_labels"])
        assert np.array_equal(ds.images.reshape(100, -1).numpy(), raw[b"data"])


@pytest.mark.parametrize("split", ["train", "test"])
def test_imagenet16_reader_filters_and_shifts_labels(fixture_root, split):
    folder = fixture_root / "ImageNet16"
    files = [f"train_data_batch_{i}" for i in range(1, 11)] if split == "train" else ["val_data"]
    rows, labels = _raw_rows(folder, files, ("data", "labels"), "latin1")
    assert labels.max() > 120  # the fixture holds labels the reader must drop
    keep = labels <= 120
    for where in (fixture_root, folder):
        ds = load_dataset("ImageNet16-120", where, split)
        assert ds.images.shape == (240, 3, 16, 16) and ds.info is IMAGENET16_120
        assert np.array_equal(ds.labels.numpy(), labels[keep] - 1)
        assert ds.labels.min() == 0 and ds.labels.max() == 119
        assert np.array_equal(ds.images.reshape(240, -1).numpy(), rows[keep])


def test_known_pixel_round_trip(tmp_path):
    folder = write_cifar10(tmp_path, per_class=1)
    images = np.zeros((3, 3, 32, 32), np.uint8)
    images[1, 2, 5, 7] = 200  # image 1, blue channel, row 5, column 7
    write_cifar_batch(folder / "test_batch", images, np.array([4, 5, 6]))
    ds = load_dataset("cifar10", tmp_path, "test")
    assert ds.images[1, 2, 5, 7].item() == 200 and int(ds.images.sum()) == 200
    assert ds.labels.tolist() == [4, 5, 6]

    folder16 = write_imagenet16(tmp_path, per_class=1)
    small = np.zeros((3, 3, 16, 16), np.uint8)
    small[2, 1, 3, 11] = 99
    write_imagenet16_batch(folder16 / "val_data", small, np.array([500, 8, 120]), with_mean=False)
    ds16 = load_dataset("imagenet16", tmp_path, "test")
    assert ds16.labels.tolist() == [7, 119]  # label 500 dropped, 1-based -> 0-based
    assert ds16.images[1, 1, 3, 11].item() == 99 and int(ds16.images.sum()) == 99


def test_image_dataset_subset_to_and_checks(fixture_root):
    ds = load_dataset("cifar10", fixture_root, "test")
    sub = ds.subset([5, 0, 5])
    assert len(sub) == 3 and torch.equal(sub.images[0], ds.images[5]) and torch.equal(sub.labels[1:2], ds.labels[:1])
    assert ds.subset(torch.tensor([2])).labels.item() == ds.labels[2].item()
    assert ds.to("cpu").images.device.type == "cpu" and len(ds) == 30
    with pytest.raises(DataError):
        ds.subset([30])
    with pytest.raises(DataError):
        ImageDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64), CIFAR10, "train")
    with pytest.raises(DataError):
        ImageDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64), CIFAR10, "train")


# --------------------------------------------------------------------------- reader errors


def test_missing_folder(tmp_path):
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", tmp_path / "nowhere")
    assert_one_line(error, "does not exist", "cifar-10-batches-py", "cs.toronto.edu")


def test_missing_files(tmp_path):
    folder = write_cifar10(tmp_path, per_class=1)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", tmp_path, "train")
    assert_one_line(error, "missing data_batch_3", "python version")
    assert len(load_dataset("cifar10", tmp_path, "test")) == 10  # the other split is intact
    with pytest.raises(DataError) as error:
        load_dataset("imagenet16", tmp_path, "test")
    assert_one_line(error, "val_data", "NAS-Bench-201")


def test_corrupt_and_malformed_files(tmp_path):
    folder = write_cifar10(tmp_path, per_class=1)
    path = folder / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", tmp_path, "test")
    assert_one_line(error, "test_batch", "corrupt or truncated")

    cases = {
        "wrong row length": {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]},
        "wrong dtype": {b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]},
        "missing data": {b"labels": [0, 1]},
        "label count": {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]},
        "label range": {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]},
    }
    for case, batch in cases.items():
        write_py2_pickle(path, batch)
        with pytest.raises(DataError) as error:
            load_dataset("cifar10", tmp_path, "test")
        assert_one_line(error)
        assert "test_batch" in str(error.value) or "labels range" in str(error.value), case
    write_py2_pickle(path, [1, 2, 3])
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", tmp_path, "test")
    assert_one_line(error, "not the official dict")


def test_malicious_dataset_file_is_refused(tmp_path):
    folder = write_cifar10(tmp_path, per_class=1)
    marker = tmp_path / "pwned"
    (folder / "test_batch").write_bytes(MALICIOUS["os.system"](marker))
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", tmp_path, "test")
    assert_one_line(error, "refusing to unpickle 'os.system'")
    assert not marker.exists()


def test_unknown_split_and_dataset(tmp_path):
    with pytest.raises(UnknownNameError) as error:
        load_dataset("cifar10", tmp_path, "valid")
    assert_one_line(error, "'valid'", "train, test")
    with pytest.raises(UnknownNameError) as error:
        load_dataset("svhn", tmp_path)
    assert_one_line(error, "cifar10")


# --------------------------------------------------------------------------- real CIFAR-10


@pytest.fixture(scope="module")
def real_cifar_root(tmp_path_factory) -> Path:
    pytest.importorskip("PIL")
    script = shared_file(MAKE_CIFAR10)
    root = tmp_path_factory.mktemp("real_cifar")
    subprocess.run([sys.executable, str(script), str(root), "--per-class", "5"], check=True, capture_output=True)
    return root


def test_real_cifar10_shapes_and_balance(real_cifar_root):
    for split in ("train", "test"):
        ds = load_dataset("cifar10", real_cifar_root, split)
        assert ds.images.shape == (50, 3, 32, 32)
        assert torch.equal(torch.bincount(ds.labels, minlength=10), torch.full((10,), 5))
        # Real photos, not noise: the split's mean colour is near CIFAR's normalization mean.
        mean = ds.images.double().mean(dim=(0, 2, 3)) / 255
        assert torch.allclose(mean, torch.tensor(CIFAR10.mean, dtype=torch.float64), atol=0.06)


def test_real_cifar10_pixels_match_exact_test_images(real_cifar_root):
    """The decoded test images equal the pixel-exact first CIFAR-10 test images up to JPEG error.

    make_cifar10.py names each image ``<class>_test_<k>.png`` with k its rank within its class
    in the official test order; the first 20 official test images all have k < 5.
    """
    exact = np.load(shared_file(CIFAR10_EXACT_PNG))
    classes = [str(c) for c in np.load(shared_file(CIFAR10_JPEG))["classes"]]
    ds = load_dataset("cifar10", real_cifar_root, "test")
    names = [n.decode() for n in safe_load(real_cifar_root / "cifar-10-batches-py" / "test_batch")[b"filenames"]]
    assert exact["test_index"].tolist() == list(range(20))
    rank: dict[int, int] = collections.Counter()
    errors, transposed = [], []
    for image, label in zip(exact["images"], exact["labels"]):
        position = names.index(f"{classes[label]}_test_{rank[label]:04d}.png")
        rank[label] += 1
        assert ds.labels[position].item() == label
        got = ds.images[position].numpy().astype(float)
        reference = image.transpose(2, 0, 1).astype(float)
        errors.append(np.abs(got - reference).mean())
        transposed.append(np.abs(got.transpose(0, 2, 1) - reference).mean())
    assert max(errors) < 12 and np.mean(errors) < 8  # one JPEG round trip: about 6/255 on average
    assert np.mean(transposed) > 4 * np.mean(errors)


# --------------------------------------------------------------------------- batches


def _tiny_info(channels: int = 3) -> DatasetInfo:
    return DatasetInfo("tiny", 4, 6, channels, (0.25, 0.5, 0.75)[:channels], (0.5, 0.25, 0.125)[:channels], 2, 8, "tests")


def _tiny_dataset(n: int = 40, seed: int = 0) -> ImageDataset:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 6, 6), generator=gen, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(n) % 4, _tiny_info(), "train")


def test_normalize_math():
    info = _tiny_info()
    images = torch.tensor([0, 51, 255], dtype=torch.uint8)[:, None, None].expand(3, 2, 2)[None].contiguous()
    out = normalize(images, info)
    assert out.dtype == torch.float32 and out.shape == (1, 3, 2, 2)
    expected = [(0 / 255 - 0.25) / 0.5, (51 / 255 - 0.5) / 0.25, (1 - 0.75) / 0.125]
    assert torch.allclose(out[0, :, 0, 0], torch.tensor(expected), atol=1e-6)
    data = _tiny_dataset().images
    mean, std = (torch.tensor(v, dtype=torch.float64)[:, None, None] for v in (info.mean, info.std))
    assert torch.allclose(normalize(data, info).double(), (data.double() / 255 - mean) / std, atol=1e-5)
    with pytest.raises(DataError):
        normalize(data.float(), info)
    with pytest.raises(DataError):
        normalize(data[:, :2], info)


def _crop(padded: torch.Tensor, r: int, c: int, h: int, w: int, flip: bool) -> torch.Tensor:
    window = padded[:, r : r + h, c : c + w]
    return window.flip(-1) if flip else window


def test_augment_replays_documented_stream():
    images = _tiny_dataset(n=64).images
    padding = 2
    out = augment(images, torch.Generator().manual_seed(7), padding)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    replay = torch.Generator().manual_seed(7)
    offsets = torch.randint(0, 2 * padding + 1, (64, 2), generator=replay)
    flips = torch.rand(64, generator=replay) < 0.5
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    for n in range(64):
        r, c = offsets[n].tolist()
        assert torch.equal(out[n], _crop(padded[n], r, c, 6, 6, bool(flips[n])))
    assert set(offsets.flatten().tolist()) == set(range(2 * padding + 1)) and 0 < int(flips.sum()) < 64


def test_augment_outputs_are_valid_crops_and_flips():
    """Without replaying the generator: every output is exactly one crop/flip of its padded input."""
    images = _tiny_dataset(n=32, seed=3).images
    out = augment(images, torch.Generator().manual_seed(11), 1)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    seen_flips = set()
    for n in range(32):
        matches = [
            (r, c, f) for r in range(3) for c in range(3) for f in (False, True)
            if torch.equal(out[n], _crop(padded[n], r, c, 6, 6, f))
        ]
        assert len(matches) == 1
        seen_flips.add(matches[0][2])
    assert seen_flips == {False, True}


def test_augment_hand_made_image():
    image = torch.arange(16, dtype=torch.uint8).reshape(1, 1, 4, 4).repeat(200, 1, 1, 1)
    out = augment(image, torch.Generator().manual_seed(0), 0)
    is_plain = (out == image).flatten(1).all(1)
    is_flipped = (out == image.flip(-1)).flatten(1).all(1)
    assert bool((is_plain ^ is_flipped).all()) and 60 < int(is_flipped.sum()) < 140
    shifted = augment(image, torch.Generator().manual_seed(0), 4)
    assert (shifted == 0).any()  # zero padding shows up in off-centre crops
    assert torch.equal(augment(image, torch.Generator().manual_seed(5), 3), augment(image, torch.Generator().manual_seed(5), 3))
    assert not torch.equal(augment(image, torch.Generator().manual_seed(5), 3), augment(image, torch.Generator().manual_seed(6), 3))
    with pytest.raises(DataError):
        augment(image, torch.Generator(), -1)


def test_draw_batch_is_seeded():
    ds = _tiny_dataset()
    x1, y1 = draw_batch(ds, 16, seed=42)
    x2, y2 = draw_batch(ds, 16, seed=42)
    x3, _ = draw_batch(ds, 16, seed=43)
    assert x1.shape == (16, 3, 6, 6) and x1.dtype == torch.float32 and y1.dtype == torch.int64
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)
    plain, labels = draw_batch(ds, 16, seed=42, augment=False)
    assert torch.equal(labels, y1)
    # Each unaugmented image is a distinct dataset image with its own label.
    flat = normalize(ds.images, ds.info).flatten(1)
    found = [int(torch.nonzero((flat == row).all(1))[0]) for row in plain.flatten(1)]
    assert len(set(found)) == 16 and torch.equal(ds.labels[found], labels)
    with pytest.raises(DataError) as error:
        draw_batch(ds, 41)
    assert_one_line(error, "41", "40 images")
    with pytest.raises(DataError):
        draw_batch(ds, 0)


def test_first_images_unshuffled():
    ds = _tiny_dataset()
    x, y = first_images(ds, 5)
    assert torch.equal(x, normalize(ds.images[:5], ds.info)) and torch.equal(y, ds.labels[:5])
    with pytest.raises(DataError):
        first_images(ds, 41)


def test_label_sorted_batch_is_stable_sort_of_seeded_batch():
    ds = _tiny_dataset()
    xb, yb = draw_batch(ds, 8, seed=5, augment=False)
    order = torch.sort(yb, stable=True).indices
    x, y = label_sorted_batch(ds, 3, seed=5, batch_size=8)
    assert torch.equal(x, xb[order[:3]]) and torch.equal(y, yb[order[:3]])
    assert bool((y[1:] >= y[:-1]).all())
    # Default batch: the dataset's default_batch_size (8 here) ...
    _, default_y = label_sorted_batch(ds, 8, seed=5)
    assert torch.equal(default_y, yb[order])
    with pytest.raises(DataError):
        label_sorted_batch(ds, 9, seed=5)
    # ... or the whole split when that is smaller.
    small = ds.subset(range(5))
    _, all_y = label_sorted_batch(small, 5, seed=0)
    assert all_y.tolist() == sorted(small.labels.tolist())


def test_epoch_batches_cover_split_once():
    ds = _tiny_dataset(n=23)
    batches = list(epoch_batches(ds, 5, torch.Generator().manual_seed(1), augment=False))
    assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
    images = torch.cat([x for x, _ in batches])
    expected = normalize(ds.images, ds.info)
    found = sorted(int(torch.nonzero((expected.flatten(1) == row).all(1))[0]) for row in images.flatten(1))
    assert found == list(range(23))
    assert len(list(epoch_batches(ds, 5, torch.Generator().manual_seed(1), drop_last=True))) == 4
    a = [x for x, _ in epoch_batches(ds, 5, torch.Generator().manual_seed(2))]
    b = [x for x, _ in epoch_batches(ds, 5, torch.Generator().manual_seed(2))]
    assert all(torch.equal(p, q) for p, q in zip(a, b)) and a[0].dtype == torch.float32
    with pytest.raises(DataError):
        epoch_batches(ds, 24, torch.Generator(), drop_last=True)
    with pytest.raises(DataError):
        epoch_batches(ds, 0, torch.Generator())


def test_pipeline_on_fixture_imagenet16(fixture_root):
    ds = load_dataset("imagenet16", fixture_root, "train")
    x, y = draw_batch(ds, 64)
    assert x.shape == (64, 3, 16, 16) and y.max() < 120


# --------------------------------------------------------------------------- digits


def test_digits_dataset_shapes_split_and_stats():
    train, test = load_digits_dataset()
    assert len(train) + len(test) == 1797
    assert train.images.shape[1:] == (3, 16, 16) and train.images.dtype == torch.uint8
    assert torch.equal(train.images[:, 0], train.images[:, 2])
    counts = torch.bincount(torch.cat([train.labels, test.labels]), minlength=10)
    test_counts = torch.bincount(test.labels, minlength=10)
    assert torch.equal(test_counts, torch.round(counts.double() * 0.3).long())
    info = train.info
    assert info.name == "digits" and info.crop_padding == 2 and info.num_classes == 10 and test.info is info
    unit = train.images.double() / 255
    assert info.mean[1] == pytest.approx(float(unit.mean()))
    assert info.std[0] == pytest.approx(float(unit.std(correction=0)))
    x, _ = draw_batch(train, 256)
    assert abs(float(x.mean())) < 0.3  # normalized with its own statistics


def test_digits_deterministic_and_native_size():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    a_train, a_test = load_digits_dataset(seed=1)
    b_train, b_test = load_digits_dataset(seed=1)
    c_train, _ = load_digits_dataset(seed=2)
    assert torch.equal(a_train.images, b_train.images) and torch.equal(a_test.labels, b_test.labels)
    assert not torch.equal(a_train.images, c_train.images)
    native, _ = load_digits_dataset(image_size=8, test_fraction=0.5, seed=0)
    pixels = sklearn_datasets.load_digits().images
    scaled = np.round(pixels * 255 / 16).astype(np.uint8)
    first = native.images[0, 0].numpy()
    assert any(np.array_equal(first, p) for p in scaled)


def test_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(NtknasError) as error:
        load_digits_dataset()
    assert_one_line(error, "pip install 'ntknas[demo]'")
