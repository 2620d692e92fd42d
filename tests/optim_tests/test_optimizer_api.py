"""The torch.optim contract for every optimizer of the project: state_dict, closure, untouched
gradients, schedulers, input validation, and a short training that lowers the loss."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
from torch import nn

from optim import (
    SGDMRT,
    AdamG,
    AdamS,
    AdamSRT,
    OptimInfo,
    _factory,
    check_hyperparameters,
    create_optimizer,
    get_optimizer_info,
    list_optimizers,
    register_optimizer,
)

HPARAMS = {
    "adams": {"lr": 1e-2, "weight_decay": 1e-4},
    "adamsrt": {"lr": 1e-2, "weight_decay": 1e-4},
    "adamg": {"lr": 1e-2, "weight_decay": 1e-4},
    "sgdmrt": {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4},
    "adam": {"lr": 1e-2, "weight_decay": 1e-4},
    "adamw": {"lr": 1e-2, "weight_decay": 1e-4},
    "sgd": {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4},
}
SPHERICAL = ["adams", "adamsrt", "adamg", "sgdmrt"]


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


def _batch(seed=0, n=32):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=gen)
    y = (x[:, 0].mean((1, 2)) > 0).long() + 2 * (x[:, 1].mean((1, 2)) > 0).long()
    return x, y


def _loss(model, x, y):
    return nn.functional.cross_entropy(model(x), y)


@pytest.mark.parametrize("name", SPHERICAL)
@pytest.mark.parametrize("foreach", [False, True])
def test_state_dict_resume_runs_in_lockstep(name, foreach):
    model = _net()
    opt = create_optimizer(name, model, foreach=foreach, **HPARAMS[name])
    x, y = _batch()
    for _ in range(20):
        opt.zero_grad()
        _loss(model, x, y).backward()
        opt.step()
    clone = copy.deepcopy(model)
    opt_clone = create_optimizer(name, clone, foreach=foreach, **HPARAMS[name])
    saved = copy.deepcopy(opt.state_dict())
    opt_clone.load_state_dict(saved)
    for _ in range(10):
        for m, o in ((model, opt), (clone, opt_clone)):
            o.zero_grad()
            _loss(m, x, y).backward()
            o.step()
        for a, b in zip(model.parameters(), clone.parameters(), strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("name", list(HPARAMS))
def test_closure_returns_the_loss(name):
    model = _net()
    opt = create_optimizer(name, model, **HPARAMS[name])
    x, y = _batch()

    def closure():
        opt.zero_grad()
        loss = _loss(model, x, y)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert torch.is_tensor(loss) and loss.item() > 0


@pytest.mark.parametrize("name", SPHERICAL)
@pytest.mark.parametrize("foreach", [False, True])
def test_params_without_grad_untouched_and_grads_never_modified(name, foreach):
    model = _net()
    opt = create_optimizer(name, model, foreach=foreach, **HPARAMS[name])
    x, y = _batch()
    _loss(model, x, y).backward()
    frozen = model[3].weight
    frozen.grad = None
    before = frozen.detach().clone()
    grads = {p: p.grad.clone() for p in model.parameters() if p.grad is not None}
    for _ in range(3):
        opt.step()
    assert torch.equal(frozen, before)
    assert frozen not in opt.state
    for p, g in grads.items():
        assert torch.equal(p.grad, g)


@pytest.mark.parametrize("name", list(HPARAMS))
def test_lr_scheduler_acts_on_every_group(name):
    model = _net()
    opt = create_optimizer(name, model, **HPARAMS[name])
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2], gamma=0.1)
    x, y = _batch()
    for _ in range(3):
        opt.zero_grad()
        _loss(model, x, y).backward()
        opt.step()
        sched.step()
    lrs = [g["lr"] for g in opt.param_groups]
    assert lrs == pytest.approx([HPARAMS[name]["lr"] * 0.1] * len(lrs))


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name", SPHERICAL)
def test_each_group_steps_with_its_own_hyperparameters(name, foreach):
    # Groups with equal hyperparameters run as one pass; one with another lr must not join
    # them. Expected: one optimizer per group, each alone.
    cls = {"adams": AdamS, "adamsrt": AdamSRT, "adamg": AdamG, "sgdmrt": SGDMRT}[name]
    hp = {**HPARAMS[name], "foreach": foreach}
    model = _net()
    conv1, bn1, conv2, bn2, fc = model[0], model[1], model[3], model[4], model[8]
    groups = [
        {"params": [conv1.weight], "channel_wise": True},
        {"params": [*bn1.parameters(), *fc.parameters()]},
        {"params": [conv2.weight], "channel_wise": True, "lr": hp["lr"] / 3},
        {"params": list(bn2.parameters())},
    ]
    clone = copy.deepcopy(model)
    by_name = dict(clone.named_parameters())

    def cloned(group):
        names = [n for n, p in model.named_parameters() if any(p is q for q in group["params"])]
        return {**group, "params": [by_name[n] for n in names]}

    alone = [cls([cloned(g)], **hp) for g in groups]
    opt = cls(groups, **hp)
    x, y = _batch()
    for _ in range(4):
        for m in (model, clone):
            m.zero_grad()
            _loss(m, x, y).backward()
        opt.step()
        for o in alone:
            o.step()
    for a, b in zip(model.parameters(), clone.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(conv2.weight, _net()[3].weight)


@pytest.mark.parametrize("name", list(HPARAMS))
def test_short_training_lowers_the_loss(name):
    model = _net(seed=1)
    opt = create_optimizer(name, model, **HPARAMS[name])
    x, y = _batch(seed=1, n=64)
    with torch.no_grad():
        initial = _loss(model, x, y).item()
    for _ in range(60):
        opt.zero_grad()
        _loss(model, x, y).backward()
        opt.step()
    with torch.no_grad():
        final = _loss(model, x, y).item()
    assert final < 0.7 * initial, (initial, final)


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (AdamSRT, {"lr": -1.0}, "Invalid learning rate: -1.0"),
        (AdamS, {"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
        (AdamG, {"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
        (AdamSRT, {"betas": (0.9,)}, "must be a pair"),
        (AdamSRT, {"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
        (AdamS, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
        (SGDMRT, {"lr": -0.1}, "Invalid learning rate: -0.1"),
        (SGDMRT, {"momentum": -0.5}, "Invalid momentum value: -0.5"),
        (SGDMRT, {"weight_decay": -1.0}, "Invalid weight_decay value: -1.0"),
        (SGDMRT, {"channel_wise": "yes"}, "Invalid channel_wise: must be True or False"),
        (AdamSRT, {"channel_dims": (5,)}, r"channel_dims.*\(5,\).*shape \(3, 4\)"),
        (AdamSRT, {"channel_dims": 0}, "must be a sequence of ints"),
    ],
)
def test_bad_hyperparameters_raise_clear_errors(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls([torch.nn.Parameter(torch.zeros(3, 4))], **kwargs)


def test_bad_group_value_raises_and_adds_nothing():
    p, q = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    opt = AdamSRT([p])
    with pytest.raises(ValueError, match="Invalid learning rate: -2"):
        opt.add_param_group({"params": [q], "lr": -2})
    assert len(opt.param_groups) == 1


def test_channel_wise_on_a_one_element_tensor_is_fine():
    p = torch.nn.Parameter(torch.ones(1))
    opt = AdamSRT([{"params": [p], "channel_wise": True}], lr=0.1)
    p.grad = torch.ones(1)
    opt.step()
    assert p.item() == pytest.approx(0.9)


def test_sparse_gradients_are_refused():
    emb = nn.Embedding(5, 3, sparse=True)
    opt = AdamSRT(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="AdamSRT does not support sparse gradients"):
        opt.step()


def test_seed_usage_runs_as_written():
    model = _net()
    convs = [model[0].weight, model[3].weight]
    others = [p for p in model.parameters() if all(p is not c for c in convs)]
    par_groups = [{"params": convs, "channel_wise": True}, {"params": others}]
    optimizer = SGDMRT(par_groups, lr=0.01, momentum=0.9)
    optimizer.zero_grad()
    x, y = _batch()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    assert optimizer.state[convs[0]]["momentum_buffer"] is not None


def test_factory_names_and_errors():
    assert list_optimizers() == ["adam", "adamg", "adams", "adamsrt", "adamw", "sgd", "sgdmrt"]
    with pytest.raises(ValueError, match=r"Unknown optimizer 'lamb'; available: \['adam', "):
        create_optimizer("lamb", _net())
    with pytest.raises(ValueError, match=r"'adam' does not take \['momentum'\]"):
        create_optimizer("adam", _net(), momentum=0.9)


# Per optimizer: a bad value, torch's or the project's message for it, and good values.
CHECKS = [
    ("adam", {"lr": -1.0}, "Invalid learning rate: -1.0"),
    ("adamw", {"betas": (0.9, 1.0)}, "Invalid beta parameter at index 1: 1.0"),
    ("sgd", {"momentum": -0.5}, "Invalid momentum value: -0.5"),
    ("sgd", {"momentum": 0.0, "nesterov": True}, "Nesterov momentum requires a momentum"),
    ("adams", {"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
    ("adamsrt", {"betas": (0.9,)}, "must be a pair"),
    ("adamg", {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    ("sgdmrt", {"dampening": -1.0}, "Invalid dampening value: -1.0"),
    ("adam", {"momentum": 0.9}, r"'adam' does not take \['momentum'\]"),
]


@pytest.mark.parametrize(("name", "kwargs", "message"), CHECKS)
def test_check_hyperparameters_raises_what_building_the_optimizer_raises(name, kwargs, message):
    with pytest.raises(ValueError, match=message) as built:
        create_optimizer(name, _net(), **kwargs)
    with pytest.raises(ValueError, match=message) as checked:
        check_hyperparameters(name, **kwargs)
    assert str(checked.value) == str(built.value)


@pytest.mark.parametrize("name", list(HPARAMS))
def test_check_hyperparameters_accepts_what_builds(name):
    create_optimizer(name, _net(), **HPARAMS[name])
    assert check_hyperparameters(name, **HPARAMS[name]) is None


def test_check_hyperparameters_leaves_torch_compiler_unimported():
    # The point of the check: a process that validates a spec does not pay for the compiler.
    code = (
        "import sys, optim\n"
        "for name in optim.list_optimizers(): optim.check_hyperparameters(name, lr=0.1)\n"
        "print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_name_registered_in_mixed_case_is_found(monkeypatch):
    monkeypatch.setattr(_factory, "_REGISTRY", dict(_factory._REGISTRY))
    register_optimizer(OptimInfo("MyAdam", torch.optim.Adam, "registered in mixed case", False))
    for name in ("MyAdam", "myadam", "MYADAM"):
        assert get_optimizer_info(name).cls is torch.optim.Adam
    assert "myadam" in list_optimizers()
    assert isinstance(create_optimizer("MyAdam", _net(), lr=1e-3), torch.optim.Adam)
    with pytest.warns(UserWarning, match="'myadam' is registered again"):
        register_optimizer(OptimInfo("MYADAM", torch.optim.AdamW, "the same name", False))
    assert get_optimizer_info("MyAdam").cls is torch.optim.AdamW


def test_factory_builds_channel_wise_groups_from_a_model():
    model = _net()
    opt = create_optimizer("adamsrt", model, lr=1e-3)
    assert [g["channel_wise"] for g in opt.param_groups] == [True, False]
    assert opt.param_groups[0]["params"] == [model[0].weight, model[3].weight]
    stock = create_optimizer("sgd", model, lr=0.1)
    assert len(stock.param_groups) == 1 and stock.param_groups[0]["momentum"] == 0.9
