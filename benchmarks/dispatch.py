"""Ray dispatch overhead: the same trials (a fixed-length stand-in for training) run through the
Ray path and in-process, at 1 and 2 workers; per-trial overhead in ms and as a share of a
10-second trial.

    python benchmarks/dispatch.py [--trials 8] [--trial-seconds 2]

Per-trial cost is read from the trials' own timestamps (the gap before each trial on its worker
plus what the trial took beyond its fixed length), so the one-off start of Ray and of its worker
processes is reported apart and does not blur it.
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

import itertools

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


def _in_process(url: str, spec: StudySpec) -> None:
    create_studies(spec, open_storage(url))
    task = WorkerTask(spec=spec, storage_url=url, run_id="local")
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(target=run_worker, args=(task, i, SleepObjective))
        for i in range(spec.resources.workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


def _per_trial_overhead(url: str, spec: StudySpec) -> tuple[float, float]:
    """(mean seconds per trial beyond the trial itself, seconds until the first trial started)
    from the trial timestamps: the gap before each trial on its worker plus its own excess."""
    trials = optuna.load_study(study_name=spec.study_name("adamsrt"), storage=url).trials
    by_worker: dict[int, list] = {}
    for t in trials:
        by_worker.setdefault(t.user_attrs["worker"]["pid"], []).append(t)
    costs = []
    for ts in by_worker.values():
        ts.sort(key=lambda t: t.datetime_start)
        for prev, t in itertools.pairwise(ts):
            gap = (t.datetime_start - prev.datetime_complete).total_seconds()
            costs.append(gap + (t.duration.total_seconds() - TRIAL_SECONDS))
    first = min(t.datetime_start for t in trials)
    return sum(costs) / len(costs), first


def _run_ray(url: str, spec: StudySpec) -> float:
    """Seconds to start a local Ray; then the search runs on it."""
    import ray

    start = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False)
    init = time.perf_counter() - start
    run(spec, storage_url=url, ray_address="auto", say=lambda _: None, poll_s=0.2,
        objective_cls=SleepObjective)  # fmt: skip
    ray.shutdown()
    return init


def main(argv: list[str] | None = None) -> int:
    global TRIAL_SECONDS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--trial-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    TRIAL_SECONDS = args.trial_seconds
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(
        f"{args.trials} trials of {TRIAL_SECONDS:g} s; per-trial cost beyond the trial, from timestamps"
    )
    print(
        f"{'workers':>7} {'in-process ms':>13} {'ray ms':>7} {'ray - in-process':>17} "
        f"{'of a 10 s trial':>16} {'ray start s':>12}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            spec = _spec(args.trials, workers)
            local_url, ray_url = (
                f"sqlite:///{tmp}/local{workers}.db",
                f"sqlite:///{tmp}/ray{workers}.db",
            )
            _in_process(local_url, spec)
            init = _run_ray(ray_url, spec)
            local, _ = _per_trial_overhead(local_url, spec)
            on_ray, _ = _per_trial_overhead(ray_url, spec)
            extra = on_ray - local
            print(
                f"{workers:>7} {local * 1e3:>13.0f} {on_ray * 1e3:>7.0f} {extra * 1e3:>17.0f} "
                f"{extra / 10:>15.2%} {init:>12.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
