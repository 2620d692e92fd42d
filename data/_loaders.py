"""Batch loaders: a torch DataLoader path and a device-resident path, and ``build_loaders``."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from ._registry import CROP_PADDING, DatasetInfo, get_dataset_info
from ._sources import load_raw, split_indices

__all__ = ["DeviceLoader", "EpochDataLoader", "Loaders", "build_loaders"]

Batch = tuple[torch.Tensor, torch.Tensor]
LoaderKind = Literal["auto", "dataloader", "device"]


def _epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed that depends on both the run seed and the epoch, without collisions
    between e.g. (seed=1, epoch=0) and (seed=0, epoch=1)."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


def _normalise(
    images: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None
) -> torch.Tensor:
    """uint8 ``(..., C, H, W)`` -> float32 in [0, 1], then ``(x - mean) / std`` if given.

    Both loader kinds call this exact function, so their val/test tensors are bitwise equal.
    """
    x = images.to(torch.float32).div(255.0)
    if mean is not None and std is not None:
        x = x.sub_(mean).div_(std)
    return x


def _stats(
    mean: tuple[float, ...] | None, std: tuple[float, ...] | None, device: torch.device | str
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-channel statistics shaped ``(C, 1, 1)`` for broadcasting, or ``(None, None)``."""
    if mean is None or std is None:
        return None, None

    def channel_tensor(values: tuple[float, ...]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=device).reshape(-1, 1, 1)

    return channel_tensor(mean), channel_tensor(std)


class _ImageDataset(Dataset[Batch]):
    """uint8 images in memory; optional torchvision augmentation, then :func:`_normalise`.

    Augmentation randomness is drawn from the global CPU RNG (torchvision transforms take no
    generator), but reseeded per sample from (epoch seed, sample index) inside ``fork_rng``:
    the result is reproducible whatever ``num_workers`` is, and the caller's global RNG
    stream (dropout, init, ...) is left untouched.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        info: DatasetInfo,
        augment: bool,
    ) -> None:
        self.images = images
        self.labels = labels
        self.mean, self.std = _stats(info.mean, info.std, "cpu")
        self.augmentation = (
            v2.Compose(
                [
                    v2.RandomCrop(info.image_size, padding=CROP_PADDING),
                    v2.RandomHorizontalFlip(),
                ]
            )
            if augment
            else None
        )
        self.epoch_seed = 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.augmentation is not None:
            with torch.random.fork_rng(devices=[]):
                # default_generator, not torch.manual_seed: the latter also reseeds CUDA.
                torch.default_generator.manual_seed((self.epoch_seed + index) % 2**63)
                image = self.augmentation(image)
        return _normalise(image, self.mean, self.std), int(self.labels[index])


class EpochDataLoader:
    """Training loader on a torch DataLoader: each ``iter()`` is one epoch, then advances.

    The shuffle order (the DataLoader's generator) and the augmentation of every image are
    functions of ``(seed, epoch)`` only, so ``set_epoch(e)`` replays epoch ``e`` exactly.
    """

    def __init__(
        self,
        dataset: _ImageDataset,
        *,
        batch_size: int,
        seed: int,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` produce epoch ``epoch`` (order and augmentation)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        seed = _epoch_seed(self.seed, self.epoch)
        self.epoch += 1
        # Set before the DataLoader starts, so that worker processes receive it too.
        self.dataset.epoch_seed = seed
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=False,
            generator=torch.Generator().manual_seed(seed),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )
        return iter(loader)


class DeviceLoader:
    """The whole uint8 split held as one tensor on ``device``; batches built with tensor ops.

    With ``shuffle=True`` each ``iter()`` is one epoch (then advances): a permutation drawn
    from a CPU generator seeded with ``(seed, epoch)``, and, with ``augment=True``, a random
    crop (zero padding ``crop_padding``, like torchvision's RandomCrop) and a horizontal flip
    per image from the same generator, applied batched on the device. Everything is a function
    of ``(seed, epoch)``, identical on any device. With ``shuffle=False`` batches come in order.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        mean: tuple[float, ...] | None,
        std: tuple[float, ...] | None,
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        augment: bool = False,
        seed: int = 0,
        crop_padding: int = CROP_PADDING,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"images must be a uint8 (N, C, H, W) tensor, but got {images.dtype} "
                f"of shape {tuple(images.shape)}"
            )
        if augment and not shuffle:
            raise ValueError("augment=True needs shuffle=True (augmentation is for training)")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(device=self.device, dtype=torch.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.crop_padding = crop_padding
        self.epoch = 0
        self.mean, self.std = _stats(mean, std, self.device)

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` produce epoch ``epoch`` (order and augmentation)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.labels)
        if not self.shuffle:
            return self._batches(None, None, None)
        # Drawn here, not lazily in the generator, so the epoch advances at iter() time.
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        self.epoch += 1
        order = torch.randperm(n, generator=generator).to(self.device)
        if not self.augment:
            return self._batches(order, None, None)
        offsets = torch.randint(0, 2 * self.crop_padding + 1, (n, 2), generator=generator)
        flips = torch.rand(n, generator=generator) < 0.5
        return self._batches(order, offsets.to(self.device), flips.to(self.device))

    def _batches(
        self,
        order: torch.Tensor | None,
        offsets: torch.Tensor | None,
        flips: torch.Tensor | None,
    ) -> Iterator[Batch]:
        for start in range(0, len(self.labels), self.batch_size):
            batch = slice(start, start + self.batch_size)
            index = batch if order is None else order[batch]
            images, labels = self.images[index], self.labels[index]
            if offsets is not None and flips is not None:
                images = self._crop_flip(images, offsets[batch], flips[batch])
            yield _normalise(images, self.mean, self.std), labels

    def _crop_flip(
        self, images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor
    ) -> torch.Tensor:
        """Per-image crop at ``offsets`` (top, left) of the zero-padded images, then flip."""
        p = self.crop_padding
        b, c, h, w = images.shape
        padded = torch.nn.functional.pad(images, (p, p, p, p)).reshape(b, c, -1)
        ar_w = torch.arange(w, device=self.device)
        rows = offsets[:, :1] + torch.arange(h, device=self.device)  # (B, H)
        cols = offsets[:, 1:] + torch.where(flips[:, None], ar_w.flip(0), ar_w)  # (B, W)
        flat = (rows[:, :, None] * (w + 2 * p) + cols[:, None, :]).reshape(b, 1, h * w)
        return torch.gather(padded, 2, flat.expand(b, c, h * w)).reshape(b, c, h, w)


@dataclass(frozen=True)
class Loaders:
    """Train/val/test loaders of one dataset, yielding ``(images, labels)`` batches.

    Images are float32 NCHW, normalised with ``info.mean``/``info.std``; labels int64. The
    ``train`` loader reshuffles on every ``iter()`` and has ``set_epoch(epoch)``; ``val`` and
    ``test`` are never shuffled nor augmented. ``DeviceLoader`` batches are already on the
    device; DataLoader batches are on CPU (pinned for CUDA), so move them with
    ``.to(device, non_blocking=True)``, a no-op for the former. ``train_indices`` and
    ``val_indices`` index the official train split. ``test`` is ``None`` (and ``n_test`` 0)
    when built with ``with_test=False``.
    """

    train: EpochDataLoader | DeviceLoader
    val: DataLoader | DeviceLoader
    test: DataLoader | DeviceLoader | None
    info: DatasetInfo
    n_train: int
    n_val: int
    n_test: int
    kind: Literal["dataloader", "device"]
    train_indices: torch.Tensor
    val_indices: torch.Tensor


def build_loaders(
    name: str,
    *,
    batch_size: int = 128,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    verify: bool = True,
    device: torch.device | str = "cpu",
    loader: LoaderKind = "auto",
    num_workers: int = 0,
    eval_batch_size: int | None = None,
    train_subset: int | None = None,
    with_test: bool = True,
) -> Loaders:
    """Read dataset ``name`` and return its train/val/test :class:`Loaders`.

    The validation split (``info.val_fraction`` of the official train split) is drawn with
    ``torch.Generator().manual_seed(seed)``; ``seed`` also drives shuffling and augmentation.
    ``loader="auto"`` picks the device-resident loader on CUDA and a DataLoader otherwise
    (``num_workers`` applies to the DataLoader only). ``train_subset`` keeps the first N
    training indices after the split. ``data_dir``, ``download`` and ``verify`` are described
    in :func:`data.load_raw`. ``with_test=False`` leaves the test files unread and
    ``Loaders.test`` ``None``: selection on validation alone, with no way to peek at test.
    """
    info = get_dataset_info(name)
    for arg, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{arg} must be a positive int, but got {value!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, but got {seed!r}")
    if loader not in ("auto", "dataloader", "device"):
        raise ValueError(f"loader must be 'auto', 'dataloader' or 'device', but got {loader!r}")
    device = torch.device(device)
    kind = ("device" if device.type == "cuda" else "dataloader") if loader == "auto" else loader
    eval_batch_size = eval_batch_size or batch_size

    raw = load_raw(info, data_dir, download=download, verify=verify, with_test=with_test)
    train_idx, val_idx = split_indices(len(raw.train_labels), info.val_fraction, seed)
    if train_subset is not None:
        if not isinstance(train_subset, int) or not 1 <= train_subset <= len(train_idx):
            raise ValueError(
                f"train_subset must be an int in [1, {len(train_idx)}], but got {train_subset!r}"
            )
        train_idx = train_idx[:train_subset]

    splits = {
        "train": (raw.train_images[train_idx], raw.train_labels[train_idx]),
        "val": (raw.train_images[val_idx], raw.train_labels[val_idx]),
    }
    if raw.test_images is not None and raw.test_labels is not None:
        splits["test"] = (raw.test_images, raw.test_labels)
    evaluated = [s for s in ("val", "test") if s in splits]
    if kind == "device":
        train = DeviceLoader(
            *splits["train"],
            batch_size=batch_size,
            mean=info.mean,
            std=info.std,
            device=device,
            shuffle=True,
            augment=info.augment,
            seed=seed,
        )
        eval_loaders: dict[str, DataLoader | DeviceLoader] = {
            s: DeviceLoader(
                *splits[s], batch_size=eval_batch_size, mean=info.mean, std=info.std, device=device
            )
            for s in evaluated
        }
    else:
        pin_memory = device.type == "cuda"
        train = EpochDataLoader(
            _ImageDataset(*splits["train"], info, augment=info.augment),
            batch_size=batch_size,
            seed=seed,
            num_workers=num_workers,
            pin_memory=pin_memory,
        )
        eval_loaders = {
            s: DataLoader(
                _ImageDataset(*splits[s], info, augment=False),
                batch_size=eval_batch_size,
                shuffle=False,
                num_workers=num_workers,
                pin_memory=pin_memory,
            )
            for s in evaluated
        }
    return Loaders(
        train=train,
        val=eval_loaders["val"],
        test=eval_loaders.get("test"),
        info=info,
        n_train=len(train_idx),
        n_val=len(val_idx),
        n_test=0 if raw.test_labels is None else len(raw.test_labels),
        kind=kind,
        train_indices=train_idx,
        val_indices=val_idx,
    )
