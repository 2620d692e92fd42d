"""Storage URLs: SQLite set up for concurrent workers, clear errors, passwords never shown."""

from __future__ import annotations

import re
import sqlite3

import pytest

import run_search
from search import StorageError, open_storage, redact, run


def test_redact_hides_only_the_password():
    url = "postgresql+psycopg://alice:s3cret@db.example:5432/optuna"
    assert redact(url) == "postgresql+psycopg://alice:***@db.example:5432/optuna"
    assert redact("sqlite:///studies/studies.db") == "sqlite:///studies/studies.db"
    assert "s3cret" not in redact("not a url s3cret")


def test_sqlite_file_uses_write_ahead_logging(tmp_path):
    path = tmp_path / "sub" / "studies.db"
    open_storage(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "mysql+nodriver://u:pw@h/db",
            re.escape("cannot open storage mysql+nodriver://u:***@h/db"),
        ),
        ("::", "storage URL is not valid"),
    ],
)
def test_bad_storage_is_one_clear_error(url, message):
    with pytest.raises(StorageError, match=message) as info:
        open_storage(url)
    assert "pw" not in str(info.value) and "\n" not in str(info.value)


def test_password_is_never_printed(tiny_spec, pg_url, capsys):
    # The local server trusts every login, so a password in the URL is accepted and ignored.
    url = pg_url.replace("postgres@", "postgres:s3cret@")
    lines: list[str] = []
    run(tiny_spec(optimizers=("sgd",), n_trials=1, epochs=1), storage_url=url,
        executor="local", say=lines.append)  # fmt: skip
    assert any("postgres:***@" in line for line in lines)
    assert not any("s3cret" in line for line in lines)
    assert (
        run_search.main(
            ["--storage", url.replace("127.0.0.1:5432", "127.0.0.1:1"), "--no-ray", "--smoke-test"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "cannot open storage" in err and "s3cret" not in err
