"""The driver in-process (no Ray): exact trial counts, continuation without repeats, the grid
run once per point, budgets that stay with their study, fair launches, pruning, divergence."""

from __future__ import annotations

import itertools
import math
import time

import optuna
import pytest
from optuna.trial import TrialState

from search import SpecError, counted_trials, create_studies, open_storage, run

from .conftest import trials_of


def _run(spec, url, tmp_path, **kw):
    return run(
        spec,
        storage_url=url,
        executor="local",
        heartbeat_interval=2,
        checkpoint_dir=tmp_path / "checkpoints",
        say=lambda _: None,
        **kw,
    )


def _param_sets(trials):
    return [tuple(sorted(t.params.items())) for t in trials]


def test_each_study_gets_its_trial_count_and_a_rerun_never_repeats(
    tiny_spec, sqlite_url, tmp_path
):
    spec = tiny_spec(n_trials=3, epochs=1)
    rows = _run(spec, sqlite_url, tmp_path)
    assert [r.complete for r in rows] == [3, 3]
    more = spec.replace(n_trials=6)
    _run(more, sqlite_url, tmp_path)
    for opt, trials in trials_of(sqlite_url, more).items():
        assert [t.number for t in trials] == list(range(6)), opt
        assert all(t.state == TrialState.COMPLETE and 0 <= t.value <= 1 for t in trials)
        # TPE's random start is seeded per trial: the continued run proposes new points.
        assert len(set(_param_sets(trials))) == 6, opt
        assert trials[0].user_attrs["hparams"]["lr"] == trials[0].params["lr"]
        assert all(t.user_attrs["budget"]["epochs"] == 1 for t in trials)
    _run(more, sqlite_url, tmp_path)  # nothing left to do: no new trial
    assert all(len(t) == 6 for t in trials_of(sqlite_url, more).values())


def test_the_same_spec_reproduces_its_parameters(tiny_spec, tmp_path):
    spec = tiny_spec(optimizers=("sgd",), n_trials=2, epochs=1)
    params = []
    for i in range(2):
        url = f"sqlite:///{tmp_path / f'{i}.db'}"
        _run(spec, url, tmp_path)
        params.append(_param_sets(trials_of(url, spec)["sgd"]))
    assert params[0] == params[1]


def test_the_paper_grid_runs_every_point_once(tiny_spec, sqlite_url, tmp_path):
    spec = tiny_spec(optimizers=("sgd",), epochs=1, n_trials=8, train_subset=64)
    spec = spec.replace(space="paper-grid", sampler="grid")
    _run(spec, sqlite_url, tmp_path)
    _run(spec, sqlite_url, tmp_path)  # a rerun adds nothing
    trials = trials_of(sqlite_url, spec)["sgd"]
    # Appendix E: weight decay 0 and 5e-4 * 2^-k for k = 0..6; lr 0.1, momentum 0.9 fixed.
    expected = {0.0, 5e-4, 2.5e-4, 1.25e-4, 6.25e-5, 3.125e-5, 1.5625e-5, 7.8125e-6}
    assert sorted(t.params["weight_decay"] for t in trials) == sorted(expected)
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert {t.user_attrs["hparams"]["lr"] for t in trials} == {0.1}


def test_a_budget_change_stops_with_one_line_and_changes_nothing(tiny_spec, sqlite_url, tmp_path):
    spec = tiny_spec(optimizers=("sgd",), n_trials=1, epochs=1)
    _run(spec, sqlite_url, tmp_path)
    before = open_storage(sqlite_url).get_all_studies()[0].user_attrs
    for change in ({"epochs": 2}, {"batch_size": 32}, {"train_subset": 64}):
        with pytest.raises(SpecError, match=r"was searched with epochs=1, batch_size=64") as err:
            _run(spec.replace(**change), sqlite_url, tmp_path)
        assert "\n" not in str(err.value) and "--name" in str(err.value)
    assert open_storage(sqlite_url).get_all_studies()[0].user_attrs == before
    renamed = spec.replace(name="t2", epochs=2)
    _run(renamed, sqlite_url, tmp_path)
    assert trials_of(sqlite_url, renamed)["sgd"][0].user_attrs["budget"]["epochs"] == 2


def test_studies_are_launched_in_turn(tiny_spec, sqlite_url, tmp_path):
    spec = tiny_spec(optimizers=("sgd", "adam", "adamsrt"), n_trials=2, epochs=1, train_subset=64)
    _run(spec, sqlite_url, tmp_path)
    starts = sorted(
        (t.datetime_start, opt) for opt, ts in trials_of(sqlite_url, spec).items() for t in ts
    )
    assert [opt for _, opt in starts] == ["sgd", "adam", "adamsrt"] * 2


def test_timeout_stops_new_starts(tiny_spec, sqlite_url, tmp_path):
    spec = tiny_spec(optimizers=("sgd", "adam"), n_trials=3, epochs=1, train_subset=64)
    timeout = 5.0

    def slow_trial(job):
        from search import run_trial

        # Longer than the whole timeout from its own start, which comes after the deadline was
        # set: the deadline passes while it trains, whatever the machine's speed.
        time.sleep(timeout + 1.0)
        return run_trial(job)

    _run(spec, sqlite_url, tmp_path, timeout=timeout, trial_fn=slow_trial)
    counts = {opt: len(ts) for opt, ts in trials_of(sqlite_url, spec).items()}
    assert counts == {"sgd": 1, "adam": 0}
    _run(spec, sqlite_url, tmp_path)  # the same command finishes the search
    assert {opt: len(ts) for opt, ts in trials_of(sqlite_url, spec).items()} == {
        "sgd": 3,
        "adam": 3,
    }


def test_pruning_spends_fewer_epochs_and_stores_pruned_curves(tiny_spec, sqlite_url, tmp_path):
    base = dict(optimizers=("sgd",), epochs=4, n_trials=6, train_subset=128)
    unpruned = tiny_spec(name="full", pruner="none", **base)
    pruned = tiny_spec(name="pruned", pruner="median", **base)
    full_rows = _run(unpruned, sqlite_url, tmp_path)
    pruned_rows = _run(pruned, sqlite_url, tmp_path)
    assert full_rows[0].epochs == 6 * 4
    assert pruned_rows[0].pruned >= 1
    assert pruned_rows[0].epochs < full_rows[0].epochs
    for t in trials_of(sqlite_url, pruned)["sgd"]:
        steps = sorted(t.intermediate_values)
        assert steps == list(range(1, len(steps) + 1))  # one validation value per epoch
        if t.state == TrialState.PRUNED:
            assert 1 <= len(steps) < 4
            assert t.user_attrs["prune_reason"] == f"pruned after epoch {len(steps)}"
    assert not list((tmp_path / "checkpoints").rglob("*.pt"))


def test_a_diverging_trial_fails_with_its_reason_and_the_study_goes_on(
    tiny_spec, sqlite_url, tmp_path
):
    spec = tiny_spec(optimizers=("sgd",), n_trials=3, epochs=1, train_subset=256)
    storage = open_storage(sqlite_url)
    create_studies(spec, storage)
    study = optuna.load_study(study_name=spec.study_name("sgd"), storage=storage)
    study.enqueue_trial({"lr": 1.0, "weight_decay": 1e-2, "momentum": 0.99})  # sane
    # An lr far outside the space: the loss overflows in the first epoch.
    study.enqueue_trial({"lr": 1e12, "weight_decay": 1e-2, "momentum": 0.99}, skip_if_exists=False)
    with pytest.warns(UserWarning, match="is out of range for distribution"):
        _run(spec, sqlite_url, tmp_path)
    trials = trials_of(sqlite_url, spec)["sgd"]
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    reason = trials[1].user_attrs["fail_reason"]
    assert reason.startswith("diverged") and ("nan" in reason.lower() or "inf" in reason.lower())
    assert math.isfinite(trials[2].value)
    assert len(counted_trials(trials)) == 3


def test_paper_grid_points_are_the_cartesian_product(tiny_spec):
    from search import grid_points

    spec = tiny_spec(optimizers=("adamsrt",), n_trials=16).replace(
        space="paper-grid", sampler="grid"
    )
    points = grid_points(spec, "adamsrt")
    wds = [0.0] + [5e-4 / 2**k for k in range(7)]
    assert sorted((p["weight_decay"], p["beta2"]) for p in points) == sorted(
        itertools.product(wds, [0.99, 0.999])
    )


def test_confirmation_retrains_the_best_trials_on_new_seeds(tiny_spec, sqlite_url, tmp_path):
    from search import ConfirmSpec

    from .conftest import uninterrupted

    spec = tiny_spec(optimizers=("sgd",), n_trials=3, epochs=2, train_subset=64, pruner="median")
    spec = spec.replace(confirm=ConfirmSpec(top=2, seeds=2))
    rows = _run(spec, sqlite_url, tmp_path)
    trials = trials_of(sqlite_url, spec)["sgd"]
    search = [t for t in trials if "confirms" not in t.user_attrs]
    confirm = [t for t in trials if "confirms" in t.user_attrs]
    complete = [t for t in search if t.state == TrialState.COMPLETE]
    top = sorted(complete, key=lambda t: (-t.value, t.number))[:2]
    assert len(search) == 3
    assert sorted((t.user_attrs["confirms"], t.user_attrs["seed"]) for t in confirm) == sorted(
        (t.number, seed) for t in top for seed in (1, 2)
    )
    for t in confirm:  # the same parameters on another seed, trained to the end
        source = trials[t.user_attrs["confirms"]]
        assert t.params == source.params and t.state == TrialState.COMPLETE
        assert len(t.intermediate_values) == 2
        again = uninterrupted(
            spec.replace(seed=t.user_attrs["seed"]), "sgd", t.user_attrs["hparams"]
        )
        assert t.value == again.best_val_acc
    assert (rows[0].done, rows[0].confirmed, rows[0].confirm_target) == (3, 4, 4)
    means = {
        n: sum(t.value for t in confirm if t.user_attrs["confirms"] == n) / 2
        for n in {t.user_attrs["confirms"] for t in confirm}
    }
    best = max(means, key=lambda n: (means[n], -n))
    assert rows[0].confirmed_best.trial.number == best
    assert rows[0].confirmed_best.score == pytest.approx(means[best], abs=1e-12)
    _run(spec, sqlite_url, tmp_path)  # nothing left: no new trial
    assert len(trials_of(sqlite_url, spec)["sgd"]) == 7
