"""Migrations: upgrade, downgrade and upgrade again on both backends; they match the models."""

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from stardag_graphql.migrations import downgrade, only_on_its_dialects, upgrade
from stardag_graphql.models import Base


def tables_of(database_url: str) -> set[str]:
    """The models' tables that the backend of `database_url` has (some are SQLite's only)."""
    backend = make_url(database_url).get_backend_name()
    return {
        name
        for name, table in Base.metadata.tables.items()
        if backend in table.info.get("dialects", [backend])
    }


async def table_names(database_url: str) -> set[str]:
    """The tables in the database, without Alembic's version table."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
    return set(names) - {"alembic_version"}


async def schema_differences(database_url: str) -> list[Any]:
    """What autogenerate would still change to make the database match the models."""

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_object": only_on_its_dialects(connection.dialect.name),
            },
        )
        return list(compare_metadata(context, Base.metadata))

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    tables = tables_of(empty_database_url)
    assert "task_parameter_values" in tables_of("sqlite://")
    assert "task_parameter_values" not in tables_of("postgresql://")
    await asyncio.to_thread(upgrade, empty_database_url)
    assert await table_names(empty_database_url) == tables

    await asyncio.to_thread(downgrade, empty_database_url, "base")
    assert await table_names(empty_database_url) == set()

    await asyncio.to_thread(upgrade, empty_database_url, "head")
    assert await table_names(empty_database_url) == tables


async def test_migrations_match_the_models(empty_database_url: str) -> None:
    await asyncio.to_thread(upgrade, empty_database_url)
    assert await schema_differences(empty_database_url) == []
