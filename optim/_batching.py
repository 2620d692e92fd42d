"""The CPU batching planner of the multi-tensor (``foreach``) steps: which tensors are updated
together, and the reusable scratch memory they use.

Per device and dtype, element-wise tensors go through torch's multi-tensor kernels as one list.
Unit tensors (channel-wise, d > 1) need per-unit sums: the small ones are batched, so per-tensor
dispatch overhead does not dominate, and each large one is updated alone, every pass while it is
still in cache.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ._layout import FilterLayout, stat_dtype

__all__ = ["LARGE_NUMEL", "Bucket", "UnitBatch", "Workspace", "plan", "take"]

# Tensors at least this large are updated one at a time, every pass while the tensor is still in
# cache; smaller ones are batched so per-tensor dispatch overhead does not dominate.
LARGE_NUMEL = 1 << 16


class Bucket(NamedTuple):
    """Indices of one device and dtype's tensors: the element-wise ones, and the unit tensors
    in the sets updated together (the small ones in one set, then each large one alone)."""

    plain: list[int]
    unit_sets: list[list[int]]


def plan(params: Sequence[Tensor], layouts: Sequence[FilterLayout | None]) -> list[Bucket]:
    """The buckets of a multi-tensor step. A set of small unit tensors is sorted by unit size,
    so equal sizes are neighbours."""
    by_device_and_dtype: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, p in enumerate(params):
        by_device_and_dtype.setdefault((p.device, p.dtype), []).append(i)
    buckets = []
    for idx in by_device_and_dtype.values():
        plain, small, large = [], [], []
        for i in idx:
            layout = layouts[i]
            if layout is None:
                plain.append(i)
            elif params[i].numel() < LARGE_NUMEL and layout.front:
                small.append(i)
            else:
                large.append([i])
        small.sort(key=lambda i: layouts[i].size)
        buckets.append(Bucket(plain, [small, *large] if small else large))
    return buckets


def take(idx: Sequence[int], *lists: Sequence[Any]) -> tuple[list[Any], ...]:
    """The entries ``idx`` of each of the parallel ``lists``."""
    return tuple([lst[i] for i in idx] for lst in lists)


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
