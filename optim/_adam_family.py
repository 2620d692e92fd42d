"""The update rules of AdamS, AdamSRT and AdamG: a per-tensor form (traced by torch.compile)
and a fast eager path.

``mode`` selects the rule on units (the filters of channel-wise tensors):

- ``"adams"``: the per-unit second moment, step scaled by √d.
- ``"adamsrt"``: AdamS, then R on the second moment and R+T on the first moment.
- ``"adamg"``: the unit sphere: no weight decay, no √d, transport, then projection.

Element-wise tensors always follow torch.optim.Adam with coupled L2, op for op.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._batching import Workspace, plan, take
from ._layout import FilterLayout, stat_dtype

MODES = ("adams", "adamsrt", "adamg")


def _bias_corrections(step: float, beta1: float, beta2: float) -> tuple[float, float]:
    return 1 - beta1**step, 1 - beta2**step


def _bias_correction(beta: float, step: Tensor) -> Tensor:
    """1 − β^t in float64, as Python computes it. β enters through tensor arithmetic rather than
    as pow's Python base, so under torch.compile a scheduled β is a graph input, not a constant."""
    t = step.to(torch.float64)
    return 1 - (t * 0 + beta) ** t


def adam_family_reference(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    layouts: list[FilterLayout | None],
    *,
    mode: str,
    lr: float | Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """One step, tensor by tensor: the form torch.compile traces, and ``foreach=False``.

    The step count and the hyperparameters enter only through tensor arithmetic (no
    ``.item()``, no Python-scalar keyword arguments), so nothing the optimizer or a scheduler
    changes between steps is baked into the graph. The sums RT needs are taken before the
    update, with ‖g‖² (see :func:`_adam_units`), so Inductor makes one reduction and one
    pointwise pass of each tensor. The spec's literal form is checked against this in the tests.
    """
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
    for p, grad, m, v, (bc1, bc2), layout in zip(
        params, grads, exp_avgs, exp_avg_sqs, bcs, layouts, strict=True
    ):
        sphere = mode == "adamg" and layout is not None
        g = grad if weight_decay == 0 or sphere else grad + weight_decay * p
        m.mul_(beta1).add_((1 - beta1) * g)
        if layout is None:
            v.mul_(beta2).add_((1 - beta2) * g * g)
            denom = v.sqrt() / bc2.sqrt() + eps
            p.sub_(lr / bc1 * m / denom)
            continue

        dtype = stat_dtype(p.dtype)

        def dot(a: Tensor, b: Tensor, layout: FilterLayout = layout, dtype=dtype) -> Tensor:
            return (a.to(dtype) * b.to(dtype)).sum(layout.reduce_dims, keepdim=True)

        v_unit = v.view(layout.keep_shape)
        v_unit.mul_(beta2).add_((1 - beta2) * dot(g, g))
        denom = v_unit.to(dtype).sqrt() / bc2.sqrt() + eps
        s = lr / bc1 * (1.0 if sphere else math.sqrt(layout.size)) / denom  # x_new = x − s·m
        if mode == "adams":
            p.sub_(m.to(dtype) * s)
            continue
        xx, mm, xm = dot(p, p), dot(m, m), dot(p, m)
        # s·‖m‖², 0 where the step is 0 (v overflowed): 0·inf must not turn into NaN.
        smm = torch.where(s == 0, 0.0, s * mm)
        b = (xx - 2 * s * xm + s * smm).clamp(min=0)  # ‖x_new‖²
        e = xm - smm  # ⟨m, x_new⟩
        p.sub_(m.to(dtype) * s)
        if sphere:
            inv = 1 / (xx.sqrt() * b.sqrt() + eps)
        else:
            inv = 1 / (b + eps)
            v_unit.mul_(xx * inv)
        m.copy_(m * (b * inv) - p * (e * inv))
        if sphere:
            p.div_(b.sqrt() + eps)


def _adam_elementwise_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg_sqs: list[Tensor],
    exp_avgs: list[Tensor],
    bcs: list[tuple[float, float]],
    *,
    lr: float,
    beta2: float,
    eps: float,
) -> None:
    # torch.optim.Adam's multi-tensor update, after the first-moment update.
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, [math.sqrt(bc2) for _, bc2 in bcs])
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, [-lr / bc1 for bc1, _ in bcs])


def _decayed(grads: list[Tensor], params: list[Tensor], wd: float, ws: Workspace) -> list[Tensor]:
    """g + λx without touching p.grad; one large tensor goes through the reusable workspace."""
    if wd == 0:
        return grads
    if len(grads) == 1:
        return [torch.add(grads[0], params[0], alpha=wd, out=ws.like(params[0]))]
    return list(torch._foreach_add(grads, params, alpha=wd))


def _adam_units(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    layouts: list[FilterLayout],
    bcs: list[tuple[float, float]],
    ws: Workspace,
    *,
    mode: str,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """Units of several small tensors at once, or of one large tensor: the per-unit sums, the
    scalar maths on one flat vector of per-unit values, then three or four in-place passes.

    With s the per-unit step, x_new = x − s·m and x_old = x_new + s·m, so the transported moment
    (⟨x_old, x_new⟩·m − ⟨m, x_new⟩·x_old)/n equals (‖x_new‖²·m − ⟨m, x_new⟩·x_new)/n, and both
    sums follow from ‖x‖², ⟨x, m⟩, ‖m‖² taken before the update, in the same reduction as ‖g‖²
    (the spec's performance hint). No full-size temporary but the batch's scratch.
    """
    batch = ws.batch(layouts, params[0])
    sphere = mode == "adamg"
    wd = 0.0 if sphere else weight_decay
    norm = torch.linalg.vector_norm
    sums: list[list[Tensor]] = [[], [], [], []]  # ‖g‖, ‖x‖, ‖m‖, ⟨x, m⟩ per tensor
    scratch = batch.scratch(params[0])
    # Tensor by tensor up to the per-unit sums, each tensor still in cache from the op before.
    for x, g, m, lay, out in zip(params, grads, exp_avgs, layouts, scratch, strict=True):
        if wd != 0:
            g = torch.add(g, x, alpha=wd, out=out)
        m.lerp_(g, 1 - beta1)
        sums[0].append(norm(g, dim=lay.reduce_dims, dtype=batch.sum_dtype))
        if mode != "adams":
            sums[1].append(norm(x, dim=lay.reduce_dims, dtype=batch.sum_dtype))
            sums[2].append(norm(m, dim=lay.reduce_dims, dtype=batch.sum_dtype))
            sums[3].append(torch.mul(x, m, out=out).sum(lay.reduce_dims, dtype=batch.sum_dtype))
    gg = batch.flat(sums[0]).square_()
    if mode != "adams":
        xx, mm = batch.flat(sums[1]).square_(), batch.flat(sums[2]).square_()
        xm = batch.flat(sums[3])
    v = torch.cat([s.reshape(-1) for s in exp_avg_sqs]).to(batch.dtype)
    v.mul_(beta2).add_(gg, alpha=1 - beta2)
    step = batch.per_tensor([lr / bc1 for bc1, _ in bcs])
    inv_sqrt_bc2 = batch.per_tensor([1 / math.sqrt(bc2) for _, bc2 in bcs])
    s = v.sqrt().mul_(inv_sqrt_bc2).add_(eps).reciprocal_().mul_(step)
    if not sphere:
        s.mul_(batch.sqrt_d)
    if mode != "adams":
        # s·‖m‖², except where the step is 0 (huge float32 gradients overflowed v to inf): x
        # stays, and ‖m‖² may have overflowed too, so 0·inf must not turn it into NaN.
        smm = torch.where(s == 0, 0.0, s * mm)
        b = (xx - 2 * s * xm + s * smm).clamp_(min=0)  # ‖x_new‖²
        e = xm - smm  # ⟨m, x_new⟩
        if sphere:
            inv = 1 / (xx.sqrt() * b.sqrt() + eps)
        else:
            inv = 1 / (b + eps)
            v.mul_(xx * inv)
    if mode == "adams":
        torch._foreach_addcmul_(params, exp_avgs, batch.keep(s.neg_()))
    else:
        # m ← (‖x_new‖²·m − ⟨m, x_new⟩·x_new)/n right after the step, x and m still in cache.
        coefs = zip(
            batch.keep(s.neg_()), batch.keep(b * inv), batch.keep(e.mul_(inv).neg_()), strict=True
        )
        for x, m, (step_, keep_, along) in zip(params, exp_avgs, coefs, strict=True):
            x.addcmul_(m, step_)
            m.mul_(keep_).addcmul_(x, along)
        if sphere:
            torch._foreach_mul_(params, batch.keep(1 / (b.sqrt() + eps)))
    torch._foreach_copy_(exp_avg_sqs, batch.stat(v))


def adam_family_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    layouts: list[FilterLayout | None],
    *,
    mode: str,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    workspace: Workspace | None = None,
) -> None:
    """The same step as :func:`adam_family_reference` with multi-tensor kernels."""
    ws = workspace or Workspace()
    hp = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps, "weight_decay": weight_decay}
    torch._foreach_add_(steps, 1)
    bcs = [_bias_corrections(st.item(), beta1, beta2) for st in steps]
    for plain, unit_sets in plan(params, layouts):
        if plain:
            p_, g_, m_, v_, bc_ = take(plain, params, grads, exp_avgs, exp_avg_sqs, bcs)
            g = _decayed(g_, p_, weight_decay, ws)
            torch._foreach_lerp_(m_, g, 1 - beta1)
            _adam_elementwise_foreach(p_, g, v_, m_, bc_, lr=lr, beta2=beta2, eps=eps)
        for idx in unit_sets:
            lists = take(idx, params, grads, exp_avgs, exp_avg_sqs, layouts, bcs)
            _adam_units(*lists, ws, mode=mode, **hp)
