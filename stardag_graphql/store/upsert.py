"""The dialect's INSERT, whose ON CONFLICT clauses make writes idempotent on both backends."""

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from stardag_graphql.models import Base


def insert(session: AsyncSession, table: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT for ``table`` with ``on_conflict_do_*``: PostgreSQL's, else SQLite's."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
