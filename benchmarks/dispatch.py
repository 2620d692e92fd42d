"""Ray dispatch overhead: the same trials (a fixed-length stand-in for training) run through the
Ray path and in-process, at 1 and 2 workers; per-trial overhead in ms and as a share of a
10-second trial.

    python benchmarks/dispatch.py [--trials 8] [--trial-seconds 2]

The Ray run's wall time includes starting a local Ray (reported apart, once per search).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import StudySpec, create_studies, open_storage, run, run_worker
from search._spec import PrunerSpec, ResourceSpec
from search._worker import TrainingObjective, WorkerTask

TRIAL_SECONDS = 2.0


class SleepObjective(TrainingObjective):
    """A trial that takes a fixed time and no CPU, so only dispatch costs differ."""

    def evaluate(self, trial: optuna.Trial, hparams: dict) -> float:
        time.sleep(TRIAL_SECONDS)
        return hparams["lr"]


def _spec(trials: int, workers: int) -> StudySpec:
    return StudySpec(
        name=f"dispatch{workers}", dataset="digits", model="resnet20", optimizers=("adamsrt",),
        epochs=1, n_trials=trials, pruner=PrunerSpec(kind="none"),
        resources=ResourceSpec(workers=workers, cpus_per_trial=0.5),
    )  # fmt: skip


def _in_process(url: str, spec: StudySpec) -> float:
    create_studies(spec, open_storage(url))
    task = WorkerTask(spec=spec, storage_url=url, run_id="local")
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(target=run_worker, args=(task, i, SleepObjective))
        for i in range(spec.resources.workers)
    ]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    global TRIAL_SECONDS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--trial-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    TRIAL_SECONDS = args.trial_seconds
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    import ray

    print(f"{args.trials} trials of {TRIAL_SECONDS:g} s each")
    print(
        f"{'workers':>7} {'in-process s':>13} {'ray s':>8} {'ray init s':>11} {'overhead ms/trial':>18} {'of a 10 s trial':>16}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            spec = _spec(args.trials, workers)
            local = _in_process(f"sqlite:///{tmp}/local{workers}.db", spec)
            start = time.perf_counter()
            ray.init(include_dashboard=False, log_to_driver=False)
            init = time.perf_counter() - start
            ray_start = time.perf_counter()
            run(spec, storage_url=f"sqlite:///{tmp}/ray{workers}.db", ray_address="auto",
                say=lambda _: None, poll_s=0.2, objective_cls=SleepObjective)  # fmt: skip
            on_ray = time.perf_counter() - ray_start
            ray.shutdown()
            per_trial = (on_ray - local) / args.trials * workers
            print(
                f"{workers:>7} {local:>13.2f} {on_ray:>8.2f} {init:>11.2f} {per_trial * 1e3:>18.0f} "
                f"{per_trial / 10:>15.1%}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
