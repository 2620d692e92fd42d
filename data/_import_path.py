"""Resolving a ``"package.module:function"`` import path (a user's dataset or model)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ._rules import IMPORT_PATH_RULE, is_import_path

__all__ = ["SettingError", "first_line", "import_callable"]


class SettingError(ValueError):
    """A dataset or model given by import path cannot be used: it does not import, is not
    callable, raises, or returns the wrong thing. ``str()`` is one line naming the import path
    and the rule it breaks; the original exception, if any, is the ``__cause__``."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """``"Type: first line of the message"``, at most ``limit`` characters of message."""
    lines = str(err).strip().splitlines()
    line = lines[0] if lines else ""
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    return f"{type(err).__name__}: {line}" if line else type(err).__name__


def import_callable(path: str, what: str) -> Callable[..., Any]:
    """The callable that ``path`` (``"package.module:function"``, or ``module:Class.method``)
    names; ``what`` ("dataset", "model") prefixes every error.

    Raises:
        SettingError: ``path`` is not an import path, its module does not import (or raises
            while importing), it has no such attribute, or the attribute is not callable.
    """
    if not is_import_path(path):
        raise SettingError(f"{what} must be {IMPORT_PATH_RULE}, but got {path!r}")
    module_name, _, attribute = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as err:  # the user's module: ImportError, or anything its body raises
        raise SettingError(
            f"{what} {path!r} must import, but importing {module_name!r} raised {first_line(err)}"
        ) from err
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SettingError(
                f"{what} {path!r} must name an attribute of {module_name!r}, "
                f"but it has no {attribute!r}"
            ) from None
    if not callable(obj):
        raise SettingError(
            f"{what} {path!r} must name a function, but {attribute!r} is a {type(obj).__name__}"
        )
    return obj
