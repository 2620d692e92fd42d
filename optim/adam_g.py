"""AdamG: Adam on the unit sphere for scale-invariant filters (the paper's baseline).

Method: Cho & Lee, "Riemannian approach to batch normalization", NeurIPS 2017, as run in
Roburin et al., arXiv:2006.13382. Original code: github.com/ymontmarin/adamsrt (MIT).

Difference from the released code, on purpose: that code applies the sphere branch to the group
WITHOUT ``channel_wise`` (an inverted flag), so conv filters got plain Adam and BatchNorm γ/β were
renormalised to ±1. Here the sphere branch runs on the channel-wise filters, as the method intends,
and every other parameter gets Adam with coupled L2.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._adam_common import (
    adam_elementwise_,
    advance_steps,
    first_moment_,
    multi_tensor_step,
    norm_and_dot_after_step,
    unit_moments_and_sums,
    unit_second_moment_,
    unit_second_moments_and_steps,
    unit_step_and_transport_,
    unit_sums,
)
from ._adam_family import AdamFamily
from ._batching import Workspace
from ._docs import CHANNEL_DOC, PARAMS_DOC, REFERENCE
from ._layout import FilterLayout, stat_dtype

__all__ = ["AdamG", "adamg"]


class AdamG(AdamFamily):
    def _update(self, *tensor_lists: list[Any], **hyperparameters: Any) -> None:
        adamg(*tensor_lists, **hyperparameters)


AdamG.__doc__ = rf"""Implements AdamG: channel-wise filters optimized on the unit sphere.

    .. math::
        \begin{{aligned}}
            &\textbf{{for}}\: t=1 \textbf{{ to }} \ldots \textbf{{ do}}
                \text{{ (per filter }} x_c \text{{ of a channel-wise tensor, no weight decay)}} \\
            &\hspace{{5mm}} m \leftarrow \beta_1 m + (1-\beta_1) g,\quad
                v_c \leftarrow \beta_2 v_c + (1-\beta_2) \lVert g_c \rVert^2 \\
            &\hspace{{5mm}} x_{{new}} = x_{{old}} - \frac{{\gamma}}{{1-\beta_1^t}}
                \frac{{m}}{{\sqrt{{v_c}}/\sqrt{{1-\beta_2^t}} + \epsilon}} \\
            &\hspace{{5mm}} m \leftarrow \frac{{\langle x_{{old}}, x_{{new}} \rangle m
                - \langle m, x_{{new}} \rangle x_{{old}}}}
                {{\lVert x_{{old}} \rVert \lVert x_{{new}} \rVert + \epsilon}} \\
            &\hspace{{5mm}} x_{{new}} \leftarrow x_{{new}} / (\lVert x_{{new}} \rVert + \epsilon) \\
        \end{{aligned}}

    All other tensors follow :class:`torch.optim.Adam` with coupled L2 ``weight_decay``.
    {REFERENCE}

    Args:
        {PARAMS_DOC}
        lr (float, optional): learning rate; the paper uses 1e-2 (default: 1e-3).
        betas (Tuple[float, float], optional): running-average coefficients (default: (0.9, 0.999)).
        eps (float, optional): numerical stability term (default: 1e-8).
        weight_decay (float, optional): coupled L2 on element-wise tensors only (default: 0).
        {CHANNEL_DOC}

    Example:
        >>> import torch
        >>> from optim import AdamG
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8))
        >>> conv, bn = model[0].weight, list(model[1].parameters())
        >>> opt = AdamG([{{"params": [conv], "channel_wise": True}}, {{"params": bn}}], lr=1e-2)
        >>> model(torch.randn(2, 3, 8, 8)).square().mean().backward()
        >>> opt.step()
        >>> bool(torch.allclose(conv.flatten(1).norm(dim=1), torch.ones(8), atol=1e-5))
        True
    """


def adamg(
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
    """Functional API that performs AdamG algorithm computation. See :class:`AdamG` for details.

    ``foreach=False`` runs the single-tensor reference form (the one torch.compile traces);
    ``foreach=True`` the multi-tensor form, with a float ``lr``."""
    hp = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps, "weight_decay": weight_decay}
    tensor_lists = (params, grads, exp_avgs, exp_avg_sqs, steps, layouts)
    if foreach:
        units = _adamg_units
        multi_tensor_step(units, *tensor_lists, workspace=workspace or Workspace(), **hp)
    else:
        _single_tensor_adamg(*tensor_lists, **hp)


def _single_tensor_adamg(
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
        first_moment_(m, grad, beta1)  # no weight decay on the sphere
        _, denom = unit_second_moment_(v, grad, layout, dtype, bc2, beta2=beta2, eps=eps)
        s = lr / bc1 / denom  # x_new = x − s·m, no √d
        xx, mm, xm = unit_sums(p, m, layout, dtype)
        b, e = norm_and_dot_after_step(xx, mm, xm, s)  # ‖x_new‖², ⟨m, x_new⟩
        p.sub_(m.to(dtype) * s)
        inv = 1 / (xx.sqrt() * b.sqrt() + eps)
        m.copy_(m * (b * inv) - p * (e * inv))  # T on the first moment
        p.div_(b.sqrt() + eps)  # back onto the unit sphere


def _adamg_units(
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
) -> None:
    """The units of several small tensors at once, or of one large tensor: the per-unit sums,
    the scalar maths on one flat vector of per-unit values, the step and the transport in one
    pass, then the projection. No weight decay on the sphere."""
    batch = ws.batch(layouts, params[0])
    gg, xx, mm, xm = unit_moments_and_sums(
        batch, params, grads, exp_avgs, beta1=beta1, weight_decay=0.0
    )
    v, s = unit_second_moments_and_steps(batch, exp_avg_sqs, gg, bcs, lr=lr, beta2=beta2, eps=eps)
    b, e = norm_and_dot_after_step(xx, mm, xm, s)  # ‖x_new‖², ⟨m, x_new⟩
    inv = 1 / (xx.sqrt() * b.sqrt() + eps)
    unit_step_and_transport_(batch, params, exp_avgs, s, b, e, inv)  # T on m
    torch._foreach_mul_(params, batch.keep(1 / (b.sqrt() + eps)))  # back onto the unit sphere
    torch._foreach_copy_(exp_avg_sqs, batch.stat(v))
