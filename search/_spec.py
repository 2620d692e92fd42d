"""Study specs: TOML files under studies/, validated into typed, frozen config.

A spec names the setting (dataset, model), the optimizers to tune (one Optuna study each), the
epoch budget per trial, the search space, sampler, pruner, trial count, seed and resources.
Every error names the file, the key and the value in one line.
"""

from __future__ import annotations

import dataclasses
import math
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
# numpy's generators, behind Optuna's samplers, take 32-bit seeds; trials mix in their number.
MAX_SEED = 2**31 - 1


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
class ConfirmSpec:
    """Re-train the ``top`` best COMPLETE trials of each study on ``seeds`` new seeds."""

    top: int = 0
    seeds: int = 0

    def seed_list(self, search_seed: int) -> list[int]:
        """The new seeds: the ones after the search's own."""
        return [search_seed + i for i in range(1, self.seeds + 1)] if self.top else []


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
    trial_timeout: float | None = None  # seconds without a finished epoch before a trial fails
    compile: bool = False  # torch.compile the model and the optimizer step
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    confirm: ConfirmSpec = field(default_factory=ConfirmSpec)
    source: str = "<spec>"

    def study_name(self, optimizer: str) -> str:
        """Unique and deterministic: the spec, the setting, the optimizer and the space."""
        return f"{self.name}-{self.dataset}-{self.model}-{optimizer}-{self.space}"

    def trials_for(self, optimizer: str) -> int:
        size = grid_size(optimizer, self.space)
        if self.n_trials is None:
            return size if size is not None else 20
        return min(self.n_trials, size) if size is not None else self.n_trials

    def budget(self) -> dict[str, Any]:
        """What a trial's result depends on besides its parameters: part of a study's identity."""
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "train_subset": self.train_subset,
        }

    def replace(self, **changes: Any) -> StudySpec:
        spec = dataclasses.replace(self, **changes)
        _validate(spec)
        return spec


def _fail(source: str, key: str, rule: str, value: Any) -> SpecError:
    return SpecError(f"{source}: {key} must be {rule}, but got {value!r}")


def _positive_int(source: str, key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(source, key, "a positive integer", value)


def _positive_number(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )


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
    if (
        isinstance(spec.seed, bool)
        or not isinstance(spec.seed, int)
        or not 0 <= spec.seed <= MAX_SEED
    ):
        raise _fail(src, "seed", f"an integer from 0 to {MAX_SEED}", spec.seed)
    if spec.trial_timeout is not None and not _positive_number(spec.trial_timeout):
        raise _fail(src, "trial_timeout", "a positive number of seconds", spec.trial_timeout)
    if not isinstance(spec.compile, bool):
        raise _fail(src, "compile", "true or false", spec.compile)
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
    c = spec.confirm
    for key, value in (("confirm.top", c.top), ("confirm.seeds", c.seeds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _fail(src, key, "a non-negative integer", value)
    if (c.top == 0) != (c.seeds == 0):
        raise _fail(src, "confirm", "top and seeds both 0 or both positive", f"{c.top}/{c.seeds}")
    if spec.seed + c.seeds > MAX_SEED:
        raise _fail(src, "seed", f"at most {MAX_SEED} - confirm.seeds", spec.seed)
    r = spec.resources
    _positive_int(src, "resources.workers", r.workers)
    for key, value, low in (
        ("resources.cpus_per_trial", r.cpus_per_trial, 0.0),
        ("resources.gpus_per_trial", r.gpus_per_trial, 0.0),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < low
        ):
            raise _fail(src, key, "a finite number ≥ 0 (fractions allowed)", value)
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
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{source}: no such study spec") from None
    except IsADirectoryError:
        raise SpecError(f"{source}: must be a TOML file, but got a directory") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{source}: must be UTF-8 text, but byte {exc.start} is not") from None
    except OSError as exc:
        raise SpecError(f"{source}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: invalid TOML ({exc})") from None
    pruner = _section(source, raw, "pruner", PrunerSpec)
    resources = _section(source, raw, "resources", ResourceSpec)
    confirm = _section(source, raw, "confirm", ConfirmSpec)
    sections = {"pruner", "resources", "confirm"}
    top = {f.name for f in dataclasses.fields(StudySpec)} - sections - {"source"}
    for key in raw:
        if key not in top:
            raise SpecError(f"{source}: unknown key '{key}' (known: {sorted(top | sections)})")
    for key in ("name", "dataset", "model", "optimizers", "epochs"):
        if key not in raw:
            raise SpecError(f"{source}: missing required key '{key}'")
    if isinstance(raw["optimizers"], list):
        raw["optimizers"] = tuple(raw["optimizers"])
    spec = StudySpec(**raw, pruner=pruner, resources=resources, confirm=confirm, source=source)
    _validate(spec)
    return spec
