"""Study specs: the shipped files load, bad files give one line naming file, key and value."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from search import SpecError, grid, load_spec, suggest
from search._space import PAPER_WEIGHT_DECAYS

STUDIES = Path(__file__).resolve().parents[2] / "studies"
PAPER_SETTINGS = {
    ("cifar10", "resnet20"),
    ("cifar10", "resnet18"),
    ("cifar10", "vgg16"),
    ("cifar100", "resnet18"),
    ("cifar100", "vgg16"),
    ("svhn", "resnet18"),
    ("svhn", "vgg16"),
}

GOOD = """
name = "t"
dataset = "digits"
model = "resnet20"
optimizers = ["adamsrt", "sgd"]
epochs = 3
"""


def test_shipped_specs_load_and_cover_the_paper_settings():
    specs = [load_spec(p) for p in sorted(STUDIES.glob("*.toml"))]
    settings = {(s.dataset, s.model) for s in specs if s.name == "paper"}
    assert settings == PAPER_SETTINGS
    demo = load_spec(STUDIES / "demo.toml")
    assert demo.dataset == "digits" and demo.resources.gpus_per_trial == 0


def test_study_names_are_unique_and_deterministic(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(GOOD)
    spec = load_spec(path)
    names = [spec.study_name(o) for o in spec.optimizers]
    assert names == ["t-digits-resnet20-adamsrt-default", "t-digits-resnet20-sgd-default"]
    assert load_spec(path).study_name("sgd") == names[1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("epoch = 3\n", r"t\.toml: unknown key 'epoch'"),
        ('[pruner]\nkind = "asha"\n', r"t\.toml: pruner\.kind must be one of .*, but got 'asha'"),
        ("[pruner]\nmin_resources = 1\n", r"unknown key 'pruner\.min_resources'"),
        (
            "[resources]\nworkers = 0\n",
            r"resources\.workers must be a positive integer, but got 0",
        ),
        ("[resources]\ngpus_per_trial = -0.5\n", r"gpus_per_trial must be a finite number ≥ 0"),
        ("[resources]\ngpus_per_trial = inf\n", r"gpus_per_trial must be a finite number ≥ 0"),
        ("[resources]\ncpus_per_trial = nan\n", r"cpus_per_trial must be a finite number ≥ 0"),
        (
            "seed = 4294967296\n",
            r"seed must be an integer from 0 to 2147483647, but got 4294967296",
        ),
        ("seed = -1\n", r"seed must be an integer from 0 to 2147483647, but got -1"),
        ("trial_timeout = 0\n", r"trial_timeout must be a positive number of seconds, but got 0"),
        ("trial_timeout = nan\n", r"trial_timeout must be a positive number of seconds"),
        ('compile = "yes"\n', r"compile must be true or false, but got 'yes'"),
        ("[confirm]\ntop = 2\n", r"confirm must be top and seeds both 0 or both positive"),
        ("[confirm]\ntop = -1\nseeds = 2\n", r"confirm\.top must be a non-negative integer"),
        ('space = "huge"\n', r"space must be one of \['default', 'paper-grid'\], but got 'huge'"),
        ('sampler = "grid"\n', r"sampler must be 'grid' exactly when space = 'paper-grid'"),
    ],
)
def test_bad_values_name_file_key_and_value(tmp_path, extra, message):
    path = tmp_path / "t.toml"
    top, _, tables = extra.partition("[")
    path.write_text(GOOD + top + ("[" + tables if tables else ""))
    with pytest.raises(SpecError, match=message):
        load_spec(path)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            '"resnet20"',
            '"resnet50"',
            r"model must be one of \['resnet18', 'resnet20', 'vgg16'\], but got 'resnet50'",
        ),
        ('"digits"', '"mnist"', r"dataset must be one of .*, but got 'mnist'"),
        ('"sgd"]', '"lamb"]', r"optimizers must be names from .*, but got 'lamb'"),
        ("epochs = 3", "epochs = 0", r"epochs must be a positive integer, but got 0"),
        ("epochs = 3", "", r"missing required key 'epochs'"),
        ("epochs = 3", "epochs = [", r"invalid TOML"),
    ],
)
def test_bad_setting_is_one_clear_line(tmp_path, old, new, message):
    path = tmp_path / "t.toml"
    path.write_text(GOOD.replace(old, new))
    with pytest.raises(SpecError, match=message) as info:
        load_spec(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_missing_file():
    with pytest.raises(SpecError, match="no such study spec"):
        load_spec("nowhere.toml")


def test_a_directory_or_binary_spec_is_one_clear_line(tmp_path):
    binary = tmp_path / "b.toml"
    binary.write_bytes(b'name = "\xff\xfe"\n')
    for path, message in ((tmp_path, "must be a TOML file, but got a directory"),
                          (binary, "must be UTF-8 text, but byte 8 is not")):  # fmt: skip
        with pytest.raises(SpecError, match=message) as info:
            load_spec(path)
        assert "\n" not in str(info.value)


def test_paper_grid_is_the_published_grid():
    axes = grid("adamsrt", "paper-grid")
    assert axes == {"weight_decay": list(PAPER_WEIGHT_DECAYS), "beta2": [0.99, 0.999]}
    assert PAPER_WEIGHT_DECAYS == (
        0.0,
        5e-4,
        2.5e-4,
        1.25e-4,
        6.25e-5,
        3.125e-5,
        1.5625e-5,
        7.8125e-6,
    )
    assert grid("sgdmrt", "paper-grid") == {"weight_decay": list(PAPER_WEIGHT_DECAYS)}
    assert grid("adam", "default") is None


@pytest.mark.parametrize(
    "optimizer", ["adams", "adamsrt", "adamg", "adam", "adamw", "sgd", "sgdmrt"]
)
def test_suggestions_are_full_hyper_parameters(optimizer):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_zero = False
    for _ in range(60):
        trial = study.ask()
        hp = suggest(trial, optimizer, "default")
        study.tell(trial, 0.0)
        assert hp["lr"] > 0 and hp["weight_decay"] >= 0
        seen_zero |= hp["weight_decay"] == 0
        if optimizer.startswith("sgd"):
            assert set(hp) == {"lr", "momentum", "weight_decay"}
        else:
            assert set(hp) == {"lr", "betas", "weight_decay", "eps"}
            assert 0.9 <= hp["betas"][1] < 1
    assert seen_zero, "zero weight decay must be reachable"
    grid_study = optuna.create_study(
        sampler=optuna.samplers.GridSampler(grid(optimizer, "paper-grid") or {}, seed=0)
    )
    trial = grid_study.ask()
    hp = suggest(trial, optimizer, "paper-grid")
    assert hp["weight_decay"] in PAPER_WEIGHT_DECAYS
    assert hp["lr"] == {"sgd": 0.1, "sgdmrt": 0.1, "adamg": 1e-2}.get(optimizer, 1e-3)
