"""The base class of the spherical optimizers: torch's optimizer skeleton plus channel-wise
param groups, with the validation and the lazy-state helpers its subclasses share."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._batching import Workspace
from ._layout import FilterLayout, filter_layout, group_channel_dims


def _check_range(name: str, value: Any, low: float, high: float | None = None) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"Invalid {name}: must be a number, but got {value!r}")
    if not low <= value or (high is not None and not value < high):
        raise ValueError(f"Invalid {name}: {value}")


def _one_element(lr: Tensor) -> Tensor:
    if lr.numel() != 1 or not lr.is_floating_point():
        raise ValueError(
            f"Invalid learning rate: a tensor lr must be one floating-point element, but got "
            f"shape {tuple(lr.shape)} and dtype {lr.dtype}"
        )
    return lr


def group_lr(group: dict[str, Any]) -> float | Tensor:
    """``group["lr"]`` as the step uses it: a float eagerly; a tensor lr stays a tensor under
    torch.compile, so a scheduler that fills it in place changes no guard."""
    lr = group["lr"]
    if not isinstance(lr, Tensor):
        return lr
    lr = _one_element(lr)
    return lr.reshape(()) if torch.compiler.is_compiling() else lr.item()


def validate_hyperparameters(group: dict[str, Any]) -> None:
    """Raise ValueError naming the rule and the value, in PyTorch's wording where it has one."""
    lr = group["lr"]
    _check_range("learning rate", _one_element(lr).item() if isinstance(lr, Tensor) else lr, 0.0)
    if "eps" in group:
        _check_range("epsilon value", group["eps"], 0.0)
    _check_range("weight_decay value", group["weight_decay"], 0.0)
    if "betas" in group:
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"Invalid betas: must be a pair (beta1, beta2), but got {betas!r}")
        for i, beta in enumerate(betas):
            if not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
    if "momentum" in group:
        _check_range("momentum value", group["momentum"], 0.0)
    if "dampening" in group:
        _check_range("dampening value", group["dampening"], 0.0, None)
    if not isinstance(group.get("channel_wise", False), bool):
        raise ValueError(
            f"Invalid channel_wise: must be True or False, but got {group['channel_wise']!r}"
        )
    for p in group["params"]:
        if p.is_complex():
            raise ValueError(
                f"Invalid parameter: complex tensors are not supported (the per-filter geometry "
                f"is defined for real weights), but got shape {tuple(p.shape)} of {p.dtype}"
            )
    dims = group.get("channel_dims")
    if dims is None:
        return
    if isinstance(dims, int) or not all(isinstance(d, int) for d in dims):
        raise ValueError(f"Invalid channel_dims: must be a sequence of ints, but got {dims!r}")
    for p in group["params"]:
        if not all(-p.ndim <= d < p.ndim for d in dims) or len(
            {d % max(p.ndim, 1) for d in dims}
        ) != len(dims):
            raise ValueError(
                f"Invalid channel_dims: must be distinct dims of every tensor in the group, "
                f"but got {tuple(dims)} for a parameter of shape {tuple(p.shape)}"
            )


class SphericalOptimizer(Optimizer):
    """Base class: the PyTorch optimizer skeleton plus ``channel_wise``/``channel_dims`` groups.

    Subclasses implement ``_init_group(group, params, grads, *state_lists)``, which creates the
    lazy state and fills the lists (torch's name and shape: under torch.compile Dynamo runs it
    eagerly, outside the graph, so the graph never changes once state exists), and
    ``_step_groups(groups)``, which calls it for groups that share their hyperparameters and
    runs their update as one pass.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        validate_hyperparameters({**defaults, "params": []})
        super().__init__(params, defaults)
        self._workspace = Workspace()

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        try:
            validate_hyperparameters(self.param_groups[-1])
        except ValueError:
            self.param_groups.pop()
            raise

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_workspace", Workspace())
        for group in self.param_groups:
            group.setdefault("channel_wise", False)
            group.setdefault("channel_dims", None)
            group.setdefault("foreach", None)
        for p_state in self.state.values():
            # torch's older state dicts (which its own tests load) keep `step` as a number.
            if "step" in p_state and not torch.is_tensor(p_state["step"]):
                p_state["step"] = torch.tensor(float(p_state["step"]), dtype=torch.float32)

    def _step_groups(self, groups: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def _layouts(self, group: dict[str, Any], params: list[Tensor]) -> list[FilterLayout | None]:
        channel_dims = group_channel_dims(group)
        if not channel_dims:
            return [None] * len(params)
        return [filter_layout(tuple(p.shape), channel_dims) for p in params]

    def _gather(self, groups: list[dict[str, Any]], count: int) -> tuple[list[list], list]:
        """``_init_group``'s ``count`` lists over ``groups``, concatenated, and the layouts."""
        merged: list[list] = [[] for _ in range(count)]
        layouts: list[FilterLayout | None] = []
        for group in groups:
            # Fresh lists per call: Dynamo runs _init_group outside the graph only when they
            # start empty.
            lists: list[list] = [[] for _ in range(count)]
            self._init_group(group, *lists)
            for into, part in zip(merged, lists, strict=True):
                into += part
            layouts += self._layouts(group, lists[0])
        return merged, layouts

    def _passes(self) -> list[list[dict[str, Any]]]:
        """The param groups, gathered by equal hyperparameters (their filter layouts may
        differ): a model's usual two groups, filters and the rest, then run as one pass.
        Not under torch.compile: comparing float hyperparameters would guard on their values,
        and one graph per group costs nothing there."""
        if torch.compiler.is_compiling():
            return [[group] for group in self.param_groups]
        keys = [k for k in self.defaults if k not in ("channel_wise", "channel_dims")]
        passes: list[list[dict[str, Any]]] = []
        for group in self.param_groups:
            match = [run for run in passes if _same_values(run[0], group, keys)]
            if match:
                match[0].append(group)
            else:
                passes.append([group])
        return passes

    def _check_grad(self, p: Tensor) -> None:
        if p.grad.is_sparse:
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")

    def _use_foreach(self, group: dict[str, Any]) -> bool:
        """The eager implementation to run; under torch.compile the per-tensor form is traced
        (Inductor fuses it; the foreach path's host-side planning would only stand in its way)."""
        if torch.compiler.is_compiling():
            return False
        return group["foreach"] if group["foreach"] is not None else True

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform a single optimization step.

        Args:
            closure: a callable that re-evaluates the model and returns the loss (optional).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for groups in self._passes():
            self._step_groups(groups)
        return loss


def _same_values(a: dict[str, Any], b: dict[str, Any], keys: list[str]) -> bool:
    # A tensor (an lr a scheduler fills in place) is only the same as itself.
    pairs = [(a.get(k), b.get(k)) for k in keys]
    return all(
        x is y or (not (isinstance(x, Tensor) or isinstance(y, Tensor)) and x == y)
        for x, y in pairs
    )


def new_step() -> Tensor:
    # A CPU scalar tensor, as torch.optim keeps it: state_dict round-trips and no device sync.
    return torch.tensor(0.0, dtype=torch.float32)


def zeros_like_param(p: Tensor) -> Tensor:
    return torch.zeros_like(p, memory_format=torch.preserve_format)


def zeros_stat(p: Tensor, layout: FilterLayout | None) -> Tensor:
    """Second-moment state: element-wise, or one scalar per unit (half of Adam's memory)."""
    if layout is None:
        return torch.zeros_like(p, memory_format=torch.preserve_format)
    return torch.zeros(layout.stat_shape, dtype=p.dtype, device=p.device)
