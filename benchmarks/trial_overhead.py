"""Where a search slot's time goes: a breakdown of each trial's time on its runner, and the gap
between one trial's end and the next trial's start on the same runner.

    python benchmarks/trial_overhead.py [--spec studies/demo.toml] [--optimizer adamsrt]
        [--trials 16] [--epochs 8] [--train-subset N] [--workers 2]

It runs ``search.run`` on a private local Ray with a trial function that times, inside the
runner's process, the phases of ``run_trial``: storage open, study load, data, model, epochs
(training and validation), checkpoint writes, reports and pruning, attributes, and the rest.
Each phase's mean per trial is printed with its share of the slots' time (workers × wall), and
the slot utilisation (time inside epochs ÷ workers × wall), the figure issue 18 targets.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import TrialJob, TrialOutcome, load_spec, open_storage, run, run_trial

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("open", "study", "data", "model", "epochs", "checkpoint", "report", "attrs")
# Timed around the phases it contains: what the trainer does besides them is reported apart.
TRAIN = "train"

_spent: collections.Counter = collections.Counter()


def _timed(phase: str, fn):  # type: ignore[no-untyped-def]
    @functools.wraps(fn)
    def call(*args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _spent[phase] += time.perf_counter() - start

    return call


def _instrument() -> None:
    """Wrap the phases' functions in this (the runner's) process, once."""
    import search._trial as trial_module
    import training._loop as loop

    if getattr(loop, "_timed", False):
        return
    loop._timed = True
    trial_module.open_storage = _timed("open", trial_module.open_storage)
    trial_module.optuna.load_study = _timed("study", optuna.load_study)
    loop.build_loaders = _timed("data", loop.build_loaders)
    loop.build_model = _timed("model", loop.build_model)
    loop.save_checkpoint = _timed("checkpoint", loop.save_checkpoint)
    trial_module.train = _timed(TRAIN, trial_module.train)
    loop._Stepper.train_epoch = _timed("epochs", loop._Stepper.train_epoch)
    loop._Stepper.evaluate = _timed("epochs", loop._Stepper.evaluate)
    optuna.Trial.report = _timed("report", optuna.Trial.report)
    optuna.Trial.should_prune = _timed("report", optuna.Trial.should_prune)
    optuna.Trial.set_user_attr = _timed("attrs", optuna.Trial.set_user_attr)


def timed_trial(job: TrialJob) -> TrialOutcome:
    import os

    _instrument()
    _spent.clear()
    start = time.time()
    outcome = run_trial(job)
    end = time.time()
    timing = {p: round(_spent[p], 4) for p in (*PHASES, TRAIN)}
    timing.update(start=start, end=end, pid=os.getpid())
    return dataclasses.replace(outcome, attrs={**outcome.attrs, "timing": timing})


def report(
    trials: list[optuna.trial.FrozenTrial], workers: int, wall: float, started: float
) -> str:
    timed = [t.user_attrs["timing"] for t in trials if "timing" in t.user_attrs]
    slot_s = workers * wall
    rows = []
    for phase in PHASES:
        total = sum(t[phase] for t in timed)
        rows.append((phase, total))
    in_trials = sum(t["end"] - t["start"] for t in timed)
    inside = ("data", "model", "epochs", "checkpoint")  # the trainer's own phases
    setup = sum(t[TRAIN] - sum(t[p] for p in inside) for t in timed) - sum(
        t["report"] for t in timed
    )  # reports run inside train() too, from its on_epoch callback
    rows.append(("trainer, besides the above", setup))
    rows.append(("trial bookkeeping", in_trials - sum(v for _, v in rows)))
    gaps = []
    by_pid = collections.defaultdict(list)
    for t in timed:
        by_pid[t["pid"]].append(t)
    for runs in by_pid.values():
        runs.sort(key=lambda t: t["start"])
        gaps += [b["start"] - a["end"] for a, b in itertools.pairwise(runs)]
    rows.append(("between trials (driver, dispatch)", sum(gaps)))
    first = {pid: min(t["start"] for t in runs) - started for pid, runs in by_pid.items()}
    last = {pid: started + wall - max(t["end"] for t in runs) for pid, runs in by_pid.items()}
    rows.append(("before a runner's first trial", sum(first.values())))
    rows.append(("after a runner's last trial", sum(last.values())))
    unused = workers - len(by_pid)  # a slot no runner ever used
    rows.append(("never used", unused * wall))
    lines = [
        f"{len(timed)} trials on {len(by_pid)} runner process(es), {workers} slots × "
        f"{wall:.1f} s wall = {slot_s:.1f} slot-seconds"
    ]
    lines.append(f"{'phase':<36} {'ms/trial':>9} {'% of slots':>10}")
    for phase, total in rows:
        lines.append(f"{phase:<36} {1000 * total / len(timed):9.1f} {100 * total / slot_s:9.1f}%")
    if gaps:
        lines.append(
            f"gap between trials on a runner: median {1000 * statistics.median(gaps):.0f} ms, "
            f"max {1000 * max(gaps):.0f} ms"
        )
    epochs = sum(t["epochs"] for t in timed)
    lines.append(f"slot utilisation (inside epochs ÷ slots): {100 * epochs / slot_s:.1f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "studies" / "demo.toml"))
    parser.add_argument("--optimizer", default="adamsrt")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the spec's)")
    parser.add_argument("--train-subset", type=int, help="train on this many images")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    base = load_spec(args.spec)
    changes = {
        "name": "overhead",
        "optimizers": [args.optimizer],
        "n_trials": args.trials,
        "resources": {"workers": args.workers, "gpus_per_trial": 0.0},
        "confirm": {"top": 0, "seeds": 0},
    }
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    if args.train_subset is not None:
        changes["train_subset"] = args.train_subset
    spec = load_spec(args.spec, changes)
    with tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
        url = f"sqlite:///{tmp}/overhead.db"
        started, start = time.time(), time.perf_counter()
        run(
            spec,
            storage_url=url,
            checkpoint_dir=Path(tmp) / "c",
            trial_fn=timed_trial,
            say=lambda _: None,
        )
        wall = time.perf_counter() - start
        trials = optuna.load_study(
            study_name=spec.study_name(args.optimizer), storage=open_storage(url)
        ).get_trials()
    print(
        f"{base.dataset}/{base.model}, {args.optimizer}, {args.trials} trials of up to "
        f"{spec.epochs} epochs, {args.workers} workers × {spec.resources.cpus_per_trial:g} CPU, "
        f"pruner {spec.pruner.kind}"
    )
    print(report(trials, args.workers, wall, started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
