"""AdamS and AdamSRT: Adam with a per-filter second moment, rescaling and transport.

Paper: Roburin et al., "Spherical Perspective on Learning with Batch Norm", arXiv:2006.13382
(Appendix E, Algorithm 1). Original code: github.com/ymontmarin/adamsrt (MIT). What differs from
that code: the second moment is stored as one scalar per filter (the released code stores it per
element), ``step`` takes a closure, ``p.grad`` is never modified, ``reshape`` instead of ``view``
so channels_last weights work, and a multi-tensor path does the whole step in a few passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from ._adam_family import adam_family_foreach, adam_family_reference
from ._base import SphericalOptimizer, group_lr, new_step, zeros_like_param, zeros_stat
from ._docs import CHANNEL_DOC, PARAMS_DOC, REFERENCE
from ._layout import filter_layout, group_channel_dims

__all__ = ["AdamS", "AdamSRT"]


class AdamFamily(SphericalOptimizer):
    """Shared constructor and state of AdamS, AdamSRT and AdamG; ``_mode`` picks the rule."""

    _mode = "adamsrt"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        channel_wise: bool = False,
        channel_dims: tuple[int, ...] | None = None,
        foreach: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
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
        exp_avgs: list[Tensor],
        exp_avg_sqs: list[Tensor],
        steps: list[Tensor],
    ) -> None:
        channel_dims = group_channel_dims(group)
        for p in group["params"]:
            if p.grad is None:
                continue
            self._check_grad(p)
            state = self.state[p]
            if len(state) == 0:
                state["step"] = new_step()
                state["exp_avg"] = zeros_like_param(p)
                state["exp_avg_sq"] = zeros_stat(p, filter_layout(tuple(p.shape), channel_dims))
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])

    def _step_groups(self, groups: list[dict[str, Any]]) -> None:
        (params, grads, exp_avgs, exp_avg_sqs, steps), layouts = self._gather(groups, 5)
        if not params:
            return
        group = groups[0]
        beta1, beta2 = group["betas"]
        foreach = self._use_foreach(group)
        extra = {"workspace": self._workspace} if foreach else {}
        (adam_family_foreach if foreach else adam_family_reference)(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            steps,
            layouts,
            mode=self._mode,
            lr=group_lr(group),
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            **extra,
        )


class AdamSRT(AdamFamily):
    _name = "AdamSRT"
    _mode = "adamsrt"


class AdamS(AdamFamily):
    _name = "AdamS"
    _mode = "adams"


_ARGS_DOC = rf"""
    Args:
        {PARAMS_DOC}
        lr (float, optional): learning rate (default: 1e-3).
        betas (Tuple[float, float], optional): coefficients of the running averages of the
            gradient and of its square (default: (0.9, 0.999)).
        eps (float, optional): added to the denominator after the square root and the bias
            correction (default: 1e-8).
        weight_decay (float, optional): coupled L2 penalty, added to the gradient of every
            parameter before both moment updates (default: 0).
        {CHANNEL_DOC}
"""

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
    {_ARGS_DOC}
    Example:
        >>> import torch
        >>> from optim import AdamS
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8))
        >>> conv, bn = model[0].weight, list(model[1].parameters())
        >>> opt = AdamS([{{"params": [conv], "channel_wise": True}}, {{"params": bn}}], lr=1e-3)
        >>> model(torch.randn(2, 3, 8, 8)).square().mean().backward()
        >>> opt.step()
    """

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
    {_ARGS_DOC}
    Example:
        >>> import torch
        >>> from optim import AdamSRT
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8))
        >>> conv, bn = model[0].weight, list(model[1].parameters())
        >>> opt = AdamSRT([{{"params": [conv], "channel_wise": True}}, {{"params": bn}}], lr=1e-3)
        >>> model(torch.randn(2, 3, 8, 8)).square().mean().backward()
        >>> opt.step()
    """
