"""Fixtures for the search tests: tiny study specs on `digits`, SQLite files, PostgreSQL databases."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest

from search import StudySpec, load_spec

from .faults import admin_connect

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

# The tests' model: milliseconds per epoch (tests/search_tests/tiny_model.py).
TINY_MODEL = "tests.search_tests.tiny_model:net"
TINY = """
name = "{name}"
dataset = "digits"
model = "{model}"
optimizers = {optimizers}
epochs = {epochs}
n_trials = {n_trials}
seed = 0
batch_size = 64
train_subset = {train_subset}
{extra}

[pruner]
kind = "{pruner}"
min_resource = 1
reduction_factor = 2
n_startup_trials = 2
n_warmup_steps = 1

[resources]
workers = {workers}
cpus_per_trial = {cpus}
"""


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write a tiny spec (seconds per trial) and return its path."""

    def write(
        name: str = "t",
        optimizers: tuple[str, ...] = ("adamsrt", "sgd"),
        epochs: int = 2,
        n_trials: int = 3,
        train_subset: int = 128,
        pruner: str = "none",
        workers: int = 2,
        cpus: float = 1,
        extra: str = "",
        model: str = TINY_MODEL,
    ) -> Path:
        """``extra``: more top-level TOML lines (e.g. ``space = "paper-grid"``)."""
        path = tmp_path / f"{name}.toml"
        text = TINY.format(
            name=name,
            optimizers=list(optimizers),
            epochs=epochs,
            n_trials=n_trials,
            train_subset=train_subset,
            pruner=pruner,
            workers=workers,
            cpus=cpus,
            extra=extra,
            model=model,
        )
        path.write_text(text.replace("'", '"'))
        return path

    return write


def pytest_itemcollected(item: pytest.Item) -> None:
    """The tests that use PostgreSQL run one after another on one worker of a parallel run:
    one of them restarts the server, others count its connections or its outages. (Marked as
    they are collected: xdist reads the groups in its own pytest_collection_modifyitems.)"""
    if "pg_url" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.xdist_group("postgresql"))


@pytest.fixture
def tiny_spec(write_spec: Callable[..., Path]) -> Callable[..., StudySpec]:
    return lambda **kw: load_spec(write_spec(**kw))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    import psycopg

    name = f"test_search_{uuid.uuid4().hex[:8]}"
    try:
        admin = admin_connect()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL must run on 127.0.0.1:5432 (.ci/run starts it): {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin_connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def trials_of(storage_url: str, spec: StudySpec) -> dict[str, list[optuna.trial.FrozenTrial]]:
    """The trials of each study of ``spec`` (none for a study not created yet)."""
    from search import open_storage

    storage = open_storage(storage_url)
    names = {s.study_name for s in storage.get_all_studies()}
    return {
        opt: optuna.load_study(study_name=spec.study_name(opt), storage=storage).get_trials()
        if spec.study_name(opt) in names
        else []
        for opt in spec.optimizers
    }


def check_exact(storage_url: str, spec: StudySpec) -> dict[str, list[optuna.trial.FrozenTrial]]:
    """Every study of ``spec`` has exactly its trial count, counted here from the rows (a FAIL
    that a later trial retries does not count), with nothing RUNNING or WAITING, trial numbers
    without gaps, each epoch reported once, and no parameters trained twice."""
    from optuna.trial import TrialState

    all_trials = trials_of(storage_url, spec)
    for opt, trials in all_trials.items():
        assert [t.number for t in trials] == list(range(len(trials))), opt
        stuck = [(t.number, t.state.name) for t in trials if not t.state.is_finished()]
        assert not stuck, (opt, stuck)
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
        counted = [t for t in trials if not (t.state == TrialState.FAIL and t.number in retried)]
        search = [t for t in counted if "confirms" not in t.user_attrs]
        assert len(search) == spec.trials_for(opt), (opt, len(search), spec.trials_for(opt))
        params = [tuple(sorted(t.params.items())) for t in search]
        assert len(set(params)) == len(params), (opt, "parameters trained twice")
        for t in trials:
            steps = sorted(t.intermediate_values)
            assert steps == list(range(1, len(steps) + 1)), (opt, t.number, steps)
    return all_trials


def pg_connections(database: str) -> int:
    """Connections open to ``database`` now (the server's own count)."""
    with admin_connect() as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchone()
    return int(row[0])


def run_cli(args: list[str], faults: bool = False, **popen: object) -> subprocess.Popen:
    """run_search.py in a child process (its own session, so a test can kill it alone);
    ``faults``: with the trial function that injects the faults of a plan (faults.py)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    program = (
        ["-m", "tests.search_tests.cli_with_faults"] if faults else [str(ROOT / "run_search.py")]
    )
    return subprocess.Popen(
        [sys.executable, *program, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **popen,
    )


def run_driver(
    spec: Path, storage_url: str, checkpoints: Path, executor: str = "local", *extra: str
):
    """The driver of tests/search_tests/drive.py (faults from a plan) in a child process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.search_tests.drive",
            str(spec),
            storage_url,
            str(checkpoints),
            executor,
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def uninterrupted(spec: StudySpec, optimizer: str, hparams: dict, threads: int | None = None):
    """The same training as a trial of ``spec``, run straight through by the trainer.

    ``threads``: a Ray task with one CPU computes with one thread (Ray sets OMP_NUM_THREADS),
    and a float sum's value depends on how it is split.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        return _train_straight(spec, optimizer, hparams)
    finally:
        torch.set_num_threads(before)


def _train_straight(spec: StudySpec, optimizer: str, hparams: dict):
    from training import TrainConfig, train

    return train(
        TrainConfig(
            dataset=spec.dataset,
            model=spec.model,
            optimizer=optimizer,
            hparams=hparams,
            epochs=spec.epochs,
            batch_size=spec.batch_size,
            seed=spec.seed,
            device="cpu",
            train_subset=spec.train_subset,
            evaluate_test=False,
            progress=False,
        )
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
