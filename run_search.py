"""Hyper-parameter search for the spherical optimizers: Optuna studies in SQL, trials on Ray.

With no arguments it runs the demo study (the offline ``digits`` data, SQLite under
./studies/, a local Ray, CPU). Running the same command again continues the same studies.

    python run_search.py
    python run_search.py --study studies/cifar10_resnet20.toml \\
        --storage postgresql+psycopg://user:pass@db-host/optuna --ray-address auto --gpus-per-trial 0.25

Every value of a spec has its flag; ``--set KEY=VALUE`` sets any key in TOML syntax, nested
ones and the search space included (``--set 'space.lr={low=1e-4, high=1e-1, log=true}'``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from training import ArgumentParser, freeze_at_exit, import_or_exit, print_error

# Smoke runs (2 trials of 2 epochs on a subset) keep apart, so they never feed an export.
SMOKE_STORAGE = "sqlite:///studies/smoke.db"


def resolve_study(value: str) -> Path | Any:
    """A path to a TOML spec, ``./studies/NAME.toml``, or a spec shipped with the project."""
    path = Path(value)
    if path.suffix == ".toml" or path.exists():
        return path
    local = Path("studies") / f"{value}.toml"
    if local.exists():
        return local
    shipped = resources.files("studies").joinpath(f"{value}.toml")
    return shipped if shipped.is_file() else local


def shipped_specs() -> list[str]:
    return sorted(
        p.name.removesuffix(".toml")
        for p in resources.files("studies").iterdir()
        if p.name.endswith(".toml")
    )


# Flags that set a spec value: flag → the spec key (dotted for the spec's tables).
SPEC_FLAGS: dict[str, tuple[str, Any, str]] = {
    "name": ("name", str, "search name (part of every study name)"),
    "dataset": ("dataset", str, "a registered dataset or package.module:function"),
    "model": ("model", str, "a registered model or package.module:function"),
    "optimizers": ("optimizers", str, "optimizers to tune, one study each"),
    "epochs": ("epochs", int, "epochs per trial"),
    "n_trials": ("n_trials", int, "trials per optimizer study"),
    "space": ("space", str, "a preset search space: default, or paper-grid (the published grid)"),
    "sampler": ("sampler", str, "tpe, random, or grid (a grid space)"),
    "seed": ("seed", int, "seed of the samplers and of every trial's training"),
    "batch_size": ("batch_size", int, "training batch size"),
    "train_subset": ("train_subset", int, "train on the first N training images only"),
    "trial_timeout": ("trial_timeout", float, "fail a trial that finishes no epoch this long (s)"),
    "pruner": ("pruner.kind", str, "hyperband, successive-halving, median or none"),
    "confirm_top": ("confirm.top", int, "re-train this many best trials per study"),
    "confirm_seeds": ("confirm.seeds", int, "on this many new seeds each"),
    "workers": ("resources.workers", int, "trials at once"),
    "cpus_per_trial": ("resources.cpus_per_trial", float, "CPUs each trial asks Ray for"),
    "gpus_per_trial": ("resources.gpus_per_trial", float, "GPUs each trial asks Ray for (fractions)"),
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        description="Search hyper-parameters of the spherical optimizers with Optuna on Ray.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Browse the studies with: optuna-dashboard <storage URL>",
    )
    parser.add_argument(
        "--study",
        default="demo",
        help="a spec file, or the name of one in ./studies or shipped (default: demo)",
    )
    parser.add_argument(
        "--storage",
        help="SQLAlchemy URL (default: $SPHERICAL_BN_STORAGE, else sqlite:///studies/studies.db "
        f"in the working directory; {SMOKE_STORAGE} with --smoke-test)",
    )
    spec = parser.add_argument_group("spec values (override the spec's)")
    for dest, (_, kind, help_) in SPEC_FLAGS.items():
        flag = "--" + dest.replace("_", "-")
        nargs = "+" if dest == "optimizers" else None
        spec.add_argument(flag, dest=dest, type=kind, nargs=nargs, help=help_)
    for flag, key, help_ in (
        ("augment", "augment", "augment the training images (crop + flip)"),
        ("compile", "compile", "torch.compile the model and the optimizer step"),
    ):
        spec.add_argument(f"--{flag}", dest=key, action=argparse.BooleanOptionalAction, help=help_)
    spec.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any spec key, in TOML syntax (e.g. pruner.min_resource=3, "
        "'space.lr={low=1e-4, high=1e-1, log=true}'); repeatable",
    )
    run = parser.add_argument_group("this run")
    run.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    run.add_argument(
        "--checkpoint-dir",
        help="where trials checkpoint every epoch; a path every node shares on a cluster "
        "(default: beside a SQLite file, e.g. studies/studies-checkpoints)",
    )
    run.add_argument(
        "--ray-address", help="join a Ray cluster (e.g. 'auto' or 'ray://head:10001')"
    )
    run.add_argument(
        "--no-ray", action="store_true", help="run the trials in this process, one at a time"
    )
    run.add_argument(
        "--data-dir", help="where the datasets live (default: $SPHERICAL_BN_DATA_DIR)"
    )
    run.add_argument(
        "--download",
        action="store_true",
        help="fetch missing dataset files into the data directory before the search starts",
    )
    run.add_argument(
        "--heartbeat",
        type=float,
        default=10,
        help="trial heartbeat in seconds; a later run takes over the trials of a driver silent "
        "for 3x this (default: 10)",
    )
    run.add_argument(
        "--smoke-test",
        action="store_true",
        help="finish in seconds: 2 trials of 2 epochs per study on a small subset",
    )
    return parser


def overrides(args: argparse.Namespace, spec_name: str) -> dict[str, Any]:
    """The spec keys the command line sets, as a nested table (raises ValueError)."""
    out: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        *tables, last = key.split(".")
        node = out
        for table in tables:
            node = node.setdefault(table, {})
        node[last] = value

    if args.smoke_test:
        out.update(name=f"{spec_name}-smoke", n_trials=2, epochs=2, train_subset=256)
    for dest, (key, _, _) in SPEC_FLAGS.items():
        value = getattr(args, dest)
        if value is not None:
            put(key, value)
    if args.space is not None and args.sampler is None:
        put("sampler", None)  # derived from the space
    for key in ("augment", "compile"):
        if getattr(args, key) is not None:
            put(key, getattr(args, key))
    for item in args.sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set must be KEY=VALUE, but got {item!r}")
        try:
            table = tomllib.loads(f"{key.strip()} = {value.strip()}")
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"--set {item!r} must be a TOML value ({exc})") from None
        _merge(out, table)
    return out


def _merge(into: dict[str, Any], table: dict[str, Any]) -> None:
    for key, value in table.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def main(argv: Sequence[str] | None = None) -> int:
    freeze_at_exit()
    args = build_parser().parse_args(argv)
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # as `python -m` would: import paths of the user's modules
    # Imported here so that --help answers at once.
    from data import DatasetChecksumError, DatasetNotFoundError, SettingError

    import_or_exit("search")  # the [search] extra may not be installed
    from search import (
        CheckpointDirError,
        ClusterError,
        Interrupted,
        SearchStopped,
        SpecError,
        StorageError,
        dashboard_hint,
        default_storage,
        load_spec,
        redact,
        run,
    )

    storage = args.storage or (SMOKE_STORAGE if args.smoke_test else default_storage())
    try:
        path = resolve_study(args.study)
        base = load_spec(path)
        try:
            changes = overrides(args, base.name)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        if args.smoke_test and base.confirm.top:
            changes.setdefault("confirm", {}).update(top=1, seeds=1)
        spec = load_spec(path, changes) if changes else base
        if args.heartbeat <= 0 or args.heartbeat != args.heartbeat:
            raise SpecError(
                f"--heartbeat must be a positive number of seconds, but got {args.heartbeat}"
            )
        if args.timeout is not None and not (0 < args.timeout < float("inf")):
            raise SpecError(
                f"--timeout must be a positive number of seconds, but got {args.timeout}"
            )
        rows = run(
            spec,
            storage_url=storage,
            executor="local" if args.no_ray else "ray",
            ray_address=args.ray_address,
            timeout=args.timeout,
            heartbeat_interval=args.heartbeat,
            data_dir=args.data_dir,
            download=args.download,
            checkpoint_dir=args.checkpoint_dir,
        )
    except (
        SpecError,
        StorageError,
        DatasetNotFoundError,
        DatasetChecksumError,
        SettingError,
        ClusterError,
        CheckpointDirError,
    ) as exc:
        hint = (
            f" (shipped: {', '.join(shipped_specs())})" if "no such study spec" in str(exc) else ""
        )
        print_error(f"{exc}{hint}")
        return 2
    except SearchStopped as exc:
        print_error(exc)
        return 1
    except Interrupted as stop:
        return 128 + stop.signum
    print(f"\nBrowse:  {dashboard_hint(storage)}")
    print(f"Export:  python export_best.py --storage {redact(storage)}")
    return 0 if any(r.complete for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
