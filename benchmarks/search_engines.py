"""The same search three ways: this project's driver on Ray, plain Optuna worker processes, and
Ray Tune with OptunaSearch and ASHA. Same spec, objective, trial count and concurrency; a fresh
SQLite file per engine.

    python benchmarks/search_engines.py [--spec studies/demo.toml] [--optimizer adamsrt]
        [--trials 12] [--epochs 8] [--workers 2] [--repeats 1]

- search: ``search.run(spec, executor="ray")`` — the driver asks TPE and hands each trial to
  one of its warm Ray runners (one actor per slot), which reports each epoch and asks the
  spec's Optuna pruner.
- optuna: ``workers`` processes, each ``study.optimize`` on one study with TPE and the spec's
  pruner, ``MaxTrialsCallback`` capping the total.
- tune: ``Tuner`` with ``OptunaSearch`` (TPE over search/_space.py's space) and an
  ``ASHAScheduler`` from the spec's pruner settings, ``max_concurrent_trials=workers``.

Per engine: wall time (for the Ray engines, the start of a private local Ray included, and
shown apart), epochs trained (the reports each trial made), worker-seconds per epoch, the best
validation accuracy among trials that trained every epoch, and the trial states its Optuna
study stores. The spec's confirmation re-runs are off (no peer has them). Repeats rotate the
order of the engines, so a drift in the machine's load does not always land on the same one.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import StudySpec, load_spec, open_storage, run, suggest
from search._sampling import make_pruner
from training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
# Ray runs its worker processes at this niceness (its worker_niceness setting); the plain
# Optuna workers take the same, so other load on a shared machine slows every engine alike.
RAY_WORKER_NICENESS = 15
ENGINES = ("search", "optuna", "tune")
STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass
class Measured:
    engine: str
    wall_s: float
    ray_start_s: float | None  # inside wall_s; None where the engine starts no Ray
    trials: int
    epochs: int
    best_val_acc: float | None  # among trials that trained every epoch
    states: Counter  # state name -> trials, as the engine's Optuna study stores them
    failures: Counter  # reason -> trials
    note: str = ""

    def per_epoch_s(self, workers: int) -> float:
        """Worker-seconds per epoch trained: the wall time spread over the workers' epochs."""
        return self.wall_s * workers / self.epochs if self.epochs else math.nan


class Diverged(RuntimeError):
    """The trainer stopped on a NaN or infinite loss (a FAIL in every engine)."""


def plain_config(spec: StudySpec, optimizer: str, hparams: dict) -> TrainConfig:
    """The trial's training as the search configures it, without its per-epoch checkpoint."""
    return spec.train_config(optimizer, hparams, seed=spec.seed, device="cpu")


def train_or_raise(config: TrainConfig, on_epoch: Callable[[int, dict], None]) -> float:
    result = train(config, on_epoch=on_epoch)
    if result.status != "completed":
        raise Diverged(f"{result.status}: {result.reason}")
    return result.best_val_acc


def quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def stored(url: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study_name, storage=open_storage(url)).get_trials()


def state_counts(trials: list[optuna.trial.FrozenTrial]) -> Counter:
    return Counter(t.state.name for t in trials)


def fail_reasons(trials: list[optuna.trial.FrozenTrial]) -> Counter:
    """Why trials failed: the search's own attribute, else Optuna's (a caught exception)."""
    return Counter(
        t.user_attrs.get("fail_reason") or t.system_attrs.get("fail_reason", "?")
        for t in trials
        if t.state == TrialState.FAIL
    )


def best_complete(trials: list[optuna.trial.FrozenTrial]) -> float | None:
    values = [t.value for t in trials if t.state == TrialState.COMPLETE]
    return max(values) if values else None


def ray_init() -> float:
    """Start a private local Ray with search.run's settings; return the seconds it took.

    address="local": with none, ray.init joins a cluster someone on this machine started with
    `ray start`, and the engines would share it. search.run uses a Ray already started as is.
    """
    import logging

    import ray

    start = time.perf_counter()
    env = {"RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "1", "PYTHONPATH": str(ROOT)}
    ray.init(
        address="local",
        runtime_env={"env_vars": env},
        include_dashboard=False,
        logging_level=logging.ERROR,
    )
    return time.perf_counter() - start


# -- (a) this search --------------------------------------------------------------------------


def run_search(spec: StudySpec, optimizer: str, tmp: Path, say: Callable[[str], None]) -> Measured:
    import ray

    url = f"sqlite:///{tmp / 'search.db'}"
    start = time.perf_counter()
    ray_s = ray_init()
    try:
        run(spec, storage_url=url, executor="ray", checkpoint_dir=tmp / "checkpoints", say=say)
    finally:
        ray.shutdown()
    wall = time.perf_counter() - start
    trials = stored(url, spec.study_name(optimizer))
    return Measured(
        engine="search",
        wall_s=wall,
        ray_start_s=ray_s,
        trials=len(trials),
        epochs=sum(len(t.intermediate_values) for t in trials),
        best_val_acc=best_complete(trials),
        states=state_counts(trials),
        failures=fail_reasons(trials),
    )


# -- (b) plain Optuna worker processes ----------------------------------------------------------


def optuna_worker(spec: StudySpec, optimizer: str, url: str, index: int) -> None:
    import torch

    os.nice(RAY_WORKER_NICENESS)
    quiet()
    torch.set_num_threads(max(1, int(spec.resources.cpus_per_trial)))  # what Ray gives a task
    n = spec.trials_for(optimizer)

    def objective(trial: optuna.Trial) -> float:
        def on_epoch(epoch: int, metrics: dict) -> None:
            trial.report(metrics["val_acc"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        hparams = suggest(trial, optimizer, spec.spaces[optimizer])
        return train_or_raise(plain_config(spec, optimizer, hparams), on_epoch)

    study = optuna.load_study(
        study_name=spec.study_name(optimizer),
        storage=open_storage(url),
        # A seed per process: same-seeded workers would propose the same first trials.
        sampler=optuna.samplers.TPESampler(seed=spec.seed + index),
        pruner=make_pruner(spec),
    )
    # states=None counts running trials too, so the workers stop at n between them.
    study.optimize(
        objective,
        n_trials=n,
        callbacks=[optuna.study.MaxTrialsCallback(n, states=None)],
        catch=(Diverged,),
    )


def run_optuna(spec: StudySpec, optimizer: str, tmp: Path) -> Measured:
    url = f"sqlite:///{tmp / 'optuna.db'}"
    start = time.perf_counter()
    optuna.create_study(
        study_name=spec.study_name(optimizer), storage=open_storage(url), direction="maximize"
    )
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker, as separate machines would
    procs = [
        ctx.Process(target=optuna_worker, args=(spec, optimizer, url, i))
        for i in range(spec.resources.workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    wall = time.perf_counter() - start
    if any(p.exitcode for p in procs):
        raise RuntimeError(f"an Optuna worker exited with {[p.exitcode for p in procs]}")
    trials = stored(url, spec.study_name(optimizer))
    return Measured(
        engine="optuna",
        wall_s=wall,
        ray_start_s=None,
        trials=len(trials),
        epochs=sum(len(t.intermediate_values) for t in trials),
        best_val_acc=best_complete(trials),
        states=state_counts(trials),
        failures=fail_reasons(trials),
    )


# -- (c) Ray Tune with OptunaSearch and ASHA ----------------------------------------------------


def tune_space(trial: optuna.Trial, optimizer: str, space: dict) -> dict:
    """Define-by-run over the project's space; the optimizer's hparams ride in the config."""
    return {"hparams": suggest(trial, optimizer, space)}


def tune_trial(config: dict, spec: StudySpec, optimizer: str) -> None:
    import torch
    from ray import tune

    torch.set_num_threads(max(1, int(spec.resources.cpus_per_trial)))

    def on_epoch(epoch: int, metrics: dict) -> None:
        tune.report({"val_acc": metrics["val_acc"]})

    train_or_raise(plain_config(spec, optimizer, config["hparams"]), on_epoch)


def run_tune(spec: StudySpec, optimizer: str, tmp: Path) -> Measured:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    url = f"sqlite:///{tmp / 'tune.db'}"
    name = spec.study_name(optimizer)
    start = time.perf_counter()
    ray_s = ray_init()
    searcher = OptunaSearch(
        space=functools.partial(tune_space, optimizer=optimizer, space=spec.spaces[optimizer]),
        metric="val_acc",
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=spec.seed),
        study_name=name,
        storage=open_storage(url),
    )
    scheduler = ASHAScheduler(
        time_attr="training_iteration",  # one report per epoch
        max_t=spec.epochs,
        grace_period=spec.pruner.min_resource,
        reduction_factor=spec.pruner.reduction_factor,
    )
    res = spec.resources
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(tune_trial, spec=spec, optimizer=optimizer),
            {"cpu": res.cpus_per_trial},
        ),
        tune_config=tune.TuneConfig(
            metric="val_acc",
            mode="max",
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=spec.trials_for(optimizer),
            max_concurrent_trials=res.workers,
        ),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp / "tune"), verbose=0),
    )
    try:
        grid = tuner.fit()
    finally:
        ray.shutdown()
    wall = time.perf_counter() - start
    trials = stored(url, name)
    # Tune's own record: every epoch a trial reported, and whether it trained all of them.
    histories = [r.metrics_dataframe for r in grid if r.metrics_dataframe is not None]
    full = [h for h in histories if h["training_iteration"].max() == spec.epochs]
    stopped = sum(1 for r in grid if r.error is None) - len(full)
    reported = sum(len(t.intermediate_values) for t in trials)
    epochs = sum(len(h) for h in histories)
    return Measured(
        engine="tune",
        wall_s=wall,
        ray_start_s=ray_s,
        trials=len(grid),
        epochs=epochs,
        best_val_acc=max((h["val_acc"].max() for h in full), default=None),
        states=state_counts(trials),
        failures=Counter(str(r.error).strip().splitlines()[-1] for r in grid if r.error),
        note=f"{stopped} trial(s) stopped by ASHA before epoch {spec.epochs}; its Optuna "
        f"study holds {reported} of the {epochs} epoch reports",
    )


# -- report -----------------------------------------------------------------------------------


def table(rows: list[Measured], workers: int) -> str:
    base = next((r.wall_s for r in rows if r.engine == "optuna"), None)
    lines = [
        f"{'engine':<7} {'wall s':>7} {'ray s':>6} {'÷optuna':>7} {'trials':>6} {'epochs':>6} "
        f"{'s/epoch':>7} {'best val %':>10}  " + " ".join(f"{s.name:>8}" for s in STATES)
    ]
    for r in rows:
        ray_s = f"{r.ray_start_s:6.1f}" if r.ray_start_s is not None else f"{'-':>6}"
        ratio = f"{r.wall_s / base:6.2f}x" if base else f"{'-':>7}"
        best = f"{100 * r.best_val_acc:10.2f}" if r.best_val_acc is not None else f"{'-':>10}"
        counts = " ".join(f"{r.states.get(s.name, 0):>8}" for s in STATES)
        other = sum(v for k, v in r.states.items() if k not in {s.name for s in STATES})
        lines.append(
            f"{r.engine:<7} {r.wall_s:7.1f} {ray_s} {ratio} {r.trials:>6} {r.epochs:>6} "
            f"{r.per_epoch_s(workers):7.2f} {best}  {counts}"
            + (f"  (+{other} other)" if other else "")
        )
    lines.extend(f"  {r.engine}: {r.note}" for r in rows if r.note)
    lines.extend(
        f"  {r.engine}: {n} failed: {reason}" for r in rows for reason, n in r.failures.items()
    )
    return "\n".join(lines)


def build_spec(args: argparse.Namespace) -> StudySpec:
    spec = load_spec(args.spec)
    return spec.replace(
        name="engines",
        optimizers=(args.optimizer,),
        n_trials=args.trials,
        epochs=args.epochs if args.epochs is not None else spec.epochs,
        resources=dataclasses.replace(spec.resources, workers=args.workers, gpus_per_trial=0.0),
        # The spec's confirmation re-runs (extra trials on new seeds) have no peer elsewhere.
        confirm=dataclasses.replace(spec.confirm, top=0, seeds=0),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "studies" / "demo.toml"))
    parser.add_argument("--optimizer", default="adamsrt")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the spec's)")
    parser.add_argument("--workers", type=int, default=2, help="concurrent trials")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--verbose", action="store_true", help="print the search's progress")
    args = parser.parse_args(argv)
    quiet()
    spec = build_spec(args)
    say = print if args.verbose else (lambda _: None)
    p = spec.pruner
    print(
        f"{spec.dataset}/{spec.model}, {args.optimizer}, {spec.trials_for(args.optimizer)} "
        f"trials of {spec.epochs} epochs, {spec.resources.workers} workers × "
        f"{spec.resources.cpus_per_trial:g} CPU, TPE (seed {spec.seed}); search and optuna: "
        f"Optuna {p.kind} pruner, tune: ASHA (grace {p.min_resource}, reduction "
        f"{p.reduction_factor}); {os.cpu_count()} CPUs on this machine"
    )
    engines = {
        "search": lambda tmp: run_search(spec, args.optimizer, tmp, say),
        "optuna": lambda tmp: run_optuna(spec, args.optimizer, tmp),
        "tune": lambda tmp: run_tune(spec, args.optimizer, tmp),
    }
    ratios: dict[str, list[float]] = {e: [] for e in args.engines if e != "optuna"}
    per_epoch: dict[str, list[float]] = {e: [] for e in args.engines if e != "optuna"}
    for repeat in range(args.repeats):
        shift = repeat % len(args.engines)
        order = args.engines[shift:] + args.engines[:shift]
        rows = []
        for engine in order:
            with tempfile.TemporaryDirectory(prefix=f"engines-{engine}-") as tmp:
                rows.append(engines[engine](Path(tmp)))
        rows.sort(key=lambda r: ENGINES.index(r.engine))
        print(f"\nrun {repeat + 1}/{args.repeats} (order: {', '.join(order)})")
        print(table(rows, spec.resources.workers))
        base = next((r for r in rows if r.engine == "optuna"), None)
        workers = spec.resources.workers
        for r in rows:
            if base and r.engine in ratios:
                ratios[r.engine].append(r.wall_s / base.wall_s)
                per_epoch[r.engine].append(r.per_epoch_s(workers) / base.per_epoch_s(workers))
    if args.repeats > 1 and "optuna" in args.engines:
        for what, values in (("wall time", ratios), ("seconds per epoch trained", per_epoch)):
            print(
                f"\n{what} ÷ plain Optuna's over the runs: "
                + "; ".join(
                    f"{e} median {statistics.median(v):.2f}x (min {min(v):.2f}, max {max(v):.2f})"
                    for e, v in values.items()
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
