"""Optimizers of "Spherical Perspective on Learning with Batch Norm" (arXiv:2006.13382).

``AdamS``, ``AdamSRT``, ``SGDMRT`` and the ``AdamG`` baseline are :class:`torch.optim.Optimizer`
subclasses; ``create_optimizer`` builds them, or torch's Adam, AdamW and SGD, by name.
"""

from ._factory import (
    OptimInfo,
    check_hyperparameters,
    create_optimizer,
    get_optimizer_info,
    list_optimizers,
    register_optimizer,
)
from ._param_groups import param_groups_scale_invariant, scale_invariant_params
from .adam_g import AdamG
from .adam_s import AdamS
from .adam_srt import AdamSRT
from .sgd_mrt import SGDMRT

__all__ = [
    "SGDMRT",
    "AdamG",
    "AdamS",
    "AdamSRT",
    "OptimInfo",
    "check_hyperparameters",
    "create_optimizer",
    "get_optimizer_info",
    "list_optimizers",
    "param_groups_scale_invariant",
    "register_optimizer",
    "scale_invariant_params",
]
