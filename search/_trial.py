"""What runs for one trial, as one Ray task (or in the driver's process with ``--no-ray``).

The driver has already asked Optuna for the trial and its parameters. The task re-opens that
trial by number against the SQL storage, trains with ``train(config, on_epoch)``, reports each
epoch's validation accuracy and asks the study's own pruner, so PRUNED trials keep their
curves. After every epoch the trainer writes a checkpoint under the trial's directory; a task
that starts where a checkpoint exists (Ray retrying it after a lost worker, or the retry of an
interrupted trial) continues from its last finished epoch, bitwise as if never interrupted.
The task never tells: it returns a :class:`TrialOutcome` and the driver tells Optuna.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna

from training import CHECKPOINT_NAME, TrainConfig, train
from training._checkpoint import load_checkpoint

from ._spec import StudySpec
from ._storage import OUTAGE_S, StorageError, open_storage

#: Called after each epoch's checkpoint, before its report: the seam the fault tests use.
EpochHook = Callable[["TrialJob", int], None]


@dataclass(frozen=True)
class TrialJob:
    """Everything a task needs; plain data, so it pickles to Ray workers on other machines."""

    spec: StudySpec
    optimizer: str
    storage_url: str
    study_name: str
    number: int  # the trial's number in its study
    hparams: dict[str, Any]
    checkpoint_dir: str  # this trial's own directory (shared by its retries)
    run_id: str
    seed: int
    prune: bool = True  # confirmation runs are never pruned
    device: str = "cpu"
    data_dir: str | None = None
    outage_s: float = OUTAGE_S


@dataclass(frozen=True)
class TrialOutcome:
    """What the driver tells Optuna (``state``), with the value and the attributes to record;
    ``requeue``: the trial could not go on through no fault of its own (queued again)."""

    state: Literal["complete", "pruned", "fail", "requeue"]
    value: float | None = None
    reason: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def quiet_optuna() -> None:
    """Progress lines replace Optuna's per-trial log; heartbeats are experimental by design."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # The driver records the heartbeats of the trials it asked for (ask/tell, not optimize).
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


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


def node_name() -> str:
    """The Ray node id inside a Ray worker, else the host name."""
    ray = sys.modules.get("ray")  # imported by Ray's own worker process, never here
    if ray is not None and ray.is_initialized():
        return ray.get_runtime_context().get_node_id()
    return socket.gethostname()


def train_config(job: TrialJob) -> TrainConfig:
    spec = job.spec
    return TrainConfig(
        dataset=spec.dataset,
        model=spec.model,
        optimizer=job.optimizer,
        hparams=job.hparams,
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        seed=job.seed,
        device=job.device,
        data_dir=job.data_dir,
        train_subset=spec.train_subset,
        compile=spec.compile,
        evaluate_test=False,  # selection uses the validation split only
        checkpoint_dir=job.checkpoint_dir,
        resume=True,
        progress=False,
    )


def remove_checkpoint(checkpoint_dir: str | Path) -> None:
    """Remove a trial's checkpoints, and its study's directory once it is empty."""
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        Path(checkpoint_dir).parent.rmdir()


def run_trial(job: TrialJob, on_epoch_hook: EpochHook | None = None) -> TrialOutcome:
    """Train the trial of ``job`` (from its checkpoint if it has one) and return its outcome."""
    quiet_optuna()
    storage = open_storage(job.storage_url, outage_s=job.outage_s)
    study = optuna.load_study(
        study_name=job.study_name,
        storage=storage,
        pruner=make_pruner(job.spec) if job.prune else optuna.pruners.NopPruner(),
        sampler=optuna.samplers.RandomSampler(),  # the driver sampled; nothing to fit here
    )
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(job.study_name), job.number
    )
    trial = optuna.Trial(study, trial_id)
    trial.set_user_attr("worker", {"node": node_name(), "pid": os.getpid(), "run": job.run_id})

    # Epochs the checkpoint holds but the trial has not recorded (a worker lost between the
    # checkpoint and the report) are reported now, so every epoch is trained and reported once.
    checkpoint = Path(job.checkpoint_dir) / CHECKPOINT_NAME
    history = load_checkpoint(checkpoint)["history"] if checkpoint.is_file() else []
    reported = set(storage.get_trial(trial_id).intermediate_values)
    if history:
        attempts = trial.user_attrs.get("attempts", [])
        attempts.append({"resumed_from": len(history), "reported_before": len(reported)})
        trial.set_user_attr("attempts", attempts)
        trial.set_user_attr("resumed_from_epoch", len(history))
    for metrics in history:
        if metrics["epoch"] not in reported:
            trial.report(metrics["val_acc"], int(metrics["epoch"]))
    if history and len(history) < job.spec.epochs and trial.should_prune():
        return TrialOutcome("pruned", reason=f"pruned after epoch {len(history)}")

    def on_epoch(epoch: int, metrics: dict) -> None:  # epoch is 1-based
        if on_epoch_hook is not None:
            on_epoch_hook(job, epoch)
        trial.report(metrics["val_acc"], epoch)
        # After the last epoch the run is complete: nothing is left to save by pruning it.
        if epoch < job.spec.epochs and trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}")

    try:
        result = train(train_config(job), on_epoch=on_epoch)
    except optuna.TrialPruned as exc:
        return TrialOutcome("pruned", reason=str(exc))
    except StorageError:
        raise  # the database, not the trial: the driver queues it again
    except Exception as exc:
        return TrialOutcome("fail", reason=f"{type(exc).__name__}: {exc}")
    if result.status != "completed":
        return TrialOutcome("fail", reason=f"{result.status}: {result.reason}")
    return TrialOutcome(
        "complete", value=result.best_val_acc, attrs={"best_epoch": result.best_epoch}
    )
