from __future__ import annotations

import dataclasses

import pytest

from data import DatasetInfo, get_dataset_info, list_datasets


def test_list_datasets() -> None:
    assert list_datasets() == ["cifar10", "cifar100", "digits", "svhn"]


def test_unknown_dataset_message() -> None:
    with pytest.raises(ValueError, match=r"^Unknown dataset 'mnist'; available: \['cifar10'"):
        get_dataset_info("mnist")


def test_info_is_frozen() -> None:
    info = get_dataset_info("cifar10")
    assert isinstance(info, DatasetInfo)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.val_fraction = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "mean", "std"),
    [
        ("cifar10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        ("cifar100", (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
        ("svhn", None, None),
    ],
)
def test_paper_constants(name: str, mean: tuple | None, std: tuple | None) -> None:
    info = get_dataset_info(name)
    assert (info.mean, info.std) == (mean, std)
    assert info.val_fraction == 0.05
    assert info.augment is name.startswith("cifar")
    assert (info.in_channels, info.image_size) == (3, 32)


def test_info_consistent() -> None:
    for name in list_datasets():
        info = get_dataset_info(name)
        assert info.name == name
        if info.mean is not None:
            assert info.std is not None
            assert len(info.mean) == len(info.std) == info.in_channels
    assert get_dataset_info("cifar100").num_classes == 100
