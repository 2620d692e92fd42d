"""Datasets of the paper (CIFAR-10/100, SVHN) and an offline default (scikit-learn digits).

Entry point: :func:`build_loaders`. Constants live in the registry (:func:`get_dataset_info`).
"""

from ._loaders import DeviceLoader, Loaders, build_loaders
from ._registry import CROP_PADDING, DatasetInfo, get_dataset_info, list_datasets
from ._sources import (
    DATA_DIR_ENV_VAR,
    DEFAULT_DATA_DIR,
    DatasetNotFoundError,
    RawDataset,
    load_raw,
    resolve_data_dir,
    split_indices,
)

__all__ = [
    "CROP_PADDING",
    "DATA_DIR_ENV_VAR",
    "DEFAULT_DATA_DIR",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DeviceLoader",
    "Loaders",
    "RawDataset",
    "build_loaders",
    "get_dataset_info",
    "list_datasets",
    "load_raw",
    "resolve_data_dir",
    "split_indices",
]
