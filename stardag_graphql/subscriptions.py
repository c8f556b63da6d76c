"""Live subscriptions: a build's events as they are recorded, and a workspace's task changes.

Both read the database, not a message bus: a subscription reads what is new, then waits
until a mutation of this process wakes it or `POLL_SECONDS` pass (which is how writes made by
another server process reach it). Each reads a little behind its last key (`OVERLAP`) and
skips what it has sent, so a row whose transaction committed late is still delivered, once.
Between reads each checks that the caller still reaches the workspace: a removed member, a
revoked key or an expired token ends the subscription with an error.
"""

import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator
from datetime import datetime, timedelta
from typing import TypeVar

import strawberry
from strawberry.relay import GlobalID

from stardag_graphql import models
from stardag_graphql.mutations import visible_build, workspace_pk
from stardag_graphql.store import builds as build_store
from stardag_graphql.store import events as event_store
from stardag_graphql.store.pages import Ordering
from stardag_graphql.types import Event, Info, Task

K = TypeVar("K")

POLL_SECONDS = 1.0
OVERLAP = timedelta(seconds=2)
BATCH = 500
MAX_REMEMBERED = 10_000

TASKS_BY_UPDATE = Ordering("updated", (models.Task.updated_at, models.Task.id))


@strawberry.type(description="A build's event, with the cursor to resume after it.")
class BuildEvent:
    cursor: str
    event: Event


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="A build's events, from the first (or after `after`, the cursor of the last "
        "one received) as they are recorded; ends once the build has finished and every event "
        "recorded so far was sent."
    )
    async def build_events(
        self, info: Info, build_id: GlobalID, after: str | None = None
    ) -> AsyncGenerator[BuildEvent, None]:
        build = await visible_build(info, build_id)
        build_pk = build.id
        # The client holds everything up to `resumed`; later rows may commit out of order.
        resumed = since = _key(event_store.EVENTS_BY_RECORDING, after)
        sent: OrderedDict[uuid.UUID, None] = OrderedDict()
        while True:
            async with info.context.reads() as session:
                finished = await build_store.is_finished(session, build_pk)
                rows = await event_store.recorded_since(session, build_pk, since, BATCH)
                caught_up = len(rows) < BATCH
                if caught_up and since is not None:
                    rows = await event_store.recorded_since(
                        session, build_pk, _behind(since), MAX_REMEMBERED
                    )
            for row in rows:
                key = (row.recorded_at, row.id)
                since = max(since, key) if since else key
                if (resumed is None or key > resumed) and _remember(sent, row.id):
                    yield BuildEvent(
                        cursor=event_store.EVENTS_BY_RECORDING.cursor(row),
                        event=Event.from_row(row),
                    )
            if not caught_up:
                continue
            if finished:
                return
            await info.context.notifier.wait(build.workspace_id, POLL_SECONDS)
            await info.context.still_reaches(build.workspace_id)

    @strawberry.subscription(
        description="Tasks of a workspace as their status or output changes, from now on."
    )
    async def task_status_changed(
        self, info: Info, workspace_id: GlobalID
    ) -> AsyncGenerator[Task, None]:
        workspace = await workspace_pk(info, workspace_id)
        # Changes from before the subscription are not news; later ones may commit late.
        start = since = (models.utcnow(), uuid.UUID(int=0))
        sent: OrderedDict[tuple[uuid.UUID, datetime], None] = OrderedDict()
        while True:
            async with info.context.reads() as session:
                rows = await event_store.tasks_updated_since(session, workspace, since, BATCH)
                caught_up = len(rows) < BATCH
                if caught_up:
                    rows = await event_store.tasks_updated_since(
                        session, workspace, _behind(since), MAX_REMEMBERED
                    )
            for row in rows:
                key = (row.updated_at, row.id)
                since = max(since, key)
                if key > start and _remember(sent, (row.id, row.updated_at)):
                    yield Task.from_row(row)
            if caught_up:
                await info.context.notifier.wait(workspace, POLL_SECONDS)
                await info.context.still_reaches(workspace)


def _key(ordering: Ordering, after: str | None) -> tuple[datetime, uuid.UUID] | None:
    if after is None:
        return None
    recorded_at, pk = ordering.decode(after)
    return recorded_at, pk


def _behind(since: tuple[datetime, uuid.UUID]) -> tuple[datetime, uuid.UUID]:
    return since[0] - OVERLAP, uuid.UUID(int=0)


def _remember(sent: "OrderedDict[K, None]", key: K) -> bool:
    """Whether `key` is new; remembers the latest `MAX_REMEMBERED` keys."""
    if key in sent:
        return False
    sent[key] = None
    if len(sent) > MAX_REMEMBERED:
        sent.popitem(last=False)
    return True
