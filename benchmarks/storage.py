"""Storage overhead: trials per second with a trivial objective on SQLite and PostgreSQL at 1, 2,
4 and 8 concurrent worker processes — the project's search loop (heartbeat, trial-count
bookkeeping, attributes) against bare Optuna ``study.optimize`` in the same run.

    python benchmarks/storage.py [--trials 96] [--workers 1 2 4 8] [--backends sqlite postgresql]

PostgreSQL: a throw-away database on postgresql+psycopg://postgres@127.0.0.1:5432 (created and
dropped here). Both sides sample with the same TPE sampler and the same search space.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import StudySpec, create_studies, open_storage, run_worker, suggest
from search._spec import ResourceSpec
from search._worker import TrainingObjective, WorkerTask

PG_SERVER = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


class TrivialObjective(TrainingObjective):
    """The project's trial bookkeeping around an objective that costs nothing."""

    def evaluate(self, trial: optuna.Trial, hparams: dict) -> float:
        return hparams["lr"]


def _bare(url: str, name: str, n: int, seed: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A careful bare user: a busy timeout, or SQLite fails under concurrent writers.
    storage = optuna.storages.RDBStorage(
        url, engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    )
    study = optuna.load_study(
        study_name=name, storage=storage, sampler=optuna.samplers.TPESampler(seed=seed)
    )

    def objective(trial: optuna.Trial) -> float:
        return suggest(trial, "adamsrt", "default")["lr"]

    study.optimize(objective, n_trials=n)


def _project(task: WorkerTask, index: int) -> None:
    run_worker(task, index, objective_cls=TrivialObjective)


def _timed(target, args_list) -> float:
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a worker process exited with {p.exitcode}")
    return time.perf_counter() - start


def _fresh_url(backend: str, tmp: Path) -> tuple[str, callable]:
    if backend == "sqlite":
        path = tmp / f"{uuid.uuid4().hex}.db"
        return f"sqlite:///{path}", lambda: None
    import psycopg

    db = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')

    def drop() -> None:
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}", drop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=96)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"{args.trials} trials per run, trivial objective; trials/s (higher is better)")
    print(
        f"{'backend':<11} {'workers':>7} {'bare optuna':>12} {'project':>9} {'overhead':>9} "
        f"{'extra ms/trial/worker':>22}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            for workers in args.workers:
                per = args.trials // workers
                rates = {}
                for side in ("bare", "project"):
                    url, drop = _fresh_url(backend, Path(tmp))
                    try:
                        spec = StudySpec(
                            name="bench", dataset="digits", model="resnet20", optimizers=("adamsrt",),
                            epochs=1, n_trials=per * workers, resources=ResourceSpec(workers=workers),
                        )  # fmt: skip
                        create_studies(spec, open_storage(url))
                        name = spec.study_name("adamsrt")
                        if side == "bare":
                            seconds = _timed(_bare, [(url, name, per, i) for i in range(workers)])
                        else:
                            task = WorkerTask(spec=spec, storage_url=url, run_id="bench")
                            seconds = _timed(_project, [(task, i) for i in range(workers)])
                        done = len(optuna.load_study(study_name=name, storage=url).trials)
                        rates[side] = done / seconds
                    finally:
                        drop()
                overhead = 1 - rates["project"] / rates["bare"]
                extra_ms = workers * (1 / rates["project"] - 1 / rates["bare"]) * 1e3
                print(
                    f"{backend:<11} {workers:>7} {rates['bare']:>12.1f} {rates['project']:>9.1f} "
                    f"{overhead:>8.0%} {extra_ms:>22.1f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
