"""Scale-invariant weights are found structurally (a layer whose output feeds only a BatchNorm)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models import create_model
from optim import param_groups_scale_invariant, scale_invariant_params


def test_finds_every_conv_of_resnet20():
    # By hand: stem + 9 blocks x 2 convs + 2 projections = 21 convs, 270,256 weights; the
    # other group is BN gamma/beta (2 x 784 channels) and the Linear (64 x 10 + 10).
    groups = param_groups_scale_invariant(create_model("resnet20", num_classes=10))
    invariant, others = groups
    assert invariant["channel_wise"] is True and "channel_wise" not in others
    assert len(invariant["params"]) == 21
    assert sum(p.numel() for p in invariant["params"]) == 270_256
    assert sum(p.numel() for p in others["params"]) == 2 * 784 + 650


class _Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, bias=False)
        self.stem_bn = nn.BatchNorm2d(4)
        self.branch = nn.Conv2d(4, 4, 1)  # output used twice: not scale-invariant
        self.branch_bn = nn.BatchNorm2d(4)
        self.act_first = nn.Conv2d(4, 4, 1, bias=False)  # ReLU before BN: not invariant
        self.act_bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 6)
        self.fc_bn = nn.BatchNorm1d(6)  # Linear → BN1d: invariant per output unit
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        x = self.stem_bn(self.stem(x))
        y = self.branch(x)
        x = self.branch_bn(y) + y
        x = self.act_bn(torch.relu(self.act_first(x)))
        return self.head(self.fc_bn(self.fc(x.mean((2, 3)))))


def test_only_layers_feeding_only_a_batchnorm_are_found():
    model = _Mixed()
    assert scale_invariant_params(model) == [model.stem.weight, model.fc.weight]
    groups = param_groups_scale_invariant(model, weight_decay=0.1)
    assert groups[0]["channel_wise"] is True and groups[0]["weight_decay"] == 0.1
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(model.parameters()))


def test_frozen_weights_are_left_out_of_the_groups_only():
    model = create_model("resnet20", num_classes=10)
    first = model.stem[0].weight
    first.requires_grad_(False)
    assert scale_invariant_params(model)[0] is first  # still scale-invariant
    groups = param_groups_scale_invariant(model)
    assert all(p is not first for g in groups for p in g["params"])


class _Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow defeats symbolic tracing
            return self.bn(self.conv(x))
        return x


def test_untraceable_model_gives_a_clear_error():
    with pytest.raises(ValueError, match=r"cannot trace _Untraceable.*pass parameter groups"):
        scale_invariant_params(_Untraceable())
