"""The update rules against an independent float64 reference written from the spec's formulas,
and the reductions to torch.optim.Adam / SGD on element-wise groups."""

from __future__ import annotations

import math

import pytest
import torch

from optim import SGDMRT, AdamG, AdamS, AdamSRT

SHAPES = [(6, 3, 3, 3), (5, 7), (9,)]
STEPS = 25


def _filters(t: torch.Tensor, channel_wise: bool) -> torch.Tensor:
    """(units, d): one row per filter, or one row per entry."""
    return t.reshape(t.shape[0], -1) if channel_wise and t.dim() > 1 else t.reshape(-1, 1)


class SpecAdam:
    """AdamS / AdamSRT / AdamG written row by row from spec/optimizers.md."""

    def __init__(self, mode, x, channel_wise, lr, betas, eps, wd):
        self.mode, self.cw, self.lr, self.eps, self.wd = mode, channel_wise, lr, eps, wd
        self.b1, self.b2 = betas
        rows = _filters(x, channel_wise)
        self.m = torch.zeros_like(rows)
        self.v = torch.zeros_like(rows) if rows.shape[1] == 1 else torch.zeros(rows.shape[0], 1)
        self.v = self.v.double()
        self.t = 0

    def step(self, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        self.t += 1
        t, b1, b2, eps, lr = self.t, self.b1, self.b2, self.eps, self.lr
        X, G = _filters(x, self.cw).clone(), _filters(grad, self.cw)
        d = X.shape[1]
        unit = d > 1
        sphere = self.mode == "adamg" and unit
        if not sphere:
            G = G + self.wd * X
        self.m = b1 * self.m + (1 - b1) * G
        if unit:
            self.v = b2 * self.v + (1 - b2) * (G * G).sum(1, keepdim=True)
        else:
            self.v = b2 * self.v + (1 - b2) * G * G
        m_hat = self.m / (1 - b1**t)
        denom = self.v.sqrt() / math.sqrt(1 - b2**t) + eps
        scale = math.sqrt(d) if unit and not sphere else 1.0
        X_new = X - lr * scale * m_hat / denom
        if unit and self.mode == "adamsrt":
            a = (X * X).sum(1, keepdim=True)
            b = (X_new * X_new).sum(1, keepdim=True)
            c = (X * X_new).sum(1, keepdim=True)
            e = (self.m * X_new).sum(1, keepdim=True)
            self.v = self.v * a / (b + eps)
            self.m = (c * self.m - e * X) / (b + eps)
        if sphere:
            c = (X * X_new).sum(1, keepdim=True)
            e = (self.m * X_new).sum(1, keepdim=True)
            n_old, n_new = X.norm(dim=1, keepdim=True), X_new.norm(dim=1, keepdim=True)
            self.m = (c * self.m - e * X) / (n_old * n_new + eps)
            X_new = X_new / (n_new + eps)
        return X_new.reshape(x.shape)


class SpecSGDMRT:
    def __init__(self, x, channel_wise, lr, momentum, wd):
        self.cw, self.lr, self.mu, self.wd = channel_wise, lr, momentum, wd
        self.b = None

    def step(self, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        X, G = _filters(x, self.cw).clone(), _filters(grad, self.cw)
        G = G + self.wd * X
        self.b = G.clone() if self.b is None else self.mu * self.b + G
        X_new = X - self.lr * self.b
        if X.shape[1] > 1:
            c = (X * X_new).sum(1, keepdim=True)
            e = (self.b * X_new).sum(1, keepdim=True)
            n = (X_new * X_new).sum(1, keepdim=True)
            self.b = (c * self.b - e * X) / n
        return X_new.reshape(x.shape)


def _grad_sequence(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(STEPS)]


def _run_ours(cls, kwargs, x0, grads, channel_wise, foreach):
    p = torch.nn.Parameter(x0.clone())
    opt = cls([{"params": [p], "channel_wise": channel_wise}], foreach=foreach, **kwargs)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    return p.detach(), opt


ADAM_CASES = [(AdamS, "adams"), (AdamSRT, "adamsrt"), (AdamG, "adamg")]


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 5e-2])
@pytest.mark.parametrize("channel_wise", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(("cls", "mode"), ADAM_CASES, ids=[m for _, m in ADAM_CASES])
def test_adam_family_matches_spec(cls, mode, shape, channel_wise, weight_decay, foreach):
    x0 = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads = _grad_sequence(shape, 2)
    hp = {"lr": 1e-2, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": weight_decay}
    spec = SpecAdam(mode, x0, channel_wise, hp["lr"], hp["betas"], hp["eps"], weight_decay)
    x = x0.clone()
    for g in grads:
        x = spec.step(x, g)
    ours, _ = _run_ours(cls, hp, x0, grads, channel_wise, foreach)
    torch.testing.assert_close(ours, x, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 5e-2])
@pytest.mark.parametrize("channel_wise", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_sgdmrt_matches_spec(shape, channel_wise, weight_decay, foreach):
    x0 = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads = _grad_sequence(shape, 2)
    spec = SpecSGDMRT(x0, channel_wise, 1e-2, 0.9, weight_decay)
    x = x0.clone()
    for g in grads:
        x = spec.step(x, g)
    hp = {"lr": 1e-2, "momentum": 0.9, "weight_decay": weight_decay}
    ours, _ = _run_ours(SGDMRT, hp, x0, grads, channel_wise, foreach)
    torch.testing.assert_close(ours, x, rtol=1e-10, atol=1e-12)


def _lockstep(ours_factory, torch_factory, shapes, steps=STEPS):
    gen = torch.Generator().manual_seed(3)
    a = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    opt_a, opt_b = ours_factory(a), torch_factory(b)
    for _ in range(steps):
        for pa, pb in zip(a, b, strict=True):
            g = torch.randn(pa.shape, generator=gen)
            pa.grad, pb.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(a, b, strict=True):
        torch.testing.assert_close(pa, pb)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("cls", [AdamS, AdamSRT, AdamG])
def test_adam_family_on_plain_groups_is_torch_adam(cls, foreach):
    hp = {"lr": 1e-2, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 1e-2}
    _lockstep(
        lambda ps: cls(ps, foreach=foreach, **hp),
        lambda ps: torch.optim.Adam(ps, foreach=foreach, **hp),
        SHAPES,
    )


@pytest.mark.parametrize("foreach", [False, True])
def test_adam_family_on_one_element_filters_is_torch_adam(foreach):
    # channel_wise on tensors whose filters have d = 1 falls back to the element-wise rule.
    hp = {"lr": 1e-2, "betas": (0.9, 0.99), "weight_decay": 1e-2}
    _lockstep(
        lambda ps: AdamSRT(ps, channel_wise=True, foreach=foreach, **hp),
        lambda ps: torch.optim.Adam(ps, **hp),
        [(7,), (1,), (4, 1)],
    )


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("dampening", [0.0, 0.3])
def test_sgdmrt_on_plain_groups_is_torch_sgd(foreach, dampening):
    hp = {"lr": 0.05, "momentum": 0.9, "dampening": dampening, "weight_decay": 1e-2}
    _lockstep(
        lambda ps: SGDMRT(ps, foreach=foreach, **hp),
        lambda ps: torch.optim.SGD(ps, foreach=foreach, **hp),
        SHAPES,
    )
