from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from data import (
    DATA_DIR_ENV_VAR,
    DatasetChecksumError,
    DatasetNotFoundError,
    _sources,
    build_loaders,
    clear_dataset_cache,
    get_dataset_info,
    load_raw,
    resolve_data_dir,
    split_indices,
)

from ..conftest import N_TEST, N_TRAIN, FakeSplits, write_cifar10

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn"])
def test_load_raw_matches_written_files(name: str, all_files: dict[str, FakeSplits]) -> None:
    files = all_files[name]
    raw = load_raw(get_dataset_info(name), files.root, verify=False)
    assert raw.train_images.dtype == torch.uint8
    assert raw.train_images.shape == (N_TRAIN, 3, 32, 32)
    assert raw.test_images.shape == (N_TEST, 3, 32, 32)
    assert raw.train_labels.dtype == raw.test_labels.dtype == torch.int64
    np.testing.assert_array_equal(raw.train_images.numpy(), files.train_images)
    np.testing.assert_array_equal(raw.test_images.numpy(), files.test_images)
    np.testing.assert_array_equal(raw.train_labels.numpy(), files.train_labels)
    np.testing.assert_array_equal(raw.test_labels.numpy(), files.test_labels)


def test_svhn_label_10_is_digit_0(svhn_files: FakeSplits) -> None:
    raw = load_raw(get_dataset_info("svhn"), svhn_files.root, verify=False)
    assert raw.train_labels[0] == 0  # written as 10
    assert raw.train_labels.min() >= 0 and raw.train_labels.max() <= 9


def test_cifar100_fine_labels(cifar100_files: FakeSplits) -> None:
    raw = load_raw(get_dataset_info("cifar100"), cifar100_files.root, verify=False)
    assert raw.train_labels[0] == 99
    assert raw.train_labels.max() < 100


def test_missing_dataset_names_path_and_remedy(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as excinfo:
        build_loaders("cifar10", data_dir=tmp_path)
    message = str(excinfo.value)
    assert isinstance(excinfo.value, FileNotFoundError)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "--download" in message and "--data-dir" in message and "'cifar10'" in message
    assert "\n" not in message


def test_missing_svhn_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="--download") as excinfo:
        build_loaders("svhn", data_dir=tmp_path)
    assert str(tmp_path / "svhn" / "train_32x32.mat") in str(excinfo.value)


def test_partially_missing_cifar_names_the_file(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    missing = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    missing.unlink()
    with pytest.raises(DatasetNotFoundError) as excinfo:
        load_raw(get_dataset_info("cifar10"), tmp_path, verify=False)
    assert str(missing) in str(excinfo.value)


def test_verify_checks_md5(cifar10_files: FakeSplits) -> None:
    # Our files are not the genuine ones, so torchvision's md5 check must reject them.
    with pytest.raises(DatasetChecksumError, match="md5") as info:
        load_raw(get_dataset_info("cifar10"), cifar10_files.root, verify=True)
    assert isinstance(info.value, RuntimeError) and "\n" not in str(info.value)


def test_data_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(DATA_DIR_ENV_VAR, raising=False)
    assert resolve_data_dir() == Path.home() / ".cache" / "spherical-bn" / "datasets"
    monkeypatch.setenv(DATA_DIR_ENV_VAR, str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"


def test_env_var_is_honoured(monkeypatch: pytest.MonkeyPatch, svhn_files: FakeSplits) -> None:
    monkeypatch.setenv(DATA_DIR_ENV_VAR, str(svhn_files.root))
    loaders = build_loaders("svhn", verify=False)
    assert loaders.n_test == N_TEST


def test_split_deterministic_and_disjoint() -> None:
    train, val = split_indices(1000, 0.05, seed=3)
    train2, val2 = split_indices(1000, 0.05, seed=3)
    assert torch.equal(train, train2) and torch.equal(val, val2)
    assert len(val) == 50 and len(train) == 950  # 5% of 1000
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(1000))
    _, val_other = split_indices(1000, 0.05, seed=4)
    assert not torch.equal(val, val_other)


def test_split_does_not_touch_global_rng() -> None:
    state = torch.get_rng_state()
    split_indices(100, 0.05, seed=0)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_split_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="val_fraction must be in"):
        split_indices(100, fraction, seed=0)


def test_paper_split_sizes() -> None:
    train, val = split_indices(50_000, get_dataset_info("cifar10").val_fraction, seed=0)
    assert (len(train), len(val)) == (47_500, 2_500)


def test_loaders_use_the_seeded_split(cifar10_files: FakeSplits) -> None:
    a = build_loaders("cifar10", data_dir=cifar10_files.root, verify=False, seed=5)
    again = build_loaders("cifar10", data_dir=cifar10_files.root, verify=False, seed=5)
    other = build_loaders("cifar10", data_dir=cifar10_files.root, verify=False, seed=6)
    assert (a.n_train, a.n_val, a.n_test) == (N_TRAIN - 2, 2, N_TEST)  # round(0.05 * 40) = 2
    assert sorted(a.train_indices.tolist() + a.val_indices.tolist()) == list(range(N_TRAIN))
    assert torch.equal(a.val_indices, again.val_indices)
    assert not torch.equal(a.val_indices, other.val_indices)


@pytest.mark.parametrize("source", ["scikit-learn's file", "load_digits"])
def test_digits(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.datasets import load_digits

    if source == "load_digits":  # where scikit-learn's layout is not the known one
        monkeypatch.setattr(_sources, "_digits_file", lambda: None)
    else:
        assert _sources._digits_file() is not None
    clear_dataset_cache()
    info = get_dataset_info("digits")
    raw = load_raw(info)
    clear_dataset_cache()
    assert raw.train_images.shape == (1497, 1, 8, 8)
    assert raw.test_images.shape == (300, 1, 8, 8)
    assert raw.train_images.dtype == torch.uint8
    # The fixed test split: images 0, 6, 12, ... of load_digits(); the rest is train.
    digits = load_digits()
    is_test = np.zeros(1797, dtype=bool)
    is_test[::6] = True
    np.testing.assert_array_equal(raw.test_labels.numpy(), digits.target[is_test])
    np.testing.assert_array_equal(raw.train_labels.numpy(), digits.target[~is_test])
    assert set(raw.test_labels.tolist()) == set(range(10))
    # Pixels 0..16 become 0..255, and dividing by 255/16 and rounding gives them back.
    for images, source in ((raw.train_images, ~is_test), (raw.test_images, is_test)):
        pixels = images[:, 0].numpy()
        assert (pixels.min(), pixels.max()) == (0, 255)
        np.testing.assert_array_equal(np.round(pixels / (255 / 16)), digits.images[source])
    # The registry's normalisation constants are the statistics of the train split.
    pixels = raw.train_images.double() / 255
    assert pixels.mean().item() == pytest.approx(info.mean[0], abs=1e-4)  # type: ignore[index]
    assert pixels.std(unbiased=False).item() == pytest.approx(info.std[0], abs=1e-4)  # type: ignore[index]


def test_digits_loaders() -> None:
    loaders = build_loaders("digits", batch_size=256)
    assert (loaders.n_train, loaders.n_val, loaders.n_test) == (1198, 299, 300)
    images, labels = next(iter(loaders.train))
    assert images.shape == (256, 1, 8, 8) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert loaders.info.num_classes == 10


def test_reading_digits_leaves_scikit_learn_unimported() -> None:
    # Its import is 1.5–3 s of CPU in every process that reads digits.
    code = (
        "import sys; from data import get_dataset_info, load_raw; "
        "raw = load_raw(get_dataset_info('digits')); "
        "print(len(raw.train_images), 'sklearn' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.split() == ["1497", "False"]
