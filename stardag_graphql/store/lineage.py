"""Task lineage: a task's transitive upstream or downstream, each one recursive CTE.

The recursion walks `(row id, depth)` pairs with `UNION`, which collapses duplicate pairs,
and stops at a depth bound: the least of `max_depth`, `max_nodes + 1` and the number of tasks
in the workspace (no shortest path is longer), so a cycle terminates. The outer query keeps
each node's smallest depth and fetches one node more than `max_nodes` to detect truncation.
A node reachable along paths of many lengths yields one row per length, so the work grows
with nodes times depth bound, not with the number of paths.
"""

import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Integer, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from stardag_graphql.errors import InvalidInputError
from stardag_graphql.models import Task, TaskDependency, TaskStatus
from stardag_graphql.store.tasks import task_pks

MAX_NODES_LIMIT = 10_000


@dataclass(frozen=True)
class LineageNode:
    """A task in a lineage, `depth` edges away from the root along its shortest path."""

    pk: uuid.UUID
    task_id: str
    namespace: str
    name: str
    status: TaskStatus
    depth: int


@dataclass(frozen=True)
class Lineage:
    """A task's upstream or downstream: its nodes, nearest first, and the edges among them.

    `root` is not among `nodes`, but `edges` include those that touch it. When the lineage has
    more than `max_nodes` nodes, `truncated` is set and `nodes` holds the nearest `max_nodes`.
    """

    root: str
    nodes: list[LineageNode]
    edges: list[tuple[str, str]]
    truncated: bool


async def upstream(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    task_id: str,
    *,
    max_depth: int | None,
    max_nodes: int,
) -> Lineage:
    """The tasks that `task_id` needs, directly or transitively."""
    return await _lineage(session, workspace_id, task_id, "upstream", max_depth, max_nodes)


async def downstream(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    task_id: str,
    *,
    max_depth: int | None,
    max_nodes: int,
) -> Lineage:
    """The tasks that need `task_id`, directly or transitively."""
    return await _lineage(session, workspace_id, task_id, "downstream", max_depth, max_nodes)


async def _lineage(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    task_id: str,
    direction: Literal["upstream", "downstream"],
    max_depth: int | None,
    max_nodes: int,
) -> Lineage:
    if not 1 <= max_nodes <= MAX_NODES_LIMIT:
        raise InvalidInputError(
            f"max_nodes must be between 1 and {MAX_NODES_LIMIT}, got {max_nodes}"
        )
    if max_depth is not None and max_depth < 1:
        raise InvalidInputError(f"max_depth must be None or at least 1, got {max_depth}")
    root_pk = (await task_pks(session, workspace_id, [task_id]))[task_id]

    if direction == "upstream":
        near, far = TaskDependency.downstream_pk, TaskDependency.upstream_pk
    else:
        near, far = TaskDependency.upstream_pk, TaskDependency.downstream_pk
    # The nearest `max_nodes + 1` nodes lie within that many edges, as every depth up to a
    # node's own holds one node at least; the workspace's task count bounds a cycle's walk.
    bound = max_nodes + 1 if max_depth is None else min(max_depth, max_nodes + 1)
    task_count = (
        select(func.count()).select_from(Task).where(Task.workspace_id == workspace_id)
    ).scalar_subquery()
    walk = (
        select(far.label("pk"), literal_column("1", Integer).label("depth"))
        .where(TaskDependency.workspace_id == workspace_id, near == root_pk)
        .cte("walk", recursive=True)
    )
    walk = walk.union(
        select(far, walk.c.depth + literal_column("1", Integer))
        .join(walk, near == walk.c.pk)
        .where(
            TaskDependency.workspace_id == workspace_id,
            walk.c.depth < bound,
            walk.c.depth < task_count,
        )
    )
    nearest = (
        select(walk.c.pk, func.min(walk.c.depth).label("depth"))
        .where(walk.c.pk != root_pk)
        .group_by(walk.c.pk)
        .subquery()
    )
    rows = await session.execute(
        select(Task.id, Task.task_id, Task.namespace, Task.name, Task.status, nearest.c.depth)
        .join(nearest, nearest.c.pk == Task.id)
        .order_by(nearest.c.depth, Task.task_id)
        .limit(max_nodes + 1)
    )
    fetched = rows.all()
    kept = fetched[:max_nodes]
    nodes = [
        LineageNode(row.id, row.task_id, row.namespace, row.name, row.status, row.depth)
        for row in kept
    ]
    return Lineage(
        root=task_id,
        nodes=nodes,
        edges=await _edges(session, workspace_id, [root_pk, *(row.id for row in kept)]),
        truncated=len(fetched) > max_nodes,
    )


async def _edges(
    session: AsyncSession, workspace_id: uuid.UUID, pks: list[uuid.UUID]
) -> list[tuple[str, str]]:
    up, down = aliased(Task), aliased(Task)
    rows = await session.execute(
        select(up.task_id, down.task_id)
        .select_from(TaskDependency)
        .join(up, up.id == TaskDependency.upstream_pk)
        .join(down, down.id == TaskDependency.downstream_pk)
        .where(
            TaskDependency.workspace_id == workspace_id,
            TaskDependency.upstream_pk.in_(pks),
            TaskDependency.downstream_pk.in_(pks),
        )
        .order_by(up.task_id, down.task_id)
    )
    return [(upstream_id, downstream_id) for upstream_id, downstream_id in rows]
