"""Hyper-parameter search for the spherical optimizers: Optuna studies in SQL, trials on Ray.

With no arguments it runs the demo study (the offline ``digits`` data, SQLite under studies/, a
local Ray, CPU). Running the same command again continues the same studies.

    python run_search.py
    python run_search.py --study studies/cifar10_resnet20.toml \\
        --storage postgresql+psycopg://user:pass@db-host/optuna --ray-address auto --gpus-per-trial 0.25
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
STUDIES = ROOT / "studies"
DEFAULT_STORAGE = f"sqlite:///{STUDIES / 'studies.db'}"
# Smoke runs (2 trials of 2 epochs on a subset) keep apart, so they never feed an export.
SMOKE_STORAGE = f"sqlite:///{STUDIES / 'smoke.db'}"


def resolve_study(value: str) -> Path:
    """A path to a TOML spec, or the bare name of one under studies/."""
    path = Path(value)
    if path.suffix != ".toml" and not path.exists():
        path = STUDIES / f"{value}.toml"
    return path


def shipped_specs() -> list[str]:
    return sorted(p.stem for p in STUDIES.glob("*.toml"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Search hyper-parameters of the spherical optimizers with Optuna on Ray.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Browse the studies with: optuna-dashboard <storage URL>",
    )
    parser.add_argument(
        "--study", default="demo", help="spec file or name under studies/ (default: demo)"
    )
    parser.add_argument(
        "--storage",
        help="SQLAlchemy URL (default: studies/studies.db; studies/smoke.db with --smoke-test)",
    )
    parser.add_argument(
        "--name", help="search name (overrides the spec's; part of every study name)"
    )
    parser.add_argument(
        "--n-trials", type=int, help="trials per optimizer study (overrides the spec)"
    )
    parser.add_argument("--epochs", type=int, help="epochs per trial (overrides the spec)")
    parser.add_argument(
        "--space",
        choices=["default", "paper-grid"],
        help="search space (paper-grid: the published grid, GridSampler)",
    )
    parser.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    parser.add_argument(
        "--confirm-top", type=int, help="re-train this many best trials per study (confirm.top)"
    )
    parser.add_argument(
        "--confirm-seeds", type=int, help="on this many new seeds each (confirm.seeds)"
    )
    parser.add_argument(
        "--trial-timeout",
        type=float,
        help="fail a trial that finishes no epoch for this many seconds (overrides the spec)",
    )
    parser.add_argument(
        "--checkpoint-dir",
        help="where trials checkpoint every epoch; a path every node shares on a cluster "
        "(default: beside a SQLite file, e.g. studies/studies-checkpoints)",
    )
    parser.add_argument("--workers", type=int, help="concurrent trials (overrides the spec)")
    parser.add_argument("--cpus-per-trial", type=float, help="CPUs each worker asks Ray for")
    parser.add_argument(
        "--gpus-per-trial", type=float, help="GPUs each worker asks Ray for (fractions allowed)"
    )
    parser.add_argument(
        "--ray-address", help="join a Ray cluster (e.g. 'auto' or 'ray://head:10001')"
    )
    parser.add_argument(
        "--no-ray", action="store_true", help="run the trials in this process, one at a time"
    )
    parser.add_argument(
        "--data-dir", help="where the datasets live (default: $SPHERICAL_BN_DATA_DIR)"
    )
    parser.add_argument(
        "--heartbeat",
        type=int,
        default=10,
        help="trial heartbeat in seconds; a later run takes over the trials of a driver silent "
        "for 3x this (default: 10)",
    )
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="finish in seconds: 2 trials of 2 epochs per study on a small subset",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Imported here so that --help answers at once.
    from data import DatasetNotFoundError, get_dataset_info, load_raw
    from search import (
        ClusterError,
        ConfirmSpec,
        Interrupted,
        SpecError,
        StorageError,
        dashboard_hint,
        load_spec,
        redact,
        run,
    )

    storage = args.storage or (SMOKE_STORAGE if args.smoke_test else DEFAULT_STORAGE)
    try:
        spec = load_spec(resolve_study(args.study))
        overrides = {}
        if args.smoke_test:
            overrides.update(name=f"{spec.name}-smoke", n_trials=2, epochs=2, train_subset=256)
            if spec.confirm.top:
                overrides["confirm"] = ConfirmSpec(top=1, seeds=1)
        if args.space is not None:
            overrides.update(
                space=args.space, sampler="grid" if args.space == "paper-grid" else "tpe"
            )
        for key in ("name", "n_trials", "epochs", "trial_timeout"):
            if getattr(args, key) is not None:
                overrides[key] = getattr(args, key)
        resources = {
            key: getattr(args, key)
            for key in ("workers", "cpus_per_trial", "gpus_per_trial")
            if getattr(args, key) is not None
        }
        if resources:
            overrides["resources"] = dataclasses.replace(spec.resources, **resources)
        confirm = {
            key: getattr(args, f"confirm_{key}")
            for key in ("top", "seeds")
            if getattr(args, f"confirm_{key}") is not None
        }
        if confirm:
            base = overrides.get("confirm", spec.confirm)
            overrides["confirm"] = dataclasses.replace(base, **confirm)
        spec = (
            spec.replace(**overrides, source=f"{spec.source} (with command-line overrides)")
            if overrides
            else spec
        )
        if args.heartbeat < 1:
            raise SpecError(f"--heartbeat must be a positive integer, but got {args.heartbeat}")
        if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
            raise SpecError(
                f"--timeout must be a positive number of seconds, but got {args.timeout}"
            )
        if args.ray_address is None:
            # Fail fast, before any worker starts, when the data is missing on this machine.
            load_raw(get_dataset_info(spec.dataset), args.data_dir, with_test=False)
        rows = run(
            spec,
            storage_url=storage,
            executor="local" if args.no_ray else "ray",
            ray_address=args.ray_address,
            timeout=args.timeout,
            heartbeat_interval=args.heartbeat,
            data_dir=args.data_dir,
            checkpoint_dir=args.checkpoint_dir,
        )
    except (SpecError, StorageError, DatasetNotFoundError, ClusterError) as exc:
        hint = (
            f" (shipped: {', '.join(shipped_specs())})" if "no such study spec" in str(exc) else ""
        )
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        return 128 + stop.signum
    print(f"\nBrowse:  {dashboard_hint(storage)}")
    print(f"Export:  python export_best.py --storage {redact(storage)}")
    return 0 if any(r.complete for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
