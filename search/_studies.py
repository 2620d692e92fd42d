"""The studies of a spec in the storage: their identity, their counting rules, and what is queued
in them (grid points, confirmation runs, retries of interrupted trials).

A study keeps for life the budget and the space it was created with. Its count is of the trials
that used up a slot: a trial failed by an interruption and queued again no longer counts, its
WAITING copy carries the work on (and resumes from the checkpoint of the first trial of its
lineage). Every write that creates trials happens under the study's lock (``_locks.py``), so
several drivers on one storage queue each grid point, confirmation run and retry once.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from ._locks import study_lock
from ._space import grid_point, grid_size
from ._spec import SpecError, StudySpec
from ._storage import ResilientStorage

# User attributes a queued copy keeps: what to train and with which budget, not who ran it.
KEPT_ATTRS = ("hparams", "budget", "seed", "confirms")
#: Times a trial is queued again after a lost driver (a stale heartbeat); interruptions
#: (Ctrl-C, SIGTERM, a database or disk the search stopped for) do not count.
RETRY_LIMIT = 3


def retried_trial_numbers(trials: Iterable[FrozenTrial]) -> set[int]:
    """Trials that were failed by an interruption and queued again."""
    retried: set[int] = set()
    for t in trials:
        retried.update(t.system_attrs.get("retry_history", ()))
    return retried


def counted_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that use up the study's trial count: all but the ones queued again."""
    retried = retried_trial_numbers(trials)
    return [t for t in trials if not (t.state == TrialState.FAIL and t.number in retried)]


def search_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The counted trials of the search itself (not its confirmation runs)."""
    return [t for t in counted_trials(trials) if "confirms" not in t.user_attrs]


def lineage_root(trial: FrozenTrial) -> int:
    """The number of the first trial of ``trial``'s retries (its own number if none)."""
    return trial.system_attrs.get("failed_trial", trial.number)


def launchable(spec: StudySpec, opt: str, trials: list[FrozenTrial]) -> int:
    """How many trials of ``opt``'s study may start: queued ones, and new ones up to the count."""
    waiting = sum(t.state == TrialState.WAITING for t in counted_trials(trials))
    if grid_size(spec.spaces[opt]) is not None:
        return waiting  # the enqueued points, and nothing else
    return waiting + max(0, spec.trials_for(opt) - len(search_trials(trials)))


def _identity_line(identity: dict[str, Any]) -> str:
    budget = ", ".join(f"{k}={v}" for k, v in identity["budget"].items())
    return f"{budget}, space {identity['search_space']}"


def create_studies(spec: StudySpec, storage: ResilientStorage) -> dict[str, optuna.Study]:
    """Create (or reopen) one study per optimizer, tagged with its setting and identity, with
    its grid points queued; return them by optimizer.

    A study keeps the budget and space it was created with: reopening it with others is
    refused (its trials would compare unlike runs), and its attributes are only ever added.
    """
    studies = {}
    for opt in spec.optimizers:
        name = spec.study_name(opt)
        study = optuna.create_study(
            study_name=name, storage=storage, direction="maximize", load_if_exists=True
        )
        identity = spec.identity(opt)
        had = {k: study.user_attrs.get(k) for k in identity}
        # Studies made before spaces were data have no record of theirs: they take this one.
        had["search_space"] = had["search_space"] or identity["search_space"]
        if had["budget"] is not None and had != identity:
            raise SpecError(
                f"study {name!r} was searched with {_identity_line(had)}, but this run asks "
                f"{_identity_line(identity)}: run it with those, or start a new search under "
                "another name (--name)"
            )
        attrs = {
            "spec": spec.name,
            "dataset": spec.dataset,
            "model": spec.model,
            "optimizer": opt,
            "space": spec.study_name(opt).rsplit("-", 1)[1],
            **identity,
            "epochs": spec.epochs,
            "batch_size": spec.batch_size,
            "objective": "best validation accuracy (fraction)",
        }
        for key, value in attrs.items():
            if key not in study.user_attrs:
                study.set_user_attr(key, value)
        enqueue_grid(spec, opt, storage, study)
        studies[opt] = study
    return studies


def grid_indices(spec: StudySpec, opt: str) -> list[int]:
    """Which points of ``opt``'s grid the study runs, in a seeded order."""
    size = grid_size(spec.spaces[opt])
    if size is None:
        return []
    return random.Random(spec.seed).sample(range(size), spec.trials_for(opt))


def grid_points(spec: StudySpec, opt: str) -> list[dict[str, float]]:
    return [grid_point(spec.spaces[opt], i) for i in grid_indices(spec, opt)]


def enqueue_grid(spec: StudySpec, opt: str, storage: ResilientStorage, study: optuna.Study) -> int:
    """Queue the grid points the study does not have yet; return how many."""
    points = grid_points(spec, opt)
    if not points:
        return 0
    with study_lock(storage, study._study_id):
        # A queued point keeps its parameters in "fixed_params" until a driver asks for it.
        have = {
            _key(t.params or t.system_attrs.get("fixed_params", {}))
            for t in study.get_trials(deepcopy=False)
        }
        missing = [p for p in points if _key(p) not in have]
        for point in missing:
            study.enqueue_trial(point, skip_if_exists=False)
    return len(missing)


def _key(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


def confirmations_due(spec: StudySpec, opt: str, trials: list[FrozenTrial]) -> bool:
    """Whether the study's search is over and its confirmation runs are not all queued."""
    searched = search_trials(trials)
    if not spec.confirm.top or len(searched) < spec.trials_for(opt):
        return False
    if any(not t.state.is_finished() for t in searched):
        return False
    have = sum("confirms" in t.user_attrs for t in counted_trials(trials))
    return have < spec.confirm.top * spec.confirm.seeds


def enqueue_confirmations(
    spec: StudySpec, opt: str, storage: ResilientStorage, study: optuna.Study
) -> int:
    """Once a study's search is over, queue its ``confirm.top`` best COMPLETE trials again on
    each of ``confirm.seeds`` new seeds (unpruned, as trials of their own); return how many."""
    with study_lock(storage, study._study_id):
        trials = study.get_trials(deepcopy=False)
        if not confirmations_due(spec, opt, trials):
            return 0
        complete = [t for t in search_trials(trials) if t.state == TrialState.COMPLETE]
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


def fail_and_requeue(
    storage: ResilientStorage,
    study: optuna.Study,
    trial_id: int,
    reason: str,
    *,
    interrupted: bool,
) -> bool:
    """Fail the RUNNING trial ``trial_id`` with ``reason`` and queue it again, with Optuna's
    retry callback (same parameters, its curve so far); return whether a copy was queued.

    Call it under the study's lock. ``interrupted``: the trial was stopped through no fault of
    its own (it does not count towards ``RETRY_LIMIT``). Raises UpdateFinishedTrialError
    when another driver finished the trial first.
    """
    trial = storage.get_trial(trial_id)
    interruptions = trial.system_attrs.get("interruptions", 0) + interrupted
    retries = len(trial.system_attrs.get("retry_history", ()))
    limit = RETRY_LIMIT + interruptions
    queued = retries < limit
    if not queued:
        reason += f"; not queued again: retried {retries} times (limit {RETRY_LIMIT})"
    storage.set_trial_user_attr(trial_id, "fail_reason", reason)
    if interrupted:
        storage.set_trial_system_attr(trial_id, "interruptions", interruptions)
    if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
        return False
    failed = storage.get_trial(trial_id)
    failed.user_attrs = {k: v for k, v in failed.user_attrs.items() if k in KEPT_ATTRS}
    RetryHeartbeatStaleTrialCallback(max_retry=limit, inherit_intermediate_values=True)(
        study, failed
    )
    return queued


def fail_stale(
    storage: ResilientStorage, study: optuna.Study, grace_s: float, alive: Iterable[int]
) -> list[int]:
    """Fail the study's stale trials (see ``ResilientStorage.stale_trial_ids``) and queue them
    again; ``alive``: trials this driver runs. Return the numbers of those failed."""
    alive = set(alive)
    if not storage.stale_trial_ids(study._study_id, grace_s, alive):
        return []
    failed = []
    with study_lock(storage, study._study_id):
        for trial_id in storage.stale_trial_ids(study._study_id, grace_s, alive):
            try:
                fail_and_requeue(
                    storage,
                    study,
                    trial_id,
                    f"stale: no heartbeat for {grace_s:g} s (its driver stopped)",
                    interrupted=False,
                )
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            failed.append(storage.get_trial(trial_id).number)
    return failed
