"""A setting (dataset and model, from the registries or by import path) resolved and checked
before any training: :func:`inspect_setting`, shared by the search driver and
training_example.py, and the model and parameter groups :func:`training.train` builds."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from data import (
    SettingError,
    check_bool,
    check_name_or_import_path,
    import_callable,
    is_import_path,
    list_datasets,
    resolve_dataset,
)
from data._import_path import first_line
from models import create_model, list_models
from optim import (
    get_optimizer_info,
    list_optimizers,
    param_groups_scale_invariant,
    scale_invariant_params,
)

__all__ = ["SettingInfo", "build_model", "inspect_setting", "optimizer_params"]


def build_model(name: str, *, num_classes: int, in_channels: int) -> nn.Module:
    """The registered model ``name``, or ``function(num_classes=..., in_channels=...)`` for
    an import path ``"package.module:function"``.

    Raises:
        ValueError: an unknown registry name.
        SettingError: the import path does not resolve, the function raises, or it returns
            something other than an ``nn.Module``.
    """
    if not is_import_path(name):
        return create_model(name, num_classes=num_classes, in_channels=in_channels)
    function = import_callable(name, "model")
    call = f"{name.partition(':')[2]}(num_classes={num_classes}, in_channels={in_channels})"
    try:
        model = function(num_classes=num_classes, in_channels=in_channels)
    except Exception as err:
        raise SettingError(
            f"model {name!r} must build a model when called as {call}, "
            f"but it raised {first_line(err)}"
        ) from err
    if not isinstance(model, nn.Module):
        raise SettingError(
            f"model {name!r} must return a torch.nn.Module, but {call} returned a "
            f"{type(model).__name__}"
        )
    return model


def optimizer_params(optimizer: str, model: nn.Module) -> tuple[Any, str | None]:
    """What :func:`optim.create_optimizer` is given for ``model``, and why the plain rule is
    used (``None`` when it is not forced).

    A stock optimizer gets the model. A spherical one gets the model's parameter groups: the
    scale-invariant weights in a channel-wise group, found structurally with ``torch.fx`` as
    ``create_optimizer`` finds them; when fx cannot trace the model, every trainable weight in
    the one non-channel-wise group (the plain rule), with the reason.
    """
    if not get_optimizer_info(optimizer).spherical:
        return model, None
    try:
        return param_groups_scale_invariant(model), None
    except ValueError as err:  # its one ValueError: torch.fx cannot trace the model
        return [p for p in model.parameters() if p.requires_grad], _trace_failure(err)


def _trace_failure(err: ValueError) -> str:
    cause = err.__cause__ if err.__cause__ is not None else err
    return first_line(cause, limit=120)


_SPHERICAL = tuple(n for n in list_optimizers() if get_optimizer_info(n).spherical)


@dataclass(frozen=True)
class SettingInfo:
    """What :func:`inspect_setting` found.

    ``image_size`` is ``(height, width)``; ``n_train`` the images of the dataset's training
    split before the validation split is drawn; ``augment`` the augmentation a run gets;
    ``scale_invariant`` how many weight tensors :func:`optim.scale_invariant_params` finds
    (a conv or linear whose output feeds only a BatchNorm), 0 when fx cannot trace the model,
    and ``untraceable`` then says why.
    """

    dataset: str
    model: str
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    n_train: int
    augment: bool
    scale_invariant: int
    untraceable: str | None = None

    @property
    def notice(self) -> str | None:
        """One line to print before training with a spherical optimizer when it falls back to
        the plain rule (no scale-invariant weight found, or a model fx cannot trace); else
        ``None``. Callers print it as it is, so every tool says the same."""
        plain = (
            f"the spherical optimizers ({', '.join(_SPHERICAL)}) train it with their plain "
            "rule, every weight in the non-channel-wise group"
        )
        if self.untraceable is not None:
            return (
                f"note: torch.fx cannot trace model {self.model!r} to find its scale-invariant "
                f"weights ({self.untraceable}): {plain}"
            )
        if self.scale_invariant == 0:
            return (
                f"note: model {self.model!r} has no scale-invariant weights (a conv or linear "
                f"whose output feeds only a BatchNorm): {plain}"
            )
        return None

    def notice_for(self, optimizers: Iterable[str]) -> str | None:
        """:attr:`notice` if one of ``optimizers`` is spherical, else ``None``."""
        spherical = any(get_optimizer_info(name).spherical for name in optimizers)
        return self.notice if spherical else None


def inspect_setting(
    dataset: str,
    model: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    augment: bool | None = None,
    download: bool = False,
    verify: bool = True,
) -> SettingInfo:
    """Resolve ``dataset`` and ``model`` and check that they fit, before any training.

    The dataset's training split is read (a registry dataset's test files are never opened;
    the read is cached for the run that follows); the model is built on CPU for its classes
    and channels, traced for its scale-invariant weights, and given a batch of two blank
    images in training and in evaluation mode, which must give ``(2, num_classes)`` logits.
    The global torch RNG is left as it was. ``data_dir``, ``download`` and ``verify`` are
    those of :func:`data.load_raw`.

    Raises:
        ValueError: a name neither in a registry nor an import path.
        data.DatasetNotFoundError: a registry dataset's files are missing.
        data.DatasetChecksumError: they fail torchvision's md5 check.
        SettingError: an import path that does not resolve, raises, returns the wrong
            thing, or a model that does not fit the dataset's images.
    """
    check_name_or_import_path("dataset", dataset, list_datasets())
    check_name_or_import_path("model", model, list_models())
    if augment is not None:
        check_bool("augment", augment)
    info, raw = resolve_dataset(
        dataset, data_dir, download=download, verify=verify, with_test=False
    )
    _, channels, height, width = raw.train_images.shape
    with torch.random.fork_rng(devices=[]):
        net = build_model(model, num_classes=info.num_classes, in_channels=channels)
        _check_forward(model, net, (channels, height, width), info.num_classes)
    try:
        found, untraceable = len(scale_invariant_params(net)), None
    except ValueError as err:
        found, untraceable = 0, _trace_failure(err)
    return SettingInfo(
        dataset=dataset,
        model=model,
        num_classes=info.num_classes,
        in_channels=channels,
        image_size=(height, width),
        n_train=len(raw.train_labels),
        augment=info.augment if augment is None else augment,
        scale_invariant=found,
        untraceable=untraceable,
    )


def _check_forward(name: str, net: nn.Module, shape: tuple[int, ...], num_classes: int) -> None:
    batch = torch.zeros(2, *shape)
    for mode in ("train", "eval"):
        net.train(mode == "train")
        try:
            with torch.no_grad():
                out = net(batch)
        except Exception as err:
            raise SettingError(
                f"model {name!r} must accept the dataset's images, but a (2, "
                f"{', '.join(map(str, shape))}) batch in {mode} mode raised {first_line(err)}"
            ) from err
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise SettingError(
                f"model {name!r} must return (batch, {num_classes}) logits for the dataset's "
                f"{num_classes} classes, but returned {got} in {mode} mode"
            )
