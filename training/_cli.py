"""The command-line convention of the project's scripts (training_example.py, run_search.py,
export_best.py): every error is one line on stderr, ``error: ...``, with no usage block and no
traceback; a usage error exits with status 2. ``--help`` is argparse's own."""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import sys
from types import ModuleType
from typing import NoReturn, TextIO

__all__ = ["ArgumentParser", "error_line", "freeze_at_exit", "import_or_exit", "print_error"]


def error_line(message: object) -> str:
    """``"error: <message>"`` on one line: line breaks inside ``message`` become spaces and
    control characters are spelled out, so a terminal shows exactly one line."""
    text = " ".join(str(message).split("\n"))
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return f"error: {text}"


def print_error(message: object, file: TextIO | None = None) -> None:
    """Print :func:`error_line` of ``message`` to ``file`` (default: stderr)."""
    print(error_line(message), file=sys.stderr if file is None else file)


def freeze_at_exit() -> None:
    """At exit, freeze every object the script leaves (``gc.freeze``) so that the
    interpreter's last garbage collections skip them: once torch's compiler is imported that
    is some 390,000 objects and 1.2 s on a 2-core machine, spent after the work is done.

    Nothing is lost: what the scripts write is closed and flushed as it is written, the
    storages close their connections in their own exit hook (``search.close_storage``), and
    the interpreter flushes stdout and stderr itself. Calling it again changes nothing.
    """
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def import_or_exit(name: str) -> ModuleType:
    """Import ``name``; a module it needs that is not installed (an extra left out of the
    install) is one error line and exit 2."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        print_error(exc)
        raise SystemExit(2) from None


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one line, ``error: ... (see
    --help)``, on stderr, and exit 2.

    Example:
        >>> parser = ArgumentParser(prog="demo")
        >>> _ = parser.add_argument("--epochs", type=int)
        >>> parser.parse_args(["--epochs", "x"])  # doctest: +SKIP
        error: argument --epochs: invalid int value: 'x' (see --help)
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, error_line(f"{message} (see --help)") + "\n")
