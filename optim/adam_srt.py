"""AdamSRT: AdamS followed by Rescaling and Transport of its moments.

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
    norm_and_dot_after_step,
    unit_moments_and_sums,
    unit_second_moment_,
    unit_second_moments_and_steps,
    unit_step_and_transport_,
    unit_sums,
)
from ._adam_family import AdamFamily
from ._batching import Workspace
from ._docs import ADAM_ARGS_DOC, REFERENCE
from ._layout import FilterLayout, stat_dtype

__all__ = ["AdamSRT", "adamsrt"]


class AdamSRT(AdamFamily):
    def _update(self, *tensor_lists: list[Any], **hyperparameters: Any) -> None:
        adamsrt(*tensor_lists, **hyperparameters)


AdamSRT.__doc__ = rf"""Implements AdamSRT: AdamS followed by Rescaling and Transport of its moments.

    .. math::
        \begin{{aligned}}
            &\text{{AdamS step from }} x_{{old}} \text{{ to }} x_{{new}}, \text{{ then per filter }} c
                \text{{ of a channel-wise tensor with }} d > 1: \\
            &\hspace{{5mm}} a = \lVert x_{{old}} \rVert^2,\; b = \lVert x_{{new}} \rVert^2,\;
                c = \langle x_{{old}}, x_{{new}} \rangle,\; e = \langle m, x_{{new}} \rangle \\
            &\hspace{{5mm}} v_c \leftarrow v_c \, a / (b + \epsilon) \\
            &\hspace{{5mm}} m_c \leftarrow (c\, m_c - e\, x_{{old}}) / (b + \epsilon) \\
        \end{{aligned}}

    The transported first moment is orthogonal to the new filter; its radial part (what weight
    decay injected) is dropped. Weights are not projected on the sphere and the step counter is
    never reset. Element-wise tensors are updated exactly as :class:`torch.optim.Adam`.
    {REFERENCE}
    {ADAM_ARGS_DOC}
    Example:
        >>> import torch
        >>> from optim import AdamSRT
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8))
        >>> conv, bn = model[0].weight, list(model[1].parameters())
        >>> opt = AdamSRT([{{"params": [conv], "channel_wise": True}}, {{"params": bn}}], lr=1e-3)
        >>> model(torch.randn(2, 3, 8, 8)).square().mean().backward()
        >>> opt.step()
    """


def adamsrt(
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
    """Functional API that performs AdamSRT algorithm computation. See :class:`AdamSRT` for
    details.

    ``foreach=False`` runs the single-tensor reference form (the one torch.compile traces);
    ``foreach=True`` the multi-tensor form, with a float ``lr``."""
    hp = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps, "weight_decay": weight_decay}
    tensor_lists = (params, grads, exp_avgs, exp_avg_sqs, steps, layouts)
    if foreach:
        units = functools.partial(_adamsrt_units, weight_decay=weight_decay)
        multi_tensor_step(units, *tensor_lists, workspace=workspace or Workspace(), **hp)
    else:
        _single_tensor_adamsrt(*tensor_lists, **hp)


def _single_tensor_adamsrt(
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
    """The sums RT needs are taken before the update, with ‖g‖² (see
    :func:`~optim._adam_common.norm_and_dot_after_step`), so Inductor makes one reduction and
    one pointwise pass of each tensor. The spec's literal form is checked against this in the
    tests."""
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
        v_unit, denom = unit_second_moment_(v, g, layout, dtype, bc2, beta2=beta2, eps=eps)
        s = lr / bc1 * math.sqrt(layout.size) / denom  # x_new = x − s·m
        xx, mm, xm = unit_sums(p, m, layout, dtype)
        b, e = norm_and_dot_after_step(xx, mm, xm, s)  # ‖x_new‖², ⟨m, x_new⟩
        p.sub_(m.to(dtype) * s)
        inv = 1 / (b + eps)
        v_unit.mul_(xx * inv)  # R on the second moment
        m.copy_(m * (b * inv) - p * (e * inv))  # R and T on the first moment


def _adamsrt_units(
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
    """The units of several small tensors at once, or of one large tensor: the per-unit sums,
    the scalar maths on one flat vector of per-unit values, then the step and the transport in
    one pass. No full-size temporary but the batch's scratch."""
    batch = ws.batch(layouts, params[0])
    gg, xx, mm, xm = unit_moments_and_sums(
        batch, params, grads, exp_avgs, beta1=beta1, weight_decay=weight_decay
    )
    v, s = unit_second_moments_and_steps(batch, exp_avg_sqs, gg, bcs, lr=lr, beta2=beta2, eps=eps)
    s.mul_(batch.sqrt_d)
    b, e = norm_and_dot_after_step(xx, mm, xm, s)  # ‖x_new‖², ⟨m, x_new⟩
    inv = 1 / (b + eps)
    v.mul_(xx * inv)  # R on the second moment
    unit_step_and_transport_(batch, params, exp_avgs, s, b, e, inv)  # R and T on m
    torch._foreach_copy_(exp_avg_sqs, batch.stat(v))
