"""The search on real Ray clusters: a two-node cluster, PostgreSQL with four trials at once,
the paper's grid with three workers, a hung trial, and Ctrl-C sent to the real CLI."""

from __future__ import annotations

import signal
import time

import pytest
from optuna.trial import TrialState

import run_search
from search import counted_trials, load_spec, run

from .conftest import run_cli, trials_of, wait_for
from .faults import trial_with_faults, write_plan

pytestmark = pytest.mark.slow


def _check_consistent(spec, url):
    """Every study has exactly its count of counted trials, all finished, numbers unique."""
    for opt, trials in trials_of(url, spec).items():
        numbers = [t.number for t in trials]
        assert numbers == list(range(len(numbers))), opt
        counted = counted_trials(trials)
        assert len(counted) == spec.trials_for(opt), (opt, [t.state for t in trials])
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


@pytest.mark.xdist_group("two-node")
def test_trials_run_on_both_nodes_of_a_two_node_cluster(
    tiny_spec, sqlite_url, tmp_path, no_shared_ray, two_node_cluster
):
    # One CPU per trial and one per node: two trials at once must use both nodes.
    spec = tiny_spec(optimizers=("sgd",), n_trials=2, epochs=1, train_subset=64, workers=2)
    run(
        spec,
        storage_url=sqlite_url,
        ray_address=two_node_cluster.address,
        heartbeat_interval=2,
        checkpoint_dir=tmp_path / "checkpoints",
        say=print,
    )
    trials = trials_of(sqlite_url, spec)["sgd"]
    assert len({t.user_attrs["worker"]["node"] for t in trials}) == 2
    assert all(t.state == TrialState.COMPLETE for t in trials)
    _check_consistent(spec, sqlite_url)


def test_postgresql_with_four_trials_at_once(tiny_spec, pg_url, tmp_path, shared_ray):
    spec = tiny_spec(
        optimizers=("sgd", "adamsrt", "sgdmrt"),
        n_trials=4,
        epochs=1,
        train_subset=64,
        workers=4,
        cpus=0.5,
    )
    run(spec, storage_url=pg_url, heartbeat_interval=2, checkpoint_dir=tmp_path / "c", say=print)
    for trials in trials_of(pg_url, spec).values():
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 4  # each once, none lost
    _check_consistent(spec, pg_url)


def test_the_paper_grid_with_three_workers_runs_every_point_once(
    tiny_spec, sqlite_url, tmp_path, shared_ray
):
    spec = tiny_spec(
        optimizers=("adamsrt",), n_trials=16, epochs=1, train_subset=64, workers=3, cpus=0.5
    ).replace(space="paper-grid", sampler="grid")
    run(
        spec,
        storage_url=sqlite_url,
        heartbeat_interval=2,
        checkpoint_dir=tmp_path / "c",
        say=print,
    )
    trials = trials_of(sqlite_url, spec)["adamsrt"]
    points = sorted((t.params["weight_decay"], t.params["beta2"]) for t in trials)
    weight_decays = [0.0, *(5e-4 / 2**k for k in range(7))]
    assert points == sorted((w, b) for w in weight_decays for b in (0.99, 0.999))
    assert all(t.state == TrialState.COMPLETE for t in trials)


def test_a_hung_trial_fails_with_its_reason_and_the_study_goes_on(
    tiny_spec, sqlite_url, tmp_path, shared_ray
):
    spec = tiny_spec(optimizers=("sgd",), n_trials=2, epochs=2, train_subset=64, workers=2)
    # An epoch of the tiny model takes milliseconds; 15 s leaves room for a machine so loaded
    # that a runner gets a fraction of a core (the runners made their first optimizer, and
    # imported torch's compiler with it, in their warm-up, not inside the trial).
    spec = spec.replace(trial_timeout=15.0)
    checkpoints = tmp_path / "checkpoints"
    write_plan(checkpoints, trial=0, epoch=1, kind="hang")
    run(
        spec,
        storage_url=sqlite_url,
        heartbeat_interval=2,
        checkpoint_dir=checkpoints,
        trial_fn=trial_with_faults,
        say=print,
    )
    trials = trials_of(sqlite_url, spec)["sgd"]
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    # It hung after epoch 1's checkpoint, before that epoch's report.
    assert trials[0].user_attrs["fail_reason"] == (
        "timeout: no finished epoch for 15 s (trial_timeout) after epoch 0"
    )
    assert trials[0].intermediate_values == {}
    _check_consistent(spec, sqlite_url)


def test_ctrl_c_to_the_cli_leaves_nothing_running_and_the_rerun_finishes(
    write_spec, sqlite_url, tmp_path, shared_ray
):
    path = write_spec(optimizers=("sgd",), n_trials=3, epochs=3, train_subset=128, workers=2)
    spec = load_spec(path)
    checkpoints = tmp_path / "checkpoints"
    args = [
        "--study",
        str(path),
        "--storage",
        sqlite_url,
        "--heartbeat",
        "1",
        "--checkpoint-dir",
        str(checkpoints),
    ]
    # Trial 0 reports epoch 1, saves epoch 2's checkpoint, then hangs: it is running, with a
    # checkpoint to resume from, when Ctrl-C comes, however fast the machine.
    write_plan(checkpoints, trial=0, epoch=2, kind="hang")
    proc = run_cli(args, faults=True)
    try:
        fired = checkpoints / "fired-0-2"
        wait_for(lambda: fired.exists() or proc.poll() is not None, 180, "trial 0 to hang")
        assert proc.poll() is None, proc.communicate()[0]  # it ended before the fault
        proc.send_signal(signal.SIGINT)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)  # impatient: twice
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted" in out and "Traceback" not in out
    trials = trials_of(sqlite_url, spec)["sgd"]
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    requeued = [t for t in trials if t.state == TrialState.WAITING]
    states = [(t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in trials]
    assert 0 in [t.system_attrs["failed_trial"] for t in requeued], (out, states)

    # The same command again, in this process on its shared Ray: it finishes the study.
    assert run_search.main(args) == 0
    _check_consistent(spec, sqlite_url)
