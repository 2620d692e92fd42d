"""Storage URLs → Optuna RDB storages, configured for several concurrent workers.

SQLite (the default) gets write-ahead logging and a long busy timeout, so a handful of local
workers and optuna-dashboard can share one file without "database is locked". PostgreSQL
(``postgresql+psycopg://``) is the storage for several machines. The driver records a heartbeat
for each trial it runs, so a driver started after one that died finds its trials (stale) and
queues them again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy
from optuna.storages import RDBStorage

from ._trials import requeue

SQLITE_TIMEOUT_S = 60
SECRET_QUERY_KEYS = ("password", "passwd", "sslpassword")


class StorageError(RuntimeError):
    """The storage URL is malformed or the database cannot be reached (one clear line)."""


def redact(url: str) -> str:
    """The URL with any password replaced by ***, for printing and logging.

    Covers a password in the authority (also one with an unencoded ``@``, which SQLAlchemy
    reads as part of the host) and one given as a ``password`` query parameter.
    """
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return "<unparsable storage URL>"
    secret_keys = [k for k in parsed.query if k.lower() in SECRET_QUERY_KEYS]
    if secret_keys:
        parsed = parsed.update_query_dict({k: "***" for k in secret_keys})
    if parsed.host and "@" in parsed.host:
        parsed = parsed.set(host=parsed.host.rsplit("@", 1)[1], password="***")
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def redact_text(text: str, url: str) -> str:
    """``text`` (an error message) with every secret of ``url`` replaced by ***."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return text.replace(url, "<storage URL>")
    text = text.replace(url, redact(url))
    secrets = [str(parsed.password)] if parsed.password else []
    if parsed.host and "@" in parsed.host:  # an unencoded '@': the password runs on
        rest = parsed.host.rsplit("@", 1)[0]
        secrets += [f"{parsed.password}@{rest}", rest]
    secrets += [str(v) for k, v in parsed.query.items() if k.lower() in SECRET_QUERY_KEYS]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _prepare_sqlite(url: str, database: str) -> None:
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets readers (the dashboard, the progress monitor) run beside the writers; it is a
    # property of the file, so setting it once is enough.
    with sqlite3.connect(database, timeout=SQLITE_TIMEOUT_S) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def _fail(url: str, exc: BaseException) -> StorageError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StorageError(f"cannot open storage {redact(url)}: {redact_text(reason, url)}")


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    create: bool = True,
) -> RDBStorage:
    """An RDBStorage for ``url``; with a heartbeat, stale trials are failed and queued again.

    ``create=False`` (for readers such as the export) never creates a file, a table or a
    schema: a database without Optuna's tables is refused.
    """
    try:
        parsed = sqlalchemy.engine.make_url(url)
        parsed.port  # noqa: B018 - a non-numeric port raises here, not at connect time
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise StorageError(f"storage URL is not valid: {redact(url)}") from None
    engine_kwargs: dict = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or parsed.query.get("mode") == "memory":
            raise StorageError(
                f"storage must be a SQLite file the trials' processes can share, but got "
                f"{redact(url)} (in memory): e.g. sqlite:///studies/studies.db"
            )
        if not create and not Path(database).is_file():
            raise StorageError(f"storage {redact(url)}: no such SQLite file")
        try:
            if create:
                _prepare_sqlite(url, database)
        except (OSError, sqlite3.Error) as exc:
            raise _fail(url, exc) from None
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    else:
        # Each process holds its own pool: keep it small so many fit under max_connections.
        engine_kwargs.update(pool_size=2, max_overflow=2)
    heartbeat = {}
    if heartbeat_interval is not None:
        heartbeat = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period or 3 * heartbeat_interval,
            "heartbeat_stale_trial_callback": requeue,
        }
    try:
        if not create:
            _require_optuna_schema(url)
        return RDBStorage(
            url, engine_kwargs=engine_kwargs, skip_table_creation=not create, **heartbeat
        )
    except (sqlalchemy.exc.SQLAlchemyError, sqlite3.Error, ImportError, OSError) as exc:
        raise _fail(url, exc) from None


def _require_optuna_schema(url: str) -> None:
    engine = sqlalchemy.create_engine(url)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if not {"studies", "trials", "version_info"} <= tables:
        raise StorageError(f"storage {redact(url)} holds no Optuna studies")
