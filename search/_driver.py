"""The driver: it owns the studies of a spec, asks Optuna for each trial, launches it on a
runner with its CPU/GPU share, keeps at most ``workers`` in flight, and tells Optuna each
result.

Counts are exact by construction: a trial is asked only while its study has a slot left, under
the study's lock in the database, so several drivers on one storage share the slots instead of
each taking them all. A GPU is held only while a trial trains, and the driver knows every trial
in flight: Ctrl-C or SIGTERM fails them and queues them again, and they resume from their
checkpoints when the same command runs again.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from training import inspect_setting

from ._checkpoints import check_checkpoint_dir, default_checkpoint_dir, remove_checkpoint
from ._executors import InProcess, RayRunners, TrialFn, shipped_modules, start_ray
from ._inflight import Flight, Heartbeat, InFlight
from ._locks import study_lock
from ._progress import StudyProgress, format_progress, format_summary, progress_row
from ._sampling import make_pruner, make_sampler
from ._signals import signals_to_flag
from ._space import space_name, suggest
from ._spec import StudySpec
from ._storage import (
    OUTAGE_S,
    ResilientStorage,
    absolute_url,
    open_storage,
    redact,
)
from ._studies import (
    confirmations_due,
    counted_trials,
    create_studies,
    enqueue_confirmations,
    fail_and_requeue,
    fail_stale,
    launchable,
    lineage_root,
)
from ._trial import TrialJob, TrialOutcome, quiet_optuna, run_trial, warm_up

#: Times a trial whose runner died runs again in the same driver (from its last checkpoint)
#: before it fails with the reason.
WORKER_RETRIES = 3


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: the trials in flight were queued again."""

    def __init__(self, signum: int, requeued: int) -> None:
        super().__init__(signum, requeued)
        self.signum, self.requeued = signum, requeued


class SearchStopped(RuntimeError):
    """The search cannot go on (a checkpoint that cannot be written); one line. The trials in
    flight were queued again: the same command continues once the cause is fixed."""


class _Search:
    """One run of the driver's loop over the studies of a spec."""

    def __init__(
        self,
        spec: StudySpec,
        storage: ResilientStorage,
        storage_url: str,
        executor: Any,
        *,
        checkpoint_dir: Path,
        deadline: float | None,
        trial_timeout: float | None,
        data_dir: str | None,
        say: Callable[[str], None],
        poll_s: float,
        heartbeat_s: float,
        grace_s: float,
    ) -> None:
        self.spec, self.storage, self.storage_url = spec, storage, storage_url
        self.executor, self.say, self.poll_s = executor, say, poll_s
        self.checkpoint_dir, self.deadline = checkpoint_dir, deadline
        self.trial_timeout, self.data_dir, self.grace_s = trial_timeout, data_dir, grace_s
        self.run_id = uuid.uuid4().hex[:12]
        self.samplers = {opt: make_sampler(spec) for opt in spec.optimizers}
        # Loaded with their sampler and their pruner, as single-process Optuna would.
        self.studies = {
            opt: optuna.load_study(
                study_name=spec.study_name(opt),
                storage=storage,
                sampler=self.samplers[opt],
                pruner=make_pruner(spec),
            )
            for opt in spec.optimizers
        }
        self.inflight = InFlight()
        self.heartbeat = Heartbeat(storage, self.inflight, heartbeat_s)
        self.noticed: set[tuple[str, int]] = set()
        self.waiting_on: frozenset[int] = frozenset()
        self.started = time.time()
        self.epoch_s = 0.0  # runner time inside epochs, over the trials this run finished

    # -- the loop -------------------------------------------------------------------------

    def loop(self, caught: list[int]) -> None:
        last = ""
        while True:
            if caught:
                raise Interrupted(caught[0], self.requeue_inflight("interrupted: queued again"))
            snapshot = self.snapshot()
            line = format_progress(
                [progress_row(self.spec, opt, trials) for opt, trials in snapshot.items()]
            )
            if line != last:
                self.say(f"[{time.time() - self.started:6.0f}s] {line}")
                last = line
            if self.watch(snapshot):
                continue  # a trial timed out: the snapshot no longer says what runs
            if not self.launch(snapshot):
                self.executor.release_idle()  # nothing left to start: give the shares back
            if not len(self.inflight):
                foreign = self.foreign_running(snapshot)
                if not foreign:
                    break
                self.announce_wait(foreign)
            handles = [f.handle for f in self.inflight]
            for handle, outcome in self.executor.wait(handles, self.poll_s):
                self.finish(handle, outcome)

    def snapshot(self) -> dict[str, list[FrozenTrial]]:
        """Every study's trials, after failing and queueing again the stale trials of a
        stopped driver (or of another client) and queueing the confirmation runs due."""
        out = {}
        ours = self.inflight.ids()
        for opt, study in self.studies.items():
            trials = study.get_trials(deepcopy=False)
            if _not_ours(trials, ours):
                failed = fail_stale(self.storage, study, self.grace_s, ours)
                if failed:
                    self.say(
                        f"{opt}: trial(s) {failed} queued again: no heartbeat for "
                        f"{self.grace_s:g} s (their driver stopped)"
                    )
                    trials = study.get_trials(deepcopy=False)
            if confirmations_due(self.spec, opt, trials) and enqueue_confirmations(
                self.spec, opt, self.storage, study
            ):
                trials = study.get_trials(deepcopy=False)
            out[opt] = trials
        return out

    def foreign_running(
        self, snapshot: dict[str, list[FrozenTrial]]
    ) -> list[tuple[str, FrozenTrial]]:
        """Trials another driver runs (or a stopped client left: they go stale, then are queued
        again)."""
        ours = self.inflight.ids()
        return [(opt, t) for opt, trials in snapshot.items() for t in _not_ours(trials, ours)]

    def announce_wait(self, foreign: list[tuple[str, FrozenTrial]]) -> None:
        ids = frozenset(t._trial_id for _, t in foreign)
        if ids == self.waiting_on:
            return
        self.waiting_on = ids
        parts = []
        for opt, t in foreign:
            age = self.storage.heartbeat_age(t._trial_id)
            seen = f"heartbeat {age:.0f} s ago" if age is not None else "no heartbeat"
            parts.append(f"{opt} #{t.number} ({seen})")
        self.say(
            f"waiting for {len(foreign)} trial(s) another driver runs: {', '.join(parts)}; "
            f"each is queued again once silent for {self.grace_s:g} s"
        )

    def launch(self, snapshot: dict[str, list[FrozenTrial]]) -> int:
        """Start trials in the free slots; return how many could still start."""
        left = {opt: launchable(self.spec, opt, trials) for opt, trials in snapshot.items()}
        if self.deadline is not None and time.time() >= self.deadline:
            return 0
        free = self.executor.slots(self.spec.resources.workers) - len(self.inflight)
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
            if self.start(opt):
                free -= 1
                taken[opt] += 1
                left[opt] -= 1
            else:
                left[opt] = 0  # another driver took the last slot
        return sum(left.values())

    def start(self, opt: str) -> bool:
        """Ask the study for a trial under its lock, if it still has a slot; launch it."""
        study = self.studies[opt]
        with study_lock(self.storage, study._study_id):
            if launchable(self.spec, opt, study.get_trials(deepcopy=False)) <= 0:
                return False
            trial = study.ask()
            self.storage.record_heartbeat(trial._trial_id)
            hparams = suggest(trial, opt, self.spec.spaces[opt])
            # The record ask() read: its attributes are the queued ones (a confirmation's seed,
            # a retry's lineage), which nothing else writes before the launch.
            frozen = trial._cached_frozen_trial
            attrs = {"hparams": hparams, "budget": self.spec.budget(), "seed": self.spec.seed}
            self.storage.set_trial_user_attrs(
                trial._trial_id, {k: v for k, v in attrs.items() if k not in frozen.user_attrs}
            )
        root = lineage_root(frozen)
        directory = self.checkpoint_dir / study.study_name / f"trial-{root}"
        if root == trial.number:
            remove_checkpoint(directory)  # a new trial never resumes someone else's run
        job = TrialJob(
            spec=self.spec,
            optimizer=opt,
            storage_url=absolute_url(self.storage_url),
            study_name=study.study_name,
            number=trial.number,
            hparams=hparams,
            checkpoint_dir=str(directory),
            run_id=self.run_id,
            seed=frozen.user_attrs.get("seed", self.spec.seed),
            prune="confirms" not in frozen.user_attrs,
            device=self.executor.device,
            data_dir=self.data_dir,
            outage_s=self.storage.outage_s,
        )
        handle = self.executor.submit(job)
        self.inflight.add(Flight(study, trial._trial_id, job, handle))
        return True

    def watch(self, snapshot: dict[str, list[FrozenTrial]]) -> int:
        """Note each trial's progress and what its runner reported; fail one with no finished
        epoch for ``trial_timeout``. Returns how many trials it failed so."""
        now, timed_out = time.time(), 0
        by_id = {t._trial_id: (opt, t) for opt, trials in snapshot.items() for t in trials}
        for flight in self.inflight:
            if flight.trial_id not in by_id:
                continue
            opt, t = by_id[flight.trial_id]
            self.notice(opt, t)
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
                timed_out += 1
        return timed_out

    def notice(self, opt: str, trial: FrozenTrial) -> None:
        """One line for what a runner recorded that the user should know (once per trial)."""
        damaged = trial.user_attrs.get("checkpoint_discarded")
        if damaged is not None and (opt, trial.number) not in self.noticed:
            self.noticed.add((opt, trial.number))
            self.say(f"warning: {opt} trial {trial.number}: {damaged}; restarted from epoch 0")

    def finish(self, handle: Any, outcome: TrialOutcome) -> None:
        flight = self.inflight.by_handle(handle)
        if flight is None:
            return  # already finished (a hung trial's runner returned after all)
        number, study = flight.job.number, flight.study
        self.epoch_s += outcome.attrs.get("seconds", {}).get("epochs", 0.0)
        if outcome.state == "lost":
            if flight.attempt <= WORKER_RETRIES:
                flight.attempt += 1
                flight.handle = self.executor.submit(flight.job)
                self.say(
                    f"{flight.job.optimizer} trial {number}: worker lost ({outcome.reason}), "
                    f"retried from epoch {flight.epochs}"
                )
                return
            outcome = TrialOutcome(
                "fail", reason=f"worker lost {flight.attempt} times: {outcome.reason}"
            )
        self.inflight.pop(flight.trial_id)
        if outcome.state in ("requeue", "stop"):
            self._requeue(flight, f"interrupted: {outcome.reason}")
            if outcome.state == "stop":
                raise SearchStopped(f"{outcome.reason}: free it and run the same command")
            return
        trial = self.storage.get_trial(flight.trial_id)
        self.notice(flight.job.optimizer, trial)
        try:
            attrs = dict(outcome.attrs)
            if outcome.reason is not None:
                key = "fail_reason" if outcome.state == "fail" else "prune_reason"
                attrs[key] = outcome.reason
            self.storage.set_trial_user_attrs(flight.trial_id, attrs)
            if outcome.state == "complete":
                study.tell(number, outcome.value)
            else:
                state = TrialState.PRUNED if outcome.state == "pruned" else TrialState.FAIL
                study.tell(number, state=state)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another driver took it as stale (this one stalled past the grace period): its
            # queued copy resumes from the checkpoint, which is therefore kept.
            self.say(f"{flight.job.optimizer} trial {number} was finished by another driver")
            self.samplers[flight.job.optimizer].forget(number)
            return
        remove_checkpoint(flight.job.checkpoint_dir)

    def _requeue(self, flight: Flight, reason: str) -> bool:
        """Fail ``flight``'s trial with ``reason`` and queue it again; its checkpoint stays."""
        self.inflight.pop(flight.trial_id)
        self.samplers[flight.job.optimizer].forget(flight.job.number)
        with (
            contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError),
            study_lock(self.storage, flight.study._study_id),
        ):
            return fail_and_requeue(
                self.storage, flight.study, flight.trial_id, reason, interrupted=True
            )
        return False

    def requeue_inflight(self, reason: str) -> int:
        """Stop every trial in flight and queue it again (checkpoints kept)."""
        flights = list(self.inflight)
        for flight in flights:
            self.executor.cancel(flight.handle)
        return sum(self._requeue(f, reason) for f in flights)

    def utilisation(self) -> str:
        """How much of the slots' time went into epochs."""
        slots = self.executor.slots(self.spec.resources.workers)
        wall = time.time() - self.started
        return (
            f"slots: {self.epoch_s / (slots * wall):.0%} of {slots} × {wall:.0f} s inside "
            f"epochs ({self.epoch_s:.0f} s)"
        )

    def close(self) -> None:
        self.heartbeat.close()
        for flight in self.inflight:
            self.executor.cancel(flight.handle)
        self.executor.close()


def _not_ours(trials: list[FrozenTrial], ours: set[int]) -> list[FrozenTrial]:
    """The RUNNING trials this driver did not launch."""
    return [t for t in trials if t.state == TrialState.RUNNING and t._trial_id not in ours]


def _left(spec: StudySpec, storage: ResilientStorage) -> int:
    """Trials to start or to wait for."""
    left = 0
    for opt in spec.optimizers:
        study = optuna.load_study(study_name=spec.study_name(opt), storage=storage)
        trials = study.get_trials(deepcopy=False)
        if confirmations_due(spec, opt, trials) and enqueue_confirmations(
            spec, opt, storage, study
        ):
            trials = study.get_trials(deepcopy=False)
        left += launchable(spec, opt, trials)
        left += sum(t.state == TrialState.RUNNING for t in trials)
    return left


def progress(spec: StudySpec, storage: ResilientStorage) -> list[StudyProgress]:
    rows = []
    for opt in spec.optimizers:
        study = optuna.load_study(study_name=spec.study_name(opt), storage=storage)
        rows.append(progress_row(spec, opt, study.get_trials(deepcopy=False)))
    return rows


def run(
    spec: StudySpec,
    *,
    storage_url: str,
    executor: str = "ray",
    ray_address: str | None = None,
    timeout: float | None = None,
    heartbeat_interval: float = 10,
    grace_period: float | None = None,
    data_dir: str | None = None,
    download: bool = False,
    checkpoint_dir: str | Path | None = None,
    say: Callable[[str], None] = print,
    poll_s: float = 1.0,
    trial_fn: TrialFn = run_trial,
    outage_s: float = OUTAGE_S,
) -> list[StudyProgress]:
    """Run the search of ``spec``; the same call again continues the same studies.

    ``trial_fn`` runs one trial (default :func:`run_trial`); tests wrap it to inject faults.
    ``download`` fetches missing dataset files into ``data_dir`` before anything starts.
    Nothing is written (no storage, no study, no log) before the setting, the checkpoint
    directory and the Ray cluster have passed their checks.
    Raises :class:`Interrupted` after Ctrl-C or SIGTERM, once the trials in flight are queued
    again, and :class:`SearchStopped` when a checkpoint cannot be written.
    """
    quiet_optuna()
    root = Path(checkpoint_dir or default_checkpoint_dir(storage_url))
    check_checkpoint_dir(root, spec)
    res = spec.resources
    if download:  # before the runners start: they read what it fetches
        inspect_setting(spec.dataset, spec.model, data_dir=data_dir, download=True)
    # Ray starts while the dataset and the model are checked (Ray in this thread: it must);
    # the storage is written once both have passed, while the runners warm up.
    pool_: Any = None
    with concurrent.futures.ThreadPoolExecutor(1) as threads:
        checked = threads.submit(
            inspect_setting, spec.dataset, spec.model, data_dir=data_dir, augment=spec.augment
        )
        owned = False
        try:
            if executor == "ray":
                owned = start_ray(ray_address, root / "ray.log", shipped_modules(spec))
                warm = functools.partial(
                    warm_up, spec, absolute_url(storage_url), data_dir, outage_s
                )

                pool_ = RayRunners(
                    ray_address,
                    res.cpus_per_trial,
                    res.gpus_per_trial,
                    trial_fn,
                    say,
                    owned=owned,
                    workers=res.workers,
                    warm_up=warm,
                )
            else:
                pool_ = InProcess(trial_fn)
            setting = checked.result()
            storage = open_storage(storage_url, role="driver", outage_s=outage_s)
            create_studies(spec, storage)
        except BaseException:
            concurrent.futures.wait([checked])
            if pool_ is not None:
                pool_.close()
            elif owned:
                import ray

                ray.shutdown()
            raise
    storage.on_outage = say
    say(
        f"search {spec.name}: {spec.dataset}/{spec.model}, optimizers {', '.join(spec.optimizers)}, "
        f"{spec.epochs} epochs/trial, space {space_name(spec.space)}, "
        f"sampler {spec.sampler_kind}, pruner {spec.pruner.kind}, storage {redact(storage_url)}"
    )
    notice = setting.notice_for(spec.optimizers)
    if notice:
        say(notice)
    if not _left(spec, storage):
        pool_.close()
        say("every study already has its trial count: nothing to run")
        rows = progress(spec, storage)
        say(format_summary(rows))
        return rows
    search = _Search(
        spec,
        storage,
        storage_url,
        pool_,
        checkpoint_dir=root,
        deadline=time.time() + timeout if timeout else None,
        trial_timeout=spec.trial_timeout,
        data_dir=data_dir,
        say=say,
        poll_s=poll_s,
        heartbeat_s=heartbeat_interval,
        grace_s=grace_period or 3 * heartbeat_interval,
    )
    with signals_to_flag(pool_) as caught:
        try:
            try:
                search.loop(caught)
            except KeyboardInterrupt:  # an in-process trial, interrupted
                signum = caught[0] if caught else signal.SIGINT
                raise Interrupted(
                    signum, search.requeue_inflight("interrupted: queued again")
                ) from None
            except SearchStopped:
                search.requeue_inflight("interrupted: the search stopped")
                raise
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
    say(search.utilisation())
    return rows
