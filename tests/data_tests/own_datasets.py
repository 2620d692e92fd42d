"""Dataset functions named by import path in the tests (``tests.data_tests.own_datasets:NAME``):
well-formed ones, and one per rule a dataset function can break."""

from __future__ import annotations

import torch

#: How many times each function was called (the cache must call it once per process).
CALLS: dict[str, int] = {}

NOT_CALLABLE = 3


def _count(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


def _labels(n: int, classes: int, generator: torch.Generator) -> torch.Tensor:
    labels = torch.randint(0, classes, (n,), generator=generator)
    labels[0] = classes - 1  # the largest class is present
    return labels


def uint8_images() -> tuple[torch.Tensor, ...]:
    """50 training and 10 test RGB 8x8 uint8 images, 5 classes."""
    _count("uint8_images")
    g = torch.Generator().manual_seed(0)
    x_train = torch.randint(0, 256, (50, 3, 8, 8), generator=g, dtype=torch.uint8)
    x_test = torch.randint(0, 256, (10, 3, 8, 8), generator=g, dtype=torch.uint8)
    return x_train, _labels(50, 5, g), x_test, _labels(10, 5, g) % 3


def float_images() -> tuple[torch.Tensor, ...]:
    """40 training and 8 test one-channel 6x10 float64 images around 3 with std 2, 4 classes."""
    _count("float_images")
    g = torch.Generator().manual_seed(1)
    x_train = 3 + 2 * torch.randn(40, 1, 6, 10, generator=g, dtype=torch.float64)
    x_test = 3 + 2 * torch.randn(8, 1, 6, 10, generator=g, dtype=torch.float64)
    return x_train, _labels(40, 4, g), x_test, _labels(8, 4, g)


def constant_channel() -> tuple[torch.Tensor, ...]:
    """Two channels, the second constant 0.5."""
    x = torch.rand(20, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    x[:, 1] = 0.5
    return x, torch.arange(20) % 2, x[:4].clone(), torch.zeros(4, dtype=torch.int64)


def a_list_of_three() -> list[torch.Tensor]:
    return [torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.int64), torch.zeros(1, 1, 2, 2)]


def numpy_arrays() -> tuple[object, ...]:
    import numpy as np

    return np.zeros((4, 1, 2, 2)), np.zeros(4), np.zeros((1, 1, 2, 2)), np.zeros(1)


def raises() -> None:
    raise RuntimeError("the download failed\nsecond line")


def _valid(**changes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    parts = {
        "x_train": torch.zeros(6, 1, 4, 4),
        "y_train": torch.tensor([0, 1, 2, 0, 1, 2]),
        "x_test": torch.zeros(2, 1, 4, 4),
        "y_test": torch.tensor([0, 2]),
    }
    parts.update(changes)
    return tuple(parts.values())


def images_3d() -> tuple[torch.Tensor, ...]:
    return _valid(x_train=torch.zeros(6, 4, 4))


def int32_images() -> tuple[torch.Tensor, ...]:
    return _valid(x_train=torch.zeros(6, 1, 4, 4, dtype=torch.int32))


def int32_labels() -> tuple[torch.Tensor, ...]:
    return _valid(y_train=torch.tensor([0, 1, 2, 0, 1, 2], dtype=torch.int32))


def one_label_short() -> tuple[torch.Tensor, ...]:
    return _valid(y_train=torch.tensor([0, 1, 2, 0, 1]))


def negative_label() -> tuple[torch.Tensor, ...]:
    return _valid(y_train=torch.tensor([0, 1, -1, 0, 1, 2]))


def unseen_test_label() -> tuple[torch.Tensor, ...]:
    return _valid(y_test=torch.tensor([0, 3]))


def nan_pixel() -> tuple[torch.Tensor, ...]:
    x = torch.zeros(6, 1, 4, 4)
    x[3, 0, 1, 1] = float("nan")
    return _valid(x_train=x)


def mixed_dtypes() -> tuple[torch.Tensor, ...]:
    return _valid(x_test=torch.zeros(2, 1, 4, 4, dtype=torch.uint8))


def one_training_image() -> tuple[torch.Tensor, ...]:
    return _valid(x_train=torch.zeros(1, 1, 4, 4), y_train=torch.tensor([0]))
