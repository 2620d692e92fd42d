"""Study specs: TOML files under studies/, validated into typed, frozen config.

A spec names the setting (dataset, model), the optimizers to tune (one Optuna study each), the
epoch budget per trial, the search space, sampler, pruner, trial count, seed and resources.
Every error names the file, the key and the value in one line.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data import list_datasets
from models import list_models
from optim import list_optimizers

from ._space import SPACES, grid_size

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("hyperband", "successive-halving", "median", "none")


class SpecError(ValueError):
    """A study spec that cannot be used; the message is one line naming file, key and value."""


@dataclass(frozen=True)
class PrunerSpec:
    kind: str = "hyperband"
    min_resource: int = 1
    reduction_factor: int = 3
    n_startup_trials: int = 5  # median only
    n_warmup_steps: int = 1  # median only


@dataclass(frozen=True)
class ResourceSpec:
    workers: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0


@dataclass(frozen=True)
class StudySpec:
    name: str
    dataset: str
    model: str
    optimizers: tuple[str, ...]
    epochs: int
    n_trials: int | None = None  # per study; None = the grid's size, or 20
    space: str = "default"
    sampler: str = "tpe"
    seed: int = 0
    batch_size: int = 128
    train_subset: int | None = None
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    source: str = "<spec>"

    def study_name(self, optimizer: str) -> str:
        """Unique and deterministic: the spec, the setting, the optimizer and the space."""
        return f"{self.name}-{self.dataset}-{self.model}-{optimizer}-{self.space}"

    def trials_for(self, optimizer: str) -> int:
        size = grid_size(optimizer, self.space)
        if self.n_trials is None:
            return size if size is not None else 20
        return min(self.n_trials, size) if size is not None else self.n_trials

    def replace(self, **changes: Any) -> StudySpec:
        spec = dataclasses.replace(self, **changes)
        _validate(spec)
        return spec


def _fail(source: str, key: str, rule: str, value: Any) -> SpecError:
    return SpecError(f"{source}: {key} must be {rule}, but got {value!r}")


def _positive_int(source: str, key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(source, key, "a positive integer", value)


def _validate(spec: StudySpec) -> None:
    src = spec.source
    if not isinstance(spec.name, str) or not spec.name.replace("-", "").replace("_", "").isalnum():
        raise _fail(src, "name", "letters, digits, '-' or '_'", spec.name)
    if spec.dataset not in list_datasets():
        raise _fail(src, "dataset", f"one of {list_datasets()}", spec.dataset)
    if spec.model not in list_models():
        raise _fail(src, "model", f"one of {list_models()}", spec.model)
    if not spec.optimizers or not isinstance(spec.optimizers, (tuple, list)):
        raise _fail(src, "optimizers", "a non-empty list", spec.optimizers)
    for opt in spec.optimizers:
        if opt not in list_optimizers():
            raise _fail(src, "optimizers", f"names from {list_optimizers()}", opt)
    if len(set(spec.optimizers)) != len(spec.optimizers):
        raise _fail(src, "optimizers", "distinct names", list(spec.optimizers))
    _positive_int(src, "epochs", spec.epochs)
    if spec.n_trials is not None:
        _positive_int(src, "n_trials", spec.n_trials)
    _positive_int(src, "batch_size", spec.batch_size)
    if spec.train_subset is not None:
        _positive_int(src, "train_subset", spec.train_subset)
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, int) or spec.seed < 0:
        raise _fail(src, "seed", "a non-negative integer", spec.seed)
    if spec.space not in SPACES:
        raise _fail(src, "space", f"one of {list(SPACES)}", spec.space)
    if spec.sampler not in SAMPLERS:
        raise _fail(src, "sampler", f"one of {list(SAMPLERS)}", spec.sampler)
    if (spec.sampler == "grid") != (spec.space == "paper-grid"):
        raise _fail(src, "sampler", "'grid' exactly when space = 'paper-grid'", spec.sampler)
    p = spec.pruner
    if p.kind not in PRUNERS:
        raise _fail(src, "pruner.kind", f"one of {list(PRUNERS)}", p.kind)
    _positive_int(src, "pruner.min_resource", p.min_resource)
    if (
        isinstance(p.reduction_factor, bool)
        or not isinstance(p.reduction_factor, int)
        or p.reduction_factor < 2
    ):
        raise _fail(src, "pruner.reduction_factor", "an integer ≥ 2", p.reduction_factor)
    if not isinstance(p.n_startup_trials, int) or p.n_startup_trials < 0:
        raise _fail(src, "pruner.n_startup_trials", "a non-negative integer", p.n_startup_trials)
    if not isinstance(p.n_warmup_steps, int) or p.n_warmup_steps < 0:
        raise _fail(src, "pruner.n_warmup_steps", "a non-negative integer", p.n_warmup_steps)
    r = spec.resources
    _positive_int(src, "resources.workers", r.workers)
    for key, value, low in (
        ("resources.cpus_per_trial", r.cpus_per_trial, 0.0),
        ("resources.gpus_per_trial", r.gpus_per_trial, 0.0),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
            raise _fail(src, key, "a number ≥ 0 (fractions allowed)", value)
    if r.cpus_per_trial <= 0 and r.gpus_per_trial <= 0:
        raise _fail(
            src, "resources.cpus_per_trial", "> 0 when no GPU is requested", r.cpus_per_trial
        )


def _section(source: str, raw: dict[str, Any], name: str, cls: type) -> Any:
    table = raw.pop(name, {})
    if not isinstance(table, dict):
        raise _fail(source, name, "a table", table)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in table:
        if key not in known:
            raise SpecError(f"{source}: unknown key '{name}.{key}' (known: {sorted(known)})")
    return cls(**table)


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study spec; raise SpecError with one clear line on any problem."""
    path = Path(path)
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{source}: no such study spec") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: invalid TOML ({exc})") from None
    pruner = _section(source, raw, "pruner", PrunerSpec)
    resources = _section(source, raw, "resources", ResourceSpec)
    top = {f.name for f in dataclasses.fields(StudySpec)} - {"pruner", "resources", "source"}
    for key in raw:
        if key not in top:
            raise SpecError(
                f"{source}: unknown key '{key}' (known: {sorted(top | {'pruner', 'resources'})})"
            )
    for key in ("name", "dataset", "model", "optimizers", "epochs"):
        if key not in raw:
            raise SpecError(f"{source}: missing required key '{key}'")
    if isinstance(raw["optimizers"], list):
        raw["optimizers"] = tuple(raw["optimizers"])
    spec = StudySpec(**raw, pruner=pruner, resources=resources, source=source)
    _validate(spec)
    return spec
