"""CIFAR-shaped random images for the GPU benchmarks (the GPU machine has no network), as a
dataset function by import path: ``synthetic_data:cifar_like``. ``$SYNTHETIC_IMAGES`` training
images (10,000 by default), 10 classes."""

from __future__ import annotations

import os

import torch


def cifar_like() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    n = int(os.environ.get("SYNTHETIC_IMAGES", "10000"))
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n + n // 5, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n + n // 5,), generator=g)
    return images[:n], labels[:n], images[n:], labels[n:]
