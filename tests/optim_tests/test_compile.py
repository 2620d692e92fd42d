"""torch.compile(opt.step), as torch's tutorial compiles its optimizers: one graph with no
break, no recompile across steps or when a scheduler changes the hyperparameters, and the eager
result to float rounding. Counts come from Dynamo's counters (test-only introspection)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch._dynamo.utils import counters

from optim import SGDMRT, AdamG, AdamS, AdamSRT

CASES = {
    "adams": (AdamS, {"lr": 1e-2, "betas": (0.9, 0.99), "weight_decay": 1e-2}),
    "adamsrt": (AdamSRT, {"lr": 1e-2, "betas": (0.9, 0.99), "weight_decay": 1e-2}),
    "adamg": (AdamG, {"lr": 1e-2, "betas": (0.9, 0.99), "weight_decay": 1e-2}),
    "sgdmrt": (SGDMRT, {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-2}),
}
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    ),
]


def _setup(name, device, dtype, tensor_lr):
    cls, hp = CASES[name]
    gen = torch.Generator().manual_seed(0)
    shapes = [(4, 3, 3, 3), (6, 4, 1, 1), (6,)]
    params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in shapes]
    params = [torch.nn.Parameter(p.detach().to(device)) for p in params]
    kwargs = {**hp, "lr": torch.tensor(hp["lr"])} if tensor_lr else hp
    groups = [{"params": params[:2], "channel_wise": True}, {"params": params[2:]}]
    return params, cls(groups, **kwargs)


def _grads(params, step):
    gen = torch.Generator().manual_seed(100 + step)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device)


def _run(name, device, dtype, *, tensor_lr, compiled, steps, schedule, backend="inductor"):
    torch._dynamo.reset()
    counters.clear()
    params, opt = _setup(name, device, dtype, tensor_lr)
    step = torch.compile(opt.step, backend=backend) if compiled else opt.step
    sched = schedule(opt)
    graphs = []
    with warnings.catch_warnings():
        # The scheduler counts calls of its own wrapper of opt.step, which is not compiled.
        warnings.filterwarnings("ignore", "Detected call of")
        for i in range(steps):
            _grads(params, i)
            step()
            sched.step()
            graphs.append(counters["stats"]["unique_graphs"])
    return params, graphs, sum(counters["graph_break"].values())


def _linear(opt):
    return torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.5, total_iters=10)


def _one_cycle(opt):
    # Moves lr and beta1 / momentum on every step.
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=50)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(CASES))
def test_compiled_step_is_one_graph_and_matches_eager(name, device):
    # A tensor lr (torch's advice for compiled steps under a scheduler): one graph, ever.
    run = {"steps": 5, "schedule": _linear, "tensor_lr": True}
    eager, _, _ = _run(name, device, torch.float32, compiled=False, **run)
    compiled, graphs, breaks = _run(name, device, torch.float32, compiled=True, **run)
    assert breaks == 0
    assert graphs == [1] * 5
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(CASES))
def test_float_hyperparameters_recompile_once_at_most(name, device):
    # Float lr and beta1 / momentum moved on every step: Dynamo specializes them on the first
    # call and makes them graph inputs at the first change; after that, no recompile. Guards
    # and graph inputs are Dynamo's, whatever the backend: aot_eager checks them (and the
    # traced update) without inductor's kernel builds, which the test above already covers.
    run = {"steps": 6, "schedule": _one_cycle, "tensor_lr": False, "backend": "aot_eager"}
    eager, _, _ = _run(name, device, torch.float64, compiled=False, **run)
    compiled, graphs, breaks = _run(name, device, torch.float64, compiled=True, **run)
    assert breaks == 0
    assert graphs[-1] <= 2 and graphs[2:] == [graphs[-1]] * 4
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
