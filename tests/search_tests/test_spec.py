"""Study specs: the shipped files load, bad files give one line naming file, key and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from search import SpecError, load_spec

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
        ('compile = "yes"\n', r"compile must be a bool, but got 'yes'"),
        ("[confirm]\ntop = 2\n", r"confirm must be top and seeds both 0 or both positive"),
        ("[confirm]\ntop = -1\nseeds = 2\n", r"confirm\.top must be a non-negative integer"),
        (
            'space = "huge"\n',
            r"space\.preset must be one of \['default', 'paper-grid'\], but got 'huge'",
        ),
        ('sampler = "grid"\n', r"sampler must be 'grid' exactly when the space is a grid"),
        (
            'space = "paper-grid"\nsampler = "tpe"\n',
            r"sampler must be 'grid' exactly when the space",
        ),
        ("n_trials = 100001\n", r"n_trials must be at most 100000, but got 100001"),
        (
            "n_trials = 3\n[confirm]\ntop = 4\nseeds = 1\n",
            r"confirm\.top must be at most the trial count",
        ),
        ("[confirm]\ntop = 1\nseeds = 2147483647\n", r"confirm\.seeds must be at most 1000"),
        ('augment = "yes"\n', r"augment must be a bool, but got 'yes'"),
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
            r"model must be one of \['resnet18', 'resnet20', 'vgg16'\] or a 'package.module:function' "
            r"import path, but got 'resnet50'",
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
    for path, message in (
        (tmp_path, "must be a TOML file, but got a directory"),
        (binary, "must be UTF-8 text, but byte 8 is not"),
    ):
        with pytest.raises(SpecError, match=message) as info:
            load_spec(path)
        assert "\n" not in str(info.value)


def test_a_model_and_dataset_may_be_import_paths(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(
        GOOD.replace('"digits"', '"my_data.cifar:load"').replace('"resnet20"', '"my_nets:tiny"')
    )
    spec = load_spec(path)
    assert spec.study_name("sgd") == "t-my_data.cifar:load-my_nets:tiny-sgd-default"


def test_command_line_changes_merge_into_the_spec_tables(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(GOOD + "[pruner]\nkind = 'median'\nmin_resource = 2\n")
    spec = load_spec(path, {"seed": 7, "pruner": {"min_resource": 3}, "space": {"lr": 0.01}})
    assert (spec.seed, spec.pruner.kind, spec.pruner.min_resource) == (7, "median", 3)
    # A preset name extended by entries keeps its preset.
    assert spec.spaces["sgd"]["lr"].value == 0.01 and "momentum" in spec.spaces["sgd"]
    assert spec.study_name("sgd").endswith("-custom")
    with pytest.raises(SpecError, match=r"\(with command-line overrides\): seed must be"):
        load_spec(path, {"seed": -1})
