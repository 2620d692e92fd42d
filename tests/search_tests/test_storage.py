"""Storage URLs: SQLite set up for concurrent processes, one clear line for every bad URL or
file, and no password printed in any of its forms."""

from __future__ import annotations

import os
import re
import sqlite3

import pytest

import run_search
from search import StorageError, open_storage, redact

SECRETS = [
    ("postgresql+psycopg://alice:s3cret@db.example:5432/optuna",
     "postgresql+psycopg://alice:***@db.example:5432/optuna"),
    ("postgresql+psycopg://alice@db.example/optuna?password=s3cret",
     "postgresql+psycopg://alice@db.example/optuna?password=***"),
    ("postgresql+psycopg://alice:s3@cret@db.example/optuna",  # an unencoded '@'
     "postgresql+psycopg://alice:***@db.example/optuna"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "shown"), SECRETS)
def test_redact_hides_every_form_of_password(url, shown):
    assert redact(url) == shown
    assert redact("sqlite:///studies/studies.db") == "sqlite:///studies/studies.db"
    assert "s3cret" not in redact("not a url s3cret")


def test_sqlite_file_uses_write_ahead_logging(tmp_path):
    path = tmp_path / "sub" / "studies.db"
    open_storage(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _bad_files(tmp_path):
    a_file = tmp_path / "plain.txt"
    a_file.write_text("not a database, not a directory\n" * 100)
    return [
        ("mysql+nodriver://u:pw@h/db", re.escape("cannot open storage mysql+nodriver://u:***@h/db")),
        ("::", "storage URL is not valid"),
        ("postgresql+psycopg://u:pw@127.0.0.1:port/db", "storage URL is not valid"),
        ("sqlite://", "in memory"),
        ("sqlite:///:memory:", "in memory"),
        (f"sqlite:///{a_file}/studies.db", "cannot open storage"),  # a path under a file
        (f"sqlite:///{a_file}", "file is not a database"),
    ]  # fmt: skip


def test_bad_storage_is_one_clear_error(tmp_path):
    for url, message in _bad_files(tmp_path):
        with pytest.raises(StorageError, match=message) as info:
            open_storage(url)
        assert "pw" not in str(info.value) and "\n" not in str(info.value), url


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only files and directories")
def test_read_only_sqlite_is_one_clear_error(tmp_path):
    ro_dir = tmp_path / "ro"
    ro_dir.mkdir()
    ro_file = tmp_path / "ro.db"
    open_storage(f"sqlite:///{ro_file}")
    ro_file.chmod(0o444)
    ro_dir.chmod(0o555)
    try:
        for url in (f"sqlite:///{ro_dir}/studies.db", f"sqlite:///{ro_file}"):
            with pytest.raises(StorageError, match="cannot open storage") as info:
                open_storage(url).get_all_studies()
            assert "\n" not in str(info.value)
    finally:
        ro_dir.chmod(0o755)


def test_bad_storage_on_the_command_line_is_one_line_and_exit_2(tmp_path, capsys):
    for url, _ in _bad_files(tmp_path):
        assert run_search.main(["--storage", url, "--no-ray", "--smoke-test"]) == 2, url
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "pw" not in err, err


@pytest.mark.parametrize(("url", "_"), SECRETS)
def test_password_is_never_printed(write_spec, pg_url, capfd, tmp_path, url, _):
    # The local server trusts every login, so a password in the URL is accepted and ignored;
    # with an unencoded '@' the host is wrong and the run stops with one line.
    url = url.replace("db.example:5432", "127.0.0.1:5432").replace("db.example", "127.0.0.1")
    url = url.replace("alice", "postgres").replace("/optuna", "/" + pg_url.rsplit("/", 1)[1])
    spec = write_spec(optimizers=("sgd",), n_trials=1, epochs=1, train_subset=64)
    args = ["--study", str(spec), "--no-ray", "--checkpoint-dir", str(tmp_path / "c")]
    code = run_search.main(["--storage", url, *args])
    out, err = capfd.readouterr()
    assert code == (2 if "s3@cret" in url else 0), out + err
    assert "***" in out + err
    assert not any(piece in out + err for piece in ("s3", "cret")), out + err
    dead = url.replace("127.0.0.1:5432", "127.0.0.1:1").replace("127.0.0.1/", "127.0.0.1:1/")
    assert run_search.main(["--storage", dead, *args]) == 2
    out, err = capfd.readouterr()
    assert "cannot open storage" in err and err.count("\n") == 1
    assert not any(piece in out + err for piece in ("s3", "cret")), out + err


def test_drivers_starting_at_once_on_a_fresh_database_all_open_it(pg_url):
    import threading

    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def driver() -> None:
        barrier.wait()
        try:
            open_storage(pg_url).get_all_studies()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=driver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def test_several_trial_attributes_are_one_commit(tmp_path):
    import optuna
    import sqlalchemy

    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    commits = []

    def count(conn: object) -> None:
        commits.append(conn)

    sqlalchemy.event.listen(storage.engine, "commit", count)
    try:
        attrs = {"hparams": {"lr": 0.1}, "budget": [3, 4], "seed": 7}
        storage.set_trial_user_attrs(trial._trial_id, attrs)
        assert len(commits) == 1
        storage.set_trial_user_attrs(trial._trial_id, {"seed": 8})  # an existing key: replaced
        assert storage.get_trial(trial._trial_id).user_attrs == {**attrs, "seed": 8}
        study.tell(trial, 1.0)
        with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
            storage.set_trial_user_attrs(trial._trial_id, {"late": 1})
        assert "late" not in storage.get_trial(trial._trial_id).user_attrs
    finally:
        sqlalchemy.event.remove(storage.engine, "commit", count)
