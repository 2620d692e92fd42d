"""The driver: it owns the studies of a spec, asks Optuna for each trial, launches one task per
trial (a Ray task with its CPU/GPU share, or in this process), keeps at most ``workers`` in
flight, and tells Optuna each result.

Counts are exact by construction (the driver asks only while a study has slots left, grid
points are enqueued once), a GPU is held only while a trial trains, and the driver knows every
trial in flight: Ctrl-C or SIGTERM fails them and queues them again, and they resume from their
checkpoints when the same command runs again.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import random
import signal
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from ._export import Candidate, best_candidate
from ._space import grid, suggest
from ._spec import SpecError, StudySpec
from ._storage import OUTAGE_S, StorageError, open_storage, redact
from ._trial import TrialJob, TrialOutcome, quiet_optuna, remove_checkpoint, run_trial
from ._trials import counted_trials, lineage_root, requeue

ROOT = Path(__file__).resolve().parents[1]
# Ray re-runs a trial whose worker process died (OOM, preemption, kill) this many times; the
# retry resumes from the trial's last checkpoint.
WORKER_RETRIES = 3

# How long joining a Ray cluster may take before the search stops with one line.
RAY_CONNECT_TIMEOUT_S = 10.0

TrialFn = Callable[[TrialJob], TrialOutcome]


class ClusterError(RuntimeError):
    """The Ray cluster cannot be reached, or cannot fit one trial (one clear line)."""


def _probe(address: str) -> None:
    """Fail within RAY_CONNECT_TIMEOUT_S when nothing listens at a ``host:port`` address
    (Ray's own connect waits minutes)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ClusterError(
            f"cannot reach the Ray cluster at {address} within {RAY_CONNECT_TIMEOUT_S:g} s "
            f"({reason or type(exc).__name__}): is `ray start --head` running there?"
        ) from None


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: the trials in flight were queued again."""

    def __init__(self, signum: int, requeued: int) -> None:
        super().__init__(signum, requeued)
        self.signum, self.requeued = signum, requeued


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
    confirmed: int = 0  # confirmation trials finished
    confirm_target: int = 0
    confirmed_best: Candidate | None = None  # what the export would take

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.failed


def default_checkpoint_dir(storage_url: str) -> Path:
    """Beside a SQLite file (``studies/studies.db`` → ``studies/studies-checkpoints``), so each
    storage keeps its own; ``studies/checkpoints`` for a database server."""
    parsed = sqlalchemy.engine.make_url(storage_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        database = Path(parsed.database)
        return database.with_name(f"{database.stem}-checkpoints")
    return ROOT / "studies" / "checkpoints"


def _budget_line(budget: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in budget.items())


def grid_points(spec: StudySpec, optimizer: str) -> list[dict[str, Any]] | None:
    """The grid's points in a seeded order, as many as the study's trial count."""
    axes = grid(optimizer, spec.space)
    if axes is None:
        return None
    points = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    random.Random(spec.seed).shuffle(points)
    return points[: spec.trials_for(optimizer)]


def create_studies(spec: StudySpec, storage: RDBStorage) -> None:
    """Create (or reopen) one study per optimizer, tagged with its setting and budget.

    A study keeps the budget it was created with: reopening it with another budget is refused
    (its trials would compare unlike runs), and its attributes are only ever added, never
    rewritten. Grid points are enqueued once.
    """
    budget = spec.budget()
    for opt in spec.optimizers:
        name = spec.study_name(opt)
        study = optuna.create_study(
            study_name=name, storage=storage, direction="maximize", load_if_exists=True
        )
        had = study.user_attrs.get("budget")
        if had is not None and had != budget:
            raise SpecError(
                f"study {name!r} was searched with {_budget_line(had)}, but this run asks "
                f"{_budget_line(budget)}: run it with that budget, or start a new search "
                "under another name (--name)"
            )
        attrs = {
            "spec": spec.name,
            "dataset": spec.dataset,
            "model": spec.model,
            "optimizer": opt,
            "space": spec.space,
            "budget": budget,
            "epochs": spec.epochs,
            "batch_size": spec.batch_size,
            "objective": "best validation accuracy (fraction)",
        }
        for key, value in attrs.items():
            if key not in study.user_attrs:
                study.set_user_attr(key, value)
        for point in grid_points(spec, opt) or ():
            study.enqueue_trial(point, skip_if_exists=True)


def progress(spec: StudySpec, storage: RDBStorage) -> list[StudyProgress]:
    rows = []
    for opt in spec.optimizers:
        name = spec.study_name(opt)
        study = optuna.load_study(study_name=name, storage=storage)
        rows.append(_progress_row(spec, opt, study.get_trials(deepcopy=False)))
    return rows


def _progress_row(spec: StudySpec, opt: str, trials: list[FrozenTrial]) -> StudyProgress:
    every = counted_trials(trials)  # search and confirmation runs, each lineage once
    counted = [t for t in every if "confirms" not in t.user_attrs]
    confirming = [t for t in every if "confirms" in t.user_attrs]
    complete = [t for t in counted if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    return StudyProgress(
        study=spec.study_name(opt),
        optimizer=opt,
        target=spec.trials_for(opt),
        complete=len(complete),
        pruned=sum(t.state == TrialState.PRUNED for t in counted),
        failed=sum(t.state == TrialState.FAIL for t in counted),
        running=sum(t.state == TrialState.RUNNING for t in every),
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        # A queued copy inherits its failed row's curve: count each lineage once.
        epochs=sum(len(t.intermediate_values) for t in every),
        confirmed=sum(t.state.is_finished() for t in confirming),
        confirm_target=spec.confirm.top * spec.confirm.seeds,
        confirmed_best=best_candidate(trials) if confirming else None,
    )


def search_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The counted trials of the search itself (not its confirmation runs)."""
    return [t for t in counted_trials(trials) if "confirms" not in t.user_attrs]


def launchable(spec: StudySpec, opt: str, trials: list[FrozenTrial]) -> int:
    """How many trials of ``opt``'s study may start: queued ones, and new ones up to the count."""
    waiting = sum(t.state == TrialState.WAITING for t in counted_trials(trials))
    if grid(opt, spec.space) is not None:
        return waiting  # the enqueued points, and nothing else
    return waiting + max(0, spec.trials_for(opt) - len(search_trials(trials)))


def enqueue_confirmations(
    spec: StudySpec, opt: str, study: optuna.Study, trials: list[FrozenTrial]
) -> int:
    """Once a study's search is over, queue its ``confirm.top`` best COMPLETE trials again on
    each of ``confirm.seeds`` new seeds (unpruned, as trials of their own); return how many."""
    searched = search_trials(trials)
    if not spec.confirm.top or len(searched) < spec.trials_for(opt):
        return 0
    if any(not t.state.is_finished() for t in searched):
        return 0
    complete = [t for t in searched if t.state == TrialState.COMPLETE]
    top = sorted(complete, key=lambda t: (-t.value, t.number))[: spec.confirm.top]
    have = {
        (t.user_attrs["confirms"], t.user_attrs["seed"])
        for t in counted_trials(trials)
        if "confirms" in t.user_attrs
    }
    added = 0
    for source in top:
        for seed in spec.confirm.seed_list(spec.seed):
            if (source.number, seed) in have:
                continue
            user_attrs = {k: source.user_attrs[k] for k in ("hparams", "budget")}
            user_attrs.update(confirms=source.number, seed=seed)
            study.enqueue_trial(source.params, user_attrs=user_attrs, skip_if_exists=False)
            added += 1
    return added


def format_progress(rows: list[StudyProgress], elapsed: float) -> str:
    parts = []
    for r in rows:
        best = f"{100 * r.best_value:.2f}%" if r.best_value is not None else "-"
        confirm = f" confirm {r.confirmed}/{r.confirm_target}" if r.confirm_target else ""
        parts.append(f"{r.optimizer} {r.done}/{r.target} best {best}{confirm}")
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
    for r in rows:
        c = r.confirmed_best
        if c is not None and c.confirmed:
            values = list(c.confirmations.values())
            lines.append(
                f"{r.optimizer}: trial #{c.trial.number} confirmed at {100 * c.score:.2f}% "
                f"± {100 * statistics.pstdev(values):.2f} over seeds {sorted(c.confirmations)} "
                f"(searched at {100 * c.trial.value:.2f}%)"
            )
    return "\n".join(lines)


def dashboard_hint(storage_url: str) -> str:
    return f"optuna-dashboard {redact(storage_url)}"


class _SeededPerTrial(optuna.samplers.BaseSampler):
    """A fresh sampler per trial, seeded from the spec's seed and the trial's number.

    Runs are reproducible, yet a rerun or a second driver (whose trials have other numbers)
    never replays the random start of the first: a sampler seeded from the spec alone would.
    """

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make, self._seed = make, seed
        self._inner = make(seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._inner = self._make((self._seed * 1_000_003 + trial.number) % 2**32)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):  # type: ignore[no-untyped-def]
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):  # type: ignore[no-untyped-def]
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values):  # type: ignore[no-untyped-def]
        self._inner.after_trial(study, trial, state, values)


def make_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    if spec.sampler == "random":
        return _SeededPerTrial(lambda s: optuna.samplers.RandomSampler(seed=s), spec.seed)
    # Grid studies run their enqueued points; the sampler is never consulted for them.
    return _SeededPerTrial(lambda s: optuna.samplers.TPESampler(seed=s), spec.seed)


@dataclass
class _InFlight:
    """A trial the driver launched and has not told yet."""

    study: optuna.Study
    trial_id: int
    job: TrialJob
    handle: Any
    worker: Any = None  # the task's `worker` attribute last seen (it changes on a Ray retry)
    epochs: int = 0
    last_progress: float | None = None  # when a task started or last finished an epoch


class _Heartbeat:
    """Records a heartbeat for every trial in flight, so a later driver can tell they live."""

    def __init__(self, storage: RDBStorage, interval: float) -> None:
        self.storage, self.interval = storage, interval
        self.trial_ids: set[int] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self.thread.start()

    def add(self, trial_id: int) -> None:
        self.storage.record_heartbeat(trial_id)
        with self.lock:
            self.trial_ids.add(trial_id)

    def discard(self, trial_id: int) -> None:
        with self.lock:
            self.trial_ids.discard(trial_id)

    def beat(self) -> None:
        with self.lock:
            ids = list(self.trial_ids)
        for trial_id in ids:
            self.storage.record_heartbeat(trial_id)

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            with contextlib.suppress(Exception):  # a missed beat is made up next time
                self.beat()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


class _LocalExecutor:
    """Trials in this process, one at a time (``--no-ray``): debugging, tests, a quick look."""

    name = "in-process"

    def __init__(self, trial_fn: TrialFn) -> None:
        self.trial_fn = trial_fn
        self.pending: list[tuple[object, TrialJob]] = []
        self.training = False  # a signal raises only while a trial trains

    def slots(self, workers: int) -> int:
        return 1

    def submit(self, job: TrialJob) -> object:
        handle = object()
        self.pending.append((handle, job))
        return handle

    def wait(self, handles: list, timeout: float) -> list[tuple[Any, TrialOutcome]]:
        if not self.pending:
            time.sleep(timeout)
            return []
        handle, job = self.pending.pop(0)
        self.training = True
        try:
            outcome = self.trial_fn(job)
        except StorageError:
            raise  # the driver shares the database: it stops too
        except Exception as exc:
            outcome = TrialOutcome("fail", reason=f"{type(exc).__name__}: {exc}")
        finally:
            self.training = False
        return [(handle, outcome)]

    def cancel(self, handle: object) -> None:
        self.pending = [(h, j) for h, j in self.pending if h is not handle]

    def close(self) -> None:
        self.pending.clear()


class _RayExecutor:
    """One Ray task per trial: a local Ray by default, or a cluster at ``address``."""

    def __init__(
        self,
        address: str | None,
        cpus: float,
        gpus: float,
        trial_fn: TrialFn,
        say: Callable[[str], None],
    ) -> None:
        import ray

        self.ray = ray
        # A Ray this process already joined (a notebook, a benchmark) is used as it is.
        self.owned = not ray.is_initialized()
        if self.owned:
            if address is not None:
                _probe(address)
            env = {"RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "1"}  # CPU trials must not see the GPUs
            if address is None:
                # Tasks import the project from the checkout, installed or not.
                path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
                env["PYTHONPATH"] = path
            ray.init(
                # "local": a private Ray, even when `ray start` runs on this machine.
                address=address or "local",
                runtime_env={"env_vars": env},
                include_dashboard=False,
                log_to_driver=True,
                logging_level=logging.ERROR,  # keeps start-up notices out of the progress lines
            )
        resources = ray.cluster_resources()
        self.name = "local Ray" if address is None else f"Ray at {address}"
        say(
            f"ray: {'local' if address is None else address} — "
            f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs, "
            f"{len(ray.nodes())} node(s)"
        )
        if gpus > 0 and resources.get("GPU", 0) == 0:
            say("no GPU in the Ray cluster: running the trials on CPUs")
            gpus = 0.0
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        if not any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
            self.close()
            most = max((n.get("CPU", 0) for n in nodes), default=0)
            raise ClusterError(
                f"no node of the Ray cluster can run a trial: cpus_per_trial must be at most "
                f"{most:g} (the most CPUs on one node) and gpus_per_trial at most the GPUs of "
                f"one node, but got {cpus:g} CPUs and {gpus:g} GPUs"
            )
        self.device = "cuda" if gpus > 0 else "cpu"
        self.remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=WORKER_RETRIES)(
            trial_fn
        )

    def slots(self, workers: int) -> int:
        return workers

    def submit(self, job: TrialJob) -> Any:
        return self.remote.remote(job)

    def wait(self, handles: list, timeout: float) -> list[tuple[Any, TrialOutcome]]:
        if not handles:
            time.sleep(timeout)
            return []
        ready, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        ready, _ = self.ray.wait(handles, num_returns=len(ready) or 1, timeout=0)
        done = []
        for ref in ready:
            try:
                outcome = self.ray.get(ref)
            except self.ray.exceptions.RayTaskError as exc:  # the task raised
                cause = exc.as_instanceof_cause()
                state = "requeue" if isinstance(cause, StorageError) else "fail"
                outcome = TrialOutcome(state, reason=f"{type(cause).__name__}: {cause}")
            except self.ray.exceptions.RayError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                outcome = TrialOutcome(
                    "fail", reason=f"worker lost {WORKER_RETRIES + 1} times: {first}"
                )
            done.append((ref, outcome))
        return done

    def cancel(self, handle: Any) -> None:
        self.ray.cancel(handle, force=True)

    def close(self) -> None:
        if self.owned:
            self.ray.shutdown()


@contextlib.contextmanager
def _signals_to_flag(executor: Any) -> Iterator[list[int]]:
    """Ctrl-C and SIGTERM set a flag the loop checks; an in-process trial is interrupted."""
    caught: list[int] = []

    def handler(signum: int, frame: object) -> None:
        caught.append(signum)
        if getattr(executor, "training", False):
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for s, h in previous.items():
            signal.signal(s, _after_stop(h) if caught else h)


# After a stop, a Ctrl-C pressed again within this many seconds belongs to the same stop.
STOP_GRACE_S = 10.0


def _after_stop(previous: Any) -> Callable[[int, object], None]:
    """A handler that ignores the signal for STOP_GRACE_S after a stop, then hands it to
    ``previous``. Restored at once, the default handler turned a second Ctrl-C, pressed while
    the first was reported, into a KeyboardInterrupt raised in whatever ran then (a progress
    bar's ``__del__`` at exit: a traceback on the terminal)."""
    stopped = time.monotonic()

    def handler(signum: int, frame: object) -> None:
        if time.monotonic() - stopped < STOP_GRACE_S:
            return
        original = previous if previous is not None else signal.SIG_DFL
        signal.signal(signum, original)
        if callable(original):
            original(signum, frame)
        elif original == signal.SIG_DFL:
            os.kill(os.getpid(), signum)  # now with the default action

    return handler


class _Search:
    def __init__(
        self,
        spec: StudySpec,
        storage: RDBStorage,
        storage_url: str,
        executor: Any,
        *,
        checkpoint_dir: Path,
        deadline: float | None,
        trial_timeout: float | None,
        data_dir: str | None,
        say: Callable[[str], None],
        poll_s: float,
    ) -> None:
        self.spec, self.storage, self.storage_url = spec, storage, storage_url
        self.executor, self.say, self.poll_s = executor, say, poll_s
        self.checkpoint_dir, self.deadline = checkpoint_dir, deadline
        self.trial_timeout, self.data_dir = trial_timeout, data_dir
        self.run_id = uuid.uuid4().hex[:12]
        self.studies = {
            opt: optuna.load_study(
                study_name=spec.study_name(opt),
                storage=storage,
                sampler=make_sampler(spec),
            )
            for opt in spec.optimizers
        }
        self.inflight: dict[int, _InFlight] = {}  # by trial id
        self.heartbeat = _Heartbeat(storage, storage.get_heartbeat_interval() or 10)

    # -- the loop -------------------------------------------------------------------------

    def loop(self, caught: list[int]) -> None:
        started = time.time()
        last = ""
        while True:
            if caught:
                raise Interrupted(caught[0], self.requeue_inflight())
            snapshot = self.snapshot()
            line = format_progress(
                [_progress_row(self.spec, opt, trials) for opt, trials in snapshot.items()],
                time.time() - started,
            )
            if line.split("] ", 1)[1] != last:
                self.say(line)
                last = line.split("] ", 1)[1]
            self.watch(snapshot)
            self.launch(snapshot)
            if not self.inflight and not self.foreign_running(snapshot):
                break
            for handle, outcome in self.executor.wait(
                [f.handle for f in self.inflight.values()], self.poll_s
            ):
                self.finish(handle, outcome)

    def snapshot(self) -> dict[str, list[FrozenTrial]]:
        """Every study's trials; first, a dead driver's trials are failed and queued again,
        and the confirmation runs of a study whose search is over are queued."""
        self.heartbeat.beat()  # ours are alive, whatever the heartbeat thread's timing
        out = {}
        for opt, study in self.studies.items():
            optuna.storages.fail_stale_trials(study)
            out[opt] = study.get_trials(deepcopy=False)
            if enqueue_confirmations(self.spec, opt, study, out[opt]):
                out[opt] = study.get_trials(deepcopy=False)
        return out

    def foreign_running(self, snapshot: dict[str, list[FrozenTrial]]) -> bool:
        """Trials another driver runs, or a dead one ran (they go stale, then are ours)."""
        return any(
            t.state == TrialState.RUNNING and t._trial_id not in self.inflight
            for trials in snapshot.values()
            for t in trials
        )

    def launch(self, snapshot: dict[str, list[FrozenTrial]]) -> None:
        if self.deadline is not None and time.time() >= self.deadline:
            return
        free = self.executor.slots(self.spec.resources.workers) - len(self.inflight)
        left = {opt: launchable(self.spec, opt, trials) for opt, trials in snapshot.items()}
        taken = {
            opt: sum(t.state != TrialState.WAITING for t in counted_trials(trials))
            for opt, trials in snapshot.items()
        }
        while free > 0 and any(left.values()):
            # The study furthest behind its count goes next: with --timeout every optimizer
            # gets its fair share.
            opt = min(
                (o for o in left if left[o]),
                key=lambda o: (taken[o] / self.spec.trials_for(o), self.spec.optimizers.index(o)),
            )
            self.start(opt)
            left[opt] -= 1
            taken[opt] += 1
            free -= 1

    def start(self, opt: str) -> None:
        study = self.studies[opt]
        trial = study.ask()
        self.heartbeat.add(trial._trial_id)
        frozen = self.storage.get_trial(trial._trial_id)
        hparams = suggest(trial, opt, self.spec.space)
        for key, value in (
            ("hparams", hparams),
            ("budget", self.spec.budget()),
            ("seed", self.spec.seed),
        ):
            if key not in frozen.user_attrs:
                trial.set_user_attr(key, value)
        root = lineage_root(frozen)
        directory = self.checkpoint_dir / study.study_name / f"trial-{root}"
        if root == trial.number:
            remove_checkpoint(directory)  # a new trial never resumes someone else's run
        job = TrialJob(
            spec=self.spec,
            optimizer=opt,
            storage_url=self.storage_url,
            study_name=study.study_name,
            number=trial.number,
            hparams=hparams,
            checkpoint_dir=str(directory),
            run_id=self.run_id,
            seed=frozen.user_attrs.get("seed", self.spec.seed),
            prune="confirms" not in frozen.user_attrs,
            device=getattr(self.executor, "device", "cpu"),
            data_dir=self.data_dir,
            outage_s=self.storage.outage_s,
        )
        handle = self.executor.submit(job)
        self.inflight[trial._trial_id] = _InFlight(study, trial._trial_id, job, handle)

    def watch(self, snapshot: dict[str, list[FrozenTrial]]) -> None:
        """Note each trial's progress; fail one with no finished epoch for ``trial_timeout``."""
        now = time.time()
        by_id = {t._trial_id: t for trials in snapshot.values() for t in trials}
        for trial_id, flight in list(self.inflight.items()):
            t = by_id.get(trial_id)
            if t is None:
                continue
            worker = t.user_attrs.get("worker")
            if worker is not None and worker.get("run") != self.run_id:
                worker = None  # a previous attempt's, copied before this run launched it
            epochs = len(t.intermediate_values)
            if worker is not None and (worker != flight.worker or epochs != flight.epochs):
                flight.worker, flight.epochs, flight.last_progress = worker, epochs, now
            if (
                self.trial_timeout is not None
                and flight.last_progress is not None
                and now - flight.last_progress > self.trial_timeout
            ):
                self.executor.cancel(flight.handle)
                self.finish(
                    flight.handle,
                    TrialOutcome(
                        "fail",
                        reason=f"timeout: no finished epoch for {self.trial_timeout:g} s "
                        f"(trial_timeout) after epoch {epochs}",
                    ),
                )

    def finish(self, handle: Any, outcome: TrialOutcome) -> None:
        flight = next((f for f in self.inflight.values() if f.handle is handle), None)
        if flight is None:
            return  # already finished (a hung trial's task returned after all)
        del self.inflight[flight.trial_id]
        self.heartbeat.discard(flight.trial_id)
        study, number = flight.study, flight.job.number
        if outcome.state == "requeue":
            self._requeue(flight, f"interrupted: {outcome.reason}")
            return
        try:
            if outcome.reason is not None:
                key = "fail_reason" if outcome.state == "fail" else "prune_reason"
                self.storage.set_trial_user_attr(flight.trial_id, key, outcome.reason)
            for key, value in outcome.attrs.items():
                self.storage.set_trial_user_attr(flight.trial_id, key, value)
            if outcome.state == "complete":
                study.tell(number, outcome.value)
            else:
                state = TrialState.PRUNED if outcome.state == "pruned" else TrialState.FAIL
                study.tell(number, state=state)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError) as exc:
            # Another driver took it as stale (this one stalled past the grace period): its
            # queued copy resumes from the checkpoint, which is therefore kept.
            self.say(f"trial {number} of {study.study_name} was finished elsewhere ({exc})")
            return
        remove_checkpoint(flight.job.checkpoint_dir)

    def _requeue(self, flight: _InFlight, reason: str) -> bool:
        """Fail ``flight``'s trial with ``reason`` and queue it again; its checkpoint stays."""
        self.inflight.pop(flight.trial_id, None)
        self.heartbeat.discard(flight.trial_id)
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.storage.set_trial_user_attr(flight.trial_id, "fail_reason", reason)
            if self.storage.set_trial_state_values(flight.trial_id, state=TrialState.FAIL):
                requeue(flight.study, self.storage.get_trial(flight.trial_id))
                return True
        return False

    def requeue_inflight(self) -> int:
        """Fail every trial in flight as interrupted and queue it again (checkpoints kept)."""
        return sum(
            self._requeue(f, "interrupted: queued again") for f in list(self.inflight.values())
        )

    def close(self) -> None:
        self.heartbeat.close()
        for flight in self.inflight.values():
            self.executor.cancel(flight.handle)
        self.executor.close()


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
    checkpoint_dir: str | Path | None = None,
    say: Callable[[str], None] = print,
    poll_s: float = 1.0,
    trial_fn: TrialFn = run_trial,
    outage_s: float = OUTAGE_S,
) -> list[StudyProgress]:
    """Run the search of ``spec``; the same call again continues the same studies.

    ``trial_fn`` runs one trial (default :func:`run_trial`); tests wrap it to inject faults.
    Raises :class:`Interrupted` after Ctrl-C or SIGTERM, once the trials in flight are queued
    again.
    """
    quiet_optuna()
    storage = open_storage(
        storage_url,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        outage_s=outage_s,
    )
    storage.on_outage = say
    create_studies(spec, storage)
    say(
        f"search {spec.name}: {spec.dataset}/{spec.model}, optimizers {', '.join(spec.optimizers)}, "
        f"{spec.epochs} epochs/trial, space {spec.space}, pruner {spec.pruner.kind}, "
        f"storage {redact(storage_url)}"
    )
    left = 0
    for opt in spec.optimizers:
        study = optuna.load_study(study_name=spec.study_name(opt), storage=storage)
        trials = study.get_trials(deepcopy=False)
        if enqueue_confirmations(spec, opt, study, trials):
            trials = study.get_trials(deepcopy=False)
        left += launchable(spec, opt, trials)
        left += sum(t.state == TrialState.RUNNING for t in trials)
    if not left:
        say("every study already has its trial count: nothing to run")
        say(format_summary(progress(spec, storage)))
        return progress(spec, storage)
    res = spec.resources
    pool: Any = (
        _LocalExecutor(trial_fn)
        if executor == "local"
        else _RayExecutor(ray_address, res.cpus_per_trial, res.gpus_per_trial, trial_fn, say)
    )
    search = _Search(
        spec,
        storage,
        storage_url,
        pool,
        checkpoint_dir=Path(checkpoint_dir or default_checkpoint_dir(storage_url)),
        deadline=time.time() + timeout if timeout else None,
        trial_timeout=spec.trial_timeout,
        data_dir=data_dir,
        say=say,
        poll_s=poll_s,
    )
    with _signals_to_flag(pool) as caught:
        try:
            try:
                search.loop(caught)
            except KeyboardInterrupt:  # an in-process trial, interrupted
                signum = caught[0] if caught else signal.SIGINT
                raise Interrupted(signum, search.requeue_inflight()) from None
        except Interrupted as stop:
            say(
                f"interrupted: {stop.requeued} running trial(s) queued again with their "
                "checkpoints; run the same command to continue"
            )
            raise
        finally:
            search.close()  # a second Ctrl-C meanwhile only sets the flag again
    rows = progress(spec, storage)
    say(format_summary(rows))
    return rows
