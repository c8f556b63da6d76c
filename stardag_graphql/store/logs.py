"""Task logs: appends keyed by the client's line numbers, read in pages by line number.

Each line carries `seq`, its number in the task's log: resending a line conflicts on
`(task, seq)` and is skipped, and reading continues after the last `seq` seen. Lines sent
for a build number that build's run of the task from 0; they are stored after the lines of
every other build (the task's log grows by one run after another), so a client needs no
memory of earlier runs and resending stays harmless.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from stardag_graphql.errors import InvalidInputError
from stardag_graphql.ids import ordered_id
from stardag_graphql.models import LogEntry
from stardag_graphql.store.tasks import task_pks
from stardag_graphql.store.upsert import insert, insert_rows, table_of, without_nul

# The length of `LogEntry.stream`.
MAX_STREAM_LENGTH = 16
MAX_PAGE = 1000


@dataclass(frozen=True)
class LogLine:
    """A log line as a client sends it; `seq` numbers the task's lines so resending is harmless."""

    seq: int
    text: str
    logged_at: datetime
    stream: str = "stdout"
    build_id: uuid.UUID | None = None


async def append_logs(
    session: AsyncSession, workspace_id: uuid.UUID, task_id: str, lines: Sequence[LogLine]
) -> int:
    """Append log lines, skipping sequence numbers already stored; returns how many were new.
    A NUL character in a line is stored as U+FFFD (see `without_nul`).

    Raises `UnknownTaskError` when the task is not registered in the workspace.
    """
    for line in lines:
        if line.seq < 0:
            raise InvalidInputError(f"seq must be non-negative, got {line.seq!r}")
        if not line.stream or len(line.stream) > MAX_STREAM_LENGTH:
            raise InvalidInputError(
                f"stream must be 1 to {MAX_STREAM_LENGTH} characters, got {line.stream!r}"
            )
    task_pk = (await task_pks(session, workspace_id, [task_id]))[task_id]
    builds = {line.build_id for line in lines}
    base = 0
    if len(builds) == 1 and (build := builds.pop()) is not None:
        base = await _after_other_builds(session, task_pk, build)
    statement = insert(session, table_of(LogEntry)).on_conflict_do_nothing(
        index_elements=["task_pk", "seq"]
    )
    result = await insert_rows(
        session,
        statement.returning(LogEntry.__table__.c.id),
        [
            {
                "id": ordered_id(),
                "workspace_id": workspace_id,
                "task_pk": task_pk,
                "seq": base + line.seq,
                "build_id": line.build_id,
                "stream": line.stream,
                "text": without_nul(line.text),
                "logged_at": line.logged_at,
            }
            for line in lines
        ],
    )
    return len(result.all()) if result is not None else 0


async def _after_other_builds(
    session: AsyncSession, task_pk: uuid.UUID, build_id: uuid.UUID
) -> int:
    """The first line number after the task's lines from other builds (or from none)."""
    last = await session.scalar(
        select(func.max(LogEntry.seq)).where(
            LogEntry.task_pk == task_pk, LogEntry.build_id.is_distinct_from(build_id)
        )
    )
    return 0 if last is None else last + 1


async def read_logs(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    task_id: str,
    after: int | None,
    limit: int,
) -> list[LogEntry]:
    """Up to `limit` (1 to 1000) of a task's log lines in order, after line number `after`."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE}, got {limit!r}")
    task_pk = (await task_pks(session, workspace_id, [task_id]))[task_id]
    query = select(LogEntry).where(
        LogEntry.workspace_id == workspace_id, LogEntry.task_pk == task_pk
    )
    if after is not None:
        query = query.where(LogEntry.seq > after)
    rows = await session.scalars(query.order_by(LogEntry.seq).limit(limit))
    return list(rows)
