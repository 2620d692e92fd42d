"""Tests for the models package: sizes, shapes, the conv/other parameter split, fx tracing."""

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
    all_ids = [id(p) for p in model.parameters()]
    assert len(set(conv_ids)) == len(conv_ids) and len(set(other_ids)) == len(other_ids)
    assert not set(conv_ids) & set(other_ids)
    assert sorted(conv_ids + other_ids) == sorted(all_ids)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert conv_ids == [id(m.weight) for m in convs]
    assert all(m.bias is None for m in convs)
    bn_and_linear = (nn.BatchNorm2d, nn.Linear)
    expected_other = [
        id(p)
        for m in model.modules()
        if isinstance(m, bn_and_linear)
        for p in m.parameters(recurse=False)
    ]
    assert sorted(other_ids) == sorted(expected_other)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_conv_feeds_only_a_batchnorm(name: str) -> None:
    model = _model(name)
    traced = fx.symbolic_trace(model)
    modules = dict(traced.named_modules())
    conv_nodes = [
        n
        for n in traced.graph.nodes
        if n.op == "call_module" and isinstance(modules[n.target], nn.Conv2d)
    ]
    assert [id(modules[n.target].weight) for n in conv_nodes] == [
        id(p) for p in model.conv_params()
    ]
    for node in conv_nodes:
        (user,) = node.users
        assert user.op == "call_module" and isinstance(modules[user.target], nn.BatchNorm2d)


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
