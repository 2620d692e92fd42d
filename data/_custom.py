"""A dataset of the user's own, named by import path.

``"package.module:function"`` names a function called with no arguments that returns
``(x_train, y_train, x_test, y_test)``: images ``(N, C, H, W)`` as uint8 (0-255) or floating
point, labels int64 ``(N,)`` in ``0 .. num_classes - 1``. Checked once, then cached.
"""

from __future__ import annotations

import torch

from ._cache import dataset_cache
from ._import_path import SettingError, first_line, import_callable
from ._registry import DatasetInfo
from ._sources import RawDataset

__all__ = [
    "CUSTOM_VAL_FRACTION",
    "channel_stats",
    "custom_info",
    "load_dataset_function",
]

#: Share of an import-path dataset's training tensors held out for validation.
CUSTOM_VAL_FRACTION = 0.1


def load_dataset_function(path: str, *, with_test: bool = True) -> RawDataset:
    """Call the dataset function at ``path`` (once per process) and check what it returns.

    The tensors are returned on CPU, contiguous, floating images as float32; they are shared
    with the cache and must not be modified. ``with_test=False`` leaves the test fields
    ``None`` (the function returns all four tensors; they are checked all the same).

    Raises:
        SettingError: one line naming ``path`` and the rule its result breaks.
    """
    raw = dataset_cache.get(("import-path", path), lambda: _call(path))
    if with_test:
        return raw
    return RawDataset(raw.train_images, raw.train_labels, None, None)


def _call(path: str) -> RawDataset:
    function = import_callable(path, "dataset")
    try:
        result = function()
    except Exception as err:
        raise SettingError(
            f"dataset {path!r} must return the dataset when called with no arguments, "
            f"but it raised {first_line(err)}"
        ) from err
    return _checked(path, result)


def _fail(path: str, rule: str, got: str) -> SettingError:
    return SettingError(f"dataset {path!r} must return {rule}, but {got}")


def _checked(path: str, result: object) -> RawDataset:
    """``result`` as a :class:`RawDataset`, or ``SettingError`` naming the broken rule."""
    shape_rule = "(x_train, y_train, x_test, y_test) tensors"
    if not isinstance(result, tuple | list) or len(result) != 4:
        got = f"a {type(result).__name__}" + (
            f" of {len(result)}" if isinstance(result, tuple | list) else ""
        )
        raise _fail(path, f"a tuple of 4 {shape_rule}", f"it returned {got}")
    names = ("x_train", "y_train", "x_test", "y_test")
    for name, value in zip(names, result, strict=True):
        if not isinstance(value, torch.Tensor):
            raise _fail(path, shape_rule, f"{name} is a {type(value).__name__}")
    x_train, y_train, x_test, y_test = (t.detach().cpu() for t in result)
    for name, x in (("x_train", x_train), ("x_test", x_test)):
        if x.ndim != 4 or not (x.dtype == torch.uint8 or x.is_floating_point()):
            raise _fail(
                path,
                f"{name} as uint8 (0-255) or float images of shape (N, C, H, W)",
                f"got {x.dtype} of shape {tuple(x.shape)}",
            )
    if x_test.dtype != x_train.dtype or x_test.shape[1:] != x_train.shape[1:]:
        raise _fail(
            path,
            "x_test with x_train's dtype and (C, H, W)",
            f"got {x_test.dtype} {tuple(x_test.shape[1:])} against "
            f"{x_train.dtype} {tuple(x_train.shape[1:])}",
        )
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        if y.ndim != 1 or y.dtype != torch.int64:
            raise _fail(
                path,
                f"{name} as int64 labels of shape (N,)",
                f"got {y.dtype} of shape {tuple(y.shape)}",
            )
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(y):
            raise _fail(
                path, f"one label per {split} image", f"got {len(x)} images and {len(y)} labels"
            )
    if len(x_train) < 2 or len(x_test) < 1:
        raise _fail(
            path,
            "at least 2 training images (training and validation) and 1 test image",
            f"got {len(x_train)} and {len(x_test)}",
        )
    if y_train.min() < 0:
        raise _fail(path, "labels from 0", f"y_train holds {int(y_train.min())}")
    num_classes = int(y_train.max()) + 1
    if y_test.min() < 0 or y_test.max() >= num_classes:
        bad = int(y_test.min()) if y_test.min() < 0 else int(y_test.max())
        raise _fail(
            path,
            f"test labels among the training labels' 0 .. {num_classes - 1}",
            f"y_test holds {bad}",
        )
    if x_train.is_floating_point():
        for name, x in (("x_train", x_train), ("x_test", x_test)):
            if not bool(torch.isfinite(x).all()):
                raise _fail(path, f"finite values in {name}", "it holds NaN or infinity")
        x_train, x_test = x_train.to(torch.float32), x_test.to(torch.float32)
    return RawDataset(
        x_train.contiguous(), y_train.contiguous(), x_test.contiguous(), y_test.contiguous()
    )


def custom_info(path: str, raw: RawDataset) -> DatasetInfo:
    """The :class:`DatasetInfo` of the dataset function at ``path``, from its training split:
    ``num_classes`` is the largest training label + 1; no augmentation by default; ``mean`` and
    ``std`` are left ``None`` here, since they are computed per seed from the training images
    that remain once the validation split is drawn (see :func:`channel_stats`)."""
    _, c, h, w = raw.train_images.shape
    test_size = 0 if raw.test_labels is None else len(raw.test_labels)
    return DatasetInfo(
        name=path,
        num_classes=int(raw.train_labels.max()) + 1,
        in_channels=c,
        image_size=h if h == w else (h, w),
        mean=None,
        std=None,
        augment=False,
        val_fraction=CUSTOM_VAL_FRACTION,
        train_size=len(raw.train_labels),
        test_size=test_size,
        source=f"the dataset function {path}",
    )


def channel_stats(
    images: torch.Tensor, indices: torch.Tensor, chunk: int = 1024
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of ``images[indices]`` as the loader feeds them
    (uint8 scaled to [0, 1], floats as they are), in float64, a chunk at a time so a large
    split is never copied whole. A constant channel gets std 1 (it is only centred)."""
    c = images.shape[1]
    scale = 1 / 255.0 if images.dtype == torch.uint8 else 1.0
    count = len(indices) * images.shape[2] * images.shape[3]
    total = torch.zeros(c, dtype=torch.float64)
    for part in indices.split(chunk):
        total += images[part].to(torch.float64).sum(dim=(0, 2, 3))
    mean = total * scale / count
    squares = torch.zeros(c, dtype=torch.float64)
    for part in indices.split(chunk):
        centred = images[part].to(torch.float64) * scale - mean.reshape(-1, 1, 1)
        squares += centred.square().sum(dim=(0, 2, 3))
    std = (squares / count).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple(mean.tolist()), tuple(std.tolist())
