"""How a parameter splits into units.

A *unit* is one independently normalised filter: a slice of a parameter along its channel dims.
With ``channel_wise=True`` a conv weight of shape (C_out, C_in, k, k) has C_out units of
d = C_in·k·k entries each. Tensors whose units have d = 1 (and every tensor of a group without
channel dims) are updated element-wise, which is exactly the stock PyTorch rule.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


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


def group_channel_dims(group: dict[str, Any]) -> tuple[int, ...] | None:
    """The channel dims of a param group: ``channel_dims``, else ``(0,)`` if ``channel_wise``."""
    if group.get("channel_dims") is not None:
        return tuple(group["channel_dims"])
    return (0,) if group.get("channel_wise", False) else None


def stat_dtype(dtype: torch.dtype) -> torch.dtype:
    """Per-filter scalar maths runs in at least float32 (bf16/fp16 sums lose the direction)."""
    return torch.promote_types(dtype, torch.float32)


def unit_dot(a: Tensor, b: Tensor, layout: FilterLayout, dtype: torch.dtype) -> Tensor:
    """⟨a, b⟩ per unit, in ``dtype``, broadcastable against the tensor."""
    return (a.to(dtype) * b.to(dtype)).sum(layout.reduce_dims, keepdim=True)
