"""CIFAR ResNets (resnet18, resnet20) for "Spherical Perspective on Learning with Batch Norm".

Roburin, de Mont-Marin et al., arXiv:2006.13382. The architecture follows the project spec
(shared/spec/experiments.md): every conv is bias-free and followed immediately by a BatchNorm2d,
3x3 stem without max-pool, BasicBlocks with 1x1-conv+BN projection shortcuts where the shape
changes, global average pooling, one Linear classifier. PyTorch default init.

Reference: He et al., Deep Residual Learning for Image Recognition, arXiv:1512.03385.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models._base import ConvBNModel, check_sizes
from models._registry import register_model

__all__ = ["BasicBlock", "ResNet", "resnet18", "resnet20"]


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> nn.Conv2d:
    """A bias-free conv whose padding keeps the spatial size at stride 1."""
    return nn.Conv2d(
        in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False
    )


class BasicBlock(nn.Module):
    """conv3x3(stride)-BN-ReLU-conv3x3-BN, plus a shortcut, then ReLU.

    The shortcut is a 1x1 conv(stride)+BN projection when the shape changes, else the identity.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv(in_channels, out_channels, 3, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv(out_channels, out_channels, 3, 1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                _conv(in_channels, out_channels, 1, stride), nn.BatchNorm2d(out_channels)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(ConvBNModel):
    """ResNet of BasicBlocks for small images (no max-pool in the stem).

    Args:
        blocks: number of BasicBlocks per stage.
        widths: channels of each stage; the stem has ``widths[0]`` channels.
        strides: stride of the first block of each stage.
        num_classes: size of the output.
        in_channels: channels of the input images.
    """

    def __init__(
        self,
        blocks: Sequence[int],
        widths: Sequence[int],
        strides: Sequence[int],
        *,
        num_classes: int,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        check_sizes(num_classes, in_channels)
        if not len(blocks) == len(widths) == len(strides):
            raise ValueError(
                "blocks, widths and strides must have the same length, but got "
                f"{len(blocks)}, {len(widths)} and {len(strides)}"
            )
        self.stem = nn.Sequential(
            _conv(in_channels, widths[0], 3, 1), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        stages: list[nn.Sequential] = []
        channels = widths[0]
        for num_blocks, width, stride in zip(blocks, widths, strides, strict=True):
            stage: list[BasicBlock] = []
            for i in range(num_blocks):
                stage.append(BasicBlock(channels, width, stride if i == 0 else 1))
                channels = width
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model
def resnet18(*, num_classes: int, in_channels: int = 3) -> ResNet:
    """ResNet-18 for 32x32 images: 11,173,962 parameters with 10 classes."""
    return ResNet(
        (2, 2, 2, 2),
        (64, 128, 256, 512),
        (1, 2, 2, 2),
        num_classes=num_classes,
        in_channels=in_channels,
    )


@register_model
def resnet20(*, num_classes: int, in_channels: int = 3) -> ResNet:
    """ResNet-20 for 32x32 images, projection shortcuts (option B): 272,474 parameters."""
    return ResNet(
        (3, 3, 3), (16, 32, 64), (1, 2, 2), num_classes=num_classes, in_channels=in_channels
    )
