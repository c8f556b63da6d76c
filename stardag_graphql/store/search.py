"""Finding tasks in a workspace: typed filters, orderings, counts and autocomplete values.

Parameter filters compare the JSON value at a dotted path (`"model.depth"`) with a scalar.
PostgreSQL answers them with JSONB containment (a GIN index). SQLite reads the tasks that its
parameter index (`TaskParameterValue`) holds for the first condition, newest first, and
checks each with `json_extract`, comparing the JSON type too so that `true` never equals `1`.
Autocomplete (`filter_keys`, `filter_values`) looks at the newest `AUTOCOMPLETE_SCAN` tasks
that match the other filters, which keeps it fast on a workspace of millions of tasks.
`task_families` lists every family (namespace and name) instead, stepping through the
(workspace, namespace, name) index from one family to the next: a statement whose cost grows
with the number of families, not of tasks.
"""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    cast,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from stardag_graphql.errors import InvalidInputError
from stardag_graphql.models import BuildTask, Task, TaskParameterValue, TaskStatus
from stardag_graphql.store.pages import Ordering, Page, read_page

Scalar = str | int | float | bool | None

AUTOCOMPLETE_SCAN = 10_000
MAX_SUGGESTIONS = 50
MAX_FAMILIES = 1000
FAMILIES_SCAN = 10_000
MAX_PATH_DEPTH = 8
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

TASK_ORDERINGS: dict[str, tuple[InstrumentedAttribute[Any], ...]] = {
    "created_at": (Task.created_at, Task.id),
    "updated_at": (Task.updated_at, Task.id),
    "name": (Task.name, Task.id),
    "task_id": (Task.task_id,),
}


@dataclass(frozen=True)
class ParameterFilter:
    """Tasks whose parameter at dotted `path` equals the scalar `equals`."""

    path: str
    equals: Scalar


@dataclass(frozen=True)
class TaskFilter:
    """Conditions a task must all meet; empty fields do not filter."""

    namespace: str | None = None
    names: Sequence[str] = ()
    statuses: Sequence[TaskStatus] = ()
    build_id: uuid.UUID | None = None
    parameters: Sequence[ParameterFilter] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    search: str | None = None
    task_ids: Sequence[str] = field(default=())


def task_ordering(key: str, descending: bool) -> Ordering:
    """The ordering of task lists by `key` (one of `TASK_ORDERINGS`)."""
    return Ordering(f"{key}:{'desc' if descending else 'asc'}", TASK_ORDERINGS[key], descending)


async def find_tasks(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    task_filter: TaskFilter,
    ordering: Ordering,
    first: int,
    after: str | None,
) -> Page[Task]:
    """A page of the workspace's tasks that match `task_filter`."""
    statement = _filtered(session, select(Task), workspace_id, task_filter)
    if ordering.keys[0] is Task.created_at:
        keys = _creation_order(session, task_filter)
        ordering = Ordering(ordering.name, keys, ordering.descending)
    return await read_page(session, statement, ordering, first, after)


async def count_tasks(
    session: AsyncSession, workspace_id: uuid.UUID, task_filter: TaskFilter
) -> int:
    """How many of the workspace's tasks match `task_filter`."""
    statement = _filtered(session, select(func.count(Task.id)), workspace_id, task_filter)
    return (await session.scalar(statement)) or 0


async def filter_keys(
    session: AsyncSession, workspace_id: uuid.UUID, task_filter: TaskFilter, prefix: str = ""
) -> list[str]:
    """Top-level parameter names of matching tasks that start with `prefix`, sorted."""
    recent = _recent(session, workspace_id, task_filter)
    if _dialect(session) == "postgresql":
        keys = (
            func.jsonb_object_keys(recent.c.parameters)
            .table_valued("key")
            .render_derived(name="keys")
        )
    else:
        keys = func.json_each(recent.c.parameters).table_valued("key").alias("keys")
    rows = await session.scalars(
        select(keys.c.key)
        .select_from(recent)
        .join(keys, true())
        .where(
            keys.c.key.startswith(prefix, autoescape=True),
            keys.c.key.not_like("\\_\\_%", escape="\\"),
        )
        .distinct()
        .order_by(keys.c.key)
        .limit(MAX_SUGGESTIONS)
    )
    return list(rows)


async def filter_values(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    task_filter: TaskFilter,
    path: str,
    prefix: str = "",
) -> list[str]:
    """Distinct scalar values (as text) at parameter `path` of matching tasks, by `prefix`."""
    recent = _recent(session, workspace_id, task_filter)
    keys = _split(path)
    if _dialect(session) == "postgresql":
        text: Any = recent.c.parameters.op("#>>", return_type=String)(cast(keys, ARRAY(String)))
    else:
        text = cast(func.json_extract(recent.c.parameters, _json_path(keys)), String)
    rows = await session.scalars(
        select(text)
        .select_from(recent)
        .where(text.is_not(None), text.startswith(prefix, autoescape=True))
        .distinct()
        .order_by(text)
        .limit(MAX_SUGGESTIONS)
    )
    return [str(row) for row in rows]


async def task_families(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    namespace: str | None = None,
    prefix: str = "",
    first: int = MAX_SUGGESTIONS,
) -> list[tuple[str, str]]:
    """The workspace's task families (namespace, name) whose name starts with `prefix`, in
    `namespace` only when one is given; the first `first` in (namespace, name) order, among
    the first `FAMILIES_SCAN` families."""
    if not 1 <= first <= MAX_FAMILIES:
        raise InvalidInputError(f"first must be between 1 and {MAX_FAMILIES}, got {first}")
    scope = [Task.workspace_id == workspace_id]
    if namespace is not None:
        scope.append(Task.namespace == namespace)
    if namespace is not None and prefix:
        # Names in one namespace come in order: the walk starts at the prefix, stops after it.
        scope += [Task.name >= prefix, Task.name.startswith(prefix, autoescape=True)]
    found = aliased(Task, name="found")
    first_family = (
        select(Task.id, Task.namespace, Task.name)
        .where(*scope)
        .order_by(Task.namespace, Task.name)
        .limit(1)
        .subquery("first_family")
    )
    walk = select(*first_family.c, literal(1, Integer).label("step")).cte("walk", recursive=True)
    # The next family's first task: the next name in the namespace, else the next namespace's
    # first name. Each is one index range read (SQLite reads a row-value comparison as a range
    # on its first column only), so a step costs the same however many tasks a family has.
    next_name = (
        select(Task.id)
        .where(*scope, Task.namespace == walk.c.namespace, Task.name > walk.c.name)
        .order_by(Task.name)
        .limit(1)
        .scalar_subquery()
    )
    next_namespace = (
        select(Task.id)
        .where(*scope, Task.namespace > walk.c.namespace)
        .order_by(Task.namespace, Task.name)
        .limit(1)
        .scalar_subquery()
    )
    next_family = func.coalesce(next_name, next_namespace)
    walk = walk.union_all(
        select(found.id, found.namespace, found.name, walk.c.step + 1)
        .join_from(walk, found, found.id == next_family)
        .where(walk.c.step < FAMILIES_SCAN)
    )
    rows = await session.execute(
        select(walk.c.namespace, walk.c.name)
        .where(walk.c.name.startswith(prefix, autoescape=True))
        .order_by(walk.c.step)
        .limit(first)
    )
    return [(row.namespace, row.name) for row in rows]


def _recent(session: AsyncSession, workspace_id: uuid.UUID, task_filter: TaskFilter) -> Any:
    return (
        _filtered(session, select(Task.parameters), workspace_id, task_filter)
        .order_by(*(key.desc() for key in _creation_order(session, task_filter)))
        .limit(AUTOCOMPLETE_SCAN)
        .subquery("recent")
    )


def _creation_order(
    session: AsyncSession, task_filter: TaskFilter
) -> tuple[InstrumentedAttribute[Any], ...]:
    """The columns that order filtered tasks by creation. When SQLite's parameter index is
    read, its own copy of them: it holds each value's tasks in that order, so a page needs
    no sort and stops early."""
    if _indexed_condition(session, task_filter) is None:
        return TASK_ORDERINGS["created_at"]
    return (TaskParameterValue.created_at, TaskParameterValue.task_pk)


def _filtered(
    session: AsyncSession,
    statement: Select[Any],
    workspace_id: uuid.UUID,
    task_filter: TaskFilter,
) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = [Task.workspace_id == workspace_id]
    if task_filter.namespace is not None:
        conditions.append(Task.namespace == task_filter.namespace)
    if task_filter.names:
        conditions.append(Task.name.in_(task_filter.names))
    if task_filter.statuses:
        conditions.append(Task.status.in_(task_filter.statuses))
    if task_filter.task_ids:
        conditions.append(Task.task_id.in_(task_filter.task_ids))
    if task_filter.build_id is not None:
        conditions.append(
            Task.id.in_(select(BuildTask.task_pk).where(BuildTask.build_id == task_filter.build_id))
        )
    if task_filter.created_after is not None:
        conditions.append(Task.created_at >= task_filter.created_after)
    if task_filter.created_before is not None:
        conditions.append(Task.created_at < task_filter.created_before)
    if task_filter.search:
        text = task_filter.search.lower()
        conditions.append(
            or_(
                func.lower(Task.name).contains(text, autoescape=True),
                Task.task_id.startswith(text, autoescape=True),
            )
        )
    postgresql = _dialect(session) == "postgresql"
    for parameter in task_filter.parameters:
        keys = _split(parameter.path)
        if postgresql:
            conditions.append(_contains(keys, parameter.equals))
        else:
            conditions.append(_json_equals(keys, parameter.equals))
    indexed = _indexed_condition(session, task_filter)
    if indexed is not None:
        name, value = indexed
        statement = statement.join(
            TaskParameterValue,
            and_(
                TaskParameterValue.workspace_id == workspace_id,
                TaskParameterValue.name == name,
                TaskParameterValue.value == literal(value),
                TaskParameterValue.task_pk == Task.id,
            ),
        )
    return statement.where(and_(*conditions))


def _indexed_condition(session: AsyncSession, task_filter: TaskFilter) -> tuple[str, Scalar] | None:
    """The (leaf key, stored value) that SQLite's parameter index finds the first parameter
    condition it holds by; None on PostgreSQL or when it holds none of them."""
    if _dialect(session) != "sqlite":
        return None
    for parameter in task_filter.parameters:
        name, value = _split(parameter.path)[-1], parameter.equals
        if name.startswith("__") or value is None:
            continue
        if isinstance(value, str) and len(value) > TaskParameterValue.INDEXED_TEXT_LENGTH:
            continue
        return name, _sqlite_number(value)
    return None


def _sqlite_number(value: Scalar) -> Scalar:
    # SQLite's integers are 64-bit: it reads a larger JSON integer as a real.
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return float(value)
    return value


def _contains(keys: list[str], value: Scalar) -> ColumnElement[bool]:
    # JSONB containment of {"a": {"b": value}}: served by a GIN index when there is one.
    nested: Any = value
    for key in reversed(keys):
        nested = {key: nested}
    return Task.parameters.op("@>")(cast(literal(json.dumps(nested)), JSONB))


def _json_equals(keys: list[str], value: Scalar) -> ColumnElement[bool]:
    path = _json_path(keys)
    kind = func.json_type(Task.parameters, path)
    if value is None:
        return kind == "null"
    if isinstance(value, bool):
        return kind == ("true" if value else "false")
    value = _sqlite_number(value)
    extracted = func.json_extract(Task.parameters, path)
    if isinstance(value, str):
        return and_(kind == "text", extracted == value)
    return and_(kind.in_(["integer", "real"]), extracted == value)


def _split(path: str) -> list[str]:
    keys = path.split(".")
    if any(not key or "\x00" in key for key in keys) or len(keys) > MAX_PATH_DEPTH:
        raise InvalidInputError(
            f"parameter path {path!r} is not a dotted path of up to {MAX_PATH_DEPTH} names, "
            "e.g. 'limit' or 'model.depth'"
        )
    return keys


def _json_path(keys: list[str]) -> str:
    return "$" + "".join(f'."{key}"' for key in keys)


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name
