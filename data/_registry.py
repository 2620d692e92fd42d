"""Dataset registry: one frozen :class:`DatasetInfo` per name, the only home of the constants."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CROP_PADDING", "DatasetInfo", "get_dataset_info", "list_datasets"]

#: Zero padding of the train-time random crop, as ``RandomCrop(32, padding=4)`` in the paper.
CROP_PADDING = 4


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset and of its preprocessing.

    ``mean``/``std`` are per-channel statistics of pixels scaled to [0, 1]; ``None`` means the
    pixels are fed unnormalised, in [0, 1]. ``augment`` turns on random crop (zero padding
    :data:`CROP_PADDING`) + horizontal flip for the training images only. ``val_fraction`` of
    the official train split is held out for validation. ``train_size``/``test_size`` are the
    sizes of the official splits (informational: tests read smaller files in the same formats).
    ``image_size`` is the side of square images, else ``(height, width)`` (a dataset of one's
    own may have non-square images).
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: int | tuple[int, int]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    augment: bool
    val_fraction: float
    train_size: int
    test_size: int
    source: str


_REGISTRY: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="cifar10",
            num_classes=10,
            in_channels=3,
            image_size=32,
            # The paper's / adamsrt's constants (also airbench's). pytorch-cifar's std
            # (0.2023, 0.1994, 0.2010) is a known miscomputation; it is not used anywhere.
            mean=(0.4914, 0.4822, 0.4465),
            std=(0.2470, 0.2435, 0.2616),
            augment=True,
            val_fraction=0.05,
            train_size=50_000,
            test_size=10_000,
            source="CIFAR-10 (Krizhevsky 2009) via torchvision.datasets.CIFAR10",
        ),
        DatasetInfo(
            name="cifar100",
            num_classes=100,
            in_channels=3,
            image_size=32,
            mean=(0.5071, 0.4867, 0.4408),
            std=(0.2675, 0.2565, 0.2761),
            augment=True,
            val_fraction=0.05,
            train_size=50_000,
            test_size=10_000,
            source="CIFAR-100 (Krizhevsky 2009) via torchvision.datasets.CIFAR100",
        ),
        DatasetInfo(
            name="svhn",
            num_classes=10,
            in_channels=3,
            image_size=32,
            # The paper feeds SVHN unnormalised and unaugmented, and uses the `train` split only
            # (the 531,131-image `extra` split is never read).
            mean=None,
            std=None,
            augment=False,
            val_fraction=0.05,
            train_size=73_257,
            test_size=26_032,
            source="SVHN cropped digits (Netzer et al. 2011) via torchvision.datasets.SVHN",
        ),
        DatasetInfo(
            name="digits",
            num_classes=10,
            in_channels=1,
            image_size=8,
            # Computed once over the 1,497 images of our fixed train split (see
            # data/_sources.py), after the 0..16 -> 0..255 uint8 conversion, on pixels / 255,
            # population std over all pixels: mean 0.30552, std 0.37602.
            mean=(0.3055,),
            std=(0.3760,),
            augment=False,
            # 5% of 1,497 would be 75 images: one image moves validation accuracy by 1.3
            # points, too noisy to rank trials on. 20% (299 images) keeps ~1,200 for training.
            val_fraction=0.2,
            train_size=1_497,
            test_size=300,
            source="scikit-learn load_digits (UCI optical handwritten digits, 8x8), no download",
        ),
    )
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`get_dataset_info` and ``build_loaders``."""
    return sorted(_REGISTRY)


def get_dataset_info(name: str) -> DatasetInfo:
    """Return the :class:`DatasetInfo` registered under ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown dataset {name!r}; available: {list_datasets()}") from None
