"""Async engines and sessions for the registry database: embedded SQLite or PostgreSQL."""

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from stardag_graphql.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 5000


def create_engine(settings: Settings) -> AsyncEngine:
    """An async engine for `settings.database_url`, tuned for its backend."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url)
    return _create_async_engine(url, pool_pre_ping=True)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory whose objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


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
