"""Async engines and sessions for the registry database: embedded SQLite or PostgreSQL."""

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
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

T = TypeVar("T")


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
    """What a write holds while it runs: on SQLite, one lock for the process.

    SQLite lets one transaction write at a time, and a second writer waits in SQLite's busy
    handler, which sleeps in steps of up to 100 ms before it looks again: two concurrent
    requests cost each other far more than the first one's transaction takes. Queued on an
    asyncio lock instead, the next writer starts the moment the previous one commits (the
    busy timeout still covers writers in other processes). PostgreSQL needs no gate.

    Every write of the process must hold it. A SQLite connection makes its calls on the event
    loop's thread (see `_InlineConnection`), so a write that met the lock held by another of
    the process's connections would wait in SQLite's busy handler with the loop stopped, and
    the holder could not go on to commit before the busy timeout.
    """
    if engine.dialect.name == "sqlite":
        return asyncio.Lock()
    return nullcontext()


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession], write_gate: AbstractAsyncContextManager[Any]
) -> AsyncIterator[AsyncSession]:
    """A session in a transaction that commits at the end (rolls back on an error), once
    `write_gate` lets it in."""
    async with write_gate, sessions() as session, session.begin():
        yield session


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
    options: dict[str, Any] = {}
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # A file database's connections are pooled (an in-memory one has a single one).
        # Reusing the connection used last keeps its page cache: a connection's cache is
        # stale once another one wrote, and taking them in turn read most pages afresh from
        # the file and its log. Measured on a registry holding 100 builds, a build's reports
        # cost a fifth less CPU and a sixth fewer page reads.
        options["pool_use_lifo"] = True
    engine = _create_async_engine(url, **options)
    event.listen(engine.sync_engine, "do_connect", _connect_inline)
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


class _InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection that makes each SQLite call at once, on the event loop's thread.

    aiosqlite hands every call (cursor, execute, fetch, close) to a thread of the connection's
    own and wakes the loop with the answer. The registry's statements take microseconds, and
    the hand-offs cost more CPU than SQLite's work: replaying a locked build's requests, the
    registry spent a fifth less with its calls made here. The loop waits while SQLite works,
    as it does for the Python around the calls; a read of a large workspace takes tens of
    milliseconds at most (bench/README.md). It waits longer only in SQLite's busy handler,
    while another process holds the database's write lock (up to the busy timeout): within
    the process, the write gate keeps writers from meeting it. The connection's thread only
    opens the connection.

    `_execute` is aiosqlite's internal hook through which every call passes (SQLAlchemy's
    adapter, too, reaches into aiosqlite's internals); a test checks on which thread a
    statement runs, so an aiosqlite that changes it fails there.
    """

    async def _execute(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


def _connect_inline(
    _dialect: Any, _record: ConnectionPoolEntry, _cargs: list[Any], cparams: dict[str, Any]
) -> None:
    # SQLAlchemy's aiosqlite driver connects with `async_creator_fn(*cargs, **cparams)` when
    # given one: the connection arguments stay SQLAlchemy's.
    cparams["async_creator_fn"] = _inline_connection


def _inline_connection(database: str, **kwargs: Any) -> _InlineConnection:
    connector = partial(sqlite3.connect, database, **kwargs)
    connection = _InlineConnection(connector, iter_chunk_size=64)  # aiosqlite.connect's default
    # As SQLAlchemy does with the connections it makes: one left open keeps no process alive.
    connection._thread.daemon = True
    return connection
