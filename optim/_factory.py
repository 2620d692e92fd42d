"""The registry of optimizer names and ``create_optimizer``, shaped after timm's OptimInfo."""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._param_groups import param_groups_scale_invariant
from .adam_g import AdamG
from .adam_s import AdamS
from .adam_srt import AdamSRT
from .sgd_mrt import SGDMRT

__all__ = [
    "OptimInfo",
    "check_hyperparameters",
    "create_optimizer",
    "get_optimizer_info",
    "list_optimizers",
    "register_optimizer",
]


@dataclass(frozen=True)
class OptimInfo:
    """A named optimizer: its class, whether it uses channel-wise groups, and default kwargs."""

    name: str
    cls: type[torch.optim.Optimizer]
    description: str
    spherical: bool
    defaults: dict[str, Any] = field(default_factory=dict)

    def hyperparameters(self) -> list[str]:
        """The keyword arguments its constructor accepts besides ``params``."""
        sig = inspect.signature(self.cls.__init__)
        return [n for n in sig.parameters if n not in ("self", "params")]


_REGISTRY: dict[str, OptimInfo] = {}


def _canonical(name: str) -> str:
    """Optimizer names are case-insensitive: the one place they are normalised."""
    return name.lower()


def register_optimizer(info: OptimInfo) -> OptimInfo:
    """Add ``info`` to the registry under its name, lower-cased; returns the stored entry."""
    name = _canonical(info.name)
    if name in _REGISTRY:
        warnings.warn(f"optimizer {name!r} is registered again; replacing it", stacklevel=2)
    if info.name != name:
        info = dataclasses.replace(info, name=name)
    _REGISTRY[name] = info
    return info


def list_optimizers() -> list[str]:
    return sorted(_REGISTRY)


def get_optimizer_info(name: str) -> OptimInfo:
    try:
        return _REGISTRY[_canonical(name)]
    except KeyError:
        raise ValueError(f"Unknown optimizer {name!r}; available: {list_optimizers()}") from None


for _info in (
    OptimInfo("adams", AdamS, "Adam with a per-filter second moment", True),
    OptimInfo("adamsrt", AdamSRT, "AdamS with rescaling and transport of its moments", True),
    OptimInfo("sgdmrt", SGDMRT, "SGD-momentum with rescaling and transport", True),
    OptimInfo("adamg", AdamG, "Adam on the unit sphere for channel-wise filters", True),
    OptimInfo("adam", torch.optim.Adam, "torch.optim.Adam (coupled L2)", False),
    OptimInfo("adamw", torch.optim.AdamW, "torch.optim.AdamW (decoupled weight decay)", False),
    OptimInfo("sgd", torch.optim.SGD, "torch.optim.SGD with momentum", False, {"momentum": 0.9}),
):
    register_optimizer(_info)


def create_optimizer(
    name: str, model_or_param_groups: nn.Module | Iterable[Any], **hparams: Any
) -> torch.optim.Optimizer:
    """Build optimizer ``name`` for a model or for explicit parameters / param groups.

    Given a model, the spherical optimizers get two groups: the scale-invariant weights (a layer
    whose output feeds only a BatchNorm) with ``channel_wise=True``, and everything else; the
    stock optimizers get one group. ``hparams`` (lr, weight_decay, betas, momentum, eps, ...)
    apply to every group.

    Example:
        >>> import torch
        >>> from optim import create_optimizer
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8))
        >>> opt = create_optimizer("adamsrt", model, lr=1e-3, weight_decay=5e-4)
        >>> [g["channel_wise"] for g in opt.param_groups]
        [True, False]
    """
    info = get_optimizer_info(name)
    kwargs = _kwargs(info, hparams)
    if isinstance(model_or_param_groups, nn.Module):
        model = model_or_param_groups
        if info.spherical:
            params: Any = param_groups_scale_invariant(model)
        else:
            params = [p for p in model.parameters() if p.requires_grad]
    else:
        params = model_or_param_groups
    return info.cls(params, **kwargs)


# What torch.optim.Optimizer raises once the subclass has checked its hyper-parameters.
_EMPTY_PARAMS = "optimizer got an empty parameter list"


def check_hyperparameters(name: str, **hparams: Any) -> None:
    """Raise the ValueError ``create_optimizer(name, model, **hparams)`` would raise for these
    names and values, without building an optimizer.

    The constructor's own checks run on an empty parameter list, which stops it before its
    first param group: torch imports its compiler (1-5 s) at a process's first param group,
    and a process that only validates a search space never trains.

    Example:
        >>> from optim import check_hyperparameters
        >>> check_hyperparameters("adamsrt", lr=1e-3, betas=(0.9, 1.5))
        Traceback (most recent call last):
        ...
        ValueError: Invalid beta parameter at index 1: 1.5
    """
    info = get_optimizer_info(name)
    try:
        info.cls([], **_kwargs(info, hparams))
    except ValueError as exc:
        if str(exc) != _EMPTY_PARAMS:
            raise


def _kwargs(info: OptimInfo, hparams: dict[str, Any]) -> dict[str, Any]:
    """The constructor's keyword arguments: the entry's defaults under ``hparams``, whose
    names must be ones the constructor takes."""
    accepted = info.hyperparameters()
    unknown = sorted(set(hparams) - set(accepted))
    if unknown:
        raise ValueError(
            f"optimizer {info.name!r} does not take {unknown}; it takes {sorted(accepted)}"
        )
    return {**info.defaults, **hparams}
