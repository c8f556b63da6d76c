"""Alembic's entry point: runs the migrations on an async engine (or offline, as SQL)."""

import asyncio
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection, make_url

from stardag_graphql.database import create_engine
from stardag_graphql.migrations import only_on_its_dialects
from stardag_graphql.models import Base, UTCDateTime
from stardag_graphql.settings import Settings

config = context.config
target_metadata = Base.metadata


def render_item(kind: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render the UTC timestamp type as a plain `sa.DateTime`, keeping scripts self-contained."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def configure(**options: Any) -> None:
    """Configure the migration context with the options every mode shares."""
    dialect = make_url(config.attributes["database_url"]).get_backend_name()
    context.configure(
        target_metadata=target_metadata,
        render_item=render_item,
        render_as_batch=True,
        compare_type=True,
        include_object=only_on_its_dialects(dialect),
        **options,
    )


def run_offline() -> None:
    """Emit the migrations as SQL for the configured URL, without connecting."""
    configure(url=config.attributes["database_url"], literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_on_connection(connection: Connection) -> None:
    """Run the migrations on an open connection."""
    configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    """Connect with the server's own engine (SQLite: its directory, WAL) and migrate."""
    engine = create_engine(Settings(database_url=config.attributes["database_url"]))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_on_connection)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    asyncio.run(run_online())
