"""Search spaces: what a trial suggests, turned into the optimizer's full hyper-parameters.

Two spaces per optimizer:

- ``default`` (for TPE/random): log-uniform lr and weight decay (values below ``WD_FLOOR``
  mean exactly 0, so "no weight decay" is reachable), β2 as log-uniform 1 − β2, momentum.
- ``paper-grid``: the grid of the paper's published search (Appendix E): weight decay in
  {0} ∪ {5e-4·2^−k, k = 0…6}, β2 in {0.99, 0.999} for the Adam family, lr fixed per family.

The suggest functions compute nothing (Ray's rule for define-by-run spaces): they only ask the
trial and assemble a dict.
"""

from __future__ import annotations

from typing import Any

import optuna

SPACES = ("default", "paper-grid")

ADAM_FAMILY = ("adam", "adamw", "adams", "adamsrt", "adamg")
SGD_FAMILY = ("sgd", "sgdmrt")

# lr ranges of the default space, and the single lr of the paper's grid, per optimizer.
LR_RANGE = {"sgd": (1e-2, 1.0), "sgdmrt": (1e-2, 1.0), "adamg": (1e-3, 1e-1)}
LR_RANGE_ADAM = (1e-4, 1e-2)
PAPER_LR = {"sgd": 0.1, "sgdmrt": 0.1, "adamg": 1e-2}
PAPER_LR_ADAM = 1e-3

WD_RANGE = (1e-7, 1e-2)
WD_FLOOR = 1e-6
PAPER_WEIGHT_DECAYS = (0.0, *(5e-4 * 2.0**-k for k in range(7)))
PAPER_BETA2 = (0.99, 0.999)
BETA1 = 0.9
EPS = 1e-8
MOMENTUM = 0.9


def _check(optimizer: str, space: str) -> None:
    if optimizer not in ADAM_FAMILY + SGD_FAMILY:
        raise ValueError(
            f"optimizer must be one of {sorted(ADAM_FAMILY + SGD_FAMILY)}, but got {optimizer!r}"
        )
    if space not in SPACES:
        raise ValueError(f"space must be one of {list(SPACES)}, but got {space!r}")


def _hparams(optimizer: str, lr: float, weight_decay: float, second: float) -> dict[str, Any]:
    """The explicit hyper-parameters of ``optimizer`` (the keys best_hyper_parameters.py uses)."""
    if optimizer in SGD_FAMILY:
        return {"lr": lr, "momentum": second, "weight_decay": weight_decay}
    return {"lr": lr, "betas": (BETA1, second), "weight_decay": weight_decay, "eps": EPS}


def grid(optimizer: str, space: str) -> dict[str, list[Any]] | None:
    """The GridSampler search space of ``space``, or None when it is not a grid."""
    _check(optimizer, space)
    if space != "paper-grid":
        return None
    axes: dict[str, list[Any]] = {"weight_decay": list(PAPER_WEIGHT_DECAYS)}
    if optimizer in ADAM_FAMILY:
        axes["beta2"] = list(PAPER_BETA2)
    return axes


def grid_size(optimizer: str, space: str) -> int | None:
    axes = grid(optimizer, space)
    if axes is None:
        return None
    size = 1
    for values in axes.values():
        size *= len(values)
    return size


def suggest(trial: optuna.Trial, optimizer: str, space: str) -> dict[str, Any]:
    """Ask ``trial`` for the parameters of ``space`` and return the optimizer's hyper-parameters."""
    _check(optimizer, space)
    if space == "paper-grid":
        weight_decay = trial.suggest_categorical("weight_decay", list(PAPER_WEIGHT_DECAYS))
        lr = PAPER_LR.get(optimizer, PAPER_LR_ADAM)
        if optimizer in SGD_FAMILY:
            return _hparams(optimizer, lr, weight_decay, MOMENTUM)
        beta2 = trial.suggest_categorical("beta2", list(PAPER_BETA2))
        return _hparams(optimizer, lr, weight_decay, beta2)

    low, high = LR_RANGE.get(optimizer, LR_RANGE_ADAM)
    lr = trial.suggest_float("lr", low, high, log=True)
    raw_wd = trial.suggest_float("weight_decay", *WD_RANGE, log=True)
    weight_decay = 0.0 if raw_wd < WD_FLOOR else raw_wd
    if optimizer in SGD_FAMILY:
        momentum = trial.suggest_float("momentum", 0.8, 0.99)
        return _hparams(optimizer, lr, weight_decay, momentum)
    one_minus_beta2 = trial.suggest_float("one_minus_beta2", 1e-3, 1e-1, log=True)
    return _hparams(optimizer, lr, weight_decay, 1.0 - one_minus_beta2)
