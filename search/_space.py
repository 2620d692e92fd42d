"""Search spaces: declared in a spec's ``[space]`` table, turned into Optuna distributions, and
sampled by a trial into the optimizer's keyword arguments.

Entries are named after the trainer's hyper-parameters (``lr weight_decay momentum beta1 beta2
eps``, the flags of ``training_example.py``). ``[space]`` holds entries shared by every optimizer
of the spec, ``[space.<optimizer>]`` one optimizer's own, over the shared ones; ``preset``
starts from a named space (``search/presets/*.toml``, written in this same form). An entry is:

- a number: fixed;
- ``{ low, high }`` with optional ``log``, ``step``: Optuna's FloatDistribution;
- ``{ choices = [...] }``: Optuna's CategoricalDistribution;
- ``{ grid = [...] }``: an axis of a grid study (every combination trained exactly once);

and a range may add ``one_minus = true`` (the range is of 1 − value: β2 near 1 on a log scale)
or ``zero_below = x`` (a value below ``x`` means exactly 0: "none" stays reachable on a log
scale). Sampling computes nothing beyond that (Ray's rule for define-by-run spaces).
"""

from __future__ import annotations

import inspect
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution

from optim import check_hyperparameters, get_optimizer_info, list_optimizers

#: The trainer's hyper-parameter names, in the order hparams are written.
HPARAMS = ("lr", "weight_decay", "momentum", "beta1", "beta2", "eps")
PRESETS = ("default", "paper-grid")
#: The most points a grid may have: every one becomes a trial.
MAX_GRID_POINTS = 100_000
_ENTRY_KEYS = ("low", "high", "log", "step", "choices", "grid", "one_minus", "zero_below")


@dataclass(frozen=True)
class Entry:
    """One hyper-parameter of a space: ``fixed``, ``range``, ``choices`` or ``grid``."""

    kind: str
    value: float | None = None  # fixed
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[float, ...] = ()  # choices and grid
    one_minus: bool = False
    zero_below: float | None = None

    def param_name(self, name: str) -> str:
        return f"one_minus_{name}" if self.one_minus else name

    def values(self) -> tuple[float, ...]:
        """The values it can give (a range: its ends), for checking them up front."""
        if self.kind == "fixed":
            return (self.value,)
        if self.kind == "range":
            return tuple(self._value(v) for v in (self.low, self.high))
        return self.choices

    def sample(self, trial: optuna.Trial, name: str) -> float:
        if self.kind == "fixed":
            return self.value
        if self.kind in ("choices", "grid"):
            return trial.suggest_categorical(name, list(self.choices))
        raw = trial.suggest_float(
            self.param_name(name), self.low, self.high, log=self.log, step=self.step
        )
        return self._value(raw)

    def _value(self, raw: float) -> float:
        if self.zero_below is not None and raw < self.zero_below:
            return 0.0
        return 1.0 - raw if self.one_minus else raw

    def data(self) -> Any:
        """As a spec writes it (the study's record of its space)."""
        if self.kind == "fixed":
            return self.value
        if self.kind in ("choices", "grid"):
            return {self.kind: list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        for key, default in (("log", False), ("step", None), ("one_minus", False)):
            if getattr(self, key) != default:
                out[key] = getattr(self, key)
        if self.zero_below is not None:
            out["zero_below"] = self.zero_below
        return out


#: One optimizer's space: hyper-parameter name → entry.
Space = Mapping[str, Entry]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _rule(key: str, rule: str, value: Any) -> ValueError:
    return ValueError(f"{key} must be {rule}, but got {value!r}")


def parse_entry(key: str, value: Any) -> Entry:
    """The entry of ``value`` (a spec's TOML value); ``key`` names it in errors."""
    if _number(value):
        return Entry("fixed", value=float(value))
    if not isinstance(value, dict):
        raise _rule(key, "a number or a table such as { low = 1e-4, high = 1e-1 }", value)
    unknown = sorted(set(value) - set(_ENTRY_KEYS))
    if unknown:
        raise _rule(key, f"a table of {list(_ENTRY_KEYS)}", unknown[0])
    for kind in ("choices", "grid"):
        if kind in value:
            if set(value) != {kind}:
                raise _rule(key, f"{{ {kind} = [...] }} alone", value)
            items = value[kind]
            if not isinstance(items, list) or not items or not all(map(_number, items)):
                raise _rule(f"{key}.{kind}", "a non-empty list of finite numbers", items)
            if len(set(items)) != len(items):
                raise _rule(f"{key}.{kind}", "a list without repeats", items)
            return Entry(kind, choices=tuple(float(v) for v in items))
    if "low" not in value or "high" not in value:
        raise _rule(key, "a table with both low and high (or choices, or grid)", value)
    low, high = value["low"], value["high"]
    for name, bound in (("low", low), ("high", high)):
        if not _number(bound):
            raise _rule(f"{key}.{name}", "a finite number", bound)
    if low >= high:
        raise _rule(key, "a range with low < high", f"low = {low}, high = {high}")
    log, step = value.get("log", False), value.get("step")
    one_minus, zero_below = value.get("one_minus", False), value.get("zero_below")
    for name, flag in (("log", log), ("one_minus", one_minus)):
        if not isinstance(flag, bool):
            raise _rule(f"{key}.{name}", "true or false", flag)
    if log and low <= 0:
        raise _rule(f"{key}.low", "> 0 with log = true", low)
    if step is not None and (not _number(step) or step <= 0 or log):
        raise _rule(f"{key}.step", "a positive number, without log", step)
    if zero_below is not None and (not _number(zero_below) or not low < zero_below <= high):
        raise _rule(f"{key}.zero_below", f"a number in ({low}, {high}]", zero_below)
    return Entry(
        "range",
        low=float(low),
        high=float(high),
        log=log,
        step=None if step is None else float(step),
        one_minus=one_minus,
        zero_below=None if zero_below is None else float(zero_below),
    )


def _takes(optimizer: str) -> list[str]:
    """The hyper-parameter names ``optimizer``'s constructor takes (``betas`` as beta1, beta2)."""
    accepted = get_optimizer_info(optimizer).hyperparameters()
    return [
        n for n in HPARAMS if n in accepted or (n in ("beta1", "beta2") and "betas" in accepted)
    ]


def _load_preset(name: str) -> dict[str, Any]:
    text = resources.files("search").joinpath("presets", f"{name}.toml").read_text("utf-8")
    return tomllib.loads(text)["space"]


def _layers(raw: dict[str, Any], optimizer: str) -> list[tuple[str, dict[str, Any]]]:
    """The tables that make ``optimizer``'s space, weakest first, each with its key prefix."""
    return [
        ("space", {k: v for k, v in raw.items() if k in HPARAMS}),
        (f"space.{optimizer}", raw.get(optimizer, {})),
    ]


def parse_space(raw: str | dict[str, Any], optimizers: tuple[str, ...]) -> dict[str, Space]:
    """Each optimizer's space from a spec's ``space`` value (a preset name, or a table).

    Raises ValueError naming the key and the rule (``space.sgd.momentum must be ...``).
    """
    if isinstance(raw, str):
        raw = {"preset": raw}
    if not isinstance(raw, dict):
        raise _rule("space", f"a preset name {list(PRESETS)} or a table", raw)
    for key, value in raw.items():
        if key == "preset":
            if value not in PRESETS:
                raise _rule("space.preset", f"one of {list(PRESETS)}", value)
        elif key in list_optimizers():
            if not isinstance(value, dict):
                raise _rule(f"space.{key}", "a table of entries", value)
            for name in value:
                if name not in HPARAMS:
                    raise _rule(f"space.{key}", f"a table of {list(HPARAMS)}", name)
        elif key not in HPARAMS:
            raise _rule("space", f"a table of preset, {list(HPARAMS)} and optimizer tables", key)
    preset = _load_preset(raw["preset"]) if "preset" in raw else {}
    spaces = {}
    for opt in optimizers:
        takes = _takes(opt)
        space: dict[str, Entry] = {}
        for source in (preset, raw):
            for prefix, table in _layers(source, opt):
                for name, value in table.items():
                    key = f"{prefix}.{name}"
                    if name not in takes:
                        raise _rule(key, f"a hyper-parameter {opt} takes {takes}", name)
                    space[name] = parse_entry(key, value)
        if not space:
            raise ValueError(
                f"space.{opt} must have at least one entry (or a preset), but has none"
            )
        grid = sorted(n for n, e in space.items() if e.kind == "grid")
        searched = sorted(n for n, e in space.items() if e.kind in ("range", "choices"))
        if grid and searched:
            raise _rule(
                f"space.{opt}",
                "all grid (a grid study) or no grid at all",
                f"grid {grid} beside searched {searched}",
            )
        size = grid_size(space)
        if size is not None and size > MAX_GRID_POINTS:
            raise _rule(f"space.{opt}", f"a grid of at most {MAX_GRID_POINTS} points", size)
        _check_values(opt, space)
        spaces[opt] = {n: space[n] for n in HPARAMS if n in space}
    return spaces


def space_name(raw: str | dict[str, Any]) -> str:
    """The space's part of a study name: its preset's name, or ``custom``."""
    if isinstance(raw, str):
        return raw
    return raw["preset"] if set(raw) == {"preset"} else "custom"


def space_data(space: Space) -> dict[str, Any]:
    """The space as data: part of a study's identity."""
    return {name: entry.data() for name, entry in space.items()}


def hparams(optimizer: str, values: Mapping[str, float]) -> dict[str, Any]:
    """The optimizer's keyword arguments from hyper-parameter values (β1, β2 → ``betas``)."""
    out = {k: v for k, v in values.items() if k not in ("beta1", "beta2")}
    if "beta1" in values or "beta2" in values:
        default = inspect.signature(get_optimizer_info(optimizer).cls).parameters["betas"].default
        out["betas"] = (values.get("beta1", default[0]), values.get("beta2", default[1]))
    return out


def _check_values(optimizer: str, space: Space) -> None:
    """Every value an entry can give is one the optimizer accepts (its own validation), each
    tried with the optimizer's defaults for the rest."""
    for name, entry in space.items():
        for value in entry.values():
            try:
                check_hyperparameters(optimizer, **hparams(optimizer, {name: value}))
            except ValueError as exc:
                raise _rule(
                    f"space.{optimizer}.{name}", f"accepted by {optimizer} ({exc})", value
                ) from None


def suggest(trial: optuna.Trial, optimizer: str, space: Space) -> dict[str, Any]:
    """Ask ``trial`` for the parameters of ``space`` and return the optimizer's keyword arguments."""
    return hparams(optimizer, {name: entry.sample(trial, name) for name, entry in space.items()})


def distributions(space: Space) -> dict[str, optuna.distributions.BaseDistribution]:
    """The Optuna distributions the space's trials have (fixed entries have none)."""
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, e in space.items():
        if e.kind == "range":
            out[e.param_name(name)] = FloatDistribution(e.low, e.high, log=e.log, step=e.step)
        elif e.kind != "fixed":
            out[name] = CategoricalDistribution(list(e.choices))
    return out


def grid_axes(space: Space) -> dict[str, tuple[float, ...]] | None:
    """The axes of a grid space, or None when it is not a grid."""
    axes = {name: e.choices for name, e in space.items() if e.kind == "grid"}
    return axes or None


def grid_size(space: Space) -> int | None:
    axes = grid_axes(space)
    return None if axes is None else math.prod(len(v) for v in axes.values())


def grid_point(space: Space, index: int) -> dict[str, float]:
    """Point ``index`` of the grid (mixed radix over its axes): no product is ever built."""
    point = {}
    for name, values in reversed(list((grid_axes(space) or {}).items())):
        index, digit = divmod(index, len(values))
        point[name] = values[digit]
    return dict(reversed(point.items()))
