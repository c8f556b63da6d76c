"""Rows by primary key, many at once (what the per-request DataLoaders batch)."""

import uuid
from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stardag_graphql.models import Base

M = TypeVar("M", bound=Base)


async def rows_by_id(
    session: AsyncSession, model: type[M], ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, M]:
    """The rows of `model` whose `id` is in `ids`; missing ones are absent."""
    rows = await session.scalars(select(model).where(model.id.in_(ids)))  # type: ignore[attr-defined]
    return {row.id: row for row in rows}  # type: ignore[attr-defined]
