"""data's validation rules: one rule per value, "NAME must be RULE, but got VALUE" exactly."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from data import (
    MAX_SEED,
    check_bool,
    check_name_or_import_path,
    check_non_negative_int,
    check_positive_int,
    check_seed,
    check_train_subset,
    is_import_path,
)

POSITIVE = "a positive integer"
SEED = "an integer from 0 to 2147483647"


@pytest.mark.parametrize(
    ("check", "value", "rule"),
    [
        (check_positive_int, 0, POSITIVE),
        (check_positive_int, -3, POSITIVE),
        (check_positive_int, 2.0, POSITIVE),
        (check_positive_int, True, POSITIVE),
        (check_positive_int, "4", POSITIVE),
        (check_positive_int, None, POSITIVE),
        (check_non_negative_int, -1, "a non-negative integer"),
        (check_non_negative_int, False, "a non-negative integer"),
        (check_seed, -1, SEED),
        (check_seed, 2**31, SEED),
        (check_seed, True, SEED),
        (check_seed, 1.0, SEED),
        (check_train_subset, 0, "None or a positive integer"),
        (check_train_subset, 1.5, "None or a positive integer"),
        (check_bool, 1, "a bool"),
        (check_bool, None, "a bool"),
    ],
)
def test_refusals_name_the_rule_and_echo_the_value(
    check: Callable[[str, Any], None], value: Any, rule: str
) -> None:
    with pytest.raises(ValueError) as info:
        check("knob", value)
    assert str(info.value) == f"knob must be {rule}, but got {value!r}"


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (check_positive_int, 1),
        (check_positive_int, 10**12),
        (check_non_negative_int, 0),
        (check_seed, 0),
        (check_seed, 2**31 - 1),
        (check_train_subset, None),
        (check_train_subset, 1),
        (check_bool, True),
        (check_bool, False),
    ],
)
def test_accepted_values(check: Callable[[str, Any], None], value: Any) -> None:
    check("knob", value)


def test_max_seed_is_numpy_s_32_bit_limit() -> None:
    assert MAX_SEED == 2147483647
    check_seed("seed", MAX_SEED)


def test_train_subset_against_the_training_split() -> None:
    check_train_subset("train_subset", 38, available=38)
    with pytest.raises(ValueError) as info:
        check_train_subset("train_subset", 39, available=38)
    assert str(info.value) == (
        "train_subset must be an integer from 1 to 38 (the training split), but got 39"
    )


def test_a_prefix_gives_a_source() -> None:
    """The search prefixes its spec file: the message must read as one sentence after it."""
    with pytest.raises(ValueError) as info:
        check_seed("seed", -1)
    assert re.fullmatch(r"seed must be .+, but got -1", str(info.value))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pkg.mod:fn", True),
        ("mod:fn", True),
        ("pkg.sub.mod:Factory.build", True),
        ("_private._x:_y", True),
        ("pkg.mod", False),
        ("pkg.mod:", False),
        (":fn", False),
        ("pkg..mod:fn", False),
        ("pkg.mod:fn:g", False),
        ("pkg-mod:fn", False),
        ("1pkg:fn", False),
        ("pkg.mod:fn()", False),
        (" pkg.mod:fn", False),
        ("cifar10", False),
        (None, False),
        (3, False),
    ],
)
def test_import_path_syntax(value: Any, expected: bool) -> None:
    assert is_import_path(value) is expected


def test_name_or_import_path() -> None:
    check_name_or_import_path("model", "resnet20", ["resnet18", "resnet20"])
    check_name_or_import_path("model", "nets.small:build", ["resnet18", "resnet20"])
    with pytest.raises(ValueError) as info:
        check_name_or_import_path("model", "resnet50", ["resnet18", "resnet20"])
    assert str(info.value) == (
        "model must be one of ['resnet18', 'resnet20'] or a 'package.module:function' "
        "import path, but got 'resnet50'"
    )
