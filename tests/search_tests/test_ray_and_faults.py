"""The search on real Ray clusters and real failures: a two-node cluster, PostgreSQL with four
concurrent workers, a killed worker, a killed driver, Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal

import optuna
import pytest
from optuna.trial import TrialState

from search import counted_trials, run

from .conftest import run_cli, trials_of, wait_for

pytestmark = pytest.mark.slow


def _states(trials):
    return [t.state for t in trials]


def _check_consistent(spec, url):
    """Every study has exactly its count of counted trials, all finished, numbers unique."""
    for opt, trials in trials_of(url, spec).items():
        numbers = [t.number for t in trials]
        assert numbers == list(range(len(numbers))), opt
        counted = counted_trials(trials)
        assert len(counted) == spec.trials_for(opt), (opt, _states(trials))
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in counted), opt
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_trials_run_on_both_nodes_of_a_two_node_cluster(tiny_spec, sqlite_url):
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    # Enough work that the second node's worker is up (it imports torch) before the first
    # node's worker has run every trial alone.
    spec = tiny_spec(
        optimizers=("sgd", "adamsrt"), n_trials=4, epochs=3, train_subset=600, workers=2
    )
    try:
        run(
            spec,
            storage_url=sqlite_url,
            ray_address=cluster.address,
            heartbeat_interval=2,
            say=print,
        )
    finally:
        ray.shutdown()
        cluster.shutdown()
    nodes = {
        t.user_attrs["worker"]["node"] for ts in trials_of(sqlite_url, spec).values() for t in ts
    }
    assert len(nodes) == 2, nodes
    _check_consistent(spec, sqlite_url)


def test_postgresql_with_four_concurrent_workers(tiny_spec, pg_url):
    spec = tiny_spec(
        optimizers=("sgd", "adamsrt", "sgdmrt"), n_trials=4, epochs=1, workers=4, cpus=0.5
    )
    run(spec, storage_url=pg_url, heartbeat_interval=2, say=print)
    for trials in trials_of(pg_url, spec).values():
        counted = counted_trials(trials)
        assert _states(counted) == [TrialState.COMPLETE] * 4  # each recorded once, none lost
        for t in trials:  # a start that raced past the count stood down, and says so
            assert t in counted or t.user_attrs["fail_reason"].startswith("surplus")
        assert all("lock" not in t.user_attrs.get("fail_reason", "") for t in trials)
    _check_consistent(spec, pg_url)


def test_a_killed_worker_fails_its_trial_which_is_retried(write_spec, sqlite_url):
    path = write_spec(optimizers=("sgd",), n_trials=4, epochs=6, train_subset=600, workers=2)
    from search import load_spec

    spec = load_spec(path)
    proc = run_cli(["--study", str(path), "--storage", sqlite_url, "--heartbeat", "1"])
    try:

        def running():
            return [
                t
                for t in trials_of(sqlite_url, spec)["sgd"]
                if t.state == TrialState.RUNNING and "worker" in t.user_attrs
            ]

        wait_for(lambda: bool(running()), 120, "a running trial")
        victim = running()[0]
        os.kill(victim.user_attrs["worker"]["pid"], signal.SIGKILL)
        out, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    trials = trials_of(sqlite_url, spec)["sgd"]
    assert trials[victim.number].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert retries and retries[-1].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retries[0].params == victim.params
    _check_consistent(spec, sqlite_url)


def test_driver_killed_then_the_same_command_continues(write_spec, sqlite_url):
    path = write_spec(optimizers=("sgd",), n_trials=6, epochs=4, train_subset=600, workers=2)
    from search import load_spec

    spec = load_spec(path)
    args = ["--study", str(path), "--storage", sqlite_url, "--heartbeat", "1"]
    proc = run_cli(args)
    try:

        def progress():
            trials = trials_of(sqlite_url, spec)["sgd"]
            done = [t for t in trials if t.state == TrialState.COMPLETE]
            return len(done) >= 1 and any(t.state == TrialState.RUNNING for t in trials)

        wait_for(progress, 180, "a completed and a running trial")
        # The driver's machine dies: the driver and the Ray workers it started, at once.
        pids = {
            t.user_attrs.get("worker", {}).get("pid") for t in trials_of(sqlite_url, spec)["sgd"]
        }
        for pid in [proc.pid, *(p for p in pids if p)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    before = trials_of(sqlite_url, spec)["sgd"]
    completed = {t.number: t.value for t in before if t.state == TrialState.COMPLETE}
    stale = [t.number for t in before if t.state == TrialState.RUNNING]
    assert stale, "the driver died with trials running"

    again = run_cli(args)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    trials = trials_of(sqlite_url, spec)["sgd"]
    for number, value in completed.items():  # completed work is kept as it was
        assert trials[number].state == TrialState.COMPLETE and trials[number].value == value
    for number in stale:  # stale trials failed and were retried with the same parameters
        assert trials[number].state == TrialState.FAIL
        assert any(t.system_attrs.get("failed_trial") == number for t in trials)
    _check_consistent(spec, sqlite_url)


def test_ctrl_c_stops_cleanly_and_the_rerun_finishes(write_spec, sqlite_url):
    path = write_spec(optimizers=("sgd",), n_trials=4, epochs=6, train_subset=600, workers=2)
    from search import load_spec

    spec = load_spec(path)
    args = ["--study", str(path), "--storage", sqlite_url, "--heartbeat", "1"]
    proc = run_cli(args)
    try:
        wait_for(
            lambda: any(t.state == TrialState.RUNNING for t in trials_of(sqlite_url, spec)["sgd"]),
            120,
            "a running trial",
        )
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted" in out and "Traceback" not in out
    trials = trials_of(sqlite_url, spec)["sgd"]
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    requeued = [t for t in trials if t.state == TrialState.WAITING]
    assert requeued and all(t.system_attrs.get("failed_trial") is not None for t in requeued)

    again = run_cli(args)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    _check_consistent(spec, sqlite_url)
    assert optuna.study.get_all_study_names(sqlite_url) == [spec.study_name("sgd")]
