"""Geometric properties of the spherical updates, and the multi-tensor path against the reference
on mixed parameter sets, layouts and dtypes."""

from __future__ import annotations

import copy

import pytest
import torch

from optim import SGDMRT, AdamG, AdamS, AdamSRT
from optim._batching import LARGE_NUMEL

SPHERICAL = {
    "adams": (AdamS, {"lr": 1e-2, "betas": (0.9, 0.99), "weight_decay": 1e-2}),
    "adamsrt": (AdamSRT, {"lr": 1e-2, "betas": (0.9, 0.99), "weight_decay": 1e-2}),
    "adamg": (AdamG, {"lr": 1e-2, "betas": (0.9, 0.99), "weight_decay": 1e-2}),
    "sgdmrt": (SGDMRT, {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-2}),
}


def _conv_params(dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(8, 3, 3, 3), (16, 8, 3, 3), (16, 8, 1, 1), (10, 16)]
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in shapes]


def _first_moment(opt, p):
    state = opt.state[p]
    return state["momentum_buffer"] if "momentum_buffer" in state else state["exp_avg"]


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name", ["adamsrt", "sgdmrt", "adamg"])
def test_first_moment_is_orthogonal_to_the_new_filter(name, foreach):
    cls, hp = SPHERICAL[name]
    params = _conv_params(torch.float64)
    opt = cls(params, channel_wise=True, foreach=foreach, **hp)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        opt.step()
        for p in params:
            m = _first_moment(opt, p).reshape(p.shape[0], -1)
            x = p.detach().reshape(p.shape[0], -1)
            cosine = (m * x).sum(1) / (m.norm(dim=1) * x.norm(dim=1))
            assert cosine.abs().max() < 1e-10


@pytest.mark.parametrize("foreach", [False, True])
def test_adamsrt_drops_the_radial_part_of_the_moment(foreach):
    # A gradient along the filter (what weight decay injects) leaves no trace in m after RT.
    p = torch.nn.Parameter(torch.randn(4, 6, dtype=torch.float64))
    opt = AdamSRT([p], channel_wise=True, foreach=foreach, lr=1e-3)
    p.grad = 0.5 * p.detach().clone()
    opt.step()
    assert opt.state[p]["exp_avg"].abs().max() < 1e-12


@pytest.mark.parametrize("foreach", [False, True])
def test_adamg_keeps_filters_on_the_unit_sphere(foreach):
    params = _conv_params()
    bn = torch.nn.Parameter(torch.ones(8) * 3)
    opt = AdamG(
        [{"params": params, "channel_wise": True}, {"params": [bn]}], lr=0.05, foreach=foreach
    )
    gen = torch.Generator().manual_seed(2)
    for _ in range(10):
        for p in [*params, bn]:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
        for p in params:
            norms = p.detach().reshape(p.shape[0], -1).norm(dim=1)
            torch.testing.assert_close(norms, torch.ones_like(norms), rtol=0, atol=1e-5)
    assert not torch.allclose(bn.detach().abs(), torch.ones(8)), "the plain group is not projected"


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name", list(SPHERICAL))
def test_zero_norm_filter_gives_no_nan(name, foreach):
    cls, hp = SPHERICAL[name]
    p = torch.nn.Parameter(torch.randn(3, 5))
    with torch.no_grad():
        p[1] = 0
    opt = cls([p], channel_wise=True, foreach=foreach, **hp)
    for _ in range(3):
        grad = torch.randn(3, 5)
        grad[1] = 0
        p.grad = grad
        opt.step()
    assert torch.isfinite(p).all()
    assert all(torch.isfinite(t).all() for t in opt.state[p].values() if torch.is_tensor(t))
    assert torch.equal(p[1].detach(), torch.zeros(5))


def _run(cls, hp, params, foreach, steps=20, seed=3, make_grad=None, n_channel_wise=3):
    params = [torch.nn.Parameter(p.detach().clone()) for p in params]
    groups = [
        {"params": params[:n_channel_wise], "channel_wise": True},
        {"params": params[n_channel_wise:]},
    ]
    opt = cls(groups, foreach=foreach, **hp)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for p in params:
            g = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            p.grad = make_grad(g) if make_grad else g
        opt.step()
    return params, opt


@pytest.mark.parametrize("name", list(SPHERICAL))
def test_fast_path_equals_reference_float64(name):
    cls, hp = SPHERICAL[name]
    # Small tensors (batched, two of them with the same unit size d = 72) and large ones
    # (≥ LARGE_NUMEL, one at a time) in both groups.
    gen = torch.Generator().manual_seed(5)
    big_conv, big_plain = (
        torch.randn(64, 32, 6, 6, generator=gen),
        torch.randn(300, 300, generator=gen),
    )
    assert min(big_conv.numel(), big_plain.numel()) >= LARGE_NUMEL
    convs = _conv_params(torch.float64)
    params = [
        torch.nn.Parameter(big_conv.double()),
        *convs[:3],
        torch.nn.Parameter(torch.randn(12, 8, 3, 3, dtype=torch.float64)),
        torch.nn.Parameter(big_plain.double()),
        convs[3],
        torch.nn.Parameter(torch.randn(16, dtype=torch.float64)),
    ]
    ref, ref_opt = _run(cls, hp, params, foreach=False, n_channel_wise=5)
    fast, fast_opt = _run(cls, hp, params, foreach=True, n_channel_wise=5)
    for a, b in zip(ref, fast, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        for key, value in ref_opt.state[a].items():
            torch.testing.assert_close(value, fast_opt.state[b][key], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", list(SPHERICAL))
def test_channels_last_and_non_contiguous_weights(name):
    cls, hp = SPHERICAL[name]
    base = _conv_params(torch.float64)
    expected, _ = _run(cls, hp, base, foreach=False)
    odd = [p.detach().clone().to(memory_format=torch.channels_last) for p in base[:3]]
    odd.append(base[3].detach().t().contiguous().t())  # a transposed view: non-contiguous
    assert not odd[3].is_contiguous()
    got, _ = _run(cls, hp, odd, foreach=True)
    for a, b in zip(expected, got, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(SPHERICAL))
def test_bfloat16_follows_float32(name):
    cls, hp = SPHERICAL[name]
    params = _conv_params(torch.float32)
    full, _ = _run(cls, hp, params, foreach=True, steps=5)
    half, half_opt = _run(cls, hp, [p.to(torch.bfloat16) for p in params], foreach=True, steps=5)
    for a, b in zip(full, half, strict=True):
        assert b.dtype == torch.bfloat16
        assert torch.isfinite(b.float()).all()
        torch.testing.assert_close(b.float(), a, rtol=0.05, atol=0.05)
    state = half_opt.state[half[0]]
    assert all(
        t.dtype == torch.bfloat16 for k, t in state.items() if k != "step" and t is not None
    )


@pytest.mark.parametrize("name", list(SPHERICAL))
def test_channel_dims_generalise_channel_wise(name):
    cls, hp = SPHERICAL[name]
    # channel_dims=(1,) on a tensor equals channel_wise on its transpose.
    w = torch.randn(5, 7, dtype=torch.float64)
    a = torch.nn.Parameter(w.clone())
    b = torch.nn.Parameter(w.t().contiguous())
    opt_a = cls([{"params": [a], "channel_dims": (1,)}], **hp)
    opt_b = cls([{"params": [b], "channel_wise": True}], **hp)
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        g = torch.randn(5, 7, generator=gen, dtype=torch.float64)
        a.grad, b.grad = g.clone(), g.t().contiguous()
        opt_a.step()
        opt_b.step()
    torch.testing.assert_close(a.detach(), b.detach().t(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["adams", "adamsrt", "adamg"])
def test_second_moment_is_one_scalar_per_filter(name):
    cls, hp = SPHERICAL[name]
    conv = torch.nn.Parameter(torch.randn(16, 8, 3, 3))
    opt = cls([{"params": [conv], "channel_wise": True}], **hp)
    conv.grad = torch.randn_like(conv)
    opt.step()
    assert opt.state[conv]["exp_avg_sq"].shape == (16,)
    assert copy.deepcopy(opt.state_dict())["state"][0]["exp_avg_sq"].numel() == 16
