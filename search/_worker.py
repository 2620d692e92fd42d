"""What runs on a worker: a loop that takes trials from the studies of a spec until each study
has its trial count, and the objective that turns a trial into a training run.

Each trial runs inside ``study.optimize`` so Optuna's heartbeat and pruners apply: pruned trials
are stored PRUNED with their per-epoch validation accuracy, and the trials of a worker that died
are failed once their heartbeat is stale and re-queued with the same parameters.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from training import TrainConfig, train

from ._space import grid, suggest
from ._spec import StudySpec
from ._storage import open_storage, retried_trial_numbers

POLL_S = 2.0


@dataclass(frozen=True)
class WorkerTask:
    """Everything a worker needs; plain data, so it pickles to Ray workers on other machines."""

    spec: StudySpec
    storage_url: str
    run_id: str
    heartbeat_interval: int = 10
    grace_period: int | None = None
    deadline: float | None = None  # wall-clock time after which no new trial starts
    device: str = "cpu"
    data_dir: str | None = None


def quiet_optuna() -> None:
    """Progress lines replace Optuna's per-trial log; heartbeats are experimental by design."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def counted_trials(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The trials that use up the study's trial count: all but re-queued stale ones and surplus."""
    retried = retried_trial_numbers(trials)
    return [
        t
        for t in trials
        if not (
            t.state == TrialState.FAIL and (t.number in retried or t.user_attrs.get("surplus"))
        )
    ]


def make_sampler(
    spec: StudySpec, optimizer: str, worker_index: int
) -> optuna.samplers.BaseSampler:
    # Distinct seeds per worker: same-seeded samplers in parallel propose the same points.
    seed = spec.seed * 1009 + worker_index
    axes = grid(optimizer, spec.space)
    if axes is not None:
        return optuna.samplers.GridSampler(axes, seed=seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    p = spec.pruner
    if p.kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_resource,
            max_resource=spec.epochs,
            reduction_factor=p.reduction_factor,
        )
    if p.kind == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.min_resource, reduction_factor=p.reduction_factor
        )
    if p.kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
        )
    return optuna.pruners.NopPruner()


class TrainingObjective:
    """A trial of one optimizer's study: suggest, record, train (``evaluate``)."""

    def __init__(self, task: WorkerTask, optimizer: str, cap: int, node: str) -> None:
        self.task, self.optimizer, self.cap = task, optimizer, cap
        self.worker = {"node": node, "pid": os.getpid(), "run": task.run_id}
        self.todo = cap  # trials left to start, as last read from the storage
        self.ran = 0

    def _surplus(self, trial: optuna.Trial) -> bool:
        # Two workers can both see one trial left and both start: the later one stands down.
        # Far from the count no start can overshoot it, so the storage is read only near it.
        if self.todo > 2 * self.task.spec.resources.workers:
            return False
        counted = [t.number for t in counted_trials(trial.study.get_trials(deepcopy=False))]
        return sorted(counted).index(trial.number) >= self.cap

    def __call__(self, trial: optuna.Trial) -> float:
        self.ran += 1
        if self._surplus(trial):
            trial.set_user_attr("surplus", True)
            trial.set_user_attr("fail_reason", "surplus: the study already had its trial count")
            return math.nan
        hparams = suggest(trial, self.optimizer, self.task.spec.space)
        trial.set_user_attr("hparams", hparams)
        trial.set_user_attr("worker", self.worker)
        return self.evaluate(trial, hparams)

    def evaluate(self, trial: optuna.Trial, hparams: dict[str, Any]) -> float:
        """Train with ``hparams``, reporting each epoch's validation accuracy for pruning."""
        spec = self.task.spec
        config = TrainConfig(
            dataset=spec.dataset,
            model=spec.model,
            optimizer=self.optimizer,
            hparams=hparams,
            epochs=spec.epochs,
            batch_size=spec.batch_size,
            seed=spec.seed,
            device=self.task.device,
            data_dir=self.task.data_dir,
            train_subset=spec.train_subset,
            evaluate_test=False,  # selection uses the validation split only
            progress=False,
        )

        def on_epoch(epoch: int, metrics: dict) -> None:  # epoch is 1-based
            trial.report(metrics["val_acc"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        try:
            result = train(config, on_epoch=on_epoch)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}")
            raise
        if result.status != "completed":
            trial.set_user_attr("fail_reason", f"{result.status}: {result.reason}")
            return math.nan  # Optuna records a NaN objective as FAIL; the study goes on
        trial.set_user_attr("best_epoch", result.best_epoch)
        return result.best_val_acc


def _remaining(study: optuna.Study, cap: int) -> tuple[int, int]:
    """(trials still to start, trials running) for a study with ``cap`` trials.

    Re-queued (WAITING) trials hold a counted slot and are the next ones ``optimize`` starts.
    """
    counted = counted_trials(study.get_trials(deepcopy=False))
    waiting = sum(t.state == TrialState.WAITING for t in counted)
    running = sum(t.state == TrialState.RUNNING for t in counted)
    return cap - len(counted) + waiting, running


def node_name() -> str:
    """The Ray node id inside a Ray worker, else the host name."""
    ray = sys.modules.get("ray")  # imported by Ray's own worker process, never here
    if ray is not None and ray.is_initialized():
        return ray.get_runtime_context().get_node_id()
    return socket.gethostname()


def run_worker(
    task: WorkerTask, worker_index: int, objective_cls: type[TrainingObjective] = TrainingObjective
) -> int:
    """Run trials until every study of the spec has its count; return how many this worker ran.

    ``objective_cls`` may replace what a trial evaluates (benchmarks time the loop itself).
    """
    spec = task.spec
    quiet_optuna()
    storage = open_storage(
        task.storage_url,
        heartbeat_interval=task.heartbeat_interval,
        grace_period=task.grace_period,
    )
    node = node_name()
    studies = [
        (
            optuna.load_study(
                study_name=spec.study_name(opt),
                storage=storage,
                sampler=make_sampler(spec, opt, worker_index),
                pruner=make_pruner(spec),
            ),
            objective_cls(task, opt, spec.trials_for(opt), node),
        )
        for opt in spec.optimizers
    ]

    def stop_when_full(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        objective = next(o for st, o in studies if st is study)
        objective.todo, _ = _remaining(study, objective.cap)
        if objective.todo <= 0:
            study.stop()

    while task.deadline is None or time.time() < task.deadline:
        waiting = False
        for study, objective in studies:
            objective.todo, running = _remaining(study, objective.cap)
            if objective.todo > 0:
                timeout = None if task.deadline is None else max(task.deadline - time.time(), 0)
                study.optimize(
                    objective, catch=(Exception,), callbacks=[stop_when_full], timeout=timeout
                )
                break
            if running:
                optuna.storages.fail_stale_trials(study)
                waiting = True
        else:
            if not waiting:
                break
            time.sleep(POLL_S)
    return sum(objective.ran for _, objective in studies)
