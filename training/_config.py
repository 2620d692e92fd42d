"""``TrainConfig`` (what to train, validated on construction) and ``TrainResult``."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from data import (
    check_bool,
    check_name_or_import_path,
    check_positive_int,
    check_seed,
    check_train_subset,
    list_datasets,
)
from models import list_models
from optim import get_optimizer_info, list_optimizers

__all__ = ["EpochMetrics", "TrainConfig", "TrainResult"]

#: One epoch's record: epoch (1-based), lr, train_loss, train_acc, val_loss, val_acc,
#: images_per_s (training phase only) and seconds (the whole epoch, validation included).
EpochMetrics = dict[str, float]

PathLike = str | os.PathLike[str]

# Fields that change the numbers a run produces: a checkpoint is only resumed under a config
# that agrees on all of them (where to write, the device, ... may change). ``compile`` is not
# one: like a change of device it moves results by float rounding only, and a compiled run's
# checkpoint is an eager run's, so a run may resume with or without it.
RESULT_FIELDS = (
    "dataset",
    "model",
    "optimizer",
    "hparams",
    "epochs",
    "batch_size",
    "seed",
    "train_subset",
    "bf16",
    "channels_last",
    "augment",
)

_PATH_FIELDS = ("data_dir", "checkpoint_dir", "metrics_path")
_BOOL_FIELDS = (
    "download",
    "verify",
    "bf16",
    "channels_last",
    "compile",
    "evaluate_test",
    "resume",
    "progress",
)


def _freeze(value: Any) -> Any:
    """Lists (e.g. ``betas`` read from JSON) become tuples, so equal configs compare equal."""
    return tuple(_freeze(v) for v in value) if isinstance(value, list | tuple) else value


@dataclass(frozen=True)
class TrainConfig:
    """One training run under the paper's protocol (see :func:`training.train`).

    ``dataset`` and ``model`` are registry names or ``"package.module:function"`` import
    paths (a dataset function called with no arguments, a model function called as
    ``function(num_classes=N, in_channels=C)``); the path's syntax is checked here, whether it
    resolves when the run starts (:class:`training.SettingError`). ``augment`` (random crop and
    flip of the training images) ``None`` is the dataset's own default: the registry's, off
    for an import-path dataset.
    ``hparams`` are the optimizer's keyword arguments (lr, weight_decay, betas, momentum, eps).
    ``device="auto"`` is CUDA when available, else CPU; ``bf16`` (autocast) and
    ``channels_last`` need CUDA and are rejected on CPU rather than silently ignored.
    ``compile`` runs the model and the optimizer step through ``torch.compile``.
    ``evaluate_test=False`` never reads the test split. ``checkpoint_dir`` receives a
    checkpoint after every epoch, which ``resume=True`` continues from (a fresh start if there
    is none yet). ``metrics_path`` receives one JSON object per epoch. Paths are stored as
    :class:`~pathlib.Path`.
    """

    dataset: str
    model: str
    optimizer: str
    hparams: Mapping[str, Any]
    epochs: int
    batch_size: int = 128
    seed: int = 0
    device: str = "auto"
    data_dir: PathLike | None = None
    download: bool = False
    verify: bool = True
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    train_subset: int | None = None
    evaluate_test: bool = True
    checkpoint_dir: PathLike | None = None
    resume: bool = False
    metrics_path: PathLike | None = None
    progress: bool = True
    augment: bool | None = None

    def __post_init__(self) -> None:
        check_name_or_import_path("dataset", self.dataset, list_datasets())
        check_name_or_import_path("model", self.model, list_models())
        if self.optimizer not in list_optimizers():
            raise ValueError(
                f"optimizer must be one of {list_optimizers()}, but got {self.optimizer!r}"
            )
        if not isinstance(self.hparams, Mapping):
            raise ValueError(f"hparams must be a mapping, but got {self.hparams!r}")
        accepted = get_optimizer_info(self.optimizer).hyperparameters()
        unknown = sorted(set(self.hparams) - set(accepted))
        if unknown:
            raise ValueError(
                f"hparams must be keyword arguments of optimizer {self.optimizer!r} "
                f"{sorted(accepted)}, but got unknown {unknown}"
            )
        object.__setattr__(self, "hparams", {k: _freeze(v) for k, v in self.hparams.items()})
        for name in _PATH_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str | os.PathLike):
                raise ValueError(f"{name} must be a path or None, but got {value!r}")
            if value is not None:
                object.__setattr__(self, name, Path(value))
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_seed("seed", self.seed)
        check_train_subset("train_subset", self.train_subset)
        if not _is_device(self.device):
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', but got {self.device!r}"
            )
        for name in _BOOL_FIELDS:
            check_bool(name, getattr(self, name))
        if self.augment is not None:
            check_bool("augment", self.augment)
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume must be False when checkpoint_dir is None, but got True")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (paths as strings)."""
        out = dataclasses.asdict(self)
        out["hparams"] = dict(self.hparams)
        for name in _PATH_FIELDS:
            if out[name] is not None:
                out[name] = os.fspath(out[name])
        return out

    def result_fields(self) -> dict[str, Any]:
        """The fields a checkpoint must agree on to be resumed (see ``RESULT_FIELDS``)."""
        return {name: self.to_dict()[name] for name in RESULT_FIELDS}


def _is_device(device: object) -> bool:
    if device == "auto":
        return True
    if not isinstance(device, str):
        return False
    try:
        return torch.device(device).type in ("cpu", "cuda")
    except RuntimeError:
        return False


@dataclass(frozen=True)
class TrainResult:
    """What :func:`training.train` returns.

    ``status`` is ``"completed"``, or ``"diverged"`` (with ``reason``) when the training loss
    became NaN or infinite; a diverged run is not evaluated on test. Accuracies are fractions
    in [0, 1]; ``best_epoch`` is 1-based; ``test_acc`` is ``None`` unless the test split was
    evaluated (once, with the best-validation weights). ``history`` holds one
    :data:`EpochMetrics` per finished epoch (earlier ones included after a resume);
    ``seconds`` is this call's wall time; ``images_per_s`` is the training throughput over
    ``history``.
    """

    status: Literal["completed", "diverged"]
    reason: str | None
    best_val_acc: float | None
    best_epoch: int | None
    test_acc: float | None
    epochs_run: int
    history: list[EpochMetrics]
    config: TrainConfig
    seconds: float
    images_per_s: float
    hparams: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hparams", dict(self.config.hparams))

    def to_dict(self, *, history: bool = True) -> dict[str, Any]:
        """JSON-ready dict; ``history=False`` leaves the per-epoch records out."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["config"] = self.config.to_dict()
        if not history:
            del out["history"]
        return out
