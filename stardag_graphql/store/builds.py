"""Builds: started with a memorable name, joined by the tasks they touch, finished once."""

import secrets
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from stardag_graphql.errors import InvalidInputError, NotFoundError
from stardag_graphql.models import Build, BuildStatus, BuildTask, Task, TaskDependency, utcnow
from stardag_graphql.store.pages import Ordering, Page, read_page
from stardag_graphql.store.upsert import insert, insert_rows, table_of

MAX_NAME_LENGTH = 100
MAX_COMMIT_LENGTH = 64

_ADJECTIVES = (
    "amber",
    "brave",
    "calm",
    "clever",
    "crisp",
    "eager",
    "fuzzy",
    "gentle",
    "happy",
    "jolly",
    "keen",
    "lively",
    "lucky",
    "mellow",
    "nimble",
    "proud",
    "quick",
    "quiet",
    "rapid",
    "shiny",
    "silent",
    "sunny",
    "swift",
    "tidy",
    "vivid",
    "witty",
    "zesty",
)
_NOUNS = (
    "badger",
    "beacon",
    "comet",
    "dolphin",
    "falcon",
    "fjord",
    "glacier",
    "harbor",
    "heron",
    "lantern",
    "meadow",
    "nebula",
    "otter",
    "owl",
    "panda",
    "pine",
    "quasar",
    "raven",
    "river",
    "sparrow",
    "summit",
    "tiger",
    "tulip",
    "walrus",
    "willow",
)


def memorable_name() -> str:
    """A name people can say and tell apart, such as ``swift-otter-3f2a``."""
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.token_hex(2)}"


async def start_build(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    user_id: uuid.UUID | None,
    name: str | None = None,
    commit: str | None = None,
    build_id: uuid.UUID | None = None,
) -> Build:
    """A new running build; named memorably unless `name` is given.

    With `build_id` (chosen by the client) starting is idempotent: the build of that id in
    this workspace is returned as it is, so a client may resend a start it got no answer to.
    """
    if name is not None and not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidInputError(f"name must be 1 to {MAX_NAME_LENGTH} characters, got {name!r}")
    if commit is not None and not 1 <= len(commit) <= MAX_COMMIT_LENGTH:
        raise InvalidInputError(
            f"commit must be 1 to {MAX_COMMIT_LENGTH} characters, got {commit!r}"
        )
    values = {
        "id": build_id or uuid.uuid4(),
        "workspace_id": workspace_id,
        "name": name or memorable_name(),
        "user_id": user_id,
        "commit": commit,
        "status": BuildStatus.RUNNING,
        "started_at": utcnow(),
    }
    await session.execute(
        insert(session, Build).values(**values).on_conflict_do_nothing(index_elements=["id"])
    )
    build = await session.scalar(
        select(Build).where(Build.id == values["id"]).execution_options(populate_existing=True)
    )
    if build is None or build.workspace_id != workspace_id:
        raise InvalidInputError(
            f"the build id {build_id} is already taken: start the build with a new random id"
        )
    return build


async def get_build(session: AsyncSession, workspace_id: uuid.UUID, build_id: uuid.UUID) -> Build:
    """The build `build_id` of the workspace; `NotFoundError` otherwise."""
    build = await session.scalar(
        select(Build).where(Build.id == build_id, Build.workspace_id == workspace_id)
    )
    if build is None:
        raise _no_build(build_id)
    return build


async def require_build(
    session: AsyncSession, workspace_id: uuid.UUID, build_id: uuid.UUID
) -> None:
    """`NotFoundError` unless the workspace has the build `build_id`: the check before a
    client's reports join a build, without loading the build."""
    found = await session.scalar(
        _BUILD_IN_WORKSPACE, {"build_id": build_id, "workspace_id": workspace_id}
    )
    if found is None:
        raise _no_build(build_id)


def _no_build(build_id: uuid.UUID) -> NotFoundError:
    return NotFoundError(f"no build {build_id} in this workspace")


# Built once: every batch of events checks its build, and building the SELECT and loading
# the row as an object cost a millisecond a request, more than the rest of a small batch.
_BUILDS = table_of(Build)
_BUILD_IN_WORKSPACE = select(_BUILDS.c.id).where(
    _BUILDS.c.id == bindparam("build_id"), _BUILDS.c.workspace_id == bindparam("workspace_id")
)


async def finish_build(
    session: AsyncSession, workspace_id: uuid.UUID, build_id: uuid.UUID, status: BuildStatus
) -> Build:
    """Mark a running build finished with `status`; finishing it again the same way is a no-op."""
    if status is BuildStatus.RUNNING:
        raise InvalidInputError("a build finishes as completed, failed or cancelled, not running")
    build = await get_build(session, workspace_id, build_id)
    if build.status is BuildStatus.RUNNING:
        build.status = status
        build.finished_at = utcnow()
        await session.flush()
    elif build.status is not status:
        raise InvalidInputError(
            f"build {build.name} already finished as {build.status.value}, not {status.value}"
        )
    return build


async def add_build_tasks(
    session: AsyncSession,
    build_id: uuid.UUID,
    task_pks: Iterable[uuid.UUID],
    root_pks: Iterable[uuid.UUID] = (),
) -> None:
    """Record that tasks took part in a build; `root_pks` are the tasks it was asked for."""
    roots = set(root_pks)
    rows = [
        {"build_id": build_id, "task_pk": pk, "is_root": pk in roots}
        for pk in sorted(set(task_pks) | roots)
    ]
    statement = insert(session, table_of(BuildTask))
    statement = statement.on_conflict_do_update(
        index_elements=["build_id", "task_pk"],
        set_={"is_root": BuildTask.__table__.c.is_root | statement.excluded.is_root},
    )
    await insert_rows(session, statement, rows)


async def build_graph(
    session: AsyncSession, build_id: uuid.UUID
) -> tuple[list[Task], list[tuple[uuid.UUID, uuid.UUID]]]:
    """A build's tasks, by task id, and the dependencies among them as (upstream, downstream)."""
    tasks = list(
        await session.scalars(
            select(Task)
            .join(BuildTask, BuildTask.task_pk == Task.id)
            .where(BuildTask.build_id == build_id)
            .order_by(Task.task_id)
        )
    )
    up, down = aliased(BuildTask), aliased(BuildTask)
    edges = await session.execute(
        select(TaskDependency.upstream_pk, TaskDependency.downstream_pk)
        .join(up, (up.task_pk == TaskDependency.upstream_pk) & (up.build_id == build_id))
        .join(down, (down.task_pk == TaskDependency.downstream_pk) & (down.build_id == build_id))
    )
    return tasks, [(upstream, downstream) for upstream, downstream in edges]


BUILDS_NEWEST_FIRST = Ordering("started", (Build.started_at, Build.id), descending=True)


async def find_builds(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    statuses: Sequence[BuildStatus],
    first: int,
    after: str | None,
    task_pk: uuid.UUID | None = None,
) -> Page[Build]:
    """A page of the workspace's builds, newest first; only those with `task_pk` if given."""
    statement = _builds(select(Build), workspace_id, statuses, task_pk)
    return await read_page(session, statement, BUILDS_NEWEST_FIRST, first, after)


async def count_builds(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    statuses: Sequence[BuildStatus],
    task_pk: uuid.UUID | None = None,
) -> int:
    """How many of the workspace's builds `find_builds` pages through."""
    statement = _builds(select(func.count(Build.id)), workspace_id, statuses, task_pk)
    return (await session.scalar(statement)) or 0


def _builds(
    statement: Select[Any],
    workspace_id: uuid.UUID,
    statuses: Sequence[BuildStatus],
    task_pk: uuid.UUID | None,
) -> Select[Any]:
    statement = statement.where(Build.workspace_id == workspace_id)
    if statuses:
        statement = statement.where(Build.status.in_(statuses))
    if task_pk is not None:
        statement = statement.where(
            Build.id.in_(select(BuildTask.build_id).where(BuildTask.task_pk == task_pk))
        )
    return statement


async def root_tasks(session: AsyncSession, build_id: uuid.UUID) -> list[Task]:
    """The tasks a build was asked for, by task id."""
    rows = await session.scalars(
        select(Task)
        .join(BuildTask, BuildTask.task_pk == Task.id)
        .where(BuildTask.build_id == build_id, BuildTask.is_root)
        .order_by(Task.task_id)
    )
    return list(rows)


async def is_finished(session: AsyncSession, build_id: uuid.UUID) -> bool:
    """Whether the build has finished (any status but running)."""
    status = await session.scalar(select(Build.status).where(Build.id == build_id))
    return status is not None and status is not BuildStatus.RUNNING
