"""A lock per study, held in the database, so that several drivers on one storage are as exact
as one: the count and the ``ask`` of a trial, the enqueueing of grid points and confirmation
runs, and the failing and queueing again of stale trials each happen under it.

- PostgreSQL: a transaction-level advisory lock (``pg_advisory_xact_lock``) on a connection of
  the driver's pool; the server releases it when the transaction ends or the connection dies.
- SQLite: an exclusive ``flock`` on a file beside the database. SQLite's own write lock is one
  per database too, but Optuna writes on connections of its own pool, which would wait on a
  write lock held by the lock's connection; a file lock orders the drivers (processes of one
  machine, as SQLite requires) without blocking their writes.
- Other databases: no lock; several drivers there may exceed a count (the README says so).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

import sqlalchemy

from ._storage import ResilientStorage, is_outage, sqlite_database

# Advisory-lock keys are 64-bit: the high half marks this project's locks, the low the study.
_KEY_SPACE = 0x5342_4E00 << 32  # "SBN\0"


@contextlib.contextmanager
def study_lock(storage: ResilientStorage, study_id: int) -> Iterator[None]:
    """Hold the lock of study ``study_id`` (see the module) for the ``with`` block."""
    database = sqlite_database(storage.url)
    if database is not None:
        with _file_lock(database.with_name(f"{database.name}.lock")):
            yield
    elif storage.engine.dialect.name == "postgresql":
        with _advisory_lock(storage, _KEY_SPACE | study_id):
            yield
    else:
        yield


@contextlib.contextmanager
def _file_lock(path: os.PathLike[str]) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _advisory_lock(storage: ResilientStorage, key: int) -> Iterator[None]:
    def acquire() -> sqlalchemy.Connection:
        conn = storage.engine.connect()
        try:
            conn.execute(sqlalchemy.select(sqlalchemy.func.pg_advisory_xact_lock(key)))
        except BaseException:
            conn.close()
            raise
        return conn

    conn = storage.ride_out(acquire)
    try:
        yield
    finally:
        # Ending the transaction releases the lock; a connection lost meanwhile released it
        # already, and the work done under it stands.
        try:
            conn.rollback()
        except sqlalchemy.exc.SQLAlchemyError as exc:
            if not is_outage(exc):
                raise
        finally:
            conn.close()
