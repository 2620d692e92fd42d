"""The batch loader, device-resident on CPU and CUDA alike, and ``build_loaders``.

One loader serves every device, so a seed means the same images wherever a trial runs. A torch
DataLoader with per-image torchvision transforms, the alternative, fed a CPU run 20-30x slower
(benchmarks/train_throughput.py: 2-3.4k against 65k augmented CIFAR images/s on one core).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ._custom import channel_stats, custom_info, load_dataset_function
from ._registry import CROP_PADDING, DatasetInfo, get_dataset_info
from ._rules import check_bool, check_positive_int, check_seed, check_train_subset, is_import_path
from ._sources import RawDataset, load_raw, split_indices

__all__ = ["DeviceLoader", "Loaders", "build_loaders", "resolve_dataset"]

Batch = tuple[torch.Tensor, torch.Tensor]


def _epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed that depends on both the run seed and the epoch, without collisions
    between e.g. (seed=1, epoch=0) and (seed=0, epoch=1)."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


def _normalise(
    images: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None
) -> torch.Tensor:
    """uint8 ``(..., C, H, W)`` -> float32 in [0, 1] (float images: float32 as they are), then
    ``(x - mean) / std`` if given. Always a new tensor: ``images`` is never written to."""
    if images.dtype == torch.uint8:
        x = images.to(torch.float32).div_(255.0)
    else:
        x = images.to(torch.float32, copy=True)
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


class DeviceLoader:
    """The whole split held as one tensor on ``device``; batches built with tensor ops.

    Images are uint8 (scaled to [0, 1]) or floating point (taken as they are), then
    normalised with ``mean``/``std``. They are only read, never written to.

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
        if images.ndim != 4 or not (images.dtype == torch.uint8 or images.is_floating_point()):
            raise ValueError(
                f"images must be a uint8 or float (N, C, H, W) tensor, but got {images.dtype} "
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
    """Train/val/test :class:`DeviceLoader` of one dataset, yielding ``(images, labels)``.

    Images are float32 NCHW on the device, normalised with ``info.mean``/``info.std``; labels
    int64. The ``train`` loader reshuffles (and augments) on every ``iter()`` and has
    ``set_epoch(epoch)``; ``val`` and ``test`` are never shuffled nor augmented.
    ``train_indices`` and ``val_indices`` index the official train split. ``test`` is ``None``
    (and ``n_test`` 0) when built with ``with_test=False``.
    """

    train: DeviceLoader
    val: DeviceLoader
    test: DeviceLoader | None
    info: DatasetInfo
    n_train: int
    n_val: int
    n_test: int
    train_indices: torch.Tensor
    val_indices: torch.Tensor


def resolve_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    verify: bool = True,
    with_test: bool = True,
) -> tuple[DatasetInfo, RawDataset]:
    """The :class:`DatasetInfo` and the tensors of dataset ``name``: a registry name (read by
    :func:`load_raw`) or a ``"package.module:function"`` import path (called once per
    process; its info has ``mean``/``std`` ``None``, see :func:`build_loaders`).

    Raises:
        ValueError: an unknown registry name.
        DatasetNotFoundError: a registry dataset's files are missing.
        SettingError: an import path that does not resolve or returns the wrong thing.
    """
    if is_import_path(name):
        raw = load_dataset_function(name, with_test=with_test)
        return custom_info(name, raw), raw
    info = get_dataset_info(name)
    return info, load_raw(info, data_dir, download=download, verify=verify, with_test=with_test)


def build_loaders(
    name: str,
    *,
    batch_size: int = 128,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    verify: bool = True,
    device: torch.device | str = "cpu",
    eval_batch_size: int | None = None,
    train_subset: int | None = None,
    with_test: bool = True,
    augment: bool | None = None,
) -> Loaders:
    """Read dataset ``name`` and return its train/val/test :class:`Loaders`.

    ``name`` is a registry name or a ``"package.module:function"`` import path (see
    :func:`resolve_dataset`). The validation split (``info.val_fraction`` of the official
    train split; 10% of an import-path dataset's training tensors) is drawn with
    ``torch.Generator().manual_seed(seed)``; ``seed`` also drives shuffling and augmentation,
    identically on every ``device`` (the splits are copied there once). ``train_subset`` keeps
    the first N training indices after the split. ``augment`` (random crop with zero padding
    :data:`CROP_PADDING` and horizontal flip, training images only) defaults to the
    dataset's own choice: the registry's, none for an import-path dataset. An import-path
    dataset is normalised with the per-channel mean and std of its training split (after the
    validation split is removed, before ``train_subset``). ``data_dir``, ``download`` and
    ``verify`` are described in :func:`data.load_raw`. ``with_test=False`` leaves the test
    files unread and ``Loaders.test`` ``None``: selection on validation alone, with no way to
    peek at test.
    """
    check_positive_int("batch_size", batch_size)
    if eval_batch_size is not None:
        check_positive_int("eval_batch_size", eval_batch_size)
    check_seed("seed", seed)
    check_train_subset("train_subset", train_subset)
    if augment is not None:
        check_bool("augment", augment)
    eval_batch_size = eval_batch_size or batch_size

    info, raw = resolve_dataset(
        name, data_dir, download=download, verify=verify, with_test=with_test
    )
    train_idx, val_idx = split_indices(len(raw.train_labels), info.val_fraction, seed)
    if is_import_path(name):
        mean, std = channel_stats(raw.train_images, train_idx)
        info = dataclasses.replace(info, mean=mean, std=std)
    if augment is not None:
        info = dataclasses.replace(info, augment=augment)
    check_train_subset("train_subset", train_subset, len(train_idx))
    if train_subset is not None:
        train_idx = train_idx[:train_subset]

    splits = {
        "train": (raw.train_images[train_idx], raw.train_labels[train_idx]),
        "val": (raw.train_images[val_idx], raw.train_labels[val_idx]),
    }
    if raw.test_images is not None and raw.test_labels is not None:
        splits["test"] = (raw.test_images, raw.test_labels)
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
    evaluated = {
        s: DeviceLoader(
            *splits[s], batch_size=eval_batch_size, mean=info.mean, std=info.std, device=device
        )
        for s in ("val", "test")
        if s in splits
    }
    return Loaders(
        train=train,
        val=evaluated["val"],
        test=evaluated.get("test"),
        info=info,
        n_train=len(train_idx),
        n_val=len(val_idx),
        n_test=0 if raw.test_labels is None else len(raw.test_labels),
        train_indices=train_idx,
        val_indices=val_idx,
    )
