"""Argument documentation shared by the spherical optimizers (as torch.optim shares
``_params_doc``)."""

PARAMS_DOC = r"""params: an iterable of parameters or of dicts defining parameter groups. A group may
            set ``channel_wise=True`` to treat every tensor as a stack of filters along dim 0
            (one unit per output filter), or ``channel_dims`` (a tuple of dims that index
            independently normalised units; the inner products sum over the other dims)."""

CHANNEL_DOC = r"""channel_wise (bool, optional): default for groups that do not set it (default: False).
        channel_dims (tuple of int, optional): default for groups that do not set it
            (default: None, i.e. ``(0,)`` when ``channel_wise`` else element-wise).
        foreach (bool, optional): use the fast eager implementation; ``None`` picks it
            (default: None). ``False`` runs the per-tensor form that torch.compile traces."""

REFERENCE = (
    "Roburin, de Mont-Marin, Bursuc, Marlet, Pérez, Aubry, *Spherical Perspective on Learning "
    "with Batch Norm*, arXiv:2006.13382 (2020); reference code github.com/ymontmarin/adamsrt (MIT)."
)

ADAM_ARGS_DOC = rf"""
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
