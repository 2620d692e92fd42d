"""The best-hyper-parameter table: look entries up, read the file, and write it back.

``best_hyper_parameters.py`` is plain data,
``BEST_HYPER_PARAMETERS[dataset][model][optimizer] = {kwarg: value}`` plus ``PROVENANCE``
(``"dataset/model/optimizer"`` -> where a searched entry came from). The committed file is
exactly ``render_best_hyper_parameters(*load_best_hyper_parameters(path))``, so an exporter can
read it, merge new winners and rewrite it without touching the rest.
"""

from __future__ import annotations

import copy
import json
import math
import os
from importlib.util import find_spec
from pathlib import Path
from typing import Any

__all__ = [
    "HYPER_PARAMETERS_FILE",
    "HyperParameterTable",
    "Provenance",
    "find_best_hyper_parameters",
    "load_best_hyper_parameters",
    "lookup_hyper_parameters",
    "parse_best_hyper_parameters",
    "render_best_hyper_parameters",
]

#: dataset -> model -> optimizer -> optimizer keyword arguments.
HyperParameterTable = dict[str, dict[str, dict[str, dict[str, Any]]]]
#: "dataset/model/optimizer" -> {"study": ..., "trial": ..., "value": ..., "date": ...}.
Provenance = dict[str, dict[str, Any]]

#: The table's file name, and its module's name without ``.py``.
HYPER_PARAMETERS_FILE = "best_hyper_parameters.py"

_HEADER = '''"""Best hyper-parameters per dataset, model and optimizer, read by training_example.py.

Generated and merged by export_best.py (with training.render_best_hyper_parameters): it
rewrites this whole file in this exact layout. It may be edited by hand; keep it plain data.

BEST_HYPER_PARAMETERS[dataset][model][optimizer] holds every keyword argument passed to the
optimizer. The CIFAR and SVHN entries are Table 4 (Appendix E) of Roburin, de Mont-Marin et al.,
"Spherical Perspective on Learning with Batch Norm" (arXiv:2006.13382), and the reference
best_hyper_parameters.py: beta1 0.9, eps 1e-8, momentum 0.9; lr 0.1 (sgd, sgdmrt), 1e-2
(adamg), 1e-3 (adam, adamw, adams, adamsrt). cifar10/resnet20/adamw has weight decay 1e-2
because the reference file gave none there, so torch's AdamW default applied. The digits
entries (the offline default dataset, not in the paper) copy cifar10/resnet20, and so do those
of the worked example of a dataset and model of one's own, named by import path
(examples/digits_mobilenet.py).

PROVENANCE["dataset/model/optimizer"] records the search that produced an entry (study,
trial number, value, date); entries without one come from the paper.
"""
'''


def find_best_hyper_parameters() -> Path:
    """The table read by default: ``./best_hyper_parameters.py`` in the working directory if
    there is one, else the source of the importable ``best_hyper_parameters`` module (the
    installed one, or the repository's beside a script run from it). It is only read.

    Raises:
        FileNotFoundError: neither exists.
    """
    local = Path(HYPER_PARAMETERS_FILE)
    if local.is_file():
        return local
    spec = find_spec(HYPER_PARAMETERS_FILE.removesuffix(".py"))
    origin = None if spec is None else spec.origin
    if origin is None or not origin.endswith(".py") or not Path(origin).is_file():
        raise FileNotFoundError(
            f"hyper-parameter file not found: no {HYPER_PARAMETERS_FILE} in the working "
            f"directory {os.getcwd()} and no installed best_hyper_parameters module"
        )
    return Path(origin)


def load_best_hyper_parameters(
    path: str | os.PathLike[str] | None = None,
) -> tuple[HyperParameterTable, Provenance]:
    """Execute the file at ``path`` (default: :func:`find_best_hyper_parameters`) and return
    its ``BEST_HYPER_PARAMETERS`` and ``PROVENANCE`` (``{}`` if absent), validated."""
    path = find_best_hyper_parameters() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"hyper-parameter file not found: {path}")
    return parse_best_hyper_parameters(path.read_text(encoding="utf-8"), path)


def parse_best_hyper_parameters(
    text: str, source: str | os.PathLike[str] = "<best_hyper_parameters>"
) -> tuple[HyperParameterTable, Provenance]:
    """What :func:`load_best_hyper_parameters` returns, for the file text ``text``.

    The text runs in a namespace of its own, outside the import system: no module is
    registered and no bytecode is cached (an exporter checks its output this way).
    """
    namespace: dict[str, Any] = {"__name__": "best_hyper_parameters"}
    try:
        exec(compile(text, os.fspath(source), "exec"), namespace)
    except Exception as err:  # a hand-edited file: any failure is the file's, say which
        raise ValueError(f"could not load {source}: {type(err).__name__}: {err}") from err
    if "BEST_HYPER_PARAMETERS" not in namespace:
        raise ValueError(f"{source} must define BEST_HYPER_PARAMETERS, but it does not")
    table, provenance = namespace["BEST_HYPER_PARAMETERS"], namespace.get("PROVENANCE", {})
    _check_table(table)
    _check_provenance(provenance)
    return table, provenance


def lookup_hyper_parameters(
    dataset: str, model: str, optimizer: str, table: HyperParameterTable | None = None
) -> dict[str, Any]:
    """A copy of ``table[dataset][model][optimizer]`` (default: the table of
    :func:`load_best_hyper_parameters`).

    Raises ``ValueError`` naming what the table has at the level where the lookup failed.
    """
    if table is None:
        table, _ = load_best_hyper_parameters()
    level: Any = table
    for depth, (kind, key) in enumerate(
        (("dataset", dataset), ("model", model), ("optimizer", optimizer))
    ):
        if key not in level:
            where = "/".join((dataset, model, optimizer)[:depth]) or "the table"
            raise ValueError(
                f"no best hyper-parameters for {dataset}/{model}/{optimizer}: "
                f"{kind} must be one of {sorted(level)} under {where}, but got {key!r}"
            )
        level = level[key]
    return copy.deepcopy(level)


def render_best_hyper_parameters(table: HyperParameterTable, provenance: Provenance) -> str:
    """The text of ``best_hyper_parameters.py`` for ``table`` and ``provenance``.

    Deterministic: keys sorted, floats as ``repr``, nested dicts one key per line (the layout
    ``ruff format`` keeps), so equal data always gives equal text.
    """
    _check_table(table)
    _check_provenance(provenance)
    return (
        f"{_HEADER}\n"
        f"BEST_HYPER_PARAMETERS = {_literal(table, 0)}\n\n"
        f"PROVENANCE = {_literal(provenance, 0)}\n"
    )


def _literal(value: Any, indent: int) -> str:
    """Python source for ``value``; dicts always expanded, with trailing commas."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = " " * (indent + 4)
        items = "".join(
            f"{inner}{_literal(k, indent + 4)}: {_literal(value[k], indent + 4)},\n"
            for k in sorted(value)
        )
        return "{\n" + items + " " * indent + "}"
    if isinstance(value, tuple | list):
        body = ", ".join(_literal(v, indent) for v in value)
        if isinstance(value, list):
            return f"[{body}]"
        return f"({body},)" if len(value) == 1 else f"({body})"
    if isinstance(value, str):
        # The quotes ruff format would choose: double, unless only single avoid escapes.
        return repr(value) if '"' in value and "'" not in value else json.dumps(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"hyper-parameter values must be finite, but got {value!r}")
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    raise ValueError(
        "hyper-parameter values must be numbers, strings, bools, None, tuples, lists or "
        f"dicts, but got {type(value).__name__} {value!r}"
    )


def _check_table(table: object) -> None:
    _check_dict("BEST_HYPER_PARAMETERS", table, depth=4)


def _check_provenance(provenance: object) -> None:
    _check_dict("PROVENANCE", provenance, depth=2)


def _check_dict(name: str, value: object, depth: int) -> None:
    """``value`` is a dict with str keys, nested ``depth`` levels deep."""
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict, but got {type(value).__name__} {value!r}")
    for key, inner in value.items():
        if not isinstance(key, str):
            raise ValueError(f"{name} keys must be str, but got {key!r}")
        if depth > 1:
            _check_dict(f"{name}[{key!r}]", inner, depth - 1)
