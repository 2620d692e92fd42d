"""AdamG: Adam on the unit sphere for scale-invariant filters (the paper's baseline).

Method: Cho & Lee, "Riemannian approach to batch normalization", NeurIPS 2017, as run in
Roburin et al., arXiv:2006.13382. Original code: github.com/ymontmarin/adamsrt (MIT).

Difference from the released code, on purpose: that code applies the sphere branch to the group
WITHOUT ``channel_wise`` (an inverted flag), so conv filters got plain Adam and BatchNorm γ/β were
renormalised to ±1. Here the sphere branch runs on the channel-wise filters, as the method intends,
and every other parameter gets Adam with coupled L2.
"""

from __future__ import annotations

from ._docs import CHANNEL_DOC, PARAMS_DOC, REFERENCE
from .adam_srt import AdamFamily

__all__ = ["AdamG"]


class AdamG(AdamFamily):
    _name = "AdamG"
    _mode = "adamg"


AdamG.__doc__ = rf"""Implements AdamG: channel-wise filters optimized on the unit sphere.

    .. math::
        \begin{{aligned}}
            &\textbf{{for}}\: t=1 \textbf{{ to }} \ldots \textbf{{ do}}
                \text{{ (per filter }} x_c \text{{ of a channel-wise tensor, no weight decay)}} \\
            &\hspace{{5mm}} m \leftarrow \beta_1 m + (1-\beta_1) g,\quad
                v_c \leftarrow \beta_2 v_c + (1-\beta_2) \lVert g_c \rVert^2 \\
            &\hspace{{5mm}} x_{{new}} = x_{{old}} - \frac{{\gamma}}{{1-\beta_1^t}}
                \frac{{m}}{{\sqrt{{v_c}}/\sqrt{{1-\beta_2^t}} + \epsilon}} \\
            &\hspace{{5mm}} m \leftarrow \frac{{\langle x_{{old}}, x_{{new}} \rangle m
                - \langle m, x_{{new}} \rangle x_{{old}}}}
                {{\lVert x_{{old}} \rVert \lVert x_{{new}} \rVert + \epsilon}} \\
            &\hspace{{5mm}} x_{{new}} \leftarrow x_{{new}} / (\lVert x_{{new}} \rVert + \epsilon) \\
        \end{{aligned}}

    All other tensors follow :class:`torch.optim.Adam` with coupled L2 ``weight_decay``.
    {REFERENCE}

    Args:
        {PARAMS_DOC}
        lr (float, optional): learning rate; the paper uses 1e-2 (default: 1e-3).
        betas (Tuple[float, float], optional): running-average coefficients (default: (0.9, 0.999)).
        eps (float, optional): numerical stability term (default: 1e-8).
        weight_decay (float, optional): coupled L2 on element-wise tensors only (default: 0).
        {CHANNEL_DOC}

    Example:
        >>> import torch
        >>> from optim import AdamG
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8))
        >>> conv, bn = model[0].weight, list(model[1].parameters())
        >>> opt = AdamG([{{"params": [conv], "channel_wise": True}}, {{"params": bn}}], lr=1e-2)
        >>> model(torch.randn(2, 3, 8, 8)).square().mean().backward()
        >>> opt.step()
        >>> bool(torch.allclose(conv.flatten(1).norm(dim=1), torch.ones(8), atol=1e-5))
        True
    """
