"""The embedded SQLite database runs in WAL mode with a busy timeout and foreign keys on."""

from pathlib import Path

from sqlalchemy import text

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
