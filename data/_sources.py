"""Reading datasets from disk into uint8 NCHW tensors, and the seeded validation split."""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ._cache import dataset_cache
from ._registry import DatasetInfo

__all__ = [
    "DATA_DIR_ENV_VAR",
    "DEFAULT_DATA_DIR",
    "DatasetChecksumError",
    "DatasetNotFoundError",
    "RawDataset",
    "load_raw",
    "resolve_data_dir",
    "split_indices",
]

DATA_DIR_ENV_VAR = "SPHERICAL_BN_DATA_DIR"
DEFAULT_DATA_DIR = "~/.cache/spherical-bn/datasets"

if TYPE_CHECKING:
    from torchvision.datasets import CIFAR10, SVHN

    _TorchvisionCls = type[CIFAR10] | type[SVHN]

# name -> (torchvision class name, root relative to the data dir). SVHN keeps its .mat files
# directly in `root`, so it gets a folder of its own; CIFAR brings its own (cifar-10-batches-py,
# ...). torchvision is imported when one is read (its import alone takes a second or more).
_TORCHVISION: dict[str, tuple[str, str]] = {
    "cifar10": ("CIFAR10", ""),
    "cifar100": ("CIFAR100", ""),
    "svhn": ("SVHN", "svhn"),
}

# The digits set has no official test split. Every 6th image (index % 6 == 0, 300 images) is
# the test set: fixed forever without depending on any RNG implementation, and since
# load_digits() cycles through the classes 0..9, every class gets 25-33 test images.
_DIGITS_TEST_EVERY = 6


class DatasetNotFoundError(FileNotFoundError):
    """The dataset files are not where they were expected and ``download`` was not requested."""


class DatasetChecksumError(RuntimeError):
    """The dataset files fail torchvision's md5 check (one line naming the dataset and where)."""


@dataclass(frozen=True)
class RawDataset:
    """Official splits as uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)``, on CPU.

    The test fields are ``None`` when the test split was not read (``with_test=False``).
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor | None
    test_labels: torch.Tensor | None


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``data_dir`` if given, else ``$SPHERICAL_BN_DATA_DIR`` if set, else the default cache."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV_VAR) or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` into disjoint (train, val) index tensors, seeded and reproducible.

    ``round(val_fraction * n)`` indices (at least one) go to validation. Both tensors keep the
    order of the seeded permutation, so the first k training indices are a random subset.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), but got {val_fraction}")
    n_val = max(1, round(val_fraction * n))
    if n_val >= n:
        raise ValueError(
            f"a validation split of {n_val} images leaves nothing to train on, but got n={n}"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:], perm[:n_val]


def load_raw(
    info: DatasetInfo,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    verify: bool = True,
    with_test: bool = True,
) -> RawDataset:
    """Read the official train and test splits of ``info.name``.

    CIFAR and SVHN are read by torchvision's own dataset classes from ``data_dir`` (see
    :func:`resolve_data_dir`); ``verify=False`` skips only their md5 checksums. ``digits`` is
    read from scikit-learn's copy and ignores ``data_dir``, ``download`` and ``verify``.
    ``with_test=False`` neither opens nor checksums the test files (they may be absent), so
    that a hyper-parameter search cannot touch them; the test fields are then ``None``.

    What is read is kept for the process's next calls (see :data:`data.CACHE_SIZE`), keyed
    by the name, the resolved ``data_dir``, ``with_test`` and ``verify``: a worker running
    many trials reads its dataset once. The tensors are shared: never modify them.
    """
    directory = None if info.name == "digits" else resolve_data_dir(data_dir)
    where = None if directory is None else os.path.realpath(directory)
    return dataset_cache.get(
        ("registry", info.name, where, with_test, verify),
        lambda: _load_raw(info, directory, download, verify, with_test),
    )


def _load_raw(
    info: DatasetInfo, data_dir: Path | None, download: bool, verify: bool, with_test: bool
) -> RawDataset:
    if info.name == "digits":
        return _load_digits(with_test)
    import torchvision.datasets

    class_name, subdir = _TORCHVISION[info.name]
    cls = getattr(torchvision.datasets, class_name)
    root = resolve_data_dir(data_dir) / subdir
    splits = ("train", "test") if with_test else ("train",)
    if not download:
        _check_files_exist(info.name, root, cls, splits)
    dataset_cls = cls if verify else _without_md5(cls)
    if not with_test:
        dataset_cls = _train_only(dataset_cls)
    try:
        train, *test = (
            dataset_cls(root, download=download, **_split_kwargs(cls, split)) for split in splits
        )
    except RuntimeError as err:
        if not verify or download:
            raise
        raise DatasetChecksumError(
            f"Dataset {info.name!r} under {root} failed torchvision's md5 check; "
            "pass --download to re-fetch it, or verify=False to skip the checksum"
        ) from err
    test_images, test_labels = _to_tensors(test[0]) if test else (None, None)
    return RawDataset(*_to_tensors(train), test_images, test_labels)


def _cifar10() -> type[CIFAR10]:
    from torchvision.datasets import CIFAR10

    return CIFAR10


def _required_files(cls: _TorchvisionCls, splits: tuple[str, ...]) -> list[str]:
    """Files (relative to the torchvision root) that the class reads for ``splits``."""
    if issubclass(cls, _cifar10()):
        lists = {"train": cls.train_list, "test": cls.test_list}
        names = [f for split in splits for f, _ in lists[split]] + [cls.meta["filename"]]
        return [f"{cls.base_folder}/{name}" for name in names]
    return [cls.split_list[split][1] for split in splits]


def _check_files_exist(
    name: str, root: Path, cls: _TorchvisionCls, splits: tuple[str, ...]
) -> None:
    for rel in _required_files(cls, splits):
        path = root / rel
        if path.is_file():
            continue
        # Name the top-level entry that is missing: the folder if it is absent, else the file.
        top = root / Path(rel).parts[0]
        expected = top if not top.exists() else path
        raise DatasetNotFoundError(
            f"Dataset {name!r} not found: expected {expected}; "
            "pass --download to fetch it, or --data-dir to point at it"
        )


@functools.cache
def _without_md5(cls: _TorchvisionCls) -> _TorchvisionCls:
    """Subclass of ``cls`` whose md5s are None: torchvision's check_integrity then only checks
    that each file exists, and the files are still read and parsed as usual."""
    attrs: dict[str, object]
    if issubclass(cls, _cifar10()):
        attrs = {
            "train_list": [[f, None] for f, _ in cls.train_list],
            "test_list": [[f, None] for f, _ in cls.test_list],
            "meta": {**cls.meta, "md5": None},
        }
    else:
        attrs = {"split_list": {k: [url, f, None] for k, (url, f, _) in cls.split_list.items()}}
    return type(f"Unverified{cls.__name__}", (cls,), attrs)


@functools.cache
def _train_only(cls: _TorchvisionCls) -> _TorchvisionCls:
    """``cls`` without the test files in CIFAR's integrity check, which otherwise reads (md5)
    and requires them even for ``train=True``; SVHN only ever checks the split it reads."""
    if not issubclass(cls, _cifar10()):
        return cls
    return type(f"TrainOnly{cls.__name__}", (cls,), {"test_list": []})


def _split_kwargs(cls: _TorchvisionCls, split: str) -> dict[str, object]:
    if issubclass(cls, _cifar10()):
        return {"train": split == "train"}
    return {"split": split}


def _to_tensors(dataset: CIFAR10 | SVHN) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(dataset, _cifar10()):
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2)  # (N, H, W, C) -> NCHW
        labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    else:
        images = torch.from_numpy(dataset.data)  # already (N, C, H, W); labels 10 -> 0 done
        labels = torch.as_tensor(dataset.labels, dtype=torch.int64)
    return images.contiguous(), labels


def _digits_file() -> Path | None:
    """``load_digits``'s own file (1,797 rows: 64 pixels, then the label), found without
    importing scikit-learn: its import costs every process that reads digits (the driver,
    each runner) 1.5–3 s of CPU, ten times the read. None where the layout is not known."""
    found = importlib.util.find_spec("sklearn")  # locates the package, imports nothing
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(found.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")
    return path if path.is_file() else None


def _digits_table() -> np.ndarray:
    path = _digits_file()
    if path is not None:
        return np.loadtxt(path, delimiter=",")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.column_stack([bunch.data, bunch.target])


def _load_digits(with_test: bool = True) -> RawDataset:
    table = _digits_table()
    # Pixel values are integers 0..16; rescale to the usual 0..255 uint8 range.
    pixels = table[:, :-1].reshape(-1, 1, 8, 8)
    images = np.rint(pixels * (255.0 / 16.0)).astype(np.uint8)  # (N, 1, 8, 8)
    labels = table[:, -1].astype(np.int64)
    is_test = np.arange(len(images)) % _DIGITS_TEST_EVERY == 0
    return RawDataset(
        train_images=torch.from_numpy(images[~is_test]),
        train_labels=torch.from_numpy(labels[~is_test]),
        test_images=torch.from_numpy(images[is_test]) if with_test else None,
        test_labels=torch.from_numpy(labels[is_test]) if with_test else None,
    )
