"""Storage URLs → one Optuna RDB storage per process and URL, that rides out database outages.

- **Bounded connections.** :func:`open_storage` returns the same storage (one engine, one small
  pool) for every call of a process with the same URL and role, so a worker process that runs
  many trials holds at most ``WORKER_POOL`` connections and a driver ``DRIVER_POOL``.
- **Outages.** Every method of the storage that reaches the database (Optuna's public API, the
  private methods Optuna's cache calls, and opening the storage itself) is retried with backoff
  on a lost or refused connection for up to ``outage_s`` seconds; one line is said per outage.
  Only the outermost call of a thread retries, so nested calls never multiply the wait.
- **Exactly-once creation.** Every new trial carries a creation id (a system attribute); a
  retry first looks for a trial with that id in the same transaction that would create it, so a
  commit whose acknowledgement was lost is never repeated. A state change that is retried
  after an outage first checks whether it already landed.
- **Stale trials.** A RUNNING trial is stale when its heartbeat is older than the grace period,
  or when it has no heartbeat at all and started longer ago than that (another client's
  ``ask()``, a driver that died between its ``ask`` and its first heartbeat).

SQLite gets write-ahead logging and a long busy timeout; PostgreSQL
(``postgresql+psycopg://``) is the storage for several machines.
"""

from __future__ import annotations

import atexit
import copy
import functools
import json
import os
import sqlite3
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import orm

SQLITE_TIMEOUT_S = 60
# A database outage (a restart, a failover) this long is ridden out; past it the search stops
# with one line and the same command continues.
OUTAGE_S = 60.0
SECRET_QUERY_KEYS = ("password", "passwd", "sslpassword")
# Connections per process on a database server: a driver runs its loop, its heartbeat thread
# and a study lock at once; a worker runs one trial at a time.
DRIVER_POOL = {"pool_size": 2, "max_overflow": 2}
WORKER_POOL = {"pool_size": 1, "max_overflow": 1}
#: The system attribute that makes a trial's creation idempotent.
CREATION_ID = "creation_id"
SCHEMA_ATTEMPTS = 5
#: The storage of run_search.py and export_best.py when no --storage is given.
STORAGE_ENV_VAR = "SPHERICAL_BN_STORAGE"
DEFAULT_STORAGE = "sqlite:///studies/studies.db"  # relative: in the working directory


def default_storage() -> str:
    return os.environ.get(STORAGE_ENV_VAR) or DEFAULT_STORAGE


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


def is_outage(exc: BaseException) -> bool:
    """A lost or refused connection, not bad data, anywhere in ``exc``'s chain (Optuna wraps
    both in StorageInternalError; a session used again after its connection died raises
    PendingRollbackError from the original error).

    On SQLite only a busy database is one: its other operational errors (read-only, unable to
    open) stay.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(getattr(seen, "orig", None), sqlite3.Error):
            return "locked" in str(seen.orig) or "busy" in str(seen.orig)
        if isinstance(seen, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def reason(exc: BaseException, url: str) -> str:
    """The first line of what the database driver said, without secrets."""
    cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
    if isinstance(cause, sqlalchemy.exc.PendingRollbackError):
        cause = cause.__context__ or cause  # the error that broke the connection
    cause = getattr(cause, "orig", None) or cause
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return redact_text(text, url)


class ResilientStorage(RDBStorage):
    """An RDBStorage that rides out outages, creates each trial exactly once and knows stray
    RUNNING trials as stale (see the module)."""

    def __init__(
        self,
        url: str,
        *,
        outage_s: float = OUTAGE_S,
        on_outage: Callable[[str], None] | None = None,
        ride_out_open: bool = False,
        **kwargs: Any,
    ) -> None:
        self.outage_s, self.on_outage = outage_s, on_outage
        self._local = threading.local()
        self._outage_lock = threading.Lock()
        self._outage_since: float | None = None
        self.url = url  # for messages until RDBStorage sets it

        def init() -> None:
            try:
                RDBStorage.__init__(self, url, **kwargs)
            except BaseException:
                if getattr(self, "engine", None) is not None:
                    self.engine.dispose()  # the retry makes its own
                raise

        if ride_out_open:
            self.ride_out(init)
        else:
            init()

    # -- outages ----------------------------------------------------------------------------

    def ride_out(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``call(*args, **kwargs)``, retried with backoff while the database is unreachable."""
        if getattr(self._local, "depth", 0):
            return call(*args, **kwargs)  # the outermost call retries the whole of it
        self._local.depth, self._local.retrying = 1, False
        started, delay = None, 0.25
        try:
            while True:
                try:
                    result = call(*args, **kwargs)
                except (
                    sqlalchemy.exc.SQLAlchemyError,
                    optuna.exceptions.StorageInternalError,
                ) as exc:
                    if not is_outage(exc):
                        raise
                    now = time.monotonic()
                    started = now if started is None else started
                    if now - started >= self.outage_s:
                        raise StorageError(
                            f"storage {redact(self.url)} unreachable for {now - started:.0f} s "
                            f"({reason(exc, self.url)}): run the same command to continue"
                        ) from None
                    self._outage_began(exc)
                    time.sleep(min(delay, self.outage_s - (now - started)))
                    delay = min(2 * delay, 5.0)
                    self._local.retrying = True
                else:
                    if started is not None:
                        with self._outage_lock:
                            self._outage_since = None
                    return result
        finally:
            self._local.depth = 0

    def _outage_began(self, exc: BaseException) -> None:
        with self._outage_lock:
            if self._outage_since is not None:
                return
            self._outage_since = time.monotonic()
        if self.on_outage is not None:
            self.on_outage(
                f"storage unreachable ({reason(exc, self.url)}): retrying for up to "
                f"{self.outage_s:g} s"
            )

    def _is_retry(self) -> bool:
        return bool(getattr(self._local, "retrying", False))

    # -- exactly once -----------------------------------------------------------------------

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self._create_new_trial(study_id, template_trial)._trial_id

    def _create_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None = None
    ) -> FrozenTrial:
        template = template_trial or FrozenTrial(
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=datetime.now(),
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs={},
            system_attrs={},
            intermediate_values={},
            trial_id=-1,
        )
        template = _with_system_attr(template, CREATION_ID, uuid.uuid4().hex)
        self._local.attempts = 0
        return self.ride_out(RDBStorage._create_new_trial, self, study_id, template)

    def _get_prepared_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None, session: Any
    ) -> models.TrialModel:
        # Called once per attempt, inside the transaction that creates the trial (Optuna's own
        # retry loop included): from the second attempt on, an earlier one may have committed.
        self._local.attempts = getattr(self._local, "attempts", 0) + 1
        creation_id = (template_trial.system_attrs if template_trial else {}).get(CREATION_ID)
        if creation_id is not None and self._local.attempts > 1:
            made = (
                session.query(models.TrialModel)
                .join(models.TrialSystemAttributeModel)
                .filter(models.TrialModel.study_id == study_id)
                .filter(models.TrialSystemAttributeModel.key == CREATION_ID)
                .filter(models.TrialSystemAttributeModel.value_json == json.dumps(creation_id))
                .one_or_none()
            )
            if made is not None:
                return made
        return RDBStorage._get_prepared_new_trial(self, study_id, template_trial, session)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        def attempt() -> bool:
            if self._is_retry() and self._landed(trial_id, state, values):
                return True
            return RDBStorage.set_trial_state_values(self, trial_id, state, values)

        return self.ride_out(attempt)

    def _landed(self, trial_id: int, state: TrialState, values: Sequence[float] | None) -> bool:
        """Whether an earlier attempt, lost to an outage, committed this change. The driver
        changes states under its study lock, so a match is its own write."""
        trial = RDBStorage.get_trial(self, trial_id)
        return trial.state == state and (values is None or list(values) == trial.values)

    # -- several attributes in one commit ---------------------------------------------------

    def set_trial_user_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """Set several user attributes of a trial in one transaction: Optuna commits each
        ``set_user_attr`` on its own, and the driver writes three to five per trial. A retry
        after an outage writes the same values again."""

        def write() -> None:
            with _create_scoped_session(self.scoped_session, True) as session:
                for key, value in attrs.items():
                    self._set_trial_attr_without_commit(
                        session, models.TrialUserAttributeModel, trial_id, key, value
                    )

        if attrs:
            self.ride_out(write)

    # -- stale trials -----------------------------------------------------------------------

    def stale_trial_ids(
        self, study_id: int, grace_s: float, alive: Iterable[int] = ()
    ) -> list[int]:
        """RUNNING trials of the study with a heartbeat older than ``grace_s``, or with none
        and a start older than that; ``alive`` (trials this process runs) are never stale."""
        return self.ride_out(self._stale_trial_ids, study_id, grace_s, set(alive))

    def _stale_trial_ids(self, study_id: int, grace_s: float, alive: set[int]) -> list[int]:
        grace = timedelta(seconds=grace_s)
        with self.engine.connect() as conn:
            server_now = conn.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        server_now = server_now.replace(tzinfo=None)  # as Optuna compares its heartbeats
        local_now = datetime.now()  # a trial's start is converted to this machine's time
        with orm.Session(self.engine) as session:
            running = (
                session.query(models.TrialModel)
                .options(orm.selectinload(models.TrialModel.heartbeats))
                .filter(models.TrialModel.state == TrialState.RUNNING)
                .filter(models.TrialModel.study_id == study_id)
                .all()
            )
            stale = []
            for trial in running:
                if trial.trial_id in alive:
                    continue
                if trial.heartbeats:
                    late = server_now - trial.heartbeats[0].heartbeat > grace
                else:
                    start = trial.datetime_start
                    late = start is not None and local_now - start > grace
                if late:
                    stale.append(trial.trial_id)
        return stale

    def heartbeat_age(self, trial_id: int) -> float | None:
        """Seconds since ``trial_id``'s last heartbeat (database clock), or None without one."""

        def query() -> float | None:
            with self.engine.connect() as conn:
                row = conn.execute(
                    sqlalchemy.select(
                        sqlalchemy.func.now(), models.TrialHeartbeatModel.heartbeat
                    ).where(models.TrialHeartbeatModel.trial_id == trial_id)
                ).first()
            if row is None:
                return None
            return (row[0].replace(tzinfo=None) - row[1]).total_seconds()

        return self.ride_out(query)


def _with_system_attr(trial: FrozenTrial, key: str, value: Any) -> FrozenTrial:
    trial = copy.copy(trial)
    trial.system_attrs = {**trial.system_attrs, key: value}
    return trial


def _riding_out(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: ResilientStorage, *args: Any, **kwargs: Any) -> Any:
        return self.ride_out(method, self, *args, **kwargs)

    return call


# Every other method that reaches the database, the private ones Optuna's cache calls
# (_set_trial_param, _get_trials, _get_best_trial_id, ...) included.
for _name, _method in list(vars(RDBStorage).items()):
    if (
        isinstance(_method, types.FunctionType)
        and not _name.startswith("__")
        and _name not in vars(ResilientStorage)
    ):
        setattr(ResilientStorage, _name, _riding_out(_method))


def _prepare_sqlite(database: str) -> None:
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets readers (the dashboard, the progress monitor) run beside the writers; it is a
    # property of the file, so setting it once is enough.
    with sqlite3.connect(database, timeout=SQLITE_TIMEOUT_S) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def _fail(url: str, exc: BaseException) -> StorageError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StorageError(f"cannot open storage {redact(url)}: {redact_text(text, url)}")


def parse_url(url: str) -> sqlalchemy.URL:
    """The parsed storage URL; raises StorageError (one line) for a malformed one."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
        parsed.port  # noqa: B018 - a non-numeric port raises here, not at connect time
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise StorageError(f"storage URL is not valid: {redact(url)}") from None
    return parsed


def absolute_url(url: str) -> str:
    """``url`` with a relative SQLite path made absolute (the working directory's now), so
    every process that opens it, wherever it runs, opens the same file."""
    database = sqlite_database(url)
    if database is None or database.name == ":memory:" or database.is_absolute():
        return url
    return parse_url(url).set(database=str(database.absolute())).render_as_string(False)


def sqlite_database(url: str) -> Path | None:
    """The file of a SQLite URL, else None."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return Path(parsed.database)
    return None


_OPEN: dict[tuple[str, str, bool], ResilientStorage] = {}
_OPEN_LOCK = threading.Lock()


def open_storage(
    url: str, *, role: str = "worker", create: bool = True, outage_s: float = OUTAGE_S
) -> ResilientStorage:
    """The storage of ``url`` for this process (``role`` "driver" or "worker"), opened once.

    ``create=False`` (for readers such as the export) never creates a file, a table or a
    schema: a database without Optuna's tables is refused.
    """
    url = absolute_url(url)  # one entry per file, whatever the working directory later is
    key = (url, role, create)
    with _OPEN_LOCK:
        storage = _OPEN.get(key)
        if storage is None:
            storage = _OPEN[key] = _open(url, role=role, create=create, outage_s=outage_s)
    storage.outage_s = outage_s
    return storage


def close_storage(url: str | None = None) -> None:
    """Close this process's connections to ``url`` (tests drop their databases), or to every
    storage it opened (at exit: a SQLite database is then left without its ``-wal`` and
    ``-shm`` files, a PostgreSQL server sees its connections closed rather than dropped)."""
    with _OPEN_LOCK:
        for key in [k for k in _OPEN if url is None or k[0] == url]:
            _OPEN.pop(key).engine.dispose()


atexit.register(close_storage)


def _open(url: str, *, role: str, create: bool, outage_s: float) -> ResilientStorage:
    parsed = parse_url(url)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
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
                _prepare_sqlite(database)
        except (OSError, sqlite3.Error) as exc:
            raise _fail(url, exc) from None
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    else:
        engine_kwargs.update(DRIVER_POOL if role == "driver" else WORKER_POOL)
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            if not create:
                _require_optuna_schema(url)
            return ResilientStorage(
                url,
                outage_s=outage_s,
                # A worker opens the storage mid-search: it rides out an outage. A driver or a
                # reader opening it is told at once when it cannot (a wrong host, a typo).
                ride_out_open=role == "worker",
                engine_kwargs=engine_kwargs,
                skip_table_creation=not create,
            )
        except sqlalchemy.exc.SQLAlchemyError as exc:
            # Drivers that create the schema at once collide ("already exists", a duplicate
            # type); a retry finds it made.
            collided = isinstance(
                exc, sqlalchemy.exc.ProgrammingError | sqlalchemy.exc.IntegrityError
            )
            collided |= "already exists" in str(exc)
            if not create or not collided or attempt == SCHEMA_ATTEMPTS - 1:
                raise _fail(url, exc) from None
            time.sleep(0.5)
        except StorageError:
            raise
        except (sqlite3.Error, ImportError, OSError) as exc:
            raise _fail(url, exc) from None
    raise AssertionError("unreachable")


def _require_optuna_schema(url: str) -> None:
    engine = sqlalchemy.create_engine(url)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if not {"studies", "trials", "version_info"} <= tables:
        raise StorageError(f"storage {redact(url)} holds no Optuna studies")
