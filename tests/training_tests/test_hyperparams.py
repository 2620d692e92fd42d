"""best_hyper_parameters.py loads and renders; lookups, and the load/render round trip.

The committed file is rewritten by export_best.py with search winners, so no test reads
values from it: expected values come from the paper's Table 4 in tests/conftest.py.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from torch import nn

import training._hyperparams
from optim import create_optimizer, list_optimizers
from training import (
    find_best_hyper_parameters,
    load_best_hyper_parameters,
    lookup_hyper_parameters,
    render_best_hyper_parameters,
)

from ..conftest import PAPER_TABLE_4

ROOT = Path(__file__).resolve().parents[2]
ADAM_FAMILY = {"adam", "adamw", "adamg", "adams", "adamsrt"}
WEIGHT_DECAY_GRID = {0.0} | {5e-4 * 2**-k for k in range(7)}


def test_committed_file_loads_and_is_exactly_its_rendering() -> None:
    committed = ROOT / "best_hyper_parameters.py"
    table, provenance = load_best_hyper_parameters(committed)
    assert render_best_hyper_parameters(table, provenance) == committed.read_text()


def test_the_default_table_is_the_working_directory_s_then_the_installed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no best_hyper_parameters.py here
    installed = importlib.util.find_spec("best_hyper_parameters").origin
    assert find_best_hyper_parameters() == Path(installed)
    assert load_best_hyper_parameters() == load_best_hyper_parameters(installed)
    local = {"d": {"m": {"sgd": {"lr": 0.5}}}}
    (tmp_path / "best_hyper_parameters.py").write_text(f"BEST_HYPER_PARAMETERS = {local!r}\n")
    assert find_best_hyper_parameters() == Path("best_hyper_parameters.py")
    assert load_best_hyper_parameters() == (local, {})
    assert lookup_hyper_parameters("d", "m", "sgd") == {"lr": 0.5}


def test_no_table_anywhere_is_a_file_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(training._hyperparams, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"no best_hyper_parameters\.py in the working"):
        load_best_hyper_parameters()


def test_no_path_is_computed_from_a_source_file() -> None:
    """A non-editable install must never write (or look for data) beside its own code."""
    sources = [
        p for package in ("data", "training", "models") for p in (ROOT / package).rglob("*.py")
    ]
    assert len(sources) > 10
    assert [p for p in sources if "__file__" in p.read_text()] == []


def test_table_4_has_seven_settings_of_seven_optimizers_on_the_paper_grid() -> None:
    settings = [(d, m) for d in PAPER_TABLE_4 for m in PAPER_TABLE_4[d]]
    assert len(settings) == 7
    for dataset, model in settings:
        entries = PAPER_TABLE_4[dataset][model]
        assert sorted(entries) == list_optimizers()
        for name, hparams in entries.items():
            create_optimizer(name, nn.Linear(2, 2), **hparams)  # every key is accepted
            if name in ADAM_FAMILY:
                assert hparams["betas"][1] in (0.99, 0.999)
            # (*) the reference file left AdamW's weight decay out: torch's default 1e-2.
            if (dataset, model, name) != ("cifar10", "resnet20", "adamw"):
                assert hparams["weight_decay"] in WEIGHT_DECAY_GRID, (dataset, model, name)


def test_table_4_renders_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "best_hyper_parameters.py"
    path.write_text(render_best_hyper_parameters(PAPER_TABLE_4, {}))
    assert load_best_hyper_parameters(path) == (PAPER_TABLE_4, {})


def test_lookup_returns_a_copy() -> None:
    hparams = lookup_hyper_parameters("cifar100", "resnet18", "sgd", PAPER_TABLE_4)
    assert hparams == {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}
    hparams["lr"] = 1.0
    assert lookup_hyper_parameters("cifar100", "resnet18", "sgd", PAPER_TABLE_4)["lr"] == 0.1


@pytest.mark.parametrize(
    ("key", "match"),
    [
        (
            ("mnist", "resnet18", "sgd"),
            r"dataset must be one of \['cifar10', 'cifar100', 'svhn'\] under the table, "
            r"but got 'mnist'",
        ),
        (
            ("cifar100", "resnet20", "sgd"),
            r"model must be one of \['resnet18', 'vgg16'\] under cifar100, but got 'resnet20'",
        ),
        (
            ("svhn", "vgg16", "lamb"),
            r"optimizer must be one of \['adam', .*'sgdmrt'\] under svhn/vgg16, but got 'lamb'",
        ),
    ],
)
def test_lookup_of_a_missing_entry_lists_what_exists(
    key: tuple[str, str, str], match: str
) -> None:
    with pytest.raises(
        ValueError, match=rf"^no best hyper-parameters for {'/'.join(key)}: {match}$"
    ):
        lookup_hyper_parameters(*key, PAPER_TABLE_4)


def test_render_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    table = {
        "svhn": {"vgg16": {"sgd": {"weight_decay": 0.0, "lr": 0.1, "momentum": 0.9}}},
        "digits": {"resnet20": {"adam": {"lr": 3e-3, "betas": (0.9, 0.999), "eps": 1e-8}}},
    }
    provenance = {
        "digits/resnet20/adam": {
            "study": 'digits "quick"',
            "trial": 17,
            "value": 0.975,
            "date": "2026-01-02",
            "complete": True,
            "note": None,
        }
    }
    text = render_best_hyper_parameters(table, provenance)
    reordered = {k: table[k] for k in reversed(table)}
    assert render_best_hyper_parameters(reordered, provenance) == text
    assert text.index('"digits"') < text.index('"svhn"')
    path = tmp_path / "best.py"
    path.write_text(text)
    assert load_best_hyper_parameters(path) == (table, provenance)


def test_load_leaves_sys_modules_alone(tmp_path: Path) -> None:
    path = tmp_path / "best_hyper_parameters.py"
    path.write_text(render_best_hyper_parameters({}, {}))
    before = set(sys.modules)
    assert load_best_hyper_parameters(path) == ({}, {})
    assert set(sys.modules) == before


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        (None, FileNotFoundError, r"^hyper-parameter file not found: "),
        ("BEST_HYPER_PARAMETERS = {", ValueError, r"^could not load .*: SyntaxError"),
        ("X = 1", ValueError, r"must define BEST_HYPER_PARAMETERS, but it does not$"),
        (
            "BEST_HYPER_PARAMETERS = {'c': []}",
            ValueError,
            r"^BEST_HYPER_PARAMETERS\['c'\] must be a dict, but got list",
        ),
        (
            "BEST_HYPER_PARAMETERS = {}\nPROVENANCE = {1: {}}",
            ValueError,
            r"^PROVENANCE keys must be str, but got 1$",
        ),
    ],
)
def test_load_errors(tmp_path: Path, text: str | None, error: type[Exception], match: str) -> None:
    path = tmp_path / "best.py"
    if text is not None:
        path.write_text(text)
    with pytest.raises(error, match=match):
        load_best_hyper_parameters(path)


@pytest.mark.parametrize("value", [float("nan"), object(), {1, 2}])
def test_render_refuses_values_that_are_not_plain_literals(value: object) -> None:
    with pytest.raises(ValueError, match="hyper-parameter values must be"):
        render_best_hyper_parameters({"d": {"m": {"o": {"lr": value}}}}, {})
