"""Machinery shared by the spherical optimizers: validation, filter layouts, the step skeleton.

A *unit* is one independently normalised filter: a slice of a parameter along its channel dims.
With ``channel_wise=True`` a conv weight of shape (C_out, C_in, k, k) has C_out units of
d = C_in·k·k entries each. Tensors whose units have d = 1 (and every tensor of a group without
channel dims) are updated element-wise, which is exactly the stock PyTorch rule.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer


@dataclass(frozen=True)
class FilterLayout:
    """How a parameter splits into units: reduce over ``reduce_dims``, one statistic per unit."""

    channel_dims: tuple[int, ...]
    reduce_dims: tuple[int, ...]
    units: int
    size: int  # d, entries per unit
    stat_shape: tuple[int, ...]  # shape of a per-unit statistic (sizes along channel dims)
    keep_shape: tuple[int, ...]  # the same statistic, broadcastable against the parameter

    @property
    def front(self) -> bool:
        """True when the units are the leading dims, so a contiguous tensor reshapes to (U, d)."""
        return self.channel_dims == tuple(range(len(self.channel_dims)))


@functools.lru_cache(maxsize=1024)
def filter_layout(
    shape: tuple[int, ...], channel_dims: tuple[int, ...] | None
) -> FilterLayout | None:
    """The layout of a parameter of ``shape``, or None when it is updated element-wise."""
    if not channel_dims:
        return None
    ndim = len(shape)
    dims = tuple(sorted({d % ndim for d in channel_dims}))
    reduce_dims = tuple(d for d in range(ndim) if d not in dims)
    size = math.prod(shape[d] for d in reduce_dims)
    if size <= 1:
        return None
    stat_shape = tuple(shape[d] for d in dims)
    keep_shape = tuple(s if d in dims else 1 for d, s in enumerate(shape))
    return FilterLayout(dims, reduce_dims, math.prod(stat_shape), size, stat_shape, keep_shape)


def stat_dtype(dtype: torch.dtype) -> torch.dtype:
    """Per-filter scalar maths runs in at least float32 (bf16/fp16 sums lose the direction)."""
    return torch.promote_types(dtype, torch.float32)


def group_channel_dims(group: dict[str, Any]) -> tuple[int, ...] | None:
    if group.get("channel_dims") is not None:
        return tuple(group["channel_dims"])
    return (0,) if group.get("channel_wise", False) else None


def _check_range(name: str, value: Any, low: float, high: float | None = None) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"Invalid {name}: must be a number, but got {value!r}")
    if not low <= value or (high is not None and not value < high):
        raise ValueError(f"Invalid {name}: {value}")


def validate_hyperparameters(group: dict[str, Any]) -> None:
    """Raise ValueError naming the rule and the value, in PyTorch's wording where it has one."""
    _check_range("learning rate", group["lr"], 0.0)
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


def group_by_device_and_dtype(
    *lists: Sequence[Tensor],
) -> list[tuple[list[int], tuple[list, ...]]]:
    """Split parallel lists into buckets of one device and dtype (what foreach kernels need)."""
    buckets: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, p in enumerate(lists[0]):
        buckets.setdefault((p.device, p.dtype), []).append(i)
    return [(idx, tuple([lst[i] for i in idx] for lst in lists)) for idx in buckets.values()]


class SphericalOptimizer(Optimizer):
    """Base class: the PyTorch optimizer skeleton plus ``channel_wise``/``channel_dims`` groups.

    Subclasses implement ``_init_state(p, state, layout)`` and ``_update(group, params, grads,
    states, layouts, foreach)``.
    """

    _name = "SphericalOptimizer"

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

    def _init_state(self, p: Tensor, state: dict[str, Any], layout: FilterLayout | None) -> None:
        raise NotImplementedError

    def _update(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
        layouts: list[FilterLayout | None],
        foreach: bool,
    ) -> None:
        raise NotImplementedError

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
        for group in self.param_groups:
            channel_dims = group_channel_dims(group)
            params, grads, states, layouts = [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{self._name} does not support sparse gradients")
                layout = filter_layout(tuple(p.shape), channel_dims)
                state = self.state[p]
                if len(state) == 0:
                    self._init_state(p, state, layout)
                params.append(p)
                grads.append(p.grad)
                states.append(state)
                layouts.append(layout)
            if params:
                foreach = group["foreach"] if group["foreach"] is not None else True
                self._update(group, params, grads, states, layouts, foreach)
        return loss


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


# Tensors at least this large are updated one at a time, every pass while the tensor is still in
# cache; smaller ones are batched so per-tensor dispatch overhead does not dominate.
LARGE_NUMEL = 1 << 16


class Workspace:
    """One reusable scratch buffer per device and dtype, for the full-size temporaries of a step.

    Large fresh CPU allocations cost page faults on every step; reusing one buffer avoids them.
    It is not optimizer state: nothing in it outlives the pass that wrote it.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def like(self, t: Tensor) -> Tensor:
        key = (t.device, t.dtype)
        buf = self._buffers.get(key)
        if buf is None or buf.numel() < t.numel():
            buf = self._buffers[key] = torch.empty(t.numel(), dtype=t.dtype, device=t.device)
        return buf[: t.numel()].view(t.shape)


def unit_sq_norms(tensors: Sequence[Tensor], layouts: Sequence[FilterLayout]) -> Tensor:
    """Flat per-unit ‖t‖² over a list of tensors, in the stat dtype."""
    dtype = stat_dtype(tensors[0].dtype)
    norms = [
        torch.linalg.vector_norm(t, dim=lay.reduce_dims, dtype=dtype).reshape(-1)
        for t, lay in zip(tensors, layouts, strict=True)
    ]
    return torch.cat(norms).square_() if len(norms) > 1 else norms[0].square_()


def unit_dots(
    a: Sequence[Tensor], b: Sequence[Tensor], layouts: Sequence[FilterLayout], ws: Workspace
) -> Tensor:
    """Flat per-unit ⟨a, b⟩ over lists of tensors, in the stat dtype."""
    dtype = stat_dtype(a[0].dtype)
    dots = [
        torch.mul(x, y, out=ws.like(x)).sum(lay.reduce_dims, dtype=dtype).reshape(-1)
        for x, y, lay in zip(a, b, layouts, strict=True)
    ]
    return torch.cat(dots) if len(dots) > 1 else dots[0]


def split_by_size(
    layouts: Sequence[FilterLayout | None], params: Sequence[Tensor]
) -> tuple[list[int], list[int], list[int]]:
    """Indices of the element-wise, small-unit and large-unit tensors."""
    plain, small, large = [], [], []
    for i, (lay, p) in enumerate(zip(layouts, params, strict=True)):
        if lay is None:
            plain.append(i)
        elif p.numel() >= LARGE_NUMEL:
            large.append(i)
        else:
            small.append(i)
    return plain, small, large


def split_flat(flat: Tensor, layouts: Sequence[FilterLayout], shape_attr: str) -> list[Tensor]:
    """Per-tensor views of a flat per-unit vector, shaped ``stat_shape`` or ``keep_shape``."""
    pieces = flat.split([lay.units for lay in layouts])
    return [
        piece.view(getattr(lay, shape_attr)) for piece, lay in zip(pieces, layouts, strict=True)
    ]


def per_unit(values: Sequence[float], layouts: Sequence[FilterLayout], like: Tensor) -> Tensor:
    """Expand one Python scalar per tensor to one value per unit of that tensor."""
    counts = torch.tensor([lay.units for lay in layouts], device=like.device)
    vals = torch.tensor(values, dtype=like.dtype, device=like.device)
    return torch.repeat_interleave(vals, counts, output_size=sum(lay.units for lay in layouts))
