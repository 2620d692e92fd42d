"""Find the scale-invariant weights of a model structurally: a layer whose output feeds only a
BatchNorm. Names are never inspected, so ``shortcut.0``, ``features.3`` or a user's own modules
are found alike."""

from __future__ import annotations

from typing import Any

import torch.fx
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["param_groups_scale_invariant", "scale_invariant_params"]

# Layers whose weight has the output channels on dim 0, so BN over channels normalises each
# filter W[c] independently (transposed convs keep them on dim 1 and are left out).
_FILTER_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def scale_invariant_params(model: nn.Module) -> list[nn.Parameter]:
    """Weights of the convs (and linears) whose output goes straight, and only, into a BatchNorm.

    Frozen weights are included: being scale-invariant is a property of the graph. This is the
    one rule of the project; ``models.ConvBNModel.conv_params()`` returns what it finds.

    Raises:
        ValueError: the model cannot be traced by torch.fx; pass parameter groups explicitly.
    """
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as exc:  # fx raises many types for untraceable Python control flow
        raise ValueError(
            f"cannot trace {type(model).__name__} with torch.fx to find conv→BatchNorm pairs "
            f"({type(exc).__name__}: {exc}); pass parameter groups explicitly, e.g. "
            "[{'params': convs, 'channel_wise': True}, {'params': others}]"
        ) from exc
    modules = dict(model.named_modules())
    found: list[nn.Parameter] = []
    seen: set[int] = set()
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], _FILTER_LAYERS):
            continue
        users = list(node.users)
        if len(users) != 1 or users[0].op != "call_module":
            continue
        if not isinstance(modules[users[0].target], _BatchNorm):
            continue
        weight = modules[node.target].weight
        if id(weight) not in seen:
            seen.add(id(weight))
            found.append(weight)
    return found


def param_groups_scale_invariant(model: nn.Module, **group_options: Any) -> list[dict[str, Any]]:
    """``[{'params': <scale-invariant weights>, 'channel_wise': True}, {'params': <the rest>}]``.

    Only trainable parameters are included; empty groups are left out. ``group_options`` are
    added to both groups.
    """
    found = scale_invariant_params(model)
    ids = {id(p) for p in found}
    invariant = [p for p in found if p.requires_grad]
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    groups = []
    if invariant:
        groups.append({"params": invariant, "channel_wise": True, **group_options})
    if others:
        groups.append({"params": others, **group_options})
    return groups
