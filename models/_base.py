"""Base class shared by the models: the parameter split used by the spherical optimizers."""

from __future__ import annotations

from torch import nn

from optim import scale_invariant_params

__all__ = ["ConvBNModel"]


class ConvBNModel(nn.Module):
    """A network whose every ``nn.Conv2d`` feeds straight into a ``BatchNorm2d``.

    Such conv weights are scale-invariant (the BatchNorm cancels any positive rescaling), which
    is what the channel-wise spherical optimizers of Roburin et al. (arXiv:2006.13382) exploit.
    Subclasses must keep that structure: a conv that does not feed a BatchNorm is not returned
    by :meth:`conv_params`, and ``tests/models_tests`` counts the convs of every model.
    """

    def conv_params(self) -> list[nn.Parameter]:
        """Return the scale-invariant conv weights, in the order the forward pass uses them.

        They are found by :func:`optim.scale_invariant_params`, the same structural rule that
        ``create_optimizer`` applies to a model, so the two parameter splits cannot disagree.
        """
        return scale_invariant_params(self)

    def other_params(self) -> list[nn.Parameter]:
        """Return all parameters not in :meth:`conv_params` (BN gamma/beta, Linear weight/bias)."""
        conv_ids = {id(p) for p in self.conv_params()}
        return [p for p in self.parameters() if id(p) not in conv_ids]


def check_sizes(num_classes: int, in_channels: int) -> None:
    """Raise ``ValueError`` unless ``num_classes`` and ``in_channels`` are positive integers."""
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, but got {value!r}")
