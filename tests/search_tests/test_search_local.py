"""The search loop in-process (no Ray): trial counts, continuation, pruning, diverging trials."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

from search import counted_trials, open_storage, run

from .conftest import trials_of


def _run(spec, url, **kw):
    return run(
        spec, storage_url=url, executor="local", heartbeat_interval=2, say=lambda _: None, **kw
    )


def test_each_study_gets_its_trial_count_and_a_rerun_continues(tiny_spec, sqlite_url):
    spec = tiny_spec(n_trials=2, epochs=1)
    rows = _run(spec, sqlite_url)
    assert [r.complete for r in rows] == [2, 2]
    more = spec.replace(n_trials=3)
    _run(more, sqlite_url)
    for opt, trials in trials_of(sqlite_url, more).items():
        assert [t.number for t in trials] == [0, 1, 2], opt
        assert all(t.state == TrialState.COMPLETE for t in trials)
        assert all(0 <= t.value <= 1 for t in trials)
        hp = trials[0].user_attrs["hparams"]
        assert hp["lr"] == trials[0].params["lr"]
    _run(more, sqlite_url)  # nothing left to do: no new trial
    assert all(len(t) == 3 for t in trials_of(sqlite_url, more).values())


def test_pruning_spends_fewer_epochs_and_stores_pruned_curves(tiny_spec, sqlite_url):
    base = dict(optimizers=("sgd",), epochs=4, n_trials=8, train_subset=192)
    unpruned = tiny_spec(name="full", pruner="none", **base)
    pruned = tiny_spec(name="pruned", pruner="median", **base)
    full_rows = _run(unpruned, sqlite_url)
    pruned_rows = _run(pruned, sqlite_url)
    assert full_rows[0].epochs == 8 * 4
    assert pruned_rows[0].pruned >= 1
    assert pruned_rows[0].epochs < full_rows[0].epochs
    for t in trials_of(sqlite_url, pruned)["sgd"]:
        steps = sorted(t.intermediate_values)
        assert steps == list(range(1, len(steps) + 1))  # one validation value per epoch
        if t.state == TrialState.PRUNED:
            assert 1 <= len(steps) < 4


def test_a_diverging_trial_fails_with_its_reason_and_the_study_goes_on(tiny_spec, sqlite_url):
    spec = tiny_spec(optimizers=("sgd",), n_trials=3, epochs=1)
    storage = open_storage(sqlite_url)
    from search import create_studies

    create_studies(spec, storage)
    study = optuna.load_study(study_name=spec.study_name("sgd"), storage=storage)
    study.enqueue_trial({"lr": 1.0, "weight_decay": 1e-2, "momentum": 0.99})  # sane
    # An lr far outside the space: the loss overflows in the first epoch.
    study.enqueue_trial({"lr": 1e12, "weight_decay": 1e-2, "momentum": 0.99}, skip_if_exists=False)
    with pytest.warns(UserWarning, match="is out of range for distribution"):
        _run(spec, sqlite_url)
    trials = trials_of(sqlite_url, spec)["sgd"]
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    reason = trials[1].user_attrs["fail_reason"]
    assert reason.startswith("diverged") and ("nan" in reason.lower() or "inf" in reason.lower())
    assert math.isfinite(trials[2].value)
    assert len(counted_trials(trials)) == 3
