"""Storage URLs → Optuna RDB storages, configured for several concurrent workers.

SQLite (the default) gets write-ahead logging and a long busy timeout, so a handful of local
workers and optuna-dashboard can share one file without "database is locked". PostgreSQL
(``postgresql+psycopg://``) is the storage for several machines. The driver records a heartbeat
for each trial it runs, so a driver started after one that died finds its trials (stale) and
queues them again.
"""

from __future__ import annotations

import functools
import sqlite3
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage

from ._trials import requeue

SQLITE_TIMEOUT_S = 60
# A database outage (a restart, a failover) this long is ridden out: calls are retried with
# backoff; past it the search stops with one line and the same command continues.
OUTAGE_S = 60.0
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


def is_outage(exc: BaseException) -> bool:
    """A lost or refused connection, not bad data (Optuna wraps both in StorageInternalError)."""
    cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
    if isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated:
        return True
    return isinstance(cause, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError)


class ResilientStorage(RDBStorage):
    """An RDBStorage whose calls ride out a database outage of up to ``outage_s`` seconds.

    A call that fails on a lost connection is retried with backoff (the pool reconnects);
    past ``outage_s`` it raises :class:`StorageError`. ``on_outage`` hears one line per outage.
    """

    outage_s: float = OUTAGE_S
    on_outage: Callable[[str], None] | None = None
    url: str = ""


def _riding_out(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: ResilientStorage, *args: Any, **kwargs: Any) -> Any:
        started, delay, told = time.monotonic(), 0.25, False
        while True:
            try:
                return method(self, *args, **kwargs)
            except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
                if not is_outage(exc):
                    raise
                waited = time.monotonic() - started
                if waited >= self.outage_s:
                    raise StorageError(
                        f"storage {redact(self.url)} unreachable for {waited:.0f} s "
                        f"({_reason(exc, self.url)}): run the same command to continue"
                    ) from None
                if not told and self.on_outage is not None:
                    self.on_outage(
                        f"storage unreachable ({_reason(exc, self.url)}): retrying for up to "
                        f"{self.outage_s:g} s"
                    )
                    told = True
                time.sleep(min(delay, self.outage_s - waited))
                delay = min(2 * delay, 5.0)

    return call


# Every call that talks to the database: the public methods, and the stale-trial query that
# optuna.storages.fail_stale_trials makes.
for _name, _method in list(vars(RDBStorage).items()):
    if isinstance(_method, types.FunctionType) and (
        not _name.startswith("_") or _name == "_get_stale_trial_ids"
    ):
        setattr(ResilientStorage, _name, _riding_out(_method))


def _reason(exc: BaseException, url: str) -> str:
    cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
    cause = getattr(cause, "orig", None) or cause
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return redact_text(text, url)


def _fail(url: str, exc: BaseException) -> StorageError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StorageError(f"cannot open storage {redact(url)}: {redact_text(reason, url)}")


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    create: bool = True,
    outage_s: float = OUTAGE_S,
) -> ResilientStorage:
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
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            if not create:
                _require_optuna_schema(url)
            storage = ResilientStorage(
                url, engine_kwargs=engine_kwargs, skip_table_creation=not create, **heartbeat
            )
        except (sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.IntegrityError) as exc:
            # Drivers that create the schema at once collide ("already exists", a duplicate
            # type); a retry finds it made.
            if not create or attempt == SCHEMA_ATTEMPTS - 1:
                raise _fail(url, exc) from None
            time.sleep(0.5)
        except (sqlalchemy.exc.SQLAlchemyError, sqlite3.Error, ImportError, OSError) as exc:
            raise _fail(url, exc) from None
        else:
            storage.url, storage.outage_s = url, outage_s
            return storage
    raise AssertionError("unreachable")


SCHEMA_ATTEMPTS = 5


def _require_optuna_schema(url: str) -> None:
    engine = sqlalchemy.create_engine(url)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if not {"studies", "trials", "version_info"} <= tables:
        raise StorageError(f"storage {redact(url)} holds no Optuna studies")
