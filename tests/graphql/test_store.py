"""The store: task registration and events are idempotent; dependencies read both ways."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from stardag_graphql.errors import UnknownTaskError
from stardag_graphql.models import Event, EventKind, Task, TaskStatus
from stardag_graphql.store.tasks import (
    EventRecord,
    TaskRegistration,
    dependencies,
    dependents,
    record_events,
    register_tasks,
)
from tests.graphql.conftest import make_workspace

RANGE = TaskRegistration(
    task_id="0b8e5f2c-0000-5000-8000-000000000001",
    name="get_range",
    parameters={"limit": 4},
    output_uri="/outputs/get_range/v/0b/8e/0b8e5f2c.json",
)
SUM = TaskRegistration(
    task_id="0b8e5f2c-0000-5000-8000-000000000002",
    name="get_sum",
    parameters={"integers": {"id": RANGE.task_id}},
    dependencies=[RANGE.task_id],
)


async def count_tasks(session: AsyncSession, workspace_id: uuid.UUID | None = None) -> int:
    """How many task rows there are, in one workspace or in all."""
    query = select(func.count()).select_from(Task)
    if workspace_id is not None:
        query = query.where(Task.workspace_id == workspace_id)
    return (await session.execute(query)).scalar_one()


async def test_registering_twice_keeps_one_row_per_task(session: AsyncSession) -> None:
    workspace = await make_workspace(session)
    first = await register_tasks(session, workspace, [RANGE, SUM])
    await session.commit()
    again = await register_tasks(session, workspace, [RANGE, SUM])
    await session.commit()

    assert first == again
    assert await count_tasks(session, workspace) == 2
    task = await session.get_one(Task, first[SUM.task_id])
    assert (task.name, task.parameters) == ("get_sum", {"integers": {"id": RANGE.task_id}})


async def test_the_same_task_in_two_workspaces_is_two_rows(session: AsyncSession) -> None:
    one = await make_workspace(session, "one")
    two = await make_workspace(session, "two")
    await register_tasks(session, one, [RANGE])
    await register_tasks(session, two, [RANGE])
    await session.commit()

    assert await count_tasks(session, one) == 1
    assert await count_tasks(session, two) == 1
    assert await count_tasks(session) == 2


async def test_the_rows_a_build_writes_get_ids_in_the_order_they_were_made(
    session: AsyncSession,
) -> None:
    workspace = await make_workspace(session)
    first = await register_tasks(session, workspace, [RANGE])
    await asyncio.sleep(0.002)  # ids of the same millisecond share it, in any order
    second = await register_tasks(session, workspace, [SUM])
    await asyncio.sleep(0.002)
    event = EventRecord("e-1", EventKind.TASK_RUNNING, datetime.now(UTC), SUM.task_id)
    await record_events(session, workspace, [event])
    await session.commit()

    [event_row] = (await session.scalars(select(Event))).all()
    ids = [first[RANGE.task_id], second[SUM.task_id], event_row.id]
    assert [pk.version for pk in ids] == [7, 7, 7]  # UUIDv7: time first, then random bits
    assert ids[0] < ids[1] < ids[2]


async def test_events_are_recorded_once_per_event_id(session: AsyncSession) -> None:
    workspace = await make_workspace(session)
    await register_tasks(session, workspace, [RANGE])
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    events = [
        EventRecord("e-1", EventKind.TASK_RUNNING, started, task_id=RANGE.task_id),
        EventRecord("e-2", EventKind.TASK_COMPLETED, started, task_id=RANGE.task_id),
    ]

    assert await record_events(session, workspace, events) == 2
    await session.commit()
    assert await record_events(session, workspace, [*events, events[0]]) == 0
    await session.commit()

    rows = (await session.scalars(select(Event).order_by(Event.event_id))).all()
    assert [(row.event_id, row.kind, row.occurred_at) for row in rows] == [
        ("e-1", EventKind.TASK_RUNNING, started),
        ("e-2", EventKind.TASK_COMPLETED, started),
    ]


async def test_an_event_whose_payload_has_nul_characters_is_kept(session: AsyncSession) -> None:
    # A task failed with binary data in its message: PostgreSQL's jsonb stores no NUL, and
    # refusing the event would lose every other event of its request.
    workspace = await make_workspace(session)
    await register_tasks(session, workspace, [RANGE])
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    events = [
        EventRecord("e-1", EventKind.TASK_RUNNING, at, task_id=RANGE.task_id),
        EventRecord(
            "e-2",
            EventKind.TASK_FAILED,
            at,
            task_id=RANGE.task_id,
            payload={"error": "ValueError: b'\x00\x01'", "lines": ["a\x00b"]},
        ),
    ]

    assert await record_events(session, workspace, events) == 2
    await session.commit()

    failed = await session.scalar(select(Event.payload).where(Event.event_id == "e-2"))
    assert failed == {"error": "ValueError: b'\ufffd\x01'", "lines": ["a\ufffdb"]}


async def test_a_task_whose_parameters_have_nul_characters_is_registered(
    session: AsyncSession,
) -> None:
    workspace = await make_workspace(session)
    odd = TaskRegistration(
        task_id="0b8e5f2c-0000-5000-8000-00000000000f",
        name="odd",
        parameters={"raw": "a\x00b", "nested": [{"key": "\x00"}]},
    )

    await register_tasks(session, workspace, [RANGE, odd])
    await session.commit()

    stored = await session.scalar(select(Task.parameters).where(Task.task_id == odd.task_id))
    assert stored == {"raw": "a\ufffdb", "nested": [{"key": "\ufffd"}]}


async def test_dependencies_read_both_ways(session: AsyncSession) -> None:
    workspace = await make_workspace(session)
    pks = await register_tasks(session, workspace, [RANGE, SUM])
    await session.commit()

    upstream = await dependencies(session, [pks[SUM.task_id], pks[RANGE.task_id]])
    downstream = await dependents(session, [pks[RANGE.task_id]])

    assert [task.task_id for task in upstream[pks[SUM.task_id]]] == [RANGE.task_id]
    assert [task.task_id for task in downstream[pks[RANGE.task_id]]] == [SUM.task_id]
    assert upstream[pks[RANGE.task_id]] == []


async def test_a_dependency_must_be_registered(session: AsyncSession) -> None:
    workspace = await make_workspace(session)

    with pytest.raises(UnknownTaskError, match=RANGE.task_id):
        await register_tasks(session, workspace, [SUM])


async def task_status(session: AsyncSession, workspace_id: uuid.UUID, task_id: str) -> TaskStatus:
    """The stored status of a task, read afresh from the database."""
    query = select(Task.status).where(Task.workspace_id == workspace_id, Task.task_id == task_id)
    return (await session.execute(query)).scalar_one()


async def test_a_task_takes_the_status_of_its_latest_event(session: AsyncSession) -> None:
    workspace = await make_workspace(session)
    await register_tasks(session, workspace, [RANGE, SUM])
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert await task_status(session, workspace, RANGE.task_id) == TaskStatus.PENDING

    await record_events(
        session,
        workspace,
        [
            EventRecord("e-1", EventKind.TASK_RUNNING, t0, task_id=RANGE.task_id),
            EventRecord(
                "e-2", EventKind.TASK_FAILED, t0 + timedelta(seconds=1), task_id=SUM.task_id
            ),
            EventRecord("e-3", EventKind.BUILD_STARTED, t0 + timedelta(seconds=2)),
        ],
    )
    await session.commit()

    assert await task_status(session, workspace, RANGE.task_id) == TaskStatus.RUNNING
    assert await task_status(session, workspace, SUM.task_id) == TaskStatus.FAILED


async def test_an_older_event_does_not_overwrite_a_newer_status(session: AsyncSession) -> None:
    workspace = await make_workspace(session)
    await register_tasks(session, workspace, [RANGE])
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    pending = EventRecord("e-1", EventKind.TASK_PENDING, t0, task_id=RANGE.task_id)
    running = EventRecord(
        "e-2", EventKind.TASK_RUNNING, t0 + timedelta(seconds=1), task_id=RANGE.task_id
    )
    completed = EventRecord(
        "e-3", EventKind.TASK_COMPLETED, t0 + timedelta(seconds=2), task_id=RANGE.task_id
    )

    await record_events(session, workspace, [completed, pending])
    await session.commit()
    assert await task_status(session, workspace, RANGE.task_id) == TaskStatus.COMPLETED
    await record_events(session, workspace, [running])
    await session.commit()
    assert await task_status(session, workspace, RANGE.task_id) == TaskStatus.COMPLETED


async def test_a_resent_event_does_not_reapply_its_status(session: AsyncSession) -> None:
    workspace = await make_workspace(session)
    pks = await register_tasks(session, workspace, [RANGE])
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    running = EventRecord("e-1", EventKind.TASK_RUNNING, t0, task_id=RANGE.task_id)
    await record_events(session, workspace, [running])
    await session.commit()
    # Set the status behind the events' back: only a new event may change it again.
    task = await session.get_one(Task, pks[RANGE.task_id])
    task.status = TaskStatus.CANCELLED
    await session.commit()

    assert await record_events(session, workspace, [running]) == 0
    await session.commit()

    assert await task_status(session, workspace, RANGE.task_id) == TaskStatus.CANCELLED
    failed = EventRecord("e-2", EventKind.TASK_FAILED, t0, task_id=RANGE.task_id)
    await record_events(session, workspace, [failed])
    # The loaded row's stale status is expired, not served.
    assert "status" in inspect(task).unloaded
    await session.refresh(task)
    assert task.status == TaskStatus.FAILED


async def test_events_at_the_same_instant_leave_the_later_stage(session: AsyncSession) -> None:
    workspace = await make_workspace(session)
    await register_tasks(session, workspace, [RANGE])
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    await record_events(
        session,
        workspace,
        [
            EventRecord("a", EventKind.TASK_COMPLETED, t0, task_id=RANGE.task_id),
            EventRecord("z", EventKind.TASK_RUNNING, t0, task_id=RANGE.task_id),
        ],
    )
    await session.commit()

    assert await task_status(session, workspace, RANGE.task_id) == TaskStatus.COMPLETED
