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
    shape: tuple[int, ...]  # of the parameter

    @property
    def front(self) -> bool:
        """True when the units are the leading dims, so a contiguous tensor reshapes to (U, d)."""
        return self.channel_dims == tuple(range(len(self.channel_dims)))


def _filter_layout(
    shape: tuple[int, ...], channel_dims: tuple[int, ...] | None
) -> FilterLayout | None:
    # List comprehensions only: Dynamo cannot pass a generator to a builtin without a break.
    if not channel_dims:
        return None
    ndim = len(shape)
    dims = tuple(sorted({d % ndim for d in channel_dims}))
    reduce_dims = tuple([d for d in range(ndim) if d not in dims])
    size = math.prod([shape[d] for d in reduce_dims])
    if size <= 1:
        return None
    stat_shape = tuple([shape[d] for d in dims])
    keep_shape = tuple([s if d in dims else 1 for d, s in enumerate(shape)])
    return FilterLayout(
        dims, reduce_dims, math.prod(stat_shape), size, stat_shape, keep_shape, tuple(shape)
    )


_cached_filter_layout = functools.lru_cache(maxsize=1024)(_filter_layout)


def filter_layout(
    shape: tuple[int, ...], channel_dims: tuple[int, ...] | None
) -> FilterLayout | None:
    """The layout of a parameter of ``shape``, or None when it is updated element-wise."""
    if torch.compiler.is_compiling():
        # Dynamo traces through lru_cache anyway, with a warning; shapes are static there.
        return _filter_layout(shape, channel_dims)
    return _cached_filter_layout(shape, channel_dims)


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

    Subclasses implement ``_init_group(group, params, grads, *state_lists)``, which creates the
    lazy state and fills the lists (torch's name and shape: under torch.compile Dynamo runs it
    eagerly, outside the graph, so the graph never changes once state exists), and
    ``_step_groups(groups)``, which calls it for groups that share their hyperparameters and
    runs their update as one pass.
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
        layout = _filter_layout if torch.compiler.is_compiling() else _cached_filter_layout
        return [layout(tuple(p.shape), channel_dims) for p in params]

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
            raise RuntimeError(f"{self._name} does not support sparse gradients")

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


# Tensors at least this large are updated one at a time, every pass while the tensor is still in
# cache; smaller ones are batched so per-tensor dispatch overhead does not dominate.
LARGE_NUMEL = 1 << 16


class Workspace:
    """Reusable scratch memory and per-parameter-set plans of a multi-tensor step.

    Large fresh CPU allocations cost page faults on every step, so full-size temporaries come
    from a few buffers per device and dtype (``slot`` tells apart the ones alive at the same
    time). It is not optimizer state: nothing in it outlives the pass that wrote it, and it is
    rebuilt on demand.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[torch.device, torch.dtype, int], Tensor] = {}
        self._batches: dict[tuple, UnitBatch] = {}

    def empty(
        self, shape: Sequence[int], dtype: torch.dtype, device: torch.device, slot: int = 0
    ) -> Tensor:
        numel = math.prod(shape)
        key = (device, dtype, slot)
        buf = self._buffers.get(key)
        if buf is None or buf.numel() < numel:
            buf = self._buffers[key] = torch.empty(numel, dtype=dtype, device=device)
        return buf[:numel].view(shape)

    def like(self, t: Tensor, slot: int = 0) -> Tensor:
        return self.empty(t.shape, t.dtype, t.device, slot)

    def batch(self, layouts: Sequence[FilterLayout], like: Tensor) -> UnitBatch:
        # By identity (hashing the frozen layouts costs more): the batch holds its layouts, so
        # their ids are not reused while the entry exists.
        key = (tuple(map(id, layouts)), like.device, like.dtype)
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = UnitBatch(layouts, like, self)
        return batch


class UnitBatch:
    """The units of a list of tensors (one device and dtype): one flat vector holds a per-unit
    value for all of them, tensor after tensor, and scratch to compute the values in.

    Callers reduce tensor by tensor over each layout's reduce dims, each tensor still in cache
    from the op before: gathering units of equal size into one block first copies every
    operand, which costs more than the launches it saves (a CPU measurement). Scratch for
    several small tensors is the batch's own, made once (a fresh temporary costs an allocation,
    the workspace its bookkeeping, each more than the op); a single large tensor's comes from
    the workspace (slot 1).
    """

    def __init__(self, layouts: Sequence[FilterLayout], like: Tensor, ws: Workspace) -> None:
        self.layouts = list(layouts)
        self.ws = ws
        self.sizes = [lay.units for lay in layouts]
        self.dtype = stat_dtype(like.dtype)
        # A per-unit sum's ``dtype=``: None where the tensors' own is the stat dtype already.
        self.sum_dtype = None if self.dtype == like.dtype else self.dtype
        device = like.device
        self.sqrt_d = torch.cat(
            [
                torch.full((lay.units,), math.sqrt(lay.size), dtype=self.dtype, device=device)
                for lay in layouts
            ]
        )
        self.counts = torch.tensor(self.sizes, device=device)
        self._flat_stats = all(len(lay.stat_shape) == 1 for lay in layouts)
        ndims = {len(lay.keep_shape) for lay in layouts}
        self._uniform_keep = len(ndims) == 1 and all(
            lay.front and len(lay.channel_dims) == 1 for lay in layouts
        )
        self._keep_ndim = ndims.pop() if len(ndims) == 1 else 0
        self._scratch: list[Tensor] | None = None
        if len(layouts) > 1:
            numel = max(math.prod(lay.shape) for lay in layouts)
            buf = torch.empty(numel, dtype=like.dtype, device=device)
            self._scratch = [buf[: math.prod(lay.shape)].view(lay.shape) for lay in layouts]

    def scratch(self, like: Tensor) -> list[Tensor]:
        """Per-tensor scratch, shaped as each tensor: the batch's own for several small
        tensors, the workspace's (slot 1) for a single one."""
        return self._scratch or [self.ws.like(like, slot=1)]

    def flat(self, parts: list[Tensor]) -> Tensor:
        """Per-tensor statistics as one flat vector."""
        if not self._flat_stats:
            parts = [t.reshape(-1) for t in parts]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def keep(self, flat: Tensor) -> list[Tensor]:
        """Per-tensor views of ``flat``, broadcastable against each tensor."""
        if self._uniform_keep:
            return list(flat.view(-1, *[1] * (self._keep_ndim - 1)).split(self.sizes))
        return [
            p.view(lay.keep_shape)
            for p, lay in zip(flat.split(self.sizes), self.layouts, strict=True)
        ]

    def stat(self, flat: Tensor) -> list[Tensor]:
        """Per-tensor views of ``flat`` shaped as the per-unit state."""
        return [
            p.view(lay.stat_shape)
            for p, lay in zip(flat.split(self.sizes), self.layouts, strict=True)
        ]

    def per_tensor(self, values: Sequence[float]) -> Tensor | float:
        """One value per tensor, as a scalar when they agree (the usual case) or per unit."""
        if all(v == values[0] for v in values):
            return values[0]
        vals = torch.tensor(values, dtype=self.dtype, device=self.sqrt_d.device)
        return torch.repeat_interleave(vals, self.counts, output_size=int(self.sqrt_d.numel()))


def split_by_size(
    layouts: Sequence[FilterLayout | None], params: Sequence[Tensor]
) -> tuple[list[int], list[int], list[int]]:
    """Indices of the element-wise tensors, of the small unit tensors that are batched (sorted by
    unit size, so equal sizes are neighbours), and of the rest, updated one at a time."""
    plain, small, single = [], [], []
    for i, (lay, p) in enumerate(zip(layouts, params, strict=True)):
        if lay is None:
            plain.append(i)
        elif p.numel() < LARGE_NUMEL and lay.front:
            small.append(i)
        else:
            single.append(i)
    small.sort(key=lambda i: layouts[i].size)
    return plain, small, single
