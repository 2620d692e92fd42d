"""One validation rule per value, shared by the search's study specs, ``TrainConfig`` and
``build_loaders``.

Each ``check_*`` returns nothing and raises ``ValueError(f"{name} must be {rule}, but got
{value!r}")``: the same words wherever the value comes from, so a caller may prefix a source
(``f"{spec_file}: {err}"``). ``bool`` is not an integer here (``True`` is refused as a size).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "IMPORT_PATH_RULE",
    "MAX_SEED",
    "check_bool",
    "check_name_or_import_path",
    "check_non_negative_int",
    "check_positive_int",
    "check_seed",
    "check_train_subset",
    "is_import_path",
]

#: The largest seed: numpy's generators behind Optuna's samplers take 32-bit seeds, and
#: ``seed + k`` for confirmation runs must stay a valid seed on every platform.
MAX_SEED = 2**31 - 1

#: How an import path is described in messages.
IMPORT_PATH_RULE = "a 'package.module:function' import path"

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_IMPORT_PATH = re.compile(rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})*:{_IDENTIFIER}(?:\.{_IDENTIFIER})*")


def _fail(name: str, rule: str, value: object) -> ValueError:
    return ValueError(f"{name} must be {rule}, but got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(name: str, value: object) -> None:
    """``value`` is an ``int`` ≥ 1."""
    if not _is_int(value) or value < 1:  # type: ignore[operator]
        raise _fail(name, "a positive integer", value)


def check_non_negative_int(name: str, value: object) -> None:
    """``value`` is an ``int`` ≥ 0."""
    if not _is_int(value) or value < 0:  # type: ignore[operator]
        raise _fail(name, "a non-negative integer", value)


def check_seed(name: str, value: object) -> None:
    """``value`` is an ``int`` in ``[0, MAX_SEED]``."""
    if not _is_int(value) or not 0 <= value <= MAX_SEED:  # type: ignore[operator]
        raise _fail(name, f"an integer from 0 to {MAX_SEED}", value)


def check_train_subset(name: str, value: object, available: int | None = None) -> None:
    """``value`` is ``None`` or an ``int`` ≥ 1, and at most ``available`` when that is known
    (the number of training images left once the validation split is drawn)."""
    if value is None:
        return
    if not _is_int(value) or value < 1:  # type: ignore[operator]
        raise _fail(name, "None or a positive integer", value)
    if available is not None and value > available:  # type: ignore[operator]
        raise _fail(name, f"an integer from 1 to {available} (the training split)", value)


def check_bool(name: str, value: object) -> None:
    """``value`` is ``True`` or ``False`` (not 0/1)."""
    if not isinstance(value, bool):
        raise _fail(name, "a bool", value)


def is_import_path(value: object) -> bool:
    """Whether ``value`` is written ``"package.module:function"`` (dotted names on both
    sides of one colon; the function part may be ``Class.method``). Syntax only."""
    return isinstance(value, str) and _IMPORT_PATH.fullmatch(value) is not None


def check_name_or_import_path(name: str, value: object, choices: Sequence[str]) -> None:
    """``value`` is one of ``choices`` (a registry's names) or an import path (syntax only:
    whether it imports is checked when it is used)."""
    if value in choices or is_import_path(value):
        return
    raise _fail(name, f"one of {list(choices)} or {IMPORT_PATH_RULE}", value)
