"""The writes clients make while they build: builds, tasks, events, locks, assets and logs.

Batch writes (`registerTasks`, `recordEvents`, `appendLogs`) are idempotent, so a client may
resend a batch whose answer it never got. Each mutation commits once, then wakes the live
subscriptions of its workspace.
"""

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import strawberry
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.extensions import FieldExtension
from strawberry.relay import GlobalID
from strawberry.relay.types import GlobalIDValueError, InvalidGlobalIDError
from strawberry.scalars import JSON
from strawberry.types.arguments import InputContext
from strawberry.types.base import get_object_definition

from stardag_graphql import models
from stardag_graphql.errors import InvalidInputError, NotFoundError
from stardag_graphql.ids import row_id
from stardag_graphql.permissions import operation_action
from stardag_graphql.store import assets as asset_store
from stardag_graphql.store import builds as build_store
from stardag_graphql.store import locks as lock_store
from stardag_graphql.store import logs as log_store
from stardag_graphql.store import tasks as task_store
from stardag_graphql.types import Asset, Build, Info

MAX_BATCH = 5000
MAX_TASK_ID_LENGTH = 64
CONFLICT_ATTEMPTS = 5
"""How many times a mutation runs before a transaction conflict is answered as an internal
error."""
# The SQLSTATEs of a transaction PostgreSQL rolled back to break a deadlock, or to keep
# transactions serializable: its manual's advice is to run the transaction again.
TRANSIENT_CONFLICTS = frozenset({"40P01", "40001"})


@strawberry.input(description="A task as the SDK registers it.")
class TaskInput:
    task_id: str
    name: str
    namespace: str = ""
    version: str = ""
    parameters: JSON | None = strawberry.field(
        default=None, description="A JSON object (none: no parameters)."
    )
    output_uri: str | None = None
    dependencies: list[str] = strawberry.field(
        default_factory=list, description="The task ids this task needs (registered too)."
    )


def _task_input(cls: type[TaskInput], value: Mapping[str, Any], context: InputContext) -> TaskInput:
    # graphql-core has coerced and checked every field, and filled in the published defaults,
    # so the value needs no per-field conversion: Strawberry's took about a third of the
    # Python time of a batch of 1,000 tasks. All of TaskInput's fields are leaf types.
    return cls(
        task_id=value["taskId"],
        name=value["name"],
        namespace=value["namespace"],
        version=value["version"],
        parameters=value["parameters"],
        output_uri=value.get("outputUri"),
        # A copy: graphql-core gives every request that omits the field the same default list.
        dependencies=list(value["dependencies"]),
    )


get_object_definition(TaskInput, strict=True).from_input = _task_input


@strawberry.input(description="An event; `eventId`, chosen by the client, makes resending safe.")
class EventInput:
    event_id: str
    kind: models.EventKind
    occurred_at: datetime
    task_id: str | None = None
    build_id: GlobalID | None = None
    payload: JSON | None = strawberry.field(default=None, description="A JSON object.")


def _event_input(
    cls: type[EventInput], value: Mapping[str, Any], context: InputContext
) -> EventInput:
    # As for TaskInput: graphql-core has coerced every field (the kind to its enum member),
    # so only the build's global id is left to decode.
    build_id = value.get("buildId")
    return cls(
        event_id=value["eventId"],
        kind=value["kind"],
        occurred_at=value["occurredAt"],
        task_id=value.get("taskId"),
        build_id=None if build_id is None else _global_id(build_id),
        payload=value.get("payload"),
    )


@lru_cache(maxsize=1024)
def _global_id(value: str) -> GlobalID:
    """A global id from its text, as Strawberry decodes it (the events of a batch mostly
    share one build: each id is decoded once)."""
    try:
        return GlobalID.from_id(value)
    except GlobalIDValueError as error:
        raise InvalidGlobalIDError(f'Value cannot represent a GlobalID: "{value}".') from error


get_object_definition(EventInput, strict=True).from_input = _event_input


@strawberry.input(description="A log line; `seq` numbers the task's lines, so resending is safe.")
class LogLineInput:
    seq: int
    text: str
    logged_at: datetime
    stream: str = "stdout"


@strawberry.type(description="How many tasks a registration named (new or already known).")
class RegisterTasksPayload:
    registered: int


@strawberry.type(description="How many events were new, and how many were already recorded.")
class RecordEventsPayload:
    recorded: int
    duplicates: int


@strawberry.type(description="How many log lines were new.")
class AppendLogsPayload:
    appended: int


@strawberry.type(description="A granted lease: present `fencingToken` to renew and release.")
class Lease:
    key: str
    holder: str
    fencing_token: int
    expires_at: datetime

    @classmethod
    def from_store(cls, lease: lock_store.Lease) -> "Lease":
        return cls(
            key=lease.key,
            holder=lease.holder,
            fencing_token=lease.fencing_token,
            expires_at=lease.expires_at,
        )


@strawberry.type(description="The answer to acquiring or renewing a lock: a lease, or none.")
class LockResult:
    acquired: bool
    lease: Lease | None


@strawberry.input(description="A lease as its holder names it: the lock's key and its token.")
class LeaseInput:
    key: str
    fencing_token: int


@strawberry.input(description="Events to record under a lease (see `recordEventsUnderLocks`).")
class LockedEventsInput:
    key: str
    fencing_token: int
    events: list[EventInput]


def _lease_input(
    cls: type[LeaseInput], value: Mapping[str, Any], context: InputContext
) -> LeaseInput:
    return cls(key=value["key"], fencing_token=value["fencingToken"])


def _locked_events_input(
    cls: type[LockedEventsInput], value: Mapping[str, Any], context: InputContext
) -> LockedEventsInput:
    return cls(
        key=value["key"],
        fencing_token=value["fencingToken"],
        events=[_event_input(EventInput, event, context) for event in value["events"]],
    )


get_object_definition(LeaseInput, strict=True).from_input = _lease_input
get_object_definition(LockedEventsInput, strict=True).from_input = _locked_events_input


@strawberry.type
class BuildMutation:
    @strawberry.mutation(
        description="Start a build; it is named memorably unless `name` is given. With `key` "
        "(a UUID the client chooses, which becomes the build's row id) starting is idempotent: "
        "resending returns the same build."
    )
    async def start_build(
        self,
        info: Info,
        workspace_id: GlobalID,
        name: str | None = None,
        commit: str | None = None,
        key: uuid.UUID | None = None,
    ) -> Build:
        async with writing(info, workspace_id) as (session, workspace):
            row = await build_store.start_build(
                session, workspace, info.context.identity.user_id, name, commit, key
            )
        return Build.from_row(row)

    @strawberry.mutation(description="Finish a running build as completed, failed or cancelled.")
    async def finish_build(
        self, info: Info, build_id: GlobalID, status: models.BuildStatus
    ) -> Build:
        build = await visible_build(info, build_id)
        async with writing(info, build.workspace_id) as (session, workspace):
            row = await build_store.finish_build(session, workspace, build.id, status)
        return Build.from_row(row)

    @strawberry.mutation(
        description="Register tasks with their dependencies (idempotent); with `buildId`, they "
        "join that build, and `rootTaskIds` mark the tasks it was asked for."
    )
    async def register_tasks(
        self,
        info: Info,
        workspace_id: GlobalID,
        tasks: list[TaskInput],
        build_id: GlobalID | None = None,
        root_task_ids: list[str] | None = None,
    ) -> RegisterTasksPayload:
        _check_batch("tasks", tasks)
        registrations = [_registration(task) for task in tasks]
        async with writing(info, workspace_id) as (session, workspace):
            pks = await task_store.register_tasks(session, workspace, registrations)
            if build_id is not None:
                build = row_id(build_id, "Build")
                await build_store.require_build(session, workspace, build)
                roots = await task_store.task_pks(session, workspace, root_task_ids or ())
                await build_store.add_build_tasks(session, build, pks.values(), roots.values())
        return RegisterTasksPayload(registered=len(pks))

    @strawberry.mutation(description="Record events (idempotent by `eventId`).")
    async def record_events(
        self, info: Info, workspace_id: GlobalID, events: list[EventInput]
    ) -> RecordEventsPayload:
        _check_batch("events", events)
        # Converted before the write gate is taken: no other write waits for this.
        records = [_event(event) for event in events]
        builds = {record.build_id for record in records if record.build_id}
        async with writing(info, workspace_id) as (session, workspace):
            for build in builds:
                await build_store.require_build(session, workspace, build)
            recorded = await task_store.record_events(session, workspace, records)
        return RecordEventsPayload(recorded=recorded, duplicates=len(events) - recorded)

    @strawberry.mutation(
        description="Take lock `key` for `ttlSeconds` if it is free or expired; the same holder "
        "acquiring again renews its lease."
    )
    async def acquire_lock(
        self, info: Info, workspace_id: GlobalID, key: str, holder: str, ttl_seconds: float
    ) -> LockResult:
        async with writing(info, workspace_id) as (session, workspace):
            lease = await lock_store.acquire_lock(
                session, workspace, key, holder, _ttl(ttl_seconds)
            )
        return LockResult(acquired=lease is not None, lease=_lease(lease))

    @strawberry.mutation(description="Extend a live lease held with `fencingToken`.")
    async def renew_lock(
        self,
        info: Info,
        workspace_id: GlobalID,
        key: str,
        holder: str,
        fencing_token: int,
        ttl_seconds: float,
    ) -> LockResult:
        async with writing(info, workspace_id) as (session, workspace):
            lease = await lock_store.renew_lock(
                session, workspace, key, holder, fencing_token, _ttl(ttl_seconds)
            )
        return LockResult(acquired=lease is not None, lease=_lease(lease))

    @strawberry.mutation(description="Release a lock held with `fencingToken`; false if not held.")
    async def release_lock(
        self, info: Info, workspace_id: GlobalID, key: str, holder: str, fencing_token: int
    ) -> bool:
        async with writing(info, workspace_id) as (session, workspace):
            return await lock_store.release_lock(session, workspace, key, holder, fencing_token)

    @strawberry.mutation(
        description="Record `events` and release lock `key` in one transaction, if "
        "`fencingToken` is still the live token of the caller's lease; otherwise record "
        "nothing and answer false. This is how a worker records the work it did under a lock: "
        "one whose lease lapsed, or was taken over, cannot. Resending after a success answers "
        "true (events are idempotent by `eventId`)."
    )
    async def record_events_under_lock(
        self,
        info: Info,
        workspace_id: GlobalID,
        key: str,
        holder: str,
        fencing_token: int,
        events: list[EventInput],
    ) -> bool:
        completion = LockedEventsInput(key=key, fencing_token=fencing_token, events=events)
        (recorded,) = await _record_under_locks(info, workspace_id, holder, [completion])
        return recorded

    @strawberry.mutation(
        description="`acquireLock` for many keys in one statement: a result for each key, in order."
    )
    async def acquire_locks(
        self, info: Info, workspace_id: GlobalID, keys: list[str], holder: str, ttl_seconds: float
    ) -> list[LockResult]:
        _check_batch("keys", keys)
        async with writing(info, workspace_id) as (session, workspace):
            leases = await lock_store.acquire_locks(
                session, workspace, keys, holder, _ttl(ttl_seconds)
            )
        return [LockResult(acquired=key in leases, lease=_lease(leases.get(key))) for key in keys]

    @strawberry.mutation(
        description="`renewLock` for many leases in one statement: whether each was renewed, "
        "in order."
    )
    async def renew_locks(
        self,
        info: Info,
        workspace_id: GlobalID,
        leases: list[LeaseInput],
        holder: str,
        ttl_seconds: float,
    ) -> list[bool]:
        _check_batch("leases", leases)
        pairs = [(lease.key, lease.fencing_token) for lease in leases]
        async with writing(info, workspace_id) as (session, workspace):
            renewed = await lock_store.renew_locks(
                session, workspace, pairs, holder, _ttl(ttl_seconds)
            )
        return [lease.key in renewed for lease in leases]

    @strawberry.mutation(
        description="`releaseLock` for many leases in one statement: whether each was "
        "released, in order."
    )
    async def release_locks(
        self, info: Info, workspace_id: GlobalID, leases: list[LeaseInput], holder: str
    ) -> list[bool]:
        _check_batch("leases", leases)
        pairs = [(lease.key, lease.fencing_token) for lease in leases]
        async with writing(info, workspace_id) as (session, workspace):
            released = await lock_store.release_locks(session, workspace, pairs, holder)
        return [lease.key in released for lease in leases]

    @strawberry.mutation(
        description="`recordEventsUnderLock` for many leases in one transaction: for each, in "
        "order, whether its events are recorded (only those of live leases are, and their "
        "locks released)."
    )
    async def record_events_under_locks(
        self,
        info: Info,
        workspace_id: GlobalID,
        holder: str,
        completions: list[LockedEventsInput],
    ) -> list[bool]:
        return await _record_under_locks(info, workspace_id, holder, completions)

    @strawberry.mutation(description="Attach an asset to a task, replacing one of the same name.")
    async def put_asset(
        self,
        info: Info,
        workspace_id: GlobalID,
        task_id: str,
        name: str,
        kind: models.AssetKind,
        body: str,
    ) -> Asset:
        async with writing(info, workspace_id) as (session, workspace):
            row = await asset_store.put_asset(session, workspace, task_id, name, kind, body)
        return Asset.from_row(row)

    @strawberry.mutation(
        description="Append log lines to a task (idempotent by `seq`). With `buildId`, `seq` "
        "numbers the lines of that build's run of the task from 0, and they are stored after "
        "the lines of the task's other builds."
    )
    async def append_logs(
        self,
        info: Info,
        workspace_id: GlobalID,
        task_id: str,
        lines: list[LogLineInput],
        build_id: GlobalID | None = None,
    ) -> AppendLogsPayload:
        _check_batch("lines", lines)
        build_pk = row_id(build_id, "Build") if build_id else None
        async with writing(info, workspace_id) as (session, workspace):
            if build_pk is not None:
                await build_store.require_build(session, workspace, build_pk)
            appended = await log_store.append_logs(
                session,
                workspace,
                task_id,
                [
                    log_store.LogLine(
                        seq=line.seq,
                        text=line.text,
                        logged_at=line.logged_at,
                        stream=line.stream,
                        build_id=build_pk,
                    )
                    for line in lines
                ],
            )
        return AppendLogsPayload(appended=appended)


class RetryConflicts(FieldExtension):
    """Runs a mutation again, after a short random pause, when the database rolled its
    transaction back to break a deadlock or a serialization conflict: nothing of it was
    written, and it may succeed at once. Every mutation it is given to (those of
    `BuildMutation` and `ManagementMutation`) writes in one transaction and has no effect
    outside it, so running it again does what the first run would have done."""

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        attempt = 1
        while True:
            try:
                return await next_(source, info, **kwargs)
            except DBAPIError as error:
                sqlstate = getattr(error.orig, "sqlstate", None)
                if sqlstate not in TRANSIENT_CONFLICTS or attempt == CONFLICT_ATTEMPTS:
                    raise
            await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
            attempt += 1


def retrying_conflicts(mutations: type) -> None:
    """Give every mutation of `mutations` the `RetryConflicts` extension."""
    for field in get_object_definition(mutations, strict=True).fields:
        field.extensions.append(RetryConflicts())


retrying_conflicts(BuildMutation)


async def _record_under_locks(
    info: Info, workspace_id: GlobalID, holder: str, completions: Sequence[LockedEventsInput]
) -> list[bool]:
    """Record each completion's events and release its lock, in one transaction, for the
    leases still live; for each, in order, whether its events are recorded (now, or by an
    earlier send of the same events)."""
    _check_batch("completions", completions)
    records = {item.key: [_event(event) for event in item.events] for item in completions}
    _check_batch("events", [record for batch in records.values() for record in batch])
    pairs = [(item.key, item.fencing_token) for item in completions]
    async with writing(info, workspace_id) as (session, workspace):
        builds = {r.build_id for batch in records.values() for r in batch if r.build_id}
        for build in builds:
            await build_store.require_build(session, workspace, build)
        released = await lock_store.release_live_locks(session, workspace, pairs, holder)
        live = [record for key in released for record in records[key]]
        await task_store.record_events(session, workspace, live)
        wanted = {
            r.event_id for key, batch in records.items() if key not in released for r in batch
        }
        found = await task_store.recorded_event_ids(session, workspace, wanted)
    return [
        item.key in released or {r.event_id for r in records[item.key]} <= found
        for item in completions
    ]


async def workspace_pk(info: Info, workspace_id: GlobalID) -> uuid.UUID:
    """The row id of a workspace the caller may use; `NotFoundError` for any other."""
    pk = row_id(workspace_id, "Workspace")
    if pk not in await info.context.workspace_ids():
        raise NotFoundError(
            f"no workspace {workspace_id} among yours: "
            "list them with `organizations { workspaces { id } }`"
        )
    return pk


async def visible_build(info: Info, build_id: GlobalID) -> models.Build:
    """The build `build_id` if the caller reaches its workspace; `NotFoundError` otherwise."""
    build = await info.context.loaders.builds.load(row_id(build_id, "Build"))
    if build is None or build.workspace_id not in await info.context.workspace_ids():
        raise NotFoundError(f"no build {build_id}: pass the id that startBuild returned")
    return build


@asynccontextmanager
async def writing(
    info: Info, workspace: GlobalID | uuid.UUID
) -> AsyncIterator[tuple[AsyncSession, uuid.UUID]]:
    """A session on the caller's workspace, if the permission table lets them make this
    mutation there, that commits at the end, then wakes subscribers."""
    pk = workspace if isinstance(workspace, uuid.UUID) else await workspace_pk(info, workspace)
    await info.context.require(pk, operation_action("Mutation", info.field_name))
    async with info.context.transaction() as session:
        yield session, pk
    info.context.notifier.changed(pk)


def _check_batch(what: str, items: Sequence[object]) -> None:
    if len(items) > MAX_BATCH:
        raise InvalidInputError(
            f"{len(items)} {what} in one request; send at most {MAX_BATCH} per request"
        )


def _registration(task: TaskInput) -> task_store.TaskRegistration:
    for task_id in (task.task_id, *task.dependencies):
        if not 1 <= len(task_id) <= MAX_TASK_ID_LENGTH:
            raise InvalidInputError(
                f"task id must be 1 to {MAX_TASK_ID_LENGTH} characters, got {task_id!r}"
            )
    parameters: object = {} if task.parameters is None else task.parameters
    if not isinstance(parameters, dict):
        raise InvalidInputError(
            f"parameters of task {task.task_id} must be a JSON object, got {task.parameters!r}"
        )
    if not task.name:
        raise InvalidInputError(f"task {task.task_id} needs a name")
    return task_store.TaskRegistration(
        task_id=task.task_id,
        name=task.name,
        namespace=task.namespace,
        version=task.version,
        parameters=parameters,
        output_uri=task.output_uri,
        dependencies=task.dependencies,
    )


def _event(event: EventInput) -> task_store.EventRecord:
    if not 1 <= len(event.event_id) <= MAX_TASK_ID_LENGTH:
        raise InvalidInputError(
            f"eventId must be 1 to {MAX_TASK_ID_LENGTH} characters, got {event.event_id!r}"
        )
    payload: object = {} if event.payload is None else event.payload
    if not isinstance(payload, dict):
        raise InvalidInputError(f"payload of event {event.event_id} must be a JSON object")
    return task_store.EventRecord(
        event_id=event.event_id,
        kind=event.kind,
        occurred_at=event.occurred_at,
        task_id=event.task_id,
        build_id=row_id(event.build_id, "Build") if event.build_id else None,
        payload=payload,
    )


def _lease(lease: lock_store.Lease | None) -> Lease | None:
    return None if lease is None else Lease.from_store(lease)


def _ttl(seconds: float) -> timedelta:
    if not 0 < seconds <= 86_400:
        raise InvalidInputError(f"ttlSeconds must be above 0 and at most 86400, got {seconds}")
    return timedelta(seconds=seconds)
