"""Storage URLs → Optuna RDB storages, configured for several concurrent workers.

SQLite (the default) gets write-ahead logging and a long busy timeout, so a handful of local
workers and optuna-dashboard can share one file without "database is locked". PostgreSQL
(``postgresql+psycopg://``) is the storage for several machines. Heartbeats let a restarted
search fail the trials of dead workers and retry them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

SQLITE_TIMEOUT_S = 60
MAX_RETRY = 3


class StorageError(RuntimeError):
    """The storage URL is malformed or the database cannot be reached (one clear line)."""


def redact(url: str) -> str:
    """The URL with any password replaced by ***, for printing and logging."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return "<unparsable storage URL>"


def is_sqlite(url: str) -> bool:
    try:
        return sqlalchemy.engine.make_url(url).get_backend_name() == "sqlite"
    except sqlalchemy.exc.ArgumentError:
        return False


def _prepare_sqlite(url: str) -> None:
    database = sqlalchemy.engine.make_url(url).database
    if not database or database == ":memory:":
        return
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets readers (the dashboard, the progress monitor) run beside the writers; it is a
    # property of the file, so setting it once is enough.
    with sqlite3.connect(database, timeout=SQLITE_TIMEOUT_S) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def open_storage(
    url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None
) -> RDBStorage:
    """An RDBStorage for ``url``; with a heartbeat, stale trials are failed and retried."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise StorageError(f"storage URL is not valid: {redact(url)!s}") from None
    engine_kwargs: dict = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        _prepare_sqlite(url)
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    else:
        # Each worker process holds its own pool: keep it small so many workers fit under
        # the server's max_connections.
        engine_kwargs.update(pool_size=2, max_overflow=2)
    heartbeat = {}
    if heartbeat_interval is not None:
        heartbeat = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period or 3 * heartbeat_interval,
            "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(
                max_retry=MAX_RETRY
            ),
        }
    try:
        return RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
    except (sqlalchemy.exc.SQLAlchemyError, sqlite3.Error, ImportError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StorageError(f"cannot open storage {redact(url)}: {reason}") from None


def retried_trial_numbers(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """Trials that failed stale and were re-queued: their retry carries the work on."""
    retried: set[int] = set()
    for t in trials:
        retried.update(t.system_attrs.get("retry_history", ()))
    return retried
