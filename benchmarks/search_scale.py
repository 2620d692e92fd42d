"""The search at scale: many one-epoch trials on SQLite and on PostgreSQL, on a private local Ray.

    python benchmarks/search_scale.py [--trials 1000] [--workers 4] [--backends sqlite postgresql]

Per backend: wall time and trials per minute, the driver's resident memory when its first trial
starts and at the end, the peak number of connections to the database (PostgreSQL, sampled from
pg_stat_activity every 0.1 s), and database commits per trial: counted by SQLAlchemy's commit
event on every engine of the driver and of each runner (each runner adds its count to its
trials' outcome). Trials are one epoch on 32 digits images with a random sampler, so the
service's own costs dominate, not training or TPE's fitting.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import optuna
import sqlalchemy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import TrialJob, TrialOutcome, load_spec, open_storage, run, run_trial

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
SPEC = """
name = "scale"
dataset = "digits"
model = "resnet20"
optimizers = ["sgd"]
epochs = 1
n_trials = {trials}
sampler = "random"
batch_size = 32
train_subset = 32

[pruner]
kind = "none"

[resources]
workers = {workers}
cpus_per_trial = {cpus}
"""

_commits = [0]


def _count_commits() -> None:
    """Count every commit of every engine of this process, once."""
    if not getattr(sqlalchemy.Engine, "_counted", False):
        sqlalchemy.Engine._counted = True
        sqlalchemy.event.listen(sqlalchemy.Engine, "commit", lambda conn: _add())


def _add() -> None:
    _commits[0] += 1


def counting_trial(job: TrialJob) -> TrialOutcome:
    _count_commits()
    before = _commits[0]
    outcome = run_trial(job)
    attrs = {**outcome.attrs, "runner_commits": _commits[0] - before}
    return dataclasses.replace(outcome, attrs=attrs)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * 4096 / 2**20


def pg_database() -> tuple[str, str]:
    import psycopg

    name = f"bench_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def connections(name: str) -> int:
    import psycopg

    with psycopg.connect(PG_ADMIN) as admin:
        return admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchone()[0]


def measure(backend: str, args: argparse.Namespace, tmp: Path) -> dict:
    spec_path = tmp / "scale.toml"
    spec_path.write_text(SPEC.format(trials=args.trials, workers=args.workers, cpus=args.cpus))
    spec = load_spec(spec_path)
    name, url = pg_database() if backend == "postgresql" else (None, f"sqlite:///{tmp}/s.db")
    peak, stop = [0], threading.Event()
    sampler = None
    if name is not None:

        def sample() -> None:
            while not stop.wait(0.1):
                peak[0] = max(peak[0], connections(name))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    memory: dict[str, float] = {}

    def say(line: str) -> None:
        if "start" not in memory and re.search(r"running [1-9]", line):
            memory["start"] = rss_mb()  # the first trials are running

    _count_commits()
    driver_before = _commits[0]
    started = time.perf_counter()
    try:
        run(spec, storage_url=url, checkpoint_dir=tmp / "c", trial_fn=counting_trial, say=say)
        wall = time.perf_counter() - started
        memory["end"] = rss_mb()
        driver_commits = _commits[0] - driver_before
        trials = optuna.load_study(
            study_name=spec.study_name("sgd"), storage=open_storage(url)
        ).get_trials()
    finally:
        stop.set()
        if sampler is not None:
            sampler.join()
        if name is not None:
            drop(name)
    runner_commits = sum(t.user_attrs.get("runner_commits", 0) for t in trials)
    return {
        "backend": backend,
        "trials": len(trials),
        "complete": sum(t.state.name == "COMPLETE" for t in trials),
        "wall": wall,
        "per_min": 60 * len(trials) / wall,
        "rss_start": memory.get("start", float("nan")),
        "rss_end": memory["end"],
        "peak": peak[0] if name is not None else None,
        # The driver's own reads after the run (the summary) are left out of neither side.
        "commits": (driver_commits + runner_commits) / len(trials),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--cpus", type=float, default=0.5, help="CPUs per trial")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args(argv)
    print(f"{args.trials} one-epoch trials, {args.workers} workers × {args.cpus:g} CPU")
    print(
        f"{'backend':<11} {'trials':>6} {'wall s':>7} {'trials/min':>10} {'driver MB start→end':>20} "
        f"{'peak conns':>10} {'commits/trial':>13}"
    )
    for backend in args.backends:
        with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
            r = measure(backend, args, Path(tmp))
        peak = "-" if r["peak"] is None else str(r["peak"])
        print(
            f"{r['backend']:<11} {r['trials']:>6} {r['wall']:7.1f} {r['per_min']:10.1f} "
            f"{r['rss_start']:9.0f} → {r['rss_end']:<8.0f} {peak:>10} {r['commits']:13.1f}"
            + ("" if r["complete"] == r["trials"] else f"  ({r['complete']} COMPLETE)")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
