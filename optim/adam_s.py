"""AdamS: Adam with a standardized (per-filter) second moment.

Paper: Roburin et al., "Spherical Perspective on Learning with Batch Norm", arXiv:2006.13382
(Appendix E, Algorithm 1). Original code: github.com/ymontmarin/adamsrt (MIT). What differs from
that code: the second moment is stored as one scalar per filter (the released code stores it per
element), ``step`` takes a closure, ``p.grad`` is never modified, ``reshape`` instead of ``view``
so channels_last weights work, and a multi-tensor path does the whole step in a few passes.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import Tensor

from ._adam_common import (
    adam_elementwise_,
    advance_steps,
    decayed,
    first_moment_,
    multi_tensor_step,
    unit_moments_and_grad_norms,
    unit_second_moment_,
    unit_second_moments_and_steps,
)
from ._adam_family import AdamFamily
from ._batching import Workspace
from ._docs import ADAM_ARGS_DOC, REFERENCE
from ._layout import FilterLayout, stat_dtype

__all__ = ["AdamS", "adams"]


class AdamS(AdamFamily):
    def _update(self, *tensor_lists: list[Any], **hyperparameters: Any) -> None:
        adams(*tensor_lists, **hyperparameters)


AdamS.__doc__ = rf"""Implements AdamS: Adam with a standardized (per-filter) second moment.

    .. math::
        \begin{{aligned}}
            &\textbf{{input}}: \gamma \text{{ (lr)}}, \beta_1, \beta_2, \lambda, \epsilon;
                \text{{ filters }} x_c \in \mathbb{{R}}^d \\
            &\textbf{{for}}\: t=1 \textbf{{ to }} \ldots \textbf{{ do}} \\
            &\hspace{{5mm}} g \leftarrow \nabla L + \lambda x \\
            &\hspace{{5mm}} m \leftarrow \beta_1 m + (1-\beta_1) g \\
            &\hspace{{5mm}} v_c \leftarrow \beta_2 v_c + (1-\beta_2) \lVert g_c \rVert^2 \\
            &\hspace{{5mm}} x_c \leftarrow x_c - \gamma \sqrt{{d}} \,
                \frac{{m_c / (1-\beta_1^t)}}{{\sqrt{{v_c}} / \sqrt{{1-\beta_2^t}} + \epsilon}} \\
        \end{{aligned}}

    Element-wise tensors (groups without ``channel_wise``) are updated exactly as
    :class:`torch.optim.Adam` with the same ``weight_decay``. The second moment of a
    channel-wise tensor is one scalar per filter. {REFERENCE}
    {ADAM_ARGS_DOC}
    Example:
        >>> import torch
        >>> from optim import AdamS
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8))
        >>> conv, bn = model[0].weight, list(model[1].parameters())
        >>> opt = AdamS([{{"params": [conv], "channel_wise": True}}, {{"params": bn}}], lr=1e-3)
        >>> model(torch.randn(2, 3, 8, 8)).square().mean().backward()
        >>> opt.step()
    """


def adams(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    layouts: list[FilterLayout | None],
    *,
    foreach: bool = False,
    workspace: Workspace | None = None,
    lr: float | Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """Functional API that performs AdamS algorithm computation. See :class:`AdamS` for details.

    ``foreach=False`` runs the single-tensor reference form (the one torch.compile traces);
    ``foreach=True`` the multi-tensor form, with a float ``lr``."""
    hp = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps, "weight_decay": weight_decay}
    tensor_lists = (params, grads, exp_avgs, exp_avg_sqs, steps, layouts)
    if foreach:
        units = functools.partial(_adams_units, weight_decay=weight_decay)
        multi_tensor_step(units, *tensor_lists, workspace=workspace or Workspace(), **hp)
    else:
        _single_tensor_adams(*tensor_lists, **hp)


def _single_tensor_adams(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    layouts: list[FilterLayout | None],
    *,
    lr: float | Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    hp = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps, "weight_decay": weight_decay}
    bcs = advance_steps(steps, layouts, beta1, beta2)
    for p, grad, m, v, (bc1, bc2), layout in zip(
        params, grads, exp_avgs, exp_avg_sqs, bcs, layouts, strict=True
    ):
        if layout is None:
            adam_elementwise_(p, grad, m, v, bc1, bc2, **hp)
            continue
        dtype = stat_dtype(p.dtype)
        g = decayed(grad, p, weight_decay)
        first_moment_(m, g, beta1)
        _, denom = unit_second_moment_(v, g, layout, dtype, bc2, beta2=beta2, eps=eps)
        s = lr / bc1 * math.sqrt(layout.size) / denom  # x_new = x − s·m
        p.sub_(m.to(dtype) * s)


def _adams_units(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    layouts: list[FilterLayout],
    bcs: list[tuple[float, float]],
    ws: Workspace,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """The units of several small tensors at once, or of one large tensor: ‖g‖² per unit, the
    scalar maths on one flat vector of per-unit values, then one in-place pass."""
    batch = ws.batch(layouts, params[0])
    gg = unit_moments_and_grad_norms(
        batch, params, grads, exp_avgs, beta1=beta1, weight_decay=weight_decay
    )
    v, s = unit_second_moments_and_steps(batch, exp_avg_sqs, gg, bcs, lr=lr, beta2=beta2, eps=eps)
    s.mul_(batch.sqrt_d)
    torch._foreach_addcmul_(params, exp_avgs, batch.keep(s.neg_()))
    torch._foreach_copy_(exp_avg_sqs, batch.stat(v))
