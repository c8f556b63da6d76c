"""Task lineage: a task's transitive upstream or downstream, each one recursive CTE.

Two walks, both cycle-safe:

- With a `max_depth` up to `MAX_WALKED_DEPTH`, the recursion walks `(row id, depth)` pairs
  with `UNION` and stops at that depth; the outer query keeps each node's smallest depth. A
  node reachable along paths of several lengths yields a row per length, so the work is at
  most nodes times depth: small for the shallow lineages a depth is asked for.
- Otherwise a breadth-first walk in Python reads one level's edges per statement and stops
  as soon as it holds more than `max_nodes` nodes: the nearest of a wide lineage cost a few
  statements, not its whole closure. A lineage still growing after `MAX_WALKED_DEPTH` levels
  is deep and narrow: one recursive statement walks row ids alone with `UNION`, so each node
  is visited once however many paths reach it, and returns the closure's edges, from which
  shortest depths come by the same breadth-first pass, linear in the closure's size.

Both keep the `max_nodes` nearest nodes (by depth, then task id) and say when they cut.
"""

import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import (
    Integer,
    String,
    Uuid,
    any_,
    cast,
    func,
    literal_column,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from stardag_graphql.errors import InvalidInputError
from stardag_graphql.models import Task, TaskDependency, TaskStatus
from stardag_graphql.store.tasks import BATCH_SIZE, task_pks

MAX_NODES_LIMIT = 10_000
# Deeper than this, the closure walk (each node once) beats the depth walk (a row per length)
# and the level walk (a statement per level).
MAX_WALKED_DEPTH = 32


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
    root_pk: uuid.UUID | None = None,
) -> Lineage:
    """The tasks that `task_id` needs, directly or transitively. `root_pk`, its row
    id when the caller has it, saves looking it up."""
    return await _lineage(session, workspace_id, task_id, "upstream", max_depth, max_nodes, root_pk)


async def downstream(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    task_id: str,
    *,
    max_depth: int | None,
    max_nodes: int,
    root_pk: uuid.UUID | None = None,
) -> Lineage:
    """The tasks that need `task_id`, directly or transitively. `root_pk`, its row
    id when the caller has it, saves looking it up."""
    return await _lineage(
        session, workspace_id, task_id, "downstream", max_depth, max_nodes, root_pk
    )


async def _lineage(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    task_id: str,
    direction: Literal["upstream", "downstream"],
    max_depth: int | None,
    max_nodes: int,
    root_pk: uuid.UUID | None,
) -> Lineage:
    if not 1 <= max_nodes <= MAX_NODES_LIMIT:
        raise InvalidInputError(
            f"max_nodes must be between 1 and {MAX_NODES_LIMIT}, got {max_nodes}"
        )
    if max_depth is not None and max_depth < 1:
        raise InvalidInputError(f"max_depth must be None or at least 1, got {max_depth}")
    if root_pk is None:
        root_pk = (await task_pks(session, workspace_id, [task_id]))[task_id]

    if direction == "upstream":
        near, far = TaskDependency.downstream_pk, TaskDependency.upstream_pk
    else:
        near, far = TaskDependency.upstream_pk, TaskDependency.downstream_pk
    if max_depth is None or max_depth > MAX_WALKED_DEPTH:
        nearest = await _level_depths(
            session, workspace_id, root_pk, near, far, max_depth, max_nodes
        )
        if nearest is None:
            nearest = await _closure_depths(session, workspace_id, root_pk, near, far)
            if max_depth is not None:
                nearest = {pk: depth for pk, depth in nearest.items() if depth <= max_depth}
        nodes, truncated = await _nearest_nodes(session, nearest, max_nodes)
    else:
        found = await _bounded_nodes(session, workspace_id, root_pk, near, far, max_depth)
        found.sort(key=lambda node: (node.depth, node.task_id))
        nodes, truncated = found[:max_nodes], len(found) > max_nodes
    kept = {root_pk: task_id, **{node.pk: node.task_id for node in nodes}}
    return Lineage(
        root=task_id,
        nodes=nodes,
        edges=await _edges(session, workspace_id, kept),
        truncated=truncated,
    )


async def _bounded_nodes(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    root_pk: uuid.UUID,
    near: InstrumentedAttribute[uuid.UUID],
    far: InstrumentedAttribute[uuid.UUID],
    max_depth: int,
) -> list[LineageNode]:
    """The nodes within `max_depth`, each at its smallest depth, with their task rows: one
    statement (a shallow lineage is small)."""
    walk = (
        select(far.label("pk"), literal_column("1", Integer).label("depth"))
        .where(TaskDependency.workspace_id == workspace_id, near == root_pk)
        .cte("walk", recursive=True)
    )
    walk = walk.union(
        select(far, walk.c.depth + literal_column("1", Integer))
        .join(walk, near == walk.c.pk)
        .where(TaskDependency.workspace_id == workspace_id, walk.c.depth < max_depth)
    )
    nearest = (
        select(walk.c.pk, func.min(walk.c.depth).label("depth"))
        .where(walk.c.pk != root_pk)
        .group_by(walk.c.pk)
        .subquery("nearest")
    )
    rows = await session.execute(
        select(Task.id, Task.task_id, Task.namespace, Task.name, Task.status, nearest.c.depth).join(
            nearest, nearest.c.pk == Task.id
        )
    )
    return [LineageNode(*row) for row in rows]


async def _level_depths(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    root_pk: uuid.UUID,
    near: InstrumentedAttribute[uuid.UUID],
    far: InstrumentedAttribute[uuid.UUID],
    max_depth: int | None,
    max_nodes: int,
) -> dict[uuid.UUID, int] | None:
    """Each node's smallest depth, level by level, until the lineage ends, `max_depth` is
    reached or more than `max_nodes` nodes are found (every node nearer than the last level
    is then known). None when it is still growing after `MAX_WALKED_DEPTH` levels."""
    depths = {root_pk.hex: 0}
    frontier = [root_pk]
    depth = 0
    while frontier and len(depths) <= max_nodes + 1 and depth != max_depth:  # root included
        if depth == MAX_WALKED_DEPTH:
            return None
        depth += 1
        reached = []
        for _, there in await _dependencies_from(session, workspace_id, frontier, near, far):
            if there not in depths:
                depths[there] = depth
                reached.append(there)
        frontier = [uuid.UUID(hex=pk) for pk in reached]
    del depths[root_pk.hex]
    return {uuid.UUID(hex=pk): depth for pk, depth in depths.items()}


async def _closure_depths(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    root_pk: uuid.UUID,
    near: InstrumentedAttribute[uuid.UUID],
    far: InstrumentedAttribute[uuid.UUID],
) -> dict[uuid.UUID, int]:
    walk = (
        select(far.label("pk"))
        .where(TaskDependency.workspace_id == workspace_id, near == root_pk)
        .cte("closure", recursive=True)
    )
    walk = walk.union(
        select(far).join(walk, near == walk.c.pk).where(TaskDependency.workspace_id == workspace_id)
    )
    # The closure's edges can number hundreds of thousands: read the ids as text (hex), not
    # as UUID objects, which costs several times the query itself on SQLite.
    edges = await session.execute(
        select(type_coerce(near, String), type_coerce(far, String)).where(
            TaskDependency.workspace_id == workspace_id,
            or_(near == root_pk, near.in_(select(walk.c.pk))),
        )
    )
    following: dict[str, list[str]] = {}
    for here, there in edges:
        following.setdefault(_hex(here), []).append(_hex(there))
    depths = {root_pk.hex: 0}
    frontier = [root_pk.hex]
    while frontier:
        reached = []
        for here in frontier:
            for there in following.get(here, ()):
                if there not in depths:
                    depths[there] = depths[here] + 1
                    reached.append(there)
        frontier = reached
    del depths[root_pk.hex]
    return {uuid.UUID(hex=key): depth for key, depth in depths.items()}


def _hex(value: object) -> str:
    """A row id as 32 hex digits, as SQLite stores it (PostgreSQL's driver gives a UUID)."""
    return value.hex if isinstance(value, uuid.UUID) else str(value).replace("-", "")


async def _nearest_nodes(
    session: AsyncSession, depths: dict[uuid.UUID, int], max_nodes: int
) -> tuple[list[LineageNode], bool]:
    """The `max_nodes` nodes nearest by (depth, task id), and whether any were left out."""
    if not depths:
        return [], False
    ranked = sorted(depths.values())
    # Every node nearer than the cut's depth is kept; ties at that depth go by task id.
    cut = ranked[min(max_nodes, len(ranked)) - 1]
    candidates = [pk for pk, depth in depths.items() if depth <= cut]
    found: list[LineageNode] = []
    for start in range(0, len(candidates), BATCH_SIZE):
        rows = await session.execute(
            select(Task.id, Task.task_id, Task.namespace, Task.name, Task.status).where(
                Task.id.in_(candidates[start : start + BATCH_SIZE])
            )
        )
        found.extend(
            LineageNode(row.id, row.task_id, row.namespace, row.name, row.status, depths[row.id])
            for row in rows
        )
    found.sort(key=lambda node: (node.depth, node.task_id))
    return found[:max_nodes], len(depths) > max_nodes


async def _edges(
    session: AsyncSession, workspace_id: uuid.UUID, task_ids: dict[uuid.UUID, str]
) -> list[tuple[str, str]]:
    """The dependencies among the tasks `task_ids` (row id to task id), as task id pairs."""
    pairs = await _dependencies_from(
        session,
        workspace_id,
        list(task_ids),
        TaskDependency.upstream_pk,
        TaskDependency.downstream_pk,
    )
    by_hex = {pk.hex: task_id for pk, task_id in task_ids.items()}
    return sorted((by_hex[up], by_hex[down]) for up, down in pairs if down in by_hex)


async def _dependencies_from(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    pks: list[uuid.UUID],
    near: InstrumentedAttribute[uuid.UUID],
    far: InstrumentedAttribute[uuid.UUID],
) -> list[tuple[str, str]]:
    """The (near, far) row ids, as hex, of the dependencies whose `near` end is one of `pks`.

    Hex, because a lineage reads an edge row per dependency but needs an id per node: on
    SQLite, making a UUID of each id read cost more than the statement itself."""
    pairs: list[tuple[str, str]] = []
    # PostgreSQL takes the ids as one array parameter: one short statement, which psycopg
    # converts much faster than an IN list of hundreds of parameters.
    postgresql = session.get_bind().dialect.name == "postgresql"
    size = len(pks) if postgresql else BATCH_SIZE
    for start in range(0, len(pks), size):
        batch = pks[start : start + size]
        rows = await session.execute(
            select(type_coerce(near, String), type_coerce(far, String)).where(
                TaskDependency.workspace_id == workspace_id,
                near == any_(cast(batch, ARRAY(Uuid()))) if postgresql else near.in_(batch),
            )
        )
        pairs.extend((_hex(here), _hex(there)) for here, there in rows)
    return pairs
