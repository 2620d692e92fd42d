"""Model functions named by import path in the tests (``tests.training_tests.own_models:NAME``),
called as ``NAME(num_classes=N, in_channels=C)``."""

from __future__ import annotations

import torch
from torch import nn


def small_cnn(num_classes: int, in_channels: int) -> nn.Module:
    """conv -> BatchNorm -> ReLU -> pool -> linear: one scale-invariant weight tensor."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )


def mlp(num_classes: int, in_channels: int) -> nn.Module:
    """No BatchNorm anywhere: no scale-invariant weight."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * in_channels, num_classes)
    )


class _DataDependent(nn.Module):
    """Python control flow on a tensor's value: torch.fx cannot trace it."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.body = small_cnn(num_classes, in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            x = x * 1.0
        return self.body(x)


def untraceable(num_classes: int, in_channels: int) -> nn.Module:
    return _DataDependent(num_classes, in_channels)


def three_classes(num_classes: int, in_channels: int) -> nn.Module:
    return small_cnn(3, in_channels)


def returns_a_string(num_classes: int, in_channels: int) -> str:
    return "resnet20"


def no_in_channels(num_classes: int) -> nn.Module:
    return small_cnn(num_classes, 3)


def raises(num_classes: int, in_channels: int) -> nn.Module:
    raise RuntimeError("out of memory\nsecond line")


def rgb_only(num_classes: int, in_channels: int) -> nn.Module:
    """Ignores ``in_channels``: a one-channel dataset's images do not fit it."""
    return small_cnn(num_classes, 3)
