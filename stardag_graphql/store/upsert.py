"""The dialect's INSERT, whose ON CONFLICT clauses make writes idempotent on both backends,
and what both backends can store.

Batches go through `insert_rows`, which runs one statement with many parameter sets: SQLAlchemy
compiles it once and sends the rows in multi-row batches ("insertmanyvalues"), where a
`.values([...])` of hundreds of rows would compile a new statement every time.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Result, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import UpdateBase

from stardag_graphql.models import Base

T = TypeVar("T")


def insert(session: AsyncSession, table: type[Base] | Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT for ``table`` with ``on_conflict_do_*``: PostgreSQL's, else SQLite's."""
    if dialect_of(session) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_per_dialect(
    table: Table, finish: Callable[[postgresql.Insert | sqlite.Insert], T]
) -> dict[str, T]:
    """A statement built once for each backend, by dialect name (pick with `dialect_of`):
    ``finish`` makes it from that backend's INSERT for ``table``."""
    return {"postgresql": finish(postgresql.insert(table)), "sqlite": finish(sqlite.insert(table))}


def dialect_of(session: AsyncSession) -> str:
    """The name of the session's database dialect: ``postgresql`` or ``sqlite``."""
    return session.get_bind().dialect.name


def table_of(model: type[Base]) -> Table:
    """The Core table of a model, for bulk statements that skip the ORM's per-row work."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


async def insert_rows(
    session: AsyncSession,
    statement: UpdateBase,
    rows: Sequence[Mapping[str, Any]],
) -> Result[Any] | None:
    """Run `statement` once for all `rows` (none: nothing runs, and None is returned)."""
    if not rows:
        return None
    return await session.execute(statement, list(rows))


def without_nul(value: Any) -> Any:
    """`value` (a string, or JSON) with each NUL character of its strings replaced by U+FFFD:
    PostgreSQL stores none, in text or in jsonb. For log lines, event payloads and task
    parameters, alike on both backends: a task that printed binary data, failed with it in
    its message or took it as a parameter loses nothing else of its request. (Such a task
    is registered, but `Task.from_registry` cannot rebuild it, and says so.)"""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value
