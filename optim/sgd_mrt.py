"""SGDMRT: SGD with momentum whose buffer is rescaled and transported after every step.

Paper: Roburin et al., "Spherical Perspective on Learning with Batch Norm", arXiv:2006.13382.
Original code: github.com/ymontmarin/adamsrt (MIT). What differs from that code: ``step`` takes a
closure, ``p.grad`` is never modified, a zero-norm filter keeps its buffer instead of turning
into NaN, and a multi-tensor path does the whole step in a few passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from ._base import SphericalOptimizer, group_lr, zeros_like_param
from ._batching import Workspace, plan, take
from ._docs import CHANNEL_DOC, PARAMS_DOC, REFERENCE
from ._layout import FilterLayout, stat_dtype, unit_dot

__all__ = ["SGDMRT", "sgdmrt"]


class SGDMRT(SphericalOptimizer):
    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.9,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        *,
        channel_wise: bool = False,
        channel_dims: tuple[int, ...] | None = None,
        foreach: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "channel_wise": channel_wise,
            "channel_dims": channel_dims,
            "foreach": foreach,
        }
        super().__init__(params, defaults)

    def _init_group(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        momentum_buffers: list[Tensor | None],
    ) -> None:
        for p in group["params"]:
            if p.grad is None:
                continue
            self._check_grad(p)
            state = self.state[p]
            if state.get("momentum_buffer") is None and group["dampening"] == 0:
                # μ·0 + g is exactly g, torch's first step: with the buffer made here, the
                # compiled step is the same graph from the first step on.
                state["momentum_buffer"] = zeros_like_param(p)
            params.append(p)
            grads.append(p.grad)
            momentum_buffers.append(state.get("momentum_buffer"))

    def _step_groups(self, groups: list[dict[str, Any]]) -> None:
        (params, grads, momentum_buffers), layouts = self._gather(groups, 3)
        if not params:
            return
        group = groups[0]
        foreach = self._use_foreach(group)
        old = list(momentum_buffers)
        sgdmrt(
            params,
            grads,
            momentum_buffers,
            layouts,
            foreach=foreach,
            workspace=self._workspace if foreach else None,
            lr=group_lr(group),
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
        )
        for p, buf, before in zip(params, momentum_buffers, old, strict=True):
            if buf is not before:  # a new buffer (updated in place, it is already there)
                self.state[p]["momentum_buffer"] = buf


SGDMRT.__doc__ = rf"""Implements SGDMRT: SGD with momentum, Rescaling and Transport of the buffer.

    .. math::
        \begin{{aligned}}
            &\textbf{{for}}\: t=1 \textbf{{ to }} \ldots \textbf{{ do}} \\
            &\hspace{{5mm}} g \leftarrow \nabla L + \lambda x,\quad
                b \leftarrow \mu b + (1-\tau) g \quad (b_1 = g) \\
            &\hspace{{5mm}} x_{{new}} = x_{{old}} - \gamma b \\
            &\hspace{{5mm}} \text{{per filter of a channel-wise tensor with }} d > 1: \;
                b \leftarrow \frac{{\langle x_{{old}}, x_{{new}} \rangle b
                - \langle b, x_{{new}} \rangle x_{{old}}}}{{\lVert x_{{new}} \rVert^2}} \\
        \end{{aligned}}

    Element-wise tensors are updated exactly as :class:`torch.optim.SGD` with the same
    momentum, dampening and ``weight_decay`` (no Nesterov). {REFERENCE}

    Args:
        {PARAMS_DOC}
        lr (float, optional): learning rate; the paper uses 0.1 (default: 1e-3).
        momentum (float, optional): momentum factor; the paper uses 0.9 (default: 0.9).
        dampening (float, optional): dampening for momentum (default: 0).
        weight_decay (float, optional): coupled L2 penalty (default: 0).
        {CHANNEL_DOC}

    Example:
        >>> import torch
        >>> from optim import SGDMRT
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8))
        >>> conv, bn = model[0].weight, list(model[1].parameters())
        >>> opt = SGDMRT([{{"params": [conv], "channel_wise": True}}, {{"params": bn}}],
        ...              lr=0.01, momentum=0.9)
        >>> model(torch.randn(2, 3, 8, 8)).square().mean().backward()
        >>> opt.step()
    """


def sgdmrt(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor | None],
    layouts: list[FilterLayout | None],
    *,
    foreach: bool = False,
    workspace: Workspace | None = None,
    lr: float | Tensor,
    momentum: float,
    dampening: float,
    weight_decay: float,
) -> None:
    """Functional API that performs SGDMRT algorithm computation. See :class:`SGDMRT` for
    details. New buffers are stored into ``momentum_buffers``.

    ``foreach=False`` runs the single-tensor reference form (the one torch.compile traces);
    ``foreach=True`` the multi-tensor form, with a float ``lr``."""
    hp = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay}
    if foreach:
        _multi_tensor_sgdmrt(
            params, grads, momentum_buffers, layouts, workspace=workspace or Workspace(), **hp
        )
    else:
        _single_tensor_sgdmrt(params, grads, momentum_buffers, layouts, **hp)


def _single_tensor_sgdmrt(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor | None],
    layouts: list[FilterLayout | None],
    *,
    lr: float | Tensor,
    momentum: float,
    dampening: float,
    weight_decay: float,
) -> None:
    """Hyperparameters enter only through tensor arithmetic, so a scheduler's changes are not
    baked into the compiled graph; RT as in :func:`_sgdmrt_units`."""
    for i, (p, grad, layout) in enumerate(zip(params, grads, layouts, strict=True)):
        g = grad if weight_decay == 0 else grad + weight_decay * p
        buf = momentum_buffers[i]
        if buf is None:
            buf = momentum_buffers[i] = g.clone()
        else:
            buf.mul_(momentum).add_((1 - dampening) * g)
        if layout is None:
            p.sub_(lr * buf)
            continue
        dtype = stat_dtype(p.dtype)
        # The sums before the update, from the tensors as they are (Inductor: one reduction
        # and one pointwise pass): with x_new = x − lr·b,
        xx = unit_dot(p, p, layout, dtype)
        xb = unit_dot(p, buf, layout, dtype)
        bb = unit_dot(buf, buf, layout, dtype)
        n = (xx - 2 * lr * xb + lr * lr * bb).clamp(min=0)  # ‖x_new‖²
        e = xb - lr * bb  # ⟨b, x_new⟩
        # A zero-norm filter has no direction to transport along: it keeps its buffer.
        coef = torch.where(n > 0, e / torch.where(n > 0, n, 1.0), 0.0)
        # lr per unit, stacked with the coefficient, so that the step of x waits for the sums
        # that read x: with a plain lr, Inductor's CPU code generation (torch 2.14) fuses the
        # step into the reduction and fails with a KeyError.
        step, coef = torch.stack([torch.ones_like(coef) * lr, coef])
        p.sub_(step * buf.to(dtype))
        buf.sub_(coef * p.to(dtype))


def _multi_tensor_sgdmrt(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor | None],
    layouts: list[FilterLayout | None],
    *,
    workspace: Workspace,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
) -> None:
    hp = {"momentum": momentum, "dampening": dampening, "weight_decay": weight_decay}
    for plain, unit_sets in plan(params, layouts):
        if plain:
            ps, gs, bs = take(plain, params, grads, momentum_buffers)
            bufs = _momentum(gs, ps, bs, **hp)
            torch._foreach_add_(ps, bufs, alpha=-lr)
            for i, buf in zip(plain, bufs, strict=True):
                momentum_buffers[i] = buf
        for idx in unit_sets:
            ps, gs, bufs, lays = take(idx, params, grads, momentum_buffers, layouts)
            _sgdmrt_units(ps, gs, bufs, lays, workspace, lr=lr, **hp)
            for i, buf in zip(idx, bufs, strict=True):
                momentum_buffers[i] = buf


def _momentum(
    grads: list[Tensor],
    params: list[Tensor],
    bufs: list[Tensor | None],
    *,
    weight_decay: float,
    momentum: float,
    dampening: float,
) -> list[Tensor]:
    """b ← μ·b + (1 − dampening)·(g + λx), in place; a missing buffer starts as g + λx. The
    ops are torch's multi-tensor SGD's, so element-wise tensors match it bit for bit."""
    if weight_decay != 0:
        grads = list(torch._foreach_add(grads, params, alpha=weight_decay))
    out = list(bufs)
    old = []
    for i, buf in enumerate(bufs):
        if buf is None:
            out[i] = torch.clone(grads[i]).detach()
        else:
            old.append(i)
    if old:
        old_b = [out[i] for i in old]
        torch._foreach_mul_(old_b, momentum)
        torch._foreach_add_(old_b, [grads[i] for i in old], alpha=1 - dampening)
    return out


def _sgdmrt_units(
    params: list[Tensor],
    grads: list[Tensor],
    bufs: list[Tensor | None],
    layouts: list[FilterLayout],
    ws: Workspace,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
) -> None:
    """Momentum, step and transport of channel-wise tensors; new buffers are stored into
    ``bufs``. Tensor by tensor up to the per-unit sums, each tensor still in cache from the op
    before, with no full-size temporary but the batch's scratch.

    Substituting x_old = x_new + lr·b in b' = (⟨x_old, x_new⟩·b − ⟨b, x_new⟩·x_old)/‖x_new‖²
    leaves b' = b − (⟨b, x_new⟩/‖x_new‖²)·x_new: one norm and one inner product of the stepped
    tensor, and one pass over the buffer.
    """
    batch = ws.batch(layouts, params[0])
    norms, dots = [], []
    scratch = batch.scratch(params[0])
    for i, (x, g, lay, out) in enumerate(zip(params, grads, layouts, scratch, strict=True)):
        if weight_decay != 0:
            g = torch.add(g, x, alpha=weight_decay, out=out)
        b = bufs[i]
        if b is None:
            b = bufs[i] = torch.clone(g).detach()
        elif dampening == 0:
            torch.add(g, b, alpha=momentum, out=b)
        else:
            b.mul_(momentum).add_(g, alpha=1 - dampening)
        x.add_(b, alpha=-lr)
        norms.append(torch.linalg.vector_norm(x, dim=lay.reduce_dims, dtype=batch.sum_dtype))
        dots.append(torch.mul(x, b, out=out).sum(lay.reduce_dims, dtype=batch.sum_dtype))
    nn = batch.flat(norms).square_()
    # A zero-norm filter has no direction to transport along: it keeps its buffer (its 0/0 is
    # computed and discarded).
    coef = torch.where(nn > 0, batch.flat(dots) / nn, 0.0)
    torch._foreach_addcmul_(bufs, params, batch.keep(coef), value=-1)
