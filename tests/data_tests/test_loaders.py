from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from data import CROP_PADDING, DeviceLoader, build_loaders, get_dataset_info

from ..conftest import N_TEST, N_TRAIN, FakeSplits

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    ),
]


def _build(files: FakeSplits, name: str, **kwargs):
    return build_loaders(name, data_dir=files.root, verify=False, **kwargs)


def _epoch(loader) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader)
    return torch.cat([x for x, _ in batches]).cpu(), torch.cat([y for _, y in batches]).cpu()


def _to_uint8(images: torch.Tensor, name: str) -> torch.Tensor:
    """Undo the normalisation; exact after rounding."""
    info = get_dataset_info(name)
    x = images.double()
    if info.mean is not None and info.std is not None:
        mean, std = (torch.tensor(v).reshape(-1, 1, 1) for v in (info.mean, info.std))
        x = x * std + mean
    return (x * 255).round().to(torch.uint8)


def _candidates(image: torch.Tensor, pad: int) -> torch.Tensor:
    """All (2 * pad + 1)^2 crops of the zero-padded image, unflipped and flipped."""
    _, h, w = image.shape
    padded = torch.nn.functional.pad(image, (pad, pad, pad, pad))
    crops = torch.stack(
        [
            padded[:, dy : dy + h, dx : dx + w]
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
        ]
    )
    return torch.cat([crops, crops.flip(-1)])


def _is_valid_crop(out: torch.Tensor, source: torch.Tensor, pad: int = CROP_PADDING) -> bool:
    return bool((_candidates(source, pad) == out).flatten(1).all(1).any())


def _multiset(images: torch.Tensor) -> list[tuple[float, ...]]:
    return sorted(map(tuple, images.flatten(1).tolist()))


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn"])
def test_shapes_dtypes_and_batches(name: str, all_files: dict[str, FakeSplits]) -> None:
    loaders = _build(all_files[name], name, batch_size=16, eval_batch_size=8)
    n_train = N_TRAIN - 2
    assert len(loaders.train) == math.ceil(n_train / 16) == 3
    batches = list(loaders.train)
    assert len(batches) == 3 and len(batches[-1][1]) == n_train - 32  # drop_last=False
    for images, labels in batches:
        assert images.dtype == torch.float32 and images.shape[1:] == (3, 32, 32)
        assert labels.dtype == torch.int64
        assert labels.min() >= 0 and labels.max() < loaders.info.num_classes
    assert len(loaders.test) == math.ceil(N_TEST / 8)
    assert sum(len(y) for _, y in loaders.test) == N_TEST
    assert sum(len(y) for _, y in loaders.val) == loaders.n_val == 2


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn"])
def test_normalisation_of_test_pixels(name: str, all_files: dict[str, FakeSplits]) -> None:
    files, info = all_files[name], get_dataset_info(name)
    images, labels = _epoch(_build(files, name).test)
    expected = files.test_images.astype(np.float64) / 255
    if info.mean is not None and info.std is not None:
        expected = (expected - np.reshape(info.mean, (-1, 1, 1))) / np.reshape(
            info.std, (-1, 1, 1)
        )
    else:
        assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_allclose(images.numpy(), expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(labels.numpy(), files.test_labels)


def test_val_is_unaugmented_train_images(cifar10_files: FakeSplits) -> None:
    loaders = _build(cifar10_files, "cifar10", batch_size=4)
    first, second = _epoch(loaders.val), _epoch(loaders.val)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    val = loaders.val_indices.numpy()
    np.testing.assert_array_equal(_to_uint8(first[0], "cifar10"), cifar10_files.train_images[val])
    np.testing.assert_array_equal(first[1].numpy(), cifar10_files.train_labels[val])


@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_same_batches_on_every_device(device: str, cifar10_files: FakeSplits) -> None:
    on_cpu = _build(cifar10_files, "cifar10", batch_size=8, seed=3)
    there = _build(cifar10_files, "cifar10", batch_size=8, seed=3, device=device)
    assert there.train.images.device.type == device
    for _ in range(2):  # two epochs of augmented training batches
        for (xa, ya), (xb, yb) in zip(on_cpu.train, there.train, strict=True):
            assert torch.equal(ya, yb.cpu())
            assert torch.equal(_to_uint8(xa, "cifar10"), _to_uint8(xb.cpu(), "cifar10"))
    for split in ("val", "test"):
        for (xa, ya), (xb, yb) in zip(getattr(on_cpu, split), getattr(there, split), strict=True):
            assert torch.equal(ya, yb.cpu()) and torch.equal(xa, xb.cpu())


def test_train_covers_the_train_split_once(svhn_files: FakeSplits) -> None:
    loaders = _build(svhn_files, "svhn", batch_size=16)
    first, second = _epoch(loaders.train), _epoch(loaders.train)
    assert not torch.equal(first[1], second[1]) or not torch.equal(first[0], second[0])  # shuffled
    train = svhn_files.train_images[loaders.train_indices.numpy()]
    # SVHN is not augmented: every epoch is a permutation of the very same images.
    expected = _multiset(torch.from_numpy(train))
    assert _multiset(_to_uint8(first[0], "svhn")) == expected
    assert _multiset(_to_uint8(second[0], "svhn")) == expected


def test_cifar_train_is_augmented_with_valid_crops(cifar10_files: FakeSplits) -> None:
    loaders = _build(cifar10_files, "cifar10", batch_size=16)
    train = torch.from_numpy(cifar10_files.train_images[loaders.train_indices.numpy()])
    first, second = _epoch(loaders.train), _epoch(loaders.train)
    assert _multiset(_to_uint8(first[0], "cifar10")) != _multiset(_to_uint8(second[0], "cifar10"))
    assert _multiset(_to_uint8(first[0], "cifar10")) != _multiset(train)
    labels = torch.from_numpy(cifar10_files.train_labels[loaders.train_indices.numpy()])
    for out, label in zip(_to_uint8(first[0], "cifar10"), first[1], strict=True):
        sources = train[labels == label]
        assert any(_is_valid_crop(out, source) for source in sources)


def test_train_order_reproducible_per_epoch(cifar10_files: FakeSplits) -> None:
    loaders = _build(cifar10_files, "cifar10", batch_size=16, seed=7)
    epoch0, epoch1 = _epoch(loaders.train), _epoch(loaders.train)  # iter() advances the epoch
    assert not torch.equal(epoch0[0], epoch1[0])
    resumed = _build(cifar10_files, "cifar10", batch_size=16, seed=7)
    resumed.train.set_epoch(1)
    replay1 = _epoch(resumed.train)
    resumed.train.set_epoch(0)
    replay0 = _epoch(resumed.train)
    for a, b in ((epoch0, replay0), (epoch1, replay1)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    other_seed = _build(cifar10_files, "cifar10", batch_size=16, seed=8)
    assert not torch.equal(_epoch(other_seed.train)[0], epoch0[0])


def test_train_leaves_global_rng_alone(cifar10_files: FakeSplits) -> None:
    loaders = _build(cifar10_files, "cifar10", batch_size=16)
    state = torch.get_rng_state()
    _epoch(loaders.train)
    assert torch.equal(state, torch.get_rng_state())


def test_device_loader_crops_each_image_from_its_source() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 12, 10), dtype=torch.uint8, generator=generator)
    loader = DeviceLoader(
        images,
        torch.arange(64),  # labels identify the source image
        batch_size=24,
        mean=None,
        std=None,
        shuffle=True,
        augment=True,
        seed=1,
    )
    out, index = _epoch(loader)
    out = (out * 255).round().to(torch.uint8)
    assert sorted(index.tolist()) == list(range(64))
    n_crops = (2 * CROP_PADDING + 1) ** 2
    params = set()
    for image, i in zip(out, index, strict=True):
        matches = (_candidates(images[i], CROP_PADDING) == image).flatten(1).all(1)
        assert matches.any(), f"output for image {i} is not a crop of it"
        params.add(int(matches.nonzero()[0]))
    flipped = {p >= n_crops for p in params}
    offsets = {p % n_crops for p in params}
    assert flipped == {False, True} and len(offsets) > 10


def test_train_subset(cifar10_files: FakeSplits) -> None:
    full = _build(cifar10_files, "cifar10")
    small = _build(cifar10_files, "cifar10", train_subset=5, batch_size=2)
    assert small.n_train == 5 and len(small.train) == 3
    assert torch.equal(small.train_indices, full.train_indices[:5])
    assert torch.equal(small.val_indices, full.val_indices)
    # 40 training images, 2 (5%) for validation: at most 38 to train on.
    with pytest.raises(ValueError, match=r"^train_subset must be an integer from 1 to 38 "):
        _build(cifar10_files, "cifar10", train_subset=N_TRAIN)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eval_batch_size": -1}, "^eval_batch_size must be a positive integer, but got -1$"),
        ({"batch_size": 0}, "^batch_size must be a positive integer, but got 0$"),
        ({"seed": -1}, "^seed must be an integer from 0 to 2147483647, but got -1$"),
        ({"seed": 2**31}, "^seed must be an integer from 0 to 2147483647, but got 2147483648$"),
        ({"train_subset": 0}, "^train_subset must be None or a positive integer, but got 0$"),
        ({"augment": 1}, "^augment must be a bool, but got 1$"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_loaders("digits", **kwargs)
