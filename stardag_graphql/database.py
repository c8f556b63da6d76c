"""Async engines and sessions for the registry database: embedded SQLite or PostgreSQL."""

import asyncio
import time
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from stardag_graphql.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 5000
# A pooled PostgreSQL connection idle for longer than this is pinged before it is used.
PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "stardag_idle_since"


def create_engine(settings: Settings) -> AsyncEngine:
    """An async engine for `settings.database_url`, tuned for its backend."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url)
    return _create_postgresql_engine(url)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory whose objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def create_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory for single-statement reads, outside any transaction.

    On PostgreSQL each statement then commits by itself: no BEGIN and ROLLBACK round trips,
    and no ROLLBACK, after which psycopg drops the connection's prepared statements (DEALLOCATE
    ALL). SQLite's driver starts no transaction for a read anyway.
    """
    if engine.dialect.name != "postgresql":
        return create_sessionmaker(engine)
    return create_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))


def create_write_gate(engine: AsyncEngine) -> AbstractAsyncContextManager[Any]:
    """What a write transaction holds while it runs: on SQLite, one lock for the process.

    SQLite lets one transaction write at a time, and a second writer waits in SQLite's busy
    handler, which sleeps in steps of up to 100 ms before it looks again: two concurrent
    requests cost each other far more than the first one's transaction takes. Queued on an
    asyncio lock instead, the next writer starts the moment the previous one commits (the
    busy timeout still covers writers in other processes). PostgreSQL needs no gate.
    """
    if engine.dialect.name == "sqlite":
        return asyncio.Lock()
    return nullcontext()


def _create_postgresql_engine(url: URL) -> AsyncEngine:
    engine = _create_async_engine(url)
    dialect = engine.dialect

    def ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        # A connection that was in use moments ago is alive: pinging it before every checkout
        # (pool_pre_ping) cost a round trip per session. One idle for longer may have been
        # closed by a database restart; a dead one is replaced before any request sees it.
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(f"a pooled connection is dead: {error}") from error

    event.listen(engine.sync_engine, "checkin", _mark_idle)
    event.listen(engine.sync_engine, "checkout", ping_if_idle)
    return engine


def _mark_idle(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _create_sqlite_engine(url: URL) -> AsyncEngine:
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = _create_async_engine(url)
    event.listen(engine.sync_engine, "connect", _configure_sqlite)
    return engine


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the single writer; the busy timeout makes a second writer
    # wait for the lock instead of failing at once with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
