"""Datasets of the paper (CIFAR-10/100, SVHN), an offline default (scikit-learn digits), and
datasets of one's own named by ``"package.module:function"`` import path.

Entry point: :func:`build_loaders`. Constants live in the registry (:func:`get_dataset_info`).
The validation rules shared with the trainer and the search are here too (``check_*``).
"""

from ._cache import CACHE_SIZE, clear_dataset_cache
from ._custom import CUSTOM_VAL_FRACTION, channel_stats, load_dataset_function
from ._import_path import SettingError, import_callable
from ._loaders import DeviceLoader, Loaders, build_loaders, resolve_dataset
from ._registry import CROP_PADDING, DatasetInfo, get_dataset_info, list_datasets
from ._rules import (
    IMPORT_PATH_RULE,
    MAX_SEED,
    check_bool,
    check_name_or_import_path,
    check_non_negative_int,
    check_positive_int,
    check_seed,
    check_train_subset,
    is_import_path,
)
from ._sources import (
    DATA_DIR_ENV_VAR,
    DEFAULT_DATA_DIR,
    DatasetChecksumError,
    DatasetNotFoundError,
    RawDataset,
    load_raw,
    resolve_data_dir,
    split_indices,
)

__all__ = [
    "CACHE_SIZE",
    "CROP_PADDING",
    "CUSTOM_VAL_FRACTION",
    "DATA_DIR_ENV_VAR",
    "DEFAULT_DATA_DIR",
    "IMPORT_PATH_RULE",
    "MAX_SEED",
    "DatasetChecksumError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DeviceLoader",
    "Loaders",
    "RawDataset",
    "SettingError",
    "build_loaders",
    "channel_stats",
    "check_bool",
    "check_name_or_import_path",
    "check_non_negative_int",
    "check_positive_int",
    "check_seed",
    "check_train_subset",
    "clear_dataset_cache",
    "get_dataset_info",
    "import_callable",
    "is_import_path",
    "list_datasets",
    "load_dataset_function",
    "load_raw",
    "resolve_data_dir",
    "resolve_dataset",
    "split_indices",
]
