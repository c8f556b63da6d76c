"""Reading events: a build's or a task's in pages, and a build's as they are recorded.

Lists run in the order events occurred. Following a build live runs in the order events were
recorded instead: a client may report an event late, and a follower must still see it.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from stardag_graphql.models import Event, Task
from stardag_graphql.store.pages import Ordering, Page, read_page

EVENTS_BY_OCCURRENCE = Ordering("occurred", (Event.occurred_at, Event.id))
EVENTS_BY_RECORDING = Ordering("recorded", (Event.recorded_at, Event.id))


async def build_events(
    session: AsyncSession, build_id: uuid.UUID, first: int, after: str | None
) -> Page[Event]:
    """A page of a build's events, in the order they occurred."""
    statement = select(Event).where(Event.build_id == build_id)
    return await read_page(session, statement, EVENTS_BY_OCCURRENCE, first, after)


async def task_events(
    session: AsyncSession, task_pk: uuid.UUID, first: int, after: str | None
) -> Page[Event]:
    """A page of a task's events, in the order they occurred."""
    statement = select(Event).where(Event.task_pk == task_pk)
    return await read_page(session, statement, EVENTS_BY_OCCURRENCE, first, after)


async def recorded_since(
    session: AsyncSession,
    build_id: uuid.UUID,
    since: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Event]:
    """Up to `limit` of a build's events recorded after the (recorded_at, id) key `since`."""
    statement = select(Event).where(Event.build_id == build_id)
    if since is not None:
        statement = statement.where(tuple_(Event.recorded_at, Event.id) > tuple_(*since))
    rows = await session.scalars(statement.order_by(Event.recorded_at, Event.id).limit(limit))
    return list(rows)


async def tasks_updated_since(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    since: tuple[datetime, uuid.UUID],
    limit: int,
) -> Sequence[Task]:
    """Up to `limit` of the workspace's tasks whose row changed after the key `since`."""
    rows = await session.scalars(
        select(Task)
        .where(
            Task.workspace_id == workspace_id,
            tuple_(Task.updated_at, Task.id) > tuple_(*since),
        )
        .order_by(Task.updated_at, Task.id)
        .limit(limit)
    )
    return list(rows)


async def count_events(
    session: AsyncSession, *, build_id: uuid.UUID | None = None, task_pk: uuid.UUID | None = None
) -> int:
    """How many events a build, or a task, has."""
    statement = select(func.count(Event.id))
    if build_id is not None:
        statement = statement.where(Event.build_id == build_id)
    if task_pk is not None:
        statement = statement.where(Event.task_pk == task_pk)
    return (await session.scalar(statement)) or 0
