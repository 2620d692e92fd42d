"""Datasets of one's own by import path: the split, the normalisation, augmentation on request,
float images, the per-process cache, and one clear line for every broken rule.

Expected values are computed here from the functions' tensors with numpy and a fresh
``torch.randperm``, not with the code under test."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import data._sources
from data import (
    CUSTOM_VAL_FRACTION,
    DeviceLoader,
    SettingError,
    build_loaders,
    clear_dataset_cache,
    get_dataset_info,
    load_dataset_function,
    load_raw,
)

from . import own_datasets

MODULE = "tests.data_tests.own_datasets"
UINT8 = f"{MODULE}:uint8_images"
FLOAT = f"{MODULE}:float_images"


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    clear_dataset_cache()


def _epoch(loader) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader)
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def _expected_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: the first round(10% of n) of a seeded permutation go to val."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    n_val = round(0.1 * n)
    return perm[n_val:], perm[:n_val]


@pytest.mark.parametrize("seed", [0, 7])
def test_uint8_dataset_split_and_normalisation(seed: int) -> None:
    x_train, y_train, x_test, y_test = (t.numpy() for t in own_datasets.uint8_images())
    loaders = build_loaders(UINT8, batch_size=16, seed=seed)
    train_idx, val_idx = _expected_split(50, seed)
    assert CUSTOM_VAL_FRACTION == 0.1
    np.testing.assert_array_equal(loaders.train_indices.numpy(), train_idx)
    np.testing.assert_array_equal(loaders.val_indices.numpy(), val_idx)
    assert (loaders.n_train, loaders.n_val, loaders.n_test) == (45, 5, 10)

    pixels = x_train[train_idx] / 255.0  # the training split only: no val, no test
    mean, std = pixels.mean(axis=(0, 2, 3)), pixels.std(axis=(0, 2, 3))
    info = loaders.info
    np.testing.assert_allclose(info.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(info.std, std, rtol=1e-12)
    assert (info.num_classes, info.in_channels, info.image_size) == (5, 3, 8)
    assert info.augment is False and loaders.train.augment is False

    def normalised(x: np.ndarray) -> np.ndarray:
        return (x / 255.0 - mean[:, None, None]) / std[:, None, None]

    val_x, val_y = _epoch(loaders.val)
    np.testing.assert_allclose(val_x.numpy(), normalised(x_train[val_idx]), atol=1e-5)
    np.testing.assert_array_equal(val_y.numpy(), y_train[val_idx])
    test_x, test_y = _epoch(loaders.test)
    np.testing.assert_allclose(test_x.numpy(), normalised(x_test), atol=1e-5)
    np.testing.assert_array_equal(test_y.numpy(), y_test)
    train_x, _ = _epoch(loaders.train)  # shuffled, unaugmented: the same images
    expected = normalised(x_train[train_idx]).reshape(45, -1)
    got = train_x.numpy().reshape(45, -1)
    distances = np.abs(got[:, None, :] - expected[None, :, :]).max(axis=2)
    assert sorted(distances.argmin(axis=1)) == list(range(45))  # a permutation of them
    assert distances.min(axis=1).max() < 1e-5


def test_float_dataset_non_square_images() -> None:
    x_train, _, x_test, _ = (t.numpy() for t in own_datasets.float_images())
    loaders = build_loaders(FLOAT, batch_size=8, seed=3)
    train_idx, val_idx = _expected_split(40, 3)
    # Floats are taken as they are (no / 255), as float32.
    x_train, x_test = (x.astype(np.float32).astype(np.float64) for x in (x_train, x_test))
    pixels = x_train[train_idx]
    assert loaders.info.image_size == (6, 10) and loaders.info.num_classes == 4
    np.testing.assert_allclose(loaders.info.mean, pixels.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(loaders.info.std, pixels.std(axis=(0, 2, 3)), rtol=1e-12)
    mean, std = loaders.info.mean[0], loaders.info.std[0]
    val_x, _ = _epoch(loaders.val)
    assert val_x.dtype == torch.float32
    np.testing.assert_allclose(val_x.numpy(), (x_train[val_idx] - mean) / std, atol=1e-5)
    test_x, _ = _epoch(loaders.test)
    np.testing.assert_allclose(test_x.numpy(), (x_test - mean) / std, atol=1e-5)


def test_a_constant_channel_is_centred_not_divided_by_zero() -> None:
    loaders = build_loaders(f"{MODULE}:constant_channel", batch_size=4)
    assert loaders.info.mean[1] == pytest.approx(0.5) and loaders.info.std[1] == 1.0
    x, _ = _epoch(loaders.val)
    assert torch.isfinite(x).all() and torch.equal(x[:, 1], torch.zeros_like(x[:, 1]))


def test_augmentation_only_when_asked_and_the_registry_default_can_be_overridden() -> None:
    assert not build_loaders(FLOAT).train.augment
    assert build_loaders(FLOAT, augment=True).info.augment is True
    assert not get_dataset_info("digits").augment
    assert build_loaders("digits", augment=True).train.augment
    assert build_loaders("digits").train.augment is False


def test_float_images_are_cropped_and_flipped_like_uint8_ones() -> None:
    """Every augmented image is one of the 9x9 zero-padded crops, flipped or not, of a source
    image, and every source image appears once per epoch."""
    images = torch.randn(6, 1, 5, 5, generator=torch.Generator().manual_seed(4))
    loader = DeviceLoader(
        images,
        torch.arange(6),
        batch_size=6,
        mean=None,
        std=None,
        shuffle=True,
        augment=True,
        seed=0,
    )
    for _ in range(3):
        out, labels = _epoch(loader)
        assert sorted(labels.tolist()) == list(range(6))
        for image, label in zip(out, labels, strict=True):
            padded = torch.nn.functional.pad(images[label], (4, 4, 4, 4))
            crops = [padded[:, y : y + 5, x : x + 5] for y in range(9) for x in range(9)]
            assert any(torch.equal(image, c) or torch.equal(image, c.flip(-1)) for c in crops)


def test_device_loader_refuses_integer_images_other_than_uint8() -> None:
    with pytest.raises(ValueError, match=r"^images must be a uint8 or float \(N, C, H, W\)"):
        DeviceLoader(
            torch.zeros(2, 1, 2, 2, dtype=torch.int32),
            torch.zeros(2),
            batch_size=1,
            mean=None,
            std=None,
        )


def test_the_cached_tensors_are_never_modified() -> None:
    raw = load_dataset_function(FLOAT)
    before = [t.clone() for t in (raw.train_images, raw.test_images)]
    for augment in (False, True):
        loaders = build_loaders(FLOAT, batch_size=5, augment=augment)
        for loader in (loaders.train, loaders.val, loaders.test):
            for x, _ in loader:
                x.add_(100.0)  # a consumer writing into its batch
    assert torch.equal(raw.train_images, before[0]) and torch.equal(raw.test_images, before[1])


def test_a_dataset_function_is_called_once_per_process() -> None:
    calls = own_datasets.CALLS.get("float_images", 0)
    build_loaders(FLOAT)
    build_loaders(FLOAT, seed=1, with_test=False)
    assert load_dataset_function(FLOAT, with_test=False).test_images is None
    assert own_datasets.CALLS["float_images"] == calls + 1
    clear_dataset_cache()
    build_loaders(FLOAT)
    assert own_datasets.CALLS["float_images"] == calls + 2


def test_the_cache_keeps_the_two_most_recent_datasets() -> None:
    calls = dict(own_datasets.CALLS)
    build_loaders(FLOAT)
    build_loaders(UINT8)
    build_loaders(FLOAT)  # still cached
    build_loaders(f"{MODULE}:constant_channel")  # evicts UINT8, the least recently used
    build_loaders(FLOAT)
    build_loaders(UINT8)
    assert own_datasets.CALLS["float_images"] == calls.get("float_images", 0) + 1
    assert own_datasets.CALLS["uint8_images"] == calls.get("uint8_images", 0) + 2


def test_registry_reads_are_cached_by_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[bool] = []
    real = data._sources._load_digits

    def counting(with_test: bool = True):
        reads.append(with_test)
        return real(with_test)

    monkeypatch.setattr(data._sources, "_load_digits", counting)
    info = get_dataset_info("digits")
    first = load_raw(info)
    assert load_raw(info) is first and build_loaders("digits").n_test == 300
    train_only = load_raw(info, with_test=False)
    assert train_only.test_images is None and reads == [True, False]


def test_a_registry_read_is_keyed_by_the_resolved_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cifar10_files
) -> None:
    monkeypatch.chdir(cifar10_files.root.parent)
    info = get_dataset_info("cifar10")
    absolute = load_raw(info, cifar10_files.root, verify=False)
    assert load_raw(info, cifar10_files.root.name, verify=False) is absolute
    assert load_raw(info, cifar10_files.root, verify=False, with_test=False) is not absolute


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "a_list_of_three",
            "must return a tuple of 4 (x_train, y_train, x_test, y_test) tensors, "
            "but it returned a list of 3",
        ),
        ("numpy_arrays", "must return (x_train, y_train, x_test, y_test) tensors, but x_train "
                         "is a ndarray"),
        ("raises", "must return the dataset when called with no arguments, but it raised "
                   "RuntimeError: the download failed"),
        ("images_3d", "must return x_train as uint8 (0-255) or float images of shape "
                      "(N, C, H, W), but got torch.float32 of shape (6, 4, 4)"),
        ("int32_images", "x_train as uint8 (0-255) or float images of shape (N, C, H, W), "
                         "but got torch.int32"),
        ("int32_labels", "must return y_train as int64 labels of shape (N,), but got "
                         "torch.int32 of shape (6,)"),
        ("one_label_short", "must return one label per train image, but got 6 images and "
                            "5 labels"),
        ("negative_label", "must return labels from 0, but y_train holds -1"),
        ("unseen_test_label", "must return test labels among the training labels' 0 .. 2, "
                              "but y_test holds 3"),
        ("nan_pixel", "must return finite values in x_train, but it holds NaN or infinity"),
        ("mixed_dtypes", "must return x_test with x_train's dtype and (C, H, W)"),
        ("one_training_image", "must return at least 2 training images"),
        ("NOT_CALLABLE", "must name a function, but 'NOT_CALLABLE' is a int"),
        ("nope", f"must name an attribute of {MODULE!r}, but it has no 'nope'"),
    ],
)  # fmt: skip
def test_each_broken_rule_is_one_line_naming_the_path(name: str, message: str) -> None:
    path = f"{MODULE}:{name}"
    with pytest.raises(SettingError) as info:
        build_loaders(path)
    text = str(info.value)
    assert text.startswith(f"dataset {path!r} ") and message in text, text
    assert "\n" not in text and isinstance(info.value, ValueError)


def test_a_module_that_does_not_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_dataset_module.py").write_text("import not_a_module_anywhere\n")
    (tmp_path / "failing_dataset_module.py").write_text("raise OSError('no disk')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for module, why in (
        ("no_such_package.data", "ModuleNotFoundError: No module named 'no_such_package'"),
        ("broken_dataset_module", "ModuleNotFoundError: No module named 'not_a_module_any"),
        ("failing_dataset_module", "OSError: no disk"),
    ):
        with pytest.raises(SettingError) as info:
            build_loaders(f"{module}:load")
        assert str(info.value).startswith(
            f"dataset '{module}:load' must import, but importing {module!r} raised {why}"
        )
    sys.modules.pop("failing_dataset_module", None)


@pytest.mark.parametrize(
    "device",
    [
        pytest.param(
            "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
        )
    ],
)
def test_float_batches_are_the_same_on_every_device(device: str) -> None:
    cpu = build_loaders(FLOAT, batch_size=8, augment=True)
    other = build_loaders(FLOAT, batch_size=8, augment=True, device=device)
    for a, b in ((cpu.train, other.train), (cpu.val, other.val), (cpu.test, other.test)):
        (xa, ya), (xb, yb) = _epoch(a), _epoch(b)
        assert torch.equal(ya, yb.cpu())
        torch.testing.assert_close(xa, xb.cpu(), rtol=0, atol=1e-6)
