"""Search spaces as data: the presets, the [space] table's layers, every bad entry as one line,
sampling inside the declared ranges, and grids enumerated point by point."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import optuna
import pytest

from search import SpecError, load_spec, parse_space, suggest
from search._space import grid_point, grid_size

# The paper's Appendix E grid, written out here independently of the preset file.
PAPER_WEIGHT_DECAYS = [0.0, 5e-4, 2.5e-4, 1.25e-4, 6.25e-5, 3.125e-5, 1.5625e-5, 7.8125e-6]
ALL = ("adams", "adamsrt", "adamg", "adam", "adamw", "sgd", "sgdmrt")

SPEC = """
name = "t"
dataset = "digits"
model = "resnet20"
optimizers = ["adamsrt", "sgd"]
epochs = 3
"""


def test_the_paper_grid_preset_is_the_published_grid():
    spaces = parse_space("paper-grid", ALL)
    for opt, space in spaces.items():
        axes = {n: list(e.choices) for n, e in space.items() if e.kind == "grid"}
        expected = {"weight_decay": PAPER_WEIGHT_DECAYS}
        if opt.startswith("adam"):
            expected["beta2"] = [0.99, 0.999]
        assert axes == expected, opt
        lr = {"sgd": 0.1, "sgdmrt": 0.1, "adamg": 1e-2}.get(opt, 1e-3)
        assert space["lr"].value == lr, opt
        assert grid_size(space) == 8 * (2 if opt.startswith("adam") else 1)


@pytest.mark.parametrize("optimizer", ALL)
def test_default_suggestions_are_full_hyper_parameters_inside_the_ranges(optimizer):
    space = parse_space("default", (optimizer,))[optimizer]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    low, high = {"sgd": (1e-2, 1.0), "sgdmrt": (1e-2, 1.0), "adamg": (1e-3, 1e-1)}.get(
        optimizer, (1e-4, 1e-2)
    )
    seen_zero = False
    for _ in range(60):
        trial = study.ask()
        hp = suggest(trial, optimizer, space)
        study.tell(trial, 0.0)
        assert low <= hp["lr"] <= high
        assert hp["weight_decay"] == 0 or 1e-6 <= hp["weight_decay"] <= 1e-2
        seen_zero |= hp["weight_decay"] == 0
        if optimizer.startswith("sgd"):
            assert set(hp) == {"lr", "momentum", "weight_decay"}
            assert 0.8 <= hp["momentum"] <= 0.99
        else:
            assert set(hp) == {"lr", "betas", "weight_decay", "eps"}
            assert hp["betas"][0] == 0.9 and 0.9 <= hp["betas"][1] <= 0.999
            assert trial.params["one_minus_beta2"] == pytest.approx(1 - hp["betas"][1])
    assert seen_zero, "zero weight decay must be reachable"


def test_layers_preset_then_shared_then_per_optimizer():
    raw = {
        "preset": "default",
        "lr": {"low": 1e-3, "high": 1e-2, "log": True},  # over the preset's per-optimizer lr
        "weight_decay": 0.0,
        "sgd": {"momentum": {"choices": [0.9, 0.95]}, "lr": 0.05},
    }
    spaces = parse_space(raw, ("sgd", "adamsrt"))
    assert spaces["sgd"]["lr"].value == 0.05 and spaces["sgd"]["momentum"].choices == (0.9, 0.95)
    assert (spaces["adamsrt"]["lr"].low, spaces["adamsrt"]["lr"].high) == (1e-3, 1e-2)
    assert spaces["adamsrt"]["weight_decay"].value == 0.0
    assert spaces["adamsrt"]["eps"].value == 1e-8  # from the preset
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        hp = suggest(trial, "sgd", spaces["sgd"])
        study.tell(trial, 0.0)
        assert hp == {"lr": 0.05, "weight_decay": 0.0, "momentum": hp["momentum"]}
        assert hp["momentum"] in (0.9, 0.95)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"lr": {"low": 1e-1, "high": 1e-4}}, "space.lr must be a range with low < high"),
        ({"lr": {"low": 0.0, "high": 1.0, "log": True}}, r"space.lr.low must be > 0 with log"),
        ({"lr": {"low": 1e-3}}, "space.lr must be a table with both low and high"),
        ({"lr": {"low": 1e-3, "high": 1.0, "scale": 2}}, "space.lr must be a table of"),
        ({"lr": "fast"}, "space.lr must be a number or a table"),
        ({"lr": math.nan}, "space.lr must be a number or a table"),
        ({"momentum": 0.9}, r"space.momentum must be a hyper-parameter adamsrt takes"),
        ({"sgd": {"betas": 0.9}}, r"space.sgd must be a table of \['lr'"),
        ({"sgd": {"momentum": {"choices": []}}}, "space.sgd.momentum.choices must be a non-empty"),
        ({"sgd": {"momentum": {"grid": [0.9, 0.9]}}}, "must be a list without repeats"),
        ({"sgd": {"momentum": -0.5}}, r"space.sgd.momentum must be accepted by sgd"),
        ({"adamsrt": {"beta2": {"low": 0.5, "high": 2.0}}}, r"accepted by adamsrt"),
        (
            {"lr": {"low": 1e-3, "high": 1e-1, "step": 0.01, "log": True}},
            "step must be a positive",
        ),
        ({"weight_decay": {"low": 1e-7, "high": 1e-2, "zero_below": 1.0}}, "zero_below must be"),
        ({"sgd": {"lr": {"grid": [0.1]}}}, r"all grid .* but got \"grid \['lr'\] beside searched"),
        ({"lamb": {"lr": 0.1}}, "space must be a table of preset"),
        ({"preset": "huge"}, r"space.preset must be one of \['default', 'paper-grid'\]"),
        ([1, 2], "space must be a preset name"),
    ],
)
def test_each_bad_space_is_one_line_naming_key_and_rule(tmp_path, raw, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_space(
            {"preset": "default", **raw} if isinstance(raw, dict) else raw, ("adamsrt", "sgd")
        )
    assert "\n" not in str(info.value)
    # Through a spec file: the same line, with the file's name.
    path = tmp_path / "t.toml"
    path.write_text(SPEC)
    with pytest.raises(SpecError, match=message) as info:
        load_spec(path, {"space": raw})
    assert str(info.value).startswith(f"{path} (with command-line overrides): ")


def test_a_user_grid_makes_a_grid_study_of_every_combination(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(
        SPEC
        + """
[space]
weight_decay = { grid = [0.0, 1e-4, 5e-4] }
[space.adamsrt]
lr = { grid = [1e-3, 3e-3] }
[space.sgd]
lr = 0.1
momentum = { grid = [0.8, 0.9] }
"""
    )
    spec = load_spec(path)
    assert spec.sampler_kind == "grid"
    assert [spec.trials_for(o) for o in spec.optimizers] == [6, 6]
    space = spec.spaces["adamsrt"]
    points = [grid_point(space, i) for i in range(grid_size(space))]
    assert sorted((p["lr"], p["weight_decay"]) for p in points) == sorted(
        itertools.product([1e-3, 3e-3], [0.0, 1e-4, 5e-4])
    )
    assert spec.study_name("sgd") == "t-digits-resnet20-sgd-custom"


def _grid_spec(path, optimizers, axes):
    tables = {"": {}, **{opt: {} for opt in optimizers}}
    for key, values in axes.items():
        table, _, name = key.rpartition(".")
        tables[table][name] = values
    text = SPEC.replace('["adamsrt", "sgd"]', repr(list(optimizers)).replace("'", '"'))
    for table, entries in tables.items():
        text += f"[space{'.' + table if table else ''}]\n"
        text += "".join(f"{n} = {{ grid = {list(v)!r} }}\n" for n, v in entries.items())
    path.write_text(text)
    return path


def test_a_huge_grid_is_refused_without_being_enumerated(tmp_path):
    axes = {
        "lr": [0.1 * (i + 1) for i in range(10)],
        "weight_decay": [1e-5 * (i + 1) for i in range(10)],
        "sgd.momentum": [0.5 + 0.01 * i for i in range(40)],
        "adamsrt.eps": [1e-8 * (i + 1) for i in range(2000)],
    }
    with pytest.raises(
        SpecError, match=r"space\.adamsrt must be a grid of at most 100000 points, but got 200000$"
    ):
        load_spec(_grid_spec(tmp_path / "t.toml", ("adamsrt", "sgd"), axes))
    # 10 * 10 * 40 = 4,000 points: accepted, and point 3,999 is the last combination.
    del axes["adamsrt.eps"]
    spec = load_spec(_grid_spec(tmp_path / "t.toml", ("sgd",), axes))
    assert spec.trials_for("sgd") == 4000
    assert grid_point(spec.spaces["sgd"], 3999) == {
        "lr": 1.0,
        "weight_decay": 1e-4,
        "momentum": pytest.approx(0.89),
    }


def test_checking_a_space_builds_no_optimizer(tmp_path):
    # Validating every value of every optimizer's space must not pull in torch's compiler
    # (1-5 s in each driver, runner and CLI call that never trains).
    path = tmp_path / "t.toml"
    path.write_text(SPEC.replace('["adamsrt", "sgd"]', str(list(ALL)).replace("'", '"')))
    code = (
        "import sys\n"
        "from search import load_spec\n"
        f"spec = load_spec({str(path)!r})\n"
        "assert len(spec.spaces) == 7\n"
        "print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
