"""Inputs torch's own optimizers handle: overflowing gradients, complex parameters, old state
dicts, tensor learning rates, and bit-identity with torch.optim.SGD on plain groups."""

from __future__ import annotations

import copy

import pytest
import torch

from optim import SGDMRT, AdamG, AdamS, AdamSRT

from .test_update_rules import SpecAdam, SpecSGDMRT

DTYPES = [torch.float32, torch.float64]
ALL = {
    "adams": (AdamS, {"lr": 1e-2, "betas": (0.9, 0.99), "weight_decay": 1e-2}),
    "adamsrt": (AdamSRT, {"lr": 1e-2, "betas": (0.9, 0.99), "weight_decay": 1e-2}),
    "adamg": (AdamG, {"lr": 1e-2, "betas": (0.9, 0.99), "weight_decay": 1e-2}),
    "sgdmrt": (SGDMRT, {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-2}),
}


def _params(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(8, 3, 3, 3), (16, 8, 3, 3), (6, 5)]
    return [torch.nn.Parameter(torch.randn(s, generator=gen).to(dtype)) for s in shapes]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("scale", [1e19, 1e20])
@pytest.mark.parametrize("name", ["adams", "adamsrt", "adamg"])
def test_huge_gradients_stay_finite_as_in_the_reference(name, scale, dtype):
    # float32: ‖g‖² and ‖m‖² overflow per filter; the step is then 0 and x must stay finite.
    cls, hp = ALL[name]
    runs = {}
    for foreach in (False, True):
        params = _params(dtype)
        opt = cls([{"params": params, "channel_wise": True}], foreach=foreach, **hp)
        gen = torch.Generator().manual_seed(1)
        for _ in range(3):
            for p in params:
                p.grad = (torch.randn(p.shape, generator=gen) * scale).to(dtype)
            opt.step()
        runs[foreach] = params
    for ref, fast in zip(runs[False], runs[True], strict=True):
        assert torch.isfinite(ref).all()
        assert torch.isfinite(fast).all()
        torch.testing.assert_close(fast, ref)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_huge_gradients_keep_the_update_of_the_spec(dtype):
    # Independent check in float64: a huge but finite-squared gradient follows the formulas.
    x0 = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(1), dtype=dtype)
    g = 1e19 * torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(2), dtype=dtype)
    p = torch.nn.Parameter(x0.clone())
    opt = AdamSRT([p], channel_wise=True, lr=1e-2)
    p.grad = g.clone()
    opt.step()
    if dtype == torch.float64:
        spec = SpecAdam("adamsrt", x0, True, 1e-2, (0.9, 0.999), 1e-8, 0.0)
        torch.testing.assert_close(p.detach(), spec.step(x0, g).to(dtype))
    else:  # ‖g‖² overflows: v = inf, the step is 0, as torch.optim.Adam's is
        torch.testing.assert_close(p.detach(), x0, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("name", list(ALL))
def test_complex_parameters_are_refused_at_construction(name, dtype):
    cls, hp = ALL[name]
    z = torch.nn.Parameter(torch.zeros(4, 3, dtype=dtype))
    with pytest.raises(ValueError, match=r"complex tensors are not supported.*shape \(4, 3\)"):
        cls([z], **hp)
    opt = cls([torch.nn.Parameter(torch.zeros(3))], **hp)
    with pytest.raises(ValueError, match="complex tensors are not supported"):
        opt.add_param_group({"params": [z], "channel_wise": True})
    assert len(opt.param_groups) == 1


def _train(opt, params, steps, seed):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen).to(p.dtype)
        opt.step()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name", ["adams", "adamsrt", "adamg"])
def test_state_dict_with_a_number_step_loads(name, foreach, dtype):
    # torch's older format (which torch's own tests load): `step` is a Python number.
    cls, hp = ALL[name]
    params = _params(dtype)
    opt = cls([{"params": params, "channel_wise": True}], foreach=foreach, **hp)
    _train(opt, params, 5, seed=1)
    old = copy.deepcopy(opt.state_dict())
    for s in old["state"].values():
        s["step"] = int(s["step"].item())
    clones = [torch.nn.Parameter(p.detach().clone()) for p in params]
    opt_c = cls([{"params": clones, "channel_wise": True}], foreach=foreach, **hp)
    opt_c.load_state_dict(old)
    assert all(torch.is_tensor(s["step"]) for s in opt_c.state.values())
    _train(opt, params, 3, seed=2)
    _train(opt_c, clones, 3, seed=2)
    for a, b in zip(params, clones, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("dampening", [0.0, 0.3])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_sgdmrt_fast_path_on_plain_groups_is_bit_identical_to_torch_sgd(
    weight_decay, dampening, dtype
):
    hp = {"lr": 0.05, "momentum": 0.9, "dampening": dampening, "weight_decay": weight_decay}
    ours = _params(dtype)
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt = SGDMRT(ours, foreach=True, **hp)
    ref = torch.optim.SGD(theirs, foreach=True, **hp)
    _train(opt, ours, 10, seed=3)
    _train(ref, theirs, 10, seed=3)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name", ["adams", "adamsrt", "adamg"])
def test_tensor_lr_assigned_after_construction_works(name, foreach, dtype):
    # Against the spec written independently, with the float value of the same lr.
    cls, hp = ALL[name]
    x0 = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(1), dtype=dtype)
    p = torch.nn.Parameter(x0.clone())
    opt = cls([p], channel_wise=True, foreach=foreach, **hp)
    opt.param_groups[0]["lr"] = torch.tensor(hp["lr"], dtype=torch.float64)
    mode = name
    spec = SpecAdam(mode, x0.double(), True, hp["lr"], hp["betas"], 1e-8, hp["weight_decay"])
    x = x0.double()
    gen = torch.Generator().manual_seed(2)
    for _ in range(5):
        g = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
        p.grad = g.to(dtype)
        opt.step()
        x = spec.step(x, g)
    torch.testing.assert_close(p.detach(), x.to(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("foreach", [False, True])
def test_tensor_lr_sgdmrt_follows_the_spec(foreach, dtype):
    x0 = torch.randn(6, 5, generator=torch.Generator().manual_seed(1), dtype=dtype)
    p = torch.nn.Parameter(x0.clone())
    opt = SGDMRT([p], channel_wise=True, lr=torch.tensor(0.05), foreach=foreach)
    spec = SpecSGDMRT(x0.double(), True, 0.05, 0.9, 0.0)
    x = x0.double()
    gen = torch.Generator().manual_seed(2)
    for _ in range(5):
        g = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
        p.grad = g.to(dtype)
        opt.step()
        x = spec.step(x, g)
    torch.testing.assert_close(p.detach(), x.to(dtype))


@pytest.mark.parametrize("name", list(ALL))
def test_a_tensor_lr_of_several_elements_is_refused_clearly(name):
    cls, hp = ALL[name]
    p = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match=r"tensor lr must be one floating-point element"):
        cls([p], **{**hp, "lr": torch.tensor([0.1, 0.2])})
    opt = cls([p], **hp)
    opt.param_groups[0]["lr"] = torch.tensor([0.1, 0.2])
    p.grad = torch.ones(3)
    with pytest.raises(ValueError, match=r"tensor lr must be one floating-point element"):
        opt.step()
