"""Tests for the models package: sizes, shapes, the conv/other parameter split, fx tracing.

Expected values are written by hand from the spec (shared/spec/experiments.md).
"""

from __future__ import annotations

import copy
import functools
import warnings

import pytest
import torch
from torch import fx, nn

from models import ConvBNModel, ResNet, _registry, create_model, list_models, register_model

MODEL_NAMES = ["resnet18", "resnet20", "vgg16"]
PARAM_COUNTS = {"resnet18": 11_173_962, "resnet20": 272_474, "vgg16": 14_724_042}
RESNETS = ["resnet18", "resnet20"]
# By hand from the spec: resnet18 = stem + 8 blocks x 2 + 3 projections, resnet20 = stem +
# 9 blocks x 2 + 2 projections, vgg16 = its 13 conv layers.
CONV_COUNTS = {"resnet18": 20, "resnet20": 21, "vgg16": 13}
# Sums of c_in * c_out * k * k, e.g. resnet20: 3*16*9 + 6*16*16*9 + 16*32*9 + 5*32*32*9
# + 16*32 + 32*64*9 + 5*64*64*9 + 32*64 = 270,256; the rest (BN gamma/beta, the Linear)
# makes up the parameter counts above.
CONV_NUMELS = {"resnet18": 11_159_232, "resnet20": 270_256, "vgg16": 14_710_464}
CONV_NAMES = {
    "resnet20": [
        "stem.0.weight",
        "stages.0.0.conv1.weight", "stages.0.0.conv2.weight",
        "stages.0.1.conv1.weight", "stages.0.1.conv2.weight",
        "stages.0.2.conv1.weight", "stages.0.2.conv2.weight",
        "stages.1.0.conv1.weight", "stages.1.0.conv2.weight", "stages.1.0.shortcut.0.weight",
        "stages.1.1.conv1.weight", "stages.1.1.conv2.weight",
        "stages.1.2.conv1.weight", "stages.1.2.conv2.weight",
        "stages.2.0.conv1.weight", "stages.2.0.conv2.weight", "stages.2.0.shortcut.0.weight",
        "stages.2.1.conv1.weight", "stages.2.1.conv2.weight",
        "stages.2.2.conv1.weight", "stages.2.2.conv2.weight",
    ],
    # conv, BN, ReLU triples with a max-pool after the 2nd, 4th, 7th, 10th and 13th conv.
    "vgg16": [f"features.{i}.weight" for i in (0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40)],
}  # fmt: skip


@functools.cache
def _model(name: str, num_classes: int = 10, in_channels: int = 3) -> ConvBNModel:
    """Build each model once per session (seeded); tests set train/eval mode themselves."""
    torch.manual_seed(0)
    return create_model(name, num_classes=num_classes, in_channels=in_channels)


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _input(size: int, channels: int = 3) -> torch.Tensor:
    return torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(0))


def test_list_models() -> None:
    assert list_models() == MODEL_NAMES


def test_create_model_unknown_name() -> None:
    expected = "Unknown model 'x'; available: ['resnet18', 'resnet20', 'vgg16']"
    with pytest.raises(ValueError) as info:
        create_model("x", num_classes=10)
    assert str(info.value) == expected


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_classes": 0}, "num_classes must be a positive integer, but got 0"),
    ({"num_classes": 10, "in_channels": -1}, "in_channels must be a positive integer, but got -1"),
])  # fmt: skip
def test_create_model_invalid_sizes(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_model("resnet20", **kwargs)


def test_resnet_mismatched_stage_lengths() -> None:
    with pytest.raises(ValueError, match="must have the same length, but got 2, 2 and 1"):
        ResNet((1, 1), (8, 16), (1,), num_classes=10)


def test_register_model_warns_on_overwrite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "_MODELS", dict(_registry._MODELS))

    def tiny(*, num_classes: int, in_channels: int = 3) -> ConvBNModel:
        return create_model("resnet20", num_classes=num_classes, in_channels=in_channels)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_model(tiny)
    assert "tiny" in list_models()
    with pytest.warns(UserWarning, match="'tiny' is already registered"):
        register_model(tiny)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_param_count(name: str) -> None:
    assert _num_params(_model(name)) == PARAM_COUNTS[name]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_num_classes_changes_only_the_linear(name: str) -> None:
    shapes10 = {k: p.shape for k, p in _model(name).named_parameters()}
    shapes100 = {k: p.shape for k, p in _model(name, num_classes=100).named_parameters()}
    assert shapes10.keys() == shapes100.keys()
    changed = {k for k in shapes10 if shapes10[k] != shapes100[k]}
    (linear_name,) = [k for k, m in _model(name).named_modules() if isinstance(m, nn.Linear)]
    assert changed == {f"{linear_name}.weight", f"{linear_name}.bias"}
    extra = 90 * (shapes10[f"{linear_name}.weight"][1] + 1)  # 90 more rows of weight + bias
    assert _num_params(_model(name, num_classes=100)) == PARAM_COUNTS[name] + extra


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_shape_32x32(name: str) -> None:
    model = _model(name).eval()
    with torch.no_grad():
        out = model(_input(32))
    assert out.shape == (2, 10)
    assert not torch.isnan(out).any(), "Output included NaNs"


@pytest.mark.parametrize("name", RESNETS)
def test_resnet_output_shape_8x8_grayscale(name: str) -> None:
    model = _model(name, in_channels=1).train()
    out = model(_input(8, channels=1))
    assert out.shape == (2, 10)
    assert not torch.isnan(out).any(), "Output included NaNs"


@pytest.mark.parametrize(("size", "message"), [
    (8, "vgg16 needs inputs of at least 32x32 pixels, but got 8x8"),
    (64, r"vgg16 needs inputs smaller than 64x64 pixels \(its classifier takes a 1x1 feature map"),
])  # fmt: skip
def test_vgg_rejects_input_size(size: int, message: str) -> None:
    model = _model("vgg16").eval()
    with pytest.raises(ValueError, match=message):
        model(_input(size))
    with pytest.raises(ValueError, match=message):
        fx.symbolic_trace(model)(_input(size))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_train_step_reaches_every_parameter(name: str) -> None:
    model = _model(name, num_classes=3).train()
    model.zero_grad(set_to_none=True)
    model(_input(32)).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_conv_and_other_params_partition_parameters(name: str) -> None:
    model = _model(name)
    conv_ids = [id(p) for p in model.conv_params()]
    other_ids = [id(p) for p in model.other_params()]
    assert len(set(conv_ids)) == len(conv_ids) and len(set(other_ids)) == len(other_ids)
    assert sorted(conv_ids + other_ids) == sorted(id(p) for p in model.parameters())
    assert len(conv_ids) == CONV_COUNTS[name]
    assert sum(p.numel() for p in model.conv_params()) == CONV_NUMELS[name]
    assert sum(p.numel() for p in model.other_params()) == PARAM_COUNTS[name] - CONV_NUMELS[name]
    assert all(p.ndim == 4 for p in model.conv_params())
    assert all(p.ndim == 1 or p.shape[0] == 10 for p in model.other_params())  # BN, Linear


@pytest.mark.parametrize("name", ["resnet20", "vgg16"])
def test_conv_params_are_the_convs_of_the_spec_in_order(name: str) -> None:
    model = _model(name)
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in model.conv_params()] == CONV_NAMES[name]


class _ConvWithoutBN(ConvBNModel):
    """A conv feeding a BatchNorm, then a conv feeding a ReLU: only the first is invariant."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.head(self.bn(self.conv(x))))


def test_conv_params_are_found_structurally() -> None:
    model = _ConvWithoutBN()
    assert model.conv_params() == [model.conv.weight]
    assert model.other_params() == [
        model.bn.weight,
        model.bn.bias,
        model.head.weight,
        model.head.bias,
    ]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fx_trace_matches_eager(name: str) -> None:
    model = _model(name).eval()
    traced = fx.symbolic_trace(model)
    x = _input(32)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_channels_last(name: str) -> None:
    model = _model(name).eval()
    x = _input(32)
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model_cl.conv_params())
    with torch.no_grad():
        expected = model(x)
        out = model_cl(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
