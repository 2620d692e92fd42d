"""Pieces of the update rules that AdamS, AdamSRT and AdamG share.

Element-wise tensors follow torch.optim.Adam with coupled L2, op for op, in both forms. The unit
(per-filter) pieces come in the two forms the rules are written in: the single-tensor reference
form (traced by torch.compile: tensor arithmetic only, so nothing the optimizer or a scheduler
changes between steps is baked into the graph) and the multi-tensor form (eager, on the flat
per-unit vectors of a :class:`~optim._batching.UnitBatch`).

RT needs ‖x_new‖² and ⟨m, x_new⟩ per unit. With s the per-unit step, x_new = x − s·m, so both
follow from ‖x‖², ⟨x, m⟩ and ‖m‖² taken before the update (the spec's performance hint): one
reduction and one pointwise pass over each tensor, and no copy of x_old.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._batching import UnitBatch, Workspace, plan, take
from ._layout import FilterLayout, unit_dot

# Single-tensor (reference) form.


def _bias_correction(beta: float, step: Tensor) -> Tensor:
    """1 − β^t in float64, as Python computes it. β enters through tensor arithmetic rather than
    as pow's Python base, so under torch.compile a scheduled β is a graph input, not a constant."""
    t = step.to(torch.float64)
    return 1 - (t * 0 + beta) ** t


def advance_steps(
    steps: list[Tensor], layouts: list[FilterLayout | None], beta1: float, beta2: float
) -> list[tuple[Tensor, Tensor]]:
    """t ← t + 1 for every tensor, and its bias corrections (1 − β1^t, 1 − β2^t)."""
    for step in steps:
        step += 1
    bcs = [(_bias_correction(beta1, t), _bias_correction(beta2, t)) for t in steps]
    units = [i for i, layout in enumerate(layouts) if layout is not None]
    if units:
        # The filters' 1 − β^t in one stacked tensor, so each is computed once: inlined,
        # Inductor would recompute both powers in every vector of every per-filter loop.
        stacked = torch.stack([bc for i in units for bc in bcs[i]]).view(-1, 2)
        for i, row in zip(units, stacked, strict=True):
            bcs[i] = row
    return bcs


def decayed(grad: Tensor, p: Tensor, weight_decay: float) -> Tensor:
    """g + λx (coupled L2), never written into ``p.grad``."""
    return grad if weight_decay == 0 else grad + weight_decay * p


def first_moment_(m: Tensor, g: Tensor, beta1: float) -> None:
    """m ← β1·m + (1 − β1)·g."""
    m.mul_(beta1).add_((1 - beta1) * g)


def adam_elementwise_(
    p: Tensor,
    grad: Tensor,
    m: Tensor,
    v: Tensor,
    bc1: Tensor,
    bc2: Tensor,
    *,
    lr: float | Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """torch.optim.Adam's step of one tensor, with coupled L2."""
    g = decayed(grad, p, weight_decay)
    first_moment_(m, g, beta1)
    v.mul_(beta2).add_((1 - beta2) * g * g)
    denom = v.sqrt() / bc2.sqrt() + eps
    p.sub_(lr / bc1 * m / denom)


def unit_second_moment_(
    v: Tensor,
    g: Tensor,
    layout: FilterLayout,
    dtype: torch.dtype,
    bc2: Tensor,
    *,
    beta2: float,
    eps: float,
) -> tuple[Tensor, Tensor]:
    """v_c ← β2·v_c + (1 − β2)·‖g_c‖²; returns v as a per-unit view broadcastable against the
    tensor, and the denominator √v_c / √(1 − β2^t) + ε."""
    v_unit = v.view(layout.keep_shape)
    v_unit.mul_(beta2).add_((1 - beta2) * unit_dot(g, g, layout, dtype))
    return v_unit, v_unit.to(dtype).sqrt() / bc2.sqrt() + eps


def unit_sums(
    p: Tensor, m: Tensor, layout: FilterLayout, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    """‖x‖², ‖m‖² and ⟨x, m⟩ per unit, taken before the step (with ‖g‖², Inductor makes one
    reduction and one pointwise pass of each tensor)."""
    return (
        unit_dot(p, p, layout, dtype),
        unit_dot(m, m, layout, dtype),
        unit_dot(p, m, layout, dtype),
    )


# Both forms.


def norm_and_dot_after_step(
    xx: Tensor, mm: Tensor, xm: Tensor, s: Tensor
) -> tuple[Tensor, Tensor]:
    """‖x_new‖² and ⟨m, x_new⟩ per unit, from the sums before the step x_new = x − s·m."""
    # s·‖m‖², 0 where the step is 0 (huge float32 gradients overflowed v to inf): x stays, and
    # ‖m‖² may have overflowed too, so 0·inf must not turn into NaN.
    smm = torch.where(s == 0, 0.0, s * mm)
    b = (xx - 2 * s * xm + s * smm).clamp_(min=0)  # ‖x_new‖²
    e = xm - smm  # ⟨m, x_new⟩
    return b, e


# Multi-tensor form.


def decayed_all(
    grads: list[Tensor], params: list[Tensor], weight_decay: float, ws: Workspace
) -> list[Tensor]:
    """g + λx without touching p.grad; one large tensor goes through the reusable workspace."""
    if weight_decay == 0:
        return grads
    if len(grads) == 1:
        return [torch.add(grads[0], params[0], alpha=weight_decay, out=ws.like(params[0]))]
    return list(torch._foreach_add(grads, params, alpha=weight_decay))


def multi_tensor_adam_elementwise_(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    bcs: list[tuple[float, float]],
    ws: Workspace,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """torch.optim.Adam's multi-tensor step, with coupled L2."""
    g = decayed_all(grads, params, weight_decay, ws)
    torch._foreach_lerp_(exp_avgs, g, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, g, g, 1 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, [math.sqrt(bc2) for _, bc2 in bcs])
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, [-lr / bc1 for bc1, _ in bcs])


#: The per-unit step of one rule on one batch of the plan: (params, grads, exp_avgs,
#: exp_avg_sqs, layouts, bias corrections, workspace, lr=, beta1=, beta2=, eps=).
UnitStep = Callable[..., None]


def multi_tensor_step(
    units: UnitStep,
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    layouts: list[FilterLayout | None],
    *,
    workspace: Workspace,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """The multi-tensor form every Adam-family rule shares: t ← t + 1 and the bias corrections,
    the element-wise tensors as torch.optim.Adam's multi-tensor step, and ``units`` (the rule's
    own part) on each batch of filter tensors the CPU batching plan makes. ``weight_decay`` is
    the element-wise tensors'; a rule that decays its units binds its own into ``units``."""
    bcs = multi_tensor_advance_steps(steps, beta1, beta2)
    hp = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps}
    for plain, unit_sets in plan(params, layouts):
        if plain:
            lists = take(plain, params, grads, exp_avgs, exp_avg_sqs, bcs)
            multi_tensor_adam_elementwise_(*lists, workspace, weight_decay=weight_decay, **hp)
        for idx in unit_sets:
            units(*take(idx, params, grads, exp_avgs, exp_avg_sqs, layouts, bcs), workspace, **hp)


def multi_tensor_advance_steps(
    steps: list[Tensor], beta1: float, beta2: float
) -> list[tuple[float, float]]:
    """t ← t + 1 for every tensor, and its bias corrections (1 − β1^t, 1 − β2^t) as floats."""
    torch._foreach_add_(steps, 1)
    counts = [step.item() for step in steps]
    return [(1 - beta1**t, 1 - beta2**t) for t in counts]


def unit_moments_and_grad_norms(
    batch: UnitBatch,
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    *,
    beta1: float,
    weight_decay: float,
) -> Tensor:
    """g ← ∇L + λx and m ← β1·m + (1 − β1)·g tensor by tensor, and ‖g‖² per unit while g is in
    cache, as one flat vector."""
    norms = []
    scratch = batch.scratch(params[0])
    for x, g, m, layout, out in zip(params, grads, exp_avgs, batch.layouts, scratch, strict=True):
        if weight_decay != 0:
            g = torch.add(g, x, alpha=weight_decay, out=out)
        m.lerp_(g, 1 - beta1)
        norms.append(torch.linalg.vector_norm(g, dim=layout.reduce_dims, dtype=batch.sum_dtype))
    return batch.flat(norms).square_()


def unit_moments_and_sums(
    batch: UnitBatch,
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    *,
    beta1: float,
    weight_decay: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """As :func:`unit_moments_and_grad_norms`, with the sums RT needs: ‖g‖², then ‖x‖², ‖m‖²
    and ⟨x, m⟩ per unit, each tensor still in cache from the op before."""
    gs, xs, ms, xms = [], [], [], []
    norm = torch.linalg.vector_norm
    dtype = batch.sum_dtype
    scratch = batch.scratch(params[0])
    for x, g, m, layout, out in zip(params, grads, exp_avgs, batch.layouts, scratch, strict=True):
        if weight_decay != 0:
            g = torch.add(g, x, alpha=weight_decay, out=out)
        m.lerp_(g, 1 - beta1)
        dims = layout.reduce_dims
        gs.append(norm(g, dim=dims, dtype=dtype))
        xs.append(norm(x, dim=dims, dtype=dtype))
        ms.append(norm(m, dim=dims, dtype=dtype))
        xms.append(torch.mul(x, m, out=out).sum(dims, dtype=dtype))
    flat = batch.flat
    return flat(gs).square_(), flat(xs).square_(), flat(ms).square_(), flat(xms)


def unit_second_moments_and_steps(
    batch: UnitBatch,
    exp_avg_sqs: list[Tensor],
    gg: Tensor,
    bcs: list[tuple[float, float]],
    *,
    lr: float,
    beta2: float,
    eps: float,
) -> tuple[Tensor, Tensor]:
    """The per-unit second moment v ← β2·v + (1 − β2)·‖g‖² and step size
    s = lr / (1 − β1^t) / (√v / √(1 − β2^t) + ε), as flat vectors (v not yet stored back)."""
    v = torch.cat([s.reshape(-1) for s in exp_avg_sqs]).to(batch.dtype)
    v.mul_(beta2).add_(gg, alpha=1 - beta2)
    step = batch.per_tensor([lr / bc1 for bc1, _ in bcs])
    inv_sqrt_bc2 = batch.per_tensor([1 / math.sqrt(bc2) for _, bc2 in bcs])
    return v, v.sqrt().mul_(inv_sqrt_bc2).add_(eps).reciprocal_().mul_(step)


def unit_step_and_transport_(
    batch: UnitBatch,
    params: list[Tensor],
    exp_avgs: list[Tensor],
    s: Tensor,
    b: Tensor,
    e: Tensor,
    inv: Tensor,
) -> None:
    """x ← x − s·m, then m ← (b·m − e·x_new)·inv per unit, tensor by tensor, x and m still in
    cache. With x_old = x_new + s·m, (⟨x_old, x_new⟩·m − ⟨m, x_new⟩·x_old) equals
    (‖x_new‖²·m − ⟨m, x_new⟩·x_new): b = ‖x_new‖², e = ⟨m, x_new⟩. Consumes ``s`` and ``e``."""
    coefs = zip(
        batch.keep(s.neg_()), batch.keep(b * inv), batch.keep(e.mul_(inv).neg_()), strict=True
    )
    for x, m, (step, keep, along) in zip(params, exp_avgs, coefs, strict=True):
        x.addcmul_(m, step)
        m.mul_(keep).addcmul_(x, along)
