"""Study specs: TOML files under studies/, validated into typed, frozen config.

A spec names the setting (dataset, model), the optimizers to tune (one Optuna study each), the
epoch budget per trial, the search space, sampler, pruner, trial count, seed and resources.
Every error names the file, the key and the value in one line.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from data import (
    MAX_SEED,
    check_bool,
    check_name_or_import_path,
    check_non_negative_int,
    check_positive_int,
    check_seed,
    check_train_subset,
    list_datasets,
)
from models import list_models
from optim import list_optimizers
from training import TrainConfig

from ._space import MAX_GRID_POINTS, Space, grid_size, parse_space, space_data, space_name

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("hyperband", "successive-halving", "median", "none")
# Every count a user gives is bounded: a study of more trials is not a search on one storage.
MAX_TRIALS = MAX_GRID_POINTS
MAX_CONFIRM_SEEDS = 1_000


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

    def seed_list(self, search_seed: int) -> range:
        """The new seeds: the ones after the search's own."""
        return range(search_seed + 1, search_seed + 1 + self.seeds) if self.top else range(0)


@dataclass(frozen=True)
class StudySpec:
    name: str
    dataset: str  # a registry name, or "package.module:function"
    model: str  # a registry name, or "package.module:function"
    optimizers: tuple[str, ...]
    epochs: int
    n_trials: int | None = None  # per study; None = the grid's size, or 20
    space: str | dict[str, Any] = "default"  # a preset's name, or a [space] table
    sampler: str | None = None  # None: "grid" for a grid space, else "tpe"
    seed: int = 0
    batch_size: int = 128
    train_subset: int | None = None
    augment: bool | None = None  # None: the dataset's own default
    trial_timeout: float | None = None  # seconds without a finished epoch before a trial fails
    compile: bool = False  # torch.compile the model and the optimizer step
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    confirm: ConfirmSpec = field(default_factory=ConfirmSpec)
    source: str = "<spec>"

    def study_name(self, optimizer: str) -> str:
        """Unique and deterministic: the spec, the setting, the optimizer and the space."""
        return f"{self.name}-{self.dataset}-{self.model}-{optimizer}-{space_name(self.space)}"

    @functools.cached_property
    def spaces(self) -> dict[str, Space]:
        """Each optimizer's search space."""
        return parse_space(self.space, self.optimizers)

    @property
    def sampler_kind(self) -> str:
        grid = any(grid_size(space) is not None for space in self.spaces.values())
        return self.sampler or ("grid" if grid else "tpe")

    def trials_for(self, optimizer: str) -> int:
        size = grid_size(self.spaces[optimizer])
        if self.n_trials is None:
            return size if size is not None else 20
        return min(self.n_trials, size) if size is not None else self.n_trials

    def budget(self) -> dict[str, Any]:
        """What a trial's result depends on besides its parameters: part of a study's identity."""
        budget = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "train_subset": self.train_subset,
        }
        if self.augment is not None:
            budget["augment"] = self.augment
        return budget

    def identity(self, optimizer: str) -> dict[str, Any]:
        """What a study keeps for life: its budget and its space."""
        return {"budget": self.budget(), "search_space": space_data(self.spaces[optimizer])}

    def train_config(self, optimizer: str, hparams: dict[str, Any], **run: Any) -> TrainConfig:
        """The trainer's config of one trial of this spec (``run``: seed, device, paths)."""
        return TrainConfig(
            dataset=self.dataset,
            model=self.model,
            optimizer=optimizer,
            hparams=hparams,
            epochs=self.epochs,
            batch_size=self.batch_size,
            train_subset=self.train_subset,
            augment=self.augment,
            compile=self.compile,
            evaluate_test=False,  # selection uses the validation split only
            progress=False,
            **run,
        )

    def replace(self, **changes: Any) -> StudySpec:
        spec = dataclasses.replace(self, **changes)
        _validate(spec)
        return spec


def _fail(source: str, key: str, rule: str, value: Any) -> SpecError:
    return SpecError(f"{source}: {key} must be {rule}, but got {value!r}")


def _check(source: str, rule: Callable[..., None], key: str, value: Any, *args: Any) -> None:
    """Apply one of the project's value rules (``data.check_*``), naming the spec file."""
    try:
        rule(key, value, *args)
    except ValueError as exc:
        raise SpecError(f"{source}: {exc}") from None


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
    _check(src, check_name_or_import_path, "dataset", spec.dataset, list_datasets())
    _check(src, check_name_or_import_path, "model", spec.model, list_models())
    if not spec.optimizers or not isinstance(spec.optimizers, (tuple, list)):
        raise _fail(src, "optimizers", "a non-empty list", spec.optimizers)
    for opt in spec.optimizers:
        if opt not in list_optimizers():
            raise _fail(src, "optimizers", f"names from {list_optimizers()}", opt)
    if len(set(spec.optimizers)) != len(spec.optimizers):
        raise _fail(src, "optimizers", "distinct names", list(spec.optimizers))
    _check(src, check_positive_int, "epochs", spec.epochs)
    if spec.n_trials is not None:
        _check(src, check_positive_int, "n_trials", spec.n_trials)
        if spec.n_trials > MAX_TRIALS:
            raise _fail(src, "n_trials", f"at most {MAX_TRIALS}", spec.n_trials)
    _check(src, check_positive_int, "batch_size", spec.batch_size)
    _check(src, check_train_subset, "train_subset", spec.train_subset)
    _check(src, check_seed, "seed", spec.seed)
    if spec.trial_timeout is not None and not _positive_number(spec.trial_timeout):
        raise _fail(src, "trial_timeout", "a positive number of seconds", spec.trial_timeout)
    _check(src, check_bool, "compile", spec.compile)
    if spec.augment is not None:
        _check(src, check_bool, "augment", spec.augment)
    try:
        spaces = spec.spaces
    except ValueError as exc:
        raise SpecError(f"{src}: {exc}") from None
    grids = {opt: grid_size(space) for opt, space in spaces.items()}
    if spec.sampler is not None and spec.sampler not in SAMPLERS:
        raise _fail(src, "sampler", f"one of {list(SAMPLERS)}", spec.sampler)
    is_grid = {size is not None for size in grids.values()}
    if len(is_grid) > 1:
        raise _fail(src, "space", "a grid for every optimizer or for none", sorted(grids))
    if spec.sampler is not None and (spec.sampler == "grid") != is_grid.pop():
        raise _fail(src, "sampler", "'grid' exactly when the space is a grid", spec.sampler)
    p = spec.pruner
    if p.kind not in PRUNERS:
        raise _fail(src, "pruner.kind", f"one of {list(PRUNERS)}", p.kind)
    _check(src, check_positive_int, "pruner.min_resource", p.min_resource)
    if (
        isinstance(p.reduction_factor, bool)
        or not isinstance(p.reduction_factor, int)
        or p.reduction_factor < 2
    ):
        raise _fail(src, "pruner.reduction_factor", "an integer ≥ 2", p.reduction_factor)
    _check(src, check_non_negative_int, "pruner.n_startup_trials", p.n_startup_trials)
    _check(src, check_non_negative_int, "pruner.n_warmup_steps", p.n_warmup_steps)
    c = spec.confirm
    _check(src, check_non_negative_int, "confirm.top", c.top)
    _check(src, check_non_negative_int, "confirm.seeds", c.seeds)
    if (c.top == 0) != (c.seeds == 0):
        raise _fail(src, "confirm", "top and seeds both 0 or both positive", f"{c.top}/{c.seeds}")
    if c.top > min(spec.trials_for(opt) for opt in spec.optimizers):
        raise _fail(src, "confirm.top", "at most the trial count of each study", c.top)
    if c.seeds > MAX_CONFIRM_SEEDS:
        raise _fail(src, "confirm.seeds", f"at most {MAX_CONFIRM_SEEDS}", c.seeds)
    if spec.seed + c.seeds > MAX_SEED:
        raise _fail(src, "seed", f"at most {MAX_SEED} - confirm.seeds", spec.seed)
    r = spec.resources
    _check(src, check_positive_int, "resources.workers", r.workers)
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


def _merged(raw: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with ``changes`` merged in, table by table (a preset name extended by entries
    becomes ``{preset = name, ...}``)."""
    out = dict(raw)
    for key, value in changes.items():
        have = out.get(key)
        if key == "space" and isinstance(have, str) and isinstance(value, dict):
            have = {"preset": have}
        out[key] = (
            _merged(have, value) if isinstance(value, dict) and isinstance(have, dict) else value
        )
    return out


def load_spec(path: str | Path | Traversable, changes: dict[str, Any] | None = None) -> StudySpec:
    """Read and validate a study spec, with ``changes`` (the command line's) merged in; raise
    SpecError with one clear line on any problem."""
    path = Path(path) if isinstance(path, str) else path
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
    if changes:
        if isinstance(changes.get("space"), dict):
            raw.setdefault("space", "default")  # entries given on top of the default space
        raw, source = _merged(raw, changes), f"{source} (with command-line overrides)"
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
