"""The model of the search tests' specs, by import path: one conv feeding a BatchNorm (so the
spherical optimizers have a scale-invariant weight) and a linear head. It trains in
milliseconds, so the tests spend their time on what they check: the search."""

from __future__ import annotations

from torch import nn


def net(num_classes: int, in_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )
