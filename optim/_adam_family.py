"""AdamFamily: the constructor, lazy state and step of AdamS, AdamSRT and AdamG, which differ
only in their update rule (each subclass's ``_update``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from ._base import SphericalOptimizer, group_lr, new_step, zeros_like_param, zeros_stat
from ._layout import filter_layout, group_channel_dims


class AdamFamily(SphericalOptimizer):
    """Shared constructor and state of AdamS, AdamSRT and AdamG."""

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
            # Lazy state initialization
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
        self._update(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            steps,
            layouts,
            foreach=foreach,
            workspace=self._workspace if foreach else None,
            lr=group_lr(group),
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
        )

    def _update(self, *tensor_lists: list[Any], **hyperparameters: Any) -> None:
        """Run the subclass's functional rule (:func:`~optim.adam_s.adams`,
        :func:`~optim.adam_srt.adamsrt` or :func:`~optim.adam_g.adamg`) on ``params, grads,
        exp_avgs, exp_avg_sqs, steps, layouts`` with the keyword arguments ``foreach``,
        ``workspace``, ``lr``, ``beta1``, ``beta2``, ``eps`` and ``weight_decay``."""
        raise NotImplementedError
