"""The driver: create the studies of a spec, launch workers (Ray, or in-process), show progress,
and leave the storage consistent whatever happens (Ctrl-C, a dead worker, a killed driver)."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from ._spec import StudySpec
from ._storage import MAX_RETRY, open_storage, redact
from ._worker import TrainingObjective, WorkerTask, counted_trials, quiet_optuna, run_worker

ROOT = Path(__file__).resolve().parents[1]
# A worker process that dies (OOM, preemption, kill) is restarted this many times by Ray; its
# trial is failed by heartbeat and queued again.
WORKER_RETRIES = 10


@dataclass(frozen=True)
class StudyProgress:
    study: str
    optimizer: str
    target: int
    complete: int
    pruned: int
    failed: int
    running: int
    best_value: float | None
    best_trial: int | None
    epochs: int  # epochs trained, summed over trials (from their per-epoch reports)

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.failed


def create_studies(spec: StudySpec, storage: RDBStorage) -> None:
    """Create (or reopen) one study per optimizer, tagged with the setting it belongs to."""
    for opt in spec.optimizers:
        study = optuna.create_study(
            study_name=spec.study_name(opt),
            storage=storage,
            direction="maximize",
            load_if_exists=True,
        )
        attrs = {
            "spec": spec.name,
            "dataset": spec.dataset,
            "model": spec.model,
            "optimizer": opt,
            "space": spec.space,
            "epochs": spec.epochs,
            "batch_size": spec.batch_size,
            "objective": "best validation accuracy (fraction)",
        }
        for key, value in attrs.items():
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)


def progress(spec: StudySpec, storage: RDBStorage) -> list[StudyProgress]:
    rows = []
    for opt in spec.optimizers:
        name = spec.study_name(opt)
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        counted = counted_trials(trials)
        complete = [t for t in counted if t.state == TrialState.COMPLETE]
        best = max(complete, key=lambda t: t.value) if complete else None
        rows.append(
            StudyProgress(
                study=name,
                optimizer=opt,
                target=spec.trials_for(opt),
                complete=len(complete),
                pruned=sum(t.state == TrialState.PRUNED for t in counted),
                failed=sum(t.state == TrialState.FAIL for t in counted),
                running=sum(t.state == TrialState.RUNNING for t in counted),
                best_value=best.value if best else None,
                best_trial=best.number if best else None,
                epochs=sum(len(t.intermediate_values) for t in trials),
            )
        )
    return rows


def format_progress(rows: list[StudyProgress], elapsed: float) -> str:
    parts = []
    for r in rows:
        best = f"{100 * r.best_value:.2f}%" if r.best_value is not None else "-"
        parts.append(f"{r.optimizer} {r.done}/{r.target} best {best}")
    running = sum(r.running for r in rows)
    return f"[{elapsed:6.0f}s] " + " | ".join(parts) + f" | running {running}"


def format_summary(rows: list[StudyProgress]) -> str:
    width = max(len(r.study) for r in rows)
    lines = [
        f"{'study':<{width}}  {'complete':>8} {'pruned':>6} {'failed':>6} {'epochs':>6}  "
        f"{'best val %':>10}  best trial"
    ]
    for r in rows:
        best = f"{100 * r.best_value:10.2f}" if r.best_value is not None else f"{'-':>10}"
        trial = f"#{r.best_trial}" if r.best_trial is not None else "-"
        lines.append(
            f"{r.study:<{width}}  {r.complete:>8} {r.pruned:>6} {r.failed:>6} {r.epochs:>6}  "
            f"{best}  {trial}"
        )
    return "\n".join(lines)


def requeue_interrupted(spec: StudySpec, storage: RDBStorage, run_id: str) -> int:
    """Fail this run's RUNNING trials and queue each again with the same parameters."""
    retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    n = 0
    for opt in spec.optimizers:
        study = optuna.load_study(study_name=spec.study_name(opt), storage=storage)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get("worker", {}).get("run") != run_id:
                continue
            try:
                storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # it finished in the meantime
            retry(study, storage.get_trial(t._trial_id))
            n += 1
    return n


class _Ray:
    """Workers as Ray tasks: a local Ray by default, or a cluster at ``address``."""

    def __init__(self, address: str | None, say: Callable[[str], None]) -> None:
        import ray

        self.ray = ray
        self.say = say
        # A Ray this process already joined (a notebook, a benchmark) is used as it is.
        self.owned = not ray.is_initialized()
        if self.owned:
            env = {"RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "1"}  # CPU trials must not see the GPUs
            if address is None:
                # Workers import the project from the checkout, installed or not.
                path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
                env["PYTHONPATH"] = path
            ray.init(
                address=address,
                runtime_env={"env_vars": env},
                include_dashboard=False,
                log_to_driver=True,
                logging_level=logging.ERROR,  # keeps start-up notices out of the progress lines
            )
        resources = ray.cluster_resources()
        say(
            f"ray: {'local' if address is None else address} — "
            f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs, "
            f"{len(ray.nodes())} node(s)"
        )

    def gpus_available(self) -> float:
        return self.ray.cluster_resources().get("GPU", 0.0)

    def start(
        self, task: WorkerTask, workers: int, cpus: float, gpus: float, objective_cls: type
    ) -> list:
        remote = self.ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=WORKER_RETRIES)(
            run_worker
        )
        return [remote.remote(task, i, objective_cls) for i in range(workers)]

    def wait(self, futures: list, timeout: float) -> list:
        ready, _ = self.ray.wait(futures, num_returns=len(futures), timeout=timeout)
        for f in ready:
            try:
                self.ray.get(f)
            except self.ray.exceptions.RayError as exc:
                # Its retries are spent; the other workers finish the studies.
                first = (
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                )
                self.say(f"a worker was lost for good ({type(exc).__name__}: {first})")
        return [f for f in futures if f not in ready]

    def stop(self, futures: list) -> None:
        for f in futures:
            self.ray.cancel(f, force=True)
        if self.owned:
            self.ray.shutdown()


def run(
    spec: StudySpec,
    *,
    storage_url: str,
    executor: str = "ray",
    ray_address: str | None = None,
    timeout: float | None = None,
    heartbeat_interval: int = 10,
    grace_period: int | None = None,
    data_dir: str | None = None,
    say: Callable[[str], None] = print,
    poll_s: float = 2.0,
    objective_cls: type[TrainingObjective] = TrainingObjective,
) -> list[StudyProgress]:
    """Run the search of ``spec``; the same call again continues the same studies."""
    quiet_optuna()
    storage = open_storage(storage_url)
    create_studies(spec, storage)
    run_id = uuid.uuid4().hex[:12]
    deadline = time.time() + timeout if timeout else None
    res = spec.resources
    gpus = res.gpus_per_trial
    say(
        f"search {spec.name}: {spec.dataset}/{spec.model}, optimizers {', '.join(spec.optimizers)}, "
        f"{spec.epochs} epochs/trial, space {spec.space}, pruner {spec.pruner.kind}, "
        f"storage {redact(storage_url)}"
    )
    backend = None
    if all(r.done >= r.target and not r.running for r in progress(spec, storage)):
        say("every study already has its trial count: nothing to run")
        executor = "none"
    elif executor == "ray":
        backend = _Ray(ray_address, say)
    if backend is not None and gpus > 0 and backend.gpus_available() == 0:
        say("no GPU in the Ray cluster: running the trials on CPUs")
        gpus = 0.0
    task = WorkerTask(
        spec=spec,
        storage_url=storage_url,
        run_id=run_id,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        deadline=deadline,
        device="cuda" if gpus > 0 else "cpu",
        data_dir=data_dir,
    )
    start = time.time()
    last = ""
    futures: list = []
    try:
        if executor == "local":
            run_worker(task, 0, objective_cls)
        elif backend is not None:
            futures = backend.start(task, res.workers, res.cpus_per_trial, gpus, objective_cls)
            while futures:
                futures = backend.wait(futures, timeout=poll_s)
                line = format_progress(progress(spec, storage), time.time() - start)
                if line.split("] ", 1)[1] != last:
                    say(line)
                    last = line.split("] ", 1)[1]
            backend.stop([])
    except KeyboardInterrupt:
        if backend is not None:
            backend.stop(futures)
        n = requeue_interrupted(spec, storage, run_id)
        say(
            f"interrupted: {n} running trial(s) marked FAIL and queued again; run the same command to continue"
        )
        raise
    rows = progress(spec, storage)
    say(format_summary(rows))
    return rows


def dashboard_hint(storage_url: str) -> str:
    return f"optuna-dashboard {redact(storage_url)}"
