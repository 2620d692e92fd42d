"""The search as a cluster uses it: a real PostgreSQL, several drivers at once, connections
killed mid-search and a server restart, stray RUNNING trials, hundreds of trials, and the
checkpoint directory failing. Faults come through the trial-function seam (faults.py); every
test checks the invariants: exact counts, no trial lost or trained twice, nothing RUNNING."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import run_search
from search import create_studies, load_spec, open_storage, run
from search._checkpoints import check_checkpoint_dir

from .conftest import check_exact, pg_connections, run_driver, trials_of, uninterrupted
from .faults import fired_marker, terminated_count, trial_with_faults, write_plan


def _sample_peak(database: str, stop: threading.Event, peak: list[int]) -> None:
    while not stop.wait(0.1):
        peak[0] = max(peak[0], pg_connections(database))


@pytest.mark.slow
def test_connections_stay_bounded_over_300_trials(write_spec, pg_url, tmp_path, shared_ray):
    workers = 4
    spec = load_spec(
        write_spec(
            optimizers=("sgd",),
            n_trials=300,
            epochs=1,
            train_subset=32,
            workers=workers,
            cpus=0.5,
            extra='sampler = "random"',
        )
    )
    database = pg_url.rsplit("/", 1)[1]
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=_sample_peak, args=(database, stop, peak), daemon=True)
    sampler.start()
    try:
        run(spec, storage_url=pg_url, checkpoint_dir=tmp_path / "c", say=print)
    finally:
        stop.set()
        sampler.join()
    check_exact(pg_url, spec)
    print(f"peak connections over 300 trials with {workers} workers: {peak[0]}")
    # This test process holds the storage too (trials_of, and run's own), inside the budget.
    assert 0 < peak[0] <= 2 * workers + 4


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="restarting PostgreSQL needs root")
def test_connections_killed_every_half_second_then_a_server_restart(
    write_spec, pg_url, tmp_path, shared_ray
):
    path = write_spec(optimizers=("sgd", "adamsrt"), n_trials=12, epochs=2, train_subset=64)
    spec, database = load_spec(path), pg_url.rsplit("/", 1)[1]
    checkpoints = tmp_path / "checkpoints"
    # Trial 2 of sgd starts the killing (30 s, every 0.5 s); trial 8 restarts the server.
    write_plan(
        checkpoints,
        study=spec.study_name("sgd"),
        trial=2,
        epoch=1,
        kind="terminate",
        database=database,
        seconds=30,
        every=0.5,
    )
    lines: list[str] = []
    search = {
        "storage_url": pg_url,
        "checkpoint_dir": checkpoints,
        "heartbeat_interval": 1,
        "trial_fn": trial_with_faults,
        "say": lines.append,
    }
    run(spec, **search)
    # Connections were killed under the search (whether one died inside a query, and so
    # printed an outage line, rather than idle in its pool, is down to timing).
    assert terminated_count(checkpoints) > 0, lines
    check_exact(pg_url, spec)
    restart = {"study": spec.study_name("sgd"), "trial": 14, "epoch": 1, "kind": "restart"}
    write_plan(checkpoints, restart)
    run(spec.replace(n_trials=16), **search)
    assert fired_marker(checkpoints, restart).exists(), lines  # the server did restart
    check_exact(pg_url, spec.replace(n_trials=16))


def test_a_foreign_ask_left_running_does_not_block_the_search(tiny_spec, sqlite_url, tmp_path):
    # One slot, which the foreign trial holds: the driver can only wait, and says so.
    spec = tiny_spec(optimizers=("sgd",), n_trials=1, epochs=1, train_subset=64)
    storage = open_storage(sqlite_url)
    create_studies(spec, storage)
    # Another client asks for a trial and goes away: RUNNING, no heartbeat, no parameters.
    optuna.load_study(study_name=spec.study_name("sgd"), storage=sqlite_url).ask()
    lines: list[str] = []
    run(
        spec,
        storage_url=sqlite_url,
        executor="local",
        heartbeat_interval=1,
        grace_period=8,
        checkpoint_dir=tmp_path / "c",
        say=lines.append,
    )
    waiting = [line for line in lines if line.startswith("waiting for 1 trial(s)")]
    assert waiting and "sgd #0 (no heartbeat)" in waiting[0], lines
    assert "queued again once silent for 8 s" in waiting[0]
    assert any("trial(s) [0] queued again" in line for line in lines), lines
    trials = check_exact(sqlite_url, spec)["sgd"]
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["fail_reason"].startswith(
        "stale"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.xdist_group("postgresql"))]
)
def test_three_drivers_at_once_are_exact(write_spec, sqlite_url, request, tmp_path, backend):
    url = sqlite_url if backend == "sqlite" else request.getfixturevalue("pg_url")
    tpe = write_spec(
        name="tpe", optimizers=("sgd", "adam"), n_trials=6, epochs=1, train_subset=64, workers=1
    )
    grid = write_spec(
        name="grid",
        optimizers=("sgd",),
        n_trials=8,
        epochs=1,
        train_subset=64,
        workers=1,
        extra='space = "paper-grid"',
    )
    drivers = [run_driver(path, url, tmp_path / "c") for path in (tpe, grid) for _ in range(3)]
    for proc in drivers:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out
    for path in (tpe, grid):
        check_exact(url, load_spec(path))
    weight_decays = [0.0, *(5e-4 / 2**k for k in range(7))]
    points = sorted(t.params["weight_decay"] for t in trials_of(url, load_spec(grid))["sgd"])
    assert points == sorted(weight_decays)


@pytest.mark.slow
def test_an_outage_during_tell_is_ridden_out(write_spec, pg_url, tmp_path):
    path = write_spec(optimizers=("sgd",), n_trials=2, epochs=1, train_subset=64, workers=1)
    checkpoints = tmp_path / "checkpoints"
    write_plan(
        checkpoints,
        trial=0,
        epoch=1,
        kind="outage-after",
        database=pg_url.rsplit("/", 1)[1],
        seconds=3,
    )
    proc = run_driver(path, pg_url, checkpoints)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert out.count("storage unreachable") == 1 and "finished by another driver" not in out
    trials = check_exact(pg_url, load_spec(path))["sgd"]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2


@pytest.mark.slow
def test_a_full_disk_stops_the_search_and_counts_no_trial(write_spec, sqlite_url, tmp_path):
    path = write_spec(optimizers=("sgd",), n_trials=2, epochs=3, train_subset=64, workers=1)
    spec, checkpoints = load_spec(path), tmp_path / "checkpoints"
    write_plan(checkpoints, trial=0, epoch=1, kind="disk-full")
    proc = run_driver(path, sqlite_url, checkpoints)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], out
    trials = trials_of(sqlite_url, spec)["sgd"]
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].system_attrs["retry_history"] == [0]  # queued again: it does not count
    again = run_driver(path, sqlite_url, checkpoints)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    check_exact(sqlite_url, spec)


@pytest.mark.slow
def test_a_damaged_checkpoint_restarts_its_trial_from_epoch_0(write_spec, sqlite_url, tmp_path):
    path = write_spec(optimizers=("sgd",), n_trials=1, epochs=3, train_subset=64, workers=1)
    spec, checkpoints = load_spec(path), tmp_path / "checkpoints"
    write_plan(checkpoints, trial=0, epoch=2, kind="sigint")
    first = run_driver(path, sqlite_url, checkpoints)
    first.communicate(timeout=300)
    assert first.returncode == 130
    checkpoint = checkpoints / spec.study_name("sgd") / "trial-0" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # truncated by a crash
    again = run_driver(path, sqlite_url, checkpoints)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "trial 1" in warnings[0], out
    assert "restarted from epoch 0" in warnings[0] and str(checkpoint) in warnings[0]
    trial = check_exact(sqlite_url, spec)["sgd"][1]
    assert "attempts" not in trial.user_attrs and trial.state == TrialState.COMPLETE
    reference = uninterrupted(spec, "sgd", trial.user_attrs["hparams"])
    assert trial.value == reference.best_val_acc  # retrained from scratch, same numbers


def test_a_checkpoint_dir_another_driver_makes_meanwhile_is_used(tmp_path, monkeypatch, tiny_spec):
    """Drivers that start at once make the same directories: one that appears between this
    driver's look and its own mkdir is used, not taken for a file."""
    root, real_is_dir, made = tmp_path / "c", Path.is_dir, []

    def is_dir_then_another_driver_makes_it(self: Path) -> bool:
        answer = real_is_dir(self)
        if self == root and not made:
            os.mkdir(root)  # another driver, just after this one looked
            made.append(root)
        return answer

    monkeypatch.setattr(Path, "is_dir", is_dir_then_another_driver_makes_it)
    check_checkpoint_dir(root, tiny_spec(optimizers=("sgd",)))
    assert made == [root]
    assert [p.name for p in root.iterdir()] == []  # the probe is gone, the directory stays


def test_a_checkpoint_dir_another_driver_makes_and_removes_meanwhile_is_made_again(
    tmp_path, monkeypatch, tiny_spec
):
    root, real_mkdir, refused = tmp_path / "c", os.mkdir, []

    def mkdir_after_another_driver_came_and_went(path, mode=0o777):
        if Path(path) == root and not refused:
            refused.append(root)  # it was there (another driver's), and its probe removed it
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
        real_mkdir(path, mode)

    monkeypatch.setattr(os, "mkdir", mkdir_after_another_driver_came_and_went)
    check_checkpoint_dir(root, tiny_spec(optimizers=("sgd",)))
    assert refused == [root] and not root.exists()  # made by this driver, so removed by it


def test_an_unusable_checkpoint_dir_is_one_line_before_anything_runs(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    database = tmp_path / "studies.db"
    for directory, reason in (
        (a_file, "Not a directory"),
        (a_file / "under", "Not a directory"),
        (tmp_path / ("x" * 300), "File name too long"),
    ):
        code = run_search.main(
            [
                "--smoke-test",
                "--no-ray",
                "--storage",
                f"sqlite:///{database}",
                "--checkpoint-dir",
                str(directory),
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and reason in err, err
        assert err.startswith("error: checkpoint directory") and "--checkpoint-dir" in err
        assert not database.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["file"]
