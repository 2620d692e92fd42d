"""``TrainConfig`` validation: one-line "X must be ..., but got ..." ValueErrors."""

from __future__ import annotations

from typing import Any

import pytest

from training import TrainConfig

from .conftest import tiny_config


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            {"dataset": "mnist"},
            r"^dataset must be one of \['cifar10', .*\] or a 'package.module:function' import "
            r"path, but got 'mnist'$",
        ),
        (
            {"model": "resnet50"},
            r"^model must be one of \['resnet18', .*\] or a 'package.module:function' import "
            r"path, but got 'resnet50'$",
        ),
        ({"model": "pkg.mod:"}, r"^model must be one of .*, but got 'pkg.mod:'$"),
        ({"dataset": "pkg mod:f"}, r"^dataset must be one of .*, but got 'pkg mod:f'$"),
        ({"dataset": ":f"}, r"^dataset must be one of .*, but got ':f'$"),
        (
            {"optimizer": "lamb", "hparams": {}},
            r"^optimizer must be one of \['adam', .*\], but got 'lamb'$",
        ),
        ({"hparams": [("lr", 1.0)]}, r"^hparams must be a mapping, but got"),
        (
            {"hparams": {"lr": 1e-3, "momentum": 0.9}},
            r"^hparams must be keyword arguments of optimizer 'adam' .*but got unknown \['momentum'\]$",
        ),
        ({"epochs": 0}, r"^epochs must be a positive integer, but got 0$"),
        ({"epochs": 2.0}, r"^epochs must be a positive integer, but got 2.0$"),
        ({"batch_size": True}, r"^batch_size must be a positive integer, but got True$"),
        ({"seed": -1}, r"^seed must be an integer from 0 to 2147483647, but got -1$"),
        ({"seed": 2**31}, r"^seed must be an integer from 0 to 2147483647, but got 2147483648$"),
        ({"train_subset": 0}, r"^train_subset must be None or a positive integer, but got 0$"),
        ({"device": "tpu"}, r"^device must be 'auto', 'cpu', 'cuda' or 'cuda:N', but got 'tpu'$"),
        ({"device": 0}, r"^device must be 'auto', .*, but got 0$"),
        ({"bf16": 1}, r"^bf16 must be a bool, but got 1$"),
        ({"augment": "yes"}, r"^augment must be a bool, but got 'yes'$"),
        ({"metrics_path": 3}, r"^metrics_path must be a path or None, but got 3$"),
        ({"resume": True}, r"^resume must be False when checkpoint_dir is None, but got True$"),
    ],
)
def test_invalid_values(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny_config(**overrides)


def test_hparams_are_copied_and_lists_become_tuples() -> None:
    hparams = {"lr": 1e-3, "betas": [0.9, 0.99]}
    config = tiny_config(hparams=hparams)
    hparams["lr"] = 1.0
    assert config.hparams == {"lr": 1e-3, "betas": (0.9, 0.99)}
    assert config == tiny_config(hparams={"lr": 1e-3, "betas": (0.9, 0.99)})


def test_to_dict_is_json_ready(tmp_path: Any) -> None:
    config = tiny_config(checkpoint_dir=tmp_path, metrics_path=tmp_path / "m.jsonl")
    out = config.to_dict()
    assert out["checkpoint_dir"] == str(tmp_path) and out["metrics_path"].endswith("m.jsonl")
    assert TrainConfig(**{**out, "checkpoint_dir": tmp_path}) == config


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dataset", "my_pkg.data:load"),
        ("model", "my_pkg.nets.small:Factory.build"),
        ("model", "nets:build"),
    ],
)
def test_import_paths_are_accepted_without_being_imported(field: str, value: str) -> None:
    config = tiny_config(**{field: value})  # resolution happens when the run starts
    assert getattr(config, field) == value


def test_seed_bounds_are_inclusive() -> None:
    assert tiny_config(seed=0).seed == 0
    assert tiny_config(seed=2**31 - 1).seed == 2**31 - 1


def test_augment_is_part_of_a_run_s_identity() -> None:
    assert tiny_config().augment is None
    assert tiny_config(augment=True).result_fields()["augment"] is True
