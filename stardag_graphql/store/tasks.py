"""Task registration and events: idempotent batch writes from clients.

Writes that clients may repeat (task registration, events) are idempotent upserts
(`INSERT ... ON CONFLICT`), so a retried batch changes nothing. A task's `status` is
derived from its task events: the one that occurred last wins, whatever order they arrive in.
"""

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import String, Text, Uuid, any_, bindparam, case, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.util import identity_key

from stardag_graphql.errors import UnknownTaskError
from stardag_graphql.ids import ordered_id
from stardag_graphql.models import (
    Event,
    EventKind,
    Task,
    TaskDependency,
    TaskStatus,
    utcnow,
)
from stardag_graphql.store.upsert import (
    dialect_of,
    insert_per_dialect,
    insert_rows,
    table_of,
    without_nul,
)

# Rows per INSERT: well under SQLite's and PostgreSQL's bound-parameter limits.
BATCH_SIZE = 500

T = TypeVar("T")

# The status each task event leaves its task in; build events leave tasks alone.
STATUS_OF_EVENT: Mapping[EventKind, TaskStatus] = {
    EventKind.TASK_PENDING: TaskStatus.PENDING,
    EventKind.TASK_RUNNING: TaskStatus.RUNNING,
    EventKind.TASK_COMPLETED: TaskStatus.COMPLETED,
    EventKind.TASK_FAILED: TaskStatus.FAILED,
    EventKind.TASK_CANCELLED: TaskStatus.CANCELLED,
}

# Between events that occurred at the same instant, the later stage of a task's life wins.
_STAGE_OF_EVENT: Mapping[EventKind, int] = {
    EventKind.TASK_PENDING: 0,
    EventKind.TASK_RUNNING: 1,
    EventKind.TASK_COMPLETED: 2,
    EventKind.TASK_FAILED: 2,
    EventKind.TASK_CANCELLED: 2,
}


@dataclass(frozen=True)
class TaskRegistration:
    """A task as a client registers it; `dependencies` are the task ids it needs."""

    task_id: str
    name: str
    namespace: str = ""
    version: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    output_uri: str | None = None
    dependencies: Sequence[str] = ()


@dataclass(frozen=True)
class EventRecord:
    """An event as a client sends it; `event_id` makes resending it harmless."""

    event_id: str
    kind: EventKind
    occurred_at: datetime
    task_id: str | None = None
    build_id: uuid.UUID | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


async def register_tasks(
    session: AsyncSession, workspace_id: uuid.UUID, tasks: Sequence[TaskRegistration]
) -> dict[str, uuid.UUID]:
    """Register tasks and their dependency edges; returns each task id's row id.

    Registering a task again changes nothing but its output URI, when that moved.
    Dependencies must be registered earlier or in the same batch. A NUL character in a
    parameter is stored as U+FFFD (see `without_nul`): PostgreSQL refused the whole request.
    """
    # One row per task id (the last one sent wins): one upsert statement may not touch a row
    # twice. Rows go in in task id order, edges too: workers registering the same tasks at
    # once then take their row locks in the same order, and cannot deadlock.
    tasks = sorted(tasks, key=lambda task: task.task_id)
    latest = {task.task_id: task for task in tasks}
    pks = await _upsert_tasks(session, workspace_id, list(latest.values()))
    wanted = {dep for task in tasks for dep in task.dependencies} | latest.keys()
    pks.update(await task_pks(session, workspace_id, wanted - pks.keys()))
    edges = list(
        dict.fromkeys(
            (pks[dep], pks[task.task_id]) for task in tasks for dep in sorted(task.dependencies)
        )
    )
    if dialect_of(session) == "sqlite":
        await insert_rows(
            session,
            _SQLITE_EDGE_INSERT,
            [
                {"upstream_pk": up, "downstream_pk": down, "workspace_id": workspace_id}
                for up, down in edges
            ],
        )
    elif edges:
        await session.execute(
            _PG_EDGE_INSERT,
            {
                "workspace_id": workspace_id,
                "upstream": [up for up, _ in edges],
                "downstream": [down for _, down in edges],
            },
        )
    return {task_id: pks[task_id] for task_id in latest}


async def _upsert_tasks(
    session: AsyncSession, workspace_id: uuid.UUID, tasks: Sequence[TaskRegistration]
) -> dict[str, uuid.UUID]:
    """Insert the new tasks, move changed output URIs; the row ids of the rows written, where
    the backend tells them cheaply (PostgreSQL)."""
    now = utcnow()
    if dialect_of(session) == "postgresql":
        rows = await session.execute(
            _PG_TASK_UPSERT,
            {
                "workspace_id": workspace_id,
                "now": now,
                "ids": [ordered_id() for _ in tasks],
                "task_ids": [task.task_id for task in tasks],
                "namespaces": [task.namespace for task in tasks],
                "names": [task.name for task in tasks],
                "versions": [task.version for task in tasks],
                "parameters": [without_nul(dict(task.parameters)) for task in tasks],
                "output_uris": [task.output_uri for task in tasks],
            },
        )
        return {row.task_id: row.id for row in rows}
    await insert_rows(
        session,
        _SQLITE_TASK_UPSERT,
        [
            {
                "id": ordered_id(),
                "workspace_id": workspace_id,
                "task_id": task.task_id,
                "namespace": task.namespace,
                "name": task.name,
                "version": task.version,
                "parameters": without_nul(dict(task.parameters)),
                "output_uri": task.output_uri,
                "status": TaskStatus.PENDING,
                "created_at": now,
                "updated_at": now,
            }
            for task in tasks
        ],
    )
    return {}


def _upsert(statement: postgresql.Insert | sqlite.Insert) -> postgresql.Insert | sqlite.Insert:
    """`statement` made a task upsert: a known task changes only an output URI that moved."""
    return statement.on_conflict_do_update(
        index_elements=["workspace_id", "task_id"],
        set_={
            "output_uri": statement.excluded.output_uri,
            "updated_at": statement.excluded.updated_at,
        },
        where=_TASKS.c.output_uri.is_distinct_from(statement.excluded.output_uri),
    )


# The write statements are built once: building them (the upsert's `excluded` alias most of
# all) cost more Python time than running them for one task.
_TASKS = table_of(Task)
_EDGES = table_of(TaskDependency)

# PostgreSQL gets the rows column-wise, as arrays that `unnest` turns into rows: one short
# statement for any number of rows. Row-wise, psycopg's executemany runs an INSERT per row,
# and a multi-row VALUES of a thousand tasks costs more to convert in psycopg than to run.
_PG_NEW_TASKS = (
    func.unnest(
        bindparam("ids", type_=ARRAY(Uuid())),
        bindparam("task_ids", type_=ARRAY(String())),
        bindparam("namespaces", type_=ARRAY(String())),
        bindparam("names", type_=ARRAY(String())),
        bindparam("versions", type_=ARRAY(String())),
        bindparam("parameters", type_=ARRAY(JSONB())),
        bindparam("output_uris", type_=ARRAY(Text())),
    )
    .table_valued("id", "task_id", "namespace", "name", "version", "parameters", "output_uri")
    .render_derived(name="new_tasks")
)
_NOW = bindparam("now", type_=_TASKS.c.created_at.type)
_PG_TASK_UPSERT = _upsert(
    postgresql.insert(_TASKS).from_select(
        [*_PG_NEW_TASKS.c.keys(), "workspace_id", "status", "created_at", "updated_at"],
        select(
            *_PG_NEW_TASKS.c,
            bindparam("workspace_id", type_=Uuid()),
            literal(TaskStatus.PENDING, _TASKS.c.status.type),
            _NOW,
            _NOW,
        ),
    )
).returning(_TASKS.c.task_id, _TASKS.c.id)
_PG_NEW_EDGES = (
    func.unnest(
        bindparam("upstream", type_=ARRAY(Uuid())), bindparam("downstream", type_=ARRAY(Uuid()))
    )
    .table_valued("upstream_pk", "downstream_pk")
    .render_derived(name="new_edges")
)
_PG_EDGE_INSERT = (
    postgresql.insert(_EDGES)
    .from_select(
        ["upstream_pk", "downstream_pk", "workspace_id"],
        select(*_PG_NEW_EDGES.c, bindparam("workspace_id", type_=Uuid())),
    )
    .on_conflict_do_nothing()
)
_SQLITE_TASK_UPSERT = _upsert(sqlite.insert(_TASKS))
_SQLITE_EDGE_INSERT = sqlite.insert(_EDGES).on_conflict_do_nothing()


async def record_events(
    session: AsyncSession, workspace_id: uuid.UUID, events: Sequence[EventRecord]
) -> int:
    """Append events, skipping those whose `event_id` is recorded; returns how many were new.

    Each task with a new task event takes the status of its latest task event.
    """
    pks = await task_pks(session, workspace_id, {e.task_id for e in events if e.task_id})
    recorded_at = utcnow()
    result = await insert_rows(
        session,
        _EVENT_INSERT[dialect_of(session)],
        [
            {
                "id": ordered_id(),
                "workspace_id": workspace_id,
                "event_id": event.event_id,
                "kind": event.kind,
                "build_id": event.build_id,
                "task_pk": pks[event.task_id] if event.task_id else None,
                "payload": without_nul(dict(event.payload)),
                "occurred_at": event.occurred_at,
                # A microsecond apart: followers read a batch in the order it was sent.
                "recorded_at": recorded_at + timedelta(microseconds=index),
            }
            for index, event in enumerate(events)
        ],
    )
    inserted: Sequence[Any] = result.all() if result is not None else ()
    new: list[tuple[uuid.UUID | None, EventKind]] = [(pk, kind) for pk, kind in inserted]
    recorded = len(new)
    touched = {pk for pk, kind in new if pk is not None and kind in STATUS_OF_EVENT}
    task_of = {pk: task_id for task_id, pk in pks.items()}
    await _update_statuses(session, sorted(touched, key=task_of.__getitem__))
    return recorded


async def recorded_event_ids(
    session: AsyncSession, workspace_id: uuid.UUID, event_ids: Iterable[str]
) -> set[str]:
    """Which of `event_ids` are recorded in the workspace."""
    wanted = sorted(set(event_ids))
    found: set[str] = set()
    for batch in _batches(wanted):
        rows = await session.scalars(
            _RECORDED_EVENT_IDS, {"workspace_id": workspace_id, "event_ids": list(batch)}
        )
        found.update(rows)
    return found


async def task_pks(
    session: AsyncSession, workspace_id: uuid.UUID, task_ids: Iterable[str]
) -> dict[str, uuid.UUID]:
    """Row ids of the given task ids in a workspace; raises `UnknownTaskError` for a missing one."""
    wanted = sorted(set(task_ids))
    found: dict[str, uuid.UUID] = {}
    postgresql = dialect_of(session) == "postgresql"
    # PostgreSQL takes any number of ids as one array parameter: one statement.
    for batch in [wanted] if postgresql else _batches(wanted):
        if batch:
            rows = await session.execute(
                _PG_TASK_PKS if postgresql else _TASK_PKS,
                {"workspace_id": workspace_id, "task_ids": list(batch)},
            )
            found.update((row.task_id, row.id) for row in rows)
    if missing := [task_id for task_id in wanted if task_id not in found]:
        raise UnknownTaskError(
            f"task ids not registered in this workspace: {', '.join(missing[:5])}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            + " (register a task with registerTasks before naming it)"
        )
    return found


async def dependencies(
    session: AsyncSession, task_pks: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Task]]:
    """For each of the tasks `task_pks`, the tasks it needs (its direct upstream), by task id."""
    rows = await session.execute(
        select(Task, TaskDependency.downstream_pk)
        .join(TaskDependency, TaskDependency.upstream_pk == Task.id)
        .where(TaskDependency.downstream_pk.in_(task_pks))
        .order_by(Task.task_id)
    )
    return _grouped(task_pks, rows)


async def dependents(
    session: AsyncSession, task_pks: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Task]]:
    """For each of the tasks `task_pks`, the tasks that need it (its direct downstream)."""
    rows = await session.execute(
        select(Task, TaskDependency.upstream_pk)
        .join(TaskDependency, TaskDependency.downstream_pk == Task.id)
        .where(TaskDependency.upstream_pk.in_(task_pks))
        .order_by(Task.task_id)
    )
    return _grouped(task_pks, rows)


# Built once: building the SELECT each time cost about as much as running it.
_TASK_PKS = select(Task.task_id, Task.id).where(
    Task.workspace_id == bindparam("workspace_id"),
    Task.task_id.in_(bindparam("task_ids", expanding=True)),
)
_PG_TASK_PKS = select(Task.task_id, Task.id).where(
    Task.workspace_id == bindparam("workspace_id"),
    Task.task_id == any_(bindparam("task_ids", type_=ARRAY(String()))),
)


def _grouped(
    keys: Sequence[uuid.UUID], rows: Iterable[tuple[T, uuid.UUID]]
) -> dict[uuid.UUID, list[T]]:
    groups: dict[uuid.UUID, list[T]] = {key: [] for key in keys}
    for row, key in rows:
        groups[key].append(row)
    return groups


async def _update_statuses(session: AsyncSession, pks: Sequence[uuid.UUID]) -> None:
    """Set each task's status from its latest task event; `pks` come in task id order."""
    postgresql = dialect_of(session) == "postgresql"
    for batch in _batches(pks):
        if postgresql:
            # Lock the rows first, in task id order as `register_tasks` does (the batches
            # come in that order too). Workers record events for the same tasks (each
            # records the tasks it found built elsewhere), and PostgreSQL's UPDATE takes rows
            # in whatever order its plan visits them: two such batches could deadlock. The
            # lock is the one UPDATE takes (NO KEY UPDATE), which the event rows' foreign key
            # checks (KEY SHARE) do not block. SQLite has one writer at a time anyway.
            await session.execute(_LOCK_TASK_ROWS, {"pks": list(batch)})
        await session.execute(_UPDATE_STATUSES, {"pks": list(batch)})
    # The update bypasses the ORM: rows this session loaded read their new status afresh.
    for pk in pks:
        loaded = session.identity_map.get(identity_key(Task, pk))
        if loaded is not None:
            session.expire(loaded, ["status"])


# Built once, like the task writes above.
_EVENTS = table_of(Event)
# RETURNING yields only the rows inserted: a portable count (psycopg's rowcount isn't).
_EVENT_INSERT = insert_per_dialect(
    _EVENTS,
    lambda insert: insert.on_conflict_do_nothing(
        index_elements=["workspace_id", "event_id"]
    ).returning(_EVENTS.c.task_pk, _EVENTS.c.kind),
)
_RECORDED_EVENT_IDS = select(_EVENTS.c.event_id).where(
    _EVENTS.c.workspace_id == bindparam("workspace_id"),
    _EVENTS.c.event_id.in_(bindparam("event_ids", expanding=True)),
)
_LATEST_STATUS = (
    select(
        case(
            {kind.value: status.value for kind, status in STATUS_OF_EVENT.items()},
            value=_EVENTS.c.kind,
        )
    )
    .where(_EVENTS.c.task_pk == _TASKS.c.id, _EVENTS.c.kind.in_(list(STATUS_OF_EVENT)))
    .order_by(
        _EVENTS.c.occurred_at.desc(),
        case(
            {kind.value: stage for kind, stage in _STAGE_OF_EVENT.items()}, value=_EVENTS.c.kind
        ).desc(),
        _EVENTS.c.event_id.desc(),
    )
    .limit(1)
    .scalar_subquery()
)
_LOCK_TASK_ROWS = (
    select(_TASKS.c.id)
    .where(_TASKS.c.id.in_(bindparam("pks", expanding=True)))
    # Byte order, whatever the database's collation: Python's `sorted`, as registrations go.
    .order_by(_TASKS.c.task_id.collate("C"))
    .with_for_update(key_share=True)
)
_UPDATE_STATUSES = (
    update(_TASKS)
    .where(
        _TASKS.c.id.in_(bindparam("pks", expanding=True)),
        _TASKS.c.status.is_distinct_from(_LATEST_STATUS),
    )
    .values(status=_LATEST_STATUS)
)


def _batches(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), BATCH_SIZE):
        yield items[start : start + BATCH_SIZE]


async def task_by_id(session: AsyncSession, workspace_id: uuid.UUID, task_id: str) -> Task | None:
    """The workspace's task with the stardag id `task_id`, if registered."""
    return await session.scalar(
        select(Task).where(Task.workspace_id == workspace_id, Task.task_id == task_id)
    )
