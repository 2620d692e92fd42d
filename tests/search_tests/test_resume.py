"""An interrupted trial resumes from its last finished epoch and ends bitwise as if it had
never been interrupted: a lost Ray worker, a killed driver, Ctrl-C and SIGTERM. Faults come
from a plan the trial function reads (tests/search_tests/faults.py), not from timing."""

from __future__ import annotations

import os
import signal

import pytest
from optuna.trial import TrialState

from search import _signals, counted_trials, load_spec, run

from .conftest import run_driver, trials_of, uninterrupted
from .faults import trial_with_faults, write_plan

EPOCHS = 4
AT = 2  # the epoch after whose checkpoint the fault strikes


@pytest.fixture
def setup(write_spec, sqlite_url, tmp_path):
    path = write_spec(optimizers=("sgd",), n_trials=2, epochs=EPOCHS, train_subset=128, workers=1)
    return path, load_spec(path), sqlite_url, tmp_path / "checkpoints"


def _check_resumed(spec, url, checkpoints, *, requeued: bool, threads: int | None = None) -> None:
    trials = trials_of(url, spec)["sgd"]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    counted = counted_trials(trials)
    assert len(counted) == spec.trials_for("sgd") == 2
    assert all(t.state == TrialState.COMPLETE for t in counted)
    resumed = [t for t in counted if "resumed_from_epoch" in t.user_attrs]
    assert len(resumed) == 1
    trial = resumed[0]
    assert trial.user_attrs["resumed_from_epoch"] == AT
    # The fault struck between the checkpoint of epoch AT and its report: the resumed attempt
    # reported that epoch from the checkpoint and trained none twice.
    assert trial.user_attrs["attempts"] == [{"resumed_from": AT, "reported_before": AT - 1}]
    if requeued:
        failed = [t for t in trials if t.state == TrialState.FAIL]
        assert [t.number for t in failed] == [trial.system_attrs["failed_trial"]] == [0]
        assert failed[0].params == trial.params
    else:
        assert trial.number == 0 and len(trials) == 2
    reference = uninterrupted(spec, "sgd", trial.user_attrs["hparams"], threads)
    assert trial.intermediate_values == {
        m["epoch"]: m["val_acc"] for m in reference.history
    }  # bitwise: == on floats
    assert trial.value == reference.best_val_acc
    assert not any(checkpoints.rglob("checkpoint.pt")), "finished trials keep no checkpoint"


@pytest.mark.slow
def test_a_lost_ray_worker_resumes_its_trial(setup, shared_ray):
    _path, spec, url, checkpoints = setup
    write_plan(checkpoints, trial=0, epoch=AT, kind="kill")
    run(
        spec,
        storage_url=url,
        checkpoint_dir=checkpoints,
        heartbeat_interval=1,
        trial_fn=trial_with_faults,
        say=print,
    )
    _check_resumed(spec, url, checkpoints, requeued=False, threads=1)


@pytest.mark.slow
def test_a_killed_driver_then_the_same_command_resumes(setup):
    path, spec, url, checkpoints = setup
    write_plan(checkpoints, trial=0, epoch=AT, kind="kill")
    first = run_driver(path, url, checkpoints)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == -signal.SIGKILL, out
    assert [t.state for t in trials_of(url, spec)["sgd"]] == [TrialState.RUNNING]
    assert (checkpoints / spec.study_name("sgd") / "trial-0" / "checkpoint.pt").is_file()

    again = run_driver(path, url, checkpoints)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    _check_resumed(spec, url, checkpoints, requeued=True)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "code"), [("sigint", 130), ("sigterm", 143)])
def test_ctrl_c_or_sigterm_requeues_and_the_same_command_resumes(setup, kind, code):
    path, spec, url, checkpoints = setup
    write_plan(checkpoints, trial=0, epoch=AT, kind=kind)
    first = run_driver(path, url, checkpoints)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == code, out
    assert "interrupted: 1 running trial(s) queued again" in out and "Traceback" not in out
    trials = trials_of(url, spec)["sgd"]
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[0].user_attrs["fail_reason"].startswith("interrupted")
    assert (checkpoints / spec.study_name("sgd") / "trial-0" / "checkpoint.pt").is_file()

    again = run_driver(path, url, checkpoints)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    _check_resumed(spec, url, checkpoints, requeued=True)


@pytest.mark.slow
def test_ctrl_c_twice_is_as_clean_as_once(setup):
    path, spec, url, checkpoints = setup
    write_plan(checkpoints, trial=0, epoch=AT, kind="sigint")
    proc = run_driver(path, url, checkpoints)
    # The second Ctrl-C lands while the first is handled: the line that says so is printed
    # after the trials were queued, so nothing may be RUNNING by then either.
    for line in proc.stdout:
        if line.startswith("interrupted"):
            os.kill(proc.pid, signal.SIGINT)
            break
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    assert [t.state for t in trials_of(url, spec)["sgd"]] == [TrialState.FAIL, TrialState.WAITING]


def test_a_ctrl_c_after_a_stop_waits_out_the_grace_then_is_the_callers_again(monkeypatch):
    # After a stop, a second Ctrl-C within the grace is part of it (no KeyboardInterrupt in
    # whatever runs then); past the grace the caller's own handler has it again.
    before = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, _signals._after_stop(signal.default_int_handler))
        try:
            signal.raise_signal(signal.SIGINT)  # its handler has run when this returns
        except KeyboardInterrupt:
            pytest.fail("a Ctrl-C within the grace raised KeyboardInterrupt")
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        monkeypatch.setattr(_signals, "STOP_GRACE_S", 0.0)
        signal.signal(signal.SIGINT, _signals._after_stop(signal.default_int_handler))
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def _outage_setup(write_spec, pg_url, tmp_path):
    path = write_spec(optimizers=("sgd",), n_trials=2, epochs=EPOCHS, train_subset=128, workers=1)
    return path, load_spec(path), pg_url, tmp_path / "checkpoints", pg_url.rsplit("/", 1)[1]


@pytest.mark.slow
def test_a_short_database_outage_is_ridden_out(write_spec, pg_url, tmp_path):
    path, spec, url, checkpoints, database = _outage_setup(write_spec, pg_url, tmp_path)
    write_plan(checkpoints, trial=0, epoch=AT, kind="outage", database=database, seconds=3)
    proc = run_driver(path, url, checkpoints)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "storage unreachable" in out and "Traceback" not in out
    trials = trials_of(url, spec)["sgd"]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert sorted(trials[0].intermediate_values) == list(range(1, EPOCHS + 1))


@pytest.mark.slow
def test_a_long_outage_stops_with_one_line_and_the_same_command_resumes(
    write_spec, pg_url, tmp_path
):
    from .faults import end_outage

    path, spec, url, checkpoints, database = _outage_setup(write_spec, pg_url, tmp_path)
    write_plan(checkpoints, trial=0, epoch=AT, kind="outage", database=database, seconds=None)
    try:
        proc = run_driver(path, url, checkpoints, "local", "3")
        out, _ = proc.communicate(timeout=300)
    finally:
        end_outage(database)
    assert proc.returncode == 2, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "unreachable for 3 s" in errors[0] and "Traceback" not in out
    assert "run the same command to continue" in errors[0]

    again = run_driver(path, url, checkpoints)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    _check_resumed(spec, url, checkpoints, requeued=True)
