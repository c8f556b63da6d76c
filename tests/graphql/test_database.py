"""The embedded SQLite database runs in WAL mode with a busy timeout and foreign keys on, its
calls made on the event loop's thread; a PostgreSQL pool replaces a connection that died while
idle."""

import threading
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from stardag_graphql import database
from stardag_graphql.database import create_engine
from stardag_graphql.settings import Settings


async def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "registry.db"
    engine = create_engine(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
    try:
        async with engine.connect() as connection:
            journal_mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar()
            busy_timeout = (await connection.execute(text("PRAGMA busy_timeout"))).scalar()
            foreign_keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar()
    finally:
        await engine.dispose()

    assert (journal_mode, busy_timeout, foreign_keys) == ("wal", 5000, 1)
    assert path.exists()


async def test_sqlite_statements_run_on_the_event_loops_thread(tmp_path: Path) -> None:
    engine = create_engine(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"))
    try:
        async with engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            await driver.create_function("thread", 0, threading.get_ident)
            thread = (await connection.execute(text("SELECT thread()"))).scalar()
    finally:
        await engine.dispose()

    assert thread == threading.get_ident()


async def test_a_pooled_postgresql_connection_killed_while_idle_is_replaced_unseen(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pooled connections are pinged only after an idle spell (not on every checkout): make
    # every spell long enough, then kill the pooled connection as a database restart would.
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)
    engine = create_engine(Settings(database_url=pg_url))
    try:
        async with engine.connect() as connection:
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar()
        libpq = make_url(pg_url).set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(libpq, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        async with engine.connect() as connection:
            answer = (await connection.execute(text("SELECT 1"))).scalar()
    finally:
        await engine.dispose()

    assert answer == 1
