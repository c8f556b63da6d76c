"""Schema migrations: Alembic, run from code against the migration scripts in this package.

```python
from stardag_graphql.migrations import upgrade
upgrade("sqlite+aiosqlite:////tmp/registry.db")
```
"""

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from stardag_graphql.settings import Settings

SCRIPT_LOCATION = Path(__file__).parent


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration for this package's migrations against `database_url`."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    # Passed as an attribute, not a main option: ConfigParser would choke on a `%` in an
    # URL-encoded password.
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Upgrade the database at `database_url` to `revision` (outside an event loop)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Downgrade the database at `database_url` to `revision` (default: an empty schema)."""
    command.downgrade(alembic_config(database_url), revision)


async def ensure_schema(settings: Settings) -> None:
    """Bring the configured database up to the latest schema (run at server start)."""
    await asyncio.to_thread(upgrade, settings.database_url)


def head_revision() -> str:
    """The newest revision of this package's migrations."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database behind `engine` is at; None for an empty database."""
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


def only_on_its_dialects(dialect_name: str) -> Callable[..., bool]:
    """An Alembic `include_object` that leaves out schema objects meant for other backends.

    An object says which with `info={"dialects": [...]}` (Alembic's comparison ignores
    SQLAlchemy's `ddl_if`).
    """

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        dialects = getattr(obj, "info", {}).get("dialects")
        return dialects is None or dialect_name in dialects

    return include_object
