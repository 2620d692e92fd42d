"""What runs for one trial, on a warm runner (or in the driver's process with ``--no-ray``).

The driver has already asked Optuna for the trial and its parameters. The runner re-opens that
trial by number against the SQL storage, trains with ``train(config, on_epoch)``, reports each
epoch's validation accuracy and asks the study's own pruner, so PRUNED trials keep their
curves. After every epoch the trainer writes a checkpoint under the trial's directory; a trial
that starts where a checkpoint exists (after a lost runner, or as the retry of an interrupted
trial) continues from its last finished epoch, bitwise as if never interrupted. A damaged
checkpoint is dropped (the trial starts over, and says so); a checkpoint that cannot be
written stops the search rather than failing the trial. The runner never tells: it returns a
:class:`TrialOutcome` and the driver tells Optuna.

A runner's process keeps, across its trials, its storage (``open_storage``), each study it
loaded, and the datasets the trainer read.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
import torch

from training import CHECKPOINT_NAME, CheckpointError, CheckpointWriteError, inspect_setting, train
from training._checkpoint import load_checkpoint

from ._sampling import make_pruner
from ._spec import StudySpec
from ._storage import OUTAGE_S, StorageError, open_storage

#: Called after each epoch's checkpoint, before its report: the seam the fault tests use.
EpochHook = Callable[["TrialJob", int], None]


@dataclass(frozen=True)
class TrialJob:
    """Everything a runner needs; plain data, so it pickles to Ray workers on other machines."""

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
    """What the driver does with a trial that ended.

    ``complete`` / ``pruned`` / ``fail``: tell Optuna (``value``, and ``attrs`` to record);
    ``requeue``: the trial could not go on through no fault of its own (queued again);
    ``lost``: the runner's process died with it; ``stop``: the search cannot go on (a
    checkpoint directory that cannot be written), the trial is queued again.
    """

    state: Literal["complete", "pruned", "fail", "requeue", "lost", "stop"]
    value: float | None = None
    reason: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def quiet_optuna() -> None:
    """Progress lines replace Optuna's log (its warnings included: a dropped connection is
    one line of the search's, not Optuna's traceback); heartbeats are experimental by
    design."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def node_name() -> str:
    """The Ray node id inside a Ray worker, else the host name."""
    ray = sys.modules.get("ray")  # imported by Ray's own worker process, never here
    if ray is not None and ray.is_initialized():
        return ray.get_runtime_context().get_node_id()
    return socket.gethostname()


def warm_up(spec: StudySpec, storage_url: str, data_dir: str | None, outage_s: float) -> None:
    """What a runner does before its first trial: the imports, the dataset into the process's
    cache, a model built, an optimizer made, the storage opened (its engine and Optuna's schema
    check). Torch imports its compiler (``torch._dynamo``) when a process makes its first
    optimizer: 1–5 s that the first trial would otherwise spend before its first epoch."""
    inspect_setting(spec.dataset, spec.model, data_dir=data_dir, augment=spec.augment)
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    open_storage(storage_url, outage_s=outage_s)


_STUDIES: dict[tuple[str, str, bool], optuna.Study] = {}


def _study(job: TrialJob) -> optuna.Study:
    """The trial's study with its pruner, loaded once per process."""
    key = (job.storage_url, job.study_name, job.prune)
    if key not in _STUDIES:
        _STUDIES[key] = optuna.load_study(
            study_name=job.study_name,
            storage=open_storage(job.storage_url, outage_s=job.outage_s),
            pruner=make_pruner(job.spec) if job.prune else optuna.pruners.NopPruner(),
            sampler=optuna.samplers.RandomSampler(),  # the driver sampled; nothing to fit here
        )
    return _STUDIES[key]


def _history(trial: optuna.Trial, checkpoint: Path) -> list[dict[str, Any]]:
    """The epochs the trial's checkpoint holds; a damaged one is removed and noted."""
    if not checkpoint.is_file():
        return []
    try:
        return load_checkpoint(checkpoint)["history"]
    except CheckpointError as exc:
        checkpoint.unlink(missing_ok=True)
        trial.set_user_attr("checkpoint_discarded", str(exc))
        return []


def run_trial(job: TrialJob, on_epoch_hook: EpochHook | None = None) -> TrialOutcome:
    """Train the trial of ``job`` (from its checkpoint if it has one) and return its outcome,
    with where its time went (``seconds``: inside epochs, and in all)."""
    started, in_epochs = time.perf_counter(), [0.0]
    outcome = _run_trial(job, on_epoch_hook, in_epochs)
    seconds = {"epochs": round(in_epochs[0], 3), "trial": round(time.perf_counter() - started, 3)}
    return dataclasses.replace(outcome, attrs={**outcome.attrs, "seconds": seconds})


def _run_trial(
    job: TrialJob, on_epoch_hook: EpochHook | None, in_epochs: list[float]
) -> TrialOutcome:
    quiet_optuna()
    try:
        study = _study(job)
        storage = open_storage(job.storage_url, outage_s=job.outage_s)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, job.number)
        trial = optuna.Trial(study, trial_id)
        worker = {"node": node_name(), "pid": os.getpid(), "run": job.run_id}
        trial.set_user_attr("worker", worker)

        # Epochs the checkpoint holds but the trial has not recorded (a runner lost between the
        # checkpoint and the report) are reported now: every epoch is trained and reported once.
        history = _history(trial, Path(job.checkpoint_dir) / CHECKPOINT_NAME)
        reported = set(trial._cached_frozen_trial.intermediate_values)  # read by Trial()
        if history:
            attempts = trial.user_attrs.get("attempts", [])
            attempts.append({"resumed_from": len(history), "reported_before": len(reported)})
            storage.set_trial_user_attrs(
                trial_id, {"attempts": attempts, "resumed_from_epoch": len(history)}
            )
        for metrics in history:
            if metrics["epoch"] not in reported:
                trial.report(metrics["val_acc"], int(metrics["epoch"]))
        if history and len(history) < job.spec.epochs and trial.should_prune():
            return TrialOutcome("pruned", reason=f"pruned after epoch {len(history)}")

        def on_epoch(epoch: int, metrics: dict) -> None:  # epoch is 1-based
            in_epochs[0] += metrics["seconds"]
            if on_epoch_hook is not None:
                on_epoch_hook(job, epoch)
            trial.report(metrics["val_acc"], epoch)
            # After the last epoch the run is complete: nothing is left to save by pruning it.
            if epoch < job.spec.epochs and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        config = job.spec.train_config(
            job.optimizer,
            job.hparams,
            seed=job.seed,
            device=job.device,
            data_dir=job.data_dir,
            checkpoint_dir=job.checkpoint_dir,
            resume=True,
        )
        result = train(config, on_epoch=on_epoch)
    except optuna.TrialPruned as exc:
        return TrialOutcome("pruned", reason=str(exc))
    except StorageError as exc:
        return TrialOutcome("requeue", reason=str(exc))  # the database, not the trial
    except CheckpointWriteError as exc:
        return TrialOutcome("stop", reason=str(exc))
    except Exception as exc:
        return TrialOutcome("fail", reason=f"{type(exc).__name__}: {exc}")
    if result.status != "completed":
        return TrialOutcome("fail", reason=f"{result.status}: {result.reason}")
    return TrialOutcome(
        "complete", value=result.best_val_acc, attrs={"best_epoch": result.best_epoch}
    )
