"""VGG with BatchNorm (vgg16) for "Spherical Perspective on Learning with Batch Norm".

Roburin, de Mont-Marin et al., arXiv:2006.13382. The architecture follows the project spec
(shared/spec/experiments.md): each conv3x3 is bias-free and followed immediately by a
BatchNorm2d and a ReLU, "M" is a 2x2 max-pool, and the flattened 512-channel 1x1 map feeds one
Linear classifier (no dropout, no hidden fully-connected layer). PyTorch default init.

Reference: Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image
Recognition, arXiv:1409.1556.
"""

from __future__ import annotations

import torch
from torch import nn

from models._base import ConvBNModel, check_sizes
from models._registry import register_model

__all__ = ["VGG", "VGG_CFGS", "vgg16"]

VGG_CFGS: dict[str, tuple[int | str, ...]] = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"),
}  # fmt: skip


@torch.fx.wrap
def _check_input_size(x: torch.Tensor, variant: str, min_size: int) -> torch.Tensor:
    """Return ``x`` if the features reduce it to 1x1, else raise a ``ValueError``.

    Wrapped as an fx leaf function, so symbolic tracing records the call instead of failing on
    the comparison, and the traced module still checks at run time.
    """
    height, width = x.shape[-2:]
    if min(height, width) < min_size:
        raise ValueError(
            f"{variant} needs inputs of at least {min_size}x{min_size} pixels, "
            f"but got {height}x{width}"
        )
    if max(height, width) >= 2 * min_size:
        raise ValueError(
            f"{variant} needs inputs smaller than {2 * min_size}x{2 * min_size} pixels "
            f"(its classifier takes a 1x1 feature map), but got {height}x{width}"
        )
    return x


class VGG(ConvBNModel):
    """VGG with BatchNorm built from a configuration in ``VGG_CFGS``.

    Args:
        variant: a key of ``VGG_CFGS`` (e.g. ``"vgg16"``).
        num_classes: size of the output.
        in_channels: channels of the input images.
    """

    def __init__(self, variant: str, *, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        check_sizes(num_classes, in_channels)
        if variant not in VGG_CFGS:
            raise ValueError(f"Unknown VGG variant {variant!r}; available: {sorted(VGG_CFGS)}")
        self.variant = variant
        layers: list[nn.Module] = []
        channels = in_channels
        for item in VGG_CFGS[variant]:
            if isinstance(item, str):
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [
                    nn.Conv2d(channels, item, 3, padding=1, bias=False),
                    nn.BatchNorm2d(item),
                    nn.ReLU(inplace=True),
                ]
                channels = item
        self.min_size = 2 ** VGG_CFGS[variant].count("M")
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input_size(x, self.variant, self.min_size)
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model
def vgg16(*, num_classes: int, in_channels: int = 3) -> VGG:
    """VGG-16 with BatchNorm for 32x32 images: 14,724,042 parameters with 10 classes."""
    return VGG("vgg16", num_classes=num_classes, in_channels=in_channels)
